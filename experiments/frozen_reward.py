"""A fresh policy on another run's final r-hat, frozen: does that reward, whole, teach the task?

    python -m experiments.frozen_reward RUN_DIR NEW_DIR [--seed N] [--set FIELD=VALUE ...]
    python -m rlhp.run --run-dir NEW_DIR --resume

NEW_DIR is an offline run (the reward model never changes) with RUN_DIR's config, ``--seed``
and ``--set`` applied; its initial state (a fresh policy, fresh observation statistics) gets
RUN_DIR's last reward model whole: parameters, the input normalisation it was fit with and
its members' output statistics. Resuming NEW_DIR trains that policy from scratch on RUN_DIR's
r-hat to ``total_steps`` and evaluates it as usual. (The reward model the new run's own
offline pretraining fits is discarded.) If a run that learned the task hands a fresh policy
an r-hat that does not teach it, that r-hat is right only near the policy it was fit
beside: on Hopper, both hopping sources tried (docs/hopper-valley.md).
"""
from __future__ import annotations

import argparse
import secrets
import time
from pathlib import Path


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run_dir", type=Path)
    p.add_argument("new_dir", type=Path)
    p.add_argument("--seed", type=int, default=None, help="seed of the fresh policy "
                   "(default: RUN_DIR's)")
    p.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                   help="config overrides of the new run, e.g. gamma=0.99")
    args = p.parse_args(argv)
    import jax

    from experiments.run_dirs import fits, restore_run, start_run
    from rlhp import run
    from rlhp.config import ConfigError

    if args.new_dir.exists():
        raise SystemExit(f"{args.new_dir} exists; choose a new directory")
    cfg, _, source, _ = restore_run(args.run_dir)
    if cfg.reward != "learned":
        raise SystemExit(f"{args.run_dir}: reward={cfg.reward!r} has no r-hat to hand over")
    try:
        new_cfg = cfg.replace(offline=True, seed=cfg.seed if args.seed is None else args.seed)
        new_cfg = new_cfg.override(args.set)
    except ConfigError as e:
        raise SystemExit(f"--set: {e}") from None
    trainer, _, _ = run.prepare(new_cfg, args.new_dir, False)
    t0 = time.time()
    fresh = jax.jit(trainer.init)(jax.random.PRNGKey(new_cfg.seed), new_cfg.dynamic())
    state = fresh.replace(pref=source.pref)
    if not fits(state, fresh):
        raise SystemExit(f"the reward model of {args.run_dir} does not fit the new config")
    meta = {"iteration": new_cfg.explore_iterations, "train_seconds": time.time() - t0,
            "wandb_id": secrets.token_hex(4)}
    start_run(args.new_dir, new_cfg, state, meta)
    print(f"{args.new_dir}: a fresh policy (seed {new_cfg.seed}) on the frozen r-hat of "
          f"{args.run_dir}; train it with: python -m rlhp.run --run-dir {args.new_dir} --resume")


if __name__ == "__main__":
    main()
