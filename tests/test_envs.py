"""Every backend honours the one protocol: shapes, dtypes and the auto-reset convention."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rlhp.envs import EnvError, make_env, resolve_backend

B, T = 4, 120
# brax's Hopper compiles for 40-180 s here: opt-in (its preference episodes too,
# tests/test_episodes.py); its drawing and clips stay in the default suite
CASES = [("gridworld", "gridworld"), ("hopper", "envpool"),
         pytest.param("hopper", "brax", marks=pytest.mark.slow)]


def rollout(env, key):
    def body(carry, key):
        state = carry
        if env.spec.discrete:
            a = jax.random.randint(key, (B,), 0, env.spec.num_actions)
        else:
            a = jax.random.uniform(key, (B, *env.spec.action_shape), minval=-1, maxval=1)
        state, step = env.step(state, a)
        return state, step

    state = env.reset(key)
    first = env.obs(state)
    _, steps = jax.lax.scan(body, state, jax.random.split(key, T))
    return first, steps


@pytest.mark.parametrize("name,backend", CASES)
def test_protocol(name, backend):
    env = make_env(name, backend, B, seed=0)
    spec = env.spec
    assert spec.backend == backend and spec.num_envs == B
    first, steps = jax.jit(lambda k: rollout(env, k))(jax.random.PRNGKey(0))
    assert first.shape == (B, *spec.obs_shape) and first.dtype == jnp.float32
    assert steps.obs.shape == (T, B, *spec.obs_shape) and steps.obs.dtype == jnp.float32
    for flag in (steps.terminated, steps.truncated, steps.valid):
        assert flag.shape == (T, B) and flag.dtype == jnp.bool_
    assert steps.reward.shape == (T, B) and steps.reward.dtype == jnp.float32
    done = np.asarray(steps.terminated | steps.truncated)
    valid = np.asarray(steps.valid)
    reward = np.asarray(steps.reward)
    assert done.any(), "random actions should end some episodes within the test horizon"
    # auto-reset: the step after an episode ends is invalid, carries no reward and no flags
    np.testing.assert_array_equal(valid[1:], ~done[:-1])
    assert valid[0].all()
    assert (reward[~valid] == 0).all()
    assert not done[~valid].any()
    assert not (np.asarray(steps.terminated) & np.asarray(steps.truncated)).any()
    assert np.isfinite(np.asarray(steps.obs)).all()
    # one step keeps the state's types (weak types included): a state whose types change
    # makes every jitted function that takes it compile twice
    state = jax.eval_shape(env.reset, jax.random.PRNGKey(0))
    action = jnp.zeros((B, *spec.action_shape), jnp.int32 if spec.discrete else jnp.float32)
    after = jax.eval_shape(env.step, state, action)[0]
    avals = lambda tree: [(x.shape, x.dtype, x.weak_type) for x in jax.tree.leaves(tree)]  # noqa: E731
    assert avals(after) == avals(state)


def test_fresh_starts_differ():
    """Episodes restart from fresh random states, not one replayed start."""
    env = make_env("gridworld", "gridworld", B)
    _, steps = jax.jit(lambda k: rollout(env, k))(jax.random.PRNGKey(1))
    starts = np.asarray(steps.obs)[~np.asarray(steps.valid)].argmax(-1)
    assert len(set(starts.tolist())) > 3


def test_backend_resolution():
    assert resolve_backend("gridworld") == "gridworld"
    assert resolve_backend("hopper", "auto") in ("envpool", "brax")
    assert resolve_backend("swimmer", "auto") == "envpool"  # brax has no swimmer
    for bad in [("nope", "auto"), ("hopper", "nope"), ("swimmer", "brax"), ("hopper", "gridworld")]:
        with pytest.raises(EnvError):
            resolve_backend(*bad)


def test_envpool_preference_episodes_restart_after_a_fall():
    """Preference episodes on the real 1000-step horizon (``tests/test_episodes.py`` checks
    the wrapper's rules on both backends): no termination, every unhealthy step penalised
    (by ``fall_penalty``), and a fallen body restarts after DOWN_STEPS unhealthy steps (or
    never)."""
    from rlhp.envs import episodes

    def run(down_steps, steps=1010, fall_penalty=episodes.FALL_PENALTY):
        env = make_env("hopper", "envpool", B, seed=0, preference_episodes=True,
                       down_steps=down_steps, fall_penalty=fall_penalty)
        step = jax.jit(env.step)
        state = env.reset(jax.random.PRNGKey(0))
        rng = np.random.default_rng(0)
        out = []
        for _ in range(steps):
            a = jnp.asarray(rng.uniform(-1, 1, (B, 3)), jnp.float32)
            state, s = step(state, a)
            out.append(jax.tree.map(np.asarray, s))
        return jax.tree.map(lambda *x: np.stack(x), *out)

    s = run(episodes.DOWN_STEPS)
    assert not s.terminated.any()
    # the horizon is 1000 steps whatever happened inside the episode
    assert s.truncated[999].all() and not s.truncated[:999].any()
    assert (~s.valid[1000]).all() and s.valid[:1000].all() and s.valid[1001:].all()
    hurt = s.reward[:1000] < -5  # unhealthy steps: FALL_PENALTY and no healthy bonus
    # random actions fall within ~20 steps; with restarts they fall again and again
    starts = (np.abs(s.obs[:1000, :, 0] - 1.25) < 0.01) & (np.abs(s.obs[:1000, :, 5:]).max(-1) < 0.02)
    assert (starts.sum(0) >= 10).all()
    assert (hurt.sum(0) >= 10 * episodes.DOWN_STEPS).all()
    lying = run(0, steps=300, fall_penalty=100.0)  # without restarts the body stays down
    assert lying.reward[250:].max() < -95


def test_backflip_target_replaces_the_task():
    """``hopper-backflip``: Hopper's body, its reward the blog post's hand-written backflip
    target of each step's observation and action; a fall ends nothing (random actions
    topple Hopper within ~20 steps), and in preference episodes the teacher's reward is
    the target, with no fall penalty."""
    from rlhp.envs.envpool_env import backflip

    key = jax.random.PRNGKey(0)
    actions = jax.random.uniform(key, (T, B, 3), minval=-1, maxval=1)
    for preference in (False, True):
        env = make_env("hopper-backflip", "envpool", B, seed=0, preference_episodes=preference)
        state, rewards, obs = env.reset(key), [], []
        step = jax.jit(env.step)
        for a in actions:
            state, out = step(state, a)
            assert not bool((out.terminated | out.truncated).any())
            rewards.append(out.reward)
            obs.append(out.obs)
        obs, rewards = jnp.stack(obs), np.asarray(jnp.stack(rewards))
        assert (np.asarray(obs[-1, :, 0]) < 0.7).all()  # every body is down...
        want = np.asarray(jax.vmap(backflip)(obs, actions))
        np.testing.assert_allclose(rewards, want, rtol=1e-6, atol=1e-6)  # ...and unpenalised
        assert np.abs(rewards).max() > 1.0


def test_one_leg_target_on_a_body_without_a_health_rule():
    """``halfcheetah-oneleg`` builds (HalfCheetah takes no health arguments) and pays
    ``one_leg`` of each step's observation: most where the torso is pitched nose up."""
    from rlhp.envs.envpool_env import one_leg

    for preference in (False, True):
        env = make_env("halfcheetah-oneleg", "envpool", 2, seed=0, preference_episodes=preference)
        state, action = env.reset(jax.random.PRNGKey(0)), jnp.full((2, 6), 0.5)
        state, out = jax.jit(env.step)(state, action)
        np.testing.assert_allclose(np.asarray(out.reward), np.asarray(one_leg(out.obs, action)),
                                   rtol=1e-6)
    obs = jnp.zeros((3, 17)).at[:, 1].set(jnp.array([0.0, -0.8, -2.0]))
    pose = np.asarray(one_leg(obs, None))
    assert pose[1] == 1.0 and pose[0] < 0.01 and pose[2] < 0.01
