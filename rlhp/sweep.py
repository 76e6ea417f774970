"""Sweeps: one compiled program trains a whole grid of runs at once.

``sweep(cfg, seeds, labels=[50, 200], query=["random", "disagreement"])`` builds the grid
(seed x label budget x query scheme x ...), stacks the runs' keys and dynamic configs, and
runs ``vmap(train)`` over them in one ``jit``: no recompilation per run. With several
devices the sweep axis is sharded over all of them (a ``Mesh`` over ``jax.devices()``).

Any dynamic field of ``Config`` can be an axis (``labels``, ``query``, ``teacher``,
``teacher_mistake``, ``reward_lr``, ...); static fields (shapes, counts) cannot, because
they define the compilation. The comparison database is sized for the largest budget, so a
member is the run alone with that capacity (``max_labels``): the same counts, and floats
equal to float32 rounding at first (vmap and sharding change XLA's summation order), which
training amplifies (docs/reference.md#sweeps). On envpool every member has its own pool,
seeded as its run's, each device stepping its own members' pools in one host callback and
each process making only its members' pools (``rlhp.envs.members``).
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from rlhp.config import DYNAMIC_FIELDS, Config, ConfigError, parse_seeds
from rlhp.run import StatusLines


@dataclass
class SweepResult:
    runs: list[dict]   # one dict of axis values (and seed) per run, in sweep order
    trainer: Any       # the Trainer all runs share
    states: Any        # TrainState with a leading [N] axis
    metrics: dict      # name -> [N, rl_iterations] (iterations after any exploration)

    def state(self, i: int):
        """The final TrainState of run ``i`` (no leading axis)."""
        return jax.tree.map(lambda x: x[i], self.states)


def grid(cfg: Config, seeds, **axes) -> tuple[Config, list[dict], jax.Array, Any]:
    """The runs of a sweep: ``(cfg, runs, keys [N, 2], dyn with [N] leaves)``.

    ``axes`` map dynamic ``Config`` field names to lists of values; ``cfg`` comes back with
    its database sized for the largest label budget.
    """
    for name, values in axes.items():
        if name not in DYNAMIC_FIELDS:
            raise ConfigError(f"cannot sweep {name!r}: sweepable fields are the dynamic ones: "
                              f"{', '.join(DYNAMIC_FIELDS)}")
        if not len(values):
            raise ConfigError(f"sweep axis {name!r} is empty")
    if "labels" in axes:
        top = max(max(axes["labels"]), cfg.max_labels)
        cfg = cfg.replace(labels=top, max_labels=top)
    runs, dyns = [], []
    for seed, *values in itertools.product(seeds, *axes.values()):
        run = dict(zip(axes, values), seed=seed)
        runs.append(run)
        dyns.append(cfg.replace(**run).dynamic())
    keys = jnp.stack([jax.random.PRNGKey(r["seed"]) for r in runs])
    dyn = jax.tree.map(lambda *x: jnp.stack(x), *dyns)
    return cfg, runs, keys, dyn


def member_sharding() -> jax.sharding.NamedSharding:
    """The leading (sweep) axis split over every device of every process."""
    from rlhp.envs.members import AXIS, member_mesh
    return jax.sharding.NamedSharding(member_mesh(), jax.sharding.PartitionSpec(AXIS))


def shard(tree):
    """Spread the leading (sweep) axis over every device when it divides evenly; with
    several processes (``jax.distributed``) it must, and each process holds its share."""
    devices = jax.devices()
    n = jax.tree.leaves(tree)[0].shape[0]
    if len(devices) == 1 or n % len(devices):
        if jax.process_count() > 1:
            raise ConfigError(f"{n} runs do not divide over the {len(devices)} devices of "
                              f"{jax.process_count()} processes", "seeds")
        return tree
    spec = member_sharding()
    if jax.process_count() == 1:
        return jax.device_put(tree, spec)
    return jax.tree.map(lambda x: jax.make_array_from_callback(
        x.shape, spec, lambda index, x=np.asarray(x): x[index]), tree)


def gather(tree):
    """Host (numpy) copies of every member's arrays, from all processes."""
    if jax.process_count() == 1:
        return jax.device_get(tree)
    from jax.experimental import multihost_utils
    return multihost_utils.process_allgather(tree, tiled=True)


