"""Environment registry: short task names resolved to a backend.

``make_env("hopper", "auto", B)`` picks the fastest faithful backend on this host:
envpool's C++ MuJoCo on a CPU host (the standard Gymnasium v5 task, and measured faster
there than brax at every batch size we use), brax on an accelerator, where its physics
runs on the device inside the jitted step.
"""
from __future__ import annotations

import jax

from rlhp.envs.base import Env, EnvSpec, Step
from rlhp.envs import brax_env, envpool_env, gridworld

BACKENDS = ("gridworld", "brax", "envpool")
TASKS = {
    "gridworld": ("gridworld",),
    "brax": brax_env.TASKS,
    "envpool": tuple(envpool_env.MUJOCO_IDS),
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


def make_env(name: str, backend: str, num_envs: int, seed: int = 0,
             preference_episodes: bool = False,
             down_steps: int = envpool_env.DOWN_STEPS,
             fall_penalty: float = envpool_env.FALL_PENALTY) -> Env:
    """A batched ``Env`` of ``num_envs`` copies of ``name`` on ``backend`` (or "auto").

    ``preference_episodes``: the paper's treatment for preference runs (fixed horizon,
    falling penalised instead of terminating, control costs hidden from the teacher);
    evaluation always uses the standard task. ``down_steps`` (envpool): unhealthy steps a
    fallen body lies before it restarts in preference episodes, and ``fall_penalty`` what each
    unhealthy step costs there.
    """
    backend = resolve_backend(name, backend)
    if backend == "gridworld":
        return gridworld.make(num_envs)
    if backend == "brax":
        return brax_env.make(name, num_envs, preference_episodes=preference_episodes)
    return envpool_env.make(name, num_envs, seed=seed, preference_episodes=preference_episodes,
                            down_steps=down_steps, fall_penalty=fall_penalty)


__all__ = ["Env", "EnvSpec", "Step", "EnvError", "make_env", "resolve_backend", "ENV_NAMES"]
