"""experiments.seeds: runs settings x seeds as processes, tables them, and resumes."""
import json

from experiments import seeds


def test_seeds_tables_runs_reports_failures_and_resumes(tmp_path, capsys):
    argv = ["--env", "gridworld", "--steps", "2048", "--seeds", "0,1", "--parallel", "2",
            "--setting", "truth=--reward=true", "--setting", "broken=--teacher=nope",
            "--out", str(tmp_path)]
    seeds.main(argv)
    out = json.loads((tmp_path / "seeds.json").read_text())
    truth, broken = out["settings"]
    assert [r["seed"] for r in truth["runs"]] == [0, 1]
    returns = [r["true_return_mean"] for r in truth["runs"]]
    assert truth["mean"] == sum(returns) / 2
    assert all("error" in r for r in broken["runs"]) and broken["mean"] is None
    md = (tmp_path / "seeds.md").read_text()
    assert "| broken | `--teacher=nope` | failed | failed | - |" in md
    assert (tmp_path / "seeds.png").stat().st_size > 0
    # a second call reads the finished runs instead of repeating them
    summary = tmp_path / "runs" / "truth-s0" / "summary.json"
    stamp = summary.stat().st_mtime_ns
    seeds.main(argv)
    assert summary.stat().st_mtime_ns == stamp
    assert "truth seed 0" in capsys.readouterr().out
    # a setting whose arguments changed does not take the old runs for its own
    seeds.main(["--env", "gridworld", "--steps", "2048", "--seeds", "0", "--parallel", "1",
                "--setting", "truth=--reward=true --set gamma=0.5", "--out", str(tmp_path)])
    rerun = json.loads((tmp_path / "seeds.json").read_text())["settings"][0]["runs"][0]
    assert "holds another run" in rerun["error"] and "gamma" in rerun["error"]
    assert summary.stat().st_mtime_ns == stamp
