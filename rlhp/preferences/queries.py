"""Query selection: which pairs of segments to ask the teacher about.

``choose`` samples nothing itself: given ``N`` random candidate pairs (``candidate_pairs``),
the ensemble's segment sums on them and their clip features, it returns the ``k`` to ask.
Schemes (``QUERIES``; the scheme is an array, so sweeps can vmap over it):

- ``random``: uniform scores.
- ``disagreement``: variance over the ensemble of the predicted preference (the paper's).
- ``entropy``: binary entropy of the ensemble-mean preference.
- ``kcenter``: greedy k-center over the pairs' clip features (B-Pref's diversity rule):
  each pick is the candidate farthest from every pair already in the database and every
  pair picked before it.
- ``kcenter-disagreement``: B-Pref's mix: the most disagreed-on half of the candidates,
  then k-center among them.
- ``bald``: the expected information gain about the ensemble from the answer (``bald``).

The score-based schemes share one branch; the k-center ones run only when chosen (a
``lax.switch``, which ``vmap`` turns into computing all of them).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from rlhp.preferences.reward_model import preference_prob

QUERIES = ("random", "disagreement", "entropy", "kcenter", "kcenter-disagreement", "bald")


def candidate_pairs(key, num_filled, num_candidates: int):
    """``[N, 2]`` int32 indices of pairs of distinct segments among the first ``num_filled``."""
    k1, k2 = jax.random.split(key)
    n = jnp.maximum(num_filled, 2)
    i = jax.random.randint(k1, (num_candidates,), 0, n)
    j = (i + jax.random.randint(k2, (num_candidates,), 1, n)) % n
    return jnp.stack([i, j], -1)


def binary_entropy(p):
    """Entropy in nats of a Bernoulli(``p``), elementwise."""
    p = jnp.clip(p, 1e-6, 1 - 1e-6)
    return -(p * jnp.log(p) + (1 - p) * jnp.log(1 - p))


def bald(p):
    """Mutual information between the answer and the ensemble member, ``[N]`` from the
    members' preference probabilities ``p [M, N]`` (random-answer term included).

    Derivation. The answer ``y`` to a pair is 1 (first segment preferred) or 0. Treat the
    ``M`` members as equally likely samples of the reward model; member ``m`` predicts
    ``p_m = P(y=1 | m) = eps/2 + (1 - eps) sigmoid(S1_m - S2_m)`` with ``eps = 0.1``, the
    share of answers assumed random (``reward_model.preference_prob``). What the answer
    tells about which member is right is ``I(y; m) = H(y) - E_m H(y | m)``, with
    ``P(y=1) = p_bar = mean_m p_m``; so ``I = H(p_bar) - mean_m H(p_m)``, ``H`` the binary
    entropy. The random-answer term keeps each ``p_m`` inside ``[eps/2, 1 - eps/2]``, so
    even a member sure of the order expects a random answer now and then: ``H(p_m) >=
    H(0.05) = 0.199`` nats, and a pair the members call confidently the same way gains
    almost nothing. For a small spread ``I ~ Var_m(p_m) / (2 p_bar (1 - p_bar))``: the
    paper's variance rule, weighted up where the ensemble leans one way, because there a
    dissenting member is more surprised by the answer.
    """
    return binary_entropy(p.mean(0)) - binary_entropy(p).mean(0)


def scores(scheme, key, sums):
    """Score candidate pairs from the ensemble's segment sums ``[M, N, 2]``; returns ``[N]``
    (higher: ask first) for the score-based schemes (``random`` for the others)."""
    p = preference_prob(sums[..., 0], sums[..., 1])  # [M, N]
    disagreement = jnp.var(p, axis=0)
    entropy = binary_entropy(p.mean(0))
    random = jax.random.uniform(key, entropy.shape)
    return jnp.select([scheme == QUERIES.index(s) for s in ("disagreement", "entropy", "bald")],
                      [disagreement, entropy, bald(p)], random)


def top_k(score, k: int):
    """Indices ``[k]`` of the highest scores."""
    return jax.lax.top_k(score, k)[1]


def squared_distances(x, y):
    """``[N, D]`` squared Euclidean distances between rows of ``x [N, F]`` and ``y [D, F]``."""
    d = (x**2).sum(-1)[:, None] + (y**2).sum(-1)[None, :] - 2 * x @ y.T
    return jnp.maximum(d, 0.0)


def kcenter(features, centers, center_ok, k: int):
    """Greedy k-center: indices ``[k]`` into ``features [N, F]``, each the candidate
    farthest from its nearest center, then a center itself. ``centers [D, F]`` (those with
    ``center_ok [D]``) are centers from the start: the pairs already labelled."""
    # Before the first labels the database is a constant of the program (zeros, nothing
    # filled), and XLA would evaluate the masked [N, D] distances while compiling (20 s
    # for a 4-run gridworld sweep): the barrier keeps them a runtime computation.
    centers, center_ok = jax.lax.optimization_barrier((centers, center_ok))
    far = jnp.where(center_ok[None, :], squared_distances(features, centers), jnp.inf).min(-1)

    def pick(nearest, _):
        i = jnp.argmax(nearest).astype(jnp.int32)  # as top_k's (int64 argmax under x64)
        nearest = jnp.minimum(nearest, squared_distances(features, features[i][None])[:, 0])
        return nearest.at[i].set(-jnp.inf), i  # never picked twice

    return jax.lax.scan(pick, far, None, k)[1]


def choose(scheme, key, sums, features, centers, center_ok, k: int):
    """The ``k`` candidates to ask, best first: indices ``[k]`` into ``N`` candidates.

    ``sums [M, N, 2]``: the members' segment sums; ``features`` / ``centers`` /
    ``center_ok``: zero-argument functions giving the candidates' features ``[N, F]``, the
    labelled pairs' ``[D, F]`` and which of those exist ``[D]`` (computed only for the
    k-center schemes)."""
    def by_score(_):
        return top_k(scores(scheme, key, sums), k)

    def by_kcenter(_):
        return kcenter(features(), centers(), center_ok(), k)

    def by_kcenter_disagreement(_):
        n = sums.shape[1]
        p = preference_prob(sums[..., 0], sums[..., 1])
        shortlist = top_k(jnp.var(p, axis=0), max(k, n // 2))
        return shortlist[kcenter(features()[shortlist], centers(), center_ok(), k)]

    branch = jnp.select([scheme == QUERIES.index(s) for s in ("kcenter", "kcenter-disagreement")],
                        [1, 2], 0)
    return jax.lax.switch(branch, (by_score, by_kcenter, by_kcenter_disagreement), None)
