"""Task-specific figures for the summary (gridworld's exact-optimum scores)."""
from __future__ import annotations

import jax.numpy as jnp

from rlhp.envs import gridworld


def task_metrics(trainer, state) -> dict:
    """Extra summary figures for tasks with a known optimum.

    gridworld: ``policy_optimal``, the share of cells whose greedy action of the trained
    policy is optimal under the true reward; ``optimal_policy``, the same share for the
    greedy policy of the reward the learner optimised (DESIGN.md's definition; 1.0 by
    construction when that reward is the true one); ``reward_match``, the correlation of
    that reward with the true one per cell.
    """
    if trainer.env.spec.name != "gridworld":
        return {}
    obs = gridworld.all_cells_obs()
    head, _, _ = trainer.network.apply(state.params, trainer.policy_obs(state, obs))
    policy_optimal = gridworld.greedy_optimal_share(jnp.argmax(head, -1))
    true = jnp.asarray(gridworld.true_reward_map()).reshape(-1)
    _, q = gridworld.value_iteration(true)
    return {"policy_optimal": float(policy_optimal),
            "optimal_policy": float(gridworld.greedy_optimal_share(jnp.argmax(q, -1))),
            "reward_match": float(jnp.corrcoef(true, true)[0, 1])}
