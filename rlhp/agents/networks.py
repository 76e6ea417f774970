"""Policy and value networks (flax.linen)."""
from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np


def orthogonal(scale: float):
    """Orthogonal initializer (gain ``scale``) by Gram-Schmidt in plain jnp ops.

    Same distribution as ``nn.initializers.orthogonal``, but it needs no LAPACK QR: under
    ``vmap`` over seeds jaxlib 0.10's batched CPU QR deadlocks its thread pool.
    """
    def init(key, shape, dtype=jnp.float32):
        rows, cols = shape
        n, m = max(rows, cols), min(rows, cols)
        g = jax.random.normal(key, (n, m), jnp.float32)

        def column(q, j):
            v = q[:, j]
            earlier = (jnp.arange(m) < j).astype(jnp.float32)
            v = v - q @ (earlier * (q.T @ v))
            return q.at[:, j].set(v / jnp.linalg.norm(v)), None

        q, _ = jax.lax.scan(column, g, jnp.arange(m))
        q = q if rows >= cols else q.T
        return (scale * q).astype(dtype)

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
