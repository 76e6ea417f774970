"""Env steps/s of an envpool sweep against a single run of the same config.

A sweep of M seeds on envpool (``rlhp.sweep``: one pool per member, each device stepping
its members' pools in one host callback, the learner vmapped over the members and sharded
over the devices, ``XLA_FLAGS=--xla_force_host_platform_device_count=D`` to try D) and
the run of seed 0 alone, both at the task's preference-learning preset: the median time
of one chunk of iterations (8,192 env steps per member) after compiling, as env steps/s
summed over the members; and the same for the env alone under random actions
(``benchmarks.throughput.random_rollout``, vmapped over the members), the callback's
ceiling. ``--separate M`` adds the row a sweep is for: M separate processes, each
running the run alone at the same time (timed after every process has compiled), their
steps/s summed.

    python -m benchmarks.envpool_sweep --members 0,4 --separate 4 --json envpool_sweep.json
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import jax

from benchmarks import common

COLUMNS = ["env", "members", "processes", "num_envs", "raw_steps_per_second",
           "train_steps_per_second", "per_member", "compile_seconds"]


def wait_for_all(barrier: str) -> None:
    """``barrier`` "DIR:N": mark this process ready in DIR, then wait until N are."""
    folder, count = barrier.rsplit(":", 1)
    Path(folder, f"ready-{os.getpid()}").touch()
    while len(list(Path(folder).glob("ready-*"))) < int(count):
        time.sleep(0.05)


def side_by_side(task: str, processes: int, repeats: int, tiny: bool) -> dict:
    """One row: ``processes`` separate processes measuring the run alone at the same time
    (each its own pool and program), their steps/s summed; compile is the slowest's."""
    with tempfile.TemporaryDirectory() as d:
        cmd = [sys.executable, "-m", "benchmarks.envpool_sweep", "--env", task, "--members",
               "0", "--repeats", str(repeats), "--barrier", f"{d}:{processes}"]
        procs = [subprocess.Popen(cmd + ["--json", f"{d}/{i}.json"] + ["--tiny"] * tiny,
                                  stdout=subprocess.DEVNULL) for i in range(processes)]
        while any(p.poll() is None for p in procs):  # one failing stops the rest, which
            if any(p.poll() for p in procs):          # would otherwise wait at the barrier
                for p in procs:
                    p.kill()
                break
            time.sleep(0.2)
        if any(p.wait() for p in procs):
            raise RuntimeError(f"a side-by-side process failed: {' '.join(cmd)}")
        rows = [json.loads(Path(d, f"{i}.json").read_text())["results"][0]
                for i in range(processes)]
    total = lambda k: sum(r[k] for r in rows)
    return {"env": task, "members": processes, "processes": processes,
            "num_envs": rows[0]["num_envs"], "raw_steps_per_second": total("raw_steps_per_second"),
            "train_steps_per_second": total("train_steps_per_second"),
            "per_member": total("train_steps_per_second") / processes,
            "compile_seconds": max(r["compile_seconds"] for r in rows)}


def measure(task: str, members: int, repeats: int, tiny: bool, barrier: str = "") -> dict:
    """One row: ``members`` 0 is the run alone, else a sweep of seeds ``0..members-1``
    (in this process). ``barrier``: wait for the other processes before timing."""
    from benchmarks.throughput import random_rollout
    from rlhp import sweep
    from rlhp.envs import make_env
    from rlhp.presets import preset
    from rlhp.train import make_train

    cfg = preset(task, total_steps=10**9, backend="envpool")
    if tiny:
        cfg = cfg.replace(num_envs=4, rollout_length=64, num_minibatches=4, update_epochs=1,
                          pretrain_updates=1, prefill_iterations=1, segment_capacity=32)
    chunk_iters = max(1, 8192 // cfg.batch_size)
    cfg = cfg.replace(iterations_per_chunk=chunk_iters,
                      total_steps=10_000 * chunk_iters * cfg.batch_size)
    if members:
        cfg, runs, keys, dyn = sweep.grid(cfg, range(members))
        keys, dyn = sweep.shard((keys, dyn))  # over every device (each steps its members)
        trainer = sweep.vmappable_trainer(cfg, seeds=[r["seed"] for r in runs])
        init, chunk = jax.jit(jax.vmap(trainer.init)), jax.jit(jax.vmap(trainer.chunk))
        raw = jax.jit(jax.vmap(random_rollout(trainer.env, chunk_iters * cfg.rollout_length)))
    else:
        env = make_env(task, "envpool", cfg.num_envs, seed=0, preference_episodes=True)
        trainer = make_train(cfg, env)
        keys, dyn = jax.random.PRNGKey(0), cfg.dynamic()
        init, chunk = jax.jit(trainer.init), trainer.chunk
        raw = random_rollout(env, chunk_iters * cfg.rollout_length)
    init, init_s = common.timed_compile(init, keys, dyn)
    state = sweep.shard(init(keys, dyn)) if members else init(keys, dyn)  # members split
    chunk, chunk_s = common.timed_compile(chunk, state, dyn)
    if barrier:
        wait_for_all(barrier)
    seconds = common.median_seconds_threaded(lambda s: chunk(s, dyn), state, repeats)
    total = chunk_iters * cfg.batch_size * max(members, 1) / seconds
    env_state = jax.jit(jax.vmap(trainer.env.reset) if members else trainer.env.reset)(keys)
    raw_seconds = common.median_seconds_threaded(lambda s: raw(s, keys), env_state, repeats)
    return {"env": task, "members": members, "processes": 1, "num_envs": cfg.num_envs,
            "raw_steps_per_second": total * seconds / raw_seconds,
            "train_steps_per_second": total, "per_member": total / max(members, 1),
            "compile_seconds": init_s + chunk_s}


def main(argv=None):
    p = common.parser(__doc__.splitlines()[0])
    p.add_argument("--env", default="hopper")
    p.add_argument("--members", default="0,2", help="0: the run alone; M: a sweep of M seeds")
    p.add_argument("--separate", type=int, default=0,
                   help="M > 0: also M separate processes running the run alone side by side")
    p.add_argument("--barrier", default="", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    results = [measure(args.env, int(m), args.repeats, args.tiny, args.barrier)
               for m in args.members.split(",")]
    if args.separate:
        results.append(side_by_side(args.env, args.separate, args.repeats, args.tiny))
    return common.report(results, COLUMNS, args.json)


if __name__ == "__main__":
    main()
