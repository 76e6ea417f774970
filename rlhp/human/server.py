"""The labelling page and its JSON API (Starlette, served by uvicorn in a thread).

``GET /``                 the labelling page (``page.html``)
``GET /api/query``        the next pair to label: ``{"pair": id, "left": url, "right": url}``
                          (``{"pair": null}`` when none waits); each pair is handed to one
                          labeller at a time (leased for ``LEASE_SECONDS``), so several
                          people get different pairs
``POST /api/labels``      ``{"pair": id, "answer": "left" | "right" | "equal" | "cant_tell"}``:
                          saved to the store (durably) before the reply says so
``GET /api/status``       the queue, labels given, the budget, the trainer's progress
``GET /clips/{pair}/{side}.mp4``  a pair's clips; ``GET /behaviour.mp4`` the latest behaviour

Every request is validated; a bad one gets a 4xx with ``{"error": ...}`` and writes nothing.
With a ``token`` (required to serve any host but 127.0.0.1), every request must carry it,
as ``Authorization: Bearer TOKEN`` or ``?token=TOKEN``, compared in constant time.
"""
from __future__ import annotations

import hmac
import json
import socket
import threading
import time
from pathlib import Path
from typing import Callable

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, JSONResponse
from starlette.routing import Route

from rlhp.human.store import ANSWERS, AlreadyAnswered, Store, UnknownPair

LOCAL = "127.0.0.1"
LEASE_SECONDS = 120.0   # a pair handed out waits this long for its answer before another gets it
MAX_BODY = 1024         # bytes of a POST body
KEEP_ALIVE = 120        # seconds an idle connection stays open (clients reuse theirs)
PAGE = Path(__file__).with_name("page.html")


def error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


class Leases:
    """Which pending pair each labeller holds: a pair is handed to one labeller at a time
    until it is answered or ``seconds`` pass."""

    def __init__(self, seconds: float = LEASE_SECONDS, clock=time.monotonic):
        self.seconds, self.clock = seconds, clock
        self._until: dict[int, float] = {}
        self._lock = threading.Lock()

    def take(self, pending: list[int]) -> int | None:
        """The oldest pending pair nobody holds (now held), or None."""
        now = self.clock()
        with self._lock:
            for pair in pending:
                if self._until.get(pair, 0.0) <= now:
                    self._until[pair] = now + self.seconds
                    return pair
        return None

    def release(self, pair: int) -> None:
        with self._lock:
            self._until.pop(pair, None)


class TokenCheck(BaseHTTPMiddleware):
    def __init__(self, app, token: str):
        super().__init__(app)
        self.token = token.encode()

    async def dispatch(self, request: Request, call_next):
        given = request.query_params.get("token", "")
        auth = request.headers.get("authorization", "")
        if auth.startswith("Bearer "):
            given = auth[len("Bearer "):]
        if not hmac.compare_digest(given.encode(), self.token):
            return error(401, "missing or wrong token")
        return await call_next(request)


def make_app(store: Store, clip_dir: Path, status: Callable[[], dict] = dict,
             token: str | None = None, leases: Leases | None = None,
             ready: Callable[[int], bool] = lambda pair: True) -> Starlette:
    """The app over ``store``; clips are read from ``clip_dir`` (``ID-left.mp4``,
    ``ID-right.mp4``, ``behaviour.mp4``); ``status()`` gives the trainer's figures;
    only pairs that are ``ready(pair)`` (clips rendered) are handed out."""
    leases = leases or Leases()
    clip_dir = Path(clip_dir)

    async def page(request: Request):
        return HTMLResponse(PAGE.read_text())

    async def query(request: Request):
        pair = leases.take([p for p in store.pending() if ready(p)])
        if pair is None:
            return JSONResponse({"pair": None})
        return JSONResponse({"pair": pair, "left": f"/clips/{pair}/left.mp4",
                             "right": f"/clips/{pair}/right.mp4"})

    async def labels(request: Request):
        try:
            pair, answer = check_answer(await read_json(request))
        except BadRequest as e:
            return e.response()
        try:
            seq = store.answer(pair, answer)
        except UnknownPair:
            return error(404, f"no pair {pair}")
        except AlreadyAnswered:
            return error(409, f"pair {pair} is answered already")
        leases.release(pair)
        return JSONResponse({"saved": True, "pair": pair, "seq": seq})

    async def get_status(request: Request):
        return JSONResponse({**store.counts(), **status()})

    async def clip(request: Request):
        side = request.path_params["side"]
        pair = request.path_params["pair"]
        if side not in ("left", "right") or not store.has_query(pair):
            return error(404, "no such clip")
        path = clip_dir / f"{pair}-{side}.mp4"
        if not path.exists():
            return error(404, "clip not rendered")
        return FileResponse(path, media_type="video/mp4")

    async def behaviour(request: Request):
        path = clip_dir / "behaviour.mp4"
        if not path.exists():
            return error(404, "no behaviour clip yet")
        return FileResponse(path, media_type="video/mp4")

    routes = [Route("/", page), Route("/api/query", query), Route("/api/status", get_status),
              Route("/api/labels", labels, methods=["POST"]),
              Route("/clips/{pair:int}/{side}.mp4", clip),
              Route("/behaviour.mp4", behaviour)]
    return build_app(routes, token)


