"""r-hat against the teacher's per-step reward, on a run's final policy and on a random one.

    python -m experiments.reward_map RUN_DIR [--bins=-5,0.5,1.5,2.5,3.5] [--rollouts 12]

Restores the run's last checkpoint and rolls out, in its training (preference) episodes
started afresh, its final policy and a freshly initialised (random) policy, ``--rollouts``
iterations each. Each step's r-hat (as the policy gets it: members normalised, averaged) is
binned by the teacher's reward for that step; per bin it prints the steps, the teacher's
mean and r-hat's mean and std. Where r-hat's means do not rise with the teacher's across
the bins, a policy climbing r-hat must pass through states r-hat ranks below where it
stands: on Hopper, a random policy's upright steps at 0.5-1.5 m/s against standing still
(docs/hopper-valley.md). Last, how many of the rollout's windows with a moving step also
hold a fallen one (``--window``, ``--moving``, ``--fallen``).
"""
from __future__ import annotations

import argparse

import numpy as np


def binned(teacher: np.ndarray, r_hat: np.ndarray, edges) -> list[tuple]:
    """Rows ``(label, steps, teacher mean, r-hat mean, r-hat std)`` for the non-empty bins
    of ``teacher [N]`` cut at ``edges`` (ascending), with ``r_hat [N]`` alongside."""
    cuts = [-np.inf, *edges, np.inf]
    rows = []
    for lo, hi in zip(cuts[:-1], cuts[1:]):
        m = (teacher >= lo) & (teacher < hi)
        if m.any():
            rows.append((f"[{lo:g}, {hi:g})", int(m.sum()), float(teacher[m].mean()),
                         float(r_hat[m].mean()), float(r_hat[m].std())))
    return rows


def co_occurrence(teacher: np.ndarray, length: int, moving: float, fallen: float):
    """Of the back-to-back ``length``-step windows of ``teacher [T, B]`` (per env), how many
    hold a step worth ``>= moving`` and how many of those also a step worth ``< fallen``."""
    T = teacher.shape[0] // length * length
    w = teacher[:T].reshape(T // length, length, -1)
    has_moving, has_fall = (w >= moving).any(1), (w < fallen).any(1)
    return int(has_moving.sum()), int((has_moving & has_fall).sum())


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run_dir")
    p.add_argument("--bins", default="-5,0.5,1.5,2.5,3.5",
                   help="comma-separated edges of the teacher's per-step reward")
    p.add_argument("--rollouts", type=int, default=12, help="iterations rolled out per policy")
    p.add_argument("--seed", type=int, default=123, help="seed of the random policy")
    p.add_argument("--window", type=int, default=0,
                   help="steps per window of the co-occurrence count (0: the run's segment length)")
    p.add_argument("--moving", type=float, default=1.5,
                   help="a step worth at least this to the teacher counts as moving upright")
    p.add_argument("--fallen", type=float, default=-5.0,
                   help="a step worth less than this to the teacher counts as fallen")
    args = p.parse_args(argv)
    import jax

    from experiments.run_dirs import restore_run
    from rlhp.train import restart_episodes
    cfg, trainer, state, _ = restore_run(args.run_dir)
    if cfg.reward != "learned":
        raise SystemExit(f"{args.run_dir}: reward={cfg.reward!r} has no r-hat to map")
    edges = [float(x) for x in args.bins.split(",")]
    rollout = jax.jit(trainer.rollout)
    predict = jax.jit(lambda o, a: trainer.learner.predict(state.pref, o, a, cfg.reward_std))
    random_policy = trainer.agent.init(jax.random.PRNGKey(args.seed), state.obs)
    # every env restarts its episode first: the observation saved with the checkpoint is not
    # the one a host pool (envpool) holds after a restore or after the other policy's turn
    restart = jax.jit(lambda s: restart_episodes(trainer, s, jax.random.PRNGKey(args.seed)))
    for name, s in [("final policy", state), ("random policy", state.replace(agent=random_policy))]:
        s = restart(s)
        r_hat, series, valid = [], [], []
        for _ in range(args.rollouts):
            s, ro = rollout(s)
            r_hat.append(np.asarray(predict(ro.obs, ro.action)))
            series.append(np.asarray(ro.step.reward))
            valid.append(np.asarray(ro.step.valid))
        valid = np.concatenate(valid)
        teacher, r_hat = np.concatenate(series)[valid], np.concatenate(r_hat)[valid]
        L = args.window or trainer.learner.segment_length
        moving, both = co_occurrence(np.concatenate(series), L, args.moving, args.fallen)
        print(f"{args.run_dir}, {name}: {len(teacher):,} steps; teacher {teacher.mean():+.2f}, "
              f"r-hat {r_hat.mean():+.3f} per step")
        print("  teacher's reward      steps   teacher   r-hat (std)")
        for label, n, t, r, sd in binned(teacher, r_hat, edges):
            print(f"  {label:<18} {n:8,}   {t:+7.2f}   {r:+.3f} ({sd:.3f})")
        print(f"  {L}-step windows with a step worth >= "
              f"{args.moving:g}: {moving:,}; of those also with a step < {args.fallen:g}: "
              f"{both:,} ({both / max(moving, 1):.0%})")


if __name__ == "__main__":
    main()
