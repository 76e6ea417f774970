"""The preference step's seam: select pairs, answer them, insert the answers; and the
reward pretraining's rounds. Small constructed learners, no env."""
import dataclasses

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rlhp.preferences import reward_model, segments, teachers
from rlhp.preferences.learner import FreshLabels, RewardLearner
from rlhp.preferences.teachers import TEACHERS

L, S, OBS = 3, 16, (4,)


def make_learner(**kw) -> RewardLearner:
    args = dict(net=reward_model.RewardMLP((8,), use_action=False), members=3, segment_length=L,
                segment_capacity=S, label_capacity=32, candidate_factor=2, batch=4,
                obs_shape=OBS, action_shape=(1,), action_dtype=jnp.float32)
    return RewardLearner(**{**args, **kw})


def filled(learner: RewardLearner, n: int, seed: int = 0):
    """A learner state whose buffer holds ``n`` random segments (true reward: their
    first observation coordinate, so the oracle's order is known)."""
    pref = learner.init(jax.random.PRNGKey(seed))
    obs = jax.random.normal(jax.random.PRNGKey(seed + 1), (n, L) + OBS)
    seg = pref.segments
    seg = seg.replace(obs=seg.obs.at[:n].set(obs), true_reward=seg.true_reward.at[:n].set(obs[..., 0]),
                      filled=seg.filled.at[:n].set(True), cursor=jnp.asarray(n % S, jnp.int32))
    return pref.replace(segments=seg, segments_seen=jnp.asarray(n, jnp.int32))


def oracle():
    z = jnp.float32(0)
    return teachers.TeacherParams(kind=jnp.float32(TEACHERS.index("oracle")), beta=z + 1,
                                  mistake=z + 0.1, skip=z + 0.1, equal=z + 0.1, myopia=z + 0.9)


def keys(seed=3):
    return jax.random.split(jax.random.PRNGKey(seed), 4)


def test_ask_is_select_then_teacher_then_insert():
    """The fused synthetic path and the seam a host-side teacher uses give the same state."""
    learner = make_learner()
    pref = filled(learner, 10)
    k_pairs, k_score, k_teach, k_db = keys()
    disagreement = jnp.float32(1)
    fused, fresh = learner.ask(pref, jax.random.PRNGKey(3), 4, 3, disagreement, oracle())
    query = learner.select(pref, k_pairs, k_score, 4, 3, disagreement)
    mu, answered = teachers.label(oracle(), k_teach, query.true_reward)
    chex.assert_trees_all_equal(learner.insert(pref, k_db, query, mu, answered), fused)
    chex.assert_trees_all_equal(FreshLabels.of(query, mu, answered), fresh)
    assert float(fused.asked) == 3 and int(fused.db.filled.sum()) == 3


def test_select_masks_to_k_and_insert_stores_only_answered_pairs():
    learner = make_learner()
    pref = filled(learner, 10)
    k_pairs, k_score, _, k_db = keys()
    query = learner.select(pref, k_pairs, k_score, 4, 2, jnp.float32(0))
    chex.assert_shape(query.obs, (4, 2, L) + OBS)
    chex.assert_shape(query.true_reward, (4, 2, L))
    np.testing.assert_array_equal(query.asked, [True, True, False, False])
    # a person's answers: "equal" to the first pair, "can't tell" to the second
    mu, answered = jnp.asarray([0.5, 1.0, 1.0, 1.0]), jnp.asarray([True, False, True, True])
    out = learner.insert(pref, k_db, query, mu, answered)
    assert float(out.asked) == 2                     # both asked pairs count against the budget
    assert int(out.db.filled.sum()) == 1             # only the answered one is stored
    assert float(out.db.mu[0]) == 0.5
    np.testing.assert_array_equal(out.db.obs[0], query.obs[0])


def test_nothing_is_asked_with_fewer_than_two_segments():
    learner = make_learner()
    for n in (0, 1):
        out, fresh = learner.ask(filled(learner, n), jax.random.PRNGKey(0), 4, 4,
                                 jnp.float32(1), oracle())
        assert float(out.asked) == 0 and int(out.db.filled.sum()) == 0, n
        assert not fresh.judged.any()


def test_both_scoring_paths_choose_the_same_pairs():
    """With many candidates per segment r-hat is computed once per segment and gathered;
    otherwise once per candidate pair. Same candidates, same choice."""
    per_pair = make_learner()                                       # 2 * 8 candidates <= 16
    per_segment = dataclasses.replace(per_pair, segment_capacity=7)  # 16 > 7
    pref = filled(per_pair, 6)                                      # n = 6 for both
    k_pairs, k_score, _, _ = keys()
    a = per_pair.select(pref, k_pairs, k_score, 4, 4, jnp.float32(1))
    b = per_segment.select(pref, k_pairs, k_score, 4, 4, jnp.float32(1))
    chex.assert_trees_all_equal(a, b)


