"""Preference episodes (``rlhp.envs.episodes``): one wrapper, the same rules on brax and
envpool, its clock in JAX state."""
import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rlhp.envs import brax_env, envpool_env
from rlhp.envs.base import Task
from rlhp.envs.episodes import minus_rounded_once, preference_episodes

B, H, DOWN, PENALTY, T = 2, 60, 5, 7.0, 130  # T covers two horizons and the resets after
# Restarts seen in the rollout, at least: random actions topple envpool's Hopper within
# ~20 steps, brax's (spring pipeline) more slowly (10 unhealthy steps in 2 x 130 here).
MIN_RESTARTS = {"envpool": 2 * B, "brax": 1}


def test_minus_rounded_once_rounds_like_float64():
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(0, 3, 20_000), rng.uniform(-20, 20, 20_000)])
    hi = x.astype(np.float32)
    lo = (x - hi).astype(np.float32)
    for c in (10.0, 100.0, 7.0, 0.5):
        got = jax.jit(minus_rounded_once)(hi, lo, jnp.float32(c))
        np.testing.assert_array_equal(np.asarray(got), (x - c).astype(np.float32))
    # rounding hi - c alone (twice in all) differs in the last bit on some of these
    assert ((hi - np.float32(10.0)) != (x - 10.0).astype(np.float32)).any()
    np.testing.assert_array_equal(np.asarray(minus_rounded_once(hi, np.zeros_like(lo), 3.0)),
                                  hi - np.float32(3.0))


def tapped(task: Task) -> Task:
    """``task`` whose state also holds the last ``TaskStep``, so a rollout can read what
    the backend reported beside what the wrapper made of it."""
    def step(state, action):
        inner, out = task.step(state[0], action)
        return (inner, out), out

    _, first = jax.eval_shape(task.step, jax.eval_shape(task.reset, jax.random.PRNGKey(0)),
                              jnp.zeros((task.spec.num_envs, *task.spec.action_shape)))
    blank = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), first)
    spec = dataclasses.replace(task.spec, max_episode_steps=H)
    return Task(spec, lambda k: (task.reset(k), blank), step,
                lambda s, m: (task.restart(s[0], m), s[1]), lambda s: task.obs(s[0]))


def make_task(backend):
    return (brax_env.task("hopper", B) if backend == "brax"
            else envpool_env.task("hopper", B, seed=0))


def rollout_fn(env):
    """``(state, key) -> (final state, per step (state, Step))`` over T random actions."""
    def run(state, key):
        def body(state, k):
            a = jax.random.uniform(k, (B, *env.spec.action_shape), minval=-1, maxval=1)
            state, step = env.step(state, a)
            return state, (state, step, a)
        return jax.lax.scan(body, state, jax.random.split(key, T))
    return run


# brax's case compiles a brax Hopper rollout and its standard step (~90 s here): opt-in
@pytest.fixture(scope="module", params=[pytest.param("brax", marks=pytest.mark.slow), "envpool"])
def episodes(request):
    """``(backend, env, run, key, start, (final state, per step (state, Step, action)))``:
    one compiled rollout per backend from ``start = env.reset(key)``; on brax ``run`` is
    vmapped over seeds (the wrapper stays vmappable) and called on one."""
    env = preference_episodes(tapped(make_task(request.param)), DOWN, PENALTY)
    run = rollout_fn(env)
    key = jax.random.PRNGKey(0)
    if request.param == "brax":
        one = lambda tree: jax.tree.map(lambda x: x[0], tree)  # noqa: E731
        many = lambda tree: jax.tree.map(lambda x: x[None], tree)  # noqa: E731
        vrun, vreset = jax.vmap(run), jax.vmap(env.reset)
        # committed inputs throughout (start, final and a restored state alike), so the
        # rollout compiles once
        put = lambda tree: jax.device_put(tree, jax.devices()[0])  # noqa: E731
        run_one = jax.jit(lambda s, k: one(vrun(many(s), many(k))))
        run, reset = (lambda s, k: run_one(put(s), put(k))), jax.jit(lambda k: one(vreset(many(k))))
    else:
        run, reset = jax.jit(run), env.reset
    start = reset(key)
    return request.param, env, run, key, start, run(start, jax.random.PRNGKey(1))


def test_fall_penalty_exactly_on_unhealthy_steps(episodes):
    backend, *_, (_, (state, step, _)) = episodes
    out = jax.tree.map(np.asarray, state.task[1])  # what the task reported each step
    valid, fallen = np.asarray(step.valid), ~out.healthy
    # both kinds of step
    assert fallen[valid].sum() >= DOWN * MIN_RESTARTS[backend] and (~fallen[valid]).sum() > 40
    seen = out.seen.astype(np.float64) + out.seen_lo
    want = np.where(fallen, seen - PENALTY, seen).astype(np.float32)
    np.testing.assert_array_equal(np.asarray(step.reward)[valid], want[valid])
    assert (np.asarray(step.reward)[~valid] == 0).all()


def test_fixed_horizon_clock_in_state(episodes):
    *_, (_, (state, step, _)) = episodes
    t, trunc, valid = (np.asarray(x) for x in (state.t, step.truncated, step.valid))
    assert not np.asarray(step.terminated).any()  # a fall never ends the episode
    expected_t = np.r_[np.arange(1, H + 1), 0, np.arange(1, H + 1), 0, np.arange(1, T - 2 * H - 1)]
    np.testing.assert_array_equal(t, np.repeat(expected_t[:, None], B, 1))
    assert trunc[[H - 1, 2 * H]].all() and trunc.sum() == 2 * B
    assert (~valid[[H, 2 * H + 1]]).all() and valid.sum() == (T - 2) * B


