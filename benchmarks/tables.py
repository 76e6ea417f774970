"""The README's benchmark tables, as Markdown, from the JSON the benchmarks wrote.

    python -m benchmarks.tables                    # reads benchmarks/results/*.json
    python -m benchmarks.tables --results DIR
"""
from __future__ import annotations

import argparse
import json
import os


def num(v, digits=0) -> str:
    if v is None:
        return "-"
    return f"{v:,.{digits}f}" if isinstance(v, (int, float)) else str(v)


def times(v) -> str:
    return "-" if v is None else f"{v:,.1f}x"


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])


def throughput(rows):
    return table(["env", "backend", "envs", "raw steps/s", "train steps/s", "ratio", "compile",
                  "peak memory"],
                 [[r["env"], r["backend"], num(r["num_envs"]), num(r["raw_steps_per_second"]),
                   num(r["train_steps_per_second"]), num(r["ratio"], 2),
                   num(r["compile_seconds"], 1) + " s", num(r["peak_rss_mb"]) + " MiB"]
                  for r in rows])


def stages(rows):
    widths = sorted({r["sweep_width"] for r in rows})
    if widths == [1]:
        return table(["stage", "ms", "share", "GFLOP", "GFLOP/s"],
                     [[r["stage"], num(r["milliseconds"], 1), num(r["share_of_step"], 2),
                       num(r.get("gflop"), 3), num(r.get("gflops_per_second"), 1)]
                      for r in rows])
    one, many = widths[0], widths[-1]
    by = {(r["stage"], r["sweep_width"]): r for r in rows}
    names = [r["stage"] for r in rows if r["sweep_width"] == one]
    return table(["stage", f"{one} seed, ms", f"{many} seeds, ms", "cost vs one seed",
                  f"GFLOP ({many} seeds)", "GFLOP/s", "arithmetic floor vs one seed"],
                 [[n, num(by[n, one]["milliseconds"], 1), num(by[n, many]["milliseconds"], 1),
                   times(by[n, many]["cost_vs_one_seed"]), num(by[n, many].get("gflop"), 2),
                   num(by[n, many].get("gflops_per_second"), 1),
                   times(by[n, many].get("floor_vs_one_seed"))] for n in names])


def labels(rows):
    return table(["segment length", "segments buffered", "labels/s", "comparisons/s (fit)",
                  "forward share of a query call", "forward GFLOP/s", "machine matmul GFLOP/s"],
                 [[num(r["segment_length"]), num(r.get("segments_buffered")),
                   num(r["labels_per_second"]), num(r["comparisons_per_second"]),
                   num(r["ensemble_forward_share"], 2), num(r["forward_gflops_per_second"], 1),
                   num(r["machine_matmul_gflops_per_second"])] for r in rows])


def scaling(rows):
    groups = list(dict.fromkeys(r["factor"] for r in rows))
    value = {"num_envs": "num_envs", "ensemble_size": "ensemble_size"}
    out = []
    for g in groups:
        rs = [r for r in rows if r["factor"] == g]
        key = value.get(g, "sweep_width")
        join = lambda f: " / ".join(f(r) for r in rs)
        out.append([g, join(lambda r: num(r[key])),
                    join(lambda r: num(r["train_steps_per_second"])),
                    join(lambda r: num(1000 * r["seconds_per_iteration"], 2)),
                    join(lambda r: num(r["relative_wall"], 2))])
    return table(["factor", "value", "train steps/s", "ms per iteration", "relative wall"], out)


def rollout(rows):
    return table(["what", "steps/s", "vs raw, 1 thread", "vs raw, 2 threads"],
                 [[r["what"], num(r["steps_per_second"]), num(r["vs_raw_1_thread"], 2),
                   num(r["vs_raw_2_threads"], 2)] for r in rows])


def fit_products(rows):
    return table(["product", "ms", "GFLOP/s", "vs machine matmul"],
                 [[r["product"], num(r["milliseconds"], 2), num(r["gflops_per_second"], 1),
                   num(r["vs_machine_matmul"], 2)] for r in rows])


FILES = {"throughput": throughput, "stages": stages, "labels": labels,
         "stages_gridworld": stages, "scaling": scaling, "rollout": rollout,
         "fit_products": fit_products}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--results", default=os.path.join(os.path.dirname(__file__), "results"))
    args = p.parse_args(argv)
    for name, fmt in FILES.items():
        path = os.path.join(args.results, name + ".json")
        if os.path.exists(path):
            with open(path) as f:
                print(f"### {name}\n\n{fmt(json.load(f)['results'])}\n")


if __name__ == "__main__":
    main()
