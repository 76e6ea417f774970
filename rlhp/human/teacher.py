"""The human teacher: the host side of the select / answer / insert seam.

Between jitted chunks of training, ``HumanTeacher.between_chunks``:
1. puts every answer saved since the last call into the comparison database
   (``RewardLearner.insert``; "can't tell" counts against the budget but enters nothing);
2. asks for the labels the schedule has made due: ``RewardLearner.select`` chooses the
   pairs by the run's query scheme (so disagreement works with people), each pair's
   segments go into the store as the learner stores them (Atari: uint8 frames,
   ``rlhp.preferences.frames``) and are handed to the clip worker
   (``rlhp.human.clip_worker``), which renders the two clips on its own thread; the page
   is given a pair once both are written (``ready``);
3. now and then hands over the agent's latest segment as "the agent now".
Nothing waits for the person, and no rendering happens on the trainer's thread: the policy
keeps optimising the current r-hat meanwhile. Pairs a previous run posed but did not render
are rendered again when a teacher starts.
The last answer inserted (``inserted``, a store ``seq``) goes into each checkpoint, so a
resumed run inserts exactly the answers its checkpoint had not seen.
"""
from __future__ import annotations

import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from rlhp.human import clips
from rlhp.human.clip_worker import ClipWorker
from rlhp.human.store import Label, Store
from rlhp.preferences import schedule
from rlhp.preferences.learner import Query

QUEUE = 8                 # pairs waiting for the person at most (more would go stale)
INSERT_BATCH = 16         # answers per jitted insert (padded and masked)
BEHAVIOUR_SECONDS = 20.0  # "the agent now" is rendered at most this often


def pad(labels: list[Label], n: int):
    """``n`` labels' obs ``[n, 2, *clip]`` (as stored: Atari frames stay uint8), action,
    mu ``[n]``, answered ``[n]`` and the mask of real rows ``[n]`` (the rest zeros)."""
    obs = np.zeros((n, *labels[0].obs.shape), labels[0].obs.dtype)
    action = np.zeros((n, *labels[0].action.shape), labels[0].action.dtype)
    mu, answered, real = np.zeros(n, np.float32), np.zeros(n, bool), np.zeros(n, bool)
    for i, lab in enumerate(labels):
        obs[i], action[i], real[i] = lab.obs, lab.action, True
        answered[i] = not np.isnan(lab.mu)
        mu[i] = 0.0 if np.isnan(lab.mu) else lab.mu
    return obs, action, mu, answered, real


def make_insert(learner):
    """Jitted ``(pref, key, obs, action, mu, answered, real) -> pref``: ``INSERT_BATCH``
    padded answers (``pad``) put into the comparison database by ``learner.insert``."""
    def insert(pref, key, obs, action, mu, answered, real):
        query = Query(obs=obs, action=action.astype(learner.action_dtype),
                      true_reward=jnp.zeros(action.shape[:3]), asked=real,
                      predicted=jnp.zeros_like(real))  # insert reads neither
        return learner.insert(pref, key, query, mu, answered)
    return jax.jit(insert)


def insert_labels(insert, pref, labels: list[Label], key):
    """``labels`` into ``pref``'s database, ``INSERT_BATCH`` at a time; returns ``pref``."""
    for start in range(0, len(labels), INSERT_BATCH):
        batch = labels[start:start + INSERT_BATCH]
        pref = insert(pref, jax.random.fold_in(key, batch[0].seq), *pad(batch, INSERT_BATCH))
    return pref


