"""Killing a ``--teacher=human`` run mid-training and resuming it loses no answered label
and inserts none twice (a real run, answered through its API; about a minute)."""
import json
import os
import signal
import subprocess
import sys
import time

import httpx


def start(args, tmp_path):
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
    rows = [json.loads(l) for l in (run_dir / "metrics.jsonl").read_text().splitlines() if l]
    return [r.get("comparisons") for r in rows]


def test_kill_and_resume_loses_no_answer(tmp_path):
    run_dir = tmp_path / "run"
    args = ["--env=gridworld", "--teacher=human", "--steps", "4000000", "--checkpoint-every",
            "0", "--no-video", "--wandb", "disabled", "--run-dir", str(run_dir)]
    proc, url = start(args, tmp_path)
    first = answer(url, 6)
    time.sleep(5)  # a few chunks: some answers inserted and checkpointed, maybe not all
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    proc, url = start(["--run-dir", str(run_dir), "--resume"], tmp_path)
    try:
        second = answer(url, 4)
        t0 = time.time()
        while 10 not in comparisons(run_dir):
            assert time.time() - t0 < 600
            time.sleep(1)
        time.sleep(3)
        assert max(c for c in comparisons(run_dir) if c is not None) == 10  # none twice
    finally:
        proc.kill()
        proc.wait()
    from rlhp.human.store import Store
    assert [(l.pair, l.answer) for l in Store(run_dir / "labels.sqlite").labels()] == first + second
