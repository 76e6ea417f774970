"""The reward model: an ensemble of r-hat networks, its Bradley-Terry loss and normalisation.

A member is the paper's MuJoCo MLP (``RewardMLP``) or its Atari CNN (``RewardCNN``).

Members are stacked parameters (leading axis ``[M]``) applied with one ``vmap``. Each member's
output is normalised on its own (running mean and std over the policy's transitions since
the start, or over a recent window: ``Config.reward_stats_window``) to zero mean and std
``reward_std``; the policy learns from the mean over members.
"""
from __future__ import annotations

import math
from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from rlhp import normalize
from rlhp.conv import Conv

RANDOM_ANSWER = 0.1  # the teacher is assumed to answer uniformly at random 10% of the time
BLOCK_ROWS = 2048
"""Rows per block when r-hat runs over many inputs: a block's activations stay in cache
(a Hopper-sized ensemble forward over 51,200 rows runs about 3x faster on a 2-core CPU in
blocks of 2,048 rows than in one pass; ``benchmarks.labels``)."""


class RewardMLP(nn.Module):
    """The paper's MuJoCo net: MLP on (obs, action), leaky ReLU (0.01).

    ``__call__(obs [..., obs_dim], action [..., A] or [...] int) -> r-hat [...]``.
    With ``use_action=False`` it is a reward on observations alone (the gridworld's one
    number per cell, as in the paper explainer).
    """

    hidden: Sequence[int] = (64, 64)
    num_actions: int = 0  # > 0: discrete actions enter one-hot
    use_action: bool = True
    linear: bool = False
    training_mode = False  # the same function in training and in use
    members_in_turn = False  # members run side by side (vmap)
    """Add a linear function of the inputs to the MLP's output, so r-hat can keep rising
    along a direction the labels favour beyond the inputs they covered, where a regularised
    MLP flattens. (On Hopper it made things worse: README, Hopper probes.)"""

    @nn.compact
    def __call__(self, obs, action, train: bool = False):
        if self.num_actions:
            action = jax.nn.one_hot(action, self.num_actions)
        lead = action.shape[:-1]
        x = obs.reshape(lead + (-1,))
        if self.use_action:
            x = jnp.concatenate([x, action], -1)
        # dense layers on 2-D rows: on CPU the reward fit (mostly its backward pass) runs
        # about 2x faster than on the batched [N, 2, L, D] form (benchmarks.stages)
        inputs = x = x.reshape(-1, x.shape[-1])
        for h in self.hidden:
            x = nn.leaky_relu(nn.Dense(h)(x), 0.01)
        r = nn.Dense(1)(x)
        if self.linear:
            r = r + nn.Dense(1, use_bias=False, name="linear")(inputs)
        return r.reshape(lead)


class RewardCNN(nn.Module):
    """The paper's Atari net on stacked frames: four convolutions (7x7, 5x5, 3x3, 3x3,
    strides 3, 2, 1, 1, ``filters`` each), each followed by batch norm, leaky ReLU (0.01)
    and dropout (``dropout``), then a dense layer of ``hidden`` and a scalar.

    ``__call__(obs [..., 84, 84, K] in [0, 1], action (unused), train) -> r-hat [...]``.
    ``train=True`` drops units and normalises by the batch's statistics (``apply`` with
    ``rngs={"dropout": key}, mutable=["batch_stats"]``); otherwise no dropout and the
    running statistics.
    """

    filters: int = 16
    hidden: int = 64
    dropout: float = 0.5
    training_mode = True
    members_in_turn = True  # vmapped convolutions become grouped ones, slow on XLA's CPU
    LAYERS = ((7, 3), (5, 2), (3, 1), (3, 1))  # (kernel, stride)

    @nn.compact
    def __call__(self, obs, action=None, train: bool = False):
        lead = obs.shape[:-3]
        x = obs.reshape((-1,) + obs.shape[-3:])
        for kernel, stride in self.LAYERS:
            x = Conv(self.filters, kernel, stride)(x)
            x = nn.BatchNorm(use_running_average=not train, momentum=0.99)(x)
            x = nn.Dropout(self.dropout, deterministic=not train)(nn.leaky_relu(x, 0.01))
        x = nn.leaky_relu(nn.Dense(self.hidden)(x.reshape(x.shape[0], -1)), 0.01)
        return nn.Dense(1)(x).reshape(lead)


def over_members(net: nn.Module, fn, *args):
    """``fn`` applied to each member's slice of ``args`` (leading axis ``[M]``), stacked:
    side by side (``vmap``), or one member after another (``lax.map``) for nets whose
    batched form is slow (``members_in_turn``)."""
    if net.members_in_turn:
        return jax.lax.map(lambda a: fn(*a), args)
    return jax.vmap(fn)(*args)


def init_ensemble(net: nn.Module, key, num_members: int, obs, action):
    """Stacked parameters ``[M, ...]`` of ``num_members`` independently initialised nets."""
    return jax.vmap(lambda k: net.init(k, obs, action))(jax.random.split(key, num_members))


def in_blocks(fn, obs, action, block: int = BLOCK_ROWS):
    """``fn(obs, action) -> [...]`` evaluated ``block`` rows at a time (``lax.map`` over
    the flattened leading dims, padded to whole blocks); same result as ``fn(obs, action)``."""
    lead = jax.eval_shape(fn, obs, action).shape
    rows = math.prod(lead)
    if rows <= block:
        return fn(obs, action)
    n = -(-rows // block)

    def blocks(x):
        x = x.reshape(rows, *x.shape[len(lead):])
        x = jnp.pad(x, [(0, n * block - rows)] + [(0, 0)] * (x.ndim - 1))
        return x.reshape(n, block, *x.shape[1:])

    out = jax.lax.map(lambda oa: fn(*oa), (blocks(obs), blocks(action)))
    return out.reshape(-1)[:rows].reshape(lead)


def apply_ensemble(net: nn.Module, params, obs, action):
    """Raw outputs of every member: ``[M, ...]`` for inputs ``obs [..., D]``, ``action``."""
    return over_members(net, lambda p: in_blocks(lambda o, a: net.apply(p, o, a), obs, action),
                        params)


def normalized(raw, stats: normalize.RunningStats, reward_std):
    """Per-member normalisation: ``raw [M, ...]``, stats with shape ``[M]``."""
    shape = (-1,) + (1,) * (raw.ndim - 1)
    return (raw - stats.mean.reshape(shape)) / jnp.sqrt(stats.var.reshape(shape) + 1e-8) * reward_std


def preference_prob(sum1, sum2):
    """P[segment 1 preferred] under Bradley-Terry with the 10% random-answer term."""
    return RANDOM_ANSWER / 2 + (1 - RANDOM_ANSWER) * jax.nn.sigmoid(sum1 - sum2)


def bt_loss(sum1, sum2, mu):
    """Cross-entropy of the label ``mu`` (1: first preferred, 0: second, 0.5: equal)
    against ``preference_prob``; elementwise over any shape."""
    p = preference_prob(sum1, sum2)
    return -(mu * jnp.log(p) + (1 - mu) * jnp.log(1 - p))


def segment_sums(net, params, obs, action):
    """Summed raw r-hat of each member over each segment of each pair.

    obs: ``[N, 2, L, D]``, action ``[N, 2, L, ...]``; returns ``[M, N, 2]``.
    """
    return apply_ensemble(net, params, obs, action).sum(-1)
