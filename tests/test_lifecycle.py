"""Run lifecycle through the real CLI: determinism, kill -9 and resume, outputs, faults."""
import dataclasses
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
import jax
import jax.numpy as jnp
import pytest

from rlhp import run, train
from rlhp.presets import preset
from rlhp.envs import make_env

TINY = ["--env=gridworld", "--steps=20480", "--set", "iterations_per_chunk=2", "--seed=1"]
# Where the kill test kills the run: as soon as the checkpoint of this iteration is on disk
# (one is saved every 2-iteration chunk). A seeded draw over the run's span, iterations 2
# to 16 of 20, so a failure reruns at the same point.
KILL_AFTER = random.Random(20240611).randrange(2, 18, 2)
WALL = {"wall_seconds", "compile_seconds", "train_seconds", "env_steps_per_second",
        "labels_per_second", "resumed"}


def cli(args, cache, program=None, **kw):
    """``python -m rlhp.run ARGS`` (or ``python -c PROGRAM ARGS``) sharing ``cache``."""
    env = {**os.environ, "JAX_COMPILATION_CACHE_DIR": str(cache)}
    head = ["-c", program] if program else ["-m", "rlhp.run"]
    return subprocess.Popen([sys.executable, *head, *args], env=env,
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


def policy_params(state):
    """The policy's parameters (the one place these tests reach into the policy's state)."""
    return state.agent.params


def poison_policy(state):
    return state.replace(agent=state.agent.replace(
        params=jax.tree.map(lambda x: x * jnp.nan, policy_params(state))))


def poison_reward_model(state):
    return state.replace(pref=state.pref.replace(
        params=jax.tree.map(lambda x: x * jnp.nan, state.pref.params)))


def finite_parts(state) -> dict:
    return {k: bool(v) for k, v in jax.device_get(train.nonfinite_parts(state)).items()}


def wrap_chunk(monkeypatch, change):
    """Make ``rlhp.train.make_train`` hand the CLI a chunk that calls the real one and then
    ``change(call_number, state_in, state_out) -> state_out``."""
    real = train.make_train

    def wrapped(cfg, env):
        trainer = real(cfg, env)
        calls = []

        def chunk(state, dyn):
            calls.append(1)
            out, metrics = trainer.chunk(state, dyn)
            return change(len(calls), state, out), metrics
        chunk.lower = lambda *a: type("Compiled", (), {"compile": lambda self: chunk})()
        return dataclasses.replace(trainer, chunk=chunk)

    monkeypatch.setattr(train, "make_train", wrapped)


def restore(run_dir: Path, cfg, iteration=None):
    """``(state, meta)`` of the checkpoint at ``iteration`` (default: the latest) of the run
    of ``cfg`` in ``run_dir``."""
    from rlhp.outputs.checkpoint import Checkpointer
    saved = json.loads((run_dir / "config.json").read_text())
    assert saved == json.loads(json.dumps(cfg.to_dict())), "not the run of this config"
    trainer = train.make_train(cfg, make_env(cfg.env, cfg.backend, cfg.num_envs))
    abstract = jax.eval_shape(trainer.init, jax.random.PRNGKey(cfg.seed), cfg.dynamic())
    ckpt = Checkpointer(run_dir)
    try:
        return ckpt.restore(abstract, iteration)
    finally:
        ckpt.close()


TINY_CONFIG = preset("gridworld", total_steps=20480, iterations_per_chunk=2, seed=1)


# The CLI in a subprocess whose reward model turns NaN after its second chunk (TINY's
# iterations 3-4); in a subprocess so it reuses the reference run's compilation cache.
POISONED_CLI = """
import dataclasses, sys
import jax, jax.numpy as jnp
from rlhp import run, train
real = train.make_train
def make_train(cfg, env):
    trainer = real(cfg, env)
    calls = []
    def chunk(state, dyn):
        calls.append(1)
        state, metrics = trainer.chunk(state, dyn)
        if len(calls) == 2:
            state = state.replace(pref=state.pref.replace(
                params=jax.tree.map(lambda x: x * jnp.nan, state.pref.params)))
        return state, metrics
    chunk.lower = lambda *a: type("Compiled", (), {"compile": lambda self: chunk})()
    return dataclasses.replace(trainer, chunk=chunk)
train.make_train = make_train
sys.exit(run.main(sys.argv[1:]))
"""


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


# Slow (a full compile from an empty cache, ~60 s here): the kill -9 test below already checks
# that another process given the same seed reproduces the reference run's figures.
@pytest.mark.slow
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
    while not (d / "checkpoints" / str(KILL_AFTER)).is_dir():
        assert proc.poll() is None and time.time() < deadline, \
            f"run ended before its checkpoint {KILL_AFTER}"
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (d / "summary.json").exists(), "killed too late to test anything"
    saved = [int(p.name) for p in (d / "checkpoints").iterdir() if p.name.isdigit()]
    assert KILL_AFTER <= max(saved) < 20, (KILL_AFTER, saved)
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


def error_lines(stderr: str) -> list[str]:
    """The error lines of a run's stderr, checked to be its last: without a terminal the
    run's status lines come first (a run stopped by a NaN has trained for a while)."""
    lines = stderr.strip().splitlines()
    errors = [line for line in lines if line.startswith("error:")]
    assert errors and lines[-len(errors):] == errors, lines
    return errors


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
    wrap_chunk(monkeypatch, lambda call, _, state: poison_policy(state) if call == 2 else state)
    d = tmp_path / "nan"
    code = run.main(["--env=gridworld", "--reward=true", "--steps=20480", "--wandb=disabled",
                     "--no-video", "--checkpoint-every=1000", f"--run-dir={d}"])
    err = error_lines(capsys.readouterr().err)
    assert code == 3 and len(err) == 1, err
    assert "non-finite policy parameters after iterations 11-20" in err[0]
    assert "last good checkpoint is iteration 10" in err[0]
    assert (d / "checkpoints" / "10").is_dir()
    assert not (d / "summary.json").exists()


def test_nonfinite_reward_model_stops_the_run_at_the_last_good_checkpoint(reference, tmp_path):
    """The CLI whose reward model turns NaN in its second chunk exits 3 with one line
    naming the reward model alone; the checkpoint it names is finite, and is the good state
    itself: resuming from it finishes the uninterrupted run."""
    d = tmp_path / "nan"
    proc = cli(TINY + [f"--run-dir={d}", "--wandb=disabled", "--no-video",
                       "--checkpoint-every=1000"], reference / "cache", POISONED_CLI)
    _, err = proc.communicate(timeout=600)
    lines = error_lines(err)
    assert proc.returncode == 3 and len(lines) == 1, err[-2000:]
    assert "non-finite reward model parameters after iterations 3-4" in lines[0]
    assert "policy" not in lines[0]
    assert "last good checkpoint is iteration 2" in lines[0]
    assert not (d / "summary.json").exists()
    state, meta = restore(d, TINY_CONFIG, 2)
    assert meta["iteration"] == 2
    # nonfinite_parts flags exactly the broken part
    assert finite_parts(state) == {"policy": True, "reward model": True}
    assert finite_parts(poison_reward_model(state)) == {"policy": True, "reward model": False}
    assert finite_parts(poison_policy(state)) == {"policy": False, "reward model": True}
    finish(cli([f"--run-dir={d}", "--resume", "--wandb=disabled", "--no-video"],
               reference / "cache"))
    assert figures(d) == figures(reference / "ref")
    assert metric_rows(d) == metric_rows(reference / "ref")


def test_reward_model_diverging_in_pretraining_leaves_no_bad_checkpoint(reference, tmp_path):
    """A reward learning rate of 1e30 makes the reward model non-finite while it is fit to
    the up-front labels: the run exits 3 naming the reward model and when, and saves no
    checkpoint of that state (every checkpoint it leaves is finite)."""
    d = tmp_path / "lr"
    proc = cli(TINY + [f"--run-dir={d}", "--wandb=disabled", "--no-video",
                       "--checkpoint-every=1000", "--set", "reward_lr=1e30"], reference / "cache")
    _, err = proc.communicate(timeout=600)
    lines = error_lines(err)
    assert proc.returncode == 3 and len(lines) == 1, err[-2000:]
    assert "reward model" in lines[0] and "reward pretraining, before any checkpoint" in lines[0]
    ckpts = d / "checkpoints"
    saved = sorted(int(p.name) for p in ckpts.iterdir() if p.name.isdigit()) if ckpts.exists() else []
    for iteration in saved:
        state, _ = restore(d, TINY_CONFIG.replace(reward_lr=1e30), iteration)
        assert finite_parts(state) == {"policy": True, "reward model": True}, iteration


class RecordingPool:
    """An envpool pool that logs its calls: ``"reset"`` (all envs), ``"reset some"``,
    ``"step"``, and keeps the observations of full resets."""

    def __init__(self, pool, log: list, reset_obs: list):
        self._pool, self._log, self._reset_obs = pool, log, reset_obs

    def __getattr__(self, name):
        return getattr(self._pool, name)

    def reset(self, *args, **kw):
        out = self._pool.reset(*args, **kw)
        self._log.append("reset some" if args or kw else "reset")
        if not (args or kw):
            self._reset_obs.append(out[0].astype("float32"))
        return out

    def step(self, *args, **kw):
        self._log.append("step")
        return self._pool.step(*args, **kw)


def episode_carry(state):
    """What a resumed run must start afresh: the current observation and the running
    episode return and length (the one place this test reads them)."""
    return state.obs, state.ep_return, state.ep_length


def test_envpool_run_resumes_with_fresh_episodes(tmp_path, monkeypatch):
    """envpool's pool cannot be saved: a resumed run restarts every episode before its
    first step (the new pool is reset, and training continues from that reset's
    observations with zero running returns and lengths) and finishes."""
    import envpool
    import numpy as np

    d = tmp_path / "hop"
    opts = ["--wandb=disabled", "--no-video", f"--run-dir={d}"]
    assert run.main(["--env=hopper", "--reward=true", "--steps=2048", "--num-envs=4",
                     "--set", "rollout_length=64", "--set", "num_minibatches=4",
                     "--set", "update_epochs=1", "--set", "eval_episodes=2",
                     "--checkpoint-every=0", *opts]) == 0
    shutil.rmtree(d / "checkpoints" / "8")  # as if killed before the last save
    assert sorted(int(p.name) for p in (d / "checkpoints").iterdir()) == [7]
    cfg = preset("hopper", reward="true", total_steps=2048, num_envs=4, rollout_length=64,
                 num_minibatches=4, update_epochs=1, eval_episodes=2)
    restored, _ = restore(d, cfg)
    assert float(jnp.abs(episode_carry(restored)[1]).max()) > 0  # mid-episode when saved

    pools, reset_obs, first = [], [], []
    real_make = envpool.make

    def make(*args, **kw):
        pools.append([])
        reset_obs.append([])
        return RecordingPool(real_make(*args, **kw), pools[-1], reset_obs[-1])

    monkeypatch.setattr(envpool, "make", make)
    wrap_chunk(monkeypatch, lambda call, state, out: first.append(state) or out if call == 1
               else out)
    assert run.main(["--resume", *opts]) == 0
    summary = json.loads((d / "summary.json").read_text())
    assert summary["resumed"] is True and summary["backend"] == "envpool"
    assert [r["iteration"] for r in metric_rows(d)] == list(range(1, 9))
    # the training pool (the first made; the second evaluates) is reset before any step
    train_log = pools[0]
    assert train_log[:1] == ["reset"] and train_log.count("reset") == 1, train_log[:3]
    assert train_log.count("step") == 64
    obs, ep_return, ep_length = (np.asarray(x) for x in episode_carry(first[0]))
    np.testing.assert_array_equal(obs, reset_obs[0][0])
    np.testing.assert_array_equal(ep_return, 0.0)
    np.testing.assert_array_equal(ep_length, 0)
