"""Each benchmark runs end to end at its smallest setting and writes the promised keys.

The end-to-end runs compile Hopper programs (1-3 minutes each on a 2-core CPU) and are
marked slow: ``pytest -m slow``."""
import json

import jax
import jax.numpy as jnp
import pytest

from benchmarks import (conv, envpool_sweep, fit_products, flops, labels, rollout, scaling,
                        stages, tables, throughput)


def check(path, keys):
    out = json.loads(path.read_text())
    assert set(out) == {"machine", "results"} and out["machine"]["cpu_count"] >= 1
    assert out["results"]
    for row in out["results"]:
        for k in keys:
            assert k in row, k
    return out["results"]


@pytest.mark.slow
def test_throughput_tiny(tmp_path):
    throughput.main(["--tiny", "--repeats", "1", "--tasks", "gridworld,hopper",
                     "--json", str(tmp_path / "t.json")])
    rows = check(tmp_path / "t.json", ["env", "backend", "num_envs", "raw_steps_per_second",
                                       "train_steps_per_second", "ratio", "compile_seconds",
                                       "peak_rss_mb"])
    for r in rows:
        assert r["raw_steps_per_second"] > 0 and 0 < r["ratio"]
        assert r["ratio"] == r["train_steps_per_second"] / r["raw_steps_per_second"]


@pytest.mark.slow
def test_envpool_sweep_tiny(tmp_path):
    envpool_sweep.main(["--tiny", "--repeats", "1", "--separate", "2",
                        "--json", str(tmp_path / "e.json")])
    rows = check(tmp_path / "e.json", envpool_sweep.COLUMNS)
    assert [(r["members"], r["processes"]) for r in rows] == [(0, 1), (2, 1), (2, 2)]
    for r in rows:
        assert r["raw_steps_per_second"] > 0 and r["train_steps_per_second"] > 0
    assert rows[1]["per_member"] == rows[1]["train_steps_per_second"] / 2
    assert rows[2]["per_member"] == rows[2]["train_steps_per_second"] / 2


@pytest.mark.slow
def test_rollout_tiny(tmp_path):
    rollout.main(["--tiny", "--repeats", "1", "--json", str(tmp_path / "r.json")])
    rows = check(tmp_path / "r.json", rollout.COLUMNS)
    assert [r["what"] for r in rows][2:] == ["rollout (env + policy)", "full loop"]
    assert rows[1]["vs_raw_2_threads"] == 1.0 and all(r["steps_per_second"] > 0 for r in rows)


@pytest.mark.slow
def test_fit_products_tiny(tmp_path):
    fit_products.main(["--tiny", "--repeats", "1", "--json", str(tmp_path / "f.json")])
    rows = check(tmp_path / "f.json", fit_products.COLUMNS)
    assert len(rows) == 6 and all(r["gflops_per_second"] > 0 for r in rows)
    assert rows[0]["shape"] == "M=3 R=256 D=11 H=64"


@pytest.mark.slow
def test_labels_tiny(tmp_path):
    labels.main(["--tiny", "--repeats", "1", "--json", str(tmp_path / "l.json")])
    rows = check(tmp_path / "l.json", ["segment_length", "ensemble_size", "labels_per_second",
                                       "comparisons_per_second"])
    assert [(r["segment_length"], r["segments_buffered"]) for r in rows] == [
        (25, 256), (25, 1024), (50, 256), (50, 1024)]


@pytest.mark.slow
def test_scaling_tiny(tmp_path):
    scaling.main(["--tiny", "--repeats", "1", "--json", str(tmp_path / "s.json")])
    rows = check(tmp_path / "s.json", ["num_envs", "ensemble_size", "sweep_width",
                                       "train_steps_per_second", "relative_wall"])
    assert {r["factor"] for r in rows} == {"num_envs", "ensemble_size", "sweep_width",
                                          "sweep_width, 2-unit networks",
                                          "one batched tiny matmul", "minibatch permutations"}


@pytest.mark.slow
def test_conv_tiny(tmp_path):
    conv.main(["--tiny", "--repeats", "1", "--updates", "1", "--json", str(tmp_path / "c.json")])
    rows = check(tmp_path / "c.json", ["stage", "xla_conv_ms", "im2col_ms", "ratio"])
    assert [r["stage"] for r in rows] == ["reward fit (1 updates)", "A2C update",
                                          "full train_step"]
    assert all(r["xla_conv_ms"] > 0 and r["im2col_ms"] > 0 for r in rows)


@pytest.mark.slow
def test_stages_tiny(tmp_path):
    stages.main(["--tiny", "--repeats", "1", "--env", "gridworld", "--widths", "1,2",
                 "--json", str(tmp_path / "p.json")])
    rows = check(tmp_path / "p.json", ["stage", "sweep_width", "milliseconds", "share_of_step",
                                       "cost_vs_one_seed", "gflop", "floor_vs_one_seed"])
    assert len(rows) == 2 * 7 and {r["sweep_width"] for r in rows} == {1, 2}
    assert all(r["milliseconds"] > 0 for r in rows)


def test_matmul_flops_by_hand():
    """A [5, 3] @ [3, 4] product is 2*5*4*3 = 120 FLOPs; a scan of 6 repeats it 6 times,
    vmap over 2 doubles it, a cond counts its larger branch, elementwise work counts 0."""
    x, w = jnp.ones((5, 3)), jnp.ones((3, 4))
    assert flops.matmul_flops(lambda x, w: jnp.tanh(x @ w) + 1, x, w) == 120
    scanned = lambda x, w: jax.lax.scan(lambda c, _: (c, x @ w), 0.0, None, length=6)[1]
    assert flops.matmul_flops(scanned, x, w) == 720
    assert flops.matmul_flops(jax.vmap(scanned, (0, None)), jnp.stack([x, x]), w) == 1440
    branches = lambda p, x, w: jax.lax.cond(p, lambda: (x @ w) @ w.T, lambda: x @ jnp.ones((3, 3)))
    assert flops.matmul_flops(branches, True, x, w) == 120 + 2 * 5 * 3 * 4
    grad = jax.grad(lambda w: (x @ w).sum())
    assert flops.matmul_flops(grad, w) == 240  # forward and transpose products


def test_tables_from_the_stored_results(capsys):
    tables.main([])
    out = capsys.readouterr().out
    for name in tables.FILES:
        assert f"### {name}" in out
    assert "| hopper | envpool | 16 |" in out