def test_disagreement_asks_what_random_would_not():
    """Disagreement picks the candidates whose members' preference varies most."""
    learner = make_learner(candidate_factor=5)
    pref = filled(learner, 12)
    k_pairs, k_score, _, _ = keys()
    chosen = learner.select(pref, k_pairs, k_score, 2, 2, jnp.float32(1))
    from rlhp.preferences import queries
    cand = queries.candidate_pairs(k_pairs, 12, 10)
    sums = reward_model.segment_sums(learner.net, pref.params,
                                     learner.inputs(pref, pref.segments.obs[cand]),
                                     pref.segments.action[cand])
    var = np.var(np.asarray(reward_model.preference_prob(sums[..., 0], sums[..., 1])), 0)
    best = np.asarray(pref.segments.obs)[np.asarray(cand)[np.argsort(-var)[:2]]]
    np.testing.assert_array_equal(chosen.obs, best)


@pytest.mark.parametrize("rounds", [1, 3])
def test_fit_in_rounds_is_that_many_fits_with_the_l2_weight_adapting_between(rounds):
    learner = make_learner()
    pref, _ = learner.ask(filled(learner, 16), jax.random.PRNGKey(1), 16, 16, jnp.float32(0),
                          oracle())
    key = jax.random.PRNGKey(2)
    got = learner.fit_in_rounds(pref, key, 6, rounds, 1e-2)
    want = pref
    for k in ([key] if rounds == 1 else jax.random.split(key, rounds)):
        want, _ = learner.fit(want, k, 6 // rounds, 1e-2)
    chex.assert_trees_all_close(got, want, rtol=1e-5, atol=1e-6)
    assert not np.allclose(np.asarray(jax.tree.leaves(got.params)[0]),
                           np.asarray(jax.tree.leaves(pref.params)[0]))


def test_fresh_labels_are_r_hat_before_the_fit_against_the_teacher():
    """The query carries r-hat's prediction on each pair; the fresh labels compare it
    with the answers, ties and unanswered or unasked pairs excluded. Audit labels judge
    random pairs the same way and touch nothing."""
    learner = make_learner()
    pref = filled(learner, 10)
    k_pairs, k_score, _, _ = keys()
    query = learner.select(pref, k_pairs, k_score, 4, 3, jnp.float32(1))
    sums = reward_model.segment_sums(learner.net, pref.params, learner.inputs(pref, query.obs),
                                     query.action)                                  # [M, 4, 2]
    normed = np.asarray(reward_model.normalized(sums, pref.stats, 1.0)).mean(0)
    np.testing.assert_array_equal(query.predicted, normed[:, 0] > normed[:, 1])
    mu, answered = jnp.asarray([1.0, 0.5, 0.0, 1.0]), jnp.asarray([True, True, False, True])
    fresh = FreshLabels.of(query, mu, answered)
    np.testing.assert_array_equal(fresh.judged, [True, False, False, False])  # tie, skip, unasked
    assert bool(fresh.correct[0]) == bool(query.predicted[0])
    # audits: an r-hat that is 1.01 x the first coordinate (the oracle's reward, through
    # leaky ReLUs x+ and x-) orders every random pair as the oracle does, one with the
    # opposite sign none; the random initial net sits between
    M = learner.members
    w1 = jnp.zeros((M, OBS[0], 8)).at[:, 0, 0].set(1.0).at[:, 0, 1].set(-1.0)
    w2 = jnp.zeros((M, 8, 1)).at[:, 0, 0].set(1.0).at[:, 1, 0].set(-1.0)
    net = lambda sign: {"params": {"Dense_0": {"kernel": w1, "bias": jnp.zeros((M, 8))},
                                   "Dense_1": {"kernel": sign * w2, "bias": jnp.zeros((M, 1))}}}
    right = [learner.audit(pref.replace(params=net(sign)), jax.random.PRNGKey(5), 6, oracle())
             for sign in (1.0, -1.0)]
    assert all(bool(a.judged.all()) for a in right)  # continuous returns: no ties
    assert bool(right[0].correct.all()) and not bool(right[1].correct.any())
    chex.assert_trees_all_equal(jax.tree.structure(net(1.0)), jax.tree.structure(pref.params))


def test_blanked_heads_compare_as_their_tails():
    """Segments with their first ``L - 1`` steps blanked: the oracle answers every pair by
    the last step's reward alone, and r-hat's pair differences are those of the last step
    (the blanked steps add one value to both sums)."""
    learner = make_learner(label_capacity=8)
    pref = filled(learner, 12)
    pref = pref.replace(segments=segments.blank_head(pref.segments, L - 1))
    seg = pref.segments
    assert not np.asarray(seg.obs[:12, :L - 1]).any() and np.asarray(seg.obs[:12, -1]).all()
    pref, _ = learner.ask(pref, jax.random.PRNGKey(3), 6, 6, jnp.float32(0), oracle())
    db = pref.db
    tail = np.asarray(db.obs[:6, :, -1, 0])  # [6, 2]: the true reward of each clip's tail
    assert int(db.filled.sum()) == 6
    np.testing.assert_array_equal(np.asarray(db.mu[:6]), (tail[:, 0] > tail[:, 1]) * 1.0)
    sums = learner.member_sums(pref.params, db.obs[None, :6].repeat(3, 0),
                               db.action[None, :6].repeat(3, 0))
    last = learner.member_sums(pref.params, db.obs[None, :6, :, -1:].repeat(3, 0),
                               db.action[None, :6, :, -1:].repeat(3, 0))
    np.testing.assert_allclose(sums[..., 0] - sums[..., 1], last[..., 0] - last[..., 1],
                               rtol=1e-4, atol=1e-5)
