"""The clip worker renders on its own thread, in order, with what draws made in that
thread; its errors are raised again on the caller's thread; ``close`` stops it."""
import threading

import imageio.v2 as imageio
import numpy as np
import pytest

from rlhp.human.clip_worker import ClipError, ClipWorker


def solid(segment):
    """Frames ``[L, 16, 16, 3]``: each a grey of the segment's value."""
    return [np.full((16, 16, 3), v, np.uint8) for v in segment]


def test_clips_are_written_in_order_on_the_worker_thread(tmp_path, until):
    threads, done = {}, []

    def make():
        threads["make"] = threading.get_ident()
        def frames(segment):
            threads.setdefault("frames", set()).add(threading.get_ident())
            return solid(segment)
        return frames, 4

    worker = ClipWorker(make)
    worker.submit([(np.array([50, 50]), tmp_path / "a.mp4"), (np.array([200, 200]), tmp_path / "b.mp4")],
                  then=lambda: done.append((tmp_path / "a.mp4").exists() and (tmp_path / "b.mp4").exists()))
    until(lambda: done)
    assert done == [True]                                  # then() after both, in order
    assert threads["make"] != threading.get_ident() and threads["frames"] == {threads["make"]}
    assert abs(np.stack(imageio.mimread(tmp_path / "b.mp4")).mean() - 200) < 5
    worker.close()
    assert not worker.running
    assert not list(tmp_path.glob(".tmp-*"))               # written atomically


def test_an_error_in_the_worker_is_raised_on_the_callers_thread(tmp_path, until):
    def frames(segment):
        if segment[0] == 1:
            raise ValueError("no GL here")
        return solid(segment)

    worker = ClipWorker(lambda: (frames, 4))
    worker.submit([(np.array([1, 1]), tmp_path / "bad.mp4")])
    until(lambda: not worker.running)
    with pytest.raises(ClipError, match="ValueError: no GL here") as raised:
        worker.check()
    assert isinstance(raised.value.__cause__, ValueError)
    with pytest.raises(ClipError):
        worker.submit([(np.array([9, 9]), tmp_path / "next.mp4")])
    with pytest.raises(ClipError):
        worker.close()
    assert not (tmp_path / "bad.mp4").exists()


def test_close_stops_after_the_clip_in_hand(tmp_path):
    started, release = threading.Event(), threading.Event()

    def frames(segment):
        started.set()
        release.wait(10)
        return solid(segment)

    worker = ClipWorker(lambda: (frames, 4))
    worker.submit([(np.array([9, 9]), tmp_path / f"{i}.mp4") for i in range(5)])
    started.wait(10)
    threading.Timer(0.2, release.set).start()
    worker.close()
    assert not worker.running
    assert sorted(p.name for p in tmp_path.glob("*.mp4")) == ["0.mp4"]  # the rest dropped
