"""Command line: ``python -m rlhp.run --env=hopper``.

Validates everything before compiling (bad input exits 2 with one line on stderr and
touches no existing run directory), trains with a progress bar (plain status lines in a
log when stderr is not a terminal), checkpoints as it goes
(``--resume`` continues a killed run), evaluates the final policy on the task's standard
episodes, and leaves in the run directory: ``config.json``, ``metrics.jsonl``,
``summary.json``, ``checkpoints/``, ``wandb/`` (offline run), plots and a video.
Exit status: 0 done, 2 bad input, 3 the training state became non-finite.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
import warnings
from pathlib import Path

from rlhp.config import FIELDS, SECTION_OF, Config, ConfigError, allowed
from rlhp.envs import EnvError, resolve_backend
from rlhp.outputs.tracking import WANDB_MODES, finite_or_none
from rlhp.preferences import fresh
from rlhp.presets import preset

# Flags that set a config field (flag dest -> Config field); None means "not given".
CONFIG_FLAGS = {"env": "env", "backend": "backend", "steps": "total_steps", "seed": "seed",
                "reward": "reward", "labels": "labels", "teacher": "teacher", "query": "query",
                "offline": "offline", "num_envs": "num_envs", "audit_labels": "audit_labels"}
FLAG_OF = {field: "--" + dest.replace("_", "-") for dest, field in CONFIG_FLAGS.items()}
# Fields only a learned reward reads: setting one in a run without r-hat is an error.
LEARNED_ONLY = tuple(name for name, sec in SECTION_OF.items()
                     if sec in ("reward_model", "queries", "teacher"))
EVAL_SEED_OFFSET = 10_000  # the evaluation pool's seed: seed + this
STATUS_SECONDS = 30.0      # without a terminal: a status line at least this often
EXIT_USAGE, EXIT_NONFINITE = 2, 3


class UsageError(Exception):
    """Bad input: reported as one line and exit status 2."""


class NonFiniteError(Exception):
    """The policy or reward model became NaN/Inf; reported as one line and exit status 3."""


class Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one-line ``UsageError``s (exit status 2)."""

    def error(self, message):
        raise UsageError(message.splitlines()[0] if message else "bad arguments")


def env_seed(seed: int, offset: int = 0) -> int:
    """The seed of an envpool pool ``offset`` after the run's: wraps within envpool's int32
    seeds (the same as ``seed + offset`` for every seed where that fits)."""
    return (seed + offset) % 2**31


def field_int(field: str):
    """An argparse ``type`` for an int flag of config ``field`` (its error says the range)."""
    def parse(text: str) -> int:
        try:
            return int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{field}={text!r}: expected {allowed(FIELDS[field])}") from None
    return parse


