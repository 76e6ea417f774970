"""The explainer (rlhp.human.explainer, rlhp.explain): the real learner on the gridworld,
stepped chunk by chunk, on a tiny run (16 envs, 8-step rollouts, 4 chunks) so each
program compiles once for the module."""
import subprocess
import sys
import time

import numpy as np
import pytest
from starlette.testclient import TestClient

from rlhp import explain
from rlhp.envs import gridworld as g
from rlhp.human.explainer import Explainer, nearer_goal
from rlhp.human.explainer_app import Session, make_explainer_app

# 16 iterations of 128 env steps, 4 chunks; a person's preset asks 8 labels (2 up front)
TINY = dict(num_envs=16, rollout_length=8, total_steps=2048, num_minibatches=4,
            pretrain_updates=20, labels=8, max_labels=16)


@pytest.fixture(scope="module")
def explainer():
    """One explainer for the module, its two default programs compiled here (the
    synthetic online presets' and the labeler's: 60-95 s for both on this machine)."""
    ex = Explainer(seed=0, **TINY)
    ex.load("labeler")
    ex.load("oracle")
    return ex


def answer_all(ex, rule=nearer_goal):
    """Answer every pair waiting by ``rule(obs [2, L, 25])``; returns the answers."""
    given = []
    while (q := ex.query_pair()) is not None:
        obs, _ = ex.store.segments(q["pair"])
        given.append(rule(obs))
        ex.answer(q["pair"], given[-1])
    return given


def test_state_has_both_maps_and_the_figures(explainer):
    explainer.load("oracle")
    s = explainer.snapshot()
    assert s["status"] == "ready" and s["preset"] == "oracle" and s["iteration"] == 0
    assert len(s["learned"]) == len(s["true"]) == g.NUM_CELLS
    for key in ("learned_greedy", "policy"):
        assert len(s[key]) == g.NUM_CELLS and set(s[key]) <= set(range(g.NUM_ACTIONS))
    assert np.allclose(s["true"], g.true_reward_map().reshape(-1), atol=1e-4)
    assert s["goal"] == list(g.GOAL) and np.array(s["true_optimal"]).shape == (25, 5)
    for key in ("reward_match", "optimal_policy", "policy_optimal"):
        assert isinstance(s[key], float)
    assert -1 <= s["reward_match"] <= 1 and 0 <= s["optimal_policy"] <= 1
    assert s["labels"] == s["comparisons"] == 2  # the up-front quarter of 8, then pretraining
    assert s["query_pair"] is None and not s["waiting"] and s["events"]
    # the figures are those of the learned map shown
    learned = np.array(s["learned"])
    assert s["reward_match"] == pytest.approx(np.corrcoef(learned, s["true"])[0, 1], abs=1e-3)


def test_step_runs_one_chunk_until_the_run_ends(explainer):
    explainer.load("oracle")
    C = explainer.cfg.chunk_iterations
    maps = [explainer.snapshot()["learned"]]
    for n in range(1, 5):
        assert explainer.step()
        s = explainer.snapshot()
        assert s["iteration"] == n * C and len(s["history"]) == n + 1
        assert s["bt_loss"] is not None and s["bt_loss"] > 0
        maps.append(s["learned"])
    assert s["finished"] and s["labels"] == 8
    assert not explainer.step() and explainer.snapshot()["iteration"] == 4 * C
    assert maps[0] != maps[-1]  # r-hat learned online
    assert any("finished" in e["text"] for e in s["events"])


@pytest.mark.slow  # its own program: 25 s of compiling here
def test_offline_freezes_the_map_while_the_policy_trains(explainer):
    explainer.load("offline")
    first = explainer.snapshot()
    assert first["labels"] == 8  # every label up front
    while explainer.step():
        pass
    last = explainer.snapshot()
    assert last["learned"] == first["learned"] and last["labels"] == 8
    assert last["policy"] != first["policy"]


def test_the_labeler_preset_waits_for_each_answer(explainer):
    explainer.load("labeler")
    s = explainer.snapshot()
    assert s["waiting"] and s["query_pair"] is not None and s["labels"] == 0
    assert len(s["query_pair"]["left"]) == explainer.cfg.segment_length
    assert not explainer.step() and explainer.snapshot()["iteration"] == 0
    answer_all(explainer)
    s = explainer.snapshot()
    assert not s["waiting"] and s["comparisons"] == 2  # in the database before any chunk
    steps, answered = 0, 2
    while not explainer.finished:
        answered += len(answer_all(explainer))
        assert explainer.step()
        steps += 1
    s = explainer.snapshot()
    assert steps == 4 and s["labels"] == answered and 4 <= answered <= 8
    assert s["query_pair"] is None  # nothing is asked once the run is over


def run_labeler(ex, rule):
    """The labeler preset from the start to its end, every pair answered by ``rule``;
    returns the final learned map."""
    ex.load("labeler")
    while not ex.finished:
        answer_all(ex, rule)
        ex.step()
    return ex.snapshot()["learned"]


