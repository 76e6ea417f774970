"""Run configuration: one frozen dataclass, split into static and dynamic fields.

Static fields define a compilation (shapes, counts, env, network sizes). Dynamic fields
(learning rates, coefficients, later label budgets and teacher parameters) travel into the
jitted program as arrays (``Config.dynamic()``), so ``vmap`` can sweep them without
recompiling. Derived sizes are computed and checked once, in ``__post_init__``.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import jax.numpy as jnp
from flax import struct


FLAGS = {"total_steps": "steps"}  # config field -> CLI flag, where they differ


class ConfigError(ValueError):
    """A configuration that cannot run; the message is one line for the user."""


@struct.dataclass
class Dynamic:
    """The array-valued (vmappable) part of a config; every field is a float32 scalar."""

    learning_rate: jnp.ndarray
    gamma: jnp.ndarray
    gae_lambda: jnp.ndarray
    clip_eps: jnp.ndarray
    ent_coef: jnp.ndarray
    vf_coef: jnp.ndarray
    max_grad_norm: jnp.ndarray


DYNAMIC_FIELDS = tuple(f.name for f in dataclasses.fields(Dynamic))


@dataclass(frozen=True)
class Config:
    # --- static: what the program is ---
    env: str = "hopper"
    backend: str = "auto"
    num_envs: int = 16
    rollout_length: int = 128
    """T: env steps per env per iteration."""
    total_steps: int = 1_000_000
    """Env steps over all envs; rounded down to whole iterations."""
    update_epochs: int = 10
    num_minibatches: int = 32
    hidden: tuple = (64, 64)
    normalize_obs: bool = True
    scale_reward: bool = True
    """Divide the learner's reward by the running std of its discounted return."""
    anneal_lr: bool = True
    iterations_per_chunk: int = 1
    """Iterations per jitted call of the host loop (logging happens between calls)."""
    eval_episodes: int = 16
    # --- dynamic: arrays inside the program ---
    learning_rate: float = 3e-4
    gamma: float = 0.99
    gae_lambda: float = 0.95
    clip_eps: float = 0.2
    ent_coef: float = 0.0
    vf_coef: float = 0.5
    max_grad_norm: float = 0.5
    # --- run identity ---
    seed: int = 0
    reward: str = "true"

    def __post_init__(self):
        for name in ("num_envs", "rollout_length", "total_steps", "update_epochs",
                     "num_minibatches", "iterations_per_chunk", "eval_episodes"):
            if getattr(self, name) <= 0:
                flag = FLAGS.get(name, name.replace("_", "-"))
                raise ConfigError(f"--{flag} must be positive, got {getattr(self, name)}")
        if self.batch_size % self.num_minibatches:
            raise ConfigError(f"num_envs*rollout_length = {self.batch_size} is not divisible by "
                              f"num_minibatches = {self.num_minibatches}")
        if self.num_iterations < 1:
            raise ConfigError(f"--steps {self.total_steps} is less than one iteration "
                              f"({self.batch_size} env steps = num_envs x rollout_length)")
        if self.learning_rate <= 0:
            raise ConfigError(f"--learning-rate must be positive, got {self.learning_rate}")
        if not 0 <= self.gamma <= 1 or not 0 <= self.gae_lambda <= 1:
            raise ConfigError("gamma and gae_lambda must lie in [0, 1]")
        if self.reward not in ("true",):
            raise ConfigError(f"unknown --reward {self.reward!r}; choose from: true")

    @property
    def batch_size(self) -> int:
        return self.num_envs * self.rollout_length

    @property
    def minibatch_size(self) -> int:
        return self.batch_size // self.num_minibatches

    @property
    def num_iterations(self) -> int:
        return self.total_steps // self.batch_size

    @property
    def steps(self) -> int:
        """Env steps actually run: whole iterations."""
        return self.num_iterations * self.batch_size

    def dynamic(self) -> Dynamic:
        return Dynamic(**{k: jnp.asarray(getattr(self, k), jnp.float32) for k in DYNAMIC_FIELDS})

    def replace(self, **kw) -> "Config":
        return dataclasses.replace(self, **kw)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


# Per-family defaults that learn (the CLI and tests start from these).
PRESETS = {
    "gridworld": dict(num_envs=64, rollout_length=16, total_steps=163_840, update_epochs=4,
                      num_minibatches=4, learning_rate=5e-3, gamma=0.9, ent_coef=0.01,
                      normalize_obs=False, scale_reward=False, iterations_per_chunk=10),
    "mujoco": dict(),
}


def preset(env: str, **overrides) -> Config:
    """The default config for ``env`` with ``overrides`` applied (None values ignored)."""
    base = PRESETS["gridworld" if env == "gridworld" else "mujoco"]
    kw = {**base, **{k: v for k, v in overrides.items() if v is not None}}
    return Config(env=env, **kw)
