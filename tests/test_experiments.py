"""experiments.seeds and experiments.mujoco: run settings x seeds as processes, table them
(with statistics over seeds), and resume."""
import argparse
import json

import numpy as np
import pytest

from experiments import mujoco, seeds


def test_seeds_tables_runs_reports_failures_and_resumes(tmp_path, capsys):
    argv = ["--env", "gridworld", "--steps", "2048", "--seeds", "0,1", "--parallel", "2",
            "--setting", "truth=--reward=true", "--setting", "broken=--teacher=nope",
            "--out", str(tmp_path)]
    seeds.main(argv)
    out = json.loads((tmp_path / "seeds.json").read_text())
    truth, broken = out["settings"]
    assert [r["seed"] for r in truth["runs"]] == [0, 1]
    returns = [r["true_return_mean"] for r in truth["runs"]]
    assert truth["mean"] == sum(returns) / 2
    assert all("error" in r for r in broken["runs"]) and broken["mean"] is None
    md = (tmp_path / "seeds.md").read_text()
    assert "| broken | `--teacher=nope` | failed | failed | - |" in md
    assert (tmp_path / "seeds.png").stat().st_size > 0
    # a second call reads the finished runs instead of repeating them
    summary = tmp_path / "runs" / "truth-s0" / "summary.json"
    stamp = summary.stat().st_mtime_ns
    seeds.main(argv)
    assert summary.stat().st_mtime_ns == stamp
    assert "truth seed 0" in capsys.readouterr().out
    # a setting whose arguments changed does not take the old runs for its own
    seeds.main(["--env", "gridworld", "--steps", "2048", "--seeds", "1", "--parallel", "1",
                "--setting", "truth=--reward=true --set gamma=0.5", "--out", str(tmp_path)])
    rerun = json.loads((tmp_path / "seeds.json").read_text())["settings"][0]["runs"][0]
    assert "holds another run" in rerun["error"] and "gamma" in rerun["error"]
    assert summary.stat().st_mtime_ns == stamp


def test_seeds_parse_as_a_count_ranges_or_lists():
    assert seeds.seed_list("3") == [0, 1, 2]
    assert seeds.seed_list("4-4") == [4]
    assert seeds.seed_list("0-3") == [0, 1, 2, 3]
    assert seeds.seed_list("0,1,2") == [0, 1, 2]
    assert seeds.seed_list("5,0-1") == [5, 0, 1]
    for bad in ("0", "0-1,1", "a", "", "3-1", "3-1,5", "-1"):
        with pytest.raises(argparse.ArgumentTypeError, match=f"--seeds {bad}:"):
            seeds.seed_list(bad)


def test_mujoco_statistics_on_hand_worked_numbers():
    assert mujoco.standard_error([1, 2, 3, 4]) == pytest.approx((5 / 3) ** 0.5 / 2)
    assert mujoco.standard_error([7]) is None
    # two seeds: a resample is seed 0 twice (1/4), seed 1 twice (1/4) or one of each (1/2),
    # so the 2.5% and 97.5% percentiles are the two single-seed ratios
    assert mujoco.bootstrap_ratio([1, 3], [2, 2]) == (1.0, 0.5, 1.5)
    # learned = half of true on every seed: every resample's ratio is 0.5
    assert mujoco.bootstrap_ratio([2, 4, 6, 9], [4, 8, 12, 18]) == (0.5, 0.5, 0.5)
    # fixed RNG: the same interval every time
    a, b = [90, 300, 120, 50, 210], [100, 310, 300, 200, 220]
    assert mujoco.bootstrap_ratio(a, b) == mujoco.bootstrap_ratio(a, b)
    assert mujoco.reaching([50, 80, 89, 100], [100] * 4) == {"0.5": 4, "0.8": 3, "0.9": 1}
    # a random floor of -100 on both seeds: (-40 + 100) / (-20 + 100) and 0 / 80
    assert mujoco.bootstrap_ratio([-40, -100], [-20, -20], [-100, -100]) == (0.375, 0.0, 0.75)


