"""What the policy learns from, chosen once per run.

- ``learned``: r-hat, the reward-model ensemble's normalised mean on each step, optionally
  plus a RUNE-style optimism bonus where the members disagree (``learned_reward``).
- ``true`` / ``teacher``: the env's own reward (``Step.reward``): the task's standard
  reward in standard episodes, or the teacher's reward in the preference episodes.
- exploration: before any labels, a particle estimate of state entropy as in PEBBLE (Lee
  et al. 2021, a B-Pref baseline): each state is rewarded by the log-distance to its k-th
  nearest neighbour among the rollout's states (``state_entropy_reward``). The clips the
  teacher then compares come from a policy that has tried many postures, not only the
  initial policy's. (On Hopper 100k steps of it made things worse: docs/hopper-probes.md.)
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

NEIGHBOURS = 5  # k of the k-nearest-neighbour distance (PEBBLE's)


def learned_reward(learner, pref, obs, action, valid, reward_std, bonus: float = 0.0,
                   bonus_left=1.0, frozen: bool = False):
    """r-hat for a rollout ``obs [T, B, ...]``, ``valid [T, B]`` (updating the members'
    normalisation statistics unless ``frozen``); with ``bonus > 0`` the policy's reward is r-hat plus
    ``bonus * bonus_left`` times the members' std about r-hat on each step.
    Returns ``(pref, reward [T, B], r_hat [T, B], spread [T, B])``.

    With ``bonus == 0`` the spread is returned but not used: unread, XLA drops it; read,
    it is fused with the mean and changes r-hat's last bits (and so the run it seeds)."""
    pref, r_hat, spread = learner.relabel(pref, obs, action, valid, reward_std, not frozen)
    reward = r_hat + bonus * bonus_left * spread if bonus else r_hat
    return pref, reward, r_hat, spread


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


def exploration_reward(obs, valid):
    """``state_entropy_reward`` over a whole rollout: obs ``[T, B, D]`` (normalised),
    valid ``[T, B]`` -> ``[T, B]``."""
    T, B = valid.shape
    return state_entropy_reward(obs.reshape(T * B, -1), valid.reshape(-1)).reshape(T, B)