def test_same_preset_and_answers_give_the_same_map(explainer):
    first = run_labeler(explainer, nearer_goal)
    assert run_labeler(explainer, nearer_goal) == first
    contrary = {"left": "right", "right": "left", "equal": "equal"}
    assert run_labeler(explainer, lambda obs: contrary[nearer_goal(obs)]) != first


def test_switching_queries_between_chunks(explainer):
    """Random queries from the second chunk on ask other pairs than disagreement does:
    the map differs; the same switch at the same iteration gives the same map."""
    def run(switch):
        explainer.load("oracle")
        explainer.step()
        if switch:
            explainer.set_query("random")
        assert explainer.step()
        return explainer.snapshot()

    switched, kept = run(True), run(False)
    assert switched["query"] == "random" and kept["query"] == "disagreement"
    assert switched["labels"] == kept["labels"] > 2
    assert switched["learned"] != kept["learned"] and run(True)["learned"] == switched["learned"]
    assert any("random queries" in e["text"] for e in switched["events"])
    with pytest.raises(ValueError, match="query 'nope'"):
        explainer.set_query("nope")


def wait_for(client, test, timeout=120):
    t0 = time.time()
    while True:
        s = client.get("/api/state").json()
        if test(s):
            return s
        assert time.time() - t0 < timeout, s
        time.sleep(0.05)


def test_play_pause_and_step_through_the_api(explainer):
    session = Session(explainer, delay=0.3).start()
    client = TestClient(make_explainer_app(session))
    try:
        n = client.post("/api/control", json={"action": "preset", "preset": "online"}).json()["command"]
        s = wait_for(client, lambda s: s["commands_done"] >= n)
        assert s["iteration"] == 0 and not s["playing"]
        n = client.post("/api/control", json={"action": "step"}).json()["command"]
        s = wait_for(client, lambda s: s["commands_done"] >= n)
        assert s["iteration"] == 4 and not s["playing"]
        time.sleep(0.5)  # paused: nothing runs
        assert client.get("/api/state").json()["iteration"] == 4
        client.post("/api/control", json={"action": "play"})
        s = wait_for(client, lambda s: s["iteration"] >= 8)
        n = client.post("/api/control", json={"action": "pause"}).json()["command"]
        s = wait_for(client, lambda s: s["commands_done"] >= n)
        paused_at = s["iteration"]
        time.sleep(0.8)
        assert client.get("/api/state").json()["iteration"] == paused_at < 16
        client.post("/api/control", json={"action": "play"})
        s = wait_for(client, lambda s: s["finished"] and not s["playing"])
        assert s["iteration"] == 16
        # bad commands: a clear 4xx, nothing queued
        for body, status in [({"action": "jump"}, 422), ({"action": "preset"}, 400),
                             ({"action": "preset", "preset": "nope"}, 422),
                             ({"action": "play", "extra": 1}, 400),
                             ({"action": "query", "query": "bald"}, 422)]:
            r = client.post("/api/control", json=body)
            assert r.status_code == status and "error" in r.json(), body
        # answers only where a person is asked
        r = client.post("/api/labels", json={"pair": 1, "answer": "left"})
        assert r.status_code == 409
        r = client.post("/api/labels", json={"pair": 1, "answer": "maybe"})
        assert r.status_code == 422
        # with a token, every request carries it
        guarded = TestClient(make_explainer_app(session, token="s3cret"))
        assert guarded.get("/api/state").status_code == 401
        assert guarded.post("/api/control", json={"action": "play"}).status_code == 401
        assert guarded.get("/api/state?token=s3cret").json()["finished"]
    finally:
        session.stop()


def test_cli_help_and_bad_flags(capsys):
    out = subprocess.run([sys.executable, "-m", "rlhp.explain", "--help"], capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0 and "--preset" in out.stdout and "--measure" in out.stdout
    for argv, words in [(["--preset", "nope"], "preset 'nope'"),
                        (["--measure", "oracle,bogus"], "preset 'bogus'"),
                        (["--port", "70000"], "--port 70000"),
                        (["--host", "0.0.0.0"], "--token"),
                        (["--seed", "-1"], "--seed -1"),
                        (["--bogus"], "unrecognized arguments")]:
        assert explain.main(argv) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("error: ") and words in err, (argv, err)


@pytest.mark.slow
def test_the_presets_reach_their_figures():
    """The figures docs/human.md quotes (seed 0, full presets): the synthetic oracle
    recovers the hidden reward, offline lands measurably below it."""
    rows = {r["preset"]: r for r in explain.measure(["oracle", "offline"], seed=0)}
    assert rows["oracle"]["reward_match"] >= 0.9 and rows["oracle"]["optimal_policy"] >= 0.9
    assert rows["offline"]["reward_match"] < rows["oracle"]["reward_match"] - 0.05
    assert rows["offline"]["optimal_policy"] < rows["oracle"]["optimal_policy"] - 0.1
