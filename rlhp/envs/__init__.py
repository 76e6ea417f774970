"""Environment registry: short task names resolved to a backend.

The Atari games (``rlhp.envs.atari``: pong, beamrider, breakout, enduro, qbert, seaquest,
spaceinvaders) run on envpool only.

``make_env("hopper", "auto", B)`` picks the fastest faithful backend on this host:
envpool's C++ MuJoCo on a CPU host (the standard Gymnasium v5 task, and measured faster
there than brax at every batch size we use), brax on an accelerator, where its physics
runs on the device inside the jitted step.
"""
from __future__ import annotations

from typing import Sequence

import jax

from rlhp.envs.base import Env, EnvSpec, Step
from rlhp.envs import atari, brax_env, envpool_env, episodes, gridworld

BACKENDS = ("gridworld", "brax", "envpool")
TASKS = {
    "gridworld": ("gridworld",),
    "brax": brax_env.TASKS,
    "envpool": tuple(envpool_env.MUJOCO_IDS) + tuple(atari.GAMES),
}
ENV_NAMES = tuple(sorted({n for names in TASKS.values() for n in names}))


class EnvError(ValueError):
    """A task/backend combination that does not exist."""


def resolve_backend(name: str, backend: str = "auto") -> str:
    """The backend that will run task ``name``; raises ``EnvError`` on bad input."""
    if name not in ENV_NAMES:
        raise EnvError(f"unknown env {name!r}; choose from: {', '.join(ENV_NAMES)}")
    if backend == "auto":
        if name == "gridworld":
            return "gridworld"
        on_cpu = jax.default_backend() == "cpu"
        if name in TASKS["envpool"] and (on_cpu or name not in TASKS["brax"]):
            return "envpool"
        return "brax"
    if backend not in BACKENDS:
        raise EnvError(f"unknown backend {backend!r}; choose from: auto, {', '.join(BACKENDS)}")
    if name not in TASKS[backend]:
        raise EnvError(f"env {name!r} is not available on backend {backend!r}; "
                       f"it has: {', '.join(TASKS[backend])}")
    return backend


def make_env(name: str, backend: str, num_envs: int, seed: int | Sequence[int] = 0,
             preference_episodes: bool = False,
             down_steps: int = episodes.DOWN_STEPS,
             fall_penalty: float = episodes.FALL_PENALTY,
             end_penalty: float = atari.END_PENALTY) -> Env:
    """A batched ``Env`` of ``num_envs`` copies of ``name`` on ``backend`` (or "auto").

    ``preference_episodes``: the paper's treatment for preference runs
    (``rlhp.envs.episodes``: a fixed horizon, each unhealthy step costing ``fall_penalty``
    instead of ending the episode, a fallen body restarting after ``down_steps`` unhealthy
    steps, control costs hidden from the teacher), the same on brax and envpool; the
    gridworld has no such episodes. On Atari ``preference_episodes`` hides every episode
    end from the agent and costs the teacher ``end_penalty`` at a game's end
    (``rlhp.envs.atari``). Evaluation always uses the standard task.

    ``seed``: the envpool pool's; a sequence gives a sweep's env, one pool per member
    seeded ``seed[m]`` (``rlhp.envs.members``; MuJoCo only). JAX-native backends draw
    from the keys they are given and ignore it.
    """
    backend = resolve_backend(name, backend)
    if backend == "gridworld":
        return gridworld.make(num_envs)
    if name in atari.GAMES:
        if envpool_env.for_members(seed):
            raise EnvError(f"{name}: an Atari pool serves one run; sweeps of Atari games "
                           f"are not built yet")
        return atari.make(name, num_envs, seed=seed, preference=preference_episodes,
                          end_penalty=end_penalty)
    if preference_episodes:
        task = (brax_env.task(name, num_envs) if backend == "brax"
                else envpool_env.task(name, num_envs, seed=seed))
        return episodes.preference_episodes(task, down_steps, fall_penalty)
    if backend == "brax":
        return brax_env.make(name, num_envs)
    return envpool_env.make(name, num_envs, seed=seed)


__all__ = ["Env", "EnvSpec", "Step", "EnvError", "make_env", "resolve_backend", "ENV_NAMES"]
