"""Each benchmark runs end to end at its smallest setting and writes the promised keys."""
import json

from benchmarks import labels, scaling, stages, throughput


def check(path, keys):
    out = json.loads(path.read_text())
    assert set(out) == {"machine", "results"} and out["machine"]["cpu_count"] >= 1
    assert out["results"]
    for row in out["results"]:
        for k in keys:
            assert k in row, k
    return out["results"]


def test_throughput_tiny(tmp_path):
    throughput.main(["--tiny", "--repeats", "1", "--tasks", "gridworld,hopper",
                     "--json", str(tmp_path / "t.json")])
    rows = check(tmp_path / "t.json", ["env", "backend", "num_envs", "raw_steps_per_second",
                                       "train_steps_per_second", "ratio", "compile_seconds",
                                       "peak_rss_mb"])
    for r in rows:
        assert r["raw_steps_per_second"] > 0 and 0 < r["ratio"]
        assert r["ratio"] == r["train_steps_per_second"] / r["raw_steps_per_second"]


def test_labels_tiny(tmp_path):
    labels.main(["--tiny", "--repeats", "1", "--json", str(tmp_path / "l.json")])
    rows = check(tmp_path / "l.json", ["segment_length", "ensemble_size", "labels_per_second",
                                       "comparisons_per_second"])
    assert [(r["segment_length"], r["segments_buffered"]) for r in rows] == [
        (25, 256), (25, 1024), (50, 256), (50, 1024)]


def test_scaling_tiny(tmp_path):
    scaling.main(["--tiny", "--repeats", "1", "--json", str(tmp_path / "s.json")])
    rows = check(tmp_path / "s.json", ["num_envs", "ensemble_size", "sweep_width",
                                       "train_steps_per_second", "relative_wall"])
    assert {r["factor"] for r in rows} == {"num_envs", "ensemble_size", "sweep_width",
                                          "sweep_width, 2-unit networks",
                                          "one batched tiny matmul", "minibatch permutations"}


def test_stages_tiny(tmp_path):
    stages.main(["--tiny", "--repeats", "1", "--env", "gridworld", "--widths", "1,2",
                 "--json", str(tmp_path / "p.json")])
    rows = check(tmp_path / "p.json", ["stage", "sweep_width", "milliseconds", "share_of_step",
                                       "cost_vs_one_seed"])
    assert len(rows) == 2 * 7 and {r["sweep_width"] for r in rows} == {1, 2}
    assert all(r["milliseconds"] > 0 for r in rows)
