import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rlhp import normalize
from rlhp.agents import ppo

GAMMA, LAM = 0.9, 0.5


def hand_gae():
    """One env, T=4. Step 1 terminates, step 3 is truncated (bootstraps from its final obs).

    r = [1, 2, 3, 4], V(o_t) = [0.5, 1, 0.25, 2], V(o_{t+1}) = [1, 9, 2, 3]
    deltas: d0 = 1 + .9*1 - .5 = 1.4          (continues)
            d1 = 2 + 0 - 1 = 1.0              (terminated: no bootstrap, stops)
            d2 = 3 + .9*2 - .25 = 4.55        (continues)
            d3 = 4 + .9*3 - 2 = 4.7           (truncated: bootstraps, stops)
    A3 = 4.7; A2 = 4.55 + .45*4.7 = 6.665; A1 = 1.0; A0 = 1.4 + .45*1.0 = 1.85
    """
    reward = jnp.array([[1.0], [2.0], [3.0], [4.0]])
    value = jnp.array([[0.5], [1.0], [0.25], [2.0]])
    next_value = jnp.array([[1.0], [9.0], [2.0], [3.0]])
    term = jnp.array([[False], [True], [False], [False]])
    trunc = jnp.array([[False], [False], [False], [True]])
    expected = np.array([[1.85], [1.0], [6.665], [4.7]])
    return (reward, value, next_value, term, trunc), expected


@pytest.mark.parametrize("jit", [False, True])
def test_gae_matches_hand_computation(jit):
    args, expected = hand_gae()
    fn = jax.jit(ppo.gae) if jit else ppo.gae
    adv, target = fn(*args, GAMMA, LAM)
    np.testing.assert_allclose(adv, expected, rtol=1e-6)
    np.testing.assert_allclose(target, expected + np.asarray(args[1]), rtol=1e-6)


def test_gae_batches_independently():
    args, expected = hand_gae()
    two = [jnp.concatenate([a, a[::-1] * 0 + a], axis=1) for a in args]
    adv, _ = ppo.gae(*two, GAMMA, LAM)
    np.testing.assert_allclose(adv[:, :1], expected, rtol=1e-6)
    np.testing.assert_allclose(adv[:, 1:], expected, rtol=1e-6)


def test_masked_mean_ignores_invalid_steps():
    x = jnp.array([1.0, 100.0, 3.0])
    assert float(ppo.masked_mean(x, jnp.array([True, False, True]))) == pytest.approx(2.0)


def test_running_stats_match_numpy():
    rng = np.random.default_rng(0)
    a, b = rng.normal(2, 3, (50, 2)), rng.normal(-1, 1, (70, 2))
    mask = np.ones(70, bool); mask[:20] = False
    stats = normalize.update(normalize.update(normalize.init((2,)), jnp.asarray(a)),
                             jnp.asarray(b), jnp.asarray(mask))
    both = np.concatenate([a, b[20:]])
    np.testing.assert_allclose(stats.mean, both.mean(0), rtol=1e-3)
    np.testing.assert_allclose(stats.var, both.var(0), rtol=1e-3)


def test_running_stats_window_follows_recent_rows():
    """With a window the old statistics count as at most that many rows: after a shift in
    the data they move to the new rows, while the all-time statistics stay in between."""
    rng = np.random.default_rng(1)
    windowed = everything = normalize.init()
    for t in range(40):
        x = jnp.asarray(rng.normal(0.0 if t < 20 else 10.0, 1.0 if t < 20 else 0.1, 100))
        windowed = normalize.update(windowed, x, window=200)
        everything = normalize.update(everything, x)
    assert float(windowed.mean) == pytest.approx(10.0, abs=0.05)
    assert float(jnp.sqrt(windowed.var)) < 0.3  # the new rows' std is 0.1
    assert float(everything.mean) == pytest.approx(5.0, abs=0.2)
    assert float(jnp.sqrt(everything.var)) > 4
    # one step with a window as large as the count is the exact update
    a, b = rng.normal(size=30), rng.normal(size=20)
    s = normalize.update(normalize.update(normalize.init(), jnp.asarray(a)), jnp.asarray(b),
                         window=30)
    np.testing.assert_allclose([s.mean, s.var], [np.r_[a, b].mean(), np.r_[a, b].var()],
                               rtol=1e-3)
