"""``make_train(cfg, env)``: the paper's loop as jitted, vmappable functions.

``train_step`` is one iteration: the policy acts for ``T`` steps in ``B`` envs, the
learner's reward is computed for those steps (r-hat, or the env's reward for the
baselines), the agent updates on it, and then the preference step runs: the rollout's
segments are kept, the labels due are asked of the teacher and the reward model is fit.
``train(key, dyn)`` runs every iteration in one ``lax.scan`` (vmap it over seeds or
dynamic configs); the CLI instead calls ``chunk(state, dyn)`` repeatedly so the host can
log and save between calls. Which reward, preference step, observation normaliser and
reward scaling a run uses is chosen once, when the trainer is built.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import jax
import jax.numpy as jnp
from flax import struct

from rlhp import normalize, rewards
from rlhp.agents import Agent, Transitions, make_agent
from rlhp.agents.ppo import masked_mean
from rlhp.config import Config, ConfigError, Dynamic
from rlhp.envs import Env, Step
from rlhp.preferences import frames, reward_model, schedule, segments
from rlhp.preferences.learner import FreshLabels, PrefState, RewardLearner

AUDIT_STREAM = 0xA0D17
"""Audit labels draw their keys by ``fold_in(key, AUDIT_STREAM)``, off the training step's
key stream: with or without them, every other draw is the same."""


@struct.dataclass
class TrainState:
    agent: Any               # the policy learner's state (rlhp.agents)
    env_state: Any
    obs: jax.Array           # [B, *obs_shape] current raw observation
    obs_stats: normalize.RunningStats  # normalisation of the policy's and r-hat's inputs
    reward_scale: normalize.ReturnScale
    ep_return: jax.Array     # [B] true return of the current episode so far
    ep_length: jax.Array     # [B] int32
    key: jax.Array
    iteration: jax.Array     # [] int32
    pref: PrefState | None   # reward learning (None without a learned reward)


@struct.dataclass
class Rollout:
    """Time-major ``[T, B, ...]`` record of one rollout."""

    obs: jax.Array       # [T, B, *obs_shape] raw observation acted on
    action: jax.Array    # [T, B] or [T, B, A]
    log_prob: jax.Array  # [T, B]
    value: jax.Array     # [T, B]
    step: Step           # [T, B] what the env returned


@dataclass(frozen=True)
class Trainer:
    cfg: Config
    env: Env
    agent: Agent
    learner: RewardLearner | None
    init: Callable        # (key, dyn) -> TrainState
    train_step: Callable  # (state, dyn) -> (state, metrics)
    chunk: Callable       # jitted (state, dyn) -> (state, metrics [chunk_iterations])
    train: Callable       # (key, dyn) -> (state, metrics [rl_iterations]); vmappable
    rollout: Callable     # state -> (state, Rollout): the policy acting for T steps
    improve: Callable     # (state, rollout, reward [T, B], dyn) -> (state, metrics)

    def policy_obs(self, state: TrainState, obs: jax.Array) -> jax.Array:
        return normalize.normalize(state.obs_stats, obs) if self.cfg.normalize_obs else obs

    def act(self, state: TrainState, obs: jax.Array) -> jax.Array:
        """The deterministic policy's action for raw observations ``[N, *obs_shape]``."""
        return self.agent.mode(state.agent, self.policy_obs(state, obs))


def episode_stats(reward, valid, done, ep_return, ep_length):
    """Track true episodic returns over a rollout.

    reward, valid, done: ``[T, B]``; ep_return, ep_length: ``[B]`` running totals.
    Returns ``(ep_return [B], ep_length [B], finished_return [T, B], finished [T, B])``
    where ``finished`` marks the steps that ended an episode.
    """
    def body(carry, x):
        ret, length = carry
        r, v, d = x
        ret = ret + r * v
        length = length + v.astype(jnp.int32)
        out = (ret, d)
        return (jnp.where(d, 0.0, ret), jnp.where(d, 0, length)), out

    (ep_return, ep_length), (fin_ret, fin) = jax.lax.scan(
        body, (ep_return, ep_length), (reward, valid, done))
    return ep_return, ep_length, fin_ret, fin


