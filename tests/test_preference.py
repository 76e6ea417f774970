"""Reward learning pieces against hand-worked numbers and constructed cases."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rlhp import rewards as explore
from rlhp.preferences import comparisons, queries, reward_model, schedule, segments, teachers
from rlhp.preferences import learner as preference
from rlhp.presets import preset
from rlhp.preferences.teachers import TEACHERS


def test_bt_loss_with_random_answer_term_by_hand():
    # sums 2 and 0: sigmoid(2) = 0.880797; P = 0.05 + 0.9 * 0.880797 = 0.842717
    p = float(reward_model.preference_prob(jnp.array(2.0), jnp.array(0.0)))
    assert p == pytest.approx(0.842717, abs=1e-5)
    assert float(reward_model.bt_loss(2.0, 0.0, 1.0)) == pytest.approx(-np.log(0.842717), abs=1e-5)
    assert float(reward_model.bt_loss(2.0, 0.0, 0.0)) == pytest.approx(-np.log(0.157283), abs=1e-5)
    # a tie is the average of both answers
    tie = float(reward_model.bt_loss(2.0, 0.0, 0.5))
    assert tie == pytest.approx(-(np.log(0.842717) + np.log(0.157283)) / 2, abs=1e-5)
    # the noise term bounds the loss: never above -log(0.05) however wrong the model
    assert float(reward_model.bt_loss(100.0, 0.0, 0.0)) == pytest.approx(-np.log(0.05), abs=1e-4)


def oracle_params(kind="oracle", **kw):
    vals = dict(beta=1.0, mistake=0.1, skip=0.1, equal=0.1, myopia=0.9)
    vals.update(kw)
    return teachers.TeacherParams(kind=jnp.float32(TEACHERS.index(kind)),
                                  **{k: jnp.float32(v) for k, v in vals.items()})


def pairs_with_returns(r1, r2, L=5):
    r = jnp.stack([jnp.asarray(r1, jnp.float32), jnp.asarray(r2, jnp.float32)], -1)  # [N, 2]
    return jnp.broadcast_to(r[..., None] / L, r.shape + (L,))


def test_oracle_prefers_higher_return_and_ties():
    mu, ok = teachers.label(oracle_params(), jax.random.PRNGKey(0),
                            pairs_with_returns([3.0, 1.0, 2.0], [1.0, 3.0, 2.0]))
    assert mu.tolist() == [1.0, 0.0, 0.5] and ok.all()


def test_mistake_rate():
    n = 20000
    r1 = jax.random.normal(jax.random.PRNGKey(1), (n,)) + 5
    mu, _ = teachers.label(oracle_params("mistake", mistake=0.1), jax.random.PRNGKey(2),
                           pairs_with_returns(r1, jnp.zeros(n)))
    assert float(jnp.mean(mu == 0.0)) == pytest.approx(0.1, abs=0.01)


def test_noisy_teacher_is_boltzmann():
    n = 20000
    mu, _ = teachers.label(oracle_params("noisy", beta=2.0), jax.random.PRNGKey(3),
                           pairs_with_returns(jnp.full(n, 0.5), jnp.zeros(n)))
    assert float(mu.mean()) == pytest.approx(1 / (1 + np.exp(-1.0)), abs=0.01)


def test_skip_and_equal_margins():
    # mean |return| over the pairs is 5; margins 0.2 * 5 = 1
    r1, r2 = jnp.array([10.0, 0.5, 6.0]), jnp.array([9.5, 0.0, 4.0])
    _, ok = teachers.label(oracle_params("skip", skip=0.2), jax.random.PRNGKey(0),
                           pairs_with_returns(r1, r2))
    assert ok.tolist() == [True, False, True]
    mu, _ = teachers.label(oracle_params("equal", equal=0.2), jax.random.PRNGKey(0),
                           pairs_with_returns(r1, r2))
    assert mu.tolist() == [0.5, 0.5, 1.0]


def test_myopic_teacher_weights_late_steps():
    # segment 1 earns 1 at its first step, segment 2 earns 0.6 at its last: the myopic
    # teacher (gamma 0.5 over 3 steps) sees 0.25 vs 0.6 and prefers segment 2.
    r = jnp.array([[[1.0, 0.0, 0.0], [0.0, 0.0, 0.6]]])
    assert teachers.label(oracle_params("oracle"), jax.random.PRNGKey(0), r)[0].tolist() == [1.0]
    assert teachers.label(oracle_params("myopic", myopia=0.5), jax.random.PRNGKey(0), r)[0].tolist() == [0.0]


def test_disagreement_picks_highest_variance_pairs():
    # 3 members x 4 pairs; pair 2 has members disagreeing most, pair 0 next
    sums = jnp.array([[[4.0, 0.0], [1.0, 1.0], [9.0, 0.0], [0.0, 0.0]],
                      [[0.0, 4.0], [1.0, 1.0], [0.0, 9.0], [0.0, 0.0]],
                      [[2.0, 2.0], [1.0, 1.0], [9.0, 0.0], [0.1, 0.0]]])
    s = queries.scores(jnp.float32(1), jax.random.PRNGKey(0), sums)
    assert queries.top_k(s, 2).tolist() == [2, 0]
    e = queries.scores(jnp.float32(2), jax.random.PRNGKey(0), sums)
    # entropy: pairs 0 and 1 are predicted 50/50 on average, pair 2 confidently
    assert int(jnp.argmax(e)) in (0, 1) and int(jnp.argmin(e)) == 2


def test_candidate_pairs_are_distinct_and_in_range():
    p = np.asarray(queries.candidate_pairs(jax.random.PRNGKey(0), 7, 1000))
    assert (p[:, 0] != p[:, 1]).all() and p.min() >= 0 and p.max() < 7


def test_schedule_spends_exactly_the_budget():
    due = lambda t: float(schedule.labels_due(t, 1_000_000, 700.0, 0.25))
    assert due(0) == 175 and due(1_000_000) == 700
    mid = due(500_000)
    assert 175 + 525 * 0.5 < mid < 700  # front-loaded: more than half the rest by midway
    # a shorter horizon asks more of the rest early, and still exactly the budget
    short = lambda t: float(schedule.labels_due(t, 1_000_000, 700.0, 0.25, horizon=2e4))
    assert short(100_000) > due(100_000) + 100 and short(1_000_000) == 700
    # the static per-iteration maximum leaves room for the schedule's fastest iteration
    for h in (2e6, 2e4):
        cfg = preset("hopper", label_horizon=h)
        first = schedule.labels_due(cfg.batch_size, cfg.steps, 700.0, 0.25, h) - 175
        assert cfg.labels_per_iteration >= float(first) + 1
    # float32 rounding at the last step once left the 3M-step default run one label short
    for total in (2_998_272, 999_424, 163_840, 12_345_678):
        last = jax.jit(lambda e: schedule.labels_due(e, total, jnp.float32(700), jnp.float32(0.25)))
        assert float(last(jnp.int32(total))) == 700


def test_segments_never_cross_episode_boundaries():
    T, B, L = 8, 2, 4
    valid = jnp.ones((T, B), bool).at[5, 0].set(False)   # env 0 resets at step 5
    done = jnp.zeros((T, B), bool).at[4, 0].set(True).at[3, 1].set(True)
    obs = jnp.arange(T * B, dtype=jnp.float32).reshape(T, B, 1)
    o, a, r, ok = segments.cut(obs, jnp.zeros((T, B, 1)), jnp.ones((T, B)), valid, done, L)
    # windows: (w0,env0) steps 0-3 ok; (w0,env1) ends exactly at step 3 ok;
    # (w1,env0) has the done at 4 before its last step and the invalid 5: dropped; (w1,env1) ok
    assert ok.tolist() == [True, True, False, True]
    np.testing.assert_array_equal(o[1, :, 0], [1, 3, 5, 7])
    buf = segments.add(segments.init(3, L, (1,), (1,), jnp.float32), o, a, r, ok)
    assert int(buf.cursor) == 0 and buf.filled.all()  # 3 kept, the ring wrapped to 0


def test_segment_length_is_1_5_seconds_within_15_to_60_steps_and_half_an_episode():
    from types import SimpleNamespace as Spec

    from rlhp.train import segment_length
    cfg = preset("hopper")
    assert segment_length(cfg, Spec(dt=0.008, max_episode_steps=1000)) == 60    # Hopper: 187 -> 60
    assert segment_length(cfg, Spec(dt=0.04, max_episode_steps=1000)) == 38     # a pendulum
    assert segment_length(cfg, Spec(dt=0.2, max_episode_steps=1000)) == 15      # 8 -> 15
    # Reacher: 75 steps by time, but its episodes are 50 steps: a 60-step segment never fits
    assert segment_length(cfg, Spec(dt=0.02, max_episode_steps=50)) == 25
    assert segment_length(cfg.replace(segment_length=40),
                          Spec(dt=0.02, max_episode_steps=50)) == 40          # asked for


def test_database_bootstrap_and_validation_split():
    C, M, n = 4096, 3, 4000
    db = comparisons.init(C, M, 2, (1,), (1,), jnp.float32)
    db = comparisons.add(db, jax.random.PRNGKey(0), jnp.zeros((n, 2, 2, 1)),
                         jnp.zeros((n, 2, 2, 1)), jnp.ones(n), jnp.ones(n, bool))
    val = np.asarray(db.validation[:n])
    w = np.asarray(db.weight[:n])
    assert val.mean() == pytest.approx(1 / np.e, abs=0.02)
    assert (w[val] == 0).all()
    train_w = w[~val]
    assert train_w.mean() == pytest.approx(1.0, abs=0.05)   # Poisson(1) counts
    assert (train_w == 0).mean() == pytest.approx(np.exp(-1), abs=0.03)
    assert not (w[:, 0] == w[:, 1]).all()  # members resample independently
    assert int(db.total) == n and int(db.filled.sum()) == n


def test_minibatches_follow_each_members_bootstrap_counts():
    """Entries are drawn in proportion to their per-member count; held-out (count 0) and
    empty slots never."""
    db = comparisons.init(8, 2, 1, (1,), (1,), jnp.float32)
    weight = jnp.array([[3, 0], [1, 1], [0, 2], [2, 0], [0, 0], [1, 4], [0, 0], [0, 0]], jnp.float32)
    filled = jnp.array([True] * 6 + [False] * 2)
    db = db.replace(weight=weight * filled[:, None], filled=filled)
    idx = np.asarray(comparisons.sample(db, jax.random.PRNGKey(0), 60_000))   # [2, n]
    for m in range(2):
        freq = np.bincount(idx[m], minlength=8) / idx.shape[1]
        want = np.asarray(weight[:, m] * filled) / float((weight[:, m] * filled).sum())
        np.testing.assert_allclose(freq, want, atol=0.01)
        assert freq[want == 0].sum() == 0


def test_adaptive_l2_rule():
    l2 = jnp.full(4, 0.01)
    train = jnp.array([1.0, 1.0, 1.0, 1.0])
    val = jnp.array([2.0, 1.0, 1.3, 2.0])
    enough = jnp.array([True, True, True, False])
    new = np.asarray(preference.adapt_l2(l2, train, val, enough))
    np.testing.assert_allclose(new, [0.01 * preference.L2_STEP, 0.01 / preference.L2_STEP, 0.01, 0.01])


def test_ensemble_in_blocks_matches_one_pass():
    """Blocked evaluation (padding the last block) gives each row the one-pass output."""
    net = reward_model.RewardMLP((8, 8))
    obs, act = jax.random.normal(jax.random.PRNGKey(1), (2, 3, 5, 4, 6)), jnp.ones((2, 3, 5, 4, 2))
    params = reward_model.init_ensemble(net, jax.random.PRNGKey(0), 3, obs[0, 0], act[0, 0])
    one_pass = jax.vmap(lambda p: net.apply(p, obs, act))(params)
    blocked = jax.vmap(lambda p: reward_model.in_blocks(
        lambda o, a: net.apply(p, o, a), obs, act, block=7))(params)
    assert blocked.shape == (3, 2, 3, 5, 4) == one_pass.shape
    np.testing.assert_allclose(blocked, one_pass, rtol=1e-5, atol=1e-6)


def test_state_entropy_reward_is_the_log_distance_to_the_kth_neighbour():
    # points on a line at 0, 1, 3, 7 (and an invalid row at 2, which is nobody's neighbour)
    x = jnp.asarray([[0.0, 0.0], [1.0, 0.0], [3.0, 0.0], [7.0, 0.0], [2.0, 0.0]])
    valid = jnp.asarray([True, True, True, True, False])
    r1 = explore.state_entropy_reward(x, valid, k=1)
    np.testing.assert_allclose(r1[:4], np.log1p([1.0, 1.0, 2.0, 4.0]), rtol=1e-5)
    r2 = explore.state_entropy_reward(x, valid, k=2)
    np.testing.assert_allclose(r2[:4], np.log1p([3.0, 2.0, 3.0, 6.0]), rtol=1e-5)
    assert r1[4] == 0 and r2[4] == 0
    # fewer valid neighbours than k: no reward rather than an infinite one
    assert np.all(np.asarray(explore.state_entropy_reward(x, valid, k=4)) == 0)


def test_reward_linear_term_adds_a_linear_function_of_the_inputs():
    net = reward_model.RewardMLP((8, 8), use_action=False, linear=True)
    obs, act = jnp.zeros((4, 3)), jnp.zeros((4, 1))
    params = net.init(jax.random.PRNGKey(0), obs, act)
    plain = reward_model.RewardMLP((8, 8), use_action=False).init(jax.random.PRNGKey(0), obs, act)
    assert set(params["params"]) == set(plain["params"]) | {"linear"}
    # the MLP silenced, r-hat is the linear term alone: w . x, without bound
    params = jax.tree.map(jnp.zeros_like, params)
    params["params"]["linear"]["kernel"] = jnp.asarray([[1.0], [-2.0], [0.5]])
    x = jnp.asarray([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [100.0, 0.0, 2.0], [0.0, 0.0, 0.0]])
    np.testing.assert_allclose(net.apply(params, x, act), [1.0, -2.0, 101.0, 0.0])


def test_relabel_averages_normalised_members_and_reports_their_spread():
    """r-hat is the mean of the members' outputs, each normalised by its own statistics over
    the valid steps; the spread (the uncertainty bonus's input) is their std; members that
    agree have none."""
    learner = preference.RewardLearner(
        net=reward_model.RewardMLP((8, 8), use_action=False), members=3, segment_length=2,
        segment_capacity=4, label_capacity=4, candidate_factor=2, batch=2, obs_shape=(3,),
        action_shape=(1,), action_dtype=jnp.float32)
    pref = learner.init(jax.random.PRNGKey(0))
    obs, act = jax.random.normal(jax.random.PRNGKey(1), (5, 4, 3)), jnp.zeros((5, 4, 1))
    valid = jnp.ones((5, 4), bool).at[0, :2].set(False)
    _, r_hat, spread = learner.relabel(pref, obs, act, valid, 2.0)
    raw = np.asarray(learner.raw(pref, obs, act))  # [M, T, B]
    rows = raw[:, np.asarray(valid)]
    z = 2.0 * (raw - rows.mean(1)[:, None, None]) / rows.std(1)[:, None, None]
    np.testing.assert_allclose(r_hat, z.mean(0), rtol=1e-3, atol=1e-3)
    np.testing.assert_allclose(spread, z.std(0), rtol=1e-3, atol=1e-3)
    assert float(spread.min()) > 0.01
    same = pref.replace(params=jax.tree.map(lambda p: jnp.broadcast_to(p[:1], p.shape), pref.params))
    _, _, no_spread = learner.relabel(same, obs, act, valid, 2.0)
    np.testing.assert_allclose(no_spread, 0.0, atol=1e-4)
