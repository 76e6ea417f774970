"""The 5x5 gridworld of the paper explainer: a hidden goal, one true reward per cell.

The agent sees a one-hot of its cell and moves stay/up/right/down/left (walls clamp). The
true reward of a step is the reward of the cell the agent acts from. The map is shaped
towards a hidden goal cell with a wall of pits to walk around, so a learned reward can be
scored cell by cell and its greedy policy checked against the exact optimum
(``value_iteration``). Pure JAX: vmappable and jittable.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from rlhp.envs.base import Env, EnvSpec, Step

SIZE = 5
NUM_CELLS = SIZE * SIZE
GOAL = (1, 3)
PITS = ((2, 1), (2, 2), (2, 3))
HORIZON = 12
# stay, up, right, down, left as (row, col) moves
MOVES = np.array([[0, 0], [-1, 0], [0, 1], [1, 0], [0, -1]], dtype=np.int32)
NUM_ACTIONS = len(MOVES)


def true_reward_map() -> np.ndarray:
    """The hidden reward of every cell, ``[SIZE, SIZE]`` float32: 1 at the goal, falling
    by 0.25 per step of Manhattan distance, -1.5 in a pit."""
    rows, cols = np.mgrid[:SIZE, :SIZE]
    r = 1.0 - 0.25 * (np.abs(rows - GOAL[0]) + np.abs(cols - GOAL[1]))
    for p in PITS:
        r[p] = -1.5
    return r.astype(np.float32)


def next_cell() -> np.ndarray:
    """``[NUM_CELLS, NUM_ACTIONS]`` int32: the cell each action leads to."""
    cells = np.arange(NUM_CELLS)
    rc = np.stack([cells // SIZE, cells % SIZE], -1)[:, None, :] + MOVES[None]
    rc = np.clip(rc, 0, SIZE - 1)
    return (rc[..., 0] * SIZE + rc[..., 1]).astype(np.int32)


def value_iteration(reward: jax.Array, gamma: float = 0.9, iters: int = 200):
    """Exact solution for a per-cell reward.

    reward: ``[NUM_CELLS]`` (or ``[SIZE, SIZE]``), the reward of acting from each cell.
    Returns ``(V [NUM_CELLS], Q [NUM_CELLS, NUM_ACTIONS])`` with
    ``Q(s, a) = R(s) + gamma * V(next(s, a))`` and ``V = max_a Q``.
    """
    reward = jnp.reshape(reward, (NUM_CELLS,))
    nxt = jnp.asarray(next_cell())

    def backup(v, _):
        return jnp.max(reward[:, None] + gamma * v[nxt], axis=1), None

    v, _ = jax.lax.scan(backup, jnp.zeros(NUM_CELLS), None, iters)
    q = reward[:, None] + gamma * v[nxt]
    return v, q


def optimal_actions(reward: jax.Array, gamma: float = 0.9, tol: float = 1e-4) -> jax.Array:
    """``[NUM_CELLS, NUM_ACTIONS]`` bool: the actions that are optimal under ``reward``."""
    _, q = value_iteration(reward, gamma)
    return q >= q.max(axis=1, keepdims=True) - tol


def greedy_optimal_share(greedy_action: jax.Array, reward: jax.Array | None = None,
                         gamma: float = 0.9) -> jax.Array:
    """Share of cells whose ``greedy_action [NUM_CELLS]`` is optimal under the true reward."""
    reward = true_reward_map() if reward is None else reward
    ok = optimal_actions(reward, gamma)
    return jnp.mean(ok[jnp.arange(NUM_CELLS), greedy_action])


def all_cells_obs() -> jax.Array:
    """``[NUM_CELLS, NUM_CELLS]`` float32: the observation of every cell (one-hot)."""
    return jnp.eye(NUM_CELLS, dtype=jnp.float32)


@struct.dataclass
class GridState:
    cell: jax.Array         # [B] int32
    t: jax.Array            # [B] int32 steps into the episode
    needs_reset: jax.Array  # [B] bool
    key: jax.Array


def make(num_envs: int) -> Env:
    spec = EnvSpec(name="gridworld", backend="gridworld", num_envs=num_envs,
                   obs_shape=(NUM_CELLS,), action_shape=(), num_actions=NUM_ACTIONS,
                   max_episode_steps=HORIZON, dt=1.0, vmappable=True)
    rewards = jnp.asarray(true_reward_map().reshape(-1))
    nxt = jnp.asarray(next_cell())

    def obs(state: GridState) -> jax.Array:
        return jax.nn.one_hot(state.cell, NUM_CELLS, dtype=jnp.float32)

    def reset(key: jax.Array) -> GridState:
        key, sub = jax.random.split(key)
        cell = jax.random.randint(sub, (num_envs,), 0, NUM_CELLS)
        return GridState(cell, jnp.zeros(num_envs, jnp.int32),
                         jnp.zeros(num_envs, bool), key)

    def step(state: GridState, action: jax.Array):
        assert action.shape == (num_envs,), action.shape
        key, sub = jax.random.split(state.key)
        fresh = jax.random.randint(sub, (num_envs,), 0, NUM_CELLS)
        moved = nxt[state.cell, action]
        reward = jnp.where(state.needs_reset, 0.0, rewards[state.cell])
        cell = jnp.where(state.needs_reset, fresh, moved)
        t = jnp.where(state.needs_reset, 0, state.t + 1)
        truncated = (t >= HORIZON) & ~state.needs_reset
        new = GridState(cell, t, truncated, key)
        return new, Step(obs=obs(new), reward=reward.astype(jnp.float32),
                         terminated=jnp.zeros(num_envs, bool), truncated=truncated,
                         valid=~state.needs_reset)

    return Env(spec, reset, step, obs)
