"""Command line: ``python -m rlhp.run --env=hopper``.

Validates everything before compiling (bad input exits 2 with one line on stderr and
touches no existing run directory), trains with a progress bar, evaluates the final policy
on the task's standard episodes, and writes ``summary.json`` and ``metrics.jsonl`` into the
run directory.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

from rlhp.config import Config, ConfigError, preset
from rlhp.envs import EnvError, resolve_backend


class UsageError(Exception):
    """Bad input: reported as one line and exit status 2."""


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m rlhp.run", description=__doc__.splitlines()[0])
    p.add_argument("--env", default="hopper", help="task name (hopper, gridworld, ...)")
    p.add_argument("--backend", default="auto", help="auto, gridworld, brax or envpool")
    p.add_argument("--steps", type=int, default=None, help="total env steps (default: preset)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--reward", default="learned",
                   help="learned (from the teacher's preferences, default) or true (baseline)")
    p.add_argument("--labels", type=int, default=None, help="label budget (default: preset)")
    p.add_argument("--teacher", default="oracle",
                   help="synthetic teacher: oracle, noisy, mistake, skip, equal, myopic")
    p.add_argument("--query", default="disagreement", help="random, disagreement or entropy")
    p.add_argument("--offline", action="store_true",
                   help="ask every label from the initial policy, then freeze the reward model")
    p.add_argument("--num-envs", type=int, default=None, help="parallel envs B (default: preset)")
    p.add_argument("--run-dir", default=None, help="where results go (default: runs/ENV-REWARD-sSEED)")
    return p.parse_args(argv)


def build_config(args: argparse.Namespace) -> tuple[Config, Path]:
    """Check the arguments and build the config; raises ``UsageError`` with one line."""
    try:
        resolve_backend(args.env, args.backend)
        cfg = preset(args.env, backend=args.backend, total_steps=args.steps, seed=args.seed,
                     reward=args.reward, num_envs=args.num_envs, labels=args.labels,
                     teacher=args.teacher, query=args.query, offline=args.offline)
    except (ConfigError, EnvError) as e:
        raise UsageError(str(e)) from None
    run_dir = Path(args.run_dir or f"runs/{cfg.env}-{cfg.reward}-s{cfg.seed}")
    if run_dir.exists() and any(run_dir.iterdir()):
        raise UsageError(f"run directory {run_dir} already exists; pick another --run-dir")
    return cfg, run_dir


def finite_or_none(x):
    x = float(x)
    return x if math.isfinite(x) else None


def train_and_report(cfg: Config, run_dir: Path) -> dict:
    import jax
    import numpy as np
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    from rlhp import report
    from rlhp.envs import make_env
    from rlhp.train import evaluate, make_train

    t_start = time.time()
    env = make_env(cfg.env, cfg.backend, cfg.num_envs, seed=cfg.seed,
                   preference_episodes=cfg.reward == "learned")
    trainer = make_train(cfg, env)
    dyn = cfg.dynamic()
    t0 = time.time()
    init = jax.jit(trainer.init).lower(jax.random.PRNGKey(cfg.seed), dyn).compile()
    compile_seconds = time.time() - t0
    state = init(jax.random.PRNGKey(cfg.seed), dyn)  # includes reward pretraining
    t0 = time.time()
    chunk = trainer.chunk.lower(state, dyn).compile()
    compile_seconds += time.time() - t0

    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.json").write_text(json.dumps(cfg.to_dict(), indent=1))
    n_chunks = cfg.num_iterations // cfg.chunk_iterations
    steps_per_chunk = cfg.chunk_iterations * cfg.batch_size
    last_return, last = float("nan"), {}
    t_train = time.time()
    columns = [TextColumn("[bold]{task.description}"), BarColumn(),
               TextColumn("{task.completed:,.0f}/{task.total:,.0f} steps"),
               TextColumn("{task.fields[sps]:,.0f} steps/s"),
               TextColumn("return {task.fields[ret]}"), TimeRemainingColumn()]
    with open(run_dir / "metrics.jsonl", "w") as log, \
            Progress(*columns, disable=not sys.stderr.isatty()) as progress:
        task = progress.add_task(f"{cfg.env}", total=n_chunks * steps_per_chunk, sps=0, ret="-")
        for i in range(n_chunks):
            state, metrics = chunk(state, dyn)
            metrics = jax.device_get(metrics)
            for j in range(cfg.chunk_iterations):
                row = {k: finite_or_none(v[j]) for k, v in metrics.items()}
                row["wall_seconds"] = time.time() - t_start
                log.write(json.dumps(row) + "\n")
            log.flush()
            if np.isfinite(metrics["true_return"]).any():
                last_return = float(np.nanmean(metrics["true_return"]))
            last = row
            done = (i + 1) * steps_per_chunk
            labels = f" labels {last['labels']:.0f}/{cfg.labels}" if "labels" in last else ""
            progress.update(task, completed=done, sps=done / (time.time() - t_train),
                            ret=f"{last_return:,.1f}{labels}")
    train_seconds = time.time() - t_train

    eval_env = make_env(cfg.env, cfg.backend, cfg.eval_episodes, seed=cfg.seed + 10_000)
    returns, _ = jax.jit(lambda s, k: evaluate(trainer, eval_env, s, k))(
        state, jax.random.PRNGKey(cfg.seed + 1))
    returns = np.asarray(returns)
    learned = cfg.reward == "learned"
    summary = {
        "env": cfg.env, "backend": env.spec.backend, "seed": cfg.seed, "steps": cfg.steps,
        "labels": int(last["labels"]) if learned else 0,
        "teacher": cfg.teacher if learned else None, "query": cfg.query if learned else None,
        "offline": cfg.offline, "reward": cfg.reward,
        "true_return_mean": float(returns.mean()), "true_return_std": float(returns.std()),
        "eval_episodes": int(returns.size), "wall_seconds": time.time() - t_start,
        "compile_seconds": compile_seconds, "train_seconds": train_seconds,
        "env_steps_per_second": cfg.steps / train_seconds,
        "reward_val_accuracy": last.get("reward_val_accuracy"),
        "reward_true_corr": last.get("reward_true_corr"),
        "labels_per_second": last["labels"] / train_seconds if learned else None,
    }
    summary.update(report.task_metrics(trainer, state))
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=1))
    return summary


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        cfg, run_dir = build_config(args)
    except UsageError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    summary = train_and_report(cfg, run_dir)
    print(f"{cfg.env}: true return {summary['true_return_mean']:.1f} ± {summary['true_return_std']:.1f} "
          f"over {summary['eval_episodes']} episodes, {summary['env_steps_per_second']:,.0f} env steps/s")
    print(f"results: {run_dir}/summary.json, {run_dir}/metrics.jsonl")
    return 0


if __name__ == "__main__":
    sys.exit(main())