def segment_length(cfg: Config, spec) -> int:
    """L: ``cfg.segment_length``, or 1.5 s of task time (``spec.dt`` a step) clipped to
    [15, 60] steps and to half an episode (``spec.max_episode_steps``): a segment never
    crosses an episode's end, and the rollout's windows are fixed, so a segment as long as
    the episode would almost never fit (Reacher: 50-step episodes, 25-step segments)."""
    if cfg.segment_length:
        return cfg.segment_length
    return int(min(max(round(1.5 / spec.dt), 15), 60, max(1, spec.max_episode_steps // 2)))


def make_learner(cfg: Config, spec) -> RewardLearner:
    L = segment_length(cfg, spec)
    if L > cfg.rollout_length:
        raise ConfigError(f"segment_length={cfg.segment_length} (L={L} steps): must be at most "
                          f"rollout_length={cfg.rollout_length}", "segment_length")
    if cfg.upfront_segment_length > L or (cfg.upfront_segment_length and spec.frame_stack):
        raise ConfigError(f"upfront_segment_length={cfg.upfront_segment_length}: must lie in "
                          f"[0, L={L}], on vector observations", "upfront_segment_length")
    if cfg.reward_net == "cnn":
        if not spec.frame_stack:
            raise ConfigError(f"reward_net='cnn' needs image observations; {spec.name} has "
                              f"vectors of shape {spec.obs_shape}", "reward_net")
        net = reward_model.RewardCNN()
    else:
        net = reward_model.RewardMLP(tuple(cfg.reward_hidden), spec.num_actions,
                                     cfg.reward_uses_action, cfg.reward_linear)
    return RewardLearner(
        net=net, clips=frames.codec(spec),
        members=cfg.ensemble_size, segment_length=L, segment_capacity=cfg.segment_capacity,
        label_capacity=cfg.label_capacity, candidate_factor=cfg.candidate_factor,
        split_sample=cfg.reward_split_sample,
        batch=cfg.reward_batch, obs_shape=spec.obs_shape, action_shape=spec.action_shape,
        action_dtype=jnp.int32 if spec.discrete else jnp.float32, l2_max=cfg.reward_l2_max,
        l2_init=cfg.reward_l2_init, stats_window=cfg.reward_stats_window * cfg.batch_size)


def correlation(x, y, mask):
    """Pearson correlation of ``x`` and ``y`` over the entries where ``mask``."""
    w = mask.astype(jnp.float32)
    n = jnp.maximum(w.sum(), 1.0)
    xm, ym = (x * w).sum() / n, (y * w).sum() / n
    cov = (w * (x - xm) * (y - ym)).sum()
    return cov / jnp.sqrt((w * (x - xm) ** 2).sum() * (w * (y - ym) ** 2).sum() + 1e-12)


def keep_segments(learner: RewardLearner, pref: PrefState, ro: Rollout) -> PrefState:
    """The rollout's segments into the learner's buffer."""
    s = ro.step
    return learner.observe(pref, ro.obs, ro.action, s.reward, s.valid, s.terminated | s.truncated)


def fold_observations(stats: normalize.RunningStats, ro: Rollout) -> normalize.RunningStats:
    """The rollout's valid observations folded into the normalisation statistics."""
    flat = ro.obs.reshape((-1,) + ro.obs.shape[2:])
    return normalize.update(stats, flat, ro.step.valid.reshape(-1))


def episode_metrics(iteration, batch_size: int, fin_ret, fin) -> dict:
    """Env steps so far, episodes ended this iteration and their mean true return (NaN
    if none ended): ``fin_ret``, ``fin`` ``[T, B]`` from ``episode_stats``."""
    n_fin = fin.sum()
    return dict(env_steps=(iteration + 1) * batch_size, episodes=n_fin,
                true_return=jnp.where(n_fin > 0, (fin_ret * fin).sum() / jnp.maximum(n_fin, 1),
                                      jnp.nan))


def reward_metrics(pref: PrefState, diag, r_hat, step: Step, spread=None) -> dict:
    """The reward model's figures after an iteration: labels asked, comparisons held,
    its losses, held-out accuracy and L2 weight (``diag`` from ``RewardLearner.fit``), and
    r-hat ``[T, B]`` against the rollout's true reward."""
    train_loss, val_loss, accuracy = diag
    metrics = dict(labels=pref.asked, comparisons=pref.db.filled.sum(),
                   reward_train_loss=train_loss.mean(), reward_val_loss=val_loss.mean(),
                   reward_val_accuracy=accuracy.mean(), reward_l2=pref.l2.mean(),
                   reward_true_corr=correlation(r_hat, step.reward, step.valid),
                   predicted_reward=masked_mean(r_hat, step.valid))
    if spread is not None:
        metrics.update(reward_spread=masked_mean(spread, step.valid))
    return metrics


def fresh_metrics(*fresh: FreshLabels) -> dict:
    """r-hat against the teacher on this iteration's fresh pairs (queries and audits, none
    of them fit yet, ties excluded): how many were judged, how many r-hat ordered as the
    teacher did, and that share (NaN with none)."""
    if not fresh:  # an offline run without audit labels
        zero = jnp.zeros((), jnp.int32)
        return dict(reward_fresh_labels=zero, reward_fresh_correct=zero,
                    reward_fresh_accuracy=jnp.float32(jnp.nan))
    judged = jnp.concatenate([f.judged for f in fresh])
    correct = (jnp.concatenate([f.correct for f in fresh]) & judged).sum()
    n = judged.sum()
    return dict(reward_fresh_labels=n, reward_fresh_correct=correct,
                reward_fresh_accuracy=jnp.where(n > 0, correct / jnp.maximum(n, 1), jnp.nan))


def make_train(cfg: Config, env: Env) -> Trainer:
    spec, B, T = env.spec, cfg.num_envs, cfg.rollout_length
    assert spec.num_envs == B, (spec.num_envs, B)
    agent = make_agent(cfg, spec)
    learner = make_learner(cfg, spec) if cfg.reward == "learned" else None
    # chosen once: the observation normaliser, the reward scaling
    if cfg.normalize_obs:
        norm, fold = normalize.normalize, fold_observations
    else:
        norm, fold = (lambda stats, obs: obs), (lambda stats, ro: stats)
    if cfg.scale_reward:
        scale = normalize.scale_by_return
    else:
        scale = lambda rs, reward, done, gamma: (rs, reward)

    # A person answers on the host between chunks (rlhp.human.teacher): nothing is asked
    # on device, the step only keeps segments and fits the database it is given.
    if cfg.teacher == "human":
        def ask(pref, key, k_max, k, scheme, teacher):
            nothing = jnp.zeros(k_max, bool)
            return pref, FreshLabels(correct=nothing, judged=nothing)
    else:
        ask = learner.ask if learner else None

    # Offline, r-hat is frozen after pretraining: its input normalisation and the members'
    # output statistics too, so the reward the policy sees is one fixed function.
    if cfg.offline:
        freeze, inputs_of = learner.freeze, (lambda state: state.pref)
    else:
        freeze = lambda pref, reward_std: pref
        inputs_of = lambda state: state.pref.replace(obs_stats=state.obs_stats)

    def init(key: jax.Array, dyn: Dynamic) -> TrainState:
        k_env, k_net, k_rm, key = jax.random.split(key, 4)
        env_state = env.reset(k_env)
        obs = env.obs(env_state)
        state = TrainState(
            agent=agent.init(k_net, obs), env_state=env_state, obs=obs,
            obs_stats=normalize.init(spec.obs_shape), reward_scale=normalize.return_scale(B),
            ep_return=jnp.zeros(B), ep_length=jnp.zeros(B, jnp.int32), key=key,
            iteration=jnp.zeros((), jnp.int32), pref=learner.init(k_rm) if learner else None)
        if cfg.explore_iterations:
            state = explore(state, dyn)
        return pretrain(state, dyn) if learner else state

    def rollout(state: TrainState):
        def body(carry, _):
            env_state, obs, key = carry
            key, k_act = jax.random.split(key)
            action, logp, value = agent.act(state.agent, norm(state.obs_stats, obs), k_act)
            env_state, step = env.step(env_state, action)
            return (env_state, step.obs, key), Rollout(obs, action, logp, value, step)

        (env_state, obs, key), ro = jax.lax.scan(
            body, (state.env_state, state.obs, state.key), None, T)
        return state.replace(env_state=env_state, obs=obs, key=key), ro

    def improve(state: TrainState, ro: Rollout, reward, dyn: Dynamic):
        """The agent's update on the learner's ``reward [T, B]`` for rollout ``ro``; then
        the observation statistics take in the rollout. Returns ``(state, metrics)``."""
        s = ro.step
        reward_scale, reward = scale(state.reward_scale, reward, s.terminated | s.truncated,
                                     dyn.gamma)
        batch = Transitions(obs=norm(state.obs_stats, ro.obs), action=ro.action,
                            log_prob=ro.log_prob, value=ro.value, reward=reward,
                            next_obs=norm(state.obs_stats, s.obs), terminated=s.terminated,
                            truncated=s.truncated, valid=s.valid)
        key, k_update = jax.random.split(state.key)
        agent_state, metrics = agent.update(state.agent, batch, dyn, k_update)
        return state.replace(agent=agent_state, reward_scale=reward_scale, key=key,
                             obs_stats=fold(state.obs_stats, ro)), metrics

    def explore(state: TrainState, dyn: Dynamic) -> TrainState:
        """Unsupervised exploration: ``cfg.explore_iterations`` of policy updates on the
        state-entropy reward; then the reward scaling starts afresh for the task's reward."""
        def body(state, _):
            state, ro = rollout(state)
            reward = rewards.exploration_reward(norm(state.obs_stats, ro.obs), ro.step.valid)
            state, _ = improve(state, ro, reward, dyn)
            return state.replace(iteration=state.iteration + 1), None

        state, _ = jax.lax.scan(body, state, None, cfg.explore_iterations)
        return state.replace(reward_scale=normalize.return_scale(B))

    def pretrain(state: TrainState, dyn: Dynamic) -> TrainState:
        """Before RL: segments of the initial policy, the up-front labels, reward fitting."""
        def collect(state, _):
            state, ro = rollout(state)
            state = state.replace(obs_stats=fold(state.obs_stats, ro))
            return state.replace(pref=keep_segments(learner, state.pref, ro)), None

        state, _ = jax.lax.scan(collect, state, None, cfg.prefill_iterations)
        pref = state.pref.replace(obs_stats=state.obs_stats)
        whole = pref.segments
        if cfg.upfront_segment_length:  # asked on the clips' tails; RL pairs whole clips
            head = learner.segment_length - cfg.upfront_segment_length
            pref = pref.replace(segments=segments.blank_head(whole, head))
        key, k_ask, k_fit = jax.random.split(state.key, 3)
        pref, _ = ask(pref, k_ask, cfg.upfront_labels,
                      jnp.round(dyn.upfront_fraction * dyn.labels), dyn.query,
                      dyn.teacher_params())
        pref = learner.fit_in_rounds(pref.replace(segments=whole), k_fit, cfg.pretrain_updates,
                                     cfg.pretrain_rounds, dyn.reward_lr)
        return state.replace(pref=freeze(pref, dyn.reward_std), key=key)

    # What the policy learns from (chosen once): r-hat, or the env's reward.
    def learned(state: TrainState, ro: Rollout, dyn: Dynamic):
        left = 1.0 - (state.iteration - cfg.explore_iterations) / cfg.rl_iterations
        pref, reward, r_hat, spread = rewards.learned_reward(
            learner, inputs_of(state), ro.obs, ro.action, ro.step.valid, dyn.reward_std,
            cfg.uncertainty_bonus, left, frozen=cfg.offline)
        return state.replace(pref=pref), reward, (r_hat, spread)

    def env_reward(state: TrainState, ro: Rollout, dyn: Dynamic):
        return state, ro.step.reward, None

    # Audit labels (chosen once): extra fresh pairs judged, never stored.
    def audit(state: TrainState, pref: PrefState, dyn: Dynamic) -> tuple:
        if not cfg.audit_labels:
            return ()
        return (learner.audit(pref, jax.random.fold_in(state.key, AUDIT_STREAM),
                              cfg.audit_labels, dyn.teacher_params()),)

    # The preference step (chosen once): online, frozen (offline), or none.
    def learn_online(state: TrainState, ro: Rollout, judged, dyn: Dynamic):
        """Segments in, the labels due asked of the teacher, the ensemble fit to the
        database."""
        key, k_ask, k_fit = jax.random.split(state.key, 3)
        pref = keep_segments(learner, state.pref, ro)
        # the schedule's clock starts with the up-front labels, after any exploration
        env_steps = (state.iteration + 1 - cfg.explore_iterations) * cfg.batch_size
        due = schedule.labels_due(env_steps, cfg.rl_steps, dyn.labels, dyn.upfront_fraction,
                                  cfg.label_horizon)
        k = jnp.clip(due - pref.asked, 0, cfg.labels_per_iteration)
        audited = audit(state, pref, dyn)
        pref, fresh = ask(pref, k_ask, cfg.labels_per_iteration, k, dyn.query,
                          dyn.teacher_params())
        pref, diag = learner.fit(pref, k_fit, cfg.reward_updates, dyn.reward_lr)
        return (state.replace(pref=pref, key=key),
                {**judge(pref, diag, judged, ro), **fresh_metrics(fresh, *audited)})

    def learn_nothing(state: TrainState, ro: Rollout, judged, dyn: Dynamic):
        """Offline: the reward model stays as pretraining left it; only its figures (with
        audit labels, on the segments of the policy now)."""
        key, _, k_fit = jax.random.split(state.key, 3)
        diag = learner.split_losses(state.pref, k_fit)
        if cfg.audit_labels:
            state = state.replace(pref=keep_segments(learner, state.pref, ro))
        metrics = judge(state.pref, diag, judged, ro)
        return state.replace(key=key), {**metrics, **fresh_metrics(*audit(state, state.pref, dyn))}

    def judge(pref, diag, judged, ro):
        r_hat, spread = judged
        return reward_metrics(pref, diag, r_hat, ro.step,
                              spread if cfg.uncertainty_bonus else None)

    reward_of = learned if learner else env_reward
    if learner:
        preference_step = learn_nothing if cfg.offline else learn_online
    else:
        preference_step = lambda state, ro, judged, dyn: (state, {})

    def train_step(state: TrainState, dyn: Dynamic):
        state, ro = rollout(state)                           # 1. the policy acts
        state, reward, judged = reward_of(state, ro, dyn)    # 2. what it learns from
        state, metrics = improve(state, ro, reward, dyn)     # 3. the policy update
        s = ro.step
        ep_return, ep_length, fin_ret, fin = episode_stats(
            s.reward, s.valid, s.terminated | s.truncated, state.ep_return, state.ep_length)
        metrics.update(episode_metrics(state.iteration, cfg.batch_size, fin_ret, fin))
        state, reward_figures = preference_step(state, ro, judged, dyn)  # 4. preferences
        metrics.update(reward_figures)
        state = state.replace(ep_return=ep_return, ep_length=ep_length,
                              iteration=state.iteration + 1)
        return state, metrics

    def run_chunk(state, dyn, n):
        return jax.lax.scan(lambda s, _: train_step(s, dyn), state, None, n)

    chunk = jax.jit(lambda state, dyn: run_chunk(state, dyn, cfg.chunk_iterations))

    def train(key, dyn):
        return run_chunk(init(key, dyn), dyn, cfg.rl_iterations)

    return Trainer(cfg, env, agent, learner, init, train_step, chunk, train, rollout, improve)


def nonfinite_parts(state: TrainState) -> dict:
    """``{"policy": ok, "reward model": ok}``: whether every parameter is finite."""
    parts = {"policy": state.agent}
    if state.pref is not None:
        parts["reward model"] = state.pref.params
    return {name: jnp.all(jnp.stack([jnp.isfinite(x).all() for x in jax.tree.leaves(p)]))
            for name, p in parts.items()}


def restart_episodes(trainer: Trainer, state: TrainState, key: jax.Array) -> TrainState:
    """Fresh episodes in every env (after a resume on a backend whose env state lives
    outside JAX); the learner's state is untouched."""
    env_state = trainer.env.reset(key)
    B = trainer.cfg.num_envs
    scale = state.reward_scale.replace(disc_return=jnp.zeros(B))
    return state.replace(env_state=env_state, obs=trainer.env.obs(env_state),
                         reward_scale=scale, ep_return=jnp.zeros(B),
                         ep_length=jnp.zeros(B, jnp.int32))


def restart_key(seed: int, iteration) -> jax.Array:
    """The key ``[2]`` of the fresh episodes (``restart_episodes``) a run of seed ``seed``
    resumed at ``iteration`` starts, the same for a run and for the same member of a sweep."""
    return jax.random.fold_in(jax.random.PRNGKey(seed), iteration)


def evaluation_key(seed: int) -> jax.Array:
    """The key ``[2]`` of seed ``seed``'s final evaluation (``evaluate``), the same for a run
    and for the same member of a sweep."""
    return jax.random.PRNGKey(seed + 1)


def evaluate(trainer: Trainer, eval_env: Env, state: TrainState, key: jax.Array,
             members: bool = False):
    """Deterministic-policy episodes on ``eval_env`` (the task's standard reward and episodes).

    Runs one episode in each of the ``E = eval_env.spec.num_envs`` copies, stepping until
    every copy has ended one (at most the time limit: 27,000 steps on Atari); returns the
    true returns ``[E]`` and lengths ``[E]``. With ``members``, ``state`` and ``key`` [M, 2]
    carry a sweep's leading member axis and the results are ``[M, E]``: one loop steps
    every member (vmapped inside it, as a sweep's host pools need) until all have ended.
    """
    E = eval_env.spec.num_envs
    horizon = eval_env.spec.max_episode_steps
    over = jax.vmap if members else (lambda f: f)
    reset, obs_of = over(eval_env.reset), over(eval_env.obs)
    step = over(lambda state, env_state, obs: eval_env.step(env_state, trainer.act(state, obs)))

    def body(carry):
        t, env_state, obs, ret, length, done = carry
        env_state, out = step(state, env_state, obs)
        live = ~done & out.valid
        ret = ret + jnp.where(live, out.reward, 0.0)
        length = length + live.astype(jnp.int32)
        done = done | (live & (out.terminated | out.truncated))
        return t + 1, env_state, out.obs, ret, length, done

    env_state = reset(key)
    shape = (len(key), E) if members else (E,)
    carry = (jnp.zeros((), jnp.int32), env_state, obs_of(env_state), jnp.zeros(shape),
             jnp.zeros(shape, jnp.int32), jnp.zeros(shape, bool))
    _, _, _, ret, length, _ = jax.lax.while_loop(
        lambda c: (c[0] < horizon) & ~c[-1].all(), body, carry)
    return ret, length
