"""Learned reward against RL on the true reward, over seeds, per MuJoCo task.

For each task and seed: the learned default (the preset's oracle labels, 700 on MuJoCo),
each ``--setting``, and the baselines ``--reward=teacher`` (PPO on the teacher's own reward
in preference episodes) and ``--reward=true`` (PPO on the task's reward), each one
``python -m rlhp.run`` process (``experiments.seeds.run_all``: a finished run whose saved
config matches is read, not repeated; a stopped one continues with ``--resume``).

    python -m experiments.mujoco --tasks hopper,walker2d,halfcheetah --seeds 0-7 \\
        --setting labels1400="--labels 1400" --parallel 2 --out experiments/results/mujoco

Writes, per task, ``DIR/TASK/table.md``, ``table.json`` (mean standard return, its standard
error, worst seed, wall time, env steps/s, the learned/true ratio of means with a paired
bootstrap 95% interval, the same normalised by a random policy's return measured per seed,
seeds reaching 50/80/90% of their own true-reward run) and
``curves.png`` (training-episode true return, mean +- 1 s.e. across seeds; standard returns
per seed), and ``DIR/summary.md`` (one row per task and setting). See docs/mujoco-seeds.md.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from benchmarks.tables import num, table as markdown_table
from experiments.seeds import TRUE, parse_setting, seed_list, run_all, table as seed_table

TEACHER = "reward=teacher"
DEFAULT = "default"
THRESHOLDS = (0.5, 0.8, 0.9)
RESAMPLES = 10_000
BOOTSTRAP_SEED = 0
SMOOTH = 5  # logged points per moving average, as the paper smooths its curves


# ---- statistics over seeds ----

def standard_error(xs) -> float | None:
    """std / sqrt(n) with ddof=1; None under two values."""
    xs = np.asarray(xs, float)
    return float(xs.std(ddof=1) / np.sqrt(xs.size)) if xs.size > 1 else None


def bootstrap_ratio(learned, true, floor=None, resamples: int = RESAMPLES,
                    seed: int = BOOTSTRAP_SEED):
    """``(mean(learned) / mean(true), low, high)``: the ratio of means and its 95% percentile
    interval over ``resamples`` draws of the seeds with replacement, each draw taking a seed's
    returns together (``learned[i]``, ``true[i]`` and ``floor[i]`` are the same seed).
    ``floor``: a random policy's returns, subtracted from both first (the normalised score
    ``(learned - random) / (true - random)``, for tasks whose returns are negative)."""
    learned, true = np.asarray(learned, float), np.asarray(true, float)
    if floor is not None:
        learned, true = learned - np.asarray(floor, float), true - np.asarray(floor, float)
    n = learned.size
    idx = np.random.default_rng(seed).integers(0, n, size=(resamples, n))
    with np.errstate(divide="ignore", invalid="ignore"):
        ratios = learned[idx].mean(1) / true[idx].mean(1)
        low, high = np.nanpercentile(ratios, [2.5, 97.5])
        return float(learned.mean() / true.mean()), float(low), float(high)


def reaching(learned, true, fractions=THRESHOLDS) -> dict[str, int]:
    """How many seeds reach each fraction of their own true-reward run's return."""
    learned, true = np.asarray(learned, float), np.asarray(true, float)
    return {str(f): int((learned >= f * true).sum()) for f in fractions}


def random_returns(task: str, seed: int, episodes: int) -> np.ndarray:
    """The standard returns ``[episodes]`` of random actions on ``task``, one episode in each
    of ``episodes`` copies (a pool seeded ``seed``): the floor of the normalised score.
    Continuous actions are N(0, 1) per dimension, clipped to the task's bounds by the env
    (what PPO's untrained Gaussian policy samples); discrete ones uniform."""
    import jax
    from rlhp.envs import make_env
    env = make_env(task, "auto", episodes, seed)
    spec = env.spec

    @jax.jit
    def step(state, key):
        action = (jax.random.randint(key, (episodes,), 0, spec.num_actions) if spec.discrete
                  else jax.random.normal(key, (episodes, *spec.action_shape)))
        return env.step(state, action)

    key = jax.random.PRNGKey(seed)
    state = env.reset(key)
    ret, done = np.zeros(episodes), np.zeros(episodes, bool)
    for t in range(spec.max_episode_steps):
        state, out = step(state, jax.random.fold_in(key, t))
        live = ~done & np.asarray(out.valid)
        ret += np.where(live, np.asarray(out.reward), 0.0)
        done |= live & np.asarray(out.terminated | out.truncated)
        if done.all():
            break
    return ret


