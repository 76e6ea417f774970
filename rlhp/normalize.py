"""Running mean and variance (Chan et al. parallel update), as a pure pytree, and reward
scaling by the running std of the discounted return."""
from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct


@struct.dataclass
class RunningStats:
    mean: jax.Array   # [*shape]
    var: jax.Array    # [*shape]
    count: jax.Array  # [] float32


def init(shape: tuple = ()) -> RunningStats:
    return RunningStats(jnp.zeros(shape, jnp.float32), jnp.ones(shape, jnp.float32),
                        jnp.asarray(1e-4, jnp.float32))


def update(stats: RunningStats, x: jax.Array, mask: jax.Array | None = None,
           window: float = 0) -> RunningStats:
    """Fold a batch ``x [N, *shape]`` (rows with ``mask [N]`` False are skipped) into ``stats``.

    ``window > 0``: the old statistics count as at most ``window`` rows, so they follow the
    recent rows (an exponential forgetting of older ones) instead of averaging everything."""
    w = jnp.ones(x.shape[0], jnp.float32) if mask is None else mask.astype(jnp.float32)
    wx = w.reshape((-1,) + (1,) * (x.ndim - 1))
    n = jnp.maximum(w.sum(), 1e-8)
    mean = (wx * x).sum(0) / n
    var = (wx * (x - mean) ** 2).sum(0) / n
    prior = jnp.minimum(stats.count, window) if window else stats.count
    total = prior + w.sum()
    delta = mean - stats.mean
    new_mean = stats.mean + delta * w.sum() / total
    m2 = stats.var * prior + var * w.sum() + delta**2 * prior * w.sum() / total
    return RunningStats(new_mean, m2 / total, total)


def normalize(stats: RunningStats, x: jax.Array, clip: float = 10.0) -> jax.Array:
    """``(x - mean) / std``, clipped to ``[-clip, clip]``."""
    return jnp.clip((x - stats.mean) / jnp.sqrt(stats.var + 1e-8), -clip, clip)


@struct.dataclass
class ReturnScale:
    """Reward scaling by the running std of the discounted return (per env)."""

    stats: RunningStats   # [] statistics of the discounted returns seen
    disc_return: jax.Array  # [B] running discounted return of each env's episode


def return_scale(num_envs: int) -> ReturnScale:
    return ReturnScale(init(), jnp.zeros(num_envs))


def scale_by_return(scale: ReturnScale, reward, done, gamma, clip: float = 10.0):
    """Divide ``reward [T, B]`` by the running std of the discounted return, the running
    return restarting after each ``done [T, B]`` step; clip to ``[-clip, clip]``.
    Returns ``(scale, scaled reward [T, B])``."""
    def body(g, x):
        r, d = x
        g = g * gamma + r
        return jnp.where(d, 0.0, g), g

    disc, gs = jax.lax.scan(body, scale.disc_return, (reward, done))
    stats = update(scale.stats, gs.reshape(-1))
    scaled = jnp.clip(reward / jnp.sqrt(stats.var + 1e-8), -clip, clip)
    return ReturnScale(stats, disc), scaled
