"""Command line: ``python -m rlhp.explain``, the interactive gridworld of the explainer.

Serves a page (the labelling page's Starlette app and server) on which the real learner
trains on the 5x5 gridworld chunk by chunk: the learned reward map with its greedy arrows
next to the hidden truth, reward match, optimal policy and the Bradley-Terry loss as they
change, play / pause / step, the presets and the query schemes (``rlhp.human.explainer``).
Prints one line, ``Explainer page: http://127.0.0.1:PORT/``, and serves until interrupted.

``--measure PRESET,...`` instead runs each preset to its end without a page and prints its
final figures (the "You are the labeler" preset answered by a scripted person who prefers
the path ending nearer the goal). Exit status: 0 done, 2 bad input.
"""
from __future__ import annotations

import argparse
import json
import sys
import time

from rlhp.run import EXIT_USAGE, Parser, UsageError

FIGURES = ("reward_match", "optimal_policy", "policy_optimal", "labels", "comparisons")


def parse_args(argv=None) -> argparse.Namespace:
    from rlhp.human.explainer import PRESETS
    p = Parser(prog="python -m rlhp.explain", description=__doc__.splitlines()[0])
    p.add_argument("--port", type=int, default=0, help="the page's port (default: a free one)")
    p.add_argument("--host", default="127.0.0.1",
                   help="the address to serve (anything but 127.0.0.1 needs --token)")
    p.add_argument("--token", help="a secret every request must carry (?token=... in the "
                   "page's address)")
    p.add_argument("--seed", type=int, default=0, help="the runs' seed (default 0)")
    p.add_argument("--preset", default="oracle",
                   help=f"the preset loaded at the start: {', '.join(PRESETS)} (default oracle)")
    p.add_argument("--measure", metavar="PRESET,...",
                   help="run these presets to their end without a page and print their "
                   "final figures")
    p.add_argument("--json", metavar="OUT", help="with --measure: the figures as JSON too")
    args = p.parse_args(argv)
    names = args.measure.split(",") if args.measure else [args.preset]
    unknown = [n for n in names if n not in PRESETS]
    if unknown:
        raise UsageError(f"preset {unknown[0]!r}: expected one of {', '.join(PRESETS)}")
    if not 0 <= args.seed < 2**31:
        raise UsageError(f"--seed {args.seed}: must lie in [0, {2**31 - 1}]")
    from rlhp.human.server import check_host
    try:
        check_host(args.host, args.token, args.port)
    except ValueError as e:
        raise UsageError(str(e)) from None
    return args


def measure(names: list[str], seed: int) -> list[dict]:
    """Each preset run to its end (a person's pairs answered by ``nearer_goal``); prints
    and returns its final figures."""
    from rlhp.human.explainer import Explainer, nearer_goal
    explainer, rows = Explainer(seed), []
    for name in names:
        t0 = time.time()
        explainer.load(name)
        while not explainer.finished:
            pair = explainer.query_pair()
            if pair is not None:
                obs, _ = explainer.store.segments(pair["pair"])
                explainer.answer(pair["pair"], nearer_goal(obs))
            else:
                explainer.step()
        snap = explainer.snapshot()
        row = {"preset": name, "title": snap["title"], "seed": seed,
               "env_steps": snap["env_steps"], "query": snap["query"],
               **{k: snap[k] for k in FIGURES}, "seconds": round(time.time() - t0, 1)}
        print(f"{row['title']}: reward match {row['reward_match']:.3f}, optimal policy "
              f"{row['optimal_policy']:.2f}, policy optimal {row['policy_optimal']:.2f}, "
              f"{row['labels']} labels, {row['env_steps']:,} env steps, {row['seconds']} s",
              flush=True)
        rows.append(row)
    return rows


def serve(args) -> None:
    from rlhp.human.explainer import Explainer
    from rlhp.human.explainer_app import Session, make_explainer_app
    from rlhp.human.server import Server
    session = Session(Explainer(args.seed)).start()
    session.submit("preset", args.preset)
    try:
        server = Server(make_explainer_app(session, args.token), args.host, args.port).start()
    except OSError as e:
        raise UsageError(f"--port {args.port}: cannot serve on {args.host}: {e.strerror}") from None
    print(f"Explainer page: {server.url}" + (f"?token={args.token}" if args.token else ""),
          flush=True)
    try:
        while True:
            time.sleep(1)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
        session.stop()


def main(argv=None) -> int:
    try:
        args = parse_args(argv)
        if args.measure:
            rows = measure(args.measure.split(","), args.seed)
            if args.json:
                with open(args.json, "w") as f:
                    json.dump(rows, f, indent=1)
        else:
            serve(args)
    except UsageError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_USAGE
    return 0


if __name__ == "__main__":
    sys.exit(main())
