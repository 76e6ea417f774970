import chex
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


def numpy_gae(reward, value, next_value, terminated, truncated, gamma, lam):
    """GAE one column at a time, by the textbook recursion (the reference)."""
    reward, value, next_value = (np.asarray(x, np.float64) for x in (reward, value, next_value))
    terminated, truncated = np.asarray(terminated), np.asarray(truncated)
    T, B = reward.shape
    adv = np.zeros((T, B))
    for b in range(B):
        running = 0.0
        for t in reversed(range(T)):
            bootstrap = 0.0 if terminated[t, b] else gamma * next_value[t, b]
            if terminated[t, b] or truncated[t, b]:
                running = 0.0  # the episode ended here: nothing later flows back
            running = reward[t, b] + bootstrap - value[t, b] + gamma * lam * running
            adv[t, b] = running
    return adv


def test_numpy_gae_reference_matches_hand_computation():
    args, expected = hand_gae()
    np.testing.assert_allclose(numpy_gae(*args, GAMMA, LAM), expected, rtol=1e-12)


def test_gae_batches_independently():
    """Three columns with different rewards, values and episode ends: the batched call
    gives each column what it gets alone (and what the reference recursion gives)."""
    args, expected = hand_gae()
    rng = np.random.default_rng(0)
    T = expected.shape[0]
    others = [rng.normal(size=(T, 2)).astype(np.float32) for _ in range(3)]
    flags = [np.array([[False, True], [True, False], [False, False], [False, False]]),
             np.array([[True, False], [False, False], [False, True], [False, False]])]
    three = [jnp.concatenate([a, jnp.asarray(b)], axis=1) for a, b in zip(args, others + flags)]
    adv, target = ppo.gae(*three, GAMMA, LAM)
    chex.assert_shape([adv, target], (T, 3))
    np.testing.assert_allclose(adv[:, :1], expected, rtol=1e-6)
    np.testing.assert_allclose(adv, numpy_gae(*three, GAMMA, LAM), rtol=1e-5, atol=1e-6)
    for b in range(3):
        alone, _ = ppo.gae(*[x[:, b:b + 1] for x in three], GAMMA, LAM)
        chex.assert_trees_all_close(adv[:, b:b + 1], alone, rtol=1e-6)
    assert not np.allclose(adv[:, 1], adv[:, 2])  # the columns really differ


# ppo.loss on six rows, the last invalid (its wild numbers must not count). The policy
# head comes straight from the params (no network), and the behaviour log-probabilities
# are set so the ratios are exactly RATIOS. With clip_eps = 0.2:
#   row 0: A > 0, ratio 1.5 -> clipped to 1.2 (no gradient)
#   row 1: A > 0, ratio 0.5 -> unclipped 0.5 A (the minimum)
#   row 2: A < 0, ratio 0.5 -> clipped to 0.8 (no gradient)
#   row 3: A < 0, ratio 1.5 -> unclipped 1.5 A (the minimum)
#   row 4: A > 0, ratio 1.1 -> inside the clip range
# Advantages are normalised over the five valid rows: mean 0.1, variance 10.2 / 5 = 2.04.
RATIOS = np.array([1.5, 0.5, 0.5, 1.5, 1.1, 3.0])
ADVANTAGE = np.array([2.0, 1.0, -1.0, -2.0, 0.5, 1000.0])
TARGET = np.array([1.0, -1.0, 0.5, 2.0, 0.0, 1e3])
VALUE = np.array([0.5, -0.5, 1.5, 2.0, 1.0, -1e3])
VALID = np.array([True] * 5 + [False])
CLIP, ENT, VF = 0.2, 0.01, 0.5
CLIPPED_ROWS = [0, 2]


