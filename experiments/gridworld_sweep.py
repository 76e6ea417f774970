"""Label budget x query scheme on gridworld, over seeds, as one compiled sweep.

Every run (seed x budget x scheme) trains inside a single ``vmap``; the table and plot
give how well the learned reward recovers the hidden one (``reward_match``) and whether
its optimal policy is the true one (``optimal_policy``), mean and range over seeds, with
the offline ablation (every label from the initial policy) beside the online runs.

Every run also answers ``--audit-labels`` random fresh pairs per iteration (never stored:
the runs are the same with or without them), so each has r-hat's fresh accuracy over
time; ``gridworld_fresh.{md,png}`` give when the alarm fires (``rlhp.preferences.fresh``),
offline against online.

    python -m experiments.gridworld_sweep --out experiments/results
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

QUERIES = ("random", "disagreement", "kcenter", "kcenter-disagreement", "bald")
STYLES = {"disagreement": "C0-o", "random": "C1-s", "kcenter": "C3-v",
          "kcenter-disagreement": "C4-D", "bald": "C5-P"}


def score(result, cfg) -> list[dict]:
    """One row per run: its scores, and its fresh accuracy over time with the alarm."""
    from rlhp.outputs import report
    from rlhp.preferences import fresh
    metrics = result.metrics
    rows = []
    for i, run in enumerate(result.runs):
        m = report.task_metrics(result.trainer, result.state(i))
        running, alarm = fresh.alarm(metrics["reward_fresh_correct"][i],
                                     metrics["reward_fresh_labels"][i], cfg.fresh_window,
                                     cfg.fresh_alarm)
        rows.append({**run, "reward_match": m["reward_match"], "optimal_policy": m["optimal_policy"],
                     "policy_optimal": m["policy_optimal"],
                     "reward_val_accuracy": float(metrics["reward_val_accuracy"][i, -1]),
                     "fresh_running": [None if np.isnan(x) else float(x) for x in running],
                     "fresh_labels": [int(x) for x in metrics["reward_fresh_labels"][i]],
                     "fresh_correct": [int(x) for x in metrics["reward_fresh_correct"][i]],
                     "fresh_min": float(np.nanmin(running)) if np.isfinite(running).any() else None,
                     "fresh_alarm_env_steps": None if alarm is None else
                     int(metrics["env_steps"][i, alarm])})
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
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5))
    for ax, k in zip(axes, ("reward_match", "optimal_policy")):
        for offline in (False, True):
            for query, style in STYLES.items():
                rs = [s for s in summary if s["offline"] == offline and s["query"] == query]
                if not rs:
                    continue
                style = "C2--^" if offline else style
                x = [s["labels"] for s in rs]
                ax.plot(x, [s[f"{k}_mean"] for s in rs], style,
                        label=f"{'offline' if offline else 'online'}, {query}")
                ax.fill_between(x, [s[f"{k}_min"] for s in rs], [s[f"{k}_max"] for s in rs],
                                color=style[:2], alpha=0.1)
        budgets = sorted({s["labels"] for s in summary})
        ax.set(xscale="log", xlabel="labels (oracle)", ylabel=k, ylim=(0, 1.02),
               title=f"gridworld: {k} (mean, min-max over seeds)")
        ax.set_xticks(budgets, [str(b) for b in budgets])
        ax.minorticks_off()
        ax.axhline(0.9, color="grey", lw=0.5)
        ax.legend(loc="lower right", fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def fresh_runs(rows: list[dict], labels: int) -> list[dict]:
    """The runs at ``labels`` that have a fresh-accuracy trace, offline first."""
    return sorted((r for r in rows if r["labels"] == labels and r.get("fresh_running")),
                  key=lambda r: (not r["offline"], r["query"], r["seed"]))


def fresh_budgets(rows: list[dict]) -> list[int]:
    """The label budgets at which some run has a fresh-accuracy trace."""
    return sorted({r["labels"] for r in rows if r.get("fresh_running")})


def alarms(runs: list[dict]) -> int:
    """How many of ``runs`` the alarm fired in."""
    return sum(r["fresh_alarm_env_steps"] is not None for r in runs)


def plot_fresh(rows: list[dict], threshold: float, steps_per_iteration: int,
               path: Path) -> None:
    """Running fresh accuracy over env steps of every run, a panel per label budget:
    offline against the online schemes, with the alarm threshold."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    budgets = fresh_budgets(rows)
    fig, axes = plt.subplots(1, len(budgets), figsize=(4.2 * len(budgets), 4.2), sharey=True,
                             squeeze=False)
    for ax, labels in zip(axes[0], budgets):
        seen, rs = set(), fresh_runs(rows, labels)
        for r in rs:
            y = np.array([np.nan if v is None else v for v in r["fresh_running"]])
            x = steps_per_iteration * np.arange(1, len(y) + 1)
            name = "offline, disagreement" if r["offline"] else f"online, {r['query']}"
            color = "C2" if r["offline"] else STYLES[r["query"]][:2]
            ax.plot(x, y, color=color, lw=1.8 if r["offline"] else 0.7,
                    label=None if name in seen else name)
            if r["fresh_alarm_env_steps"] is not None:
                ax.plot(r["fresh_alarm_env_steps"], threshold, "x", color=color, ms=8, mew=2)
            seen.add(name)
        ax.axhline(threshold, color="k", ls=":", lw=1, label=f"alarm threshold {threshold:g}")
        off, on = [r for r in rs if r["offline"]], [r for r in rs if not r["offline"]]
        ax.xaxis.set_major_formatter(lambda v, _: f"{v / 1e3:.0f}k")
        ax.set(xlabel="env steps", ylim=(0, 1.02), title=f"{labels} labels: alarm offline "
               f"{alarms(off)}/{len(off)}, online {alarms(on)}/{len(on)}")
    axes[0][0].set_ylabel("running fresh accuracy (x: alarm)")
    axes[0][0].legend(loc="lower left", fontsize=7)
    fig.suptitle("gridworld: r-hat against the teacher on the policy's fresh clips")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def fresh_markdown(rows: list[dict], threshold: float) -> str:
    """Per mode, scheme and budget: how many runs the alarm fired in, and their lowest and
    final running fresh accuracy; then every offline run."""
    fmt = lambda v, spec: "-" if v is None else format(v, spec)
    final = lambda r: next((v for v in reversed(r["fresh_running"]) if v is not None), None)
    lines = [f"The alarm: running fresh accuracy below {threshold:g} with 95% confidence, "
             f"after having reached it.\n",
             "| mode | query | labels | runs | alarm fired | lowest running fresh accuracy "
             "(min-max) | final (min-max) |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    runs = [r for labels in fresh_budgets(rows) for r in fresh_runs(rows, labels)]
    groups = {}
    for r in runs:
        groups.setdefault((not r["offline"], r["query"], r["labels"]), []).append(r)
    span = lambda v: "-" if not v else f"{min(v):.2f}-{max(v):.2f}"
    for (online, query, labels), rs in sorted(groups.items()):
        lines.append(f"| {'online' if online else 'offline'} | {query} | {labels} | {len(rs)} | "
                     f"{alarms(rs)} | {span([r['fresh_min'] for r in rs if r['fresh_min'] is not None])} | "
                     f"{span([final(r) for r in rs if final(r) is not None])} |")
    lines += ["", "| offline run | labels | seed | alarm at env step | lowest | final |",
              "| --- | --- | --- | --- | --- | --- |"]
    for r in (r for r in runs if r["offline"]):
        lines.append(f"| {r['query']} | {r['labels']} | {r['seed']} | "
                     f"{fmt(r['fresh_alarm_env_steps'], ',')} | {fmt(r['fresh_min'], '.3f')} | "
                     f"{fmt(final(r), '.3f')} |")
    return "\n".join(lines) + "\n"


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
    p.add_argument("--queries", default=",".join(QUERIES), help="online query schemes")
    p.add_argument("--offline-queries", default="disagreement",
                   help="query schemes of the offline ablation ('' for none)")
    p.add_argument("--offline-labels", default=None,
                   help="label budgets of the offline ablation (default: --labels)")
    p.add_argument("--audit-labels", type=int, default=8,
                   help="audit labels per iteration in every run (they change no run)")
    p.add_argument("--merge", action="store_true",
                   help="keep the rows of OUT/gridworld_sweep.json this call does not re-run")
    p.add_argument("--steps", type=int, default=None, help="env steps per run (default: preset)")
    args = p.parse_args(argv)
    from rlhp.presets import preset
    from rlhp.sweep import sweep

    split = lambda text, kind: [kind(x) for x in text.split(",") if x]
    seeds = list(range(args.seeds))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "gridworld_sweep.json"
    programs = [(True, split(args.offline_queries, str),
                 split(args.offline_labels or args.labels, int)),
                (False, split(args.queries, str), split(args.labels, int))]
    rerun = {(offline, q, b) for offline, qs, bs in programs for q in qs for b in bs}
    rows = [r for r in json.loads(path.read_text())["runs"]
            if (r["offline"], r["query"], r["labels"]) not in rerun] \
        if args.merge and path.exists() else []
    t0 = time.time()
    for offline, queries, budgets in programs:
        if not queries:
            continue
        cfg = preset("gridworld", offline=offline, total_steps=args.steps,
                     audit_labels=args.audit_labels)
        result = sweep(cfg, seeds, labels=budgets, query=queries)
        rows += [{**r, "offline": offline} for r in score(result, cfg)]
        path.write_text(json.dumps({"runs": rows}, indent=1))  # kept if what follows fails
        print(f"{'offline' if offline else 'online'}: {len(result.runs)} runs in one program, "
              f"{time.time() - t0:.0f} s so far", flush=True)
    summary = summarise(rows)
    path.write_text(json.dumps({"runs": rows, "summary": summary}, indent=1))
    (out / "gridworld_sweep.md").write_text(markdown(summary))
    plot(summary, out / "gridworld_sweep.png")
    cfg = preset("gridworld")
    (out / "gridworld_fresh.md").write_text(fresh_markdown(rows, cfg.fresh_alarm))
    plot_fresh(rows, cfg.fresh_alarm, cfg.batch_size, out / "gridworld_fresh.png")
    print(markdown(summary))
    print(fresh_markdown(rows, cfg.fresh_alarm))
    return summary


if __name__ == "__main__":
    main()