def setting_stats(runs: list[dict], true_runs: list[dict] | None,
                  floor: dict[int, float] | None = None) -> dict:
    """A setting's numbers over its finished runs; ``true_runs`` (None for the true-reward
    baseline itself) pairs the ratio and the thresholds by seed; ``floor`` (seed -> a random
    policy's mean return) adds the normalised score on the seeds it covers."""
    ok = [r for r in runs if "true_return_mean" in r]
    returns = {r["seed"]: r["true_return_mean"] for r in ok}
    out = {"n": len(ok), "failed": [r["seed"] for r in runs if "error" in r], "returns": returns,
           "mean": None, "se": None, "min": None, "worst_seed": None, "wall_seconds_mean": None,
           "env_steps_per_second_mean": None, "ratio_to_true": None, "reaching_true": None,
           "normalised": None}
    if not ok:
        return out
    ys = np.array(list(returns.values()))
    worst = min(returns, key=returns.get)
    out.update(mean=float(ys.mean()), se=standard_error(ys), min=returns[worst], worst_seed=worst,
               wall_seconds_mean=float(np.mean([r["wall_seconds"] for r in ok])),
               env_steps_per_second_mean=float(np.mean([r["env_steps_per_second"] for r in ok])))
    truth = {r["seed"]: r["true_return_mean"] for r in true_runs or [] if "true_return_mean" in r}
    paired = [s for s in returns if s in truth]
    if true_runs is not None and paired:
        a, b = [returns[s] for s in paired], [truth[s] for s in paired]
        ratio, low, high = bootstrap_ratio(a, b)
        out["ratio_to_true"] = {"ratio": ratio, "ci95": [low, high], "seeds": paired,
                                "resamples": RESAMPLES, "rng_seed": BOOTSTRAP_SEED}
        out["reaching_true"] = {**reaching(a, b), "of": len(paired)}
        floored = [s for s in paired if s in (floor or {})]
        if floored:
            score, low, high = bootstrap_ratio([returns[s] for s in floored],
                                               [truth[s] for s in floored],
                                               [floor[s] for s in floored])
            out["normalised"] = {"ratio": score, "ci95": [low, high], "seeds": floored}
    return out


# ---- training curves ----

def smooth(ys, window: int = SMOOTH) -> np.ndarray:
    """Mean of each point and the up to ``window - 1`` logged points before it."""
    c = np.concatenate([[0.0], np.cumsum(np.asarray(ys, float))])
    i = np.arange(1, len(c))
    lo = np.maximum(i - window, 0)
    return (c[i] - c[lo]) / (i - lo)


