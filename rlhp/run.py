"""Command line: ``python -m rlhp.run --env=hopper``.

Validates everything before compiling (bad input exits 2 with one line on stderr and
touches no existing run directory), trains with a progress bar, checkpoints as it goes
(``--resume`` continues a killed run), evaluates the final policy on the task's standard
episodes, and leaves in the run directory: ``config.json``, ``metrics.jsonl``,
``summary.json``, ``checkpoints/``, ``wandb/`` (offline run), plots and a video.
Exit status: 0 done, 2 bad input, 3 the training state became non-finite.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings
from pathlib import Path

from rlhp.config import Config, ConfigError, preset
from rlhp.envs import EnvError, resolve_backend
from rlhp.outputs.tracking import WANDB_MODES, finite_or_none

# Flags that set a config field (flag dest -> Config field); None means "not given".
CONFIG_FLAGS = {"env": "env", "backend": "backend", "steps": "total_steps", "seed": "seed",
                "reward": "reward", "labels": "labels", "teacher": "teacher", "query": "query",
                "offline": "offline", "num_envs": "num_envs"}
EXIT_USAGE, EXIT_NONFINITE = 2, 3


class UsageError(Exception):
    """Bad input: reported as one line and exit status 2."""


class NonFiniteError(Exception):
    """The policy or reward model became NaN/Inf; reported as one line and exit status 3."""


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m rlhp.run", description=__doc__.splitlines()[0])
    p.add_argument("--env", help="task name: hopper (default), gridworld, halfcheetah, ...")
    p.add_argument("--backend", help="auto (default), gridworld, brax or envpool")
    p.add_argument("--steps", type=int, help="total env steps (default: preset)")
    p.add_argument("--seed", type=int, help="random seed (default 0)")
    p.add_argument("--reward", help="learned (from the teacher's preferences, default), true "
                   "(the task's reward and episodes) or teacher (the teacher's own reward in "
                   "the preference episodes)")
    p.add_argument("--labels", type=int, help="label budget (default: preset)")
    p.add_argument("--teacher", help="oracle (default), noisy, mistake, skip, equal, myopic")
    p.add_argument("--query", help="disagreement (default), random or entropy")
    p.add_argument("--offline", action="store_true", default=None,
                   help="ask every label from the initial policy, then freeze the reward model")
    p.add_argument("--num-envs", type=int, help="parallel envs B (default: preset)")
    p.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                   help="any other Config field, e.g. --set reward_updates=16 (repeatable)")
    p.add_argument("--run-dir", help="where results go (default: runs/ENV-REWARD-sSEED)")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in --run-dir from its latest checkpoint")
    p.add_argument("--wandb", default="offline", help="offline (default), online or disabled")
    p.add_argument("--checkpoint-every", type=float, default=60.0, metavar="SECONDS",
                   help="save a checkpoint at most this often (default 60; 0: every chunk)")
    p.add_argument("--no-video", action="store_true", help="skip the final-policy video")
    return p.parse_args(argv)


def build_config(args: argparse.Namespace) -> tuple[Config, Path]:
    """Check the arguments and build the config (the saved one with ``--resume``); raises
    ``UsageError`` with one line. Touches nothing on disk."""
    given = {field: getattr(args, flag) for flag, field in CONFIG_FLAGS.items()
             if getattr(args, flag) is not None}
    try:
        if args.wandb not in WANDB_MODES:
            raise ConfigError(f"unknown --wandb {args.wandb!r}; choose from: {', '.join(WANDB_MODES)}")
        if args.checkpoint_every < 0:
            raise ConfigError("--checkpoint-every must be >= 0 seconds")
        if given.get("reward", "learned") != "learned":
            extra = [f"--{f}" for f in ("labels", "teacher", "query") if f in given]
            if extra:
                raise ConfigError(f"{', '.join(extra)} need --reward=learned")
        opts = {k: v for k, v in given.items() if k != "env"}
        cfg = preset(given.get("env", "hopper"), **opts).override(args.set)
        resolve_backend(cfg.env, cfg.backend)
    except (ConfigError, EnvError) as e:
        raise UsageError(str(e)) from None
    run_dir = Path(args.run_dir or f"runs/{cfg.env}-{cfg.reward}-s{cfg.seed}")
    if not args.resume:
        if run_dir.exists() and any(run_dir.iterdir()):
            raise UsageError(f"run directory {run_dir} already exists; pick another --run-dir "
                             f"or add --resume to continue it")
        return cfg, run_dir
    path = run_dir / "config.json"
    if not path.exists():
        raise UsageError(f"--resume: no run to continue in {run_dir} (no config.json)")
    try:
        saved = Config.from_dict(json.loads(path.read_text()))
    except (ValueError, TypeError) as e:  # JSONDecodeError and ConfigError are ValueErrors
        raise UsageError(f"--resume: {path} is corrupt: {str(e).splitlines()[0]}") from None
    for field in list(given) + [a.partition("=")[0] for a in args.set]:
        if getattr(saved, field) != getattr(cfg, field):
            raise UsageError(f"--resume: conflicting flags: {field}={getattr(cfg, field)!r} but "
                             f"the run in {run_dir} has {getattr(saved, field)!r}")
    return saved, run_dir


def write_json(path: Path, obj) -> None:
    """Write ``obj`` as JSON atomically (a crash leaves the old file or the new one)."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(obj, indent=1))
    os.replace(tmp, path)


