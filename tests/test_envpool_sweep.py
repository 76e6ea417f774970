"""envpool sweeps: one pool per member, stepped in one host callback under the sweep's vmap
(``rlhp.envs.members``); each member gets what its run alone gets."""
import csv
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rlhp import sweep
from rlhp.envs import make_env
from rlhp.presets import preset

B, T, SEEDS = 2, 60, (3, 5)


def actions(seed):
    """Random actions ``[T, B, 3]`` in Hopper's range, the same for a member and its run."""
    return jnp.asarray(np.random.default_rng(seed).uniform(-1, 1, (T, B, 3)), jnp.float32)


def play(env, key, acts):
    """Reset, then step through ``acts [T, B, A]``: every ``Step`` ``[T, B, ...]``."""
    state = env.reset(key)
    return jax.lax.scan(lambda s, a: env.step(s, a), state, acts)[1]


@pytest.mark.parametrize("preference", [True, False], ids=["preference", "standard"])
def test_members_step_their_own_runs_pools(preference):
    """A 2-member env, vmapped, steps each member's pool as that member's run alone steps
    its own (same seed, same actions): every figure equal, falls, restarts and episode ends
    included."""
    kw = dict(preference_episodes=preference, down_steps=5)
    keys = jnp.stack([jax.random.PRNGKey(s) for s in SEEDS])
    acts = jnp.stack([actions(s) for s in SEEDS])
    env = make_env("hopper", "envpool", B, seed=list(SEEDS), **kw)
    assert env.spec.members == 2 and env.spec.vmappable
    both = jax.jit(jax.vmap(lambda k, a: play(env, k, a)))(keys, acts)
    for m, seed in enumerate(SEEDS):
        alone = make_env("hopper", "envpool", B, seed=seed, **kw)
        assert alone.spec.members == 0 and not alone.spec.vmappable
        mine = jax.jit(lambda k, a: play(alone, k, a))(keys[m], acts[m])
        for name, a, b in zip(mine.__dataclass_fields__, jax.tree.leaves(mine),
                              jax.tree.leaves(both)):
            np.testing.assert_array_equal(np.asarray(b)[m], a, err_msg=name)
    assert not np.array_equal(both.obs[0], both.obs[1])  # two pools, not one copied
    if preference:  # restarts inside episodes went through the host for some envs only
        hurt = np.asarray(both.reward) < -5
        assert hurt.sum() >= 2 * B * 5
    else:
        assert (~np.asarray(both.valid)).any()  # auto-resets after falls


ON_TWO_DEVICES = """
import sys, jax
sys.path.insert(0, sys.argv[1])
import test_envpool_sweep as t
from rlhp import sweep
from rlhp.config import ConfigError
assert len(jax.devices()) == 2
for preference in (True, False):
    t.test_members_step_their_own_runs_pools(preference)
try:
    sweep.vmappable_trainer(t.preset("hopper", num_envs=2), seeds=[0, 1, 2])
except ConfigError as e:
    print(e)
"""


def test_members_step_their_own_runs_pools_on_two_devices():
    """The same on 2 devices: each device steps its own member's pool, in one callback of
    its own (``shard_map``), the member index from its place on the mesh; members that do
    not divide over the devices are refused with one line."""
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
    out = subprocess.run([sys.executable, "-c", ON_TWO_DEVICES, os.path.dirname(__file__)],
                         env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == ("an envpool sweep's 3 members do not divide over the 2 "
                                  "devices; give a multiple of 2 runs"), out.stdout


def test_members_env_vmapped_over_another_count_is_refused():
    env = make_env("hopper", "envpool", B, seed=list(SEEDS))
    keys = jnp.stack([jax.random.PRNGKey(s) for s in (0, 1, 2)])
    with pytest.raises(ValueError, match="2 member pools vmapped over 3"):
        jax.eval_shape(jax.vmap(env.reset), keys)


# Hopper at the smallest size that runs the whole loop: one iteration of 2 envs x 8 steps.
TINY = dict(num_envs=2, rollout_length=8, total_steps=16, hidden=(8,), reward_hidden=(8,),
            labels=4, prefill_iterations=1, pretrain_updates=2, pretrain_rounds=1,
            reward_updates=1, update_epochs=1, num_minibatches=1, segment_length=4,
            reward_batch=2, ensemble_size=2, segment_capacity=8, eval_episodes=2)
COUNTS = ("labels", "comparisons", "episodes", "env_steps")
# A tiny sweep's learner state and counts, saved where argv[1] says (on as many devices as
# XLA_FLAGS gives): the policy's and the reward model's leaves by path, and the counts.
SWEEP = """
import sys, jax, numpy as np
from rlhp import sweep
from rlhp.presets import preset
r = sweep.sweep(preset("hopper", **TINY), [0, 1])
parts = jax.tree_util.tree_leaves_with_path(dict(agent=r.states.agent, pref=r.states.pref))
np.savez(sys.argv[1], devices=len(r.states.iteration.sharding.device_set),
         **{jax.tree_util.keystr(p): x for p, x in parts}, **{k: r.metrics[k] for k in COUNTS})
"""


@pytest.mark.slow
def test_envpool_sweep_matches_runs_alone():
    """A 2-seed Hopper sweep on envpool against each seed's run alone (its own pool,
    seeded as ``rlhp.run`` seeds it, and the unvmapped program): after the first iteration
    the policy, the reward model and the label counts agree, floats to float32 rounding
    (vmap changes XLA's summation order). About 3 minutes here, mostly compiling."""
    from rlhp.run import env_seed
    from rlhp.train import make_train

    cfg = preset("hopper", **TINY)
    result = sweep.sweep(cfg, [0, 1])
    cfg, runs, keys, dyn = sweep.grid(cfg, [0, 1])
    assert cfg.rl_iterations == 1
    for i, run in enumerate(runs):
        env = make_env("hopper", "envpool", cfg.num_envs, seed=env_seed(run["seed"]),
                       preference_episodes=True, down_steps=cfg.down_steps,
                       fall_penalty=cfg.fall_penalty)
        state, metrics = jax.jit(make_train(cfg, env).train)(
            keys[i], jax.tree.map(lambda x: x[i], dyn))
        member = result.state(i)
        for part in ("agent", "pref"):
            for a, b in zip(jax.tree.leaves(getattr(state, part)),
                            jax.tree.leaves(getattr(member, part))):
                np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-6, err_msg=part)
        for name in COUNTS:
            np.testing.assert_array_equal(result.metrics[name][i], metrics[name], err_msg=name)
        assert metrics["labels"][-1] > 0
    # the members are two runs, not one copied
    first = [jax.tree.leaves(result.state(i).agent)[0] for i in (0, 1)]
    assert not np.allclose(*first)


