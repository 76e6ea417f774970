"""Progress without a terminal: plain status lines in a log (rlhp.run)."""
import io
import re

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


def test_fresh_accuracy_in_the_progress_line_and_its_alarm_once():
    row = {"labels": 120.0, "predicted_reward": 0.5, "reward_val_accuracy": 0.8125,
           "reward_fresh_accuracy_window": 0.55}
    assert run.progress_text(row, 750, 2500.4, 812.34, alarmed=True).endswith(
        "acc 0.81 | fresh 0.55 (r-hat disagrees)")
    # ten iterations of 4 fresh pairs: all right, then all wrong from the 6th (the 5-iteration
    # window falls below 0.6 at the 8th: 8 right of 20); restored rows replay on resume
    rows = [{"iteration": i + 1, "env_steps": 1000.0 * (i + 1), "reward_fresh_labels": 4,
             "reward_fresh_correct": 4 if i < 5 else 0} for i in range(10)]
    alarm = run.FreshAlarm(window=5, threshold=0.6, rows=[])
    said = [alarm.add(rows[i:i + 2]) for i in range(0, 10, 2)]
    assert [r["reward_fresh_accuracy_window"] for r in rows[:4]] == [None, None, 1.0, 1.0]
    assert rows[7]["reward_fresh_accuracy_window"] == 0.4 and said[3] is not None
    assert [s is None for s in said] == [True, True, True, False, True]
    assert "r-hat disagrees with the teacher on the policy's current clips" in said[3]
    assert "iteration 8, env step 8,000" in said[3] and alarm.row is rows[7]
    resumed = run.FreshAlarm(window=5, threshold=0.6, rows=rows)
    assert resumed.row is rows[7] and resumed.add(rows[:1]) is None


def test_the_progress_line_says_r_hat_disagrees_only_while_it_does():
    # 4 fresh pairs an iteration: right, then wrong from the 6th (the alarm at the 8th),
    # then right again from the 11th: the window is back at 0.6 by the 13th
    rows = [{"iteration": i + 1, "env_steps": 1000.0 * (i + 1), "reward_fresh_labels": 4,
             "reward_fresh_correct": 0 if 5 <= i < 10 else 4} for i in range(14)]
    alarm = run.FreshAlarm(window=5, threshold=0.6, rows=[])
    active = []
    for row in rows:
        alarm.add([row])
        active.append(alarm.active)
    assert alarm.row is rows[7]  # fired once, and kept in the summary
    assert active == [False] * 7 + [True] * 5 + [False] * 2, active


def test_redirected_run_prints_status_lines(tmp_path, capsys):
    """stderr captured (not a terminal): a gridworld run of 4 chunks prints a line on
    compiling, a status line per chunk (each passes a tenth) and one before evaluating."""
    assert run.main(["--env=gridworld", "--reward=true", "--steps=4096", "--wandb=disabled",
                     "--no-video", "--set", "iterations_per_chunk=1",
                     f"--run-dir={tmp_path / 'run'}"]) == 0
    err = capsys.readouterr().err.splitlines()
    assert err[0] == "gridworld: compiling (4,096 steps to run)"
    assert err[1].startswith("gridworld: training from step 0 (compiled in ")
    pattern = (r"gridworld: ([\d,]+)/4,096 steps \(\d+%\) \| [\d,]+ steps/s \| "
               r"return -?[\d.,]+ \| \d+(s|m\d\ds) left")
    steps = [re.fullmatch(pattern, line) for line in err[2:-1]]
    assert all(steps), err
    assert [m.group(1) for m in steps] == ["1,024", "2,048", "3,072", "4,096"]
    assert err[-1] == "gridworld: evaluating the final policy, writing plots"
