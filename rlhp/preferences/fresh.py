"""Fresh-label accuracy over a run, and the alarm it raises (host side, numpy).

Each iteration the step counts the fresh pairs (queries just answered and audit labels,
ties excluded) and how many of them r-hat ordered as the teacher did before it was fit on
them (``train.fresh_metrics``). Held-out accuracy measures r-hat on old clips; this
measures it on what the policy does now. The running accuracy pools the last ``window``
iterations' pairs; when it falls below the alarm threshold after having reached it,
r-hat disagrees with the teacher on the policy's current clips: the policy has gone where r-hat is wrong (the
paper's offline ablation, where the agent exploits a frozen reward).
"""
from __future__ import annotations

import numpy as np

ALARM = "r-hat disagrees with the teacher on the policy's current clips"
MIN_PAIRS = 10
"""Fewest judged pairs a window needs before its share is reported (NaN before): on a
handful, one unlucky draw would read as a collapse."""


def running_accuracy(correct, judged, window: int, min_pairs: int = MIN_PAIRS) -> np.ndarray:
    """Share of the last ``window`` iterations' fresh pairs r-hat got right, at every
    iteration: ``correct``, ``judged`` ``[..., I]`` counts per iteration -> ``[..., I]``
    float (NaN while the window holds fewer than ``min_pairs`` pairs)."""
    def pooled(x):
        c = np.cumsum(np.nan_to_num(np.asarray(x, np.float64)), -1)
        before = np.concatenate([np.zeros_like(c[..., :window]), c[..., :-window]], -1)
        return c - before[..., :c.shape[-1]]

    right, n = pooled(correct), pooled(judged)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n >= min_pairs, right / n, np.nan)


def first_alarm(running, threshold: float) -> int | None:
    """Index of the first iteration whose running accuracy ``[I]`` falls below
    ``threshold`` after an earlier iteration's was at or above it (None if none does, or
    ``threshold`` is 0).

    Only a fall counts: r-hat fit to the first clips may be near chance on the policy's
    next ones (on Hopper the fresh accuracy starts near 0.5 while the labels teach it), and
    a run that never agreed has nothing to warn about yet. What the alarm looks for is
    r-hat agreeing with the teacher and then losing it as the policy moves.
    """
    running = np.asarray(running, np.float64)
    if threshold <= 0 or running.size == 0:
        return None
    agreed = np.logical_or.accumulate(running >= threshold)  # NaN compares False
    below = np.flatnonzero((running < threshold) & np.concatenate([[False], agreed[:-1]]))
    return int(below[0]) if len(below) else None


def from_rows(rows: list[dict], window: int) -> np.ndarray:
    """``running_accuracy`` over ``metrics.jsonl`` rows (their fresh counts; rows without
    any, e.g. a true-reward run, count as none)."""
    get = lambda k: [r.get(k) or 0 for r in rows]
    return running_accuracy(get("reward_fresh_correct"), get("reward_fresh_labels"), window)
