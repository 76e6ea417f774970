"""The Atari training step with each form of convolution (``rlhp.conv``): XLA's own
against im2col and one matmul, timed in one run.

On XLA's CPU backend a convolution's gradient inside a loop body runs about 15x slower
than outside one, and the training step's updates all sit in ``lax.scan`` loops. Timed
for each form: one reward-model fit of ``--updates`` minibatch steps (the paper's CNN,
3 members, ``reward_batch`` pairs of 25-frame clips), one A2C update on a rollout (the
Nature CNN), and the whole training step. The ratio is XLA's convolution's time over
im2col's (above 1: im2col is faster).

    python -m benchmarks.conv --json conv.json            # Pong, the default Atari config
    python -m benchmarks.conv --tiny --repeats 3          # 4 envs x 25 steps, 8-pair minibatches
"""
from __future__ import annotations

from unittest import mock

import jax

from benchmarks import common

COLUMNS = ["stage", "xla_conv_ms", "im2col_ms", "ratio"]
TINY = dict(num_envs=4, rollout_length=25, pretrain_updates=1, prefill_iterations=1,
            segment_capacity=32, reward_batch=8)


def measure(env_name: str, repeats: int, updates: int, settings: dict) -> dict:
    """Milliseconds per stage ``{stage: ms}``, medians of ``repeats``."""
    from rlhp.envs import make_env
    from rlhp.presets import preset
    from rlhp.train import make_train

    cfg = preset(env_name, total_steps=10**9, iterations_per_chunk=1, **settings)
    tr = make_train(cfg, make_env(cfg.env, cfg.backend, cfg.num_envs, preference_episodes=True))
    dyn = cfg.dynamic()
    key = jax.random.PRNGKey(0)
    state = jax.jit(lambda k: tr.init(k, dyn))(key)
    _, ro = jax.jit(tr.rollout)(state)
    fit = jax.jit(lambda p, k: tr.learner.fit(p, k, updates, dyn.reward_lr))
    improve = jax.jit(lambda s, r: tr.improve(s, r, r.step.reward, dyn))
    step = jax.jit(lambda s: tr.train_step(s, dyn))
    stages = {f"reward fit ({updates} updates)": lambda: fit(state.pref, key),
              "A2C update": lambda: improve(state, ro),
              "full train_step": lambda: step(state)}
    return {name: 1000 * common.median_seconds(lambda f=f: jax.block_until_ready(f()), repeats)
            for name, f in stages.items()}


def main(argv=None):
    p = common.parser(__doc__.splitlines()[0])
    p.add_argument("--env", default="pong")
    p.add_argument("--updates", type=int, default=2, help="reward-model steps timed")
    args = p.parse_args(argv)
    runs = {}
    for name, as_matmul in (("xla_conv", False), ("im2col", True)):
        with mock.patch("rlhp.conv.as_matmul_here", lambda m=as_matmul: m):
            runs[name] = measure(args.env, args.repeats, args.updates,
                                 TINY if args.tiny else {})
    results = [{"stage": s, "xla_conv_ms": runs["xla_conv"][s], "im2col_ms": runs["im2col"][s],
                "ratio": runs["xla_conv"][s] / runs["im2col"][s]} for s in runs["im2col"]]
    return common.report(results, COLUMNS, args.json)


if __name__ == "__main__":
    main()