def parse_args(argv=None) -> argparse.Namespace:
    """The command line; raises ``UsageError`` (one line) on bad syntax."""
    p = Parser(prog="python -m rlhp.run", description=__doc__.splitlines()[0])
    p.add_argument("--env", help="task name: hopper (default), gridworld, halfcheetah, ...")
    p.add_argument("--backend", help="auto (default), gridworld, brax or envpool")
    p.add_argument("--steps", type=field_int("total_steps"), help="total env steps (default: preset)")
    p.add_argument("--seed", type=field_int("seed"), help="random seed (default 0)")
    p.add_argument("--reward", help="learned (from the teacher's preferences, default), true "
                   "(the task's reward and episodes) or teacher (the teacher's own reward in "
                   "the preference episodes)")
    p.add_argument("--labels", type=field_int("labels"), help="label budget (default: preset)")
    p.add_argument("--teacher", help="oracle (default), noisy, mistake, skip, equal, myopic")
    p.add_argument("--query", help="disagreement (default), random, entropy, kcenter, "
                   "kcenter-disagreement or bald")
    p.add_argument("--audit-labels", type=field_int("audit_labels"), metavar="N",
                   help="N extra fresh pairs per iteration answered by the synthetic teacher "
                   "to measure r-hat's fresh accuracy, never stored (default 0)")
    p.add_argument("--offline", action="store_true", default=None,
                   help="ask every label from the initial policy, then freeze the reward model")
    p.add_argument("--num-envs", type=field_int("num_envs"), help="parallel envs B (default: preset)")
    p.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                   help="any other Config field, e.g. --set reward_updates=16 (repeatable; "
                   "--list-settings shows every field, its default and allowed values)")
    p.add_argument("--list-settings", action="store_true",
                   help="print every config field (section, default, allowed values, meaning)"
                   " and exit")
    p.add_argument("--run-dir", help="where results go (default: runs/ENV-REWARD-sSEED)")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in --run-dir from its latest checkpoint")
    p.add_argument("--wandb", default="offline", help="offline (default), online or disabled")
    p.add_argument("--checkpoint-every", type=float, default=60.0, metavar="SECONDS",
                   help="save a checkpoint at most this often (default 60; 0: every chunk)")
    p.add_argument("--no-video", action="store_true", help="skip the final-policy video")
    p.add_argument("--labels-from", metavar="FILE",
                   help="labels saved by `python -m rlhp.labels export` (e.g. a person's, "
                   "from another run) put into the comparison database before RL starts; "
                   "they count against --labels")
    p.add_argument("--port", type=int,
                   help="--teacher human: the labelling page's port (default: a free one)")
    p.add_argument("--host",
                   help="--teacher human: the address to serve (anything but 127.0.0.1 "
                   "needs --token)")
    p.add_argument("--token", help="--teacher human: a secret every request must carry "
                   "(?token=... in the page's address)")
    return p.parse_args(argv)


def list_settings() -> str:
    """Every config field: name, section, default, allowed values, meaning (one a line)."""
    rows = [("field", "section", "default", "allowed", "meaning")]
    rows += [(name, SECTION_OF[name], repr(f.default), allowed(f) + (" (dynamic)" if
              f.metadata["dynamic"] else ""), f.metadata["meaning"]) for name, f in FIELDS.items()]
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)) + "  " + r[4]
                     for r in rows)


def usage_error(e: ConfigError, flags: dict) -> UsageError:
    """``e`` as a ``UsageError``, naming the flag too when the user set the field by one."""
    field = getattr(e, "field", None)
    if field in flags:
        return UsageError(f"{FLAG_OF[field]}: {e}")
    return UsageError(str(e))


def check_run_dir(run_dir: Path) -> None:
    """Raise ``UsageError`` unless ``run_dir`` is (or can become) a writable directory;
    leaves nothing behind."""
    import tempfile
    if run_dir.exists() and not run_dir.is_dir():
        raise UsageError(f"--run-dir {run_dir} is not a directory")
    parent = run_dir.absolute()
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise UsageError(f"--run-dir {run_dir}: {parent} is not a directory")
    try:  # os.access says yes to root even where nothing can be made (/proc, read-only mounts)
        os.rmdir(tempfile.mkdtemp(prefix=".rlhp-probe-", dir=parent))
    except OSError as e:
        raise UsageError(f"--run-dir {run_dir} is not writable: "
                         f"{e.strerror or type(e).__name__} in {parent}") from None


