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


def gridworld_figures(trainer, state) -> dict:
    """Gridworld's exact-optimum figures as arrays (jittable): ``reward [NUM_CELLS]``, the
    reward the learner optimised per cell (r-hat, or the true one); ``greedy
    [NUM_CELLS]`` int, that reward's greedy action by value iteration; ``policy
    [NUM_CELLS]`` int, the trained policy's greedy action; and the scalars
    ``reward_match``, ``optimal_policy`` and ``policy_optimal`` of ``task_metrics``."""
    true = jnp.asarray(gridworld.true_reward_map()).reshape(-1)
    learned = learned_cell_reward(trainer, state) if trainer.learner else true
    _, q = gridworld.value_iteration(learned)
    greedy = jnp.argmax(q, -1)
    policy = trainer.act(state, gridworld.all_cells_obs())
    return {"reward": learned, "greedy": greedy, "policy": policy,
            "policy_optimal": gridworld.greedy_optimal_share(policy),
            "optimal_policy": gridworld.greedy_optimal_share(greedy),
            "reward_match": jnp.corrcoef(true, learned)[0, 1]}


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
    figures = gridworld_figures(trainer, state)
    return {name: float(figures[name])
            for name in ("policy_optimal", "optimal_policy", "reward_match")}


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
