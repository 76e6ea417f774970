"""Checkpoints of a run: the whole ``TrainState`` plus the host's bookkeeping, with orbax.

A checkpoint holds every array of the training state (policy and its optimiser, the reward
ensemble with its optimiser, L2 weights and normalisers, the comparison database, the
segment buffer, the label schedule's position, PRNG keys, and the env state where the
backend keeps it in JAX arrays) and a small JSON ``meta`` dict (iteration, seconds spent).
orbax writes each step into a temporary directory and renames it when complete, so a run
killed at any moment leaves only whole checkpoints behind.
"""
from __future__ import annotations

from pathlib import Path

import jax
import orbax.checkpoint as ocp


class CheckpointError(Exception):
    """A checkpoint that is missing or cannot be read; the message is one line."""


class Checkpointer:
    """Save and restore ``(state, meta)`` pairs under ``run_dir/checkpoints/<iteration>``."""

    def __init__(self, run_dir: Path, keep: int = 2):
        self.directory = Path(run_dir).absolute() / "checkpoints"
        self.manager = ocp.CheckpointManager(
            self.directory, item_names=("state", "meta"),
            options=ocp.CheckpointManagerOptions(max_to_keep=keep, create=True,
                                                 cleanup_tmp_directories=True))

    def latest(self) -> int | None:
        """The iteration of the newest complete checkpoint, or None."""
        return self.manager.latest_step()

    def save(self, iteration: int, state, meta: dict) -> None:
        """Start saving ``state`` (a pytree of arrays) and ``meta`` (JSON) at ``iteration``;
        the write finishes in the background (``close`` blocks until it has)."""
        self.manager.save(iteration, args=ocp.args.Composite(
            state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta)), force=True)

    def restore(self, abstract_state, iteration: int | None = None):
        """``(state, meta)`` of ``iteration`` (default: the latest). ``abstract_state`` is
        the state's structure (e.g. from ``jax.eval_shape``); raises ``CheckpointError``."""
        iteration = self.latest() if iteration is None else iteration
        if iteration is None:
            raise CheckpointError(f"no checkpoint in {self.directory}")
        try:
            out = self.manager.restore(iteration, args=ocp.args.Composite(
                state=ocp.args.StandardRestore(abstract_state), meta=ocp.args.JsonRestore()))
            state, meta = out["state"], out["meta"]
            if jax.tree.structure(state) != jax.tree.structure(abstract_state) or not meta:
                raise ValueError("its contents do not match this config")
        except Exception as e:  # orbax raises many types for damaged files
            reason = str(e).strip().splitlines()[0][:160] if str(e).strip() else type(e).__name__
            raise CheckpointError(f"checkpoint {self.directory / str(iteration)} is corrupt "
                                  f"or incompatible: {reason}") from None
        return state, meta

    def close(self) -> None:
        self.manager.wait_until_finished()
        self.manager.close()
