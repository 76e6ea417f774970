"""Speed and memory benchmarks: ``python -m benchmarks.NAME --json OUT``."""
