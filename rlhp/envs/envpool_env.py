"""envpool backend: C++ MuJoCo (and later Atari) pools stepped from inside the jitted step.

The pool lives on the host. ``reset`` and ``step`` are ``io_callback``s (ordered), so the
rest of the program stays one jitted function. We do not use envpool's ``xla()`` handle:
its MuJoCo tasks demand float64 actions, which would need ``jax_enable_x64`` for the whole
program; the callback converts float32 to float64 at the boundary instead (measured here:
~16k steps/s through the callback at 16 envs against ~25k for bare Python stepping).

A pool cannot be vmapped; a sweep's env has one pool per member, each seeded as that
member's run seeds its own, each device stepping its own members' pools in one callback
(``rlhp.envs.members``).
"""
from __future__ import annotations

from typing import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from rlhp.envs.base import Env, EnvSpec, Step, Task, TaskStep
from rlhp.envs.members import Pools, host_call, per_member

MUJOCO_IDS = {
    "hopper": "Hopper-v5",
    "halfcheetah": "HalfCheetah-v5",
    "walker2d": "Walker2d-v5",
    "ant": "Ant-v5",
    "swimmer": "Swimmer-v5",
    "reacher": "Reacher-v5",
    "inverted_pendulum": "InvertedPendulum-v5",
    "inverted_double_pendulum": "InvertedDoublePendulum-v5",
    "hopper-backflip": "Hopper-v5",
    "halfcheetah-oneleg": "HalfCheetah-v5",
}
# Seconds of task time per env step (MuJoCo timestep x frame skip of each v5 task).
MUJOCO_DT = {
    "hopper": 0.008, "halfcheetah": 0.05, "walker2d": 0.008, "ant": 0.05,
    "swimmer": 0.04, "reacher": 0.02, "inverted_pendulum": 0.04,
    "inverted_double_pendulum": 0.05, "hopper-backflip": 0.008,
    "halfcheetah-oneleg": 0.05,
}


def backflip(obs: jax.Array, action: jax.Array) -> jax.Array:
    """The hand-written Hopper backflip reward of the paper's blog post ("we took two hours
    to write our own reward function"): ``obs [B, 11]`` after the step, ``action [B, 3]``
    -> ``[B]``. Backward roll (minus the torso's angular velocity, ``obs[7]``), weighted up
    by height, by the joints' power and by sliding backward."""
    height, backslide = obs[:, 0], -obs[:, 5]
    power = jnp.sum(action * obs[:, 8:11], -1)
    return -obs[:, 7] * (1.0 + 0.3 * height + 0.1 * power + 0.05 * backslide)


def one_leg(obs: jax.Array, action: jax.Array) -> jax.Array:
    """A hand-written stand-in for the paper's "HalfCheetah moving forward while standing
    on one leg": ``obs [B, 17]`` after the step -> ``[B]``. It pays for the torso pitched
    nose up by about 0.8 rad (``obs[1]``, negative nose up; the back leg then carries the
    body, the front one is in the air), times one plus the forward speed (``obs[8]``)."""
    pose = jnp.exp(-jnp.square((obs[:, 1] + 0.8) / 0.3))
    return pose * (1.0 + obs[:, 8])


# Behaviours without a task reward: a v5 body whose reward is a hand-written target, with no
# health rule (a flip is not a fall) and no termination, over the standard time limit.
# Learning one from preferences asks its synthetic teacher to judge clips by the target;
# ``--reward=true`` is RL on the hand-written reward itself.
TARGETS = {"hopper-backflip": backflip, "halfcheetah-oneleg": one_leg}


def pool_kwargs(name: str, preference: bool = False) -> dict:
    """envpool task arguments of ``name``: no termination for targets, nor for tasks with a
    health rule in ``preference`` episodes (which judge falls themselves)."""
    healthy_ends = MUJOCO_IDS[name] in {MUJOCO_IDS[t] for t in HEALTH_RULES}
    unended = healthy_ends and (name in TARGETS or preference)
    return {"terminate_when_unhealthy": False} if unended else {}


@struct.dataclass
class PoolState:
    obs: jax.Array          # [B, *obs_shape] float32
    needs_reset: jax.Array  # [B] bool: the previous step ended an episode


