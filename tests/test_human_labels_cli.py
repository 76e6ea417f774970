"""A person's labels go from one run to another through the CLI: a tiny ``python -m
rlhp.run --env=gridworld --teacher=human`` answered through its API, ``python -m
rlhp.labels export``, and a new run's ``--labels-from`` puts them in its comparison
database."""
import json

from human_runs import answer, start, wait_for

from rlhp import labels
from rlhp.human.store import Store


def test_gridworld_labels_export_and_train_another_run(tmp_path):
    tiny = ["--env=gridworld", "--teacher=human", "--steps", "4000000", "--no-video",
            "--wandb", "disabled", "--checkpoint-every", "0"]
    run_dir, other, out = tmp_path / "run", tmp_path / "other", tmp_path / "labels.jsonl"
    proc, url = start([*tiny, "--run-dir", str(run_dir)], tmp_path)
    try:
        saved = answer(url, 3)  # saved before the reply: no need to wait for the trainer
    finally:
        proc.kill()
        proc.wait()
    assert labels.main(["export", str(run_dir), str(out)]) == 0
    exported = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(e["pair"], e["answer"]) for e in exported] == saved
    proc, _ = start([*tiny, "--labels-from", str(out), "--run-dir", str(other)], tmp_path)
    try:
        wait_for(other, 3, deadline=300)  # the three in its database, none asked of it
    finally:
        proc.kill()
        proc.wait()
    assert Store(other / "labels.sqlite").labels() == []  # nobody answered this run
