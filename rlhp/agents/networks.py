"""Policy and value networks (flax.linen): tanh MLPs for vectors, the Nature CNN for
stacked Atari frames."""
from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from rlhp.conv import Conv


def orthogonal(scale: float):
    """Orthogonal initializer (gain ``scale``) by Gram-Schmidt in plain jnp ops.

    Same distribution as ``nn.initializers.orthogonal``, but it needs no LAPACK QR: under
    ``vmap`` over seeds jaxlib 0.10's batched CPU QR deadlocks its thread pool. A
    convolution kernel ``[..., in, out]`` is orthogonal as a ``[prod(...) * in, out]``
    matrix.
    """
    def init(key, shape, dtype=jnp.float32):
        rows, cols = int(np.prod(shape[:-1])), shape[-1]
        n, m = max(rows, cols), min(rows, cols)
        g = jax.random.normal(key, (n, m), jnp.float32)

        def column(q, j):
            v = q[:, j]
            earlier = (jnp.arange(m) < j).astype(jnp.float32)
            v = v - q @ (earlier * (q.T @ v))
            return q.at[:, j].set(v / jnp.linalg.norm(v)), None

        q, _ = jax.lax.scan(column, g, jnp.arange(m))
        q = q if rows >= cols else q.T
        return (scale * q).reshape(shape).astype(dtype)

    return init


def _dense(features: int, scale: float) -> nn.Dense:
    return nn.Dense(features, kernel_init=orthogonal(scale), bias_init=nn.initializers.zeros)


class MLP(nn.Module):
    """Tanh MLP with orthogonal init; ``[..., in] -> [..., out]``."""

    hidden: Sequence[int]
    out: int
    out_scale: float = 1.0

    @nn.compact
    def __call__(self, x):
        for h in self.hidden:
            x = nn.tanh(_dense(h, np.sqrt(2))(x))
        return _dense(self.out, self.out_scale)(x)


class ActorCritic(nn.Module):
    """Separate actor and critic MLPs.

    ``__call__(obs [..., obs_dim]) -> (logits_or_mean [..., A], log_std [A] or None,
    value [...])``. Continuous actions use a state-independent log std.
    """

    hidden: Sequence[int]
    action_dim: int
    discrete: bool

    @nn.compact
    def __call__(self, obs):
        x = obs.reshape(obs.shape[: obs.ndim - 1] + (-1,))
        head = MLP(self.hidden, self.action_dim, 0.01)(x)
        value = MLP(self.hidden, 1, 1.0)(x)[..., 0]
        if self.discrete:
            return head, None, value
        log_std = self.param("log_std", nn.initializers.zeros, (self.action_dim,))
        return head, log_std, value


class NatureCNN(nn.Module):
    """The DQN torso of Mnih et al. (2015) with a policy and a value head, as A2C runs
    on Atari: convolutions 8x8/4 (32), 4x4/2 (64), 3x3/1 (64), dense 512, ReLU, shared by
    both heads; orthogonal init.

    ``__call__(obs [..., 84, 84, K] uint8) -> (logits [..., action_dim], None, value [...])``
    (the frames are scaled to [0, 1] inside).
    """

    action_dim: int
    LAYERS = ((32, 8, 4), (64, 4, 2), (64, 3, 1))  # (filters, kernel, stride)

    @nn.compact
    def __call__(self, obs):
        lead = obs.shape[:-3]
        x = obs.reshape((-1,) + obs.shape[-3:]).astype(jnp.float32) / 255.0
        for filters, kernel, stride in self.LAYERS:
            x = nn.relu(Conv(filters, kernel, stride, kernel_init=orthogonal(np.sqrt(2)))(x))
        x = nn.relu(_dense(512, np.sqrt(2))(x.reshape(x.shape[0], -1)))
        logits = _dense(self.action_dim, 0.01)(x)
        value = _dense(1, 1.0)(x)[:, 0]
        return logits.reshape(lead + (-1,)), None, value.reshape(lead)


def policy_functions(network: nn.Module):
    """``(act, mode)`` of the ``rlhp.agents.Agent`` protocol for an actor-critic
    ``network`` (``ActorCritic`` or ``NatureCNN``) whose parameters are ``state.params``."""
    def act(state, obs, key):
        head, log_std, value = network.apply(state.params, obs)
        action = sample(key, head, log_std)
        return action, log_prob(head, log_std, action), value

    def mode_of(state, obs):
        head, log_std, _ = network.apply(state.params, obs)
        return mode(head, log_std)

    return act, mode_of


def log_prob(head: jax.Array, log_std, action: jax.Array) -> jax.Array:
    """Log-likelihood of ``action`` under the policy head; ``[...]``."""
    if log_std is None:
        return jnp.take_along_axis(jax.nn.log_softmax(head), action[..., None], -1)[..., 0]
    z = (action - head) / jnp.exp(log_std)
    return jnp.sum(-0.5 * z**2 - log_std - 0.5 * jnp.log(2 * jnp.pi), -1)


def entropy(head: jax.Array, log_std) -> jax.Array:
    """Entropy of the policy distribution; ``[...]``."""
    if log_std is None:
        logp = jax.nn.log_softmax(head)
        return -jnp.sum(jnp.exp(logp) * logp, -1)
    return jnp.sum(log_std + 0.5 * jnp.log(2 * jnp.pi * jnp.e)) * jnp.ones(head.shape[:-1])


def sample(key: jax.Array, head: jax.Array, log_std) -> jax.Array:
    """One action per leading index: ``[...]`` int32 or ``[..., A]`` float32."""
    if log_std is None:
        return jax.random.categorical(key, head).astype(jnp.int32)
    return head + jnp.exp(log_std) * jax.random.normal(key, head.shape)


def mode(head: jax.Array, log_std) -> jax.Array:
    """The most likely action (evaluation)."""
    return jnp.argmax(head, -1).astype(jnp.int32) if log_std is None else head