def make(name: str, num_envs: int, seed: int | Sequence[int] = 0) -> Env:
    """A pool of ``num_envs`` copies of MuJoCo task ``name``: the standard v5 task (its
    reward, its termination when unhealthy, its time limit; the pool auto-resets).
    ``seed``: the pool's, or one per member of a sweep (``rlhp.envs.members``)."""
    import envpool

    pools = pools_of(lambda s: envpool.make(MUJOCO_IDS[name], env_type="gymnasium",
                                            num_envs=num_envs, seed=s, **pool_kwargs(name)),
                     seed)
    spec, low, high, obs_struct = pool_facts(name, pools, num_envs, seed)
    target = TARGETS.get(name)
    flag = jax.ShapeDtypeStruct((num_envs,), jnp.bool_)
    rew = jax.ShapeDtypeStruct((num_envs,), jnp.float32)
    dtype = pools.any.action_space.dtype

    def host_step(first, action):
        obs, reward, term, trunc = pools.step(first, np.asarray(action, dtype))
        return obs.astype(np.float32), reward.astype(np.float32), term, trunc

    pool_reset = first_observations(pools, obs_struct)
    pool_step = per_member(
        lambda first, a: host_call(host_step, (obs_struct, rew, flag, flag), first, a),
        len(pools))

    def reset(key: jax.Array) -> PoolState:
        return PoolState(pool_reset(key), jnp.zeros(num_envs, bool))

    def step(state: PoolState, action: jax.Array):
        assert action.shape == (num_envs, *spec.action_shape), action.shape
        action = jnp.clip(action, low, high)
        obs, reward, term, trunc = pool_step(action)
        if target is not None:
            reward = target(obs, action)
        valid = ~state.needs_reset
        step = Step(obs=obs, reward=jnp.where(valid, reward, 0.0),
                    terminated=term & valid, truncated=trunc & valid, valid=valid)
        return PoolState(obs, step.terminated | step.truncated), step

    return Env(spec, reset, step, lambda s: s.obs)


def task(name: str, num_envs: int, seed: int | Sequence[int] = 0) -> Task:
    """The bare task (``rlhp.envs.base.Task``) of a pool of ``num_envs`` copies of
    ``name`` (``seed`` as in ``make``): the pool never ends an episode itself (no
    termination when unhealthy, no time limit of its own); ``restart`` resets the masked
    envs through the host (``pool.reset(ids)``), only on steps where some env restarts.
    The health rule is the v5 task's own, read from the observation in JAX
    (``health_rule``); the reward with the control cost added back is computed in float64
    on the host, as envpool computes."""
    import envpool

    pools = pools_of(lambda s: envpool.make(MUJOCO_IDS[name], env_type="gymnasium",
                                            num_envs=num_envs, seed=s, max_episode_steps=1 << 30,
                                            **pool_kwargs(name, preference=True)), seed)
    spec, low, high, obs_struct = pool_facts(name, pools, num_envs, seed)
    config = pools.any.spec.config
    ctrl_cost = float(getattr(config, "ctrl_cost_weight", 0.0))
    healthy = health_rule(name, config)
    target = TARGETS.get(name)
    vec = jax.ShapeDtypeStruct((num_envs,), jnp.float32)
    flag = jax.ShapeDtypeStruct((num_envs,), jnp.bool_)
    dtype = pools.any.action_space.dtype

    def host_step(first, action):
        action = np.asarray(action, dtype)
        obs, reward, term, _trunc = pools.step(first, action)
        seen = reward + ctrl_cost * np.sum(action**2, -1)  # float64
        hi = seen.astype(np.float32)
        return obs.astype(np.float32), hi, (seen - hi).astype(np.float32), term

    def fresh(first, obs, mask):  # [M', B, *obs_shape], [M', B]: new starts where masked
        return jax.lax.cond(mask.any(), lambda: host_call(pools.reset_some, obs_struct, first,
                                                          obs, mask), lambda: obs)

    pool_reset = first_observations(pools, obs_struct)
    pool_step = per_member(
        lambda first, a: host_call(host_step, (obs_struct, vec, vec, flag), first, a),
        len(pools))
    pool_restart = per_member(fresh, len(pools))

    def step(obs: jax.Array, action: jax.Array):
        assert action.shape == (num_envs, *spec.action_shape), action.shape
        action = jnp.clip(action, low, high)
        obs, seen, seen_lo, term = pool_step(action)
        if target is not None:  # the target is what a person would judge here
            seen, seen_lo = target(obs, action), jnp.zeros_like(seen_lo)
        return obs, TaskStep(obs=obs, seen=seen, seen_lo=seen_lo, healthy=healthy(obs),
                             terminated=term)

    return Task(spec, pool_reset, step, pool_restart, lambda obs: obs)


