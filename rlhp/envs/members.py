"""Host pools serving every member of a sweep at once.

A sweep vmaps one program over its M members (``rlhp.sweep``); an envpool pool is a host
object behind an ``io_callback``, which cannot be vmapped. Here every member has its own
pool of B envs, seeded as that member's run alone seeds its pool. One pool of M x B envs
cannot do that: envpool seeds env ``i`` of a pool with ``seed + i``, so member ``m`` would
get seeds ``seed + m B ...``, those of no run of its own. The M pools are stepped in one
callback: ``per_member`` gives the callback a ``custom_vmap`` rule, so under the sweep's
vmap it is called once with every member's arrays ``[M, B, ...]`` and returns
``[M, B, ...]``; the member axis is explicit in the callback and implicit everywhere else.
A single run is one member (arrays ``[1, B, ...]`` in the callback).
"""
from __future__ import annotations

from typing import Callable, Sequence

import jax
import numpy as np
from jax.experimental import io_callback


class Pools:
    """M envpool pools, one per member, ``make(seed)`` each; host arrays ``[M, B, ...]``."""

    def __init__(self, make: Callable, seeds: Sequence[int]):
        self.pools = [make(s) for s in seeds]

    def __len__(self) -> int:
        return len(self.pools)

    def check(self, n: int) -> None:
        if n != len(self.pools):
            raise ValueError(f"{len(self.pools)} pools (one per member) given the arrays of "
                             f"{n} members: vmap the env over exactly its members")

    def reset(self, key) -> np.ndarray:
        """Every env of every pool afresh: observations ``[M, B, *obs_shape]``."""
        self.check(len(key))
        return np.stack([p.reset()[0] for p in self.pools])

    def step(self, action: np.ndarray) -> tuple:
        """``action [M, B, ...]`` -> ``(obs, reward, terminated, truncated)``, each
        ``[M, B, ...]``, as each pool's ``step`` returns them."""
        self.check(len(action))
        out = [p.step(a) for p, a in zip(self.pools, action)]
        return tuple(np.stack(x) for x in list(zip(*out))[:4])

    def reset_some(self, obs: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """The envs where ``mask [M, B]`` reset: their first observations written into
        ``obs [M, B, ...]`` (a copy), only pools with a masked env touched."""
        self.check(len(mask))
        obs = np.array(obs)
        for m, pool in enumerate(self.pools):
            ids = np.flatnonzero(mask[m]).astype(np.int32)
            if ids.size:
                obs[m, ids] = pool.reset(ids)[0]
        return obs


def host_call(fn: Callable, per_member, *args):
    """``io_callback(fn, ...)`` (ordered) on stacked arrays ``args`` ``[M, ...]``; the
    results are ``per_member`` (a pytree of ``ShapeDtypeStruct``) with a leading ``[M]``."""
    n = args[0].shape[0]
    shapes = jax.tree.map(lambda s: jax.ShapeDtypeStruct((n, *s.shape), s.dtype), per_member)
    return io_callback(fn, shapes, *args, ordered=True)


def per_member(fn: Callable, members: int) -> Callable:
    """``fn(*args [M, ...]) -> outputs [M, ...]`` (JAX, calling the host) as a function
    of one member's arrays: under ``vmap`` over exactly ``members`` members it calls
    ``fn`` once with every member's arrays stacked in order (an unbatched argument
    broadcast); outside ``vmap`` (a single run) it is ``fn`` on a batch of one."""

    @jax.custom_batching.custom_vmap
    def one(*args):
        return jax.tree.map(lambda x: x[0], fn(*(x[None] for x in args)))

    @one.def_vmap
    def every(axis_size, in_batched, *args):
        if axis_size != members:
            raise ValueError(f"an env of {members} member pools vmapped over {axis_size} "
                             f"members")
        args = [x if b else jax.numpy.broadcast_to(x, (axis_size, *x.shape))
                for x, b in zip(args, in_batched)]
        out = fn(*args)
        return out, jax.tree.map(lambda _: True, out)

    return one
