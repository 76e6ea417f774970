"""``python -m rlhp.sweep``: a tiny gridworld grid (2 seeds x 2 query schemes at one budget,
plus the true-reward baseline) through the command, its outputs, its resume, and its
one-line errors."""
import csv
import json

import pytest

from rlhp import sweep

TINY = ["--env", "gridworld", "--seeds", "2", "--labels", "0,20", "--query",
        "random,disagreement", "--steps", "8192"]


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    out = tmp_path_factory.mktemp("sweep")
    assert sweep.main([*TINY, "--out", str(out)]) == 0
    return out


def test_every_member_has_a_row_and_the_plot_is_drawn(swept):
    rows = list(csv.DictReader(open(swept / "sweep.csv")))
    learned = [r for r in rows if r["program"] == "learned"]
    true = [r for r in rows if r["program"] == "true"]
    assert sorted((r["query"], r["seed"]) for r in learned) == [
        ("disagreement", "0"), ("disagreement", "1"), ("random", "0"), ("random", "1")]
    assert [r["seed"] for r in true] == ["0", "1"] and all(r["labels"] == "0" for r in true)
    # each learned member asked exactly its budget, and is scored on the hidden reward
    assert all(float(r["labels_asked"]) == 20 for r in learned)
    assert all(0 <= float(r["reward_match"]) <= 1 for r in learned)
    # PPO on the true reward for 8 iterations beats the best constant policy (4.03), and
    # the members are different runs (seeds, schemes), not one run copied
    assert all(float(r["true_return_mean"]) > 5 for r in true)
    assert len({r["true_return_mean"] for r in learned}) > 1
    assert json.loads((swept / "sweep.json").read_text())[0].keys() >= {"seed", "true_return_mean"}
    assert (swept / "sweep.png").stat().st_size > 10_000


def test_running_it_again_continues_from_the_checkpoints(swept, capsys):
    before = (swept / "sweep.csv").read_text()
    assert sweep.main([*TINY, "--out", str(swept)]) == 0
    err = capsys.readouterr().err
    assert "learned: continuing from iteration 8" in err and "compiling" not in err
    assert (swept / "sweep.csv").read_text() == before


@pytest.mark.parametrize("args, names", [
    (["--labels=-5,20"], "--labels -5,20"),
    (["--seeds", "0"], "--seeds 0"),
    (["--query", "random,nosuch"], "query"),
    (["--set", "hidden=(32,32),(64,64)"], "hidden"),
    (["--set", "learning_rate=0.001,lots"], "learning_rate"),
    (["--env", "pong"], "Atari"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys, args, names):
    argv = [*TINY, *args]
    assert sweep.main([*argv, "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 or (len(err) == 2 and err[0].startswith("sweep:")), err
    assert err[-1].startswith("error:") and names in err[-1], err


@pytest.mark.slow
def test_two_processes_give_the_rows_of_one(tmp_path):
    """``--distributed`` over two local CPU processes (loopback, gloo): each holds half of
    every program's members, and the rows are those of one process with two devices, the
    same split (about 5 minutes here, mostly compiling)."""
    from sweep_processes import two_processes_and_one
    two, one = two_processes_and_one(TINY, tmp_path)
    assert len(two) == 6 and two == one