# The tiny Hopper sweep through ``python -m rlhp.sweep`` (2 seeds, 2 iterations), less
# --labels and --out.
COMMAND = ["--env", "hopper", "--backend", "envpool", "--seeds", "2", "--steps", "32",
           *(a for k, v in TINY.items() if k not in ("total_steps", "labels")
             for a in ("--set", f"{k}={list(v) if isinstance(v, tuple) else v}"))]


@pytest.mark.slow
def test_command_sweeps_hopper_on_envpool(tmp_path, capsys):
    """``python -m rlhp.sweep --env hopper`` end to end at a tiny size: both programs (the
    learned reward and the true-reward baseline) on envpool, a row per member, and the
    same command again continues (the pools re-seeded, the episodes restarted) to the same
    rows. About a minute here, mostly compiling."""
    argv = [*COMMAND, "--labels", "0,4", "--out", str(tmp_path)]
    assert sweep.main(argv) == 0
    rows = list(csv.DictReader(open(tmp_path / "sweep.csv")))
    assert sorted((r["program"], r["seed"]) for r in rows) == [
        ("learned", "0"), ("learned", "1"), ("true", "0"), ("true", "1")]
    assert all(float(r["labels_asked"]) == 4 for r in rows if r["program"] == "learned")
    assert all(np.isfinite(float(r["true_return_mean"])) for r in rows)
    before = (tmp_path / "sweep.csv").read_text()
    capsys.readouterr()
    assert sweep.main(argv) == 0
    assert "learned: continuing from iteration 2" in capsys.readouterr().err
    assert (tmp_path / "sweep.csv").read_text() == before


@pytest.mark.slow
def test_envpool_sweep_on_two_devices_matches_one(tmp_path):
    """The 2-member Hopper sweep sharded over 2 devices (each stepping its own member's
    pool) ends where the same sweep on 1 device does: policy, reward model and comparison
    database to float32 rounding, counts equal. Queries are random: disagreement ranks the
    candidate pairs by the ensemble's spread, which at this size is close enough between
    pairs for rounding (the two programs sum in different orders) to pick other pairs.
    About 2.5 minutes here, mostly compiling."""
    code = f"TINY, COUNTS = {dict(TINY, query='random')!r}, {COUNTS!r}" + SWEEP
    procs = {n: subprocess.Popen(
        [sys.executable, "-c", code, str(tmp_path / f"{n}.npz")], stderr=subprocess.PIPE,
        text=True, env={**os.environ,
                        "XLA_FLAGS": f"--xla_force_host_platform_device_count={n}"})
        for n in (1, 2)}
    for p in procs.values():
        assert p.wait(timeout=1200) == 0, p.stderr.read()[-2000:]
    one, two = (np.load(tmp_path / f"{n}.npz") for n in (1, 2))
    assert one["devices"] == 1 and two["devices"] == 2
    leaves = [k for k in one.files if k.startswith("[")]
    assert len(leaves) > 40
    for k in leaves:
        np.testing.assert_allclose(two[k], one[k], rtol=1e-5, atol=1e-6, err_msg=k)
    for k in COUNTS:
        np.testing.assert_array_equal(two[k], one[k], err_msg=k)
    assert (one["labels"][:, -1] > 0).all()
    policy = one["['agent'].params['params']['MLP_0']['Dense_0']['kernel']"]
    assert not np.allclose(policy[0], policy[1])  # two runs, not one copied


@pytest.mark.slow
def test_two_processes_sweep_hopper_as_one(tmp_path):
    """``--distributed`` over two local CPU processes, each making and stepping the pool of
    the member it holds: the rows are those of one process with two devices, the same
    split (about 5 minutes here beside two training runs, mostly compiling)."""
    from sweep_processes import two_processes_and_one
    two, one = two_processes_and_one([*COMMAND, "--labels", "4"], tmp_path)
    assert len(two) == 2 and two == one
    assert len({r["true_return_mean"] for r in two}) == 2
