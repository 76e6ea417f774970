"""The policy-learner protocol: pure functions over an agent state.

An ``Agent`` is four functions, built once from the config and the env spec:

- ``init(key, obs [B, *obs_shape]) -> state``
- ``act(state, obs [N, *obs_shape], key) -> (action [N, ...], log_prob [N], value [N])``
- ``mode(state, obs [N, *obs_shape]) -> action [N, ...]``: the deterministic policy
- ``update(state, batch: Transitions, hp, key) -> (state, metrics)``: one policy update
  from a rollout; ``hp`` is the run's dynamic config (learning rate, discounting, ...).

Observations reach the agent already normalised; the reward in ``Transitions`` is the
learner's (r-hat, the true or teacher reward, or an exploration reward), already scaled.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import jax
from flax import struct


@struct.dataclass
class Transitions:
    """A rollout as the agent learns from it; time-major ``[T, B, ...]``."""

    obs: jax.Array         # [T, B, *obs_shape] normalised observation acted on
    action: jax.Array      # [T, B] or [T, B, A]
    log_prob: jax.Array    # [T, B] behaviour log-probability
    value: jax.Array       # [T, B] value estimate at acting time
    reward: jax.Array      # [T, B] the learner's reward
    next_obs: jax.Array    # [T, B, *obs_shape] normalised observation after the step
    terminated: jax.Array  # [T, B] bool
    truncated: jax.Array   # [T, B] bool
    valid: jax.Array       # [T, B] bool


@dataclass(frozen=True)
class Agent:
    init: Callable
    act: Callable
    mode: Callable
    update: Callable
