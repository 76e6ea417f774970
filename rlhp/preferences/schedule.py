"""The label schedule: how many labels are due after ``T`` env steps of RL.

A share of the budget is asked before RL starts (the up-front labels); the rest arrives at
a rate proportional to ``H / (T + H)`` (the paper's MuJoCo schedule, ``H = 2e6``),
normalised so that exactly the budget is spent by the last step.
"""
from __future__ import annotations

import jax.numpy as jnp


def schedule_fraction(env_steps, total_steps, horizon, xp=jnp):
    """Share of the labels after the up-front ones that are due by env step ``env_steps``:
    the integral of a rate proportional to ``horizon / (T + horizon)``, 1 at ``total_steps``.
    ``xp=numpy`` computes it on the host (static shapes are derived from it under a trace)."""
    return xp.log1p(env_steps / horizon) / xp.log1p(total_steps / horizon)


def labels_due(env_steps, total_steps, budget, upfront_fraction, horizon=2e6):
    """Cumulative labels the schedule has asked for after ``env_steps`` steps of RL.

    ``upfront_fraction`` of the budget comes before RL starts; the rest arrives at a rate
    proportional to ``horizon / (T + horizon)`` (the paper's MuJoCo schedule), normalised
    so that exactly ``budget`` labels are asked by ``total_steps``.
    """
    upfront = jnp.round(upfront_fraction * budget)
    frac = schedule_fraction(env_steps, total_steps, horizon)
    due = jnp.floor(upfront + (budget - upfront) * jnp.minimum(frac, 1.0) + 1e-6)
    # at the last step float32 rounding can leave frac just under 1: the budget is the budget
    return jnp.where(env_steps >= total_steps, budget, due)