def vmappable_trainer(cfg: Config, env=None, seeds=(0,), start: int = 0):
    """The ``Trainer`` every run of a sweep shares; ``env`` defaults to ``cfg.env`` on its
    backend for members of seeds ``seeds`` (in order): JAX-native, or envpool with one
    pool per member seeded as that member's run alone at iteration ``start`` would seed its
    own (``rlhp.run.env_seed``), each device stepping its members' pools
    (``rlhp.envs.members``): their number must divide over the devices."""
    from rlhp.envs import EnvError, make_env
    from rlhp.run import env_seed
    from rlhp.train import make_train

    try:
        env = env or make_env(cfg.env, cfg.backend, cfg.num_envs,
                              seed=[env_seed(s, start) for s in seeds],
                              preference_episodes=cfg.preference_episodes,
                              down_steps=cfg.down_steps, fall_penalty=cfg.fall_penalty)
    except EnvError as e:
        raise ConfigError(str(e), "env") from None
    except ValueError as e:  # members that do not divide over the devices
        raise ConfigError(str(e), "seeds") from None
    if not env.spec.vmappable:
        raise ConfigError(f"this {env.spec.backend!r} env cannot be vmapped; sweep on a JAX "
                          f"backend, or build envpool's with a seed per member", "backend")
    if env.spec.members not in (0, len(seeds)):
        raise ConfigError(f"the env serves {env.spec.members} members, the sweep has "
                          f"{len(seeds)}", "seeds")
    return make_train(cfg, env)


def sweep(cfg: Config, seeds=(0,), env=None, **axes) -> SweepResult:
    """Train every run of the grid at once; ``env`` as in ``vmappable_trainer``."""
    cfg, runs, keys, dyn = grid(cfg, seeds, **axes)
    trainer = vmappable_trainer(cfg, env, [r["seed"] for r in runs])
    keys, dyn = shard((keys, dyn))
    states, metrics = jax.jit(jax.vmap(trainer.train))(keys, dyn)
    return SweepResult(runs, trainer, states, jax.device_get(metrics))


# ---- the command: python -m rlhp.sweep ----

BASELINE = 0
"""``--labels 0``: the true-reward baseline, trained as its own program beside the sweep."""
FIGURES = ("true_return_mean", "true_return_std", "reward_match", "optimal_policy",
           "policy_optimal", "reward_val_accuracy", "labels_asked")


def parse_list(text: str, kind=str) -> list:
    """``"a,b,c"`` -> ``[kind(a), kind(b), kind(c)]`` (no empty items, no repeats)."""
    items = [t.strip() for t in text.split(",")]
    if not all(items) or len(set(items)) != len(items):
        raise ValueError(f"want a comma-separated list of distinct values; got {text!r}")
    return [kind(t) for t in items]


def sweep_axes(args) -> tuple[dict, dict, list[int]]:
    """``(axes of the learned program, fixed fields, the budgets of 0 asked for)`` from the
    flags;
    ``--set FIELD=V1,V2`` is an axis, ``--set FIELD=V`` a fixed value."""
    axes, fixed = {}, {}
    for item in args.set:
        field, sep, values = item.partition("=")
        if not sep:
            raise ConfigError(f"--set {item!r}: expected FIELD=VALUE or FIELD=V1,V2,...")
        vals = parse_list(values) if "," in values else [values]
        typed = [getattr(Config().override([f"{field}={v}"]), field) for v in vals]
        (axes if len(typed) > 1 else fixed)[field] = typed if len(typed) > 1 else typed[0]
    labels = parse_list(args.labels, int)
    if any(n < 0 for n in labels):
        raise ConfigError(f"--labels {args.labels}: budgets must be >= 0 (0: the true reward)")
    budgets = [n for n in labels if n != BASELINE]
    if budgets:
        axes = {"labels": budgets, "query": parse_list(args.query),
                "teacher": parse_list(args.teacher), **axes}
    return axes, fixed, [n for n in labels if n == BASELINE]


