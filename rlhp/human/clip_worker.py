"""Clips rendered off the trainer's thread: one background thread draws and writes them.

The trainer hands segments (numpy, already on the host) to ``ClipWorker.submit`` and goes
on training; the worker draws each one (``rlhp.human.clips``) and writes its mp4
atomically, in the order given, so a pair whose second clip exists is complete. What draws
the frames is made inside the worker's thread, as a MuJoCo renderer's GL context belongs to
the thread that made it. The worker reads only the arrays it is given: what the learner
computes does not depend on when, or whether, a clip is drawn.

An error in the worker stops it; the trainer's thread raises it again (``ClipError``, the
worker's exception chained) at its next ``submit``, ``check`` or ``close``, so it reaches
the run's log. ``close`` stops the worker after the clip in hand; the thread is a daemon,
so a stuck renderer cannot keep the process alive.
"""
from __future__ import annotations

import queue
import threading
from pathlib import Path
from typing import Callable

import numpy as np

from rlhp.human import clips

CLOSE_SECONDS = 60.0  # ``close`` waits this long for the clip in hand


class ClipError(RuntimeError):
    """Drawing or writing a clip failed in the worker (its exception chained)."""


class ClipWorker:
    """One daemon thread that writes clips; ``make() -> (frames, fps)`` (as
    ``clips.clip_maker`` gives them) is called in that thread, once."""

    def __init__(self, make: Callable[[], tuple]):
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        self._stop = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(make,), name="clip-worker",
                                        daemon=True)
        self._thread.start()

    def submit(self, segments: list[tuple[np.ndarray, Path]],
               then: Callable[[], None] | None = None) -> None:
        """Write each ``(segment, path)`` in order (``segment``: one stored segment, as
        ``clips.clip_maker``'s ``frames`` takes it), then call ``then()`` in the worker.
        Raises ``ClipError`` if the worker has failed."""
        self.check()
        self._jobs.put((segments, then))

    @property
    def running(self) -> bool:
        """Whether the worker's thread is alive (not failed, not closed)."""
        return self._thread.is_alive()

    def check(self) -> None:
        """Raise ``ClipError`` here if the worker has failed."""
        if self._error is not None:
            e = self._error
            raise ClipError(f"rendering a clip failed: {type(e).__name__}: {e}") from e

    def close(self, timeout: float = CLOSE_SECONDS) -> None:
        """Stop after the clip in hand (clips still queued are dropped), then ``check``."""
        self._stop.set()
        self._jobs.put(None)
        self._thread.join(timeout)
        self.check()

    def _run(self, make) -> None:
        try:
            frames, fps = make()
            while (job := self._jobs.get()) is not None:
                segments, then = job
                for segment, path in segments:
                    if self._stop.is_set():
                        return
                    clips.write(frames(segment), path, fps)
                if then is not None:
                    then()
        except BaseException as e:  # noqa: BLE001 - raised again on the trainer's thread
            self._error = e
