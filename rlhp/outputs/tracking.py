"""Metrics out of a run: ``metrics.jsonl`` always, and wandb (offline by default).

One JSON object per training iteration goes to ``metrics.jsonl``; the same rows go to wandb,
keyed by env steps. wandb's offline mode needs no account or network and leaves a run
directory under ``run_dir/wandb`` that ``wandb sync`` can upload later.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

WANDB_MODES = ("offline", "online", "disabled")


def finite_or_none(x):
    x = float(x)
    return x if math.isfinite(x) else None


class MetricsLog:
    """Appends iteration rows; on resume keeps exactly the rows of the restored iterations.

    ``rows``: every row so far (for the plots at the end).
    """

    def __init__(self, run_dir: Path, keep_rows: int, wandb_mode: str, config: dict,
                 wandb_id: str | None = None):
        self.path = Path(run_dir) / "metrics.jsonl"
        self.rows = []
        if keep_rows and self.path.exists():
            for line in self.path.read_text().splitlines()[:keep_rows]:
                self.rows.append(json.loads(line))
        self.path.write_text("".join(json.dumps(r) + "\n" for r in self.rows))
        self.file = open(self.path, "a")
        self.wandb = None
        if wandb_mode != "disabled":
            import wandb
            self.wandb = wandb.init(
                project="rlhp", dir=str(run_dir), mode=wandb_mode, config=config,
                name=Path(run_dir).name, id=wandb_id, resume="allow",
                settings=wandb.Settings(silent=True, console="off"))

    @property
    def wandb_id(self) -> str | None:
        return self.wandb.id if self.wandb else None

    def write(self, rows: list[dict]) -> None:
        for row in rows:
            self.file.write(json.dumps(row) + "\n")
            if self.wandb:
                self.wandb.log(row, step=int(row["env_steps"]))
        self.file.flush()
        self.rows.extend(rows)

    def close(self, summary: dict | None = None) -> None:
        self.file.close()
        if self.wandb:
            if summary:
                self.wandb.summary.update(summary)
            self.wandb.finish()
