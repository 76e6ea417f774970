"""Where a training iteration's time goes: each stage of ``train_step`` timed on its own.

Stages of the default Hopper preference run (16 envs x 128 steps): the rollout (env +
policy), relabelling with the ensemble, one PPO update (epochs x minibatches), segment
capture + query selection + teacher + insert, reward-model fitting (minibatch steps), and
the held-out split losses that drive the adaptive L2. The full step is timed too, so the
stages can be compared with the whole.

    python -m benchmarks.stages --json stages.json
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from benchmarks import common

COLUMNS = ["stage", "milliseconds", "share_of_step"]


def main(argv=None):
    p = common.parser(__doc__.splitlines()[0])
    p.add_argument("--env", default="hopper")
    args = p.parse_args(argv)
    from rlhp.config import preset
    from rlhp.envs import make_env
    from rlhp.train import make_train

    overrides = dict(total_steps=10**9, iterations_per_chunk=1)
    if args.tiny:
        overrides.update(num_envs=4, rollout_length=64, num_minibatches=4, update_epochs=1,
                         pretrain_updates=1, prefill_iterations=1, segment_capacity=32)
    cfg = preset(args.env, **overrides)
    env = make_env(cfg.env, cfg.backend, cfg.num_envs, preference_episodes=True)
    tr = make_train(cfg, env)
    dyn = cfg.dynamic()
    key = jax.random.PRNGKey(0)
    state = jax.jit(tr.init)(key, dyn)
    learner, pref = tr.learner, state.pref
    holder = {"state": state}
    step = jax.jit(tr.train_step)
    ro_fn = jax.jit(tr.rollout)
    _, ro = ro_fn(state)
    s = ro.step
    done = s.terminated | s.truncated
    relabel = jax.jit(lambda p: learner.relabel(p, ro.obs, ro.action, s.valid, dyn.reward_std))
    update = jax.jit(lambda st: tr.ppo_update(st, ro, s.reward, dyn))
    k = cfg.labels_per_iteration
    ask = jax.jit(lambda p, key: learner.ask(
        learner.observe(p, ro.obs, ro.action, s.reward, s.valid, done), key, k, k,
        dyn.query, dyn.teacher_params()))
    fit_only = jax.jit(lambda p, key: learner.fit(p, key, cfg.reward_updates, dyn.reward_lr))
    split = jax.jit(learner.split_losses)

    def timed(name, fn):
        ms = 1000 * common.median_seconds(lambda: jax.block_until_ready(fn()), args.repeats)
        return {"stage": name, "milliseconds": ms}

    def full():
        holder["state"], m = step(holder["state"], dyn)
        return m

    rows = [timed("full train_step", full),
            timed("rollout (env + policy)", lambda: ro_fn(state)),
            timed("relabel (ensemble on rollout)", lambda: relabel(pref)),
            timed("PPO update", lambda: update(state)),
            timed("segments + queries + teacher + insert", lambda: ask(pref, key)),
            timed("reward fit (incl. split losses)", lambda: fit_only(pref, key)),
            timed("split losses (held-out, L2 rule)", lambda: split(pref, key))]
    for r in rows:
        r["share_of_step"] = r["milliseconds"] / rows[0]["milliseconds"]
    return common.report(rows, COLUMNS, args.json)


if __name__ == "__main__":
    main()
