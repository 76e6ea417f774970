"""envpool backend: C++ MuJoCo (and later Atari) pools stepped from inside the jitted step.

The pool lives on the host. ``reset`` and ``step`` are ``io_callback``s (ordered), so the
rest of the program stays one jitted function. We do not use envpool's ``xla()`` handle:
its MuJoCo tasks demand float64 actions, which would need ``jax_enable_x64`` for the whole
program; the callback converts float32 to float64 at the boundary instead (measured here:
~16k steps/s through the callback at 16 envs against ~25k for bare Python stepping).

A pool cannot be vmapped; a sweep over S seeds would use one pool of S*B envs.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct
from jax.experimental import io_callback

from rlhp.envs.base import Env, EnvSpec, Step

MUJOCO_IDS = {
    "hopper": "Hopper-v5",
    "halfcheetah": "HalfCheetah-v5",
    "walker2d": "Walker2d-v5",
    "ant": "Ant-v5",
    "swimmer": "Swimmer-v5",
    "reacher": "Reacher-v5",
    "inverted_pendulum": "InvertedPendulum-v5",
    "inverted_double_pendulum": "InvertedDoublePendulum-v5",
}
# Seconds of task time per env step (MuJoCo timestep x frame skip of each v5 task).
MUJOCO_DT = {
    "hopper": 0.008, "halfcheetah": 0.05, "walker2d": 0.008, "ant": 0.05,
    "swimmer": 0.04, "reacher": 0.02, "inverted_pendulum": 0.04,
    "inverted_double_pendulum": 0.05,
}


# Tasks that end an episode when the body is unhealthy (fallen).
HEALTHY_TASKS = ("hopper", "walker2d", "ant")
# Reward per unhealthy step in preference episodes, on top of the withheld healthy bonus.
FALL_PENALTY = 10.0
# Preference episodes: after this many unhealthy steps since its last start, a fallen body
# restarts from a fresh start state inside the same fixed-length episode (0: never; it
# lies there until the time limit).
DOWN_STEPS = 25


@struct.dataclass
class PoolState:
    obs: jax.Array          # [B, *obs_shape] float32
    needs_reset: jax.Array  # [B] bool: the previous step ended an episode


def make(name: str, num_envs: int, seed: int = 0, preference_episodes: bool = False,
         down_steps: int = DOWN_STEPS, fall_penalty: float = FALL_PENALTY) -> Env:
    """A pool of ``num_envs`` copies of MuJoCo task ``name``.

    ``preference_episodes``: the paper's episodes for preference learning. No early
    termination (every episode runs the full time limit, so its length leaks nothing about
    the reward). Instead every step spent unhealthy costs ``FALL_PENALTY`` on top of the
    healthy bonus the task withholds: the bonus alone (1 per step) is less than the forward
    speed a hopper gains by diving, and a policy trained with it leans and slides, then
    falls at once under the standard (terminating) evaluation. ``fall_penalty`` sets that
    cost per unhealthy step. The reward the teacher sees
    also leaves out the control cost, which a human cannot see.

    A fallen body lies where it fell for ``down_steps`` unhealthy steps (each penalised),
    then restarts from a fresh start state; the learner sees one continuing episode (no
    termination, the 1000-step horizon unchanged). Without the restart (``down_steps=0``)
    a policy that falls early spends the rest of the episode on the ground: most segments
    then show two fallen bodies and teach nothing, and PPO on the teacher's own reward only
    learned to stand after ~650k steps (~100k with the restart).
    """
    import envpool

    no_falls = preference_episodes and name in HEALTHY_TASKS
    restart = no_falls and down_steps > 0
    kwargs = {"terminate_when_unhealthy": False} if no_falls else {}
    horizon = int(envpool.make_spec(MUJOCO_IDS[name]).config.max_episode_steps)
    if restart:  # the episode clock is ours: restarting one env must not restart it
        kwargs["max_episode_steps"] = 1 << 30
    pool = envpool.make(MUJOCO_IDS[name], env_type="gymnasium", num_envs=num_envs,
                        seed=seed, **kwargs)
    ctrl_cost = float(getattr(pool.spec.config, "ctrl_cost_weight", 0.0)) if preference_episodes else 0.0
    space = pool.action_space
    obs_shape = tuple(pool.observation_space.shape)
    spec = EnvSpec(name=name, backend="envpool", num_envs=num_envs, obs_shape=obs_shape,
                   action_shape=tuple(space.shape), num_actions=0,
                   max_episode_steps=horizon,
                   dt=MUJOCO_DT[name], vmappable=False)
    low, high = np.asarray(space.low, np.float32), np.asarray(space.high, np.float32)
    obs_struct = jax.ShapeDtypeStruct((num_envs, *obs_shape), jnp.float32)
    flag = jax.ShapeDtypeStruct((num_envs,), jnp.bool_)
    rew = jax.ShapeDtypeStruct((num_envs,), jnp.float32)

    # Host-side episode clock for restarts (the pool's own clock restarts at each reset).
    clock = {"t": np.zeros(num_envs, np.int64), "pending": np.zeros(num_envs, bool),
             "unhealthy": np.zeros(num_envs, np.int64)}

    def host_reset(_):
        obs, _info = pool.reset()
        for v in clock.values():
            v[:] = 0
        return obs.astype(np.float32)

    def host_step(action):
        action = np.asarray(action, space.dtype)
        obs, reward, term, trunc, info = pool.step(action)
        if preference_episodes:
            reward = reward + ctrl_cost * np.sum(action**2, -1)
        if not no_falls:
            return obs.astype(np.float32), reward.astype(np.float32), term, trunc
        # the healthy bonus was withheld: what is left beside the forward speed
        speed = info.get("x_velocity", np.zeros(num_envs))
        unhealthy = reward - speed < 0.5
        reward = reward - fall_penalty * unhealthy
        if restart:
            pending = clock["pending"]  # ended by our clock: this step starts a new episode
            valid = ~pending
            clock["t"] = np.where(valid, clock["t"] + 1, 0)
            trunc = valid & (clock["t"] >= horizon)
            clock["unhealthy"] = np.where(valid, clock["unhealthy"] + unhealthy, 0)
            again = ((clock["unhealthy"] >= down_steps) & ~trunc) | pending
            if again.any():
                ids = np.flatnonzero(again).astype(np.int32)
                obs = obs.copy()
                obs[ids] = pool.reset(ids)[0]
                clock["unhealthy"][again] = 0
            clock["pending"] = trunc
        return obs.astype(np.float32), reward.astype(np.float32), term, trunc

    def reset(key: jax.Array) -> PoolState:
        obs = io_callback(host_reset, obs_struct, key, ordered=True)
        return PoolState(obs, jnp.zeros(num_envs, bool))

    def step(state: PoolState, action: jax.Array):
        assert action.shape == (num_envs, *spec.action_shape), action.shape
        action = jnp.clip(action, low, high)
        obs, reward, term, trunc = io_callback(
            host_step, (obs_struct, rew, flag, flag), action, ordered=True)
        valid = ~state.needs_reset
        step = Step(obs=obs, reward=jnp.where(valid, reward, 0.0),
                    terminated=term & valid, truncated=trunc & valid, valid=valid)
        return PoolState(obs, step.terminated | step.truncated), step

    return Env(spec, reset, step, lambda s: s.obs)