def test_mujoco_setting_stats_pair_seeds_and_skip_failures():
    def run(seed, ret):
        return {"seed": seed, "true_return_mean": ret, "wall_seconds": 10.0 * ret,
                "env_steps_per_second": 1.0 * seed}

    learned = [run(0, 100.0), run(1, 200.0), {"seed": 2, "error": "exit 1"}]
    true = [run(0, 200.0), run(1, 250.0), run(2, 300.0)]
    s = mujoco.setting_stats(learned, true)
    assert (s["n"], s["failed"], s["mean"], s["min"], s["worst_seed"]) == (2, [2], 150.0, 100.0, 0)
    assert s["se"] == pytest.approx(50.0)  # std [100, 200] ddof 1 = 70.7, over sqrt(2)
    assert (s["wall_seconds_mean"], s["env_steps_per_second_mean"]) == (1500.0, 0.5)
    r = s["ratio_to_true"]  # seeds 0 and 1 only: 300 / 450; resamples 100/200 ... 200/250
    assert r["seeds"] == [0, 1] and r["ratio"] == pytest.approx(2 / 3)
    assert r["ci95"] == pytest.approx([0.5, 0.8])
    # seed 0 reaches 100 >= 0.5 * 200 only; seed 1 reaches 200 >= 0.8 * 250, not 0.9 * 250
    assert s["reaching_true"] == {"0.5": 2, "0.8": 1, "0.9": 0, "of": 2}
    assert s["normalised"] is None  # no random floor given
    # floor on seed 1 only: (200 - 50) / (250 - 50)
    n = mujoco.setting_stats(learned, true, {1: 50.0})["normalised"]
    assert n["seeds"] == [1] and n["ratio"] == pytest.approx(0.75)
    t = mujoco.setting_stats(true, None)
    assert t["ratio_to_true"] is None and t["mean"] == 250.0
    assert mujoco.setting_stats([{"seed": 0, "error": "x"}], true)["mean"] is None


def test_mujoco_random_floor_is_one_reacher_episode_per_copy_and_seeded():
    r = mujoco.random_returns("reacher", 3, 8)
    assert r.shape == (8,) and (r < 0).all()
    # one 50-step episode costs ~1.2 a step (distance and control); two would be ~-120
    assert -100 < r.mean() < -20
    assert (mujoco.random_returns("reacher", 3, 8) == r).all()
    assert (mujoco.random_returns("reacher", 4, 8) != r).any()


def test_health_probe_control_cost_clips_actions_and_stops_at_each_episodes_end():
    from experiments.health_probe import control_costs
    actions = np.array([[[0.5, 2.0], [1.0, 0.0]], [[0.0, -3.0], [1.0, 1.0]],
                        [[9.0, 9.0], [1.0, 1.0]]])  # [T 3, E 2, A 2]
    # episode 0 ends after step 2: (0.25 + 1) + (0 + 1), clipped to +-1; episode 1: 1 + 2 + 2
    np.testing.assert_allclose(control_costs(actions, [2, 3], 0.5, -1.0, 1.0),
                               [0.5 * 2.25, 0.5 * 5.0])


def test_mujoco_curves_smooth_five_points_and_band_over_seeds(tmp_path):
    assert list(mujoco.smooth([1, 2, 3, 4, 5, 6, 7])) == [1, 1.5, 2, 2.5, 3, 4, 5]

    def metrics(name, points):
        d = tmp_path / name
        d.mkdir()
        (d / "metrics.jsonl").write_text("".join(
            json.dumps({"env_steps": x, "true_return": y, "labels": 1}) + "\n" for x, y in points))
        return mujoco.training_curve(d)

    # a row with no finished episode (true_return null) is not a logged point
    a = metrics("a", [(100, 0), (200, 0), (300, 0), (350, None), (400, 0), (500, 10)])
    assert list(a[0]) == [100, 200, 300, 400, 500] and list(a[1]) == [0, 0, 0, 0, 2]
    b = metrics("b", [(200, 2), (400, 4), (600, 6)])
    assert list(b[1]) == [2, 3, 4]
    steps, mean, se = mujoco.mean_band([a, b])
    # steps both cover (200-500); b interpolated at 300 and 500: 2.5, 3.5
    assert list(steps) == [200, 300, 400, 500]
    assert list(mean) == [1, 1.25, 1.5, 2.75]
    assert list(se) == pytest.approx([1, 1.25, 1.5, 0.75])  # two seeds: |a - b| / 2
    steps, mean, se = mujoco.mean_band([b])
    assert list(mean) == [2, 3, 4] and list(se) == [0, 0, 0]


