"""The explainer's page: a ``Session`` running an ``Explainer`` in a thread, and its JSON
API on the labelling page's app factory and checks.

``GET /``               the page (``explain.html``)
``GET /api/state``      the run as the page draws it (``Explainer.snapshot``; ``playing``,
                        ``commands_done``: commands applied so far, ``error``: the last
                        command that failed)
``POST /api/control``   ``{"action": "play" | "pause" | "step"}``,
                        ``{"action": "preset", "preset": NAME}`` or
                        ``{"action": "query", "query": "disagreement" | "random"}``: queued
                        and applied in order between chunks; replies ``{"command": N}``
``POST /api/labels``    ``{"pair": ID, "answer": ...}``: a person's answer to the pair
                        waiting (validated as on the labelling page)
"""
from __future__ import annotations

import itertools
import queue
import threading
import time
from pathlib import Path

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse
from starlette.routing import Route

from rlhp.human.explainer import PRESETS, QUERIES, Explainer
from rlhp.human.server import BadRequest, build_app, check_answer, error, read_json
from rlhp.human.store import AlreadyAnswered, UnknownPair

PAGE = Path(__file__).with_name("explain.html")
# each command's one argument and its allowed values (None: none)
ARGUMENTS = {"play": None, "pause": None, "step": None, "preset": ("preset", tuple(PRESETS)),
             "query": ("query", QUERIES)}


class Session:
    """An ``Explainer`` run from a thread: commands (``submit``) apply in order between
    chunks; while playing, a chunk every ``delay`` seconds until the run finishes or
    waits for a person (then it goes on by itself once the pair is answered)."""

    def __init__(self, explainer: Explainer, delay: float = 0.15):
        self.explainer, self.delay = explainer, delay
        self.playing = False
        self.commands: queue.Queue = queue.Queue()
        self.lock = threading.Lock()
        self.done = 0      # commands applied so far
        self._numbers = itertools.count(1)
        self.error = None  # the last command that failed, in words
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> "Session":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def submit(self, action: str, value: str | None = None) -> int:
        """Queue a command; returns its number (``done`` reaches it once applied)."""
        if action not in ARGUMENTS:
            raise ValueError(f"action {action!r}: expected one of {', '.join(ARGUMENTS)}")
        number = next(self._numbers)
        self.commands.put((action, value))
        return number

    def answer(self, pair: int, answer: str) -> None:
        with self.lock:
            self.explainer.answer(pair, answer)

    def snapshot(self) -> dict:
        return {**self.explainer.snapshot(), "playing": self.playing,
                "commands_done": self.done, "error": self.error}

    def _apply(self, action: str, value) -> None:
        ex = self.explainer
        if action == "play":
            self.playing = True
        elif action == "pause":
            self.playing = False
        elif action == "step":
            self.playing = False
            ex.step()
        elif action == "preset":
            self.playing = False
            ex.load(value)
        elif action == "query":
            ex.set_query(value)

    def _run(self) -> None:
        last = 0.0
        while not self._stop.is_set():
            running = self.playing and not self.explainer.waiting and not self.explainer.finished
            try:
                action, value = self.commands.get(timeout=0.02 if running else 0.1)
            except queue.Empty:
                if running and time.monotonic() - last >= self.delay:
                    with self.lock:
                        self.explainer.step()
                    last = time.monotonic()
                    if self.explainer.finished:
                        self.playing = False
                continue
            try:
                with self.lock:
                    self._apply(action, value)
                self.error = None
            except ValueError as e:
                self.error = str(e)
            self.done += 1


def check_command(data: dict) -> tuple[str, str | None]:
    """``(action, value)`` of a control body; raises ``BadRequest``."""
    action = data.get("action")
    if action not in ARGUMENTS:
        raise BadRequest(422, f"action must be one of: {', '.join(ARGUMENTS)}")
    argument = ARGUMENTS[action]
    expected = {"action"} | ({argument[0]} if argument else set())
    if set(data) != expected:
        raise BadRequest(400, f"{action!r} takes exactly: {', '.join(sorted(expected))}")
    if argument is None:
        return action, None
    name, allowed = argument
    if data[name] not in allowed:
        raise BadRequest(422, f"{name} must be one of: {', '.join(allowed)}")
    return action, data[name]


def make_explainer_app(session: Session, token: str | None = None):
    """The explainer's app over a running ``session``."""

    async def page(request: Request):
        return HTMLResponse(PAGE.read_text())

    async def state(request: Request):
        return JSONResponse(session.snapshot())

    async def control(request: Request):
        try:
            action, value = check_command(await read_json(request))
        except BadRequest as e:
            return e.response()
        return JSONResponse({"command": session.submit(action, value)})

    async def labels(request: Request):
        try:
            pair, answer = check_answer(await read_json(request))
        except BadRequest as e:
            return e.response()
        try:  # waits for a chunk in progress: off the event loop
            await run_in_threadpool(session.answer, pair, answer)
        except LookupError as e:
            if isinstance(e, UnknownPair):
                return error(404, f"no pair {pair}")
            return error(409, str(e))
        except AlreadyAnswered:
            return error(409, f"pair {pair} is answered already")
        return JSONResponse({"saved": True, "pair": pair})

    return build_app([Route("/", page), Route("/api/state", state),
                      Route("/api/control", control, methods=["POST"]),
                      Route("/api/labels", labels, methods=["POST"])], token)
