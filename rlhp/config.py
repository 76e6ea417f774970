"""Run configuration: one flat frozen ``Config`` composed of sections.

Each field is declared once, in its section (``EnvConfig``, ``AgentConfig``, ...), with its
metadata: its one-line meaning, its allowed range or choices, and whether it is dynamic.
Static fields define a compilation (shapes, counts, env, network sizes). Dynamic fields
(learning rates, coefficients, label budgets, teacher parameters) travel into the jitted
program as float32 arrays (``Config.dynamic()``, a ``Dynamic`` pytree generated from the
metadata), so ``vmap`` can sweep them without recompiling.

``Config.__post_init__`` checks every field against its metadata (one loop), then the
cross-field rules, and computes the derived sizes once (``derive``); a config that cannot
run raises ``ConfigError`` with one line naming the field, its value and what is allowed.
Presets live in ``rlhp.presets``; CLI flags in ``rlhp.run``.
"""

import dataclasses
import importlib
import math
import numbers
from dataclasses import dataclass

import jax.numpy as jnp
import numpy as np
from flax import struct

INT32_MAX = 2**31 - 1
"""Step counters, seeds (envpool's are int32) and the like."""
FLOAT32_MAX = float(np.finfo(np.float32).max)
EXACT_F32 = 2**24
"""Counts that travel as float32 (label budgets) are exact up to here."""
REWARDS = ("learned", "true", "teacher")
"""What the policy learns from: r-hat fit to the teacher's labels; the task's standard
reward in its standard episodes (the baseline); or the teacher's own reward in the
preference episodes (the ceiling a learned reward can reach there)."""


class ConfigError(ValueError):
    """A configuration that cannot run; the message is one line for the user. ``field``:
    the config field at fault, when there is one."""

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.field = field


def setting(default, meaning: str, *, low=None, high=None, open_low: bool = False,
            choices=None, dynamic: bool = False):
    """A config field with its metadata: ``meaning`` (one line); the allowed range
    ``[low, high]`` (``(low, high]`` with ``open_low``; for tuples, of each entry) or
    ``choices`` (a tuple, or ``"module:NAME"`` read when first needed); ``dynamic``: an
    array inside the jitted program (vmappable by sweeps)."""
    return dataclasses.field(default=default, metadata=dict(
        meaning=meaning, low=low, high=high, open_low=open_low, choices=choices,
        dynamic=dynamic))


def positive(default, meaning, high=FLOAT32_MAX, **kw):
    """A float in ``(0, high]``."""
    return setting(default, meaning, low=0.0, high=high, open_low=True, **kw)


def probability(default, meaning, **kw):
    return setting(default, meaning, low=0.0, high=1.0, **kw)


SECTIONS: dict[str, type] = {}


def section(name: str):
    """Declare a frozen dataclass of fields as config section ``name``."""
    def wrap(cls):
        cls = dataclass(frozen=True)(cls)
        SECTIONS[name] = cls
        return cls
    return wrap


@section("run")
class RunConfig:
    seed: int = setting(0, "random seed (PRNG key; envpool seeds its pools with it)",
                        low=0, high=INT32_MAX)
    reward: str = setting("learned", "what the policy learns from: r-hat fit to the teacher's "
                          "labels, the task's reward (baseline), or the teacher's own reward",
                          choices=REWARDS)
    total_steps: int = setting(1_000_000, "env steps over all envs; rounded down to whole "
                               "iterations", low=1, high=INT32_MAX)
    iterations_per_chunk: int = setting(
        1, "most iterations per jitted call of the host loop (logging happens between "
        "calls); the run uses the largest count up to this that divides the iterations",
        low=1, high=INT32_MAX)


