"""Synthetic-teacher path throughput: query selection + teacher + database insert, and
reward-model updates.

Labels/s: one jitted ``ask`` choosing K pairs among 10*K candidates from a full segment
buffer (ensemble forward on every buffered segment, disagreement scores, top-K, the oracle,
the insert), for a buffer of 256 segments (the default run's ``segment_capacity``) and of
1,024. The state is donated, as inside the training step, so the insert writes in place.
Its arithmetic is one ensemble forward pass over every buffered step, timed on its own,
with its GFLOP/s next to this machine's dense-matmul GFLOP/s. Comparisons/s: reward-model
minibatch steps (forward and backward of every member on its bootstrap minibatch) times
the minibatch size.

    python -m benchmarks.labels --json labels.json
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from benchmarks import common

COLUMNS = ["segment_length", "segments_buffered", "ensemble_size", "labels_per_call",
           "labels_per_second", "comparisons_per_second", "ensemble_forward_share",
           "forward_gflops_per_second", "machine_matmul_gflops_per_second"]


def mlp_flops(sizes) -> int:
    """Multiply-adds x 2 of one forward pass through dense layers of ``sizes``."""
    return sum(2 * a * b for a, b in zip(sizes[:-1], sizes[1:]))


def measure(length: int, capacity: int, members: int, k: int, updates: int,
            repeats: int) -> dict:
    from rlhp.preferences.learner import RewardLearner
    from rlhp.preferences.reward_model import RewardMLP
    from rlhp.preferences.teachers import TEACHERS, TeacherParams

    obs_dim, act_dim = 11, 3   # Hopper's shapes
    learner = RewardLearner(net=RewardMLP((64, 64)), members=members, segment_length=length,
                            segment_capacity=capacity, label_capacity=4 * k,
                            candidate_factor=10, batch=64, obs_shape=(obs_dim,),
                            action_shape=(act_dim,), action_dtype=jnp.float32)
    key = jax.random.PRNGKey(0)
    pref = learner.init(key)
    k1, k2, k3 = jax.random.split(key, 3)
    segs = pref.segments.replace(
        obs=jax.random.normal(k1, pref.segments.obs.shape),
        action=jax.random.uniform(k2, pref.segments.action.shape, minval=-1, maxval=1),
        true_reward=jax.random.normal(k3, pref.segments.true_reward.shape),
        filled=jnp.ones(capacity, bool))
    pref = pref.replace(segments=segs, segments_seen=jnp.int32(capacity))
    teacher = TeacherParams(kind=jnp.float32(TEACHERS.index("oracle")), beta=jnp.float32(1),
                            mistake=jnp.float32(0.1), skip=jnp.float32(0.1),
                            equal=jnp.float32(0.1), myopia=jnp.float32(0.9))
    scheme = jnp.float32(1)  # disagreement
    ask = jax.jit(lambda p, key: learner.ask(p, key, k, k, scheme, teacher), donate_argnums=0)
    fit = jax.jit(lambda p, key: learner.fit(p, key, updates, 1e-3), donate_argnums=0)
    fresh = lambda: jax.tree.map(jnp.copy, pref)  # each timing owns (and donates) its state

    def call(fn):
        """One call of ``fn`` on a fresh key, threading (pref, key) through the calls."""
        def step(carry):
            p, key = carry
            key, sub = jax.random.split(key)
            out = fn(p, sub)
            p = out[0] if isinstance(out, tuple) else out
            return (p, key), p
        return step

    # the arithmetic inside ask: every buffered segment through every member
    forward = jax.jit(lambda p: learner.raw(p, p.segments.obs, p.segments.action))
    forward_sec = common.median_seconds(lambda: jax.block_until_ready(forward(pref)), repeats)
    flops = members * capacity * length * mlp_flops((obs_dim + act_dim, 64, 64, 1))
    ask_sec = common.median_seconds_threaded(call(ask), (fresh(), key), repeats)
    fit_sec = common.median_seconds_threaded(call(fit), (fresh(), key), repeats)
    return {"segment_length": length, "segments_buffered": capacity,
            "ensemble_size": members, "labels_per_call": k,
            "candidates_per_call": 10 * k, "labels_per_second": k / ask_sec,
            "ask_milliseconds": 1000 * ask_sec, "ensemble_forward_milliseconds": 1000 * forward_sec,
            "ensemble_forward_share": forward_sec / ask_sec,
            "forward_gflops_per_second": flops / forward_sec / 1e9,
            "reward_updates_per_call": updates, "minibatch": learner.batch,
            "comparisons_per_second": updates * learner.batch / fit_sec}


def main(argv=None):
    p = common.parser(__doc__.splitlines()[0])
    args = p.parse_args(argv)
    k, updates = (16, 2) if args.tiny else (1024, 32)
    results = [measure(L, capacity, 3, k, updates, args.repeats)
               for L in (25, 50) for capacity in (256, 1024)]
    peak = common.matmul_gflops(args.repeats)
    for r in results:
        r["machine_matmul_gflops_per_second"] = peak
    return common.report(results, COLUMNS, args.json)


if __name__ == "__main__":
    main()
