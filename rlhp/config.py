"""Run configuration: one frozen dataclass, split into static and dynamic fields.

Static fields define a compilation (shapes, counts, env, network sizes). Dynamic fields
(learning rates, coefficients, later label budgets and teacher parameters) travel into the
jitted program as arrays (``Config.dynamic()``), so ``vmap`` can sweep them without
recompiling. Derived sizes are computed and checked once, in ``__post_init__``.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import jax.numpy as jnp
import numpy as np
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
    labels: jnp.ndarray           # label budget (queries asked, skips included)
    upfront_fraction: jnp.ndarray  # share of the budget asked before RL starts
    reward_lr: jnp.ndarray
    reward_std: jnp.ndarray
    query: jnp.ndarray            # index into rlhp.preferences.queries.QUERIES
    teacher: jnp.ndarray          # index into rlhp.preferences.teachers.TEACHERS
    teacher_beta: jnp.ndarray
    teacher_mistake: jnp.ndarray
    teacher_skip: jnp.ndarray
    teacher_equal: jnp.ndarray
    teacher_myopia: jnp.ndarray

    def teacher_params(self):
        from rlhp.preferences.teachers import TeacherParams
        return TeacherParams(kind=self.teacher, beta=self.teacher_beta,
                             mistake=self.teacher_mistake, skip=self.teacher_skip,
                             equal=self.teacher_equal, myopia=self.teacher_myopia)


DYNAMIC_FIELDS = tuple(f.name for f in dataclasses.fields(Dynamic))
REWARDS = ("learned", "true", "teacher")
"""What the policy learns from: r-hat fit to the teacher's labels; the task's standard
reward in its standard episodes (the baseline); or the teacher's own reward in the
preference episodes (the ceiling a learned reward can reach there)."""


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
    """Most iterations per jitted call of the host loop (logging happens between calls);
    the run uses the largest count up to this that divides the number of iterations."""
    eval_episodes: int = 16
    down_steps: int = 25
    """Preference episodes (envpool MuJoCo): unhealthy steps a fallen body lies before it
    restarts inside the episode (``rlhp.envs.envpool_env.DOWN_STEPS``; 0: never)."""
    fall_penalty: float = 10.0
    """Preference episodes (envpool MuJoCo): what each unhealthy step costs in the teacher's
    reward, on top of the withheld healthy bonus (``rlhp.envs.envpool_env.FALL_PENALTY``)."""
    # reward learning (static)
    offline: bool = False
    """Ask every label from the initial policy, then freeze the reward model (ablation)."""
    ensemble_size: int = 3
    reward_hidden: tuple = (64, 64)
    reward_uses_action: bool = True
    """r-hat(obs, action) as in the paper; False: r-hat(obs)."""
    reward_linear: bool = False
    """r-hat = MLP + a linear term of its inputs (``rlhp.preferences.reward_model.RewardMLP.linear``)."""
    segment_length: int = 0
    """L in env steps; 0: 1.5 s of task time, clipped to [15, 60]."""
    segment_capacity: int = 256
    max_labels: int = 0
    """Capacity of the comparison database (0: the label budget); bounds swept budgets."""
    queries_per_iteration: int = 0
    """Static maximum of labels asked per iteration (0: derived from the schedule)."""
    label_horizon: float = 2e6
    """H of the label schedule: after the up-front labels, the rate is proportional to
    H / (T + H) at env step T (the paper's MuJoCo H: 2e6)."""
    candidate_factor: int = 10
    reward_batch: int = 64
    reward_updates: int = 8
    """Reward-model minibatch steps per iteration."""
    reward_l2_max: float = 10.0
    """Upper bound of the adaptive L2 weight (a weight on each member's mean squared
    parameter, so 10 is ~0.002 per parameter on the sum for a Hopper-sized net)."""
    reward_l2_init: float = 1e-4
    """Starting value of the adaptive L2 weight."""
    uncertainty_bonus: float = 0.0
    """beta_0 of a RUNE-style exploration bonus (Liang et al. 2022): the policy's reward is
    r-hat + beta_t * (the members' std about r-hat), beta_t falling linearly from beta_0 at
    the first RL iteration to 0 at the end (0: r-hat alone, as the paper, and the members'
    spread is not computed)."""
    reward_stats_window: int = 0
    """Iterations of transitions that r-hat's per-member normalisation statistics follow
    (older ones are forgotten); 0: every transition since the start."""
    pretrain_updates: int = 500
    pretrain_rounds: int = 1
    """The pretraining updates run in this many rounds, the adaptive L2 weight adjusting
    after each (1: one adjustment, after all of them)."""
    prefill_iterations: int = 4
    """Rollouts of the initial policy collected before the up-front labels."""
    explore_steps: int = 0
    """Env steps (whole iterations, counted in ``total_steps``) at the start of the run in
    which the policy maximises a state-entropy reward (``rlhp.explore``) before the
    up-front labels are asked; the label schedule starts when they end (0: none)."""
    # --- dynamic: arrays inside the program ---
    learning_rate: float = 3e-4
    gamma: float = 0.99
    gae_lambda: float = 0.95
    clip_eps: float = 0.2
    ent_coef: float = 0.0
    vf_coef: float = 0.5
    max_grad_norm: float = 0.5
    labels: int = 700
    upfront_fraction: float = 0.25
    """Share of the budget asked from the initial policy before RL starts (1.0 offline)."""
    reward_lr: float = 1e-3
    reward_std: float = 1.0
    query: str = "disagreement"
    teacher: str = "oracle"
    teacher_beta: float = 1.0
    teacher_mistake: float = 0.1
    teacher_skip: float = 0.1
    teacher_equal: float = 0.1
    teacher_myopia: float = 0.9
    # --- run identity ---
    seed: int = 0
    reward: str = "learned"

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
        from rlhp.preferences.queries import QUERIES
        from rlhp.preferences.teachers import TEACHERS
        for name, value, choices in [("reward", self.reward, REWARDS),
                                     ("query", self.query, QUERIES),
                                     ("teacher", self.teacher, TEACHERS)]:
            if value not in choices:
                raise ConfigError(f"unknown --{name} {value!r}; choose from: {', '.join(choices)}")
        if self.explore_steps < 0 or self.explore_iterations >= self.num_iterations:
            raise ConfigError(f"explore_steps={self.explore_steps} must lie in [0, --steps) "
                              f"and leave at least one iteration of RL")
        if self.label_horizon <= 0:
            raise ConfigError(f"label_horizon must be positive, got {self.label_horizon}")
        if self.uncertainty_bonus < 0:
            raise ConfigError(f"uncertainty_bonus must be >= 0, got {self.uncertainty_bonus}")
        if self.labels <= 0:
            raise ConfigError(f"--labels must be positive, got {self.labels}")
        if self.max_labels and self.labels > self.max_labels:
            raise ConfigError(f"--labels {self.labels} exceeds the database capacity "
                              f"max_labels={self.max_labels}")
        if self.offline and self.reward != "learned":
            raise ConfigError("--offline needs --reward=learned")
        if self.segment_length < 0 or self.segment_length > self.rollout_length:
            raise ConfigError(f"segment length {self.segment_length} must lie in "
                              f"[1, rollout length {self.rollout_length}]")

    @property
    def preference_episodes(self) -> bool:
        """Whether the run trains in the paper's fixed-horizon preference episodes."""
        return self.reward != "true"

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
    def explore_iterations(self) -> int:
        """Iterations of unsupervised exploration, run before the up-front labels."""
        return self.explore_steps // self.batch_size

    @property
    def rl_iterations(self) -> int:
        """Iterations after exploration: the host loop's and the label schedule's."""
        return self.num_iterations - self.explore_iterations

    @property
    def rl_steps(self) -> int:
        """Env steps after exploration: the span the label schedule spreads the budget over."""
        return self.rl_iterations * self.batch_size

    @property
    def chunk_iterations(self) -> int:
        """Iterations per jitted chunk: the largest divisor of ``rl_iterations`` that is at
        most ``iterations_per_chunk``, so whole chunks cover the run exactly."""
        n = self.rl_iterations
        return max(d for d in range(1, min(self.iterations_per_chunk, n) + 1) if n % d == 0)

    @property
    def steps(self) -> int:
        """Env steps actually run: whole iterations."""
        return self.num_iterations * self.batch_size

    @property
    def label_capacity(self) -> int:
        return self.max_labels or self.labels

    @property
    def upfront_labels(self) -> int:
        """Static maximum of the labels asked before RL starts."""
        if self.offline:
            return self.label_capacity
        return int(np.ceil(self.upfront_fraction * self.label_capacity))

    @property
    def labels_per_iteration(self) -> int:
        """Static maximum K of labels asked in one iteration (a mask picks the k due)."""
        if self.queries_per_iteration:
            return self.queries_per_iteration
        rest = self.label_capacity - self.upfront_labels
        from rlhp.preferences.schedule import schedule_fraction
        # the rate is highest in the first iteration: its share of the rest, with room
        first = rest * schedule_fraction(self.batch_size, self.rl_steps, self.label_horizon, np)
        return max(2, -(-3 * rest // self.rl_iterations) + 1, int(np.ceil(2 * first)) + 1)

    def dynamic(self) -> Dynamic:
        from rlhp.preferences.queries import QUERIES
        from rlhp.preferences.teachers import TEACHERS
        values = {k: getattr(self, k) for k in DYNAMIC_FIELDS if hasattr(self, k)}
        values.update(query=QUERIES.index(self.query), teacher=TEACHERS.index(self.teacher),
                      upfront_fraction=1.0 if self.offline else self.upfront_fraction)
        return Dynamic(**{k: jnp.asarray(v, jnp.float32) for k, v in values.items()})

    def replace(self, **kw) -> "Config":
        return dataclasses.replace(self, **kw)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Config":
        """Inverse of ``to_dict`` (JSON lists back to tuples); raises ``ConfigError``."""
        fields = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - set(fields))
        if unknown:
            raise ConfigError(f"unknown config field(s): {', '.join(unknown)}")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})

    def override(self, assignments: list[str]) -> "Config":
        """Apply ``key=value`` strings (values parsed as Python literals, else strings)."""
        import ast
        fields = {f.name for f in dataclasses.fields(self)}
        kw = {}
        for item in assignments:
            key, sep, text = item.partition("=")
            if not sep or key not in fields:
                raise ConfigError(f"--set {item!r}: expected FIELD=VALUE with FIELD one of the "
                                  f"Config fields (e.g. reward_updates=16)")
            try:
                value = ast.literal_eval(text)
            except (ValueError, SyntaxError):
                value = text
            default = getattr(self, key)
            want = (int, float) if type(default) in (int, float) else type(default)
            if isinstance(value, list):
                value = tuple(value)
            if not isinstance(value, want) or (isinstance(value, bool) and want != bool):
                raise ConfigError(f"--set {item!r}: {key} takes a {type(default).__name__}")
            kw[key] = value
        return self.replace(**kw)


