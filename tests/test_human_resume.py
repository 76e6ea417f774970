"""Killing a ``--teacher=human`` run mid-training and resuming it loses no answered label
and inserts none twice (a real run, answered through its API; about a minute)."""
import os
import signal
import time

from human_runs import answer, comparisons, start, wait_for


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
        wait_for(run_dir, 10, deadline=600)
        time.sleep(3)
        assert max(c for c in comparisons(run_dir) if c is not None) == 10  # none twice
    finally:
        proc.kill()
        proc.wait()
    from rlhp.human.store import Store
    assert [(l.pair, l.answer) for l in Store(run_dir / "labels.sqlite").labels()] == first + second
