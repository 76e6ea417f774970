"""What r-hat pays for on a run's own final-policy states.

    python -m experiments.reward_probe RUN_DIR [--feature 5] [--shifts 0.5,1,2,3]

Replays the run's final evaluation (``rlhp.outputs.video.evaluation``) from its last
checkpoint, keeps the policy's states (the first ``--steps`` of each episode), and prints
r-hat as the policy gets it (``learner.predict``: members normalised, averaged):
- its mean per step on those states;
- per observation feature ``j``: the mean gradient ``d r-hat / d obs_j`` times that feature's
  std over the run's transitions (what one typical change of the feature is worth);
- per shift ``s`` of ``--feature`` (Hopper's x-velocity, ``obs[5]``, by default): how much
  r-hat per step changes when that feature of every kept state is raised by ``s``.

On a standing Hopper policy this shows whether r-hat rewards speed at all beyond the speeds
its labels covered (docs/hopper-falls.md).
"""
from __future__ import annotations

import argparse

import numpy as np


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run_dir")
    p.add_argument("--feature", type=int, default=5, help="observation index to shift")
    p.add_argument("--shifts", default="0.5,1,2,3", help="comma-separated shifts")
    p.add_argument("--steps", type=int, default=200, help="states kept per episode")
    args = p.parse_args(argv)
    import jax
    import jax.numpy as jnp

    from experiments.health_probe import replay
    trainer, state, (returns, _, kept) = replay(args.run_dir, lambda s, a: (s.obs, a))
    cfg, learner = trainer.cfg, trainer.learner
    obs = np.concatenate([o for o, _ in kept[1:args.steps + 1]])      # [steps x E, obs_dim]
    action = np.concatenate([a for _, a in kept[1:args.steps + 1]])   # [steps x E, A]

    def mean_rhat(o):  # [N, obs_dim] -> r-hat per step, averaged
        return learner.predict(state.pref, o, action, cfg.reward_std).mean()

    base = float(mean_rhat(obs))
    slope = np.asarray(jax.grad(lambda o: mean_rhat(o) * len(o))(jnp.asarray(obs))).mean(0)
    std = np.sqrt(np.asarray(state.pref.obs_stats.var))
    print(f"{args.run_dir}: standard return {returns.mean():,.0f}; r-hat {base:+.3f} per step "
          f"on {len(obs):,} of its states")
    print(" j   state mean   d r-hat/d obs_j x std_j")
    for j, (m, g) in enumerate(zip(obs.mean(0), slope * std)):
        print(f"{j:2d}   {m:+10.3f}   {g:+.3f}")
    for s in map(float, args.shifts.split(",")):
        shifted = obs.copy()
        shifted[:, args.feature] += s
        print(f"obs[{args.feature}] + {s:g}: r-hat per step {float(mean_rhat(shifted)) - base:+.3f}")


if __name__ == "__main__":
    main()
