import json
import subprocess
import sys

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
    assert len(rows) == 10240 // (64 * 16)
    assert rows[-1]["env_steps"] == 10240
    # 10 iterations of PPO already beat the uniform random policy's return (about 0.7)
    assert summary["true_return_mean"] > 4


def test_steps_not_a_multiple_of_the_chunk_run_in_full(tmp_path):
    """gridworld logs every 10 iterations; 15 iterations must still all run and log."""
    out = tmp_path / "run"
    assert run.main(["--env=gridworld", "--reward=true", "--steps=15360",
                     "--wandb=disabled", "--no-video", f"--run-dir={out}"]) == 0
    rows = (out / "metrics.jsonl").read_text().splitlines()
    assert len(rows) == 15 and json.loads(rows[-1])["env_steps"] == 15360
    assert json.loads((out / "summary.json").read_text())["steps"] == 15360


def test_tiny_learned_run_reports_labels(tmp_path):
    """A learned run whose first 3 of 10 iterations explore: the labels (all asked after
    exploration) still come to exactly the budget, and the log starts after exploration."""
    out = tmp_path / "run"
    assert run.main(["--env=gridworld", "--steps=10240", "--labels=30", "--teacher=mistake",
                     "--query=entropy", "--set", "explore_steps=3072", "--wandb=disabled",
                     "--no-video", f"--run-dir={out}"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["reward"] == "learned" and summary["labels"] == 30
    assert summary["steps"] == 10240
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["iteration"] for r in rows] == list(range(4, 11))
    assert rows[0]["labels"] < 30 and rows[-1]["labels"] == 30
    assert summary["teacher"] == "mistake" and summary["query"] == "entropy"
    assert 0 <= summary["reward_val_accuracy"] <= 1
    assert -1 <= summary["reward_true_corr"] <= 1
    assert -1 <= summary["reward_match"] <= 1


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