@section("env")
class EnvConfig:
    env: str = setting("hopper", "task name", choices="rlhp.envs:ENV_NAMES")
    backend: str = setting("auto", "backend that runs the task (auto: the fastest here)",
                           choices=("auto", "gridworld", "brax", "envpool"))
    num_envs: int = setting(16, "B: parallel envs", low=1, high=2**16)
    rollout_length: int = setting(128, "T: env steps per env per iteration", low=1, high=2**16)
    eval_episodes: int = setting(16, "episodes of the final policy's evaluation on the "
                                 "standard task", low=1, high=2**16)
    down_steps: int = setting(
        25, "preference episodes (MuJoCo, brax and envpool): unhealthy steps a fallen body "
        "lies before it restarts inside the episode (0: never; rlhp.envs.episodes)",
        low=0, high=INT32_MAX)
    fall_penalty: float = setting(
        10.0, "preference episodes (MuJoCo, brax and envpool): what each unhealthy step "
        "costs in the teacher's reward, on top of the withheld healthy bonus", low=0.0,
        high=FLOAT32_MAX)
    end_penalty: float = setting(
        10.0, "preference runs on Atari: what the end of a game costs in the teacher's reward "
        "(not in Pong; rlhp.envs.atari)", low=0.0, high=FLOAT32_MAX)


@section("agent")
class AgentConfig:
    agent: str = setting("ppo", "the policy learner: PPO (MLP) or A2C (the Nature CNN, "
                         "for image observations)", choices=("ppo", "a2c"))
    a2c_steps: int = setting(5, "A2C: n of its n-step returns; a rollout is learned from "
                             "as rollout_length / n updates (must divide rollout_length)",
                             low=1, high=2**16)
    update_epochs: int = setting(10, "PPO epochs per iteration", low=1, high=2**16)
    num_minibatches: int = setting(32, "PPO minibatches per epoch (must divide "
                                   "num_envs x rollout_length)", low=1, high=INT32_MAX)
    hidden: tuple = setting((64, 64), "hidden layer sizes of the actor-critic MLP",
                            low=1, high=2**16)
    normalize_obs: bool = setting(True, "normalise the policy's observations by running "
                                  "statistics")
    scale_reward: bool = setting(True, "divide the learner's reward by the running std of "
                                 "its discounted return")
    anneal_lr: bool = setting(True, "anneal the policy's learning rate linearly to 0")
    learning_rate: float = positive(3e-4, "step size of the policy (PPO: Adam, A2C: RMSProp)",
                                    dynamic=True)
    gamma: float = probability(0.99, "discount", dynamic=True)
    gae_lambda: float = probability(0.95, "GAE lambda", dynamic=True)
    clip_eps: float = positive(0.2, "PPO ratio clip range", dynamic=True)
    ent_coef: float = setting(0.0, "entropy bonus coefficient", low=0.0, high=FLOAT32_MAX,
                              dynamic=True)
    vf_coef: float = setting(0.5, "value loss coefficient", low=0.0, high=FLOAT32_MAX,
                             dynamic=True)
    max_grad_norm: float = positive(0.5, "global gradient norm clip", dynamic=True)
    uncertainty_bonus: float = setting(
        0.0, "beta_0 of a RUNE-style bonus (Liang et al. 2022): reward r-hat + beta_t x the "
        "members' std, beta_t falling linearly to 0 over RL (0: r-hat alone, as the paper)",
        low=0.0, high=FLOAT32_MAX)


