"""Query selection: which pairs of segments to ask the teacher about.

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
