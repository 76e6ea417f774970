"""Sweeps: one compiled program trains a whole grid of runs at once.

``sweep(cfg, seeds, labels=[50, 200], query=["random", "disagreement"])`` builds the grid
(seed x label budget x query scheme x ...), stacks the runs' keys and dynamic configs, and
runs ``vmap(train)`` over them in one ``jit``: no recompilation per run. With several
devices the sweep axis is sharded over all of them (a ``Mesh`` over ``jax.devices()``).

Any dynamic field of ``Config`` can be an axis (``labels``, ``query``, ``teacher``,
``teacher_mistake``, ``reward_lr``, ...); static fields (shapes, counts) cannot, because
they define the compilation. The comparison database is sized for the largest budget.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from rlhp.config import DYNAMIC_FIELDS, Config, ConfigError


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


def shard(tree):
    """Spread the leading (sweep) axis over every device when it divides evenly."""
    devices = jax.devices()
    n = jax.tree.leaves(tree)[0].shape[0]
    if len(devices) == 1 or n % len(devices):
        return tree
    mesh = jax.sharding.Mesh(np.array(devices), ("sweep",))
    spec = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("sweep"))
    return jax.device_put(tree, spec)


def sweep(cfg: Config, seeds=(0,), env=None, **axes) -> SweepResult:
    """Train every run of the grid at once; ``env`` defaults to ``cfg.env`` on its backend
    (which must be JAX-native: envpool's host pools cannot be vmapped)."""
    from rlhp.envs import make_env
    from rlhp.train import make_train

    cfg, runs, keys, dyn = grid(cfg, seeds, **axes)
    env = env or make_env(cfg.env, cfg.backend, cfg.num_envs,
                          preference_episodes=cfg.preference_episodes,
                          down_steps=cfg.down_steps, fall_penalty=cfg.fall_penalty)
    if not env.spec.vmappable:
        raise ConfigError(f"backend {env.spec.backend!r} cannot be vmapped; sweep on a JAX "
                          f"backend (gridworld, brax)")
    trainer = make_train(cfg, env)
    keys, dyn = shard((keys, dyn))
    states, metrics = jax.jit(jax.vmap(trainer.train))(keys, dyn)
    return SweepResult(runs, trainer, states, jax.device_get(metrics))
