"""Settings x seeds for tasks whose runs cannot share one ``vmap`` (envpool MuJoCo).

Each (setting, seed) is one ``python -m rlhp.run`` process, ``--parallel`` at a time; a run
whose ``summary.json`` already exists is read, not repeated (if its saved config is the one
the setting's arguments build today), so a stopped experiment continues where it stopped.
Writes ``seeds.json`` (every run and the per-setting mean), ``seeds.md`` (the table) and
``seeds.png`` (each run's standard return by setting, with the ``--reward=true`` runs as
the reference).

    python -m experiments.seeds --env hopper --seeds 0,1,2,3 \\
        --setting default= --setting labels1400="--labels 1400" --true --out experiments/results/hopper

``run_all`` (the runs, resumable, with a line per run started and finished) is shared with
``experiments.mujoco``, which adds the baselines and the statistics over seeds.
"""
from __future__ import annotations

import argparse
import concurrent.futures as futures
import json
import shlex
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

from benchmarks.tables import num, table as markdown_table

TRUE = "reward=true"


def seed_list(text: str) -> list[int]:
    """``rlhp.config.parse_seeds`` as an argparse type (its message kept)."""
    from rlhp.config import parse_seeds
    try:
        return parse_seeds(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def run_argv(env: str, steps: int | None, seed: int, args: list[str], run_dir: Path) -> list[str]:
    """The ``rlhp.run`` arguments of one run (``steps`` None: the preset's)."""
    return [f"--env={env}", *(["--steps", str(steps)] if steps is not None else []),
            "--seed", str(seed), "--run-dir", str(run_dir), *args]


def config_differences(env: str, steps: int | None, seed: int, args: list[str],
                       run_dir: Path) -> str:
    """How the config saved in ``run_dir`` differs from the one ``args`` build today
    (fields a run predates take their defaults); empty if they agree."""
    from rlhp import run
    from rlhp.config import Config
    try:
        # a run dir that does not exist: build_config would refuse the finished one
        now = run.build_config(run.parse_args(run_argv(env, steps, seed, args,
                                                       run_dir / "new")))[0].to_dict()
        saved = Config.from_dict(json.loads((run_dir / "config.json").read_text())).to_dict()
    except (run.UsageError, ValueError, OSError) as e:
        return str(e)
    return ", ".join(f"{k}={saved[k]!r}, the arguments give {now[k]!r}"
                     for k in now if now[k] != saved[k])


def run_one(env: str, steps: int | None, seed: int, args: list[str], run_dir: Path,
            on_start=None) -> dict:
    """One run (or its existing summary): ``{"seed", "true_return_mean", "wall_seconds", ...,
    "reused"}`` or ``{"seed", "error"}``. A stopped run (its directory but no summary)
    continues with ``--resume``; ``on_start(note)`` is called before a process starts."""
    summary = run_dir / "summary.json"
    log_path = run_dir.with_suffix(".log")
    stopped = (run_dir / "config.json").exists()
    if summary.exists() or stopped:  # reuse it only if these arguments build the same config
        differ = config_differences(env, steps, seed, args, run_dir)
        if differ:
            return {"seed": seed, "error": f"{run_dir} holds another run ({differ})"}
    reused = summary.exists()
    if not reused:
        cmd = [sys.executable, "-m", "rlhp.run", *run_argv(env, steps, seed, args, run_dir),
               "--wandb=disabled", "--no-video", *(["--resume"] if stopped else [])]
        if on_start:
            on_start(f"{'resuming' if stopped else 'starting'}, log {log_path}")
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(log_path, "a") as log:  # a resumed run's log follows the stopped one's
            log.write(f"$ {shlex.join(cmd)}\n")
            log.flush()
            done = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT)
        if done.returncode or not summary.exists():
            return {"seed": seed, "error": f"exit {done.returncode}; see {log_path}"}
    s = json.loads(summary.read_text())
    keys = ("true_return_mean", "true_return_std", "wall_seconds", "env_steps_per_second",
            "reward_val_accuracy", "reward_true_corr")
    return {"seed": seed, **{k: s[k] for k in keys if k in s}, "reused": reused}