def training_curve(run_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    """``(env_steps, smoothed true_return)`` from a run's ``metrics.jsonl``, over the logged
    points that finished an episode."""
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    pts = [(r["env_steps"], r["true_return"]) for r in rows if r.get("true_return") is not None]
    if not pts:
        return np.array([]), np.array([])
    x, y = map(np.array, zip(*pts))
    return x, smooth(y)


def mean_band(curves: list[tuple[np.ndarray, np.ndarray]]):
    """``(steps, mean, se)`` across seeds, each curve interpolated onto the logged steps of
    all of them that lie in the range every curve covers (se 0 with one curve)."""
    curves = [(x, y) for x, y in curves if x.size]
    if not curves:
        return np.array([]), np.array([]), np.array([])
    lo, hi = max(x[0] for x, _ in curves), min(x[-1] for x, _ in curves)
    grid = np.unique(np.concatenate([x[(x >= lo) & (x <= hi)] for x, _ in curves]))
    ys = np.array([np.interp(grid, x, y) for x, y in curves])
    se = ys.std(0, ddof=1) / np.sqrt(len(ys)) if len(ys) > 1 else np.zeros_like(grid, float)
    return grid, ys.mean(0), se


# ---- outputs ----

def ratio_text(s: dict, key: str = "ratio_to_true") -> str:
    r = s[key]
    return "-" if r is None else f"{r['ratio']:.2f} [{r['ci95'][0]:.2f}, {r['ci95'][1]:.2f}]"


def mean_text(s: dict) -> str:
    return "-" if s["mean"] is None else f"{num(s['mean'], 1)} ± {num(s['se'], 1)}"


def min_text(s: dict) -> str:
    return "-" if s["min"] is None else f"{num(s['min'], 1)} (seed {s['worst_seed']})"


def task_table(task: str, steps: int | None, seeds: list[int], rows: list[dict],
               floor: dict[int, float]) -> str:
    """``table.md``: the statistics per setting, the random floor, then every seed's
    return."""
    def reach(s):
        r = s["reaching_true"]
        if r is None:
            return "-"
        return " / ".join(str(r[str(f)]) for f in THRESHOLDS) + f" of {r['of']}"

    stats = markdown_table(
        ["setting", "runs", "mean ± s.e.", "min (seed)", "mean / true [95% CI]",
         "(mean - random) / (true - random)", "seeds ≥ 50 / 80 / 90% of true", "wall s",
         "env steps/s"],
        [[r["setting"], f"{r['n']}/{len(seeds)}", mean_text(r), min_text(r), ratio_text(r),
          ratio_text(r, "normalised"), reach(r), num(r["wall_seconds_mean"]),
          num(r["env_steps_per_second_mean"])]
         for r in rows])
    head = (f"# {task}: standard return over {len(seeds)} seeds ({', '.join(map(str, seeds))}); "
            f"{'the preset steps' if steps is None else f'{steps:,} env steps'} per run\n\n")
    notes = ("\n\nmean ± s.e.: the standard (evaluation) return's mean over the finished seeds "
             "and std/sqrt(n) (ddof 1). mean / true: the ratio of the setting's mean to the "
             "--reward=true mean on the same seeds, with a 95% percentile interval from "
             f"{RESAMPLES:,} paired bootstrap resamples of the seeds (RNG seed "
             f"{BOOTSTRAP_SEED}). (mean - random) / (true - random): the same with a random "
             "policy's mean return subtracted from both (the normalised score; the one to "
             "read where returns are negative, as on Reacher). Random policy: N(0, 1) "
             "actions clipped to the task's bounds, its standard return per seed "
             f"({', '.join(f'{s}: {num(v, 1)}' for s, v in floor.items())}). "
             "seeds ≥ x% of true: seeds whose return reaches x% of their "
             "own --reward=true run's. wall s, env steps/s: means over the runs.\n\n")
    return head + stats + notes + seed_table(rows, seeds, digits=1) + "\n"


def plot(task: str, rows: list[dict], floor: dict[int, float], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 4.5),
                                      gridspec_kw={"width_ratios": [3, 2]})
    for i, r in enumerate(rows):
        color = f"C{i}"
        grid, mean, se = mean_band([training_curve(Path(d)) for d in r["run_dirs"]])
        if grid.size:
            style = "--" if r["setting"] in (TEACHER, TRUE) else "-"  # the baselines dashed
            left.plot(grid, mean, style, color=color, lw=1.5,
                      label=f"{r['setting']} ({r['n']} seeds)")
            left.fill_between(grid, mean - se, mean + se, color=color, alpha=0.2, lw=0)
        ys = list(r["returns"].values())
        right.plot([i] * len(ys), ys, "o", color=color, alpha=0.7)
        if r["mean"] is not None:
            right.errorbar([i], [r["mean"]], yerr=[r["se"] or 0], fmt="_", color="k",
                           markersize=20, capsize=4)
    left.set(xlabel="env steps", ylabel=f"true return, training episodes ({SMOOTH}-point mean)",
             title=f"{task}: mean over seeds ± 1 s.e.")
    left.legend(loc="best", fontsize=8)
    if floor:
        right.axhline(float(np.mean(list(floor.values()))), ls=":", color="gray",
                      label="random policy")
        right.legend(loc="best", fontsize=8)
    right.set_xticks(range(len(rows)), [r["setting"] for r in rows], rotation=20, ha="right")
    right.set(ylabel="standard return (evaluation)", title="each seed one dot; mean ± 1 s.e.")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def summary_table(tasks: dict[str, list[dict]]) -> str:
    """``summary.md``: one row per task and setting."""
    return markdown_table(
        ["task", "setting", "runs", "mean ± s.e.", "min (seed)", "mean / true [95% CI]",
         "(mean - random) / (true - random)"],
        [[task, r["setting"], str(r["n"]), mean_text(r), min_text(r), ratio_text(r),
          ratio_text(r, "normalised")]
         for task, rows in tasks.items() for r in rows]) + "\n"