@section("reward_model")
class RewardModelConfig:
    reward_net: str = setting("mlp", "architecture of each r-hat member: the paper's MuJoCo "
                              "MLP, or its Atari CNN on 84x84x4 frames", choices=("mlp", "cnn"))
    ensemble_size: int = setting(3, "members of the r-hat ensemble", low=1, high=1024)
    reward_hidden: tuple = setting((64, 64), "hidden layer sizes of each r-hat member",
                                   low=1, high=2**16)
    reward_uses_action: bool = setting(True, "r-hat(obs, action) as in the paper; False: "
                                       "r-hat(obs)")
    reward_linear: bool = setting(False, "r-hat = MLP + a linear term of its inputs")
    reward_batch: int = setting(64, "comparisons per reward-model minibatch", low=1,
                                high=2**20)
    reward_updates: int = setting(8, "reward-model minibatch steps per iteration", low=0,
                                  high=2**20)
    reward_split_sample: int = setting(
        64, "labels per member drawn each iteration to estimate its training and held-out "
        "losses (the adaptive L2 rule, the accuracy figures)", low=1, high=2**16)
    reward_l2_max: float = positive(
        10.0, "upper bound of the adaptive L2 weight (on each member's mean squared "
        "parameter, so 10 is ~0.002 per parameter on the sum for a Hopper-sized net)")
    reward_l2_init: float = positive(1e-4, "starting value of the adaptive L2 weight")
    reward_stats_window: int = setting(
        0, "iterations of transitions r-hat's per-member normalisation statistics follow "
        "(0: every transition since the start)", low=0, high=2**20)
    reward_lr: float = positive(1e-3, "Adam step size of the reward model", dynamic=True)
    reward_std: float = positive(1.0, "std r-hat is normalised to", dynamic=True)
    pretrain_updates: int = setting(500, "reward-model updates on the up-front labels before "
                                    "RL starts", low=0, high=2**24)
    pretrain_rounds: int = setting(
        1, "rounds the pretraining updates run in, the adaptive L2 weight adjusting after "
        "each (1: one adjustment, after all of them)", low=1, high=2**24)


@section("queries")
class QueryConfig:
    labels: int = setting(700, "label budget (queries asked, skips included)", low=1,
                          high=EXACT_F32, dynamic=True)
    upfront_fraction: float = probability(0.25, "share of the budget asked from the initial "
                                          "policy before RL starts (1.0 offline)", dynamic=True)
    query: str = setting("disagreement", "how pairs are picked among the candidates",
                         choices="rlhp.preferences.queries:QUERIES", dynamic=True)
    offline: bool = setting(False, "ask every label from the initial policy, then freeze the "
                            "reward model (ablation)")
    segment_length: int = setting(0, "L in env steps; 0: 1.5 s of task time, clipped to "
                                  "[15, 60] and to half an episode", low=0, high=2**16)
    upfront_segment_length: int = setting(
        0, "the up-front labels' clips: only the last N steps of each segment count (its "
        "head blanked alike in every clip, so it cancels from every comparison); 0: all L",
        low=0, high=2**16)
    segment_capacity: int = setting(256, "segments kept to pair up for queries", low=1,
                                    high=EXACT_F32)
    max_labels: int = setting(0, "capacity of the comparison database (0: the label budget); "
                              "bounds swept budgets", low=0, high=EXACT_F32)
    label_window: int = setting(0, "the comparison database keeps only the most recent N "
                                "labels (0: all of them; the paper's Atari: 3,000)", low=0,
                                high=EXACT_F32)
    queries_per_iteration: int = setting(0, "static maximum of labels asked per iteration "
                                         "(0: derived from the schedule)", low=0,
                                         high=EXACT_F32)
    label_horizon: float = setting(
        2e6, "H of the label schedule: after the up-front labels the rate is proportional to "
        "H / (T + H) at env step T (the paper's MuJoCo H: 2e6)", low=1.0, high=1e12)
    candidate_factor: int = setting(10, "candidate pairs scored per label asked", low=1,
                                    high=2**16)
    prefill_iterations: int = setting(4, "rollouts of the initial policy collected before "
                                      "the up-front labels", low=0, high=2**16)
    explore_steps: int = setting(
        0, "env steps (whole iterations, counted in total_steps) of state-entropy "
        "exploration before the up-front labels (0: none)", low=0, high=INT32_MAX)
    audit_labels: int = setting(
        0, "extra random pairs of the policy's current clips per iteration that the synthetic "
        "teacher answers to measure r-hat's fresh accuracy; never stored nor fit, not counted "
        "in the budget", low=0, high=2**16)
    fresh_window: int = setting(20, "iterations the running fresh accuracy (r-hat against "
                                "the teacher on pairs it was not fit on) pools", low=1,
                                high=INT32_MAX)
    fresh_alarm: float = probability(
        0.6, "warn once when the running fresh accuracy, having reached this, is below it "
        "with 95% confidence: r-hat disagrees with the teacher on the policy's current clips "
        "(0: never)")


