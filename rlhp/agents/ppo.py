"""PPO as pure functions: GAE and the clipped surrogate loss.

All batch arrays are time-major ``[T, B]``. Termination and truncation are kept apart:
a terminated step does not bootstrap, a truncated one bootstraps from its final
observation; both stop the advantage recursion. Steps with ``valid=False`` (the reset step
of the auto-reset convention, see ``rlhp.envs.base``) carry no learning signal.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct

from rlhp.agents import networks


def gae(reward, value, next_value, terminated, truncated, gamma, lam):
    """Generalised advantage estimation.

    reward, value, next_value: ``[T, B]`` float; ``next_value[t] = V(obs after step t)``.
    terminated, truncated: ``[T, B]`` bool. Returns ``(advantage [T, B], target [T, B])``
    where ``target = advantage + value``.
    """
    not_term = 1.0 - terminated.astype(jnp.float32)
    not_done = not_term * (1.0 - truncated.astype(jnp.float32))
    delta = reward + gamma * next_value * not_term - value

    def back(carry, x):
        d, nd = x
        carry = d + gamma * lam * nd * carry
        return carry, carry

    _, adv = jax.lax.scan(back, jnp.zeros_like(delta[0]), (delta, not_done), reverse=True)
    return adv, adv + value


@struct.dataclass
class Batch:
    """One minibatch of transitions, flattened to ``[N]`` leading shape."""

    obs: jax.Array        # [N, *obs_shape] (already normalised)
    action: jax.Array     # [N] or [N, A]
    log_prob: jax.Array   # [N] behaviour log-probability
    advantage: jax.Array  # [N]
    target: jax.Array     # [N] value target
    valid: jax.Array      # [N] bool


def masked_mean(x, mask):
    m = mask.astype(jnp.float32)
    return jnp.sum(x * m) / jnp.maximum(m.sum(), 1.0)


def loss(params, apply_fn, batch: Batch, clip_eps, ent_coef, vf_coef):
    """Clipped PPO loss on one minibatch; returns ``(loss [], metrics dict)``."""
    head, log_std, value = apply_fn(params, batch.obs)
    logp = networks.log_prob(head, log_std, batch.action)
    ratio = jnp.exp(logp - batch.log_prob)
    adv = batch.advantage
    mu = masked_mean(adv, batch.valid)
    std = jnp.sqrt(masked_mean((adv - mu) ** 2, batch.valid) + 1e-8)
    adv = (adv - mu) / std
    surrogate = jnp.minimum(ratio * adv, jnp.clip(ratio, 1 - clip_eps, 1 + clip_eps) * adv)
    policy_loss = -masked_mean(surrogate, batch.valid)
    value_loss = 0.5 * masked_mean((value - batch.target) ** 2, batch.valid)
    ent = masked_mean(networks.entropy(head, log_std), batch.valid)
    total = policy_loss + vf_coef * value_loss - ent_coef * ent
    approx_kl = masked_mean((ratio - 1) - (logp - batch.log_prob), batch.valid)
    return total, {"policy_loss": policy_loss, "value_loss": value_loss,
                   "entropy": ent, "approx_kl": approx_kl}
