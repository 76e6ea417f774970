"""Where a training iteration's time goes: each stage of ``train_step`` timed on its own.

Stages of a preference run (default: Hopper, 16 envs x 128 steps): the rollout (env +
policy), relabelling with the ensemble, one PPO update (epochs x minibatches), segment
capture + query selection + teacher + insert, reward-model fitting (minibatch steps), and
the held-out split losses that drive the adaptive L2. The full step is timed too, so the
stages can be compared with the whole.

``--widths 1,16`` (JAX-native envs, e.g. ``--env gridworld``) times every stage as
``vmap`` over that many seeds and reports each stage's cost relative to one seed: the
profile behind the sweep-scaling figure of ``benchmarks.scaling``.

Each stage also reports its matrix arithmetic (``benchmarks.flops``: GFLOP counted on the
jaxpr), the rate it runs at, and ``floor_vs_one_seed``: the time that arithmetic would take
at this machine's dense-matmul rate, relative to one seed's measured time. A floor above a
scaling target means no schedule of the same arithmetic can meet it on this machine.

    python -m benchmarks.stages --json stages.json
    python -m benchmarks.stages --env gridworld --widths 1,16 --json stages_gridworld.json
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from benchmarks import common, flops

COLUMNS = ["stage", "sweep_width", "milliseconds", "share_of_step", "cost_vs_one_seed", "gflop",
           "gflops_per_second", "floor_vs_one_seed"]


def stage_functions(tr, dyn):
    """Per-seed stage functions ``(state, ro, key) -> outputs``."""
    cfg, learner = tr.cfg, tr.learner
    k = cfg.labels_per_iteration

    def observe(pref, ro):
        s = ro.step
        return learner.observe(pref, ro.obs, ro.action, s.reward, s.valid,
                               s.terminated | s.truncated)

    return {
        "rollout (env + policy)": lambda st, ro, key: tr.rollout(st),
        "relabel (ensemble on rollout)": lambda st, ro, key: learner.relabel(
            st.pref, ro.obs, ro.action, ro.step.valid, dyn.reward_std),
        "PPO update": lambda st, ro, key: tr.improve(st, ro, ro.step.reward, dyn),
        "segments + queries + teacher + insert": lambda st, ro, key: learner.ask(
            observe(st.pref, ro), key, k, k, dyn.query, dyn.teacher_params()),
        "reward fit (incl. split losses)": lambda st, ro, key: learner.fit(
            st.pref, key, cfg.reward_updates, dyn.reward_lr),
        "split losses (held-out, L2 rule)": lambda st, ro, key: learner.split_losses(
            st.pref, key),
    }


def measure(env_name: str, width: int, repeats: int, tiny: bool) -> list[dict]:
    from rlhp.presets import preset
    from rlhp.envs import make_env
    from rlhp.train import make_train

    overrides = dict(total_steps=10**9, iterations_per_chunk=1)
    if tiny:
        overrides.update(num_envs=4, rollout_length=64, num_minibatches=4, update_epochs=1,
                         pretrain_updates=1, prefill_iterations=1, segment_capacity=32)
    cfg = preset(env_name, **overrides)
    tr = make_train(cfg, make_env(cfg.env, cfg.backend, cfg.num_envs, preference_episodes=True))
    dyn = cfg.dynamic()
    vm = (lambda f: jax.vmap(f)) if width > 1 else (lambda f: f)
    keys = jnp.stack([jax.random.PRNGKey(i) for i in range(width)])
    keys = keys if width > 1 else keys[0]
    state = jax.jit(vm(lambda key: tr.init(key, dyn)))(keys)
    _, ro = jax.jit(vm(tr.rollout))(state)
    holder = {"state": state}
    step = jax.jit(vm(lambda st: tr.train_step(st, dyn)))

    def full():
        holder["state"], m = step(holder["state"])
        return m

    rows = [("full train_step", full,
             flops.matmul_flops(vm(lambda st: tr.train_step(st, dyn)), state))]
    for name, fn in stage_functions(tr, dyn).items():
        jitted = jax.jit(vm(fn))
        rows.append((name, lambda j=jitted: j(state, ro, keys),
                     flops.matmul_flops(vm(fn), state, ro, keys)))
    out = []
    for name, fn, flop in rows:
        ms = 1000 * common.median_seconds(lambda: jax.block_until_ready(fn()), repeats)
        out.append({"stage": name, "sweep_width": width, "milliseconds": ms, "gflop": flop / 1e9,
                    "gflops_per_second": flop / 1e6 / ms})
    for r in out:
        r["share_of_step"] = r["milliseconds"] / out[0]["milliseconds"]
    return out


def main(argv=None):
    p = common.parser(__doc__.splitlines()[0])
    p.add_argument("--env", default="hopper")
    p.add_argument("--widths", default="1", help="comma-separated sweep widths (vmapped seeds)")
    args = p.parse_args(argv)
    widths = [int(w) for w in args.widths.split(",")]
    results = []
    for w in widths:
        results += measure(args.env, w, args.repeats, args.tiny)
    base = {r["stage"]: r["milliseconds"] for r in results if r["sweep_width"] == widths[0]}
    peak = common.matmul_gflops(args.repeats)
    for r in results:
        one = widths[0] == 1
        r["cost_vs_one_seed"] = r["milliseconds"] / base[r["stage"]] if one else None
        r["machine_matmul_gflops_per_second"] = peak
        r["floor_vs_one_seed"] = r["gflop"] / peak * 1000 / base[r["stage"]] if one else None
    return common.report(results, COLUMNS, args.json)


if __name__ == "__main__":
    main()
