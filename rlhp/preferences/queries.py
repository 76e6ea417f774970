"""Query selection: which pairs of segments to ask the teacher about, and when.

``select`` samples ``num_candidates`` random pairs of distinct segments, scores them and
keeps the ``k`` best. Schemes: ``random`` (uniform scores), ``disagreement`` (variance over
the ensemble of the predicted preference, the paper's rule) and ``entropy`` (binary entropy
of the ensemble-mean preference). The scheme is an array, so sweeps can vmap over it.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from rlhp.preferences.reward_model import preference_prob

QUERIES = ("random", "disagreement", "entropy")


def candidate_pairs(key, num_filled, num_candidates: int):
    """``[N, 2]`` int32 indices of pairs of distinct segments among the first ``num_filled``."""
    k1, k2 = jax.random.split(key)
    n = jnp.maximum(num_filled, 2)
    i = jax.random.randint(k1, (num_candidates,), 0, n)
    j = (i + jax.random.randint(k2, (num_candidates,), 1, n)) % n
    return jnp.stack([i, j], -1)


def scores(scheme, key, sums):
    """Score candidate pairs from the ensemble's segment sums ``[M, N, 2]``; returns ``[N]``."""
    p = preference_prob(sums[..., 0], sums[..., 1])  # [M, N]
    disagreement = jnp.var(p, axis=0)
    pm = jnp.clip(p.mean(0), 1e-6, 1 - 1e-6)
    entropy = -(pm * jnp.log(pm) + (1 - pm) * jnp.log(1 - pm))
    random = jax.random.uniform(key, pm.shape)
    return jnp.select([scheme == QUERIES.index("disagreement"), scheme == QUERIES.index("entropy")],
                      [disagreement, entropy], random)


def top_k(score, k: int):
    """Indices ``[k]`` of the highest scores."""
    return jax.lax.top_k(score, k)[1]


def schedule_fraction(env_steps, total_steps, horizon, xp=jnp):
    """Share of the labels after the up-front ones that are due by env step ``env_steps``:
    the integral of a rate proportional to ``horizon / (T + horizon)``, 1 at ``total_steps``.
    ``xp=numpy`` computes it on the host (static shapes are derived from it under a trace)."""
    return xp.log1p(env_steps / horizon) / xp.log1p(total_steps / horizon)


def labels_due(env_steps, total_steps, budget, upfront_fraction, horizon=2e6):
    """Cumulative labels the schedule has asked for after ``env_steps`` steps of RL.

    ``upfront_fraction`` of the budget comes before RL starts; the rest arrives at a rate
    proportional to ``horizon / (T + horizon)`` (the paper's MuJoCo schedule), normalised
    so that exactly ``budget`` labels are asked by ``total_steps``.
    """
    upfront = jnp.round(upfront_fraction * budget)
    frac = schedule_fraction(env_steps, total_steps, horizon)
    due = jnp.floor(upfront + (budget - upfront) * jnp.minimum(frac, 1.0) + 1e-6)
    # at the last step float32 rounding can leave frac just under 1: the budget is the budget
    return jnp.where(env_steps >= total_steps, budget, due)
