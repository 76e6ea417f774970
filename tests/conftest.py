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


# The files that take longest (over a minute each in CI), longest first. pytest-xdist
# hands whole files to its two workers in collection order, so running these first keeps
# one long file from being the only work left at the end.
LONGEST_FIRST = ("test_lifecycle.py", "test_sweep_cli.py", "test_sweep.py", "test_learned.py",
                 "test_cli.py", "test_browser.py", "test_episodes.py", "test_video.py",
                 "test_envs.py", "test_experiments.py", "test_human_resume.py")


def pytest_collection_modifyitems(config, items):
    """The longest files first (``LONGEST_FIRST``; the order within a file is kept); slow
    tests run only when asked for with ``-m slow``."""
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))
    if "slow" in (config.getoption("-m") or ""):
        return
    skip = pytest.mark.skip(reason="slow: run with `pytest -m slow`")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)
