"""Continue a run's policy on another reward: is a learned-reward run's failure the policy's
or r-hat's?

    python -m experiments.reward_switch RUN_DIR NEW_DIR [--reward teacher]
    python -m rlhp.run --run-dir NEW_DIR --resume

Copies RUN_DIR's config to NEW_DIR with ``reward`` changed and saves RUN_DIR's latest
checkpoint there without its reward learner: the policy and its optimiser, the env state
and the observation statistics carry over; the return scaling starts afresh (as it does
when exploration hands over to the task's reward). Resuming NEW_DIR then trains the same
policy on, e.g., the teacher's own reward from where the learned-reward run stood, to the
run's ``total_steps``, and evaluates it as usual. ``--reset-std`` also sets the policy's
action std back to its initial 1 (``log_std`` 0): exploration as at the start.
"""
from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run_dir", type=Path)
    p.add_argument("new_dir", type=Path)
    p.add_argument("--reward", default="teacher", choices=("teacher", "true"))
    p.add_argument("--reset-std", action="store_true",
                   help="set the policy's log_std parameters to 0 (std 1, as at init)")
    args = p.parse_args(argv)
    import jax
    import jax.numpy as jnp

    from experiments.run_dirs import fits, restore_run, start_run
    from rlhp import normalize, run

    if args.new_dir.exists():
        raise SystemExit(f"{args.new_dir} exists; choose a new directory")
    cfg, _, state, meta = restore_run(args.run_dir)
    new_cfg = cfg.replace(reward=args.reward)
    trainer, _, _ = run.prepare(new_cfg, args.new_dir, False)
    state = state.replace(pref=None, reward_scale=normalize.return_scale(new_cfg.num_envs))
    if args.reset_std:
        net = state.agent.params["params"]
        if "log_std" not in net:
            raise SystemExit(f"--reset-std: the policy of {cfg.env} has no action std")
        net = {**net, "log_std": jnp.zeros_like(net["log_std"])}
        params = {**state.agent.params, "params": net}
        state = state.replace(agent=state.agent.replace(params=params))
    abstract = jax.eval_shape(trainer.init, jax.random.PRNGKey(new_cfg.seed),
                              new_cfg.dynamic())
    if not fits(state, abstract):
        raise SystemExit(f"the state of {args.run_dir} does not fit a {args.reward!r} run")
    # the switched run's metrics continue the old run's up to the checkpoint
    rows = [line for line in (args.run_dir / "metrics.jsonl").read_text().splitlines()
            if json.loads(line)["iteration"] <= meta["iteration"]]
    start_run(args.new_dir, new_cfg, state, meta)
    (args.new_dir / "metrics.jsonl").write_text("".join(r + "\n" for r in rows))
    shutil.copy(args.run_dir / "config.json", args.new_dir / "config.before-switch.json")
    print(f"{args.new_dir}: the policy of {args.run_dir} at iteration {meta['iteration']}, "
          f"reward={args.reward}; continue with: python -m rlhp.run --run-dir "
          f"{args.new_dir} --resume")


if __name__ == "__main__":
    main()
