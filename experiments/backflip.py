"""Behaviours nobody wrote a task reward for, learned without a human: the Hopper backflip
(and HalfCheetah on one leg: ``--env=halfcheetah-oneleg`` runs in the same commands).

    python -m rlhp.run --env=hopper-backflip --run-dir runs/backflip-learned
    python -m rlhp.run --env=hopper-backflip --reward=true --run-dir runs/backflip-true
    python -m experiments.backflip runs/backflip-learned runs/backflip-true \\
        --frames docs/backflip_frames.png

``hopper-backflip`` (``rlhp.envs.envpool_env.TARGETS``) judges Hopper by the blog post's
hand-written backflip reward. The learned run's synthetic teacher compares clips by that
target, as a person would by eye; ``--reward=true`` is RL on the hand-written reward
itself, the post's comparison. For each run this prints its labels, the final
evaluation's target return, how many backward turns the torso makes per episode (its
hinge angle, ``obs[1]`` on both bodies, is not wrapped: one turn is -2 pi) and its mean
angle (HalfCheetah's one-leg pose: about -0.8, nose up); ``--frames`` tiles every
``--every``-th frame of the first run's ``policy.mp4`` into one picture.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np


def turns(run_dir) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(returns [E], backward turns [E], mean torso angle [E])`` of a run's final
    evaluation, replayed (the angle averaged over each episode's steps)."""
    from experiments.health_probe import replay
    _, _, (returns, lengths, kept) = replay(run_dir, lambda s, a: s.obs[:, 1])
    angle = np.stack(kept)  # [T + 1, E]: the torso's angle at the reset and after each step
    end = angle[lengths, np.arange(len(lengths))]
    steps = np.arange(1, len(angle))[:, None] <= lengths  # [T, E]: within each episode
    mean = (angle[1:] * steps).sum(0) / lengths
    return returns, (angle[0] - end) / (2 * np.pi), mean


def frame_sheet(video: Path, out: Path, every: int, columns: int = 8, rows: int = 2,
                tile: int = 160) -> None:
    """Every ``every``-th frame of ``video`` from its start, ``rows`` x ``columns`` of them
    scaled to ``tile`` pixels wide, tiled into the image ``out``."""
    import imageio.v2 as imageio
    from PIL import Image
    frames = [Image.fromarray(f[..., :3]) for f in
              imageio.mimread(video, memtest=False)[::every][:columns * rows]]
    w, h = tile, round(tile * frames[0].height / frames[0].width)
    sheet = Image.new("RGB", (w * columns, h * rows))
    for i, f in enumerate(frames):
        sheet.paste(f.resize((w, h)), ((i % columns) * w, (i // columns) * h))
    sheet.quantize(128).save(out, optimize=True)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run_dirs", nargs="+", type=Path)
    p.add_argument("--frames", type=Path, help="PNG of the first run's policy.mp4")
    p.add_argument("--every", type=int, default=4, help="frames between tiles")
    args = p.parse_args(argv)
    print("| run | reward | labels | target return | backward turns per episode | "
          "mean torso angle (rad) |")
    print("| --- | --- | --- | --- | --- | --- |")
    for run_dir in args.run_dirs:
        summary = json.loads((run_dir / "summary.json").read_text())
        config = json.loads((run_dir / "config.json").read_text())
        returns, n, angle = turns(run_dir)
        labels = summary.get("labels", "-") if config.get("reward") == "learned" else "-"
        print(f"| {run_dir.name} | {config.get('reward')} | {labels} | "
              f"{returns.mean():,.0f} ± {returns.std():,.0f} | "
              f"{n.mean():.1f} (min {n.min():.1f}, max {n.max():.1f}) | {angle.mean():+.2f} |")
    if args.frames:
        frame_sheet(args.run_dirs[0] / "policy.mp4", args.frames, args.every)
        print(f"wrote {args.frames}")


if __name__ == "__main__":
    main()
