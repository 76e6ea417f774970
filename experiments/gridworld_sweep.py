"""Label budget x query scheme on gridworld, over seeds, as one compiled sweep.

Every run (seed x budget x scheme) trains inside a single ``vmap``; the table and plot
give how well the learned reward recovers the hidden one (``reward_match``) and whether
its optimal policy is the true one (``optimal_policy``), mean and range over seeds, with
the offline ablation (every label from the initial policy) beside the online runs.

    python -m experiments.gridworld_sweep --out experiments/results
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

QUERIES = ("random", "disagreement")


def score(result) -> list[dict]:
    from rlhp.outputs import report
    rows = []
    for i, run in enumerate(result.runs):
        m = report.task_metrics(result.trainer, result.state(i))
        rows.append({**run, "reward_match": m["reward_match"], "optimal_policy": m["optimal_policy"],
                     "policy_optimal": m["policy_optimal"],
                     "reward_val_accuracy": float(result.metrics["reward_val_accuracy"][i, -1])})
    return rows


def summarise(rows: list[dict], keys=("offline", "query", "labels")) -> list[dict]:
    groups = {}
    for r in rows:
        groups.setdefault(tuple(r[k] for k in keys), []).append(r)
    out = []
    for key, rs in sorted(groups.items()):
        entry = dict(zip(keys, key), seeds=len(rs))
        for k in ("reward_match", "optimal_policy"):
            v = np.array([r[k] for r in rs])
            entry.update({f"{k}_mean": float(v.mean()), f"{k}_min": float(v.min()),
                          f"{k}_max": float(v.max())})
        out.append(entry)
    return out


def plot(summary: list[dict], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, k in zip(axes, ("reward_match", "optimal_policy")):
        for (offline, query), style in {(False, "disagreement"): "C0-o", (False, "random"): "C1-s",
                                        (True, "disagreement"): "C2--^"}.items():
            rs = [s for s in summary if s["offline"] == offline and s["query"] == query]
            if not rs:
                continue
            x = [s["labels"] for s in rs]
            ax.plot(x, [s[f"{k}_mean"] for s in rs], style,
                    label=f"{'offline' if offline else 'online'}, {query}")
            ax.fill_between(x, [s[f"{k}_min"] for s in rs], [s[f"{k}_max"] for s in rs],
                            color=style[:2], alpha=0.15)
        budgets = sorted({s["labels"] for s in summary})
        ax.set(xscale="log", xlabel="labels (oracle)", ylabel=k, ylim=(0, 1.02),
               title=f"gridworld: {k} (mean, min-max over seeds)")
        ax.set_xticks(budgets, [str(b) for b in budgets])
        ax.minorticks_off()
        ax.axhline(0.9, color="grey", lw=0.5)
        ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def markdown(summary: list[dict]) -> str:
    lines = ["| mode | query | labels | seeds | reward_match mean (min-max) | optimal_policy mean (min-max) |",
             "| --- | --- | --- | --- | --- | --- |"]
    for s in summary:
        lines.append(f"| {'offline' if s['offline'] else 'online'} | {s['query']} | {s['labels']} | "
                     f"{s['seeds']} | {s['reward_match_mean']:.3f} ({s['reward_match_min']:.2f}-"
                     f"{s['reward_match_max']:.2f}) | {s['optimal_policy_mean']:.3f} "
                     f"({s['optimal_policy_min']:.2f}-{s['optimal_policy_max']:.2f}) |")
    return "\n".join(lines) + "\n"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="experiments/results")
    p.add_argument("--seeds", type=int, default=4)
    p.add_argument("--labels", default="25,50,100,200")
    p.add_argument("--steps", type=int, default=None, help="env steps per run (default: preset)")
    args = p.parse_args(argv)
    from rlhp.presets import preset
    from rlhp.sweep import sweep

    budgets = [int(b) for b in args.labels.split(",")]
    seeds = list(range(args.seeds))
    rows, t0 = [], time.time()
    for offline, queries in ((False, QUERIES), (True, ("disagreement",))):
        cfg = preset("gridworld", offline=offline, total_steps=args.steps)
        result = sweep(cfg, seeds, labels=budgets, query=list(queries))
        rows += [{**r, "offline": offline} for r in score(result)]
        print(f"{'offline' if offline else 'online'}: {len(result.runs)} runs in one program, "
              f"{time.time() - t0:.0f} s so far", flush=True)
    summary = summarise(rows)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "gridworld_sweep.json").write_text(json.dumps({"runs": rows, "summary": summary}, indent=1))
    (out / "gridworld_sweep.md").write_text(markdown(summary))
    plot(summary, out / "gridworld_sweep.png")
    print(markdown(summary))
    return summary


if __name__ == "__main__":
    main()