def build_app(routes: list, token: str | None = None) -> Starlette:
    """A Starlette app of ``routes``; with a ``token``, every request must carry it."""
    middleware = [Middleware(TokenCheck, token=token)] if token else []
    return Starlette(routes=routes, middleware=middleware)


class BadRequest(Exception):
    """A request refused with ``status`` and a one-line ``message``."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status

    def response(self) -> JSONResponse:
        return error(self.status, str(self))


async def read_json(request: Request) -> dict:
    """A POST body of at most ``MAX_BODY`` bytes holding a JSON object; raises
    ``BadRequest`` (413 too long, 400 otherwise)."""
    if int(request.headers.get("content-length") or 0) > MAX_BODY:
        raise BadRequest(413, f"body over {MAX_BODY} bytes")
    body = await request.body()
    if len(body) > MAX_BODY:
        raise BadRequest(413, f"body over {MAX_BODY} bytes")
    try:
        data = json.loads(body)
    except ValueError:
        raise BadRequest(400, "body is not JSON") from None
    if not isinstance(data, dict):
        raise BadRequest(400, "body must be a JSON object")
    return data


def check_answer(data: dict) -> tuple[int, str]:
    """``(pair, answer)`` of a label body ``{"pair": ID, "answer": ANSWER}``; raises
    ``BadRequest`` (400 malformed, 422 an answer outside the four)."""
    if set(data) != {"pair", "answer"}:
        raise BadRequest(400, 'expected {"pair": ID, "answer": ANSWER} and nothing else')
    pair, answer = data["pair"], data["answer"]
    if not isinstance(pair, int) or isinstance(pair, bool):
        raise BadRequest(400, "pair must be an integer id")
    if answer not in ANSWERS:
        raise BadRequest(422, f"answer must be one of: {', '.join(ANSWERS)}")
    return pair, answer


def check_host(host: str, token: str | None, port: int = 0) -> None:
    """Raise ``ValueError`` (one line naming the flag) unless ``port`` is in range and
    serving ``host`` is safe: anything but 127.0.0.1 needs a token."""
    if not 0 <= port < 65536:
        raise ValueError(f"--port {port}: must lie in [0, 65535] (0: a free one)")
    if host != LOCAL and not token:
        raise ValueError(f"--host {host}: serving beyond {LOCAL} needs --token (every "
                         f"request must then carry it)")


class Server:
    """uvicorn serving ``app`` in a daemon thread, on ``host:port`` (0: a free port); off
    the main thread, uvicorn leaves the trainer's signal handlers alone."""

    def __init__(self, app, host: str = LOCAL, port: int = 0):
        import uvicorn
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, port))
        self.host, self.port = host, self.sock.getsockname()[1]
        self._server = uvicorn.Server(uvicorn.Config(
            app, log_level="warning", access_log=False, timeout_keep_alive=KEEP_ALIVE))
        self._thread = threading.Thread(target=self._server.run,
                                        kwargs={"sockets": [self.sock]}, daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/"

    def start(self, timeout: float = 30.0) -> "Server":
        self._thread.start()
        t0 = time.monotonic()
        while not self._server.started:
            if time.monotonic() - t0 > timeout or not self._thread.is_alive():
                raise RuntimeError(f"the labelling server did not start on {self.url}")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self.sock.close()
