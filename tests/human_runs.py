"""Helpers for tests that drive a real ``python -m rlhp.run --teacher=human`` process
through its labelling page's JSON API."""
import json
import subprocess
import sys
import time

import httpx


def start(args, tmp_path):
    """Start ``python -m rlhp.run ARGS`` (stderr appended to ``tmp_path/stderr.log``);
    returns the process and its labelling page's address once it printed it."""
    proc = subprocess.Popen([sys.executable, "-m", "rlhp.run", *args], stdout=subprocess.PIPE,
                            stderr=open(tmp_path / "stderr.log", "a"), text=True)
    line = proc.stdout.readline()
    if not line.startswith("Labelling page: http://127.0.0.1:"):
        status = proc.wait(timeout=30) if not line else proc.poll()
        raise AssertionError(f"no labelling page ({line!r}, exit status {status}): "
                             f"{(tmp_path / 'stderr.log').read_text()[-2000:]}")
    return proc, line.split()[-1]


def answer(url, n, deadline=600):
    """Answer ``n`` pairs (left, right, ...) through the API; returns the answers saved."""
    saved, t0 = [], time.time()
    with httpx.Client(base_url=url, timeout=30) as client:
        while len(saved) < n:
            assert time.time() - t0 < deadline, "no pairs posed"
            pair = client.get("/api/query").json()["pair"]
            if pair is None:
                time.sleep(0.5)
                continue
            a = ("left", "right")[len(saved) % 2]
            assert client.post("/api/labels", json={"pair": pair, "answer": a}).status_code == 200
            saved.append((pair, a))
    return saved


def comparisons(run_dir):
    """The ``comparisons`` (entries in the comparison database) of each metrics row."""
    rows = [json.loads(l) for l in (run_dir / "metrics.jsonl").read_text().splitlines() if l]
    return [r.get("comparisons") for r in rows]


def wait_for(run_dir, n, deadline=900):
    """Until a metrics row shows ``n`` comparisons in the database."""
    t0 = time.time()
    while not (run_dir / "metrics.jsonl").exists() or n not in comparisons(run_dir):
        assert time.time() - t0 < deadline, f"no metrics row with {n} comparisons"
        time.sleep(1)