def test_restart_after_down_steps(episodes):
    """A fallen body lies DOWN unhealthy steps, then restarts from a fresh start state
    inside the same episode; the count lives in the state."""
    backend, *_, (_, (state, step, _)) = episodes
    out = jax.tree.map(np.asarray, state.task[1])
    down, obs = np.asarray(state.down), np.asarray(step.obs)
    valid, trunc = np.asarray(step.valid), np.asarray(step.truncated)
    count, restarts = np.zeros(B, int), 0
    for i in range(T):
        count = np.where(valid[i], count + ~out.healthy[i], 0)
        up = (count >= DOWN) & ~trunc[i]
        start = ~valid[i] | up
        # where the body restarts, the step's observation is a start pose (standing, still)
        assert (np.abs(obs[i, start, 0] - 1.25) < 0.01).all()
        assert (np.abs(obs[i, start, 5:]).max(-1) < 0.02).all()
        count = np.where(start, 0, count)
        np.testing.assert_array_equal(down[i], count)
        restarts += int(up.sum())
    assert restarts >= MIN_RESTARTS[backend]  # within episodes (envpool: again and again)


def test_teacher_never_sees_the_control_cost(episodes):
    """The teacher's reward is the standard task's reward with the control cost added
    back: the standard task from the same start states with the same actions, compared
    while no body has fallen."""
    backend, _, _, key, _, (_, (state, step, action)) = episodes
    std = (brax_env.make("hopper", B) if backend == "brax"
           else envpool_env.make("hopper", B, seed=0))
    # a committed start, like the jitted step's outputs, so the step compiles once
    s, std_step = jax.device_put(std.reset(key), jax.devices()[0]), jax.jit(std.step)
    n = 6
    assert np.asarray(state.task[1].healthy[:n]).all()
    for i in range(n):
        s, out = std_step(s, action[i])
    np.testing.assert_allclose(np.asarray(out.obs), np.asarray(step.obs[n - 1]), atol=1e-5)
    ctrl = 1e-3 * np.sum(np.asarray(action[n - 1], np.float64) ** 2, -1)
    assert (ctrl > 3e-4).all()
    np.testing.assert_allclose(np.asarray(step.reward[n - 1]) - np.asarray(out.reward), ctrl,
                               atol=1e-5)


def test_clock_checkpoints_with_the_state(episodes, tmp_path):
    """The wrapper's state (clock, down count, the task's state) round-trips through the
    run's checkpointer; on brax, where the whole env state is JAX, the run continues
    exactly as it would have."""
    from rlhp.outputs.checkpoint import Checkpointer

    backend, env, run, _, start, (final, _) = episodes
    ckpt = Checkpointer(tmp_path)
    ckpt.save(1, final, {"iteration": 1})
    ckpt.close()
    restored, _ = Checkpointer(tmp_path).restore(jax.eval_shape(lambda: final))
    jax.tree.map(np.testing.assert_array_equal, restored, final)
    assert int(np.asarray(restored.t).min()) > 0
    if backend == "brax":
        key = jax.random.PRNGKey(2)
        jax.tree.map(np.testing.assert_array_equal, run(restored, key)[1][1],
                     run(final, key)[1][1])


@pytest.mark.parametrize("name", ("inverted_pendulum", "inverted_double_pendulum"))
def test_a_pendulums_terminal_state_is_a_fall_that_restarts_at_once(name):
    """The pole past its limit costs DOWN fall penalties (a fall's price on the other
    tasks) and restarts the pendulum on the same step; the episode runs on to its horizon
    (no terminal signal for the learner)."""
    task = tapped(envpool_env.task(name, B, seed=0))
    env = preference_episodes(task, DOWN, PENALTY)
    state, (states, step, _) = jax.jit(rollout_fn(env))(env.reset(jax.random.PRNGKey(0)),
                                                        jax.random.PRNGKey(1))
    out = jax.tree.map(np.asarray, states.task[1])
    valid, obs = np.asarray(step.valid), np.asarray(step.obs)
    fell = out.terminated & valid
    assert fell.sum() >= 2 * B  # random actions topple a pendulum within ~10-30 steps
    assert not np.asarray(step.terminated).any()
    assert (~valid[[H, 2 * H + 1]]).all() and valid.sum() == (T - 2) * B  # horizons only
    seen = out.seen.astype(np.float64) + out.seen_lo
    np.testing.assert_array_equal(np.asarray(step.reward)[fell],
                                  (seen - DOWN * PENALTY).astype(np.float32)[fell])
    np.testing.assert_array_equal(np.asarray(step.reward)[valid & ~fell],
                                  seen.astype(np.float32)[valid & ~fell])
    # the step's observation is a start state (within the reset noise), and the next step
    # moves from it under its action rather than resetting again
    # (cart position and pole angle or its sine); at the horizon the episode ends instead
    restarted = fell & ~np.asarray(step.truncated)
    noise = {"inverted_pendulum": 0.01, "inverted_double_pendulum": 0.1}[name]  # v5 resets
    assert (np.abs(obs[..., :2]).max(-1) <= noise)[restarted].all()
    i, b = np.nonzero(restarted[:-1])
    assert i.size and (np.abs(obs[i + 1, b] - obs[i, b]).max(-1) > 1e-3).all()
