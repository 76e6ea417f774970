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
# How preference episodes treat a fall: "lie" (the body stays down, FALL_PENALTY per step
# until the time limit) or "reset" (one penalty of FALL_RESET_PENALTY, then the env restarts
# from a fresh start state inside the same fixed-length episode).
FALL_MODES = ("lie", "reset", "frame")
FALL_RESET_PENALTY = 100.0


@struct.dataclass
class PoolState:
    obs: jax.Array          # [B, *obs_shape] float32
    needs_reset: jax.Array  # [B] bool: the previous step ended an episode


def make(name: str, num_envs: int, seed: int = 0, preference_episodes: bool = False,
         fall: str = "lie", fall_penalty: float | None = None,
         down_steps: int = 0) -> Env:
    """A pool of ``num_envs`` copies of MuJoCo task ``name``.

    ``preference_episodes``: the paper's episodes for preference learning. No early
    termination (every episode runs the full time limit, so its length leaks nothing about
    the reward). Instead every step spent unhealthy costs ``FALL_PENALTY`` on top of the
    healthy bonus the task withholds: the bonus alone (1 per step) is less than the forward
    speed a hopper gains by diving, and a policy trained with it leans and slides, then
    falls at once under the standard (terminating) evaluation. The reward the teacher sees
    also leaves out the control cost, which a human cannot see.
    """
    import envpool

    assert fall in FALL_MODES, fall
    no_falls = preference_episodes and name in HEALTHY_TASKS
    reset_on_fall = no_falls and (fall != "lie" or down_steps > 0)
    if fall_penalty is None:
        fall_penalty = FALL_PENALTY if fall == "lie" else FALL_RESET_PENALTY
    kwargs = {"terminate_when_unhealthy": False} if no_falls else {}
    horizon = int(envpool.make_spec(MUJOCO_IDS[name]).config.max_episode_steps)
    if reset_on_fall:  # the episode clock is ours: a reset of one env must not restart it
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

    # Host-side episode clock for reset-on-fall (the pool's own clock restarts at each reset).
    clock = {"t": np.zeros(num_envs, np.int64), "pending": np.zeros(num_envs, bool),
             "down": np.zeros(num_envs, bool), "unhealthy": np.zeros(num_envs, np.int64)}

    def host_reset(_):
        obs, _info = pool.reset()
        for v in clock.values():
            v[:] = 0
        return obs.astype(np.float32)

    def host_step(action):
        action = np.asarray(action, space.dtype)
        obs, reward, term, trunc, info = pool.step(action)
        if not no_falls:
            if preference_episodes:
                reward = reward + ctrl_cost * np.sum(action**2, -1)
            return obs.astype(np.float32), reward.astype(np.float32), term, trunc
        speed = info.get("x_velocity", np.zeros(num_envs))
        reward = reward + ctrl_cost * np.sum(action**2, -1)
        # healthy bonus withheld: what is left beside forward speed
        unhealthy = reward - speed < 0.5
        if not reset_on_fall:
            reward = reward - fall_penalty * unhealthy
            return obs.astype(np.float32), reward.astype(np.float32), term, trunc
        pending, down = clock["pending"], clock["down"]
        valid = ~pending
        clock["t"] = np.where(valid, clock["t"] + 1, 0)
        trunc = valid & (clock["t"] >= horizon)
        if fall == "lie":
            # the body lies where it fell, each unhealthy step penalised, until it has been
            # unhealthy for down_steps steps since its last start; then it restarts
            hurt = valid & unhealthy
            reward = reward - fall_penalty * hurt
            clock["unhealthy"] = np.where(valid, clock["unhealthy"] + hurt, 0)
            again = ((clock["unhealthy"] >= down_steps) & ~trunc) | pending
        elif fall == "frame":
            # a fall shows its fallen frame; the next step (its action ignored) costs the
            # penalty and restarts the body
            penalised = down & valid
            reward = np.where(penalised, -fall_penalty, reward)
            again = (penalised & ~trunc) | pending
            clock["down"] = valid & ~penalised & unhealthy & ~trunc
        else:
            # the penalty lands on the step into the fall, which returns the restarted body
            fell = valid & unhealthy
            reward = reward - fall_penalty * fell
            again = (fell & ~trunc) | pending
        if again.any():
            clock["unhealthy"][again] = 0
            ids = np.flatnonzero(again).astype(np.int32)
            obs = obs.copy()
            obs[ids] = pool.reset(ids)[0]
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
