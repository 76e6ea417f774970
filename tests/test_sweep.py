"""Sweeps: the grid of runs, one vmapped program, sharding over devices."""
import json
import os
import subprocess
import sys

import jax
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


def test_atari_cannot_be_swept():
    with pytest.raises(ConfigError, match="sweeps of Atari games are not built yet"):
        sweep.sweep(preset("pong"), [0, 1])


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


def test_a_member_alone_gets_its_inputs_in_the_sweep():
    """A member's key and dynamic config do not depend on the other members; the static
    config (the database sized for the largest budget) is what a member alone must share."""
    cfg = preset("gridworld", **TINY)
    shared, runs, keys, dyn = sweep.grid(cfg, [0, 1], labels=[10, 40], query=["random", "entropy"])
    for i, run in enumerate(runs):
        alone, _, key, mine = sweep.grid(shared, [run["seed"]], labels=[run["labels"]],
                                         query=[run["query"]])
        assert alone == shared
        np.testing.assert_array_equal(key[0], keys[i])
        for a, b in zip(jax.tree.leaves(mine), jax.tree.leaves(dyn)):
            assert a[0] == b[i]


# Four members on four devices, then each member alone (unvmapped, one device's program, the
# sweep's static config); prints the programs lowered during the sweep and both metrics.
MATCH = """
import json, jax, numpy as np
from jax._src import dispatch, monitoring
from rlhp import sweep
from rlhp.presets import preset
lowered = []
monitoring.register_event_duration_secs_listener(lambda event, _, fun_name="", **kw:
    lowered.append(fun_name) if event == dispatch.JAXPR_TO_MLIR_MODULE_EVENT else None)
cfg = preset("gridworld", **TINY)
r = sweep.sweep(cfg, [0, 1], labels=[12, 30])
in_sweep = list(lowered)
cfg, runs, keys, dyn = sweep.grid(cfg, [0, 1], labels=[12, 30])
train = jax.jit(sweep.vmappable_trainer(cfg).train)
alone = [train(keys[i], jax.tree.map(lambda x: x[i], dyn))[1] for i in range(len(runs))]
print(json.dumps(dict(devices=len(r.states.iteration.sharding.device_set), lowered=in_sweep,
    sweep={k: np.asarray(v).tolist() for k, v in r.metrics.items()},
    alone={k: [np.asarray(m[k]).tolist() for m in alone] for k in r.metrics})))
"""
EXACT = ("labels", "comparisons", "episodes", "env_steps")  # counts: equal all run


@pytest.mark.slow
def test_sharded_sweep_matches_members_one_by_one():
    """Each member of a 4-device sweep gets the result of that member trained alone with
    the sweep's static config, and the sweep compiles one program. vmap and sharding change
    XLA's summation order, so floats agree to float32 rounding (~1e-7 at the first
    iteration), which training amplifies from the second iteration on: counts are compared
    over the whole run, every figure at the first iteration."""
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=4"}
    out = subprocess.run([sys.executable, "-c", f"TINY = {TINY!r}" + MATCH], env=env,
                         capture_output=True, text=True, timeout=1800)
    assert out.returncode == 0, out.stderr[-2000:]
    got = json.loads(out.stdout.splitlines()[-1])
    assert got["devices"] == 4
    assert got["lowered"].count("jit(train)") == 1, got["lowered"]
    swept = {k: np.asarray(v, float) for k, v in got["sweep"].items()}
    alone = {k: np.asarray(v, float) for k, v in got["alone"].items()}
    for name in EXACT:
        np.testing.assert_array_equal(swept[name], alone[name], err_msg=name)
    for name in swept:
        assert swept[name].shape == alone[name].shape == (4, 4096 // (16 * 16)), name
        np.testing.assert_allclose(swept[name][:, 0], alone[name][:, 0], rtol=1e-5, atol=1e-6,
                                   err_msg=name)
