"""The default Hopper rollout and training loop against envpool's raw Hopper-v5 rate.

Raw: envpool's Hopper-v5 stepped from bare Python (``pool.step`` with random actions, 16
envs, the standard task), with 1 and 2 threads. Rollout: ``trainer.rollout`` (jitted) of
the default Hopper preference config, 16 envs x 128 steps. Full: the jitted training chunk's
env steps/s. Every figure is the median of ``--repeats`` rounds, each round timing every
variant once in turn (so a busy spell of a shared machine falls on all of them), with
ratios to both raw rates.

    python -m benchmarks.rollout --json rollout.json
"""
from __future__ import annotations

import statistics
import time

import jax
import numpy as np

from benchmarks import common

COLUMNS = ["what", "steps_per_second", "vs_raw_1_thread", "vs_raw_2_threads"]


def raw_pool(threads: int, num_envs: int, steps: int):
    """A function stepping a fresh standard Hopper-v5 pool ``steps`` times from Python."""
    import envpool

    from rlhp.envs.envpool_env import MUJOCO_IDS

    pool = envpool.make(MUJOCO_IDS["hopper"], env_type="gymnasium", num_envs=num_envs, seed=0,
                        num_threads=threads)
    pool.reset()
    actions = np.random.default_rng(0).uniform(-1, 1, (steps, num_envs,
                                                       *pool.action_space.shape))
    return lambda: [pool.step(a) for a in actions]


def trainer_call(cfg, chunk: bool):
    """A blocking call of the jitted rollout (or, with ``chunk``, the training chunk) on
    an env of its own, threading its training state from call to call."""
    from rlhp.envs import make_env
    from rlhp.train import make_train

    env = make_env(cfg.env, cfg.backend, cfg.num_envs, seed=0, preference_episodes=True)
    trainer = make_train(cfg, env)
    dyn = cfg.dynamic()
    held = [jax.jit(trainer.init)(jax.random.PRNGKey(0), dyn)]
    step = (lambda s: trainer.chunk(s, dyn)) if chunk else jax.jit(trainer.rollout)

    def call():
        held[0], out = step(held[0])
        jax.block_until_ready(out)

    return call


def measure(repeats: int, tiny: bool) -> list[dict]:
    from rlhp.presets import preset

    overrides = dict(total_steps=10**9, iterations_per_chunk=1)
    if tiny:
        overrides.update(num_envs=4, rollout_length=64, num_minibatches=4, update_epochs=1,
                         pretrain_updates=1, prefill_iterations=1, segment_capacity=32)
    cfg = preset("hopper", **overrides)
    steps = cfg.rollout_length
    timed = {"raw envpool, 1 thread": raw_pool(1, cfg.num_envs, steps),
             "raw envpool, 2 threads": raw_pool(2, cfg.num_envs, steps),
             "rollout (env + policy)": trainer_call(cfg, chunk=False),
             "full loop": trainer_call(cfg, chunk=True)}
    seconds = {name: [] for name in timed}
    for fn in timed.values():  # warm-up: compile, first calls
        fn()
    for _ in range(repeats):
        for name, fn in timed.items():
            start = time.perf_counter()
            fn()
            seconds[name].append(time.perf_counter() - start)
    rate = {n: steps * cfg.num_envs / statistics.median(s) for n, s in seconds.items()}
    one, two = rate["raw envpool, 1 thread"], rate["raw envpool, 2 threads"]
    return [{"what": n, "steps_per_second": r, "vs_raw_1_thread": r / one,
             "vs_raw_2_threads": r / two, "num_envs": cfg.num_envs, "steps": steps,
             "repeats": repeats} for n, r in rate.items()]


def main(argv=None):
    return common.run(__doc__, measure, COLUMNS, argv)


if __name__ == "__main__":
    main()
