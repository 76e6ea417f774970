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

from rlhp.envs.base import Env, EnvSpec, Step

TASKS = ("hopper", "halfcheetah", "walker2d", "ant", "reacher", "inverted_pendulum",
         "inverted_double_pendulum", "humanoid")
MAX_EPISODE_STEPS = 1000


@struct.dataclass
class BraxState:
    inner: Any              # batched brax State
    t: jax.Array            # [B] int32
    needs_reset: jax.Array  # [B] bool
    key: jax.Array


HEALTHY_TASKS = ("hopper", "walker2d", "ant", "humanoid")


def make(name: str, num_envs: int, pipeline: str = "spring",
         preference_episodes: bool = False) -> Env:
    """``num_envs`` copies of brax task ``name`` on physics ``pipeline``
    (spring, positional, generalized or mjx). ``preference_episodes`` as in
    ``rlhp.envs.envpool_env.make``: no early termination (falling forfeits the healthy
    bonus instead) and no control cost in the reward."""
    import warnings

    from brax import envs

    kwargs = {"terminate_when_unhealthy": False} if preference_episodes and name in HEALTHY_TASKS else {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        task = envs.get_environment(name, backend=pipeline, **kwargs)
    spec = EnvSpec(name=name, backend="brax", num_envs=num_envs,
                   obs_shape=(task.observation_size,), action_shape=(task.action_size,),
                   num_actions=0, max_episode_steps=MAX_EPISODE_STEPS, dt=float(task.dt),
                   vmappable=True)
    v_reset, v_step = jax.vmap(task.reset), jax.vmap(task.step)

    def reset(key: jax.Array) -> BraxState:
        key, sub = jax.random.split(key)
        inner = v_reset(jax.random.split(sub, num_envs))
        return BraxState(inner, jnp.zeros(num_envs, jnp.int32), jnp.zeros(num_envs, bool), key)

    def step(state: BraxState, action: jax.Array):
        assert action.shape == (num_envs, *spec.action_shape), action.shape
        key, sub = jax.random.split(state.key)
        stepped = v_step(state.inner, jnp.clip(action, -1.0, 1.0))
        fresh = v_reset(jax.random.split(sub, num_envs))
        r = state.needs_reset
        inner = jax.tree.map(
            lambda a, b: jnp.where(r.reshape(r.shape + (1,) * (a.ndim - 1)), a, b),
            fresh, stepped)
        t = jnp.where(r, 0, state.t + 1)
        terminated = (stepped.done > 0.5) & ~r
        truncated = (t >= MAX_EPISODE_STEPS) & ~terminated & ~r
        reward = stepped.reward
        if preference_episodes and "reward_ctrl" in stepped.metrics:
            reward = reward - stepped.metrics["reward_ctrl"]
        out = Step(obs=inner.obs, reward=jnp.where(r, 0.0, reward),
                   terminated=terminated, truncated=truncated, valid=~r)
        return BraxState(inner, t, terminated | truncated, key), out

    return Env(spec, reset, step, lambda s: s.inner.obs)
