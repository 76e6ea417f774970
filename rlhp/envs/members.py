"""Host pools serving every member of a sweep at once, each process its own members.

A sweep vmaps one program over its M members (``rlhp.sweep``); an envpool pool is a host
object behind an ``io_callback``, which cannot be vmapped. Here every member has its own
pool of B envs, seeded as that member's run alone seeds its pool. One pool of M x B envs
cannot do that: envpool seeds env ``i`` of a pool with ``seed + i``, so member ``m`` would
get seeds ``seed + m B ...``, those of no run of its own. ``per_member`` gives the callback
a ``custom_vmap`` rule, so under the sweep's vmap the member axis is explicit in the
callback and implicit everywhere else: the rule runs the callback under ``shard_map`` over
the member mesh (``member_mesh``, the one the sweep shards its members over), so each
device calls it once with its own members' arrays ``[M / D, B, ...]`` and the index of
its first member, and each process makes the pools of the members its devices hold only.
A single run is one member (arrays ``[1, B, ...]`` in the callback, first member 0).
"""
from __future__ import annotations

from typing import Callable, Sequence

import jax
import numpy as np
from jax.experimental import io_callback

AXIS = "sweep"
"""The member axis of a sweep's mesh."""


def member_mesh() -> jax.sharding.Mesh:
    """Every device of every process along the member axis, in ``jax.devices()`` order."""
    return jax.sharding.Mesh(np.array(jax.devices()), (AXIS,))


def held(members: int) -> list[int]:
    """The members whose pools this process steps: those its devices hold when the
    ``members`` are split evenly over ``member_mesh`` (all of them on one device)."""
    devices = jax.devices()
    if members % len(devices):
        raise ValueError(f"an envpool sweep's {members} members do not divide over the "
                         f"{len(devices)} devices; give a multiple of {len(devices)} runs")
    per = members // len(devices)
    return [i * per + j for i, d in enumerate(devices)
            if d.process_index == jax.process_index() for j in range(per)]


class Pools:
    """Envpool pools, one per member, ``make(seeds[m])`` each: a run's one pool, or a
    sweep's (``sweep``), made only for the members this process holds (``held``) and
    stepped a device's members at a time. Host arrays ``[M', B, ...]`` of the ``M'``
    consecutive members from ``first`` on."""

    def __init__(self, make: Callable, seeds: Sequence[int], sweep: bool = False):
        self.members = len(seeds)
        self.pools = {m: make(seeds[m]) for m in (held if sweep else range)(len(seeds))}
        self.any = next(iter(self.pools.values()))
        """One of the pools (all are alike but for their seeds)."""
        self.per_call = len(seeds) // len(jax.devices()) if sweep else 1

    def __len__(self) -> int:
        return self.members

    def of(self, first, n: int) -> list:
        """The pools of members ``first .. first + n - 1``."""
        first = int(first)
        if n != self.per_call:
            raise ValueError(f"a device's {self.per_call} member pools given the arrays of "
                             f"{n} members: vmap the env over exactly its members")
        if any(m not in self.pools for m in range(first, first + n)):
            raise ValueError(f"members {first}..{first + n - 1} are not all made on this "
                             f"process (it holds {sorted(self.pools)})")
        return [self.pools[m] for m in range(first, first + n)]

    def reset(self, first, key) -> np.ndarray:
        """Every env of the pools afresh: observations ``[M', B, *obs_shape]``."""
        return np.stack([p.reset()[0] for p in self.of(first, len(key))])

    def step(self, first, action: np.ndarray) -> tuple:
        """``action [M', B, ...]`` -> ``(obs, reward, terminated, truncated)``, each
        ``[M', B, ...]``, as each pool's ``step`` returns them."""
        out = [p.step(a) for p, a in zip(self.of(first, len(action)), action)]
        return tuple(np.stack(x) for x in list(zip(*out))[:4])

    def reset_some(self, first, obs: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """The envs where ``mask [M', B]`` reset: their first observations written into
        ``obs [M', B, ...]`` (a copy), only pools with a masked env touched."""
        obs = np.array(obs)
        for m, pool in enumerate(self.of(first, len(mask))):
            ids = np.flatnonzero(mask[m]).astype(np.int32)
            if ids.size:
                obs[m, ids] = pool.reset(ids)[0]
        return obs


def host_call(fn: Callable, per_member, first, *args):
    """``io_callback(fn, first, *args)`` (ordered) on stacked arrays ``args`` ``[M', ...]``
    of the members from ``first`` on (a traced scalar, or a Python int); the
    results are ``per_member`` (a pytree of ``ShapeDtypeStruct``) with a leading ``[M']``."""
    n = args[0].shape[0]
    shapes = jax.tree.map(lambda s: jax.ShapeDtypeStruct((n, *s.shape), s.dtype), per_member)
    if isinstance(first, int):  # bound here: an operand more cost a run 15% of its raw
        return io_callback(lambda *a: fn(first, *a), shapes, *args, ordered=True)  # steps/s
    return io_callback(fn, shapes, first, *args, ordered=True)


def per_member(fn: Callable, members: int) -> Callable:
    """``fn(first, *args [M', ...]) -> outputs [M', ...]`` (JAX, calling the host for
    the ``M'`` members from ``first`` on) as a function of one member's arrays: under
    ``vmap`` over exactly ``members`` members it calls ``fn`` once per device of
    ``member_mesh`` with that device's members' arrays, in order (an unbatched argument
    broadcast); outside ``vmap`` (a single run) it is ``fn`` on a batch of one, member 0.

    Ordered callbacks may run on several devices (JAX orders them per device): each
    device's calls keep their program order, and devices step disjoint pools."""

    @jax.custom_batching.custom_vmap
    def one(*args):
        return jax.tree.map(lambda x: x[0], fn(0, *(x[None] for x in args)))

    @one.def_vmap
    def every(axis_size, in_batched, *args):
        if axis_size != members:
            raise ValueError(f"an env of {members} member pools vmapped over {axis_size} "
                             f"members")
        args = [x if b else jax.numpy.broadcast_to(x, (axis_size, *x.shape))
                for x, b in zip(args, in_batched)]

        def local(*mine):  # this device's members
            return fn(jax.lax.axis_index(AXIS) * mine[0].shape[0], *mine)

        mesh, spec = member_mesh(), jax.sharding.PartitionSpec(AXIS)
        if mesh.size == 1:  # every member here, the first one 0 (no operand: see host_call)
            out = fn(0, *args)
        else:  # the callback's results differ per device, which JAX's check cannot see
            out = jax.shard_map(local, mesh=mesh, in_specs=spec, out_specs=spec,
                                check_vma=False)(*args)
        return out, jax.tree.map(lambda _: True, out)

    return one
