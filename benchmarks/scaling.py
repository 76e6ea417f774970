"""Full-loop throughput as the work grows: number of envs, ensemble size, sweep width.

Runs on gridworld (pure JAX, so the sweep axis can be vmapped) at its default
preference-learning config, varying one factor at a time. The sweep is measured twice: with
the default 64-unit networks, and with 2-unit ones (policy and reward model), which leave
the same program with almost no arithmetic: the gap between the two is the share of the
sweep's cost that is matrix arithmetic, which grows with the number of seeds. Sweep width S runs
``vmap(train_chunk)`` over S seeds; its row reports env steps/s summed over the sweep and
the wall time relative to a single run.

    python -m benchmarks.scaling --json scaling.json
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from benchmarks import common

COLUMNS = ["factor", "num_envs", "ensemble_size", "sweep_width", "hidden", "train_steps_per_second",
           "seconds_per_iteration", "relative_wall", "compile_seconds"]


def measure(num_envs: int, members: int, width: int, repeats: int, tiny: bool,
            hidden: int = 64) -> dict:
    from rlhp.presets import preset
    from rlhp.envs import make_env
    from rlhp.train import make_train

    rollout = 16
    cfg = preset("gridworld", num_envs=num_envs, rollout_length=rollout, ensemble_size=members,
                 total_steps=10_000 * 5 * num_envs * rollout, iterations_per_chunk=2 if tiny else 5,
                 num_minibatches=4, pretrain_updates=2 if tiny else 200,
                 hidden=(hidden, hidden), reward_hidden=(hidden, hidden))
    trainer = make_train(cfg, make_env("gridworld", "auto", num_envs))
    dyn = cfg.dynamic()
    keys = jnp.stack([jax.random.PRNGKey(i) for i in range(width)])
    init = jax.jit(jax.vmap(trainer.init, in_axes=(0, None)))
    chunk = jax.jit(jax.vmap(lambda s, d: trainer.chunk(s, d), in_axes=(0, None)))
    init_c, t_init = common.timed_compile(init, keys, dyn)
    states = init_c(keys, dyn)
    chunk_c, t_chunk = common.timed_compile(chunk, states, dyn)
    sec = common.median_seconds_threaded(lambda s: chunk_c(s, dyn), states, repeats)
    steps = width * cfg.chunk_iterations * cfg.batch_size
    return {"num_envs": num_envs, "ensemble_size": members, "sweep_width": width,
            "hidden": hidden,
            "train_steps_per_second": steps / sec,
            "seconds_per_iteration": sec / cfg.chunk_iterations,
            "compile_seconds": t_init + t_chunk}


def batched_matmul(width: int, repeats: int) -> dict:
    """One tiny matmul per seed, ``[S, 256, 25] @ [S, 25, 2]`` (a PPO minibatch through a
    2-unit layer): XLA:CPU runs a batched dot as one small GEMM per batch element."""
    x, w = jnp.ones((width, 256, 25)), jnp.ones((width, 25, 2))
    f = jax.jit(lambda x, w: jnp.einsum("sbi,sio->sbo", x, w))
    sec = common.median_seconds(lambda: jax.block_until_ready(f(x, w)), 20 * repeats)
    return {"num_envs": None, "ensemble_size": None, "sweep_width": width, "hidden": 2,
            "train_steps_per_second": None, "seconds_per_iteration": sec}


def permutations(width: int, repeats: int) -> dict:
    """The PPO update's minibatch shuffles of one gridworld iteration (4 epochs of a
    1,024-sample batch, ``jax.random.permutation``: sort-based) for ``width`` seeds."""
    keys = jax.random.split(jax.random.PRNGKey(0), width)
    f = jax.jit(jax.vmap(lambda k: jax.vmap(lambda e: jax.random.permutation(e, 1024))(
        jax.random.split(k, 4))))
    sec = common.median_seconds(lambda: jax.block_until_ready(f(keys)), 20 * repeats)
    return {"num_envs": None, "ensemble_size": None, "sweep_width": width, "hidden": None,
            "train_steps_per_second": None, "seconds_per_iteration": sec}


def main(argv=None):
    p = common.parser(__doc__.splitlines()[0])
    args = p.parse_args(argv)
    envs = (16,) if args.tiny else (16, 64, 256, 1024, 2048)
    members = (1,) if args.tiny else (1, 3, 5)
    widths = (2,) if args.tiny else (1, 4, 16)
    results = []
    for n in envs:
        results.append({"factor": "num_envs", **measure(n, 3, 1, args.repeats, args.tiny)})
    for m in members:
        results.append({"factor": "ensemble_size", **measure(64, m, 1, args.repeats, args.tiny)})
    for w in widths:
        results.append({"factor": "sweep_width", **measure(64, 3, w, args.repeats, args.tiny)})
    # the same sweep with 2-unit networks: what vmapping costs when there is no arithmetic
    for w in widths:
        results.append({"factor": "sweep_width, 2-unit networks",
                         **measure(64, 3, w, args.repeats, args.tiny, hidden=2)})
    for w in widths:
        results.append({"factor": "one batched tiny matmul", **batched_matmul(w, args.repeats)})
    for w in widths:
        results.append({"factor": "minibatch permutations", **permutations(w, args.repeats)})
    for group in ("num_envs", "ensemble_size", "sweep_width", "sweep_width, 2-unit networks",
                  "one batched tiny matmul", "minibatch permutations"):
        rows = [r for r in results if r["factor"] == group]
        for r in rows:
            r["relative_wall"] = r["seconds_per_iteration"] / rows[0]["seconds_per_iteration"]
    return common.report(results, COLUMNS, args.json)


if __name__ == "__main__":
    main()