def test_mujoco_settings_default_first_then_baselines():
    assert mujoco.settings_of([("x", "--labels 10")], True, True) == [
        ("default", ""), ("x", "--labels 10"), ("reward=teacher", "--reward=teacher"),
        ("reward=true", "--reward=true")]
    assert mujoco.settings_of([], False, False) == [("default", "")]
    with pytest.raises(ValueError):
        mujoco.settings_of([("default", "--labels 10")], True, True)


@pytest.mark.slow  # four real runs (~2-5 minutes here); the statistics are tested above
def test_mujoco_runs_tables_plots_and_resumes(tmp_path, capsys):
    argv = ["--tasks", "gridworld", "--seeds", "0-1", "--steps", "2048", "--no-teacher",
            "--setting", "broken=--teacher=nope", "--parallel", "2", "--out", str(tmp_path)]
    mujoco.main(argv)
    out = capsys.readouterr().out
    assert "gridworld default seed 1: starting" in out
    assert "gridworld broken seed 0: FAILED: exit 2; see" in out
    d = tmp_path / "gridworld"
    t = json.loads((d / "table.json").read_text())
    default, broken, true = t["settings"]
    assert [r["setting"] for r in t["settings"]] == ["default", "broken", "reward=true"]
    assert default["n"] == 2 and broken["n"] == 0 and broken["failed"] == [0, 1]
    assert default["ratio_to_true"]["seeds"] == [0, 1] and true["ratio_to_true"] is None
    returns = [default["returns"][s] for s in ("0", "1")]
    assert default["mean"] == pytest.approx(sum(returns) / 2)
    md = (d / "table.md").read_text()
    assert "| broken | 0/2 | - |" in md and "| default | 2/2 |" in md
    assert "| broken | `--teacher=nope` | failed | failed | - |" in md
    assert (d / "curves.png").stat().st_size > 0
    summary = (tmp_path / "summary.md").read_text()
    assert "| gridworld | default | 2 |" in summary and "| gridworld | reward=true | 2 |" in summary
    # a second call reads the finished runs instead of repeating them
    stamp = (d / "runs" / "default-s0" / "summary.json").stat().st_mtime_ns
    mujoco.main(argv)
    out = capsys.readouterr().out
    assert "gridworld default seed 0: read, finished earlier" in out and "starting" in out
    assert "default seed 0: starting" not in out
    assert (d / "runs" / "default-s0" / "summary.json").stat().st_mtime_ns == stamp
    again = json.loads((d / "table.json").read_text())["settings"][0]
    assert again["returns"] == default["returns"]


def test_backflip_counts_turns_to_each_episodes_end_and_tiles_frames(tmp_path, monkeypatch):
    """experiments.backflip: backward turns from the torso angle at each episode's own last
    step (not the rollout's), and every ``every``-th video frame tiled in order."""
    import imageio.v2 as imageio
    import numpy as np
    from PIL import Image

    from experiments import backflip, health_probe

    t = np.arange(11)[:, None]  # the reset and 10 steps of 2 episodes
    angle = np.concatenate([-t * np.pi / 2, t * np.pi], 1)  # back a quarter turn a step; forward
    lengths = np.array([8, 4])
    monkeypatch.setattr(health_probe, "replay", lambda run_dir, pick: (
        None, None, (np.array([5.0, 1.0]), lengths, list(angle))))
    returns, turns, mean = backflip.turns("unused")
    np.testing.assert_allclose(turns, [2.0, -2.0])
    np.testing.assert_allclose(mean, [-np.pi * 4.5 / 2, np.pi * 2.5])  # steps 1..8, 1..4
    np.testing.assert_array_equal(returns, [5.0, 1.0])

    video = tmp_path / "policy.mp4"
    frames = [np.full((32, 32, 3), 25 * i, np.uint8) for i in range(10)]
    imageio.mimwrite(video, frames, fps=30, macro_block_size=1)
    backflip.frame_sheet(video, tmp_path / "sheet.png", every=3, columns=2, rows=2, tile=16)
    sheet = np.asarray(Image.open(tmp_path / "sheet.png").convert("L"), float)
    assert sheet.shape == (32, 32)
    tiles = [sheet[r * 16 + 4:r * 16 + 12, c * 16 + 4:c * 16 + 12].mean()
             for r in range(2) for c in range(2)]
    np.testing.assert_allclose(tiles, [0, 75, 150, 225], atol=8)  # frames 0, 3, 6, 9


