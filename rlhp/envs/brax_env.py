"""brax backend: pure-JAX physics, vmappable over seeds and shardable over devices.

Each of the ``B`` copies is a brax env state; we vmap brax's ``reset``/``step``, add the
task's time limit (brax itself only terminates), and reset finished copies with fresh keys
on the following step (brax's own AutoResetWrapper would replay one cached start state).
"""
from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import struct

from rlhp.envs.base import Env, EnvSpec, Step, Task, TaskStep

TASKS = ("hopper", "halfcheetah", "walker2d", "ant", "reacher", "inverted_pendulum",
         "inverted_double_pendulum", "humanoid")
MAX_EPISODE_STEPS = 1000
# The metric in which each task with a health rule reports its healthy bonus: with
# ``terminate_when_unhealthy=False`` brax pays the bonus exactly on healthy steps.
HEALTH_METRIC = {"hopper": "reward_healthy", "walker2d": "reward_healthy",
                 "ant": "reward_survive", "humanoid": "reward_alive"}
# The metric holding minus the control cost (tasks not listed use ``reward_ctrl``).
CTRL_METRIC = {"humanoid": "reward_quadctrl"}


@struct.dataclass
class BraxState:
    inner: Any              # batched brax State
    t: jax.Array            # [B] int32
    needs_reset: jax.Array  # [B] bool
    key: jax.Array


@struct.dataclass
class TaskState:
    inner: Any              # batched brax State
    key: jax.Array          # for fresh start states


def load(name: str, pipeline: str, num_envs: int, **kwargs):
    """``(brax env, spec, vmapped reset, vmapped step)`` of task ``name``."""
    import warnings

    from brax import envs

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        env = envs.get_environment(name, backend=pipeline, **kwargs)
    spec = EnvSpec(name=name, backend="brax", num_envs=num_envs,
                   obs_shape=(env.observation_size,), action_shape=(env.action_size,),
                   num_actions=0, max_episode_steps=MAX_EPISODE_STEPS, dt=float(env.dt),
                   vmappable=True)
    return env, spec, strong(jax.vmap(env.reset)), strong(jax.vmap(env.step))


def strong(f):
    """``f`` with every output leaf strongly typed. brax's step returns some leaves weakly
    typed (``done``, metrics) that its reset returns strongly typed, and a state whose
    types change after one step makes every jitted function that takes it compile twice."""
    return lambda *args: jax.tree.map(lambda x: x.astype(x.dtype), f(*args))


def where_fresh(mask: jax.Array, fresh, old):
    """Per copy, ``fresh`` where ``mask`` [B] is set, else ``old`` (batched brax States)."""
    return jax.tree.map(
        lambda a, b: jnp.where(mask.reshape(mask.shape + (1,) * (a.ndim - 1)), a, b),
        fresh, old)


def make(name: str, num_envs: int, pipeline: str = "spring") -> Env:
    """``num_envs`` copies of brax task ``name`` on physics ``pipeline`` (spring,
    positional, generalized or mjx): the standard task (its reward, its termination when
    unhealthy, a ``MAX_EPISODE_STEPS`` time limit)."""
    _, spec, v_reset, v_step = load(name, pipeline, num_envs)

    def reset(key: jax.Array) -> BraxState:
        key, sub = jax.random.split(key)
        inner = v_reset(jax.random.split(sub, num_envs))
        return BraxState(inner, jnp.zeros(num_envs, jnp.int32), jnp.zeros(num_envs, bool), key)

    def step(state: BraxState, action: jax.Array):
        assert action.shape == (num_envs, *spec.action_shape), action.shape
        key, sub = jax.random.split(state.key)
        stepped = v_step(state.inner, jnp.clip(action, -1.0, 1.0))
        r = state.needs_reset
        inner = where_fresh(r, v_reset(jax.random.split(sub, num_envs)), stepped)
        t = jnp.where(r, 0, state.t + 1)
        terminated = (stepped.done > 0.5) & ~r
        truncated = (t >= MAX_EPISODE_STEPS) & ~terminated & ~r
        out = Step(obs=inner.obs, reward=jnp.where(r, 0.0, stepped.reward),
                   terminated=terminated, truncated=truncated, valid=~r)
        return BraxState(inner, t, terminated | truncated, key), out

    return Env(spec, reset, step, lambda s: s.inner.obs)


def task(name: str, num_envs: int, pipeline: str = "spring") -> Task:
    """The bare task (``rlhp.envs.base.Task``) of ``num_envs`` copies of ``name``: no
    termination when unhealthy, no time limit; the health rule is brax's own (its healthy
    bonus is paid exactly on healthy steps); ``restart`` draws fresh start states with
    fresh keys."""
    kwargs = {"terminate_when_unhealthy": False} if name in HEALTH_METRIC else {}
    _, spec, v_reset, v_step = load(name, pipeline, num_envs, **kwargs)
    zeros = jnp.zeros(num_envs, jnp.float32)

    def reset(key: jax.Array) -> TaskState:
        key, sub = jax.random.split(key)
        return TaskState(v_reset(jax.random.split(sub, num_envs)), key)

    def step(state: TaskState, action: jax.Array):
        assert action.shape == (num_envs, *spec.action_shape), action.shape
        inner = v_step(state.inner, jnp.clip(action, -1.0, 1.0))
        m = inner.metrics
        ctrl = m.get(CTRL_METRIC.get(name, "reward_ctrl"), zeros)  # minus the control cost
        healthy = m[HEALTH_METRIC[name]] > 0 if name in HEALTH_METRIC else zeros == 0
        return state.replace(inner=inner), TaskStep(
            obs=inner.obs, seen=inner.reward - ctrl, seen_lo=zeros, healthy=healthy,
            terminated=inner.done > 0.5)

    def restart(state: TaskState, mask: jax.Array) -> TaskState:
        key, sub = jax.random.split(state.key)
        return TaskState(where_fresh(mask, v_reset(jax.random.split(sub, num_envs)),
                                     state.inner), key)

    return Task(spec, reset, step, restart, lambda s: s.inner.obs)
