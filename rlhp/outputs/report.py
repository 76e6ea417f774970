"""Task-specific figures for the summary (gridworld's exact-optimum scores)."""
from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from rlhp.envs import gridworld


def learned_cell_reward(trainer, state) -> jnp.ndarray:
    """Gridworld r-hat per cell ``[NUM_CELLS]``: the ensemble's normalised reward averaged
    over members and actions."""
    learner = trainer.learner
    obs = jnp.repeat(gridworld.all_cells_obs()[:, None], gridworld.NUM_ACTIONS, 1)  # [25, 5, 25]
    act = jnp.broadcast_to(jnp.arange(gridworld.NUM_ACTIONS), obs.shape[:2])
    return learner.predict(state.pref, obs, act, 1.0).mean(-1)                      # [25]


def task_metrics(trainer, state) -> dict:
    """Extra summary figures for tasks with a known optimum.

    gridworld: ``policy_optimal``, the share of cells whose greedy action of the trained
    policy is optimal under the true reward; ``optimal_policy``, the same share for the
    greedy policy (by value iteration) of the reward the learner optimised, r-hat or the
    true one (then 1.0 by construction); ``reward_match``, the correlation of that reward
    with the true one over cells.
    """
    if trainer.env.spec.name != "gridworld":
        return {}
    obs = gridworld.all_cells_obs()
    true = jnp.asarray(gridworld.true_reward_map()).reshape(-1)
    learned = learned_cell_reward(trainer, state) if trainer.learner else true
    _, q = gridworld.value_iteration(learned)
    return {"policy_optimal": float(gridworld.greedy_optimal_share(trainer.act(state, obs))),
            "optimal_policy": float(gridworld.greedy_optimal_share(jnp.argmax(q, -1))),
            "reward_match": float(jnp.corrcoef(true, learned)[0, 1])}


def segment_rewards(trainer, state, reward_std: float = 1.0):
    """r-hat and the teacher's true reward of every step of the buffered segments.

    Returns numpy ``(r_hat [N], true [N])`` over the ``N = filled * L`` buffered steps.
    """
    pref = state.pref
    seg = pref.segments
    obs = trainer.learner.store.unpack(seg.obs)                                   # [S, L, ...]
    r_hat = trainer.learner.predict(pref, obs, seg.action, reward_std)          # [S, L]
    keep = np.asarray(seg.filled)
    return np.asarray(r_hat)[keep].ravel(), np.asarray(seg.true_reward)[keep].ravel()