def first_observations(pools: Pools, obs_struct) -> Callable:
    """``reset(key) -> obs [B, *obs_shape]`` float32: every env of the member's pool
    afresh (the pools are seeded when made; the key only orders the call)."""
    return per_member(lambda first, key: host_call(
        lambda f, k: pools.reset(f, k).astype(np.float32), obs_struct, first, key), len(pools))


def for_members(seed: int | Sequence[int]) -> bool:
    """Whether ``seed`` is a sweep's, one per member (else a run's single seed)."""
    return not isinstance(seed, (int, np.integer))


def pools_of(make: Callable, seed: int | Sequence[int]) -> Pools:
    """``make(seed)``'s pool for a run; for a sweep, one per member, ``make(seed[m])``,
    made only for the members this process holds (``rlhp.envs.members.held``)."""
    sweep = for_members(seed)
    return Pools(make, tuple(seed) if sweep else (seed,), sweep)


def pool_facts(name: str, pools: Pools, num_envs: int, seed):
    """``(spec, action low, action high, obs ShapeDtypeStruct [B, *obs_shape])`` of
    ``pools``; the spec's time limit is the standard task's, and a sweep's pools (``seed``
    a sequence) make a vmappable env of ``len(seed)`` members."""
    import envpool

    space = pools.any.action_space
    obs_shape = tuple(pools.any.observation_space.shape)
    horizon = int(envpool.make_spec(MUJOCO_IDS[name]).config.max_episode_steps)
    sweep = for_members(seed)
    spec = EnvSpec(name=name, backend="envpool", num_envs=num_envs, obs_shape=obs_shape,
                   action_shape=tuple(space.shape), num_actions=0, max_episode_steps=horizon,
                   dt=MUJOCO_DT[name], vmappable=sweep, members=len(pools) if sweep else 0)
    return (spec, np.asarray(space.low, np.float32), np.asarray(space.high, np.float32),
            jax.ShapeDtypeStruct((num_envs, *obs_shape), jnp.float32))


def hopper_health(c):
    """Hopper-v5: torso z above ``healthy_z_min``, torso angle and every other entry of
    ``qpos[2:] ++ qvel`` strictly inside their ranges. The observation is ``qpos[1:] ++
    qvel`` with velocities clipped to +-10, so the +-100 velocity bound never binds here
    (only a body spinning faster than 100 rad/s would tell the two apart)."""
    def healthy(obs):
        z, angle, state = obs[:, 0], obs[:, 1], obs[:, 1:]
        return ((z > c.healthy_z_min) & (angle > c.healthy_angle_min)
                & (angle < c.healthy_angle_max)
                & jnp.all((state > c.healthy_state_min) & (state < c.healthy_state_max), -1))
    return healthy


def walker2d_health(c):
    """Walker2d-v5: torso z and angle (``obs[0]``, ``obs[1]`` = ``qpos[1:3]``) inside
    their closed ranges."""
    def healthy(obs):
        z, angle = obs[:, 0], obs[:, 1]
        return ((z >= c.healthy_z_min) & (z <= c.healthy_z_max)
                & (angle >= c.healthy_angle_min) & (angle <= c.healthy_angle_max))
    return healthy


def ant_health(c):
    """Ant-v5: torso z (``obs[0]`` = ``qpos[2]``, x and y being excluded) inside its
    closed range and a finite state."""
    def healthy(obs):
        z = obs[:, 0]
        return (z >= c.healthy_z_min) & (z <= c.healthy_z_max) & jnp.isfinite(obs).all(-1)
    return healthy


# The v5 tasks that end an episode when the body is unhealthy, and their health rule as a
# function of the pool's config (envpool's ``IsHealthy``, the same as gymnasium's).
HEALTH_RULES = {"hopper": hopper_health, "walker2d": walker2d_health, "ant": ant_health}


def health_rule(name: str, config):
    """``healthy(obs [B, *obs_shape]) -> [B] bool``: task ``name``'s own health rule with
    the ranges of ``config`` (a pool spec's config); always True for tasks without one."""
    if name in HEALTH_RULES:
        return HEALTH_RULES[name](config)
    return lambda obs: jnp.ones(obs.shape[0], bool)
