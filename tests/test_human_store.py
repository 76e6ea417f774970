"""The label store: durable answers, validation, reload after a crash, export round trip."""
import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from rlhp.human.store import AlreadyAnswered, Store, UnknownPair, read_jsonl

L, OBS, ACT = 4, (3,), (2,)
CLIP = ((L, *OBS), np.float32)  # a clip stored as observed


def segments(i):
    rng = np.random.default_rng(i)
    return rng.normal(size=(2, L, *OBS)).astype(np.float32), rng.normal(size=(2, L, *ACT)).astype(np.float32)


def test_answers_are_validated_and_kept_in_order(tmp_path):
    store = Store(tmp_path / "labels.sqlite")
    ids = [store.add_query(*segments(i), iteration=i) for i in range(3)]
    assert store.pending() == ids
    assert store.answer(ids[1], "left") == 1
    with pytest.raises(AlreadyAnswered):
        store.answer(ids[1], "right")
    with pytest.raises(UnknownPair):
        store.answer(999, "left")
    with pytest.raises(ValueError):
        store.answer(ids[0], "better")
    store.answer(ids[0], "cant_tell")
    assert store.pending() == [ids[2]]
    labels = store.labels()
    assert [(l.pair, l.answer) for l in labels] == [(ids[1], "left"), (ids[0], "cant_tell")]
    assert labels[0].mu == 1.0 and np.isnan(labels[1].mu)
    np.testing.assert_array_equal(labels[0].obs, segments(1)[0])
    np.testing.assert_array_equal(labels[0].action, segments(1)[1])
    assert [l.seq for l in store.labels(after=labels[0].seq)] == [labels[1].seq]
    assert store.counts() == {"queries": 3, "answered": 2, "pending": 1}


def test_an_answer_survives_a_crash_before_its_acknowledgement(tmp_path):
    """A process saves an answer and dies (``os._exit``, no clean close, nothing flushed by
    Python) before it could tell anyone: a new process finds the answer."""
    path = tmp_path / "labels.sqlite"
    pair = Store(path).add_query(*segments(0), iteration=0)
    script = textwrap.dedent(f"""
        import os
        from rlhp.human.store import Store
        Store({str(path)!r}).answer({pair}, "right")
        os._exit(9)  # killed between the write and the reply
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 9, done.stderr
    labels = Store(path).labels()
    assert [(l.pair, l.answer) for l in labels] == [(pair, "right")]


def test_export_and_read_back(tmp_path):
    store = Store(tmp_path / "labels.sqlite")
    for i, answer in enumerate(["left", "equal", "right", "cant_tell"]):
        store.answer(store.add_query(*segments(i), iteration=0), answer)
    assert store.export(tmp_path / "labels.jsonl") == 4
    back = read_jsonl(tmp_path / "labels.jsonl", CLIP, ACT, L)
    assert [l.answer for l in back] == ["left", "equal", "right", "cant_tell"]
    for lab, orig in zip(back, store.labels()):
        np.testing.assert_allclose(lab.obs, orig.obs)
        np.testing.assert_allclose(lab.action, orig.action)
    with pytest.raises(ValueError, match="do not fit"):
        read_jsonl(tmp_path / "labels.jsonl", ((L, 4), np.float32), ACT, L)
    (tmp_path / "bad.jsonl").write_text('{"answer": "left"}\n')
    with pytest.raises(ValueError, match="bad.jsonl:1"):
        read_jsonl(tmp_path / "bad.jsonl", CLIP, ACT, L)


def test_frames_read_back_as_uint8_and_out_of_range_is_refused(tmp_path):
    """Atari labels carry stored uint8 frames ``[2, L + 3, H, W]``: they read back exactly,
    as uint8; values a uint8 frame cannot hold name the line."""
    clip = ((L + 3, 5, 5), np.uint8)
    frames = np.random.default_rng(0).integers(0, 256, (2, L + 3, 5, 5), dtype=np.uint8)
    store = Store(tmp_path / "labels.sqlite")
    store.answer(store.add_query(frames, np.zeros((2, L), np.int32), iteration=0), "right")
    store.export(tmp_path / "labels.jsonl")
    back, = read_jsonl(tmp_path / "labels.jsonl", clip, (), L)
    assert back.obs.dtype == np.uint8 and back.answer == "right"
    np.testing.assert_array_equal(back.obs, frames)
    over = frames.astype(int)
    over[0, 0, 0, 0] = 256
    for bad in (over, frames / 2, -over):
        row = {"answer": "left", "obs": bad.tolist(), "action": np.zeros((2, L)).tolist()}
        (tmp_path / "bad.jsonl").write_text(json.dumps(row) + "\n")
        with pytest.raises(ValueError, match="bad.jsonl:1: obs must be uint8"):
            read_jsonl(tmp_path / "bad.jsonl", clip, (), L)
