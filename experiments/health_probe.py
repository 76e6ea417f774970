"""Where a MuJoCo run's standard evaluation episodes end, and why.

    python -m experiments.health_probe RUN_DIR

Replays the run's final evaluation (``rlhp.outputs.video.evaluation``: the same env, pool
seed and key) from its last checkpoint and prints each episode's length and return, and the
torso's height and angle (``obs[0]``, ``obs[1]`` on Hopper and Walker2d) at the step that
ended it: the health rule a policy broke (Hopper-v5: height 0.7 or lower, or an angle
outside +-0.2), so a "hop and fall" run can be told from a slow one.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np


def replay(run_dir, pick):
    """A finished or stopped run's final evaluation replayed from its last checkpoint:
    ``(trainer, state, (returns [E], lengths [E], kept))`` as
    ``rlhp.outputs.video.evaluation`` gives them for ``pick(env_state, action)``."""
    from rlhp import run
    from rlhp.outputs.video import evaluation
    cfg, _ = run.build_config(run.parse_args(["--resume", "--run-dir", str(run_dir)]))
    trainer, _, restored = run.prepare(cfg, Path(run_dir), True)
    return trainer, restored[0], evaluation(trainer, restored[0], pick)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run_dir")
    args = p.parse_args(argv)
    _, _, (returns, lengths, kept) = replay(args.run_dir, lambda s, a: s.obs)
    obs = np.stack(kept)  # [T + 1, E, obs_dim]: the reset, then after each step
    for i, (ret, n) in enumerate(zip(returns, lengths)):
        z, angle = obs[n, i, 0], obs[n, i, 1]
        print(f"episode {i:2d}: {n:4d} steps, return {ret:7,.0f}; at its end height {z:.3f}, "
              f"angle {angle:+.3f}")
    print(f"mean return {returns.mean():,.0f}, mean length {lengths.mean():.0f}")


if __name__ == "__main__":
    main()
