"""Full training-loop throughput against the raw env ceiling, per task.

For each task at its default (preference-learning) config: the raw env steps/s of the same
backend and number of envs under random actions (a jitted scan of ``env.step``), the full
``train_step``'s env steps/s, their ratio (both measured in this run), the compile time of
the training program and the process's peak memory. Each task runs in its own process so
peak memory is its own. On Atari (pong) an env step is 4 frames (frame skip 4), and the
reward model's pretraining is cut to one update (it is not part of the loop measured).

    python -m benchmarks.throughput --json throughput.json
"""
from __future__ import annotations

import json
import subprocess
import sys

import jax

from benchmarks import common

TASKS = ("hopper", "halfcheetah", "gridworld", "pong")
COLUMNS = ["env", "backend", "num_envs", "raw_steps_per_second", "train_steps_per_second",
           "ratio", "compile_seconds", "peak_rss_mb"]


def random_rollout(env, steps: int):
    """A jitted function running ``steps`` random-action steps of ``env``."""
    spec = env.spec

    def body(state, key):
        if spec.discrete:
            a = jax.random.randint(key, (spec.num_envs,), 0, spec.num_actions)
        else:
            a = jax.random.uniform(key, (spec.num_envs, *spec.action_shape), minval=-1, maxval=1)
        state, step = env.step(state, a)
        return state, step.reward.sum()

    def run(state, key):
        return jax.lax.scan(body, state, jax.random.split(key, steps))

    return jax.jit(run)


def measure(task: str, repeats: int, tiny: bool) -> dict:
    from rlhp.presets import preset
    from rlhp.envs import make_env
    from rlhp.train import make_train

    overrides = dict(total_steps=10**9)
    if preset(task).agent == "a2c":  # Atari: its rollout is one 25-step clip
        overrides.update(pretrain_updates=1)
    if tiny:
        overrides.update(num_envs=4, rollout_length=64, num_minibatches=4, update_epochs=1,
                         pretrain_updates=1, prefill_iterations=1, segment_capacity=32)
        if preset(task).agent == "a2c":
            overrides.update(rollout_length=25)
    cfg = preset(task, **overrides)
    # Atari: one iteration (400 steps, 1,600 frames) a chunk: its CNN updates are slow here
    chunk_iters = 1 if tiny or cfg.agent == "a2c" else max(1, 8192 // cfg.batch_size)
    cfg = cfg.replace(iterations_per_chunk=chunk_iters,
                      total_steps=10_000 * chunk_iters * cfg.batch_size)
    assert cfg.chunk_iterations == chunk_iters
    env = make_env(cfg.env, cfg.backend, cfg.num_envs, seed=0, preference_episodes=True)
    trainer = make_train(cfg, env)
    dyn = cfg.dynamic()
    key = jax.random.PRNGKey(0)

    init, init_s = common.timed_compile(jax.jit(trainer.init), key, dyn)
    state = init(key, dyn)
    chunk, chunk_s = common.timed_compile(trainer.chunk, state, dyn)
    train_sec = common.median_seconds_threaded(lambda s: chunk(s, dyn), state, repeats)
    train_sps = chunk_iters * cfg.batch_size / train_sec

    steps = chunk_iters * cfg.rollout_length
    raw = random_rollout(env, steps)
    env_state = jax.jit(env.reset)(key)
    raw_sec = common.median_seconds_threaded(lambda s: raw(s, key), env_state, repeats)
    raw_sps = steps * cfg.num_envs / raw_sec
    return {"env": task, "backend": env.spec.backend, "num_envs": cfg.num_envs,
            "reward": cfg.reward, "raw_steps_per_second": raw_sps,
            "train_steps_per_second": train_sps, "ratio": train_sps / raw_sps,
            "compile_seconds": init_s + chunk_s, "peak_rss_mb": common.peak_rss_mb()}


def main(argv=None):
    p = common.parser(__doc__.splitlines()[0])
    p.add_argument("--tasks", default=",".join(TASKS))
    p.add_argument("--one", default=None, help=argparse_hidden())
    args = p.parse_args(argv)
    if args.one:
        print(json.dumps(measure(args.one, args.repeats, args.tiny)))
        return
    results = []
    for task in args.tasks.split(","):
        cmd = [sys.executable, "-m", "benchmarks.throughput", "--one", task,
               "--repeats", str(args.repeats)] + (["--tiny"] if args.tiny else [])
        out = subprocess.run(cmd, capture_output=True, text=True, check=True)
        results.append(json.loads(out.stdout.strip().splitlines()[-1]))
    return common.report(results, COLUMNS, args.json)


def argparse_hidden():
    import argparse
    return argparse.SUPPRESS


if __name__ == "__main__":
    main()