def build_config(args: argparse.Namespace) -> tuple[Config, Path]:
    """Check the arguments and build the config (the saved one with ``--resume``); raises
    ``UsageError`` with one line. Touches nothing on disk."""
    given = {field: getattr(args, flag) for flag, field in CONFIG_FLAGS.items()
             if getattr(args, flag) is not None}
    try:
        if args.wandb not in WANDB_MODES:
            raise ConfigError(f"unknown --wandb {args.wandb!r}; choose from: {', '.join(WANDB_MODES)}")
        if not 0 <= args.checkpoint_every < float("inf"):
            raise ConfigError(f"--checkpoint-every={args.checkpoint_every}: must be >= 0 seconds")
        opts = {k: v for k, v in given.items() if k != "env"}
        cfg = preset(given.get("env", "hopper"), **opts).override(args.set)
        if cfg.reward != "learned":  # whether --reward or --set reward= said so
            assigned = {a.partition("=")[0] for a in args.set}
            extra = [f"{FLAG_OF[f]} {given[f]}" if f in given else f"{f}={getattr(cfg, f)!r}"
                     for f in LEARNED_ONLY if f in given or f in assigned]
            if extra:
                raise ConfigError(f"{', '.join(extra)}: only a learned reward uses "
                                  f"{'it' if len(extra) == 1 else 'them'}; this run has "
                                  f"reward={cfg.reward!r} (needs reward=learned)", "reward")
        resolve_backend(cfg.env, cfg.backend)
    except ConfigError as e:
        raise usage_error(e, given) from None
    except EnvError as e:
        raise UsageError(str(e)) from None
    run_dir = Path(args.run_dir or f"runs/{cfg.env}-{cfg.reward}-s{cfg.seed}")
    check_run_dir(run_dir)
    if not args.resume:
        if run_dir.exists() and any(run_dir.iterdir()):
            raise UsageError(f"run directory {run_dir} already exists; pick another --run-dir "
                             f"or add --resume to continue it")
        return cfg, run_dir
    path = run_dir / "config.json"
    if not path.exists():
        raise UsageError(f"--resume: no run to continue in {run_dir} (no config.json)")
    if not path.is_file():
        raise UsageError(f"--resume: {path} is not a file")
    if (run_dir / "checkpoints").exists() and not (run_dir / "checkpoints").is_dir():
        raise UsageError(f"--resume: {run_dir / 'checkpoints'} is not a directory")
    try:
        saved = Config.from_dict(json.loads(path.read_text()))
    except (ValueError, TypeError, OSError) as e:  # JSONDecodeError, ConfigError: ValueErrors
        raise UsageError(f"--resume: {path} is corrupt: {str(e).splitlines()[0]}") from None
    for field in list(given) + [a.partition("=")[0] for a in args.set]:
        if getattr(saved, field) != getattr(cfg, field):
            raise UsageError(f"--resume: conflicting flags: {field}={getattr(cfg, field)!r} but "
                             f"the run in {run_dir} has {getattr(saved, field)!r}")
    return saved, run_dir


def check_serving(cfg: Config, args: argparse.Namespace) -> tuple | None:
    """The labelling page's ``(host, port, token)`` (None without ``--teacher human``): its
    flags only for ``--teacher human``, a port in range, and a token to serve beyond this
    machine. Raises ``UsageError``."""
    given = (args.host, args.port, args.token) != (None, None, None)
    if given and (cfg.teacher != "human" or cfg.reward != "learned"):
        raise UsageError("--port, --host and --token serve the labelling page: they need "
                         "--teacher human (and a learned reward)")
    if cfg.teacher != "human":
        return None
    from rlhp.human.server import LOCAL, check_host
    host = LOCAL if args.host is None else args.host
    port = 0 if args.port is None else args.port
    try:
        check_host(host, args.token, port)
    except ValueError as e:
        raise UsageError(str(e)) from None
    return host, port, args.token


