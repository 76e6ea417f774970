"""Unsupervised pre-exploration (PEBBLE, Lee et al. 2021; a baseline of B-Pref).

Before the up-front labels, the policy may spend some env steps maximising a particle
estimate of its state entropy: each state is rewarded by the log-distance to its k-th
nearest neighbour among the rollout's states. The clips the teacher then compares come from
a policy that has tried many postures and directions, not only the initial policy's
(a random Hopper only ever falls backward, so r-hat fit to its clips cannot price a fall
forward). On Hopper, 100k steps of it made things worse (README, Hopper probes).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

NEIGHBOURS = 5  # k of the k-nearest-neighbour distance (PEBBLE's)


def state_entropy_reward(obs, valid, k: int = NEIGHBOURS):
    """``log(1 + d_k)`` per state, ``d_k`` the Euclidean distance to the ``k``-th nearest
    other valid state in the batch.

    obs: ``[N, D]`` (normalised observations); valid: ``[N]`` bool (invalid rows neither
    receive a meaningful reward nor count as neighbours). Returns ``[N]``.
    """
    sq = (obs**2).sum(-1)
    d2 = sq[:, None] + sq[None, :] - 2 * obs @ obs.T              # [N, N]
    d2 = jnp.where(valid[None, :], jnp.maximum(d2, 0.0), jnp.inf)
    d2 = d2.at[jnp.diag_indices(obs.shape[0])].set(jnp.inf)       # not one's own neighbour
    kth = -jax.lax.top_k(-d2, k)[0][:, -1]                        # k-th smallest
    return jnp.where(valid & jnp.isfinite(kth), jnp.log1p(jnp.sqrt(kth)), 0.0)