def run_all(jobs: list[dict], parallel: int, on_done=None) -> list[dict]:
    """Every job (``{"label", "env", "steps", "seed", "args", "run_dir"}``) through
    ``run_one``, ``parallel`` at a time, one flushed line per run started and finished;
    ``on_done(job, result)`` after each. The results, in the order of ``jobs``."""
    start = time.perf_counter()
    lock = threading.Lock()
    finished = 0

    def say(text: str) -> None:
        with lock:
            print(f"[{finished}/{len(jobs)} {time.perf_counter() - start:6.0f} s] {text}",
                  flush=True)

    def one(job: dict) -> dict:
        name = f"{job['label']} seed {job['seed']}"
        try:
            return run_one(job["env"], job["steps"], job["seed"], shlex.split(job["args"]),
                           job["run_dir"], lambda note: say(f"{name}: {note}"))
        except Exception as e:  # noqa: BLE001 -- one broken run must not stop the others
            return {"seed": job["seed"], "error": f"{type(e).__name__}: {e}"}

    results: list[dict | None] = [None] * len(jobs)
    with futures.ThreadPoolExecutor(parallel) as pool:
        todo = {pool.submit(one, job): i for i, job in enumerate(jobs)}
        for done in futures.as_completed(todo):
            i = todo[done]
            job, r = jobs[i], done.result()
            results[i] = r
            with lock:
                finished += 1
            if "error" in r:
                shown = f"FAILED: {r['error']}"
            else:
                shown = (f"{'read, finished earlier' if r['reused'] else 'finished'}: return "
                         f"{num(r['true_return_mean'], 1)}, wall {num(r.get('wall_seconds'))} s")
            say(f"{job['label']} seed {job['seed']}: {shown}")
            if on_done:
                on_done(job, r)
    return results


def table(rows: list[dict], seeds: list[int], digits: int = 0) -> str:
    """Markdown: one row per setting, its standard return per seed ("failed") and mean."""
    def cells(r):
        by_seed = {x["seed"]: x.get("true_return_mean") for x in r["runs"]}
        returns = [num(by_seed[s], digits) if by_seed.get(s) is not None else "failed"
                   for s in seeds]
        return [r["setting"], f"`{r['args'] or '(preset)'}`", *returns, num(r["mean"], digits)]

    return markdown_table(["setting", "arguments", *[f"seed {s}" for s in seeds], "mean"],
                          [cells(r) for r in rows])


def plot(rows: list[dict], path: Path, env: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(1.4 * len(rows) + 2, 4))
    for i, r in enumerate(rows):
        ys = [x["true_return_mean"] for x in r["runs"] if "true_return_mean" in x]
        ax.plot([i] * len(ys), ys, "o", color="C1" if r["setting"] == TRUE else "C0", alpha=0.7)
        if r["mean"] is not None:
            ax.plot([i - 0.25, i + 0.25], [r["mean"]] * 2, "k-")
    ax.set_xticks(range(len(rows)), [r["setting"] for r in rows], rotation=20, ha="right")
    ax.set_ylabel("standard return (16 eval episodes)")
    ax.set_title(f"{env}: each run one dot, bar = mean over seeds")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def parse_setting(text: str) -> tuple[str, str]:
    name, sep, args = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"--setting wants NAME=ARGS, got {text!r}")
    return name, args


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--env", default="hopper")
    p.add_argument("--steps", type=int, default=None, help="env steps per run (default: preset)")
    p.add_argument("--seeds", type=seed_list, default="0-3",
                   help="a count (8: seeds 0-7), a range 100-107, or 0,3,5; one seed: 5-5")
    p.add_argument("--setting", type=parse_setting, action="append", default=[],
                   help='NAME="rlhp.run arguments" (repeatable; NAME= alone: the preset)')
    p.add_argument("--true", action="store_true", help="also run --reward=true on each seed")
    p.add_argument("--parallel", type=int, default=2, help="runs at a time")
    p.add_argument("--out", type=Path, default=Path("experiments/results/seeds"))
    a = p.parse_args(argv)
    seeds = a.seeds
    settings = list(a.setting) or [("default", "")]
    if a.true:
        settings.append((TRUE, "--reward=true"))
    if len({n for n, _ in settings}) != len(settings):
        sys.exit("setting names must differ")
    jobs = [{"label": name, "env": a.env, "steps": a.steps, "seed": seed, "args": args,
             "run_dir": a.out / "runs" / f"{name}-s{seed}"}
            for name, args in settings for seed in seeds]
    results: dict[str, list[dict]] = {name: [] for name, _ in settings}
    for job, r in zip(jobs, run_all(jobs, a.parallel)):
        results[job["label"]].append(r)
    rows = []
    for name, args in settings:
        runs = sorted(results[name], key=lambda r: r["seed"])
        ok = [r["true_return_mean"] for r in runs if "true_return_mean" in r]
        rows.append({"setting": name, "args": args, "runs": runs,
                     "mean": float(np.mean(ok)) if ok else None})
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / "seeds.json").write_text(json.dumps(
        {"env": a.env, "steps": a.steps, "seeds": seeds, "settings": rows}, indent=1))
    md = table(rows, seeds)
    (a.out / "seeds.md").write_text(md + "\n")
    plot(rows, a.out / "seeds.png", a.env)
    print(md)
    print(f"wrote {a.out}/seeds.json, seeds.md, seeds.png")


if __name__ == "__main__":
    main()
