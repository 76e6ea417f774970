"""Sweeps: the grid of runs, one vmapped program, sharding over devices."""
import os
import subprocess
import sys

import numpy as np
import pytest

from rlhp import sweep
from rlhp.config import ConfigError
from rlhp.presets import preset

TINY = dict(total_steps=4096, num_envs=16, pretrain_updates=5, iterations_per_chunk=1)


def test_grid_crosses_seeds_and_axes():
    cfg, runs, keys, dyn = sweep.grid(preset("gridworld", **TINY), [0, 1], labels=[10, 40],
                                      query=["random", "entropy"])
    assert cfg.max_labels == 40 and len(runs) == 8 and keys.shape == (8, 2)
    assert runs[0] == {"labels": 10, "query": "random", "seed": 0}
    assert runs[-1] == {"labels": 40, "query": "entropy", "seed": 1}
    np.testing.assert_array_equal(dyn.labels, [10, 10, 40, 40] * 2)
    np.testing.assert_array_equal(dyn.query, [0, 2, 0, 2] * 2)  # QUERIES index
    assert dyn.learning_rate.shape == (8,)


@pytest.mark.parametrize("axes,message", [
    (dict(num_envs=[1, 2]), "cannot sweep 'num_envs'"),
    (dict(labels=[]), "axis 'labels' is empty"),
    (dict(query=["nope"]), "query='nope'"),
])
def test_grid_rejects_what_cannot_be_swept(axes, message):
    with pytest.raises(ConfigError, match=message):
        sweep.grid(preset("gridworld", **TINY), [0], **axes)


def test_sweep_runs_every_budget_in_one_program():
    result = sweep.sweep(preset("gridworld", **TINY), [0], labels=[12, 30])
    assert [r["labels"] for r in result.runs] == [12, 30]
    assert result.metrics["labels"].shape == (2, 4096 // (16 * 16))
    np.testing.assert_array_equal(result.metrics["labels"][:, -1], [12, 30])  # each its budget
    assert result.state(1).pref.db.filled.shape == (30,)


def test_envpool_cannot_be_swept():
    with pytest.raises(ConfigError, match="cannot be vmapped"):
        sweep.sweep(preset("hopper", reward="true"), [0, 1])


def test_sweep_shards_over_devices():
    code = ("from rlhp import sweep; from rlhp.presets import preset; import jax;"
            f"r = sweep.sweep(preset('gridworld', **{TINY!r}), [0, 1]);"
            "print(len(jax.devices()), len(r.states.iteration.sharding.device_set),"
            " r.metrics['labels'][:, -1].tolist())")
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split()[:2] == ["2", "2"], out.stdout