def programs(args) -> list[tuple[str, Config, dict]]:
    """``(name, cfg, axes)`` per compiled program: ``learned`` over every budget > 0 x query
    x teacher x ``--set`` axis, and ``true`` (PPO on the task's reward) if ``--labels``
    has 0, over the ``--set`` axes its reward uses. Raises ``ConfigError``."""
    from rlhp.presets import preset
    axes, fixed, baseline = sweep_axes(args)
    out = []
    if "labels" in axes:
        cfg = preset(args.env, backend=args.backend, total_steps=args.steps, **fixed)
        out.append(("learned", cfg, axes))
    if baseline:
        cfg = preset(args.env, backend=args.backend, total_steps=args.steps, reward="true",
                     **{k: v for k, v in fixed.items() if k not in LEARNED_FIELDS})
        out.append(("true", cfg, {k: v for k, v in axes.items() if k not in LEARNED_FIELDS}))
    return out


LEARNED_FIELDS = ("labels", "query", "teacher", "offline", "audit_labels") + tuple(
    f for f in DYNAMIC_FIELDS if f.startswith(("reward_", "teacher_", "upfront", "label_")))


def run_program(name: str, cfg: Config, axes: dict, seeds, out, status) -> list[dict]:
    """Train one program's grid in chunks (a checkpoint of the stacked state after each,
    at most every 60 s; a stopped sweep continues from its last one), evaluate every
    member on the standard task; returns one row per member."""
    import json
    import time

    from rlhp.envs import make_env
    from rlhp.outputs import report
    from rlhp.outputs.checkpoint import Checkpointer
    from rlhp.run import EVAL_SEED_OFFSET, env_seed
    from rlhp.train import evaluate, evaluation_key, restart_episodes, restart_key

    cfg, runs, keys, dyn = grid(cfg, seeds, **axes)
    member_seeds = [r["seed"] for r in runs]
    run_dir = out / name
    saved = run_dir / "config.json"
    plan = json.loads(json.dumps({"config": cfg.to_dict(), "runs": runs}))  # as saved
    if saved.exists() and json.loads(saved.read_text()) != plan:
        raise ConfigError(f"{run_dir} holds another sweep; pick another --out", "out")
    ckpt = Checkpointer(run_dir)
    start = ckpt.latest()
    # envpool's pools live outside JAX: a continued sweep re-seeds them as a resumed run
    # does its own (rlhp.run), and every member's episodes restart
    trainer = vmappable_trainer(cfg, seeds=member_seeds, start=start or 0)
    keys, dyn = shard((keys, dyn))
    run_dir.mkdir(parents=True, exist_ok=True)
    if jax.process_index() == 0:
        saved.write_text(json.dumps(plan, indent=1))
    abstract = jax.eval_shape(jax.vmap(trainer.init), keys, dyn)
    if jax.process_count() > 1:  # restored as each process's share
        abstract = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype,
                                                               sharding=member_sharding()),
                                abstract)
    if start is not None:
        states, meta = ckpt.restore(abstract)
        status.say(f"{name}: continuing from iteration {meta['iteration']}")
        if trainer.env.spec.members:
            fresh = jnp.stack([restart_key(s, meta["iteration"]) for s in member_seeds])
            states = jax.jit(jax.vmap(lambda s, k: restart_episodes(trainer, s, k)))(
                states, shard(fresh))
    else:
        status.say(f"{name}: compiling {len(runs)} runs in one program")
        states = jax.jit(jax.vmap(trainer.init))(keys, dyn)
        meta = {"iteration": cfg.explore_iterations, "metrics": []}
    chunk = jax.jit(jax.vmap(trainer.chunk))
    last_save = time.time()
    while meta["iteration"] < cfg.num_iterations:
        states, metrics = chunk(states, dyn)
        meta["iteration"] += cfg.chunk_iterations
        meta["metrics"].append({k: np.asarray(v).tolist() for k, v in gather(metrics).items()
                                if k in ("true_return", "labels", "reward_val_accuracy")})
        status.advance(name, cfg.chunk_iterations * cfg.batch_size * len(runs))
        if time.time() - last_save > 60 or meta["iteration"] >= cfg.num_iterations:
            ckpt.save(meta["iteration"], states, meta)
            last_save = time.time()
    ckpt.close()
    eval_env = make_env(cfg.env, cfg.backend, cfg.eval_episodes,
                        seed=[env_seed(s, EVAL_SEED_OFFSET) for s in member_seeds])
    returns, _ = jax.jit(lambda s, k: evaluate(trainer, eval_env, s, k, members=True))(
        states, shard(jnp.stack([evaluation_key(s) for s in member_seeds])))
    returns = np.asarray(gather(returns))
    if cfg.env == "gridworld" and name == "learned":
        states = gather(states)  # the reward maps are drawn from every member's state
    rows = []
    for i, run in enumerate(runs):
        row = {"program": name, "env": cfg.env, "steps": cfg.steps, "labels": 0, "query": "",
               "teacher": "", **run, "true_return_mean": float(returns[i].mean()),
               "true_return_std": float(returns[i].std())}
        if name == "learned":
            last = {k: v[i][-1] for k, v in meta["metrics"][-1].items()}
            row.update(reward_val_accuracy=last["reward_val_accuracy"], labels_asked=last["labels"])
        if cfg.env == "gridworld" and name == "learned":
            state = jax.tree.map(lambda x: x[i], states)
            row.update({k: v for k, v in report.task_metrics(trainer, state).items()
                        if k in FIGURES})
        rows.append(row)
    return rows