def prepare(cfg: Config, run_dir: Path, resume: bool):
    """Env, trainer and, with ``resume``, the restored ``(state, meta)`` (None if the run
    died before its first checkpoint). Raises ``UsageError`` before anything compiles."""
    import jax

    from rlhp.outputs.checkpoint import CheckpointError, Checkpointer
    from rlhp.envs import make_env
    from rlhp.train import make_train

    ckpt = Checkpointer(run_dir) if resume else None
    start = ckpt.latest() if ckpt else None
    # envpool's pools live outside JAX: a resumed run re-seeds them (episodes restart).
    env = make_env(cfg.env, cfg.backend, cfg.num_envs, seed=cfg.seed + (start or 0),
                   preference_episodes=cfg.preference_episodes, down_steps=cfg.down_steps,
                   fall_penalty=cfg.fall_penalty)
    try:
        trainer = make_train(cfg, env)
    except ConfigError as e:
        raise UsageError(str(e)) from None
    restored = None
    if start is not None:
        abstract = jax.eval_shape(trainer.init, jax.random.PRNGKey(cfg.seed), cfg.dynamic())
        try:
            restored = ckpt.restore(abstract, start)
        except CheckpointError as e:
            raise UsageError(f"--resume: {e}") from None
    return trainer, ckpt, restored


def progress_text(row: dict, budget: int, sps: float, last_return: float) -> str:
    parts = [f"{sps:,.0f} steps/s", f"return {last_return:,.1f}"]
    if row.get("labels") is not None:
        parts += [f"r-hat {row['predicted_reward']:.2f}", f"labels {row['labels']:.0f}/{budget}",
                  f"acc {row['reward_val_accuracy'] or float('nan'):.2f}"]
    return " | ".join(parts)


