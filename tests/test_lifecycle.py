"""Run lifecycle through the real CLI: determinism, kill -9 and resume, outputs, faults."""
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import imageio.v2 as imageio
import pytest

from rlhp import run

TINY = ["--env=gridworld", "--steps=20480", "--set", "iterations_per_chunk=2", "--seed=1"]
WALL = {"wall_seconds", "compile_seconds", "train_seconds", "env_steps_per_second",
        "labels_per_second", "resumed"}


def cli(args, cache, **kw):
    env = {**os.environ, "JAX_COMPILATION_CACHE_DIR": str(cache)}
    return subprocess.Popen([sys.executable, "-m", "rlhp.run", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def finish(proc, timeout=600):
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err[-2000:]
    return out


def figures(run_dir: Path) -> dict:
    summary = json.loads((run_dir / "summary.json").read_text())
    return {k: v for k, v in summary.items() if k not in WALL}


def metric_rows(run_dir: Path) -> list[dict]:
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    for r in rows:
        r.pop("wall_seconds")
    return rows


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """One uninterrupted tiny run with every output on (wandb offline, video)."""
    root = tmp_path_factory.mktemp("lifecycle")
    finish(cli(TINY + [f"--run-dir={root / 'ref'}"], root / "cache"))
    return root


def test_run_directory_holds_every_output(reference):
    d = reference / "ref"
    for name in ("config.json", "summary.json", "metrics.jsonl", "curves.png",
                 "reward_scatter.png", "reward_map.png", "policy.mp4"):
        assert (d / name).stat().st_size > 0, name
    assert len(imageio.mimread(d / "policy.mp4")) >= 12
    offline = list((d / "wandb").glob("offline-run-*/run-*.wandb"))
    assert len(offline) == 1 and offline[0].stat().st_size > 0
    rows = metric_rows(d)
    assert [r["iteration"] for r in rows] == list(range(1, 21))
    assert sorted(p.name for p in (d / "checkpoints").iterdir()) != []
    assert (d / "checkpoints" / "20").is_dir()  # the final state is always saved


def test_same_seed_same_summary(reference, tmp_path):
    """A second run compiled from scratch (own empty cache) gives identical figures."""
    finish(cli(TINY + [f"--run-dir={tmp_path / 'again'}", "--wandb=disabled", "--no-video"],
               tmp_path / "cache"))
    assert figures(tmp_path / "again") == figures(reference / "ref")
    assert metric_rows(tmp_path / "again") == metric_rows(reference / "ref")


def test_kill_9_then_resume_matches_uninterrupted(reference, tmp_path):
    d = tmp_path / "killed"
    args = TINY + [f"--run-dir={d}", "--wandb=disabled", "--no-video", "--checkpoint-every=0"]
    proc = cli(args, reference / "cache")
    deadline = time.time() + 300
    while not any(p.name.isdigit() and p.name != "0" for p in (d / "checkpoints").glob("*")):
        assert proc.poll() is None and time.time() < deadline, "run ended before a checkpoint"
        time.sleep(0.05)
    time.sleep(random.uniform(0.0, 1.0))  # somewhere in the middle of training
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (d / "summary.json").exists(), "killed too late to test anything"
    finish(cli([f"--run-dir={d}", "--resume", "--wandb=disabled", "--no-video"],
               reference / "cache"))
    assert json.loads((d / "summary.json").read_text())["resumed"] is True
    assert figures(d) == figures(reference / "ref")
    assert metric_rows(d) == metric_rows(reference / "ref")


def snapshot(d: Path) -> dict:
    return {p: (p.stat().st_size, p.stat().st_mtime_ns) for p in d.rglob("*")}


def copy_run(reference, tmp_path) -> Path:
    d = tmp_path / "copy"
    shutil.copytree(reference / "ref", d, symlinks=True)
    return d


def resume_fails(d: Path, message: str, capsys, extra=()):
    before = snapshot(d) if d.exists() else None
    assert run.main([f"--run-dir={d}", "--resume", "--wandb=disabled", *extra]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
    assert (snapshot(d) if d.exists() else None) == before


def test_resume_without_a_run_exits_2(tmp_path, capsys):
    resume_fails(tmp_path / "nothing", "no run to continue", capsys)


def test_resume_with_conflicting_flags_exits_2(reference, tmp_path, capsys):
    resume_fails(copy_run(reference, tmp_path), "conflicting flags: total_steps", capsys,
                 ["--steps=40960"])


def test_resume_with_corrupt_config_exits_2(reference, tmp_path, capsys):
    d = copy_run(reference, tmp_path)
    (d / "config.json").write_text("{not json")
    resume_fails(d, "config.json is corrupt", capsys)


def test_resume_with_corrupt_checkpoint_exits_2(reference, tmp_path, capsys):
    d = copy_run(reference, tmp_path)
    for f in (d / "checkpoints" / "20" / "state").rglob("*"):
        if f.is_file():
            f.write_bytes(b"garbage")
    resume_fails(d, "is corrupt or incompatible", capsys)


def test_nonfinite_parameters_stop_the_run_after_saving(tmp_path, capsys, monkeypatch):
    """A NaN appearing in the second chunk stops the run with exit 3, naming the part and
    the iterations, and the state before it is saved as a checkpoint."""
    import dataclasses

    import jax
    import jax.numpy as jnp

    from rlhp import train

    real = train.make_train

    def poisoned(cfg, env):
        trainer = real(cfg, env)
        calls = []

        def chunk(state, dyn):
            calls.append(1)
            state, metrics = trainer.chunk(state, dyn)
            if len(calls) == 2:
                state = state.replace(agent=state.agent.replace(
                    params=jax.tree.map(lambda x: x * jnp.nan, state.agent.params)))
            return state, metrics
        chunk.lower = lambda *a: type("Compiled", (), {"compile": lambda self: chunk})()
        return dataclasses.replace(trainer, chunk=chunk)

    monkeypatch.setattr(train, "make_train", poisoned)
    d = tmp_path / "nan"
    code = run.main(["--env=gridworld", "--reward=true", "--steps=20480", "--wandb=disabled",
                     "--no-video", "--checkpoint-every=1000", f"--run-dir={d}"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 3 and len(err) == 1, err
    assert "non-finite policy parameters after iterations 11-20" in err[0]
    assert "last good checkpoint is iteration 10" in err[0]
    assert (d / "checkpoints" / "10").is_dir()
    assert not (d / "summary.json").exists()


def test_envpool_run_resumes_with_fresh_episodes(tmp_path):
    """envpool's pool cannot be saved: a resumed run restarts its episodes and finishes."""
    d = tmp_path / "hop"
    opts = ["--wandb=disabled", "--no-video", f"--run-dir={d}"]
    assert run.main(["--env=hopper", "--reward=true", "--steps=2048", "--num-envs=4",
                     "--set", "rollout_length=64", "--set", "num_minibatches=4",
                     "--set", "update_epochs=1", "--set", "eval_episodes=2",
                     "--checkpoint-every=0", *opts]) == 0
    shutil.rmtree(d / "checkpoints" / "8")  # as if killed before the last save
    assert sorted(int(p.name) for p in (d / "checkpoints").iterdir()) == [7]
    assert run.main(["--resume", *opts]) == 0
    summary = json.loads((d / "summary.json").read_text())
    assert summary["resumed"] is True and summary["backend"] == "envpool"
    assert [r["iteration"] for r in metric_rows(d)] == list(range(1, 9))
