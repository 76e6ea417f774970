"""The label store: every query put to a person and every answer, in SQLite (WAL mode).

An answer is committed (``synchronous=FULL``) before ``answer`` returns, so the page is
told "saved" only once the answer would survive a crash of the trainer or the server.
A query keeps its two segments as the reward learner stores them (observations
``[2, L, *obs_shape]`` float32, or Atari's frames ``[2, L + K - 1, 84, 84]`` uint8:
``rlhp.preferences.frames``; actions ``[2, L, ...]``), so an answer can enter the
comparison database whenever the trainer next takes it in, and a resumed run (or another
run, through ``export``/``read_jsonl``) can load it again.
Answers are numbered in the order they were saved (``seq``); the trainer remembers the
last one it inserted, in its checkpoint.

Safe to share between threads (one connection behind a lock) and between processes
(SQLite's own locking; a second answer to a pair is refused by a UNIQUE constraint).
"""
from __future__ import annotations

import io
import json
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ANSWERS = ("left", "right", "equal", "cant_tell")
# the Bradley-Terry target of each answer (1: left better); "can't tell" enters no database
MU = {"left": 1.0, "right": 0.0, "equal": 0.5}

SCHEMA = """
CREATE TABLE IF NOT EXISTS queries (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    iteration INTEGER NOT NULL,
    created REAL NOT NULL,
    segments BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS labels (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    pair INTEGER NOT NULL UNIQUE REFERENCES queries(id),
    answer TEXT NOT NULL CHECK (answer IN ('left', 'right', 'equal', 'cant_tell')),
    answered REAL NOT NULL
);
"""


class UnknownPair(KeyError):
    """No query has this id."""


class AlreadyAnswered(ValueError):
    """The pair has an answer already."""


@dataclass(frozen=True)
class Label:
    """One saved answer and the pair it answers: obs ``[2, *clip]`` (the stored clips:
    ``[2, L, *obs_shape]``, or Atari frames), action ``[2, L, ...]`` (left first)."""

    seq: int
    pair: int
    answer: str
    obs: np.ndarray
    action: np.ndarray

    @property
    def mu(self) -> float:
        """1 left better, 0 right, 0.5 equal (NaN for "can't tell")."""
        return MU.get(self.answer, float("nan"))


def pack(obs: np.ndarray, action: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, obs=np.asarray(obs), action=np.asarray(action))
    return buf.getvalue()


def unpack(blob: bytes) -> tuple[np.ndarray, np.ndarray]:
    with np.load(io.BytesIO(blob)) as z:
        return z["obs"], z["action"]