def train_and_report(cfg: Config, run_dir: Path, resume: bool = False,
                     wandb_mode: str = "offline", checkpoint_every: float = 60.0,
                     video: bool = True) -> dict:
    """Train (or continue) the run in ``run_dir``, evaluate, write every output; returns
    the summary. Raises ``UsageError`` (before compiling) and ``NonFiniteError``."""
    import secrets

    import jax
    import numpy as np
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    from rlhp.outputs import report
    from rlhp.outputs.checkpoint import Checkpointer
    from rlhp.envs import make_env
    from rlhp.outputs.tracking import MetricsLog
    from rlhp.train import evaluate, nonfinite_parts, restart_episodes

    t_start = time.time()
    trainer, ckpt, restored = prepare(cfg, run_dir, resume)
    dyn, key = cfg.dynamic(), jax.random.PRNGKey(cfg.seed)
    compile_seconds = 0.0
    if restored:
        state, meta = restored
        if not trainer.env.spec.vmappable:
            state = jax.jit(lambda s, k: restart_episodes(trainer, s, k))(
                state, jax.random.fold_in(key, meta["iteration"]))
    else:
        run_dir.mkdir(parents=True, exist_ok=True)
        write_json(run_dir / "config.json", cfg.to_dict())
        t0 = time.time()
        init = jax.jit(trainer.init).lower(key, dyn).compile()
        compile_seconds += time.time() - t0
        t0 = time.time()
        state = jax.block_until_ready(init(key, dyn))  # any exploration, reward pretraining
        meta = {"iteration": cfg.explore_iterations, "train_seconds": time.time() - t0,
                "wandb_id": secrets.token_hex(4)}
        ckpt = ckpt or Checkpointer(run_dir)
        ckpt.save(meta["iteration"], state, meta)

    it, n_iter, C = meta["iteration"], cfg.num_iterations, cfg.chunk_iterations
    log = MetricsLog(run_dir, it, wandb_mode, cfg.to_dict(), meta["wandb_id"])
    if it < n_iter:
        t0 = time.time()
        chunk = trainer.chunk.lower(state, dyn).compile()
        compile_seconds += time.time() - t0
    check = jax.jit(nonfinite_parts)
    returns = [r["true_return"] for r in log.rows if r.get("true_return") is not None]
    last_return = returns[-1] if returns else float("nan")
    t_train, last_save = time.time(), time.time()
    columns = [TextColumn("[bold]{task.description}"), BarColumn(),
               TextColumn("{task.completed:,.0f}/{task.total:,.0f} steps"),
               TextColumn("{task.fields[info]}"), TimeRemainingColumn()]
    with Progress(*columns, disable=not sys.stderr.isatty()) as progress:
        task = progress.add_task(cfg.env, total=cfg.steps, completed=it * cfg.batch_size, info="")
        while it < n_iter:
            new_state, metrics = chunk(state, dyn)
            metrics = jax.device_get(metrics)
            wall = time.time() - t_start
            rows = [{"iteration": it + j + 1, **{k: finite_or_none(v[j]) for k, v in metrics.items()},
                     "wall_seconds": wall} for j in range(C)]
            log.write(rows)
            bad = [name for name, ok in jax.device_get(check(new_state)).items() if not ok]
            if bad:
                if ckpt.latest() != it:
                    ckpt.save(it, state, meta)
                ckpt.close()
                log.close()
                raise NonFiniteError(
                    f"non-finite {' and '.join(bad)} parameters after iterations {it + 1}-{it + C} "
                    f"(env steps up to {(it + C) * cfg.batch_size:,}); the last good checkpoint "
                    f"is iteration {it} in {ckpt.directory}")
            state, it = new_state, it + C
            meta = {**meta, "iteration": it,
                    "train_seconds": meta["train_seconds"] + time.time() - t_train}
            t_train = time.time()
            if it == n_iter or time.time() - last_save >= checkpoint_every:
                ckpt.save(it, state, meta)
                last_save = time.time()
            finished = [r["true_return"] for r in rows if r["true_return"] is not None]
            last_return = np.mean(finished) if finished else last_return
            sps = it * cfg.batch_size / max(meta["train_seconds"], 1e-9)
            progress.update(task, completed=it * cfg.batch_size,
                            info=progress_text(rows[-1], cfg.labels, sps, last_return))
    ckpt.close()
    train_seconds = meta["train_seconds"]
    last = log.rows[-1]

    eval_env = make_env(cfg.env, cfg.backend, cfg.eval_episodes, seed=cfg.seed + 10_000)
    returns, _ = jax.jit(lambda s, k: evaluate(trainer, eval_env, s, k))(
        state, jax.random.PRNGKey(cfg.seed + 1))
    returns = np.asarray(returns)
    learned = cfg.reward == "learned"
    summary = {
        "env": cfg.env, "backend": trainer.env.spec.backend, "seed": cfg.seed, "steps": cfg.steps,
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
        "resumed": bool(resume and restored),
    }
    summary.update(report.task_metrics(trainer, state))
    write_json(run_dir / "summary.json", summary)
    from rlhp.outputs import plots
    plots.draw_run(run_dir, log.rows, trainer, state)
    if video:
        from rlhp.outputs import video as video_lib
        try:
            video_lib.record(trainer, state, run_dir / "policy.mp4")
        except video_lib.VideoUnavailable as e:
            print(f"warning: no video: {e}", file=sys.stderr)
    log.close(summary)
    return summary


def main(argv=None) -> int:
    # wandb's service and ffmpeg start as subprocesses (fork + exec, which is safe with
    # JAX's threads); Python warns about any fork in a threaded process.
    warnings.filterwarnings("ignore", message=r"os\.fork\(\) was called", category=RuntimeWarning)
    args = parse_args(argv)
    try:
        cfg, run_dir = build_config(args)
        summary = train_and_report(cfg, run_dir, resume=args.resume, wandb_mode=args.wandb,
                                   checkpoint_every=args.checkpoint_every,
                                   video=not args.no_video)
    except UsageError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except NonFiniteError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_NONFINITE
    print(f"{cfg.env}: true return {summary['true_return_mean']:.1f} ± {summary['true_return_std']:.1f} "
          f"over {summary['eval_episodes']} episodes, {summary['env_steps_per_second']:,.0f} env steps/s")
    print(f"results: {run_dir}/ (summary.json, metrics.jsonl, plots, checkpoints); "
          f"continue a stopped run with: python -m rlhp.run --run-dir {run_dir} --resume")
    return 0


if __name__ == "__main__":
    sys.exit(main())