def loss_problem(discrete: bool):
    """(params, apply_fn, batch, numpy logp [N], numpy entropy [N])."""
    rng = np.random.default_rng(1)
    n = len(RATIOS)
    if discrete:
        head = rng.normal(size=(n, 3))
        action = np.array([0, 1, 2, 1, 0, 2])
        log_sm = head - np.log(np.exp(head).sum(-1, keepdims=True))
        logp = log_sm[np.arange(n), action]
        entropy = -(np.exp(log_sm) * log_sm).sum(-1)
        params = {"head": jnp.asarray(head, jnp.float32)}
        apply_fn = lambda p, obs: (p["head"], None, p["value"])
    else:
        head, log_std = rng.normal(size=(n, 2)), np.array([-0.5, 0.3])
        action = head + rng.normal(size=(n, 2))
        z = (action - head) / np.exp(log_std)
        logp = (-0.5 * z ** 2 - log_std - 0.5 * np.log(2 * np.pi)).sum(-1)
        entropy = np.full(n, (log_std + 0.5 * np.log(2 * np.pi * np.e)).sum())
        params = {"head": jnp.asarray(head, jnp.float32),
                  "log_std": jnp.asarray(log_std, jnp.float32)}
        apply_fn = lambda p, obs: (p["head"], p["log_std"], p["value"])
    params["value"] = jnp.asarray(VALUE, jnp.float32)
    batch = ppo.Batch(obs=jnp.zeros((n, 1)), action=jnp.asarray(action),
                      log_prob=jnp.asarray(logp - np.log(RATIOS), jnp.float32),
                      advantage=jnp.asarray(ADVANTAGE, jnp.float32),
                      target=jnp.asarray(TARGET, jnp.float32), valid=jnp.asarray(VALID))
    return params, apply_fn, batch, logp, entropy


def numpy_loss(entropy):
    """The clipped PPO loss and its metrics, in numpy over the valid rows."""
    v = VALID
    adv = ADVANTAGE[v]
    adv = (adv - adv.mean()) / np.sqrt(adv.var() + 1e-8)
    r = RATIOS[v]
    surrogate = np.minimum(r * adv, np.clip(r, 1 - CLIP, 1 + CLIP) * adv)
    policy_loss = -surrogate.mean()
    value_loss = 0.5 * ((VALUE[v] - TARGET[v]) ** 2).mean()
    ent = entropy[v].mean()
    approx_kl = ((r - 1) - np.log(r)).mean()
    return policy_loss + VF * value_loss - ENT * ent, dict(
        policy_loss=policy_loss, value_loss=value_loss, entropy=ent, approx_kl=approx_kl)


def test_loss_hand_numbers_are_what_the_comment_says():
    adv = ADVANTAGE[VALID]
    assert adv.mean() == pytest.approx(0.1) and adv.var() == pytest.approx(2.04)
    adv = (adv - 0.1) / np.sqrt(2.04)
    r = RATIOS[VALID]
    clipped = np.clip(r, 1 - CLIP, 1 + CLIP) * adv < r * adv
    assert list(np.flatnonzero(clipped)) == CLIPPED_ROWS


@pytest.mark.parametrize("discrete", [True, False], ids=["discrete", "gaussian"])
@pytest.mark.parametrize("jit", [False, True], ids=["eager", "jit"])
def test_ppo_loss_matches_numpy(discrete, jit):
    params, apply_fn, batch, logp, entropy = loss_problem(discrete)
    fn = jax.jit(ppo.loss, static_argnums=1) if jit else ppo.loss
    total, metrics = fn(params, apply_fn, batch, CLIP, ENT, VF)
    want_total, want = numpy_loss(entropy)
    chex.assert_shape(total, ())
    assert set(metrics) == set(want)
    chex.assert_trees_all_close({k: metrics[k] for k in want}, want, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(total, want_total, rtol=1e-5, atol=1e-6)
    # clipping on both sides: the clipped rows and the invalid row give the policy head no
    # gradient; the others do
    grad_fn = jax.grad(lambda p: fn(p, apply_fn, batch, CLIP, 0.0, VF)[0])
    g = np.abs(np.asarray(grad_fn(params)["head"])).sum(-1)
    dead = CLIPPED_ROWS + [len(RATIOS) - 1]
    np.testing.assert_array_equal(g[dead], 0.0)
    assert (np.delete(g, dead) > 1e-4).all(), g
    # the value loss reaches the value head on valid rows only
    gv = np.asarray(grad_fn(params)["value"])
    np.testing.assert_allclose(gv, VF * np.where(VALID, VALUE - TARGET, 0.0) / VALID.sum(),
                               rtol=1e-5, atol=1e-7)


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