class Store:
    """The queries and answers of one run, in ``path`` (created if missing)."""

    def __init__(self, path: Path | str):
        self.path = Path(path)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None,
                                   timeout=30.0)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def add_query(self, obs: np.ndarray, action: np.ndarray, iteration: int) -> int:
        """Keep a pair of segments (obs ``[2, *clip]`` as stored, any dtype; action
        ``[2, L, ...]``) put to the person; returns its id."""
        with self._lock:
            cur = self._db.execute(
                "INSERT INTO queries (iteration, created, segments) VALUES (?, ?, ?)",
                (int(iteration), time.time(), pack(obs, action)))
            return int(cur.lastrowid)

    def answer(self, pair: int, answer: str) -> int:
        """Save ``answer`` (one of ``ANSWERS``) to ``pair``, durably; returns its ``seq``.
        Raises ``ValueError`` (an answer outside the four), ``UnknownPair`` or
        ``AlreadyAnswered``; then nothing is written."""
        if answer not in ANSWERS:
            raise ValueError(f"answer {answer!r}: expected one of {', '.join(ANSWERS)}")
        with self._lock:
            if self._db.execute("SELECT 1 FROM queries WHERE id = ?", (pair,)).fetchone() is None:
                raise UnknownPair(pair)
            try:
                cur = self._db.execute(
                    "INSERT INTO labels (pair, answer, answered) VALUES (?, ?, ?)",
                    (pair, answer, time.time()))
            except sqlite3.IntegrityError:
                raise AlreadyAnswered(pair) from None
            return int(cur.lastrowid)

    def segments(self, pair: int) -> tuple[np.ndarray, np.ndarray]:
        """The pair's segments, obs ``[2, *clip]`` and action ``[2, L, ...]``; raises
        ``UnknownPair``."""
        with self._lock:
            row = self._db.execute("SELECT segments FROM queries WHERE id = ?",
                                   (pair,)).fetchone()
        if row is None:
            raise UnknownPair(pair)
        return unpack(row[0])

    def pending(self) -> list[int]:
        """Ids of the queries without an answer, oldest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT id FROM queries WHERE id NOT IN (SELECT pair FROM labels) ORDER BY id")
            return [r[0] for r in rows]

    def has_query(self, pair: int) -> bool:
        with self._lock:
            return self._db.execute("SELECT 1 FROM queries WHERE id = ?",
                                    (pair,)).fetchone() is not None

    def counts(self) -> dict:
        """``{"queries": n, "answered": n, "pending": n}``."""
        with self._lock:
            q = self._db.execute("SELECT COUNT(*) FROM queries").fetchone()[0]
            a = self._db.execute("SELECT COUNT(*) FROM labels").fetchone()[0]
        return {"queries": q, "answered": a, "pending": q - a}

    def labels(self, after: int = 0) -> list[Label]:
        """Every answer with ``seq > after``, in the order they were saved."""
        with self._lock:
            rows = self._db.execute(
                "SELECT l.seq, l.pair, l.answer, q.segments FROM labels l "
                "JOIN queries q ON q.id = l.pair WHERE l.seq > ? ORDER BY l.seq", (after,))
            rows = rows.fetchall()
        return [Label(seq, pair, answer, *unpack(blob)) for seq, pair, answer, blob in rows]

    def export(self, out: Path | str) -> int:
        """Every answer as JSON lines (``pair``, ``answer``, ``obs``, ``action``) to
        ``out``; returns how many."""
        labels = self.labels()
        with open(out, "w") as f:
            for lab in labels:
                f.write(json.dumps({"pair": lab.pair, "answer": lab.answer,
                                    "obs": lab.obs.tolist(), "action": lab.action.tolist()})
                        + "\n")
        return len(labels)


def read_jsonl(path: Path | str, clip: tuple, action_shape: tuple, length: int) -> list[Label]:
    """Labels exported by ``Store.export`` (or written by hand in its format), checked
    against a run's segments: obs ``[2, *clip_shape]`` of ``clip = (clip_shape, dtype)``
    (``RewardLearner.store.stored(length)``: uint8 frames must be integers in [0, 255]),
    action ``[2, length, *action_shape]``. Raises ``ValueError`` naming the line at fault."""
    clip_shape, dtype = tuple(clip[0]), np.dtype(clip[1])
    labels = []
    with open(path) as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                obs = np.asarray(row["obs"], np.float64)
                action = np.asarray(row["action"])
                answer = row["answer"]
            except (ValueError, KeyError, TypeError) as e:
                raise ValueError(f"{path}:{n}: not a label ({type(e).__name__}: {e})") from None
            if answer not in ANSWERS:
                raise ValueError(f"{path}:{n}: answer {answer!r} is not one of {', '.join(ANSWERS)}")
            if obs.shape != (2, *clip_shape) or action.shape != (2, length, *action_shape):
                raise ValueError(f"{path}:{n}: obs {obs.shape} and action {action.shape} do not "
                                 f"fit this run's segments {(2, *clip_shape)} and "
                                 f"{(2, length, *action_shape)}")
            if dtype.kind == "u" and not ((obs == np.round(obs)).all() and obs.min() >= 0
                                          and obs.max() <= np.iinfo(dtype).max):
                raise ValueError(f"{path}:{n}: obs must be {dtype} frames: integers in "
                                 f"[0, {np.iinfo(dtype).max}]")
            labels.append(Label(n, int(row.get("pair", n)), answer, obs.astype(dtype), action))
    return labels
