"""Preference episodes: the episodes the policy trains in when it learns from preferences,
one pure wrapper over any backend's bare ``Task`` (``rlhp.envs.base``).

The standard MuJoCo locomotion tasks end an episode when the body falls, so an episode's
length alone tells the learner how well it went. The paper removes that leak; here:

- a fixed horizon: every episode runs the task's time limit (1000 steps), whatever
  happens inside it. Its clock is part of the wrapper's state (JAX arrays), so it is
  checkpointed with the rest of the training state.
- falling costs: every step the task's own health rule calls unhealthy costs
  ``fall_penalty`` in the teacher's reward, on top of the healthy bonus the task withholds.
  The bonus alone (1 per step) is less than the forward speed a hopper gains by diving,
  and a policy trained with it leans and slides, then falls at once under the standard
  (terminating) evaluation.
- restart after a fall: after ``down_steps`` unhealthy steps since it last started, a
  fallen body restarts from a fresh start state inside the same episode (the learner sees
  one continuing episode). Without the restart (``down_steps=0``) a policy that falls
  early spends the rest of the episode on the ground: most segments then show two fallen
  bodies and teach nothing, and PPO on the teacher's own reward only learned to stand
  after ~650k steps (~100k with the restart).
- the teacher's reward leaves out the control cost, which a person watching cannot see.

- a terminal state of the task is a fall too. Tasks with a health rule run without
  termination, so only the pendulums have one (the pole past its limit): the pendulum
  restarts at once (envpool cannot hold a fallen one), inside the same episode, and the
  step costs what a fall costs a body that lies ``down_steps`` unhealthy steps:
  ``fall_penalty x down_steps``. Ending the episode there would hand the learner a lever
  the paper removes: under an r-hat whose values are mostly negative, an early end is
  worth more than balancing (both pendulums' learned runs fell at once). A single
  ``fall_penalty`` is too cheap: InvertedDoublePendulum pays ~9 a step for balancing, and
  PPO on the teacher's reward reached 4,744 with a fall at 10 against 7,634 at 250 (one
  seed; docs/mujoco-other-tasks.md).

Episodes end and restart by the protocol's rule (``rlhp.envs.base``): the step after the
horizon is invalid and starts a fresh episode.
"""
from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import struct

from rlhp.envs.base import Env, Step, Task

# Reward per unhealthy step in preference episodes, on top of the withheld healthy bonus.
FALL_PENALTY = 10.0
# Unhealthy steps since its last start after which a fallen body restarts (0: never).
DOWN_STEPS = 25


@struct.dataclass
class EpisodeState:
    task: Any               # the bare task's state
    t: jax.Array            # [B] int32: steps into the current episode (the horizon clock)
    down: jax.Array         # [B] int32: unhealthy steps since the body last (re)started
    needs_reset: jax.Array  # [B] bool: the previous step ended the episode


def minus_rounded_once(hi: jax.Array, lo: jax.Array, c: jax.Array) -> jax.Array:
    """``(hi + lo) - c`` rounded once to float32, elementwise.

    ``hi + lo`` is a value held as a float32 pair (``hi`` its float32 rounding, ``lo``
    the rest, e.g. a float64 reward); ``c`` float32. Rounding ``hi - c`` instead rounds
    twice and can differ in the last bit from the float64 arithmetic a host would do.
    All arrays broadcast together; with ``lo = 0`` the result is ``hi - c``.
    """
    s = hi - c
    v = s - hi
    err = (hi - (s - v)) + (-c - v)  # exactly (hi - c) - s (Knuth's TwoSum)
    return s + (err + lo)


def preference_episodes(task: Task, down_steps: int = DOWN_STEPS,
                        fall_penalty: float = FALL_PENALTY) -> Env:
    """The ``Env`` of preference episodes over ``task`` (B copies), its horizon the task's
    time limit ``task.spec.max_episode_steps``.

    ``Step.reward`` [B] is the teacher's reward: the task's reward with the control cost
    added back, minus ``fall_penalty`` on every unhealthy step. ``down_steps``: unhealthy
    steps after which a fallen body restarts inside the episode (0: never). A terminal
    state of the task restarts the body at once and costs ``fall_penalty x
    max(down_steps, 1)``; no episode ends before the horizon.
    """
    horizon, B = task.spec.max_episode_steps, task.spec.num_envs
    penalty = jnp.float32(fall_penalty)
    fall_cost = jnp.float32(fall_penalty * max(down_steps, 1))

    def reset(key: jax.Array) -> EpisodeState:
        zeros = jnp.zeros(B, jnp.int32)
        return EpisodeState(task.reset(key), zeros, zeros, jnp.zeros(B, bool))

    def step(state: EpisodeState, action: jax.Array):
        inner, out = task.step(state.task, action)
        valid = ~state.needs_reset
        fallen = ~out.healthy | out.terminated
        t = jnp.where(valid, state.t + 1, 0)
        truncated = valid & (t >= horizon)
        down = jnp.where(valid, state.down + fallen, 0)
        up_again = (down >= down_steps) if down_steps > 0 else False
        restart = ((up_again | (out.terminated & valid)) & ~truncated) | state.needs_reset
        inner = task.restart(inner, restart)
        price = jnp.where(out.terminated, fall_cost, penalty)
        reward = jnp.where(fallen, minus_rounded_once(out.seen, out.seen_lo, price), out.seen)
        step = Step(obs=task.obs(inner), reward=jnp.where(valid, reward, 0.0),
                    terminated=jnp.zeros_like(truncated), truncated=truncated, valid=valid)
        return EpisodeState(inner, t, jnp.where(restart, 0, down), truncated), step

    return Env(task.spec, reset, step, lambda s: task.obs(s.task))
