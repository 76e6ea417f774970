"""Progress without a terminal: plain status lines in a log (rlhp.run)."""
import io

from rlhp import run


def test_status_lines_every_tenth_or_every_30_seconds():
    now = [0.0]
    out = io.StringIO()
    status = run.StatusLines("hopper", 1000, stream=out, clock=lambda: now[0])
    printed = []
    for done in range(25, 1001, 25):  # 40 chunks, 1 s each
        now[0] += 1.0
        printed.append(status.update(done, "x", sps=25.0))
    assert [d for d, p in zip(range(25, 1001, 25), printed) if p] == list(range(100, 1001, 100))
    # chunks slower than the tenths: a line every 30 s instead
    now[0], out = 0.0, io.StringIO()
    status = run.StatusLines("hopper", 1000, stream=out, clock=lambda: now[0])
    due = []
    for done in range(1, 100):
        now[0] += 7.0
        if status.update(done, "x", sps=1 / 7):
            due.append(now[0])
    assert due[:3] == [35.0, 70.0, 105.0]
    line = out.getvalue().splitlines()[0]
    assert line == "hopper: 5/1,000 steps (0%) | x | 1h56m left"


def test_learned_runs_report_labels_of_the_budget_and_accuracy():
    row = {"labels": 120.0, "predicted_reward": 0.5, "reward_val_accuracy": 0.8125}
    assert run.progress_text(row, 750, 2500.4, 812.34) == (
        "2,500 steps/s | return 812.3 | r-hat 0.50 | labels 120/750 | acc 0.81")
