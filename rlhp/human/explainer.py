"""The interactive gridworld of the explainer: the real learner, stepped chunk by chunk.

``Explainer`` runs the real training step (``rlhp.train``: PPO on r-hat, the ensemble of 3
fit on the Bradley-Terry loss, the label schedule, the query schemes) on the 5x5 gridworld
in jitted chunks of ``CHUNK`` iterations, and after each chunk reads off what the page
draws (``snapshot``): the learned reward per cell with its greedy arrows, the hidden true
reward with the goal, the policy's own actions, reward match, optimal policy, the
Bradley-Terry loss, the pair waiting for a person, and an event log.

Presets (``PRESETS``) start a fresh run: a synthetic oracle online, a person answering
(the run waits at each query until the pair is answered: the human teacher's select /
answer / insert seam, ``rlhp.human.teacher``), every label up front then a frozen r-hat,
and the online run of the same budget. The query scheme (disagreement or random) can be
switched between chunks (``dyn.query`` is an array: nothing recompiles). Runs are
deterministic: the same preset, the same answers (and switches at the same iterations)
give the same maps.

The page drives an ``Explainer`` from a thread (``rlhp.human.explainer_app.Session``).
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import jax
import numpy as np

from rlhp.envs import gridworld, make_env
from rlhp.human.store import Store
from rlhp.human.teacher import HumanTeacher
from rlhp.outputs import report
from rlhp.presets import preset
from rlhp.train import make_train

CHUNK = 4            # iterations per step of the page (4,096 env steps)
CAPACITY = 400       # the comparison database of every preset (one compiled program for
                     # the synthetic online presets, whatever their budgets)
QUERIES = ("disagreement", "random")
MAX_EVENTS = 200


@dataclass(frozen=True)
class Preset:
    title: str
    teacher: str       # oracle, or human (a person on the page)
    labels: int
    offline: bool = False
    steps: int = 163_840
    about: str = ""


# Settings measured with `python -m rlhp.explain --measure` (docs/human.md, "The explainer").
PRESETS = {
    "oracle": Preset("Synthetic oracle", "oracle", 400,
                     about="an automatic labeler prefers the clip of higher true reward "
                           "(the paper's baseline), asked online"),
    "labeler": Preset("You are the labeler", "human", 30, steps=81_920,
                      about="the run waits at each query until you pick the clip whose path "
                            "ends nearer the goal"),
    "offline": Preset("Offline only", "oracle", 200, offline=True,
                      about="every label asked of the initial policy, then r-hat frozen "
                            "while the policy trains on it"),
    "online": Preset("Online queries", "oracle", 200,
                     about="the same budget as Offline only, asked as the policy learns"),
}


def preset_config(name: str, seed: int = 0, **overrides):
    """The run config of preset ``name`` (``overrides``: any config fields, e.g. a tiny
    run for tests)."""
    p = PRESETS[name]
    kw = dict(seed=seed, teacher=p.teacher, labels=p.labels, offline=p.offline,
              total_steps=p.steps, max_labels=CAPACITY, iterations_per_chunk=CHUNK)
    return preset("gridworld", **{**kw, **overrides})


def end_cell(obs: np.ndarray) -> int:
    """The cell a gridworld segment (obs ``[L, NUM_CELLS]`` one-hot) ends in."""
    return int(np.asarray(obs)[-1].argmax())


def nearer_goal(obs: np.ndarray) -> str:
    """The answer of a person who prefers the path ending nearer the goal (Manhattan
    distance; equal when the ends are as near): obs ``[2, L, NUM_CELLS]``."""
    dist = [abs(c // gridworld.SIZE - gridworld.GOAL[0]) + abs(c % gridworld.SIZE - gridworld.GOAL[1])
            for c in map(end_cell, obs)]
    return "left" if dist[0] < dist[1] else "right" if dist[1] < dist[0] else "equal"


class Program:
    """One compiled program: trainer, jitted init, chunk and figures, for every preset
    whose config matches ``cfg`` but for dynamic fields."""

    def __init__(self, cfg):
        env = make_env("gridworld", "gridworld", cfg.num_envs, seed=cfg.seed)
        self.trainer = make_train(cfg, env)
        self.init = jax.jit(self.trainer.init)
        self.chunk = None  # compiled at the first run's start, from its state
        self.figures = jax.jit(lambda state: report.gridworld_figures(self.trainer, state))


def program_key(cfg) -> tuple:
    """What tells compiled programs apart: the config but its label budget and query
    scheme (dynamic), for synthetic teachers (a person's schedule reads the budget)."""
    static = cfg.to_dict()
    if cfg.teacher != "human":
        static.update(labels=None, teacher=None)
    static.pop("query")
    return tuple(sorted((k, str(v)) for k, v in static.items()))


class Explainer:
    """One run of a preset at a time, stepped by ``step``; ``snapshot()`` is what the
    page shows. Not thread-safe (the page's ``Session`` serialises access)."""

    def __init__(self, seed: int = 0, **overrides):
        self.seed, self.overrides = seed, overrides
        self._programs: dict[tuple, Program] = {}
        self.name = None
        self.events: list[dict] = []
        self._event_count = 0
        self.published = {"preset": None, "status": "empty"}

    # -- running ---------------------------------------------------------------------
    def load(self, name: str) -> None:
        """A fresh run of preset ``name`` (compiling its program the first time)."""
        if name not in PRESETS:
            raise ValueError(f"preset {name!r}: expected one of {', '.join(PRESETS)}")
        p = PRESETS[name]
        cfg = preset_config(name, self.seed, **self.overrides)
        key = program_key(cfg)
        self.published = {**self.published, "status": "loading", "loading": name}
        if key not in self._programs:
            self._programs[key] = Program(cfg)
        self.program, self.cfg, self.name = self._programs[key], cfg, name
        self.dyn = cfg.dynamic()
        self.state = self.program.init(jax.random.PRNGKey(cfg.seed), self.dyn)
        if self.program.chunk is None:  # now, not at the first step: loading compiles all
            self.program.chunk = self.program.trainer.chunk.lower(self.state, self.dyn).compile()
        self.iteration, self.history, self.bt_loss = 0, [], None
        self.teacher = None
        if p.teacher == "human":
            self.store = Store(Path(":memory:"))
            self.teacher = HumanTeacher(self.program.trainer, self.store, None)
        self.log(f"{p.title}: {cfg.labels} labels, {cfg.query} queries, "
                 f"{'all asked up front, then r-hat frozen' if cfg.offline else 'online'}; "
                 f"{p.about}")
        if not self.teacher:
            upfront = int(self.state.pref.asked)
            self.log(f"{upfront} labels asked of the initial policy; r-hat pretrained on them")
        self._after_chunk(None)

    def set_query(self, scheme: str) -> None:
        """Ask by ``scheme`` (disagreement or random) from the next chunk on."""
        if scheme not in QUERIES:
            raise ValueError(f"query {scheme!r}: expected one of {', '.join(QUERIES)}")
        if self.cfg.query != scheme:
            self.cfg = self.cfg.replace(query=scheme)
            self.dyn = self.cfg.dynamic()
            self.log(f"from iteration {self.iteration}: {scheme} queries")
            self._publish()

    @property
    def finished(self) -> bool:
        return self.name is None or self.iteration >= self.cfg.num_iterations

    @property
    def waiting(self) -> bool:
        """A person's answer is due before the run may go on."""
        return self.teacher is not None and self.store.counts()["pending"] > 0

    def step(self) -> bool:
        """One chunk of ``CHUNK`` iterations, unless the run is finished or waits for an
        answer; returns whether it ran."""
        if self.finished or self.waiting:
            return False
        if self.teacher:
            self.state = self.teacher.take_answers(self.state, self.iteration)
        before = float(self.state.pref.asked)
        self.state, metrics = self.program.chunk(self.state, self.dyn)
        self.iteration += self.cfg.chunk_iterations
        metrics = jax.device_get(metrics)
        self.bt_loss = float(metrics["reward_train_loss"][-1])
        asked = float(self.state.pref.asked) - before
        if asked:
            self.log(f"iteration {self.iteration}: {asked:.0f} labels asked ({self.cfg.query}), "
                     f"{float(self.state.pref.asked):.0f} of {self.cfg.labels}")
        self._after_chunk(metrics)
        return True

    def answer(self, pair: int, answer: str) -> None:
        """A person's ``answer`` to ``pair`` (raises ``UnknownPair``, ``AlreadyAnswered``;
        ``LookupError`` when no person is asked)."""
        if self.teacher is None:
            raise LookupError("this preset asks no person")
        self.store.answer(pair, answer)
        self.log(f"pair {pair}: you answered {answer}")
        if not self.waiting:
            # in before anything else happens: the map shows what the answers taught
            self.state = self.teacher.take_answers(self.state, self.iteration)
        self._publish()

    def _after_chunk(self, metrics) -> None:
        if self.teacher and not self.finished:  # after the last chunk no answer is fit
            posed = self.teacher.pose(self.state, self.iteration, self.dyn)
            if posed:
                self.log(f"iteration {self.iteration}: {len(posed)} "
                         f"pair{'s' if len(posed) > 1 else ''} for you ({self.cfg.query}); "
                         f"the run waits")
        figures = {k: np.asarray(v) for k, v in jax.device_get(
            self.program.figures(self.state)).items()}
        self.figures = figures
        self.history.append({"iteration": self.iteration,
                             "reward_match": round(float(figures["reward_match"]), 4),
                             "optimal_policy": round(float(figures["optimal_policy"]), 4),
                             "bt_loss": None if self.bt_loss is None else round(self.bt_loss, 4)})
        if self.finished and metrics is not None:
            self.log(f"finished at {self.iteration * self.cfg.batch_size:,} env steps: reward "
                     f"match {figures['reward_match']:.3f}, optimal policy "
                     f"{figures['optimal_policy']:.2f}")
        self._publish()

    # -- what the page sees ------------------------------------------------------------
    def log(self, text: str) -> None:
        self._event_count += 1
        self.events.append({"n": self._event_count, "text": text})
        del self.events[:-MAX_EVENTS]

    def query_pair(self) -> dict | None:
        """The oldest pair waiting for the person: its id and each clip's cells."""
        if self.teacher is None:
            return None
        pending = self.store.pending()
        if not pending:
            return None
        obs, _ = self.store.segments(pending[0])
        cells = np.asarray(obs).argmax(-1)
        return {"pair": pending[0], "left": cells[0].tolist(), "right": cells[1].tolist()}

    def _publish(self) -> None:
        """Build the snapshot once per change, replacing ``published`` whole (the page
        polls it from another thread, without waiting for a running chunk)."""
        f, cfg = self.figures, self.cfg
        self.published = {"status": "ready",
            "preset": self.name, "title": PRESETS[self.name].title, "query": cfg.query,
            "teacher": cfg.teacher, "offline": cfg.offline,
            "iteration": self.iteration, "iterations": cfg.num_iterations,
            "env_steps": self.iteration * cfg.batch_size,
            "labels": int(self.state.pref.asked), "budget": cfg.labels,
            "comparisons": int(self.state.pref.db.filled.sum()),
            "size": gridworld.SIZE, "goal": list(gridworld.GOAL),
            "pits": [list(p) for p in gridworld.PITS],
            "learned": np.round(f["reward"], 4).tolist(),
            "learned_greedy": f["greedy"].astype(int).tolist(),
            "policy": f["policy"].astype(int).tolist(),
            **truth(),
            "reward_match": round(float(f["reward_match"]), 4),
            "optimal_policy": round(float(f["optimal_policy"]), 4),
            "policy_optimal": round(float(f["policy_optimal"]), 4),
            "bt_loss": None if self.bt_loss is None else round(self.bt_loss, 4),
            "history": list(self.history), "query_pair": self.query_pair(),
            "waiting": self.waiting, "finished": self.finished,
            "events": list(self.events)}

    def snapshot(self) -> dict:
        """What the page shows (``status``: empty, loading or ready), as JSON."""
        return {**self.published, "presets": presets_json()}


@functools.cache
def truth() -> dict:
    """The hidden map as the page draws it: ``true`` reward per cell ``[NUM_CELLS]`` and
    ``true_optimal`` ``[NUM_CELLS][NUM_ACTIONS]``, which actions are optimal."""
    true = gridworld.true_reward_map().reshape(-1)
    return {"true": true.round(4).tolist(),
            "true_optimal": np.asarray(gridworld.optimal_actions(true)).tolist()}


def presets_json() -> dict:
    return {name: {"title": p.title, "about": p.about} for name, p in PRESETS.items()}