def write_task(out: Path, task: str, steps: int | None, seeds: list[int],
               settings: list[tuple[str, str]], results: dict) -> list[dict]:
    """Tables and plot of one task from ``results[(setting, seed)]``, with a random
    policy's returns measured on each seed; returns its rows."""
    from rlhp.presets import preset
    episodes = preset(task).eval_episodes
    floor = {s: float(random_returns(task, s, episodes).mean()) for s in seeds}
    runs = {name: [results[name, s] for s in seeds] for name, _ in settings}
    rows = [{"setting": name, "args": args, "runs": runs[name],
             "run_dirs": [str(out / task / "runs" / f"{name}-s{s}") for s in seeds
                          if "error" not in results[name, s]],
             **setting_stats(runs[name], runs.get(TRUE) if name != TRUE else None, floor)}
            for name, args in settings]
    d = out / task
    d.mkdir(parents=True, exist_ok=True)
    (d / "table.json").write_text(json.dumps(
        {"task": task, "steps": steps, "seeds": seeds, "random": {"episodes": episodes,
                                                                  "returns": floor},
         "settings": rows}, indent=1))
    (d / "table.md").write_text(task_table(task, steps, seeds, rows, floor))
    plot(task, rows, floor, d / "curves.png")
    return rows


def settings_of(extra: list[tuple[str, str]], teacher: bool, true: bool) -> list[tuple[str, str]]:
    """The learned default, the extra settings, then the baselines; names must differ."""
    settings = [(DEFAULT, ""), *extra, *([(TEACHER, "--reward=teacher")] if teacher else []),
                *([(TRUE, "--reward=true")] if true else [])]
    names = [n for n, _ in settings]
    if len(set(names)) != len(names):
        raise ValueError(f"setting names must differ (and not be {DEFAULT}, {TEACHER} or "
                         f"{TRUE}); got {', '.join(names)}")
    return settings


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tasks", default="hopper", help="comma-separated, e.g. hopper,walker2d")
    p.add_argument("--seeds", type=seed_list, default="0-7",
                   help="a count (8: seeds 0-7), a range 100-107, or 0,3,5; one seed: 5-5")
    p.add_argument("--steps", type=int, default=None, help="env steps per run (default: preset)")
    p.add_argument("--setting", type=parse_setting, action="append", default=[],
                   help='NAME="rlhp.run arguments", run beside the default (repeatable)')
    p.add_argument("--no-teacher", action="store_true", help="skip the --reward=teacher runs")
    p.add_argument("--no-true", action="store_true", help="skip the --reward=true runs")
    p.add_argument("--parallel", type=int, default=2, help="runs at a time")
    p.add_argument("--out", type=Path, required=True)
    a = p.parse_args(argv)
    tasks = [t for t in a.tasks.split(",") if t]
    try:
        settings = settings_of(a.setting, not a.no_teacher, not a.no_true)
    except ValueError as e:
        p.error(str(e))
    if not tasks or len(set(tasks)) != len(tasks):
        p.error(f"--tasks wants distinct task names; got {a.tasks!r}")
    jobs = [{"label": f"{task} {name}", "task": task, "setting": name, "env": task,
             "steps": a.steps, "seed": seed, "args": args,
             "run_dir": a.out / task / "runs" / f"{name}-s{seed}"}
            for task in tasks for seed in a.seeds for name, args in settings]
    print(f"{len(jobs)} runs: {len(tasks)} task(s) x {len(a.seeds)} seeds x {len(settings)} "
          f"settings ({', '.join(n for n, _ in settings)}), {a.parallel} at a time; "
          f"outputs in {a.out}/", flush=True)
    results: dict[str, dict] = {task: {} for task in tasks}
    done: dict[str, list[dict]] = {}

    def task_finished(job: dict, r: dict) -> None:  # tables as soon as a task's runs are in
        task = job["task"]
        results[task][job["setting"], job["seed"]] = r
        if len(results[task]) == len(a.seeds) * len(settings):
            done[task] = write_task(a.out, task, a.steps, a.seeds, settings, results[task])
            print(f"wrote {a.out / task}/table.md, table.json, curves.png", flush=True)

    run_all(jobs, a.parallel, task_finished)
    summary = summary_table({t: done[t] for t in tasks if t in done})
    (a.out / "summary.md").write_text(summary)
    print(summary + f"wrote {a.out}/summary.md", flush=True)
    failed = sum("error" in r for rs in results.values() for r in rs.values())
    if failed:
        print(f"{failed} of {len(jobs)} runs failed (their logs are named above)", file=sys.stderr)


if __name__ == "__main__":
    main()
