"""The comparison database: labelled pairs of segments in a fixed-capacity ring buffer.

Each entry also fixes, at insertion, its role for every ensemble member: held out for
validation with probability 1/e, otherwise a Poisson(1) bootstrap count (the online form
of resampling |D| items with replacement), so each member fits its own bootstrap resample.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

VALIDATION_FRACTION = float(1 / np.e)


@struct.dataclass
class Comparisons:
    obs: jax.Array        # [C, 2, L, *obs_shape], or [C, 2, *clip_shape] as stored (frames)
    action: jax.Array     # [C, 2, L, ...]
    mu: jax.Array         # [C] label: 1 first better, 0 second, 0.5 equal
    filled: jax.Array     # [C] bool
    validation: jax.Array  # [C, M] bool: held out for member m
    weight: jax.Array     # [C, M] float32 bootstrap count (0 when held out)
    cursor: jax.Array     # [] int32
    total: jax.Array      # [] int32 labels ever inserted


def init(capacity: int, members: int, length: int, obs_shape: tuple, action_shape: tuple,
         action_dtype, clip: tuple | None = None) -> Comparisons:
    """An empty database; ``clip`` as in ``rlhp.preferences.segments.init``."""
    clip_shape, clip_dtype = clip or ((length, *obs_shape), jnp.float32)
    return Comparisons(
        obs=jnp.zeros((capacity, 2, *clip_shape), clip_dtype),
        action=jnp.zeros((capacity, 2, length, *action_shape), action_dtype),
        mu=jnp.zeros(capacity, jnp.float32), filled=jnp.zeros(capacity, bool),
        validation=jnp.zeros((capacity, members), bool),
        weight=jnp.zeros((capacity, members), jnp.float32),
        cursor=jnp.zeros((), jnp.int32), total=jnp.zeros((), jnp.int32))


def add(db: Comparisons, key, obs, action, mu, ok) -> Comparisons:
    """Insert the pairs with ``ok [K]`` True: obs ``[K, 2, L, ...]`` (or ``[K, 2, *clip]``
    as stored, in the database's dtype), mu ``[K]``."""
    C, M = db.validation.shape
    assert obs.shape[1:] == db.obs.shape[1:] and obs.dtype == db.obs.dtype, (
        obs.shape, obs.dtype, db.obs.shape, db.obs.dtype)
    assert action.shape[1:] == db.action.shape[1:] and action.dtype == db.action.dtype
    k_val, k_boot = jax.random.split(key)
    K = mu.shape[0]
    validation = jax.random.uniform(k_val, (K, M)) < VALIDATION_FRACTION
    weight = jnp.where(validation, 0.0, jax.random.poisson(k_boot, 1.0, (K, M)).astype(jnp.float32))
    rank = jnp.cumsum(ok) - 1
    slot = jnp.where(ok, (db.cursor + rank) % C, C)
    put = lambda dst, src: dst.at[slot].set(src, mode="drop")
    n = ok.sum().astype(jnp.int32)
    return Comparisons(put(db.obs, obs), put(db.action, action), put(db.mu, mu),
                       put(db.filled, ok), put(db.validation, validation), put(db.weight, weight),
                       (db.cursor + n) % C, db.total + n)


def sample(db: Comparisons, key, n: int, weight=None) -> jax.Array:
    """``[M, n]`` database indices, each member drawing with probability proportional to
    its ``weight [C, M]`` (default: its bootstrap count, so held-out entries never; empty
    slots never). By inverse CDF: ``n`` uniforms and a binary search per member, instead
    of ``n * C`` Gumbel draws for a categorical, which cost 40% of the reward fit. Where
    a member has no weight at all the indices are arbitrary."""
    w = (db.weight if weight is None else weight).T * db.filled  # [M, C]
    cdf = jnp.cumsum(w, -1)
    u = jax.random.uniform(key, (w.shape[0], n)) * cdf[:, -1:]
    idx = jax.vmap(lambda c, x: jnp.searchsorted(c, x, side="right"))(cdf, u)
    return jnp.minimum(idx, w.shape[1] - 1).astype(jnp.int32)