@section("teacher")
class TeacherConfig:
    teacher: str = setting("oracle", "who answers queries: a synthetic teacher, or a person "
                           "on the labelling page (human)",
                           choices="rlhp.preferences.teachers:TEACHER_NAMES", dynamic=True)
    teacher_beta: float = setting(1.0, "rationality of the Boltzmann (noisy) teacher",
                                  low=0.0, high=FLOAT32_MAX, dynamic=True)
    teacher_mistake: float = probability(0.1, "probability the mistake teacher flips a label",
                                         dynamic=True)
    teacher_skip: float = setting(0.1, "skip margin of the skip teacher, relative to the mean "
                                  "|segment return|", low=0.0, high=FLOAT32_MAX, dynamic=True)
    teacher_equal: float = setting(0.1, "equal margin of the equal teacher, relative to the "
                                   "mean |segment return|", low=0.0, high=FLOAT32_MAX,
                                   dynamic=True)
    teacher_myopia: float = probability(0.9, "discount of the myopic teacher over a segment, "
                                        "back from its last step", dynamic=True)


def parse_seeds(text: str) -> list[int]:
    """Seeds from a flag: a count (``"8"``: seeds 0-7), ranges and lists as written
    (``"100-107"``, ``"0,3,5"``, ``"0-3,8"``; one seed: ``"4-4"``); distinct, >= 0, in order.
    Raises ``ValueError`` with a one-line message."""
    if text.strip().isdigit():
        if int(text) < 1:
            raise ValueError(f"--seeds {text}: a count wants at least one seed")
        return list(range(int(text)))
    seeds: list[int] = []
    try:
        for part in text.split(","):
            first, dash, last = part.strip().partition("-")
            span = range(int(first), int(last if dash else first) + 1)
            if not span:
                raise ValueError
            seeds += span
    except ValueError:
        raise ValueError(f"--seeds {text}: want a count (8), a range (100-107) or a list "
                         "(0,3,5)") from None
    if len(set(seeds)) != len(seeds) or min(seeds) < 0:
        raise ValueError(f"--seeds {text}: want distinct seeds >= 0")
    return seeds


def choices_of(f: dataclasses.Field) -> tuple | None:
    """The allowed values of field ``f`` (None: any in its range)."""
    choices = f.metadata.get("choices")
    if isinstance(choices, str):
        module, _, name = choices.partition(":")
        choices = tuple(getattr(importlib.import_module(module), name))
    return choices


def allowed(f: dataclasses.Field) -> str:
    """What field ``f`` takes, in words: ``an int in [1, 2147483647]``, ``one of: a, b``."""
    m = f.metadata
    choices = choices_of(f)
    if choices is not None:
        return f"one of: {', '.join(map(str, choices))}"
    if f.type is bool:
        return "a bool (True or False)"
    num = lambda x: f"{x:g}" if isinstance(x, float) else str(x)
    span = f"{'(' if m['open_low'] else '['}{num(m['low'])}, {num(m['high'])}]"
    if f.type is tuple:
        return f"a tuple of ints in {span}"
    return f"{'an int' if f.type is int else 'a float'} in {span}"


def check_field(f: dataclasses.Field, value) -> None:
    """Raise ``ConfigError`` unless ``value`` is of ``f``'s type and in its range."""
    m = f.metadata
    is_int = lambda x: isinstance(x, numbers.Integral) and not isinstance(x, (bool, np.bool_))

    def in_range(x):
        if m["open_low"] and not x > m["low"]:
            return False
        return (m["low"] is None or x >= m["low"]) and (m["high"] is None or x <= m["high"])

    choices = choices_of(f)
    if choices is not None:
        ok = isinstance(value, str) and value in choices
    elif f.type is bool:
        ok = isinstance(value, (bool, np.bool_))
    elif f.type is int:
        ok = is_int(value) and in_range(value)
    elif f.type is float:
        ok = (isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))
              and math.isfinite(value) and in_range(value))
    elif f.type is tuple:
        ok = isinstance(value, tuple) and all(is_int(x) and in_range(x) for x in value)
    else:
        raise TypeError(f"config field {f.name} has no validation for {f.type!r}")
    if not ok:
        raise ConfigError(f"{f.name}={value!r}: expected {allowed(f)}", f.name)


