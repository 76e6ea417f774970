"""The labelling API: validation (a clear 4xx, nothing written), tokens, leases, and
1,000 answers posted concurrently by several clients, none lost or duplicated."""
import json
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import pytest
from starlette.testclient import TestClient

from rlhp.human.server import Leases, Server, check_host, make_app
from rlhp.human.store import Store


def fill(store, n):
    seg = np.zeros((2, 3, 2), np.float32), np.zeros((2, 3, 1), np.float32)
    return [store.add_query(*seg, iteration=0) for _ in range(n)]


@pytest.fixture
def store(tmp_path):
    return Store(tmp_path / "labels.sqlite")


def test_bad_requests_get_a_4xx_and_write_nothing(store, tmp_path):
    (pair,) = fill(store, 1)
    client = TestClient(make_app(store, tmp_path))
    post = lambda body, **kw: client.post("/api/labels", content=body, **kw)
    cases = {
        "not json": (post("{pair"), 400),
        "a list": (post("[1, 2]"), 400),
        "an extra key": (post(json.dumps({"pair": pair, "answer": "left", "x": 1})), 400),
        "a string id": (post(json.dumps({"pair": str(pair), "answer": "left"})), 400),
        "an unknown answer": (post(json.dumps({"pair": pair, "answer": "better"})), 422),
        "an unknown pair": (post(json.dumps({"pair": pair + 1, "answer": "left"})), 404),
        "an oversized body": (post(json.dumps({"pair": pair, "answer": "left" + " " * 2000})), 413),
    }
    for name, (response, status) in cases.items():
        assert response.status_code == status, name
        assert "error" in response.json(), name
    assert store.labels() == []
    assert post(json.dumps({"pair": pair, "answer": "equal"})).json()["saved"] is True
    again = post(json.dumps({"pair": pair, "answer": "left"}))
    assert again.status_code == 409
    assert [(l.pair, l.answer) for l in store.labels()] == [(pair, "equal")]
    assert client.get(f"/clips/{pair + 1}/left.mp4").status_code == 404
    assert client.get(f"/clips/{pair}/middle.mp4").status_code == 404


def test_token_is_required_everywhere_when_set(store, tmp_path):
    (pair,) = fill(store, 1)
    client = TestClient(make_app(store, tmp_path, token="s3cret"))
    for path in ("/", "/api/query", "/api/status"):
        assert client.get(path).status_code == 401
        assert client.get(path + "?token=wrong").status_code == 401
        assert client.get(path + "?token=s3cret").status_code == 200
    body = json.dumps({"pair": pair, "answer": "left"})
    assert client.post("/api/labels", content=body).status_code == 401
    assert store.labels() == []
    ok = client.post("/api/labels", content=body, headers={"Authorization": "Bearer s3cret"})
    assert ok.status_code == 200 and len(store.labels()) == 1
    with pytest.raises(ValueError, match="--token"):
        check_host("0.0.0.0", None)
    check_host("0.0.0.0", "s3cret")
    check_host("127.0.0.1", None)


def test_labellers_get_different_pairs(store, tmp_path):
    pairs = fill(store, 3)
    now = [0.0]
    client = TestClient(make_app(store, tmp_path, leases=Leases(10.0, clock=lambda: now[0])))
    got = [client.get("/api/query").json()["pair"] for _ in range(4)]
    assert got == pairs + [None]          # three labellers, three pairs; the fourth waits
    now[0] = 11.0                          # an unanswered lease runs out
    assert client.get("/api/query").json()["pair"] == pairs[0]
    q = client.get("/api/query").json()
    assert q["left"] == f"/clips/{q['pair']}/left.mp4"


def test_a_thousand_concurrent_answers_none_lost_or_duplicated(store, tmp_path):
    """Eight clients, each on its own connection, post 1,000 answers to a live server at
    once, 100 of them a second time: every answer saved exactly once, every repeat refused."""
    pairs = fill(store, 1000)
    server = Server(make_app(store, tmp_path)).start()
    answers = {p: ("left", "right", "equal", "cant_tell")[p % 4] for p in pairs}
    posts = [(p, answers[p]) for p in pairs] + [(p, answers[p]) for p in pairs[::10]]
    np.random.default_rng(0).shuffle(posts)

    def client_posts(share):  # one client, its own connection, posting its share in turn
        with httpx.Client(base_url=server.url, timeout=120) as client:
            return [(p, client.post("/api/labels", json={"pair": p, "answer": a}).status_code)
                    for p, a in share]
    try:
        with ThreadPoolExecutor(8) as pool:
            statuses = [s for share in pool.map(client_posts, [posts[i::8] for i in range(8)])
                        for s in share]
    finally:
        server.stop()
    assert sum(s == 200 for _, s in statuses) == 1000
    assert sum(s == 409 for _, s in statuses) == 100
    labels = store.labels()
    assert sorted(l.pair for l in labels) == pairs
    assert len({l.seq for l in labels}) == 1000
    assert {l.pair: l.answer for l in labels} == answers
