import atexit
import os
import shutil
import tempfile

import pytest

# One persistent XLA compilation cache for the whole test session, shared with the CLI
# subprocesses the tests start (they inherit the variable): tests that build the same
# program (the same config on the same backend) compile it once. Set before jax is
# imported, which reads it at import.
if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
    _cache = tempfile.mkdtemp(prefix="rlhp-test-xla-cache-")
    atexit.register(shutil.rmtree, _cache, ignore_errors=True)
    os.environ["JAX_COMPILATION_CACHE_DIR"] = _cache


# The longest test files here, longest first (``--durations``, about 60-250 s each). With
# ``--dist loadfile`` a file runs on one worker, in collection order
# (``--no-loadscope-reorder``): starting the long ones first keeps both workers busy until
# the end instead of leaving one to finish a long file alone.
LONGEST_FIRST = ("test_lifecycle", "test_learned", "test_sweep", "test_sweep_cli",
                 "test_explain", "test_cli", "test_learner", "test_train", "test_browser")


def pytest_collection_modifyitems(config, items):
    """Long files first; slow tests run only when asked for with ``-m slow``."""
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.stem, len(rank)))
    if "slow" in (config.getoption("-m") or ""):
        return
    skip = pytest.mark.skip(reason="slow: run with `pytest -m slow`")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


def poll_until(condition, timeout: float = 60.0) -> None:
    """Wait until ``condition()`` holds (checked every 20 ms); fail after ``timeout`` s."""
    import time
    t0 = time.monotonic()
    while not condition():
        assert time.monotonic() - t0 < timeout, f"still not true after {timeout:.0f} s"
        time.sleep(0.02)


@pytest.fixture
def until():
    """``until(condition, timeout=60)``: wait for work done on another thread (the clip
    worker's clips)."""
    return poll_until
