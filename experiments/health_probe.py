"""Where a MuJoCo run's standard evaluation episodes end, and why.

    python -m experiments.health_probe RUN_DIR

Replays the run's final evaluation (``rlhp.outputs.video.evaluation``: the same env, pool
seed and key) from its last checkpoint and prints each episode's length and return, and the
torso's height and angle (``obs[0]``, ``obs[1]`` on Hopper and Walker2d) at the step that
ended it: the health rule a policy broke (Hopper-v5: height 0.7 or lower, or an angle
outside +-0.2), so a "hop and fall" run can be told from a slow one; and what the task's
control cost took from each return (the teacher of preference runs never sees it, so a
learned policy may spend torque freely: Reacher charges 1 per unit of squared action).
"""
from __future__ import annotations

import argparse

import numpy as np


def replay(run_dir, pick):
    """A finished or stopped run's final evaluation replayed from its last checkpoint:
    ``(trainer, state, (returns [E], lengths [E], kept))`` as
    ``rlhp.outputs.video.evaluation`` gives them for ``pick(env_state, action)``."""
    from experiments.run_dirs import restore_run
    from rlhp.outputs.video import evaluation
    _, trainer, state, _ = restore_run(run_dir)
    return trainer, state, evaluation(trainer, state, pick)


def control_costs(actions, lengths, weight: float, low, high) -> np.ndarray:
    """Each episode's control cost ``[E]``: ``weight`` x the sum over its steps ``1..n`` of
    the squared actions as the env clips them to ``[low, high]``; ``actions [T, E, A]``."""
    cost = weight * np.square(np.clip(actions, low, high)).sum(-1)  # [T, E]
    return np.array([cost[:n, i].sum() for i, n in enumerate(lengths)])


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run_dir")
    args = p.parse_args(argv)
    import envpool
    import jax.numpy as jnp

    from rlhp.envs.envpool_env import MUJOCO_IDS
    trainer, _, (returns, lengths, kept) = replay(
        args.run_dir, lambda s, a: (s.obs, jnp.zeros(()) if a is None else a))
    spec = envpool.make_spec(MUJOCO_IDS[trainer.cfg.env])
    weight = float(getattr(spec.config, "ctrl_cost_weight", 0.0))
    low, high = spec.action_space.low, spec.action_space.high
    obs = np.stack([o for o, _ in kept])  # [T + 1, E, obs_dim]: the reset, then each step
    control = control_costs(np.stack([a for _, a in kept[1:]]), lengths, weight, low, high)
    for i, (ret, n) in enumerate(zip(returns, lengths)):
        z, angle = obs[n, i, 0], obs[n, i, 1]
        print(f"episode {i:2d}: {n:4d} steps, return {ret:7,.1f} (control cost "
              f"{control[i]:,.1f}); at its end obs[0] (height) {z:.3f}, obs[1] (angle) "
              f"{angle:+.3f}")
    print(f"mean return {returns.mean():,.1f}, mean control cost {control.mean():,.1f}, "
          f"mean length {lengths.mean():.0f}")


if __name__ == "__main__":
    main()
