"""A helper for tests of ``python -m rlhp.sweep --distributed``: the same command over two
local CPU processes (loopback, gloo) and in one process with two devices (the same split
of the members)."""
import csv
import os
import socket
import subprocess
import sys


def two_processes_and_one(argv, tmp_path) -> tuple[list[dict], list[dict]]:
    """Run ``python -m rlhp.sweep ARGV`` as two processes into ``tmp_path/two`` and as one
    with two devices into ``tmp_path/one``, all three at once; returns the rows of
    ``sweep.csv`` of each, two processes first."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    run = lambda args, env=None: subprocess.Popen(  # noqa: E731
        [sys.executable, "-m", "rlhp.sweep", *argv, *args], env={**os.environ, **(env or {})},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    procs = [run(["--out", str(tmp_path / "two"), "--distributed", "--coordinator",
                  f"127.0.0.1:{port}", "--num-processes", "2", "--process-id", str(i)])
             for i in (0, 1)]
    procs.append(run(["--out", str(tmp_path / "one")],
                     {"XLA_FLAGS": "--xla_force_host_platform_device_count=2"}))
    for p in procs:
        out = p.communicate(timeout=1800)[0]
        assert p.returncode == 0, out[-2000:]
    return tuple(list(csv.DictReader(open(tmp_path / d / "sweep.csv"))) for d in ("two", "one"))
