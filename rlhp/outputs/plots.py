"""Pictures of a finished run, written into its directory (matplotlib, no display needed).

- ``curves.png``: training-episode true return and labels used against env steps; the
  reward model's held-out accuracy and its correlation with the true reward.
- ``reward_scatter.png``: r-hat against the teacher's true reward on buffered segments.
- ``reward_map.png`` (gridworld): true and learned reward per cell, each with the greedy
  action of its exact optimal policy drawn as arrows.
"""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from rlhp.outputs import report  # noqa: E402
from rlhp.envs import gridworld  # noqa: E402


def series(rows: list[dict], key: str):
    """``(env_steps, values)`` of the rows where ``key`` is a number."""
    pts = [(r["env_steps"], r[key]) for r in rows if r.get(key) is not None]
    return tuple(np.array(v) for v in zip(*pts)) if pts else (np.array([]), np.array([]))


def curves(rows: list[dict], path: Path, title: str) -> None:
    learned = any(r.get("labels") is not None for r in rows)
    fig, axes = plt.subplots(1, 2 if learned else 1, figsize=(11 if learned else 6, 4),
                             squeeze=False)
    ax = axes[0, 0]
    ax.plot(*series(rows, "true_return"), lw=1, color="C0")
    ax.set(xlabel="env steps", ylabel="true return (training episodes)", title=title)
    if learned:
        twin = ax.twinx()
        twin.plot(*series(rows, "labels"), color="C1", lw=1.5)
        twin.set_ylabel("labels used", color="C1")
        ax = axes[0, 1]
        ax.plot(*series(rows, "reward_val_accuracy"), label="held-out accuracy vs teacher")
        ax.plot(*series(rows, "reward_true_corr"), label="corr(r-hat, true reward)")
        ax.set(xlabel="env steps", ylim=(-1.05, 1.05), title="reward model")
        ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def scatter(r_hat: np.ndarray, true: np.ndarray, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(5, 4.5))
    ax.scatter(true, r_hat, s=3, alpha=0.3)
    corr = np.corrcoef(true, r_hat)[0, 1] if true.size > 1 and true.std() > 0 else np.nan
    ax.set(xlabel="true reward (what the teacher sees)", ylabel="r-hat (normalised)",
           title=f"buffered segments: {true.size:,} steps, corr {corr:.2f}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def reward_map(true: np.ndarray, learned: np.ndarray, path: Path) -> None:
    """true, learned: ``[NUM_CELLS]`` rewards per cell."""
    fig, axes = plt.subplots(1, 2, figsize=(9, 4.2))
    for ax, reward, name in ((axes[0], true, "true reward"), (axes[1], learned, "learned r-hat")):
        _, q = gridworld.value_iteration(reward)
        greedy = np.asarray(q).argmax(-1)
        grid = np.asarray(reward).reshape(gridworld.SIZE, gridworld.SIZE)
        im = ax.imshow(grid, cmap="RdYlGn")
        fig.colorbar(im, ax=ax, fraction=0.046)
        for cell, a in enumerate(greedy):
            r, c = divmod(cell, gridworld.SIZE)
            dr, dc = gridworld.MOVES[a]
            if a == 0:
                ax.plot(c, r, "ko", ms=5)
            else:
                ax.arrow(c - 0.25 * dc, r - 0.25 * dr, 0.35 * dc, 0.35 * dr, head_width=0.15,
                         color="k", length_includes_head=True)
        ax.set(title=f"{name} and its greedy policy", xticks=[], yticks=[])
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def draw_run(run_dir: Path, rows: list[dict], trainer, state) -> list[Path]:
    """Every picture that applies to this run; returns their paths."""
    run_dir = Path(run_dir)
    cfg = trainer.cfg
    out = [run_dir / "curves.png"]
    curves(rows, out[0], f"{cfg.env}, {cfg.reward} reward, seed {cfg.seed}")
    if trainer.learner:
        out.append(run_dir / "reward_scatter.png")
        scatter(*report.segment_rewards(trainer, state, cfg.reward_std), out[-1])
    if cfg.env == "gridworld":
        out.append(run_dir / "reward_map.png")
        true = gridworld.true_reward_map().reshape(-1)
        learned = report.learned_cell_reward(trainer, state) if trainer.learner else true
        reward_map(true, np.asarray(learned), out[-1])
    return out
