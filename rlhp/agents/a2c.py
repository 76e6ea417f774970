"""A2C as the paper ran it on Atari (Mnih et al. 2016, synchronous): n-step returns, one
RMSProp step per n steps of the B envs, the learning rate decayed linearly to 0.

A rollout of ``T`` steps (``[T, B]``, time-major) is learned from as ``T / n``
consecutive updates, each on ``n`` steps: the paper's 16 envs x 5 steps per update. The
rollout is ``T`` long so that it holds whole clips for the reward model; the later of its
``T / n`` updates learn from steps the policy took up to ``T / n - 1`` updates earlier (the
policy-gradient term is not reweighted for that). Returns bootstrap from the current
value of the observation after each chunk; terminated steps do not bootstrap, truncated
ones bootstrap from their final observation; invalid steps (the reset step) carry no loss.

``make(cfg, spec)`` wraps this into the ``rlhp.agents.Agent`` protocol.
"""
from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import optax
from flax import struct

from rlhp.agents import networks
from rlhp.agents.base import Agent, Transitions
from rlhp.agents.ppo import clip_by_norm, masked_mean
from rlhp.config import ConfigError

RMSPROP_DECAY = 0.99
RMSPROP_EPS = 1e-5


@struct.dataclass
class A2CState:
    params: object
    opt_state: object
    updates: jax.Array  # [] int32 RMSProp steps so far (the learning-rate schedule's clock)


def nstep_returns(reward, next_value, terminated, truncated, gamma):
    """n-step returns over a chunk of ``n`` steps.

    reward, next_value: ``[n, B]``, ``next_value[t] = V(obs after step t)``; terminated,
    truncated ``[n, B]`` bool. ``R[t] = r[t] + gamma * R[t + 1]``, where the tail is
    ``next_value[n - 1]`` past the last step, ``next_value[t]`` after a truncated step and
    0 after a terminated one. Returns ``[n, B]``.
    """
    not_term = 1.0 - terminated.astype(jnp.float32)

    def back(g, x):
        r, nv, nt, tr = x
        g = r + gamma * nt * jnp.where(tr, nv, g)
        return g, g

    _, returns = jax.lax.scan(back, next_value[-1], (reward, next_value, not_term, truncated),
                              reverse=True)
    return returns


def loss(params, apply_fn, chunk: Transitions, gamma, ent_coef, vf_coef):
    """A2C loss on one chunk ``[n, B]``; returns ``(loss [], metrics dict)``.

    The values of the chunk's observations come from one forward pass; the value after
    step ``t < n - 1`` is that of observation ``t + 1`` (the auto-reset convention keeps
    the final observation of an episode as the next step's input), after the last step
    that of ``chunk.next_obs[-1]``; returns do not differentiate through them."""
    head, log_std, value = apply_fn(params, chunk.obs)
    _, _, last = apply_fn(params, chunk.next_obs[-1])
    next_value = jax.lax.stop_gradient(jnp.concatenate([value[1:], last[None]], 0))
    returns = nstep_returns(chunk.reward, next_value, chunk.terminated, chunk.truncated, gamma)
    advantage = jax.lax.stop_gradient(returns - value)
    logp = networks.log_prob(head, log_std, chunk.action)
    policy_loss = -masked_mean(logp * advantage, chunk.valid)
    value_loss = 0.5 * masked_mean((returns - value) ** 2, chunk.valid)
    ent = masked_mean(networks.entropy(head, log_std), chunk.valid)
    total = policy_loss + vf_coef * value_loss - ent_coef * ent
    return total, {"policy_loss": policy_loss, "value_loss": value_loss, "entropy": ent}


def update(state: A2CState, batch: Transitions, hp, key, *, network, tx, n: int,
           anneal_over: int):
    """``T / n`` RMSProp steps, one per consecutive chunk of ``n`` steps of ``batch``
    (``[T, B]``). ``hp`` carries ``learning_rate, gamma, ent_coef, vf_coef,
    max_grad_norm``; the step size falls linearly to 0 over ``anneal_over`` steps (0:
    constant). ``key`` is unused (A2C draws nothing). Returns ``(state, metrics)``, the
    metrics averaged over the steps."""
    T = batch.reward.shape[0]
    chunks = jax.tree.map(lambda x: x.reshape((T // n, n) + x.shape[1:]), batch)
    grad_fn = jax.grad(loss, has_aux=True)

    def step(state: A2CState, chunk: Transitions):
        grads, metrics = grad_fn(state.params, network.apply, chunk, hp.gamma, hp.ent_coef,
                                 hp.vf_coef)
        grads = clip_by_norm(grads, hp.max_grad_norm)
        upd, opt_state = tx.update(grads, state.opt_state, state.params)
        frac = jnp.maximum(1.0 - state.updates / anneal_over, 0.0) if anneal_over else 1.0
        lr = hp.learning_rate * frac
        params = optax.apply_updates(state.params, jax.tree.map(lambda u: -lr * u, upd))
        return A2CState(params, opt_state, state.updates + 1), metrics

    state, metrics = jax.lax.scan(step, state, chunks)
    return state, jax.tree.map(jnp.mean, metrics)


def make(cfg, spec) -> Agent:
    """A2C for ``spec``'s discrete actions: the Nature CNN on image observations
    (``spec.frame_stack``), the tanh MLP (``cfg.hidden``) otherwise."""
    if not spec.discrete:
        raise ConfigError(f"agent='a2c' needs discrete actions; {spec.name} has continuous "
                          f"ones", "agent")
    if spec.frame_stack:
        network = networks.NatureCNN(spec.num_actions)
    else:
        network = networks.ActorCritic(tuple(cfg.hidden), spec.num_actions, True)
    tx = optax.scale_by_rms(decay=RMSPROP_DECAY, eps=RMSPROP_EPS)
    n = cfg.a2c_steps
    steps_per_rollout = cfg.rollout_length // n

    def init(key, obs):
        params = network.init(key, obs[:1])
        return A2CState(params, tx.init(params), jnp.zeros((), jnp.int32))

    act, mode = networks.policy_functions(network)
    step = partial(update, network=network, tx=tx, n=n,
                   anneal_over=cfg.num_iterations * steps_per_rollout if cfg.anneal_lr else 0)
    return Agent(init=init, act=act, mode=mode, update=step)
