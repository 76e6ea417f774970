"""Run directories for the experiments that probe or hand over a finished run's state:
restore one's last checkpoint, start a new one from a given state."""
from __future__ import annotations

from pathlib import Path


def restore_run(run_dir):
    """``(cfg, trainer, state, meta)`` of ``run_dir``'s saved config and last checkpoint;
    exits with a message if the run has none yet."""
    from rlhp import run

    cfg, _ = run.build_config(run.parse_args(["--resume", "--run-dir", str(run_dir)]))
    trainer, ckpt, restored = run.prepare(cfg, Path(run_dir), True)
    ckpt.close()
    if restored is None:
        raise SystemExit(f"{run_dir} has no checkpoint yet")
    return (cfg, trainer, *restored)


def fits(state, reference) -> bool:
    """Whether ``state`` has ``reference``'s tree and leaf shapes (``reference`` may be
    abstract, e.g. from ``jax.eval_shape``): a handed-over state a new run can resume."""
    import jax

    return jax.tree.structure(state) == jax.tree.structure(reference) and all(
        a.shape == b.shape for a, b in zip(jax.tree.leaves(state), jax.tree.leaves(reference)))


def start_run(new_dir: Path, cfg, state, meta: dict) -> None:
    """A new run directory holding ``cfg`` and ``state`` as its checkpoint at
    ``meta["iteration"]``, for ``python -m rlhp.run --run-dir NEW_DIR --resume``."""
    from rlhp import run
    from rlhp.outputs.checkpoint import Checkpointer

    new_dir.mkdir(parents=True)
    run.write_json(new_dir / "config.json", cfg.to_dict())
    out = Checkpointer(new_dir)
    out.save(int(meta["iteration"]), state, meta)
    out.close()
