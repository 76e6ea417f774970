"""The query schemes beyond the paper (k-center, its disagreement mix, BALD) on constructed
ensembles and features, and the fresh-label accuracy with its alarm."""
import jax
import jax.numpy as jnp
import numpy as np

from rlhp.preferences import fresh, queries, reward_model

KEY = jax.random.PRNGKey(0)


def sums_for(p):
    """Segment sums ``[M, N, 2]`` whose preference probabilities (random-answer term
    included) are ``p [M, N]``."""
    p = np.asarray(p, np.float64)
    s = np.log((p - 0.05) / 0.9) - np.log(1 - (p - 0.05) / 0.9)
    return jnp.asarray(np.stack([s, np.zeros_like(s)], -1), jnp.float32)


def choose(name, sums, features=None, centers=None, center_ok=None, k=1):
    n = sums.shape[1]
    features = jnp.zeros((n, 1)) if features is None else jnp.asarray(features, jnp.float32)
    centers = jnp.zeros((1, features.shape[1])) if centers is None else jnp.asarray(centers, jnp.float32)
    center_ok = jnp.zeros(centers.shape[0], bool) if center_ok is None else jnp.asarray(center_ok)
    scheme = jnp.float32(queries.QUERIES.index(name))
    return queries.choose(scheme, KEY, sums, lambda: features, lambda: centers,
                          lambda: center_ok, k).tolist()


# Two members. Pair 0: 0.45 vs 0.55, the ensemble unsure either way. Pair 1: 0.06 vs
# 0.14, both lean to the second segment but one member much more.
LEANING = sums_for([[0.45, 0.06], [0.55, 0.14]])


def test_bald_by_hand():
    p = reward_model.preference_prob(LEANING[..., 0], LEANING[..., 1])
    np.testing.assert_allclose(p, [[0.45, 0.06], [0.55, 0.14]], atol=1e-5)
    h = lambda x: -(x * np.log(x) + (1 - x) * np.log(1 - x))
    want = [h(0.5) - (h(0.45) + h(0.55)) / 2, h(0.1) - (h(0.06) + h(0.14)) / 2]
    np.testing.assert_allclose(queries.bald(p), want, rtol=1e-4)  # 0.0050, 0.0100
    # a pair every member is sure of gains nothing; the random-answer term caps the rest
    sure = reward_model.preference_prob(jnp.full((3, 1), 50.0), jnp.zeros((3, 1)))
    assert float(queries.bald(sure)[0]) < 1e-6


def test_bald_asks_the_leaning_pair_that_disagreement_ranks_lower():
    """Variance: 0.0025 for pair 0 against 0.0016 for pair 1, so disagreement (and
    entropy, 0.69 against 0.33) asks pair 0; the answer to pair 1 tells twice as much
    about which member is right (0.010 nats against 0.005), and BALD asks it."""
    assert choose("disagreement", LEANING) == [0]
    assert choose("entropy", LEANING) == [0]
    assert choose("bald", LEANING) == [1]


FEATURES = [[0.0, 0.0], [0.1, 0.0], [5.0, 0.0], [5.1, 0.1], [0.0, 3.0]]


def test_kcenter_spreads_its_picks_over_the_features():
    """Two clusters near (0, 0) and (5, 0) and a loner at (0, 3): with no labelled pairs
    the first pick is the first candidate, then the farthest from it, then the farthest
    from both: one from each cluster, never a twin of a pick."""
    sums = sums_for(np.full((2, 5), 0.5))
    assert choose("kcenter", sums, FEATURES, k=3) == [0, 3, 4]
    assert choose("kcenter", sums, FEATURES, k=5) == [0, 3, 4, 2, 1]
    # the database's pairs are centers from the start: with (5, 0) and (0, 3) labelled
    # (and an empty slot far away, ignored), the (0, 0) cluster's far end comes first
    got = choose("kcenter", sums, FEATURES, centers=[[5.0, 0.0], [0.0, 3.0], [9.0, 9.0]],
                 center_ok=[True, True, False], k=2)
    assert got == [1, 3]


def test_kcenter_disagreement_chooses_among_the_most_disagreed_half():
    """The members disagree only on pairs 2 and 3 (variance 0.09 and 0.04): the mix keeps
    the top half by variance (2 of 5) and spreads its picks among them; plain k-center
    starts from pair 0, on which every member says 50/50."""
    p = np.full((2, 5), 0.5)
    p[:, 2], p[:, 3] = (0.2, 0.8), (0.3, 0.7)
    sums = sums_for(p)
    assert choose("kcenter-disagreement", sums, FEATURES, k=2) == [2, 3]
    assert choose("kcenter", sums, FEATURES, k=2) == [0, 3]


def test_running_accuracy_pools_the_window_and_waits_for_enough_pairs():
    correct = np.array([5, 5, 0, 0, 2])
    judged = np.array([5, 5, 10, 0, 2])
    got = fresh.running_accuracy(correct, judged, window=2, min_pairs=10)
    # windows: [5/5] (too few), [10/10], [5/15], [0/10], [2/2] (too few)
    np.testing.assert_allclose(got, [np.nan, 1.0, 1 / 3, 0.0, np.nan])
    assert fresh.first_alarm(got, 0.6) == 2
    assert fresh.first_alarm(got, 0.0) is None
    assert fresh.first_alarm(got[:2], 0.6) is None
    # only a fall counts: a start below the threshold is not an alarm until it was reached
    assert fresh.first_alarm([np.nan, 0.4, 0.5, 0.7, 0.65, 0.55, 0.3], 0.6) == 5
    assert fresh.first_alarm([0.4, 0.5, 0.59], 0.6) is None
    # batched over runs: the last axis is the iteration
    both = fresh.running_accuracy(np.stack([correct, judged]), np.stack([judged, judged]), 2)
    np.testing.assert_allclose(both[1], [np.nan, 1.0, 1.0, 1.0, np.nan])


def test_the_alarm_wants_a_confident_fall():
    # Wilson's one-sided 95% upper bound: 8 right of 20 (0.4) may still be 0.58
    np.testing.assert_allclose(fresh.upper_bound([8], [20], 1), [0.5815], atol=1e-4)
    judged = np.full(40, 3)
    # r-hat agrees (10 iterations all right), wobbles near 0.75, then every answer is wrong
    correct = np.array([3] * 10 + [2, 2, 3, 1, 2, 2, 3, 2, 1, 2] + [0] * 20)
    running, at = fresh.alarm(correct, judged, 10, 0.6)
    assert fresh.first_alarm(running, 0.6) == 21  # the share is first below 0.6 (16 of 30)
    assert at == 22 and running[22] == 13 / 30  # confidently below from 13 of 30
    # a run that only wobbles: shares of 0.57 in its windows of 30, never a confident fall
    wobble = np.array([3] * 10 + [1, 2, 2, 1, 2, 2, 2, 1, 2, 2] * 3)
    running, at = fresh.alarm(wobble, judged, 10, 0.6)
    assert np.nanmin(running) < 0.6 and fresh.first_alarm(running, 0.6) is not None
    assert at is None
