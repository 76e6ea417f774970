"""Saved labels: ``python -m rlhp.labels export RUN_DIR OUT.jsonl``.

Writes every answer of a ``--teacher human`` run (its ``labels.sqlite``) as JSON lines:
``pair``, ``answer`` (left, right, equal, cant_tell) and the pair's segments as the run
stored them (``obs``: ``[2, L, ...]`` observations, or Atari's ``[2, L + 3, 84, 84]`` uint8
frames; ``action``: ``[2, L, ...]``). ``python -m rlhp.run --labels-from OUT.jsonl``
trains another run's reward model on them. Bad input exits 2 with one line.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m rlhp.labels", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    export = sub.add_parser("export", help="a run's answers as JSON lines")
    export.add_argument("run_dir")
    export.add_argument("out")
    args = p.parse_args(argv)
    from rlhp.human.store import Store
    db = Path(args.run_dir) / "labels.sqlite"
    if not db.is_file():
        print(f"error: {args.run_dir} has no labels.sqlite (not a --teacher human run)",
              file=sys.stderr)
        return 2
    try:
        n = Store(db).export(args.out)
    except OSError as e:
        print(f"error: cannot write {args.out}: {e.strerror}", file=sys.stderr)
        return 2
    print(f"{n} labels written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
