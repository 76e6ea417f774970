"""Fresh-label accuracy over a run, and the alarm it raises (host side, numpy).

Each iteration the step counts the fresh pairs (queries just answered and audit labels,
ties excluded) and how many of them r-hat ordered as the teacher did before it was fit on
them (``train.fresh_metrics``). Held-out accuracy measures r-hat on old clips; this
measures it on what the policy does now. The running accuracy pools the last ``window``
iterations' pairs.

The alarm: once the running accuracy has reached the threshold, a window whose accuracy
is below it with 95% confidence means r-hat disagrees with the teacher on the policy's
current clips: the policy has gone where r-hat is wrong (the paper's offline ablation,
where the agent exploits a frozen reward). Only a fall counts (r-hat fit to the first
clips may be near chance on the policy's next ones while the labels teach it), and only a
confident one: a Hopper run gets 1-3 labels an iteration, and a 20-iteration window of
~30 pairs at a true accuracy of 0.75 reads below 0.6 about one time in twenty by chance.
"""
from __future__ import annotations

import numpy as np

ALARM = "r-hat disagrees with the teacher on the policy's current clips"
MIN_PAIRS = 10
"""Fewest judged pairs a window needs before its share is reported (NaN before): on a
handful, one unlucky draw would read as a collapse."""
Z = 1.645
"""One-sided 95% normal quantile of the alarm's confidence bound."""


def pooled(x, window: int) -> np.ndarray:
    """Sums over the last ``window`` iterations of counts ``[..., I]`` -> ``[..., I]``."""
    c = np.cumsum(np.nan_to_num(np.asarray(x, np.float64)), -1)
    before = np.concatenate([np.zeros_like(c[..., :window]), c[..., :-window]], -1)
    return c - before[..., :c.shape[-1]]


def share(right, n, min_pairs: int = MIN_PAIRS) -> np.ndarray:
    """``right / n`` of pooled counts ``[..., I]`` (NaN under ``min_pairs`` pairs)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n >= min_pairs, right / n, np.nan)


def wilson_upper(right, n, min_pairs: int = MIN_PAIRS) -> np.ndarray:
    """Wilson score upper bound (one-sided 95%) of the share ``right / n`` of pooled counts
    ``[..., I]`` (NaN under ``min_pairs`` pairs)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        p = right / n
        centre = p + Z**2 / (2 * n)
        spread = Z * np.sqrt(p * (1 - p) / n + Z**2 / (4 * n**2))
        return np.where(n >= min_pairs, (centre + spread) / (1 + Z**2 / n), np.nan)


def running_accuracy(correct, judged, window: int, min_pairs: int = MIN_PAIRS) -> np.ndarray:
    """Share of the last ``window`` iterations' fresh pairs r-hat got right, at every
    iteration: ``correct``, ``judged`` ``[..., I]`` counts per iteration -> ``[..., I]``
    float (NaN while the window holds fewer than ``min_pairs`` pairs)."""
    return share(pooled(correct, window), pooled(judged, window), min_pairs)


def upper_bound(correct, judged, window: int, min_pairs: int = MIN_PAIRS) -> np.ndarray:
    """``wilson_upper`` of each window's accuracy, ``[..., I]`` like ``running_accuracy``."""
    return wilson_upper(pooled(correct, window), pooled(judged, window), min_pairs)


def first_alarm(running, threshold: float, upper=None) -> int | None:
    """Index of the first iteration whose window is below ``threshold`` (its ``upper``
    confidence bound ``[I]`` under it; default: the running accuracy itself) after an
    earlier window's running accuracy ``[I]`` was at or above it. None if there is none,
    or ``threshold`` is 0."""
    running = np.asarray(running, np.float64)
    upper = running if upper is None else np.asarray(upper, np.float64)
    if threshold <= 0 or running.size == 0:
        return None
    agreed = np.logical_or.accumulate(running >= threshold)  # NaN compares False
    below = np.flatnonzero((upper < threshold) & np.concatenate([[False], agreed[:-1]]))
    return int(below[0]) if len(below) else None


def alarm(correct, judged, window: int, threshold: float) -> tuple[np.ndarray, int | None]:
    """``(running accuracy [I], index of the first alarm or None)`` from one run's counts
    per iteration ``[I]``."""
    right, n = pooled(correct, window), pooled(judged, window)
    running = share(right, n)
    return running, first_alarm(running, threshold, wilson_upper(right, n))


def from_rows(rows: list[dict], window: int, threshold: float) -> tuple[np.ndarray, int | None]:
    """``alarm`` over ``metrics.jsonl`` rows (their fresh counts; rows without any, e.g.
    a true-reward run, count as none)."""
    get = lambda k: [r.get(k) or 0 for r in rows]
    return alarm(get("reward_fresh_correct"), get("reward_fresh_labels"), window, threshold)