class HumanTeacher:
    """The seam's host side for ``trainer``, posing pairs into ``store``; with a
    ``clip_dir`` their clips are rendered there by a ``ClipWorker`` (without one, a page
    draws the segments itself: the explainer's gridworld paths). ``close`` (or leaving a
    ``with`` block) stops the worker."""

    def __init__(self, trainer, store: Store, clip_dir: Path | None, inserted: int = 0):
        self.trainer, self.store, self.inserted = trainer, store, inserted
        self.clip_dir = Path(clip_dir) if clip_dir is not None else None
        self.worker = None
        if self.clip_dir is not None:
            self.clip_dir.mkdir(parents=True, exist_ok=True)
            spec = trainer.env.spec
            self.worker = ClipWorker(lambda: clips.clip_maker(spec))
            for pair in store.pending():  # posed by an earlier run, not yet rendered
                if not self.ready(pair):
                    self.render_pair(pair, store.segments(pair)[0])
        learner, cfg = trainer.learner, trainer.cfg
        self.key = jax.random.PRNGKey(cfg.seed + 3)
        self.status = {"budget": cfg.labels, "env_steps": 0, "true_return": None,
                       "behaviour_version": 0}
        self._last_behaviour, self._behaviour_rendering = -np.inf, False

        def select(pref, key, k, scheme):
            k_pairs, k_score = jax.random.split(key)
            return learner.select(pref, k_pairs, k_score, QUEUE, k, scheme)

        self._select, self._insert = jax.jit(select), make_insert(learner)

    def take_answers(self, state, iteration: int):
        """Every answer saved since the last call, into the comparison database."""
        labels = self.store.labels(after=self.inserted)
        if not labels:
            return state
        pref = insert_labels(self._insert, state.pref, labels,
                             jax.random.fold_in(self.key, iteration))
        self.inserted = labels[-1].seq
        return state.replace(pref=pref)

    def labels_wanted(self, iteration: int) -> int:
        """New pairs to pose now: what the schedule has made due and the store has not
        yet posed, keeping at most ``QUEUE`` waiting."""
        cfg = self.trainer.cfg
        env_steps = (iteration - cfg.explore_iterations) * cfg.batch_size
        due = float(schedule.labels_due(env_steps, cfg.rl_steps, cfg.labels,
                                        cfg.upfront_fraction, cfg.label_horizon))
        counts = self.store.counts()
        return int(max(0, min(due - counts["queries"], QUEUE - counts["pending"])))

    def render_pair(self, pair: int, obs: np.ndarray) -> None:
        """Hand ``pair``'s segments ``obs [2, *clip]`` to the worker: ``PAIR-left.mp4``,
        then ``PAIR-right.mp4`` (its existence makes the pair ``ready``)."""
        self.worker.submit([(obs[0], self.clip_dir / f"{pair}-left.mp4"),
                            (obs[1], self.clip_dir / f"{pair}-right.mp4")])

    def pose(self, state, iteration: int, dyn) -> list[int]:
        """Select the pairs wanted now, keep them and have their clips rendered (with a
        ``clip_dir``); returns their ids."""
        k = self.labels_wanted(iteration)
        if k == 0:
            return []
        query = jax.device_get(self._select(state.pref, jax.random.fold_in(self.key, iteration),
                                            k, dyn.query))
        ids = []
        for i in np.flatnonzero(query.asked):
            obs, action = np.asarray(query.obs[i]), np.asarray(query.action[i])
            pair = self.store.add_query(obs, action, iteration)
            if self.worker is not None:
                self.render_pair(pair, obs)
            ids.append(pair)
        return ids

    def show_behaviour(self, state) -> None:
        """The newest buffered segment to the worker as ``behaviour.mp4`` (at most every
        ``BEHAVIOUR_SECONDS``, and not while the last one is still being rendered)."""
        if (self.worker is None or self._behaviour_rendering
                or time.monotonic() - self._last_behaviour < BEHAVIOUR_SECONDS):
            return
        seg = state.pref.segments
        if not bool(seg.filled.any()):
            return
        newest = (int(seg.cursor) - 1) % seg.filled.shape[0]
        self._behaviour_rendering, self._last_behaviour = True, time.monotonic()
        self.worker.submit([(np.asarray(seg.obs[newest]), self.clip_dir / "behaviour.mp4")],
                           then=self._behaviour_shown)

    def _behaviour_shown(self) -> None:
        """In the worker, once ``behaviour.mp4`` is written: the page may reload it."""
        self.status["behaviour_version"] += 1
        self._behaviour_rendering = False

    def between_chunks(self, state, iteration: int, dyn, true_return=None):
        """Answers in, new pairs out, the page's figures updated; returns the state. Raises
        ``ClipError`` if the worker failed to render a clip."""
        if self.worker is not None:
            self.worker.check()
        state = self.take_answers(state, iteration)
        self.pose(state, iteration, dyn)
        self.show_behaviour(state)
        self.status.update(env_steps=iteration * self.trainer.cfg.batch_size,
                           true_return=None if true_return is None or not np.isfinite(true_return)
                           else round(float(true_return), 1))
        return state

    def ready(self, pair: int) -> bool:
        """Whether a pair's clips are on disk (the page is given only such pairs)."""
        return (self.clip_dir / f"{pair}-right.mp4").exists()

    def close(self) -> None:
        """Stop the clip worker (after the clip in hand); raises ``ClipError`` if it failed."""
        if self.worker is not None:
            self.worker.close()

    def __enter__(self) -> "HumanTeacher":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
