import jax.numpy as jnp
import numpy as np
import pytest

from rlhp.envs import gridworld

STAY, UP, RIGHT, DOWN, LEFT = range(5)


def test_value_iteration_hand_case():
    """Reward 1 in cell (0, 0) only, gamma 0.9: V(goal) = 1/(1-0.9) = 10, the cell to its
    right can reach it in one move, V = 0 + 0.9*10 = 9, two moves away V = 8.1."""
    r = np.zeros((5, 5), np.float32); r[0, 0] = 1.0
    v, q = gridworld.value_iteration(jnp.asarray(r), gamma=0.9)
    np.testing.assert_allclose(v[0], 10.0, rtol=1e-4)
    np.testing.assert_allclose(v[1], 9.0, rtol=1e-4)
    np.testing.assert_allclose(v[2], 8.1, rtol=1e-4)
    np.testing.assert_allclose(v[6], 8.1, rtol=1e-4)  # (1, 1): diagonal, two moves
    ok = np.asarray(gridworld.optimal_actions(jnp.asarray(r)))
    assert ok[0].tolist() == [True, True, False, False, True]  # stay (or bump a wall)
    assert ok[1].tolist() == [False, False, False, False, True]  # only left
    assert ok[6].tolist() == [False, True, False, False, True]  # up or left


def test_true_map_goal_and_pits():
    r = gridworld.true_reward_map()
    assert r.shape == (5, 5) and r[gridworld.GOAL] == r.max() == 1.0
    for p in gridworld.PITS:
        assert r[p] == r.min()
    ok = np.asarray(gridworld.optimal_actions(jnp.asarray(r)))
    goal = gridworld.GOAL[0] * 5 + gridworld.GOAL[1]
    assert ok[goal, STAY]
    # never step into a pit: from (2, 0) moving right enters pit (2, 1)
    assert not ok[10, RIGHT]


def test_greedy_optimal_share():
    r = gridworld.true_reward_map()
    _, q = gridworld.value_iteration(jnp.asarray(r))
    assert float(gridworld.greedy_optimal_share(jnp.argmax(q, -1))) == 1.0
    # always staying is optimal only at the goal
    share = float(gridworld.greedy_optimal_share(jnp.zeros(25, jnp.int32)))
    assert share == pytest.approx(1 / 25)