class Progress(StatusLines):
    """``StatusLines`` over the env steps of every program of a sweep: a line per tenth of
    the whole sweep or every half minute, with the rate and the time left."""

    def __init__(self, total: int, stream=None):
        super().__init__("sweep", total, stream=stream)
        self.done, self.start = 0, self.clock()

    def advance(self, name: str, steps: int) -> None:
        self.done += steps
        rate = self.done / max(self.clock() - self.start, 1e-9)
        self.update(self.done, f"{rate:,.0f} steps/s | {name}", rate)


def write_outputs(rows: list[dict], out) -> None:
    """``sweep.csv`` (one row per member), ``sweep.json`` and ``sweep.png`` (final true
    return against the label budget, one line per query scheme and teacher, every seed a
    dot, the true-reward baseline a band)."""
    import csv
    import json
    columns = list(dict.fromkeys(k for r in rows for k in r))
    with open(out / "sweep.csv", "w", newline="") as f:
        w = csv.DictWriter(f, columns, restval="")
        w.writeheader()
        w.writerows(rows)
    (out / "sweep.json").write_text(json.dumps(rows, indent=1))
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    learned = [r for r in rows if r["program"] == "learned"]
    for n, (q, t) in enumerate(sorted({(r["query"], r["teacher"]) for r in learned})):
        mine = [r for r in learned if (r["query"], r["teacher"]) == (q, t)]
        budgets = sorted({r["labels"] for r in mine})
        means = [np.mean([r["true_return_mean"] for r in mine if r["labels"] == b]) for b in budgets]
        ax.plot(budgets, means, "-o", color=f"C{n}", label=f"{q}, {t}")
        ax.scatter([r["labels"] for r in mine], [r["true_return_mean"] for r in mine],
                   color=f"C{n}", alpha=0.35, s=12)
    true = [r["true_return_mean"] for r in rows if r["program"] == "true"]
    if true:
        ax.axhspan(min(true), max(true), color="k", alpha=0.08)
        ax.axhline(np.mean(true), color="k", ls="--", lw=1, label="true reward (seed range)")
    ax.set(xlabel="labels", ylabel="final true return (standard task)",
           title=f"{rows[0]['env']}, {rows[0]['steps']:,} steps, "
                 f"{len({r['seed'] for r in rows})} seeds")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "sweep.png", dpi=120)
    plt.close(fig)


