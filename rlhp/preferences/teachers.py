"""Synthetic teachers on device: the perfect oracle and the B-Pref teachers (Lee et al. 2021).

A teacher sees the true rewards of the two segments of each pair and answers with a label
``mu`` (1: first better, 0: second better, 0.5: equal) and whether it answered at all
(``skip`` answers "can't tell", which never enters the database). Which teacher and its
parameters are arrays, so a sweep can vmap over them.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct

TEACHERS = ("oracle", "noisy", "mistake", "skip", "equal", "myopic")
# every teacher a run can have: the synthetic ones, answered on device, and a person, who
# answers on the host between jitted chunks (``rlhp.human.teacher``)
TEACHER_NAMES = TEACHERS + ("human",)


@struct.dataclass
class TeacherParams:
    kind: jnp.ndarray      # [] int32, index into TEACHERS
    beta: jnp.ndarray      # rationality of the Boltzmann (noisy) teacher
    mistake: jnp.ndarray   # probability of flipping the label
    skip: jnp.ndarray      # skip margin, relative to the mean |segment return|
    equal: jnp.ndarray     # equal margin, relative to the mean |segment return|
    myopia: jnp.ndarray    # discount over the segment, applied back from its last step


def label(params: TeacherParams, key, true_reward):
    """Labels for pairs of segments.

    true_reward: ``[N, 2, L]`` per-step true rewards. Returns ``(mu [N], answered [N])``.
    """
    L = true_reward.shape[-1]
    weights = jnp.where(params.kind == TEACHERS.index("myopic"),
                        params.myopia ** jnp.arange(L - 1, -1, -1, dtype=jnp.float32), 1.0)
    ret = (true_reward * weights).sum(-1)  # [N, 2]
    diff = ret[:, 0] - ret[:, 1]
    oracle = jnp.where(diff > 0, 1.0, jnp.where(diff < 0, 0.0, 0.5))
    k_noise, k_flip = jax.random.split(key)
    noisy = jax.random.bernoulli(k_noise, jax.nn.sigmoid(params.beta * diff)).astype(jnp.float32)
    flip = jax.random.bernoulli(k_flip, params.mistake, diff.shape)
    mistaken = jnp.where(flip, 1.0 - oracle, oracle)
    scale = jnp.mean(jnp.abs(ret)) + 1e-8  # margins are relative to the task's returns
    equal = jnp.where(jnp.abs(diff) < params.equal * scale, 0.5, oracle)
    mu = jnp.select([params.kind == TEACHERS.index(t) for t in ("noisy", "mistake", "equal")],
                    [noisy, mistaken, equal], oracle)
    answered = jnp.where(params.kind == TEACHERS.index("skip"),
                         ret.max(-1) >= params.skip * scale, True)
    return mu, answered