@dataclass(frozen=True)
class Sizes:
    """Sizes derived from a config (``derive``), read through ``Config``'s properties."""

    batch_size: int           # env steps per iteration: num_envs x rollout_length
    minibatch_size: int
    num_iterations: int
    explore_iterations: int   # iterations of unsupervised exploration, before the labels
    rl_iterations: int        # after exploration: the host loop's and the label schedule's
    rl_steps: int             # env steps after exploration: the schedule's span
    chunk_iterations: int     # largest divisor of rl_iterations <= iterations_per_chunk
    steps: int                # env steps actually run: whole iterations
    label_capacity: int       # the comparison database: label_window, max_labels or the budget
    upfront_labels: int       # static maximum of the labels asked before RL starts
    labels_per_iteration: int  # static maximum K asked in one iteration (a mask picks k)


def derive(cfg: "Config") -> Sizes:
    """Every derived size, once; raises ``ConfigError`` for sizes that cannot run."""
    batch = cfg.num_envs * cfg.rollout_length
    if batch % cfg.num_minibatches:
        raise ConfigError(f"num_minibatches={cfg.num_minibatches}: must divide num_envs x "
                          f"rollout_length = {batch}", "num_minibatches")
    n = cfg.total_steps // batch
    if n < 1:
        raise ConfigError(f"total_steps={cfg.total_steps} is less than one iteration "
                          f"({batch} env steps = num_envs x rollout_length)", "total_steps")
    explore = cfg.explore_steps // batch
    if explore >= n:
        raise ConfigError(f"explore_steps={cfg.explore_steps}: must lie in [0, total_steps) "
                          f"and leave at least one iteration of RL", "explore_steps")
    rl = n - explore
    chunk = max(q for d in range(1, math.isqrt(rl) + 1) if rl % d == 0 for q in (d, rl // d)
                if q <= cfg.iterations_per_chunk)  # the largest divisor of rl up to it
    capacity = cfg.max_labels or cfg.labels
    if cfg.offline:
        upfront = capacity
    else:
        upfront = int(np.ceil(cfg.upfront_fraction * capacity))
    if cfg.queries_per_iteration:
        per_iteration = cfg.queries_per_iteration
    else:
        from rlhp.preferences.schedule import schedule_fraction
        rest = capacity - upfront
        # the rate is highest in the first iteration: its share of the rest, with room
        first = rest * schedule_fraction(batch, rl * batch, cfg.label_horizon, np)
        per_iteration = max(2, -(-3 * rest // rl) + 1, int(np.ceil(2 * first)) + 1)
    if cfg.label_window and cfg.label_window < max(upfront, per_iteration):
        raise ConfigError(f"label_window={cfg.label_window}: must hold the labels asked at "
                          f"once ({max(upfront, per_iteration)})", "label_window")
    if cfg.label_window and cfg.offline:
        raise ConfigError("label_window needs an online run (offline, every label is asked "
                          "at once)", "label_window")
    if cfg.agent == "a2c" and cfg.rollout_length % cfg.a2c_steps:
        raise ConfigError(f"a2c_steps={cfg.a2c_steps}: must divide rollout_length="
                          f"{cfg.rollout_length}", "a2c_steps")
    return Sizes(batch_size=batch, minibatch_size=batch // cfg.num_minibatches,
                 num_iterations=n, explore_iterations=explore, rl_iterations=rl,
                 rl_steps=rl * batch, chunk_iterations=chunk, steps=n * batch,
                 label_capacity=min(capacity, cfg.label_window or capacity),
                 upfront_labels=upfront,
                 labels_per_iteration=per_iteration)


# Field order (config.json, --list-settings): run, env, agent, reward model, queries, teacher
# (a dataclass collects its bases' fields from the last base to the first).
@dataclass(frozen=True)
class Config(TeacherConfig, QueryConfig, RewardModelConfig, AgentConfig, EnvConfig, RunConfig):
    """Every setting of a run, flat (``cfg.learning_rate``); see the sections for each."""

    def __post_init__(self):
        for f in dataclasses.fields(self):
            check_field(f, getattr(self, f.name))
        if self.labels > self.max_labels > 0:
            raise ConfigError(f"labels={self.labels} exceeds the database capacity "
                              f"max_labels={self.max_labels}", "labels")
        if self.offline and self.reward != "learned":
            raise ConfigError(f"offline=True needs reward='learned', got {self.reward!r}",
                              "offline")
        if self.offline and self.teacher == "human":
            raise ConfigError("teacher='human' cannot run offline: a person answers while "
                              "the policy trains (the reward model would be frozen first)",
                              "teacher")
        if self.upfront_segment_length and self.teacher == "human":
            raise ConfigError("upfront_segment_length needs a synthetic teacher (the labelling "
                              "page shows whole clips)", "upfront_segment_length")
        if self.segment_length > self.rollout_length:
            raise ConfigError(f"segment_length={self.segment_length}: must lie in [0, "
                              f"rollout_length={self.rollout_length}]", "segment_length")
        object.__setattr__(self, "_sizes", derive(self))

    @property
    def preference_episodes(self) -> bool:
        """Whether the run trains in the paper's fixed-horizon preference episodes."""
        return self.reward != "true"

    def dynamic(self) -> "Dynamic":
        values = {}
        for f in dataclasses.fields(self):
            if f.metadata["dynamic"]:
                value = getattr(self, f.name)
                choices = choices_of(f)
                values[f.name] = choices.index(value) if choices else value
        if self.offline:
            values["upfront_fraction"] = 1.0
        return Dynamic(**{k: jnp.asarray(v, jnp.float32) for k, v in values.items()})

    def replace(self, **kw) -> "Config":
        return dataclasses.replace(self, **kw)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Config":
        """Inverse of ``to_dict`` (JSON lists back to tuples; fields a run predates take
        their defaults); raises ``ConfigError``."""
        unknown = sorted(set(d) - set(FIELDS))
        if unknown:
            raise ConfigError(f"unknown config field(s): {', '.join(unknown)}")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})

    def override(self, assignments: list[str]) -> "Config":
        """Apply ``FIELD=VALUE`` strings (values parsed as Python literals, else strings)."""
        import ast
        kw = {}
        for item in assignments:
            key, sep, text = item.partition("=")
            if not sep or key not in FIELDS:
                raise ConfigError(f"{item!r}: expected FIELD=VALUE with FIELD one of the "
                                  f"Config fields (e.g. reward_updates=16)")
            try:
                value = ast.literal_eval(text)
            except (ValueError, SyntaxError, MemoryError, RecursionError):
                value = text
            kw[key] = tuple(value) if isinstance(value, list) else value
        return self.replace(**kw)


def _size_property(name: str) -> property:
    return property(lambda self: getattr(self._sizes, name),
                    doc=f"``derive(cfg).{name}``, computed once.")


for _name in (f.name for f in dataclasses.fields(Sizes)):
    setattr(Config, _name, _size_property(_name))

FIELDS: dict[str, dataclasses.Field] = {f.name: f for f in dataclasses.fields(Config)}
SECTION_OF: dict[str, str] = {f.name: name for name, cls in SECTIONS.items()
                              for f in dataclasses.fields(cls)}


def _teacher_params(self):
    from rlhp.preferences.teachers import TeacherParams
    return TeacherParams(kind=self.teacher, beta=self.teacher_beta,
                         mistake=self.teacher_mistake, skip=self.teacher_skip,
                         equal=self.teacher_equal, myopia=self.teacher_myopia)


Dynamic = struct.dataclass(type("Dynamic", (), {
    "__module__": __name__,
    "__doc__": "The array-valued (vmappable) part of a config: one float32 scalar per dynamic "
               "field (``query`` and ``teacher`` as indices into their choices).",
    "__annotations__": {name: jnp.ndarray for name, f in FIELDS.items() if f.metadata["dynamic"]},
    "teacher_params": _teacher_params,
}))
DYNAMIC_FIELDS = tuple(f.name for f in dataclasses.fields(Dynamic))
