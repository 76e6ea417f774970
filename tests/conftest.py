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


def pytest_collection_modifyitems(config, items):
    """Slow tests run only when asked for with ``-m slow``."""
    if "slow" in (config.getoption("-m") or ""):
        return
    skip = pytest.mark.skip(reason="slow: run with `pytest -m slow`")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)
