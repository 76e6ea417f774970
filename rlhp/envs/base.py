"""The one functional environment protocol every backend implements.

An environment holds a batch of ``B`` copies of a task. ``reset(key) -> state`` and
``step(state, action) -> (state, Step)`` are pure functions of arrays (for the host-side
envpool backend, ``step`` is a callback inside the jitted program).

Auto-reset follows envpool's convention for every backend, so the learner has one rule:
after a step that ends an episode (terminated or truncated), the *next* call to ``step``
ignores its action, starts a fresh episode (with a fresh key, never a replayed start state)
and returns ``valid=False`` with reward 0. Learners mask invalid steps out of losses and
out of segments.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import jax
from flax import struct


@struct.dataclass
class Step:
    """What one batched env step returns; all arrays have leading shape ``[B]``.

    obs:        [B, *obs_shape] float32 (uint8 images on Atari), the observation after the step (the final
                observation of an episode on its last step, the first of the next one
                on the invalid reset step).
    reward:     [B] float32, the task's true reward. Only teachers and evaluation read it.
    terminated: [B] bool, the episode ended in a terminal state (no bootstrap).
    truncated:  [B] bool, the episode hit its time limit (bootstrap from ``obs``).
    valid:      [B] bool, False on the reset step whose action was ignored.
    """

    obs: jax.Array
    reward: jax.Array
    terminated: jax.Array
    truncated: jax.Array
    valid: jax.Array


@dataclass(frozen=True)
class EnvSpec:
    """Static facts about a batched environment.

    name: short task name (``hopper``); backend: ``gridworld``, ``brax`` or ``envpool``;
    num_envs: B; obs_shape: per-env observation shape; action_shape: per-env action shape
    (``()`` for discrete); num_actions: number of discrete actions (0 if continuous);
    max_episode_steps: the time limit; dt: seconds of task time per step (segment lengths
    are derived from it); vmappable: whether ``train`` may be vmapped over seeds;
    members: > 0 for host pools built for a sweep (``rlhp.envs.members``): ``train`` is
    vmapped over exactly this many members, in order (JAX-native envs: 0, any number);
    frame_stack: > 0 when observations are uint8 images ``[H, W, frame_stack]`` of the
    last frames, newest last (stored once per frame by the reward learner); hidden: boxes
    ``(row0, row1, col0, col1)`` of an image the reward model and the clips must not see
    (a game's score).
    """

    name: str
    backend: str
    num_envs: int
    obs_shape: tuple
    action_shape: tuple
    num_actions: int
    max_episode_steps: int
    dt: float
    vmappable: bool
    members: int = 0
    frame_stack: int = 0
    hidden: tuple = ()

    @property
    def discrete(self) -> bool:
        return self.num_actions > 0


@dataclass(frozen=True)
class Env:
    """A batched environment: its spec and its two pure functions."""

    spec: EnvSpec
    reset: Callable[[jax.Array], Any]
    step: Callable[[Any, jax.Array], tuple[Any, Step]]
    obs: Callable[[Any], jax.Array]
    """``obs(state) -> [B, *obs_shape]``: the current observation held in a state."""


@struct.dataclass
class TaskStep:
    """One step of a bare task (see ``Task``); all arrays have leading shape ``[B]``.

    obs:        [B, *obs_shape] float32, the observation after the step.
    seen:       [B] float32, the task's reward with its control cost added back: what a
                person watching the body can judge (speed, uprightness), not the torques.
    seen_lo:    [B] float32, what rounding ``seen`` to float32 dropped (``seen + seen_lo``
                is the backend's float64 value; 0 where the backend computes in float32).
    healthy:    [B] bool, the task's own health rule after the step (True for tasks
                without one).
    terminated: [B] bool, a terminal state of the task (a pendulum's pole past its
                limit; tasks with a health rule report none: their falls are unhealthy
                steps). Preference episodes count it as a fall.
    """

    obs: jax.Array
    seen: jax.Array
    seen_lo: jax.Array
    healthy: jax.Array
    terminated: jax.Array


@dataclass(frozen=True)
class Task:
    """A backend's bare batched task, for wrappers that make their own episodes: no time
    limit, no termination when unhealthy, no automatic reset.

    ``reset(key) -> state``; ``step(state, action [B, *action_shape]) -> (state,
    TaskStep)``; ``restart(state, mask [B] bool) -> state`` puts fresh start states
    (fresh randomness, never a replayed start) where ``mask`` is set and leaves the others
    as they are; ``obs(state) -> [B, *obs_shape]``.
    """

    spec: EnvSpec
    reset: Callable[[jax.Array], Any]
    step: Callable[[Any, jax.Array], tuple[Any, TaskStep]]
    restart: Callable[[Any, jax.Array], Any]
    obs: Callable[[Any], jax.Array]