# Per-family defaults that learn (the CLI and tests start from these).
PRESETS = {
    "gridworld": dict(num_envs=64, rollout_length=16, total_steps=163_840, update_epochs=4,
                      num_minibatches=4, learning_rate=5e-3, gamma=0.9, ent_coef=0.01,
                      normalize_obs=False, scale_reward=False, iterations_per_chunk=10,
                      labels=200, reward_uses_action=False, segment_length=4, segment_capacity=512, reward_batch=32,
                      reward_updates=16, pretrain_updates=200, prefill_iterations=1),
    "mujoco": dict(),
}


# Per-family defaults of runs in preference episodes (a learned reward, or the teacher's own
# reward as its ceiling), on top of PRESETS (the --reward=true baseline keeps PRESETS
# alone). MuJoCo:
# - the paper's discounting for its MuJoCo tasks (gamma 0.995, lambda 0.97);
# - r-hat on observations only: the teacher's reward has no control cost, so it is a
#   function of the states it watches, and an r-hat that reads the action hands PPO a
#   per-step lever (actions r-hat happens to like) that does not move the body;
# - an adaptive L2 weight free to rise to 1,000 (with the old ceiling of 10 it sat at the
#   ceiling from ~150k steps on, validation loss 3-4x training loss), adapting during
#   pretraining too (62 rounds of 8 updates, as between iterations);
# - 16 reward-model updates per iteration and 5 PPO epochs;
# - the label schedule's H at 1e5, not the paper's 2e6: with 2e6 a 1M-step run asks at a
#   nearly flat rate (238 labels by 100k steps), while r-hat fit to the random policy's
#   clips is still uncorrelated with the teacher; with 1e5, 327 by 100k and 416 by 200k.
# Hopper, 1M steps, standard return: 74 / 117 / 94 (seeds 0-2) before the L2 ceiling and
# the update counts; with them (and H = 2e6) 2,027 / 168 / 2,566 / 1,009 / 179 (seeds 0-4)
# while r-hat's dense layers ran on the batched clip shape, and 97 / 319 / 1,028 / 293
# (seeds 0-3) since they run on 2-D rows (another rounding, other paths), and 1,017 / 1,011 /
# 1,023 / 1,050 on seeds 4-7: mean 730 over seeds 0-7. With H = 1e5: 2,947 / 2,928 / 831 /
# 1,000 / 155 / 1,446 / 1,021 / 1,475, mean 1,475; on seeds 4-7 alone, run after H was
# chosen, 1,024 against 1,026 (experiments/results/hopper*/seeds.md). The true reward:
# 3,300 / 3,508 / 2,943 / 2,730 / 3,124 / 2,764 / 3,236 / 3,467, mean 3,134.
PREFERENCE_PRESETS = {
    "gridworld": dict(),
    "mujoco": dict(gamma=0.995, gae_lambda=0.97, reward_uses_action=False,
                   reward_l2_max=1000.0, pretrain_rounds=62, reward_updates=16,
                   update_epochs=5, label_horizon=1e5),
}


def preset(env: str, **overrides) -> Config:
    """The default config for ``env`` with ``overrides`` applied (None values ignored)."""
    family = "gridworld" if env == "gridworld" else "mujoco"
    kw = {k: v for k, v in overrides.items() if v is not None}
    base = dict(PRESETS[family])
    if kw.get("reward", Config.reward) != "true":
        base.update(PREFERENCE_PRESETS[family])
    return Config(env=env, **{**base, **kw})