def connect(coordinator: str | None, num_processes: int | None, process_id: int | None):
    """Join the sweep's processes (``jax.distributed.initialize``; CPU processes exchange
    their results over gloo). Raises ``ValueError`` with one line."""
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    try:
        jax.distributed.initialize(coordinator, num_processes, process_id)
    except (ValueError, TypeError, RuntimeError) as e:
        raise ValueError(f"--distributed: {str(e).strip().splitlines()[0]}") from None


def main(argv=None) -> int:
    """``python -m rlhp.sweep``; exit 0, or 2 with one line on bad input."""
    import argparse
    import sys
    from pathlib import Path
    p = argparse.ArgumentParser(prog="python -m rlhp.sweep", description=(
        "Train a grid of runs (seeds x label budgets x query schemes x teachers x --set "
        "axes) as one compiled program (on envpool, a pool per member); --labels 0 adds the "
        "true-reward baseline. Writes sweep.csv, sweep.json and sweep.png into --out; run the same "
        "command again to continue a stopped sweep."))
    p.add_argument("--env", default="gridworld")
    p.add_argument("--backend", default="auto")
    p.add_argument("--seeds", default="4", help="a count (4: seeds 0-3), a range 100-107, or 0,3,5; one seed: 5-5")
    p.add_argument("--labels", default="0,50,200", help="label budgets; 0 is the true reward")
    p.add_argument("--query", default="disagreement", help="query schemes, comma-separated")
    p.add_argument("--teacher", default="oracle", help="synthetic teachers, comma-separated")
    p.add_argument("--set", action="append", default=[], metavar="FIELD=V1,V2",
                   help="a dynamic field swept over values, or any field fixed (repeatable)")
    p.add_argument("--steps", type=int, default=None, help="env steps per run (default: preset)")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--distributed", action="store_true", help=(
        "span the sweep over several processes (jax.distributed; every process runs this "
        "command): on a TPU pod slice, SLURM or Open MPI the addresses are detected, "
        "elsewhere give --coordinator, --num-processes and --process-id"))
    p.add_argument("--coordinator", default=None, help="HOST:PORT of process 0 "
                   "(default: $JAX_COORDINATOR_ADDRESS or detected)")
    p.add_argument("--num-processes", type=int, default=None)
    p.add_argument("--process-id", type=int, default=None)
    args = p.parse_args(argv)
    try:
        if args.distributed:
            connect(args.coordinator, args.num_processes, args.process_id)
        seeds = parse_seeds(args.seeds)
        progs = programs(args)
        if args.out.exists() and not args.out.is_dir():
            raise ConfigError(f"--out {args.out} is a file", "out")
        # every axis a dynamic field, every value in range; the env steps of all runs
        total = sum(cfg.steps * len(grid(cfg, seeds, **axes)[1]) for _, cfg, axes in progs)
    except (ConfigError, ValueError) as e:
        print(f"error: {str(e).splitlines()[0]}", file=sys.stderr)
        return 2
    import os
    status = Progress(total, None if jax.process_index() == 0 else open(os.devnull, "w"))
    status.say(f"{len(progs)} program(s), {total:,} env steps in all, into {args.out}")
    rows = []
    try:
        for name, cfg, axes in progs:
            rows += run_program(name, cfg, axes, seeds, args.out, status)
    except ConfigError as e:
        print(f"error: {str(e).splitlines()[0]}", file=sys.stderr)
        return 2
    if jax.process_index() == 0:
        write_outputs(rows, args.out)
    status.say(f"done: {args.out / 'sweep.csv'}, sweep.json, sweep.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
