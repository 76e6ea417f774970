import json
import math
import subprocess
import sys

import pytest

from rlhp import run


def test_existing_run_dir_is_left_untouched(capsys, tmp_path):
    (tmp_path / "summary.json").write_text("keep me")
    assert run.main(["--env=gridworld", f"--run-dir={tmp_path}"]) == 2
    assert "already exists; pick another --run-dir or add --resume" in capsys.readouterr().err
    assert (tmp_path / "summary.json").read_text() == "keep me"


def test_module_exit_status_is_2():
    proc = subprocess.run([sys.executable, "-m", "rlhp.run", "--env=nope"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [proc.stderr.strip()]


def best_constant_policy(seed: int) -> tuple[float, float]:
    """What a policy that always takes one action scores on gridworld, the best such
    action taken: ``(evaluation return, policy_optimal)``. The return comes from
    ``rlhp.train.evaluate`` on the run's own evaluation episodes (16 envs, key seed + 1, as
    ``rlhp.run`` evaluates). Seed 3: always-up is best, 4.03 (stay 2.44, right 3.16, down
    -0.92, left -1.88); up is also optimal in the most cells (it ties in many), 12 of 25."""
    import types

    import jax
    import jax.numpy as jnp
    import numpy as np

    from rlhp.envs import gridworld, make_env
    from rlhp.train import evaluate

    env = make_env("gridworld", "auto", 16, seed=seed + 10_000)

    def score(action):
        policy = types.SimpleNamespace(
            act=lambda state, obs: jnp.full(obs.shape[:1], action, jnp.int32))
        return evaluate(policy, env, None, jax.random.PRNGKey(seed + 1))[0].mean()

    returns = jax.jit(jax.vmap(score))(jnp.arange(gridworld.NUM_ACTIONS))
    optimal = np.asarray(gridworld.optimal_actions(gridworld.true_reward_map()))
    return float(returns.max()), float(optimal.mean(0).max())


def test_tiny_gridworld_run_writes_results(tmp_path, capsys):
    out = tmp_path / "run"
    assert run.main(["--env=gridworld", "--reward=true", "--steps=10240", "--seed=3",
                     "--wandb=disabled", "--no-video", f"--run-dir={out}"]) == 0
    assert str(out) in capsys.readouterr().out
    summary = json.loads((out / "summary.json").read_text())
    for key in ["env", "backend", "seed", "steps", "labels", "teacher", "query", "reward",
                "true_return_mean", "true_return_std", "eval_episodes", "wall_seconds",
                "compile_seconds", "env_steps_per_second", "reward_val_accuracy",
                "reward_true_corr", "reward_match", "optimal_policy", "policy_optimal"]:
        assert key in summary, key
    assert summary["env"] == "gridworld" and summary["seed"] == 3
    assert summary["steps"] == 10240 and summary["eval_episodes"] == 16
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    batch = 64 * 16
    assert [r["iteration"] for r in rows] == list(range(1, 11))
    assert [r["env_steps"] for r in rows] == [batch * i for i in range(1, 11)]
    # Every env starts an episode at step 1; an episode is 12 steps and one reset step, so
    # episodes end at env step 12 + 13 k: in iteration i (steps 16 (i - 1) + 1 .. 16 i) all
    # 64 envs end 1 or 2 episodes, 12 each over the run. Counting reset steps, or unfinished
    # episodes, or missing the last step of one, breaks these numbers.
    ends = [12 + 13 * k for k in range(20)]
    want = [64 * sum(16 * (i - 1) < e <= 16 * i for e in ends) for i in range(1, 11)]
    assert [r["episodes"] for r in rows] == want and sum(want) == 64 * 12
    # a finished episode is 12 rewards of cells worth -1.5 .. 1
    assert all(-18 <= r["true_return"] <= 12 for r in rows), rows
    # the policy starts near uniform (entropy log 5) and sharpens; KL estimates are >= 0
    assert rows[0]["entropy"] == pytest.approx(math.log(5), abs=0.02)
    assert rows[-1]["entropy"] < rows[0]["entropy"] - 0.5
    assert all(r["approx_kl"] >= 0 for r in rows)
    # 10 iterations of PPO: the training return climbs from the near-uniform policy's, and
    # the greedy policy beats the best policy that always takes one action by a margin
    # (measured: 9.45 and optimal in 24 of 25 cells, against 4.03 and 12 of 25)
    assert rows[-1]["true_return"] > rows[0]["true_return"] + 5
    const_return, const_optimal = best_constant_policy(3)
    assert summary["true_return_mean"] > const_return + 3, (summary, const_return)
    assert summary["policy_optimal"] > const_optimal + 0.3, (summary, const_optimal)
    assert summary["optimal_policy"] == 1.0 and summary["reward_match"] == pytest.approx(1.0)


def test_steps_not_a_multiple_of_the_chunk_run_in_full(tmp_path):
    """gridworld logs every 10 iterations; 15 iterations must still all run and log."""
    out = tmp_path / "run"
    assert run.main(["--env=gridworld", "--reward=true", "--steps=15360",
                     "--wandb=disabled", "--no-video", f"--run-dir={out}"]) == 0
    rows = (out / "metrics.jsonl").read_text().splitlines()
    assert len(rows) == 15 and json.loads(rows[-1])["env_steps"] == 15360
    assert json.loads((out / "summary.json").read_text())["steps"] == 15360


def test_tiny_learned_run_reports_labels(tmp_path, capsys, monkeypatch):
    """A learned run whose first 3 of 10 iterations explore: the labels (all asked after
    exploration) still come to exactly the budget, and the log starts after exploration."""
    from rlhp.preferences import fresh
    # the alarm's plumbing (warning, progress line, summary) on a run this short: with no
    # confidence margin (Z = 0) the alarm fires where the share itself falls (the margin
    # is tested in test_queries)
    monkeypatch.setattr(fresh, "Z", 0.0)
    out = tmp_path / "run"
    assert run.main(["--env=gridworld", "--steps=10240", "--labels=30", "--teacher=mistake",
                     "--query=kcenter", "--audit-labels=4", "--set", "explore_steps=3072",
                     "--set", "fresh_alarm=0.56", "--wandb=disabled",
                     "--no-video", f"--run-dir={out}"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["reward"] == "learned" and summary["labels"] == 30
    assert summary["steps"] == 10240
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["iteration"] for r in rows] == list(range(4, 11))
    assert rows[0]["labels"] < 30 and rows[-1]["labels"] == 30
    assert summary["teacher"] == "mistake" and summary["query"] == "kcenter"
    # fresh pairs (queries and 4 audits per iteration) judged in every iteration; the
    # mistake teacher flips 10% of answers and r-hat learns from few labels, so the running
    # accuracy wobbles about 0.56 here (measured: 0.43, 0.57, 0.56, 0.59, ...): the alarm
    # fires, once, where it first falls back below 0.56 after reaching it
    fresh = [r["reward_fresh_labels"] for r in rows]
    assert sum(fresh) == summary["reward_fresh_labels"] > 0 and max(fresh) <= 4 + 30
    windows = [r["reward_fresh_accuracy_window"] for r in rows]
    assert summary["reward_fresh_accuracy"] == windows[-1] and 0 <= windows[-1] < 1
    at = summary["fresh_alarm_iteration"]
    assert at is not None, windows
    i = at - 4  # rows start at iteration 4
    assert windows[i] < 0.56 and max(w for w in windows[:i] if w is not None) >= 0.56
    assert not any(w is not None and w < 0.56 and max(filter(None, windows[:j]), default=0) >= 0.56
                   for j, w in enumerate(windows[:i]))  # no earlier fall
    assert summary["fresh_alarm_env_steps"] == 1024 * at
    err = capsys.readouterr().err.splitlines()
    warned = [line for line in err if "warning: r-hat disagrees" in line]
    assert len(warned) == 1 and f"at iteration {at}," in warned[0], warned
    # a status line says so too, but only while the window is below the threshold (which
    # iterations print a status line depends on the progress; tests/test_progress.py)
    tagged = [line for line in err if "(r-hat disagrees)" in line]
    assert all(float(line.split("| fresh ")[1].split()[0]) <= 0.56 for line in tagged), tagged
    labels = [r["labels"] for r in rows]
    assert labels == sorted(labels)
    # the mistake teacher answers every query (wrongly at times): each one is in the database
    assert [r["comparisons"] for r in rows] == labels
    assert [r["env_steps"] for r in rows] == [1024 * i for i in range(4, 11)]
    # r-hat from 30 labels (10% flipped) already tracks the true reward (measured: 0.61 on
    # the last rollout, 0.37 over cells, accuracy 0.58); a sign error would score below 0
    assert 0.5 <= summary["reward_val_accuracy"] <= 1
    assert 0.3 < summary["reward_true_corr"] <= 1
    assert 0 < summary["reward_match"] <= 1


def test_teacher_reward_trains_on_the_preference_episodes_without_a_reward_model(tmp_path):
    """--reward=teacher: PPO on the teacher's own reward, in the preference episodes and with
    the preference runs' RL settings; --reward=true keeps the standard task."""
    import jax
    import numpy as np

    def config(*argv):
        return run.build_config(run.parse_args([*argv, f"--run-dir={tmp_path / 'none'}"]))[0]

    cfg = config("--env=hopper", "--reward=teacher", "--num-envs=2", "--set", "fall_penalty=100.0")
    assert cfg.preference_episodes and cfg.gamma == 0.995
    true = config("--env=hopper", "--reward=true")
    assert not true.preference_episodes and true.gamma == 0.99
    trainer = run.prepare(cfg, tmp_path, resume=False)[0]
    assert trainer.learner is None
    env = trainer.env
    state = env.reset(jax.random.PRNGKey(0))
    step = jax.jit(env.step)
    rewards = []
    for _ in range(60):  # full torque one way: the hopper falls within a few dozen steps
        state, s = step(state, jax.numpy.ones((2, 3)))
        assert not np.asarray(s.terminated).any()
        rewards.append(np.asarray(s.reward))
    assert np.min(rewards) < -95  # the teacher's fall penalty, not the task's termination