def write_json(path: Path, obj) -> None:
    """Write ``obj`` as JSON atomically (a crash leaves the old file or the new one)."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(obj, indent=1))
    os.replace(tmp, path)


def memory_bytes() -> int:
    """This machine's physical memory."""
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def check_memory(cfg: Config, spec, available: int | None = None) -> None:
    """Raise ``ConfigError`` (naming the largest buffer's field) unless the rollout, the
    segment buffer and the comparison database fit in half of ``available`` bytes (default:
    this machine's memory). Needs the env's spec: the segment length and observation size."""
    from math import prod

    import numpy as np

    from rlhp.preferences.frames import codec
    from rlhp.train import segment_length
    available = memory_bytes() if available is None else available
    L = segment_length(cfg, spec)
    rest = 4 * (max(1, prod(spec.action_shape)) + 1)  # the action and a reward: 32-bit each
    step = prod(spec.obs_shape) * (1 if spec.frame_stack else 4) + rest  # uint8 images
    clip_shape, clip_dtype = codec(spec).stored(L)
    clip = prod(clip_shape) * np.dtype(clip_dtype).itemsize + L * rest
    parts = {"num_envs": cfg.batch_size * (step + 4 * 8)}  # the rollout and its statistics
    per_item = {"num_envs": step + 4 * 8}
    if cfg.reward == "learned":
        db = ("label_window" if cfg.label_window else "max_labels" if cfg.max_labels
              else "labels")
        parts[db], per_item[db] = cfg.label_capacity * 2 * clip, 2 * clip
        parts["segment_capacity"] = cfg.segment_capacity * clip
        per_item["segment_capacity"] = clip
        # candidate pairs of one query round: indices and every member's two sums
        per_item["candidate_factor"] = max(cfg.upfront_labels, cfg.labels_per_iteration) * 8 * (
            2 + cfg.ensemble_size)
        parts["candidate_factor"] = cfg.candidate_factor * per_item["candidate_factor"]
    total, budget = sum(parts.values()), available // 2
    if total > budget:
        field = max(parts, key=parts.get)
        most = max(0, (budget - total + parts[field]) // per_item[field])
        if field == "num_envs":
            most //= cfg.rollout_length
        raise ConfigError(
            f"{field}={getattr(cfg, field)}: the rollout, segments, query candidates and "
            f"comparison database "
            f"would take {total / 2**30:,.1f} GiB, over half this machine's "
            f"{available / 2**30:,.1f} GiB; here {field} can be at most {most:,}", field)


def prepare(cfg: Config, run_dir: Path, resume: bool):
    """Env, trainer and, with ``resume``, the restored ``(state, meta)`` (None if the run
    died before its first checkpoint). Builds the env and traces the program (init and one
    step), so every error it finds is a ``UsageError`` raised before anything is written."""
    import jax

    from rlhp.outputs.checkpoint import CheckpointError, Checkpointer
    from rlhp.envs import make_env
    from rlhp.train import make_train

    ckpt = Checkpointer(run_dir) if resume else None
    start = ckpt.latest() if ckpt else None
    try:
        # envpool's pools live outside JAX: a resumed run re-seeds them (episodes restart).
        env = make_env(cfg.env, cfg.backend, cfg.num_envs, seed=env_seed(cfg.seed, start or 0),
                       preference_episodes=cfg.preference_episodes, down_steps=cfg.down_steps,
                       fall_penalty=cfg.fall_penalty, end_penalty=cfg.end_penalty)
        check_memory(cfg, env.spec)
        trainer = make_train(cfg, env)
        dyn = cfg.dynamic()
        abstract = jax.eval_shape(trainer.init, jax.random.PRNGKey(cfg.seed), dyn)
        jax.eval_shape(trainer.train_step, abstract, dyn)
    except (ConfigError, EnvError) as e:
        raise UsageError(str(e)) from None
    restored = None
    if start is not None:
        try:
            restored = ckpt.restore(abstract, start)
        except CheckpointError as e:
            raise UsageError(f"--resume: {e}") from None
    return trainer, ckpt, restored


def progress_text(row: dict, budget: int, sps: float, last_return: float,
                  alarmed: bool = False) -> str:
    parts = [f"{sps:,.0f} steps/s", f"return {last_return:,.1f}"]
    if row.get("labels") is not None:
        parts += [f"r-hat {row['predicted_reward']:.2f}", f"labels {row['labels']:.0f}/{budget}",
                  f"acc {row['reward_val_accuracy'] or float('nan'):.2f}"]
        running = row.get("reward_fresh_accuracy_window")
        if running is not None or alarmed:
            parts.append(f"fresh {running if running is not None else float('nan'):.2f}"
                         + (" (r-hat disagrees)" if alarmed else ""))
    return " | ".join(parts)


class FreshAlarm:
    """The running fresh accuracy of a run's rows and its alarm: ``add(rows)`` puts
    ``reward_fresh_accuracy_window`` into each new row and returns the alarm's text the
    first time the running accuracy, having reached ``threshold``, is below it with 95%
    confidence (``fresh.first_alarm``; None otherwise); ``row`` is that row (rows restored
    on resume included)."""

    def __init__(self, window: int, threshold: float, rows: list[dict]):
        self.window, self.threshold, self.rows = window, threshold, list(rows)
        at = fresh.from_rows(self.rows, window, threshold)[1]
        self.row = None if at is None else self.rows[at]

    @property
    def active(self) -> bool:
        """Whether the progress line says "r-hat disagrees": the alarm has fired and the
        latest window is still below the threshold (a run whose r-hat agrees again drops it)."""
        latest = self.rows[-1].get("reward_fresh_accuracy_window") if self.rows else None
        return self.row is not None and latest is not None and latest < self.threshold

    def add(self, rows: list[dict]) -> str | None:
        self.rows += rows
        running, at = fresh.from_rows(self.rows, self.window, self.threshold)
        for row, value in zip(rows, running[-len(rows):]):
            row["reward_fresh_accuracy_window"] = finite_or_none(value)
        if self.row is not None or at is None:
            return None
        self.row = self.rows[at]
        return (f"warning: {fresh.ALARM} (running fresh accuracy "
                f"{self.row['reward_fresh_accuracy_window']:.2f} < {self.threshold:g} at "
                f"iteration {self.row['iteration']}, env step {self.row['env_steps']:,.0f})")


def duration(seconds: float) -> str:
    """``seconds`` as ``45s``, ``12m05s`` or ``2h07m``."""
    s = int(round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s // 60 % 60:02d}m"


class StatusLines:
    """Progress for a log file or a pipe (stderr not a terminal, where the bar would draw
    nothing): one plain, flushed line each time the run passes another tenth of its steps
    or ``every`` seconds after the previous line, whichever comes first, and at the end."""

    def __init__(self, name: str, total: int, done: int = 0, stream=None,
                 every: float = STATUS_SECONDS, clock=time.time):
        self.name, self.total, self.every, self.clock = name, total, every, clock
        self.stream = stream or sys.stderr
        self.next_tenth = done * 10 // total + 1
        self.last = clock()

    def say(self, text: str) -> None:
        print(f"{self.name}: {text}", file=self.stream, flush=True)

    def update(self, done: int, info: str, sps: float) -> bool:
        """Print the line for ``done`` steps if one is due; returns whether it printed."""
        now = self.clock()
        if done < self.total and done * 10 < self.next_tenth * self.total \
                and now - self.last < self.every:
            return False
        self.next_tenth = done * 10 // self.total + 1
        self.last = now
        left = duration((self.total - done) / sps) if sps > 0 else "?"
        self.say(f"{done:,}/{self.total:,} steps ({100 * done / self.total:.0f}%) | {info} | "
                 f"{left} left")
        return True


def read_labels(trainer, path: str) -> list:
    """The labels in ``path`` (``rlhp.labels export``'s JSON lines), checked against the
    run's segments; raises ``UsageError``."""
    from rlhp.human.store import read_jsonl
    if trainer.learner is None:
        raise UsageError("--labels-from: only a learned reward uses labels")
    learner = trainer.learner
    try:
        return read_jsonl(path, learner.store.stored(learner.segment_length),
                          learner.action_shape, learner.segment_length)
    except OSError as e:
        raise UsageError(f"--labels-from {path}: {e.strerror}") from None
    except ValueError as e:
        raise UsageError(f"--labels-from: {e}") from None


def check_clips(spec) -> None:
    """Raise ``UsageError`` unless a person can be shown clips of this env here."""
    from rlhp.human.clips import ClipUnavailable, clip_maker
    from rlhp.outputs.video import VideoUnavailable
    try:
        clip_maker(spec)
    except (ClipUnavailable, VideoUnavailable) as e:
        raise UsageError(f"--teacher human: {e}") from None


def serve_labelling_page(trainer, run_dir: Path, meta: dict, host: str, port: int,
                         token: str | None):
    """Start the labelling page for a ``--teacher human`` run and print its address (one
    line on stdout); returns its ``HumanTeacher`` (``.server`` serving it), which has
    inserted the answers up to the checkpoint's ``human_labels_inserted``."""
    from rlhp.human.server import Server, make_app
    from rlhp.human.store import Store
    from rlhp.human.teacher import HumanTeacher
    store = Store(run_dir / "labels.sqlite")
    teacher = HumanTeacher(trainer, store, run_dir / "clips", meta.get("human_labels_inserted", 0))
    app = make_app(store, teacher.clip_dir, lambda: teacher.status, token, ready=teacher.ready)
    try:
        teacher.server = Server(app, host, port).start()
    except OSError as e:
        raise UsageError(f"--port {port}: cannot serve on {host}: {e.strerror}") from None
    print(f"Labelling page: {teacher.server.url}" + (f"?token={token}" if token else ""),
          flush=True)
    return teacher


def train_and_report(cfg: Config, run_dir: Path, resume: bool = False,
                     wandb_mode: str = "offline", checkpoint_every: float = 60.0,
                     video: bool = True, serve: tuple | None = ("127.0.0.1", 0, None),
                     labels_from: str | None = None) -> dict:
    """Train (or continue) the run in ``run_dir``, evaluate, write every output; returns
    the summary. With ``--teacher human`` the labelling page is served on ``serve``
    (host, port, token) while the run trains. Raises ``UsageError`` (before compiling)
    and ``NonFiniteError``."""
    import secrets

    import jax
    import numpy as np
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    from rlhp.outputs import report
    from rlhp.outputs.checkpoint import Checkpointer
    from rlhp.envs import make_env
    from rlhp.outputs.tracking import MetricsLog
    from rlhp.train import (evaluate, evaluation_key, nonfinite_parts, restart_episodes,
                            restart_key)

    t_start = time.time()
    trainer, ckpt, restored = prepare(cfg, run_dir, resume)  # bad input stops here: one line
    saved_labels = read_labels(trainer, labels_from) if labels_from and not restored else []
    if cfg.teacher == "human":
        check_clips(trainer.env.spec)
    status = None if sys.stderr.isatty() else StatusLines(cfg.env, cfg.steps)
    if status:
        status.say(f"compiling ({cfg.steps:,} steps to run)")
    dyn, key = cfg.dynamic(), jax.random.PRNGKey(cfg.seed)
    compile_seconds = 0.0
    check = jax.jit(nonfinite_parts)
    if restored:
        state, meta = restored
        if not trainer.env.spec.vmappable:
            state = jax.jit(lambda s, k: restart_episodes(trainer, s, k))(
                state, restart_key(cfg.seed, meta["iteration"]))
    else:
        run_dir.mkdir(parents=True, exist_ok=True)
        write_json(run_dir / "config.json", cfg.to_dict())
        t0 = time.time()
        init = jax.jit(trainer.init).lower(key, dyn).compile()
        compile_seconds += time.time() - t0
        t0 = time.time()
        state = jax.block_until_ready(init(key, dyn))  # any exploration, reward pretraining
        bad = [name for name, ok in jax.device_get(check(state)).items() if not ok]
        if bad:  # nothing good to save yet
            raise NonFiniteError(
                f"non-finite {' and '.join(bad)} parameters after "
                f"{'exploration and ' if cfg.explore_iterations else ''}reward pretraining, "
                f"before any checkpoint; {run_dir} holds only its config.json")
        if saved_labels:
            from rlhp.human.teacher import insert_labels, make_insert
            pref = insert_labels(make_insert(trainer.learner), state.pref, saved_labels,
                                 jax.random.fold_in(key, 7))
            state = state.replace(pref=pref)
        meta = {"iteration": cfg.explore_iterations, "train_seconds": time.time() - t0,
                "wandb_id": secrets.token_hex(4)}
        ckpt = ckpt or Checkpointer(run_dir)
        ckpt.save(meta["iteration"], state, meta)

    human = serve_labelling_page(trainer, run_dir, meta, *serve) if cfg.teacher == "human" else None
    if human:
        state = human.between_chunks(state, meta["iteration"], dyn)
    it, n_iter, C = meta["iteration"], cfg.num_iterations, cfg.chunk_iterations
    log = MetricsLog(run_dir, it, wandb_mode, cfg.to_dict(), meta["wandb_id"])
    if it < n_iter:
        t0 = time.time()
        chunk = trainer.chunk.lower(state, dyn).compile()
        compile_seconds += time.time() - t0
    returns = [r["true_return"] for r in log.rows if r.get("true_return") is not None]
    last_return = returns[-1] if returns else float("nan")
    t_train, last_save = time.time(), time.time()
    columns = [TextColumn("[bold]{task.description}"), BarColumn(),
               TextColumn("{task.completed:,.0f}/{task.total:,.0f} steps"),
               TextColumn("{task.fields[info]}"), TimeRemainingColumn()]
    if status:
        status = StatusLines(cfg.env, cfg.steps, it * cfg.batch_size)
        status.say(f"training from step {it * cfg.batch_size:,} (compiled in "
                   f"{duration(time.time() - t_start)})")
    learned = cfg.reward == "learned"
    alarm = FreshAlarm(cfg.fresh_window, cfg.fresh_alarm, log.rows)
    # leaving the block, normally or on an error, stops the clip worker (its errors raised)
    with (Progress(*columns, disable=status is not None) as progress,
          human or contextlib.nullcontext()):
        task = progress.add_task(cfg.env, total=cfg.steps, completed=it * cfg.batch_size, info="")
        while it < n_iter:
            new_state, metrics = chunk(state, dyn)
            metrics = jax.device_get(metrics)
            wall = time.time() - t_start
            rows = [{"iteration": it + j + 1, **{k: finite_or_none(v[j]) for k, v in metrics.items()},
                     "wall_seconds": wall} for j in range(C)]
            warning = alarm.add(rows) if learned else None
            log.write(rows)
            if warning:
                (status.say if status else progress.console.print)(warning)
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
            finished = [r["true_return"] for r in rows if r["true_return"] is not None]
            last_return = np.mean(finished) if finished else last_return
            if human:
                state = human.between_chunks(state, it, dyn, last_return)
            meta = {**meta, "iteration": it,
                    "train_seconds": meta["train_seconds"] + time.time() - t_train}
            if human:
                meta["human_labels_inserted"] = human.inserted
            t_train = time.time()
            if it == n_iter or time.time() - last_save >= checkpoint_every:
                ckpt.save(it, state, meta)
                last_save = time.time()
            sps = it * cfg.batch_size / max(meta["train_seconds"], 1e-9)
            info = progress_text(rows[-1], cfg.labels, sps, last_return, alarm.active)
            progress.update(task, completed=it * cfg.batch_size, info=info)
            if status:
                status.update(it * cfg.batch_size, info, sps)
    ckpt.close()
    if human:
        human.server.stop()
    if status:
        status.say("evaluating the final policy, writing plots" + (" and the video" if video else ""))
    train_seconds = meta["train_seconds"]
    last = log.rows[-1]

    eval_env = make_env(cfg.env, cfg.backend, cfg.eval_episodes,
                        seed=env_seed(cfg.seed, EVAL_SEED_OFFSET))
    returns, _ = jax.jit(lambda s, k: evaluate(trainer, eval_env, s, k))(
        state, evaluation_key(cfg.seed))
    returns = np.asarray(returns)
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
        "reward_fresh_accuracy": last.get("reward_fresh_accuracy_window"),
        "reward_fresh_labels": int(sum(r.get("reward_fresh_labels") or 0 for r in log.rows))
        if learned else None,
        "fresh_alarm_iteration": alarm.row["iteration"] if alarm.row else None,
        "fresh_alarm_env_steps": alarm.row["env_steps"] if alarm.row else None,
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
    try:
        args = parse_args(argv)
        if args.list_settings:
            print(list_settings())
            return 0
        cfg, run_dir = build_config(args)
        serve = check_serving(cfg, args)
        summary = train_and_report(cfg, run_dir, resume=args.resume, wandb_mode=args.wandb,
                                   checkpoint_every=args.checkpoint_every,
                                   video=not args.no_video,
                                   serve=serve,
                                   labels_from=args.labels_from)
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
