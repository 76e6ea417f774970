"""Shared benchmark plumbing: machine facts, repeated timing, the JSON and table output."""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import time

import jax


def machine() -> dict:
    return {"cpu_count": os.cpu_count(), "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "jax": jax.__version__, "backend": jax.default_backend(),
            "devices": len(jax.devices())}


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def median_seconds(fn, repeats: int, warmup: int = 1) -> float:
    """Median wall time of ``fn()`` (which must block until its work is done)."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def median_seconds_threaded(step, state, repeats: int) -> float:
    """Median wall time of ``state, out = step(state)``, threading the state through the
    calls (so each call continues the previous one, as training does)."""
    holder = {"state": state}

    def once():
        holder["state"], out = step(holder["state"])
        jax.block_until_ready(out)

    return median_seconds(once, repeats)


def matmul_gflops(repeats: int, n: int = 2048) -> float:
    """This machine's dense float32 matmul rate (the arithmetic ceiling), GFLOP/s."""
    import jax.numpy as jnp
    a = jnp.ones((n, n), jnp.float32)
    mm = jax.jit(lambda x: x @ x)
    sec = median_seconds(lambda: jax.block_until_ready(mm(a)), repeats)
    return 2 * n**3 / sec / 1e9


def timed_compile(jitted, *args):
    """``(compiled, seconds)``: ahead-of-time lowering and compilation of ``jitted``."""
    t = time.perf_counter()
    compiled = jitted.lower(*args).compile()
    return compiled, time.perf_counter() - t


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--json", default=None, help="write results here")
    p.add_argument("--repeats", type=int, default=5, help="timed repetitions (median)")
    p.add_argument("--tiny", action="store_true", help="smallest settings (smoke test)")
    return p


def report(results: list[dict], columns: list[str], path: str | None) -> dict:
    """Print a table of ``columns`` and write ``{"machine", "results"}`` JSON to ``path``."""
    out = {"machine": machine(), "results": results}
    fmt = lambda v: f"{v:,.2f}" if isinstance(v, float) else str(v)
    rows = [[fmt(r.get(c, "")) for c in columns] for r in results]
    widths = [max(len(c), *(len(row[i]) for row in rows)) for i, c in enumerate(columns)]
    print("  ".join(c.ljust(w) for c, w in zip(columns, widths)))
    for row in rows:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths)))
    if path:
        with open(path, "w") as f:
            json.dump(out, f, indent=1)
    return out


def run(doc: str, measure, columns: list[str], argv=None) -> dict:
    """The command of a benchmark whose ``measure(repeats, tiny)`` returns its rows: the
    common flags parsed from ``argv``, the rows measured and reported (``report``)."""
    args = parser(doc.splitlines()[0]).parse_args(argv)
    return report(measure(args.repeats, args.tiny), columns, args.json)
