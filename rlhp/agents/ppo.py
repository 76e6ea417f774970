"""PPO as pure functions: GAE, the clipped surrogate loss and the minibatch update.

All batch arrays are time-major ``[T, B]``. Termination and truncation are kept apart:
a terminated step does not bootstrap, a truncated one bootstraps from its final
observation; both stop the advantage recursion. Steps with ``valid=False`` (the reset step
of the auto-reset convention, see ``rlhp.envs.base``) carry no learning signal.

``make(cfg, spec)`` wraps these into the ``rlhp.agents.Agent`` protocol.
"""
from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import optax
from flax import struct

from rlhp.agents import networks
from rlhp.agents.base import Agent, Transitions


@struct.dataclass
class PPOState:
    params: object
    opt_state: object
    updates: jax.Array  # [] int32 policy updates so far (the learning-rate schedule's clock)


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


def clip_by_norm(tree, max_norm):
    """Scale ``tree`` so its global norm is at most ``max_norm`` (may be traced)."""
    norm = optax.global_norm(tree)
    factor = jnp.minimum(1.0, max_norm / jnp.maximum(norm, 1e-12))
    return jax.tree.map(lambda g: g * factor, tree)


def minibatch_epochs(params, opt_state, batch: Batch, key, *, apply_fn, tx, lr, epochs: int,
                     num_minibatches: int, clip_eps, ent_coef, vf_coef, max_grad_norm):
    """``epochs`` passes over ``batch`` (``[N]`` leading shape) in ``num_minibatches``
    shuffled minibatches, one clipped, rescaled Adam step each (step size ``lr``).
    Returns ``(params, opt_state, metrics)``, the metrics averaged over every step."""
    n = batch.valid.shape[0]
    grad_fn = jax.grad(loss, has_aux=True)

    def minibatch_step(carry, mb):
        params, opt_state = carry
        grads, m = grad_fn(params, apply_fn, mb, clip_eps, ent_coef, vf_coef)
        grads = clip_by_norm(grads, max_grad_norm)
        upd, opt_state = tx.update(grads, opt_state, params)
        params = optax.apply_updates(params, jax.tree.map(lambda u: -lr * u, upd))
        return (params, opt_state), m

    def epoch(carry, key):
        perm = jax.random.permutation(key, n)
        mbs = jax.tree.map(
            lambda x: x[perm].reshape((num_minibatches, n // num_minibatches) + x.shape[1:]),
            batch)
        return jax.lax.scan(minibatch_step, carry, mbs)

    (params, opt_state), m = jax.lax.scan(epoch, (params, opt_state),
                                          jax.random.split(key, epochs))
    return params, opt_state, jax.tree.map(jnp.mean, m)


def update(state: PPOState, batch: Transitions, hp, key, *, network, tx, epochs: int,
           num_minibatches: int, anneal_over: int):
    """One PPO update from a rollout's ``Transitions`` (``[T, B]``, observations already
    normalised, reward already scaled): GAE, then ``minibatch_epochs``. ``hp`` carries
    ``learning_rate, gamma, gae_lambda, clip_eps, ent_coef, vf_coef, max_grad_norm``; the
    learning rate falls linearly to 0 over ``anneal_over`` updates (0: constant)."""
    _, _, next_value = network.apply(state.params, batch.next_obs)
    adv, target = gae(batch.reward, batch.value, next_value, batch.terminated, batch.truncated,
                      hp.gamma, hp.gae_lambda)
    flat = lambda x: x.reshape((-1,) + x.shape[2:])
    mbatch = Batch(obs=flat(batch.obs), action=flat(batch.action), log_prob=flat(batch.log_prob),
                   advantage=flat(adv), target=flat(target), valid=flat(batch.valid))
    frac = 1.0 - state.updates / anneal_over if anneal_over else 1.0
    params, opt_state, metrics = minibatch_epochs(
        state.params, state.opt_state, mbatch, key, apply_fn=network.apply, tx=tx,
        lr=hp.learning_rate * frac, epochs=epochs, num_minibatches=num_minibatches,
        clip_eps=hp.clip_eps, ent_coef=hp.ent_coef, vf_coef=hp.vf_coef,
        max_grad_norm=hp.max_grad_norm)
    return PPOState(params, opt_state, state.updates + 1), metrics


def make(cfg, spec) -> Agent:
    """PPO with separate tanh actor and critic MLPs (``cfg.hidden``) for ``spec``'s actions."""
    action_dim = spec.num_actions if spec.discrete else spec.action_shape[0]
    network = networks.ActorCritic(tuple(cfg.hidden), action_dim, spec.discrete)
    tx = optax.chain(optax.scale_by_adam(eps=1e-5))

    def init(key, obs):
        params = network.init(key, obs[:1])
        return PPOState(params, tx.init(params), jnp.zeros((), jnp.int32))

    act, mode = networks.policy_functions(network)
    step = partial(update, network=network, tx=tx, epochs=cfg.update_epochs,
                   num_minibatches=cfg.num_minibatches,
                   anneal_over=cfg.num_iterations if cfg.anneal_lr else 0)
    return Agent(init=init, act=act, mode=mode, update=step)