@pytest.fixture(scope="module")
def learned_run(tmp_path_factory):
    """A short learned-reward gridworld run (one for the module)."""
    from rlhp import run

    src = tmp_path_factory.mktemp("runs") / "learned"
    run.main(["--env", "gridworld", "--steps", "2048", "--seed", "0", "--run-dir", str(src),
              "--no-video", "--wandb=disabled", "--checkpoint-every", "0"])
    return src


def restored(d):
    """``(config, state, meta)`` of run directory ``d``'s last checkpoint."""
    from experiments.run_dirs import restore_run

    cfg, _, state, meta = restore_run(d)
    return cfg, state, meta


def test_reward_switch_carries_the_policy_over_to_a_teacher_run(learned_run, tmp_path):
    import jax

    from experiments import reward_switch

    src, new = learned_run, tmp_path / "teacher"
    with pytest.raises(SystemExit, match="no action std"):
        reward_switch.main([str(src), str(tmp_path / "std"), "--reset-std"])
    reward_switch.main([str(src), str(new)])
    with pytest.raises(SystemExit, match="exists"):
        reward_switch.main([str(src), str(new)])

    cfg_src, old, meta_src = restored(src)
    cfg_new, state, meta = restored(new)
    assert cfg_new.reward == "teacher" and cfg_new.replace(reward="learned") == cfg_src
    assert state.pref is None and old.pref is not None and meta == meta_src
    same = jax.tree.map(lambda a, b: bool((a == b).all()), state.agent, old.agent)
    assert all(jax.tree.leaves(same))
    rows = [json.loads(line) for line in (new / "metrics.jsonl").read_text().splitlines()]
    assert rows and rows[-1]["iteration"] == meta["iteration"]


def test_frozen_reward_hands_a_fresh_policy_the_whole_reward_model(learned_run, tmp_path):
    import jax

    from experiments import frozen_reward
    from rlhp import run

    new = tmp_path / "frozen"
    with pytest.raises(SystemExit, match="--set"):
        frozen_reward.main([str(learned_run), str(tmp_path / "bad"), "--set", "gamma=2.0"])
    frozen_reward.main([str(learned_run), str(new), "--seed", "5", "--set", "gamma=0.9"])
    cfg_src, src, _ = restored(learned_run)
    cfg, state, meta = restored(new)
    assert cfg == cfg_src.replace(offline=True, seed=5, gamma=0.9) and meta["iteration"] == 0
    same = jax.tree.map(lambda a, b: bool((a == b).all()), state.pref, src.pref)
    assert all(jax.tree.leaves(same))                      # r-hat whole, statistics included
    moved = jax.tree.map(lambda a, b: bool((a != b).any()), state.agent.params,
                         src.agent.params)
    assert all(jax.tree.leaves(moved))                     # a fresh policy
    assert int(state.iteration) == 0
    # and it trains on that r-hat, which never changes
    assert run.main(["--run-dir", str(new), "--resume", "--no-video", "--wandb=disabled"]) == 0
    _, after, _ = restored(new)
    same = jax.tree.map(lambda a, b: bool((a == b).all()), after.pref.params, src.pref.params)
    assert all(jax.tree.leaves(same)) and int(after.iteration) > 0


def test_reward_map_bins_and_co_occurrence():
    from experiments.reward_map import binned, co_occurrence

    teacher = np.array([-10.0, -10.0, 1.0, 2.0, 3.0])
    r_hat = np.array([-1.0, -3.0, 0.5, 0.1, 0.2])
    rows = binned(teacher, r_hat, [-5.0, 1.5, 2.5])
    assert [r[:2] for r in rows] == [("[-inf, -5)", 2), ("[-5, 1.5)", 1), ("[1.5, 2.5)", 1),
                                     ("[2.5, inf)", 1)]
    np.testing.assert_allclose([r[3] for r in rows], [-2.0, 0.5, 0.1, 0.2])
    np.testing.assert_allclose(rows[0][4], 1.0)
    # two envs, windows of 3 (the last, partial one dropped): env 0 moves then falls in its
    # first window and only moves in its second; env 1 falls without moving, then idles
    series = np.array([[2.0, 1.0], [-10.0, -10.0], [1.0, 1.0],
                       [2.0, 1.0], [1.0, 1.0], [1.0, 1.0], [2.0, 2.0]])
    assert co_occurrence(series, 3, moving=1.5, fallen=-5.0) == (2, 1)
