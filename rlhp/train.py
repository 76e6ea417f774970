"""``make_train(cfg, env)``: the whole training loop as jitted, vmappable functions.

One iteration (``train_step``) is: roll the policy out for ``T`` steps in ``B`` envs
(``lax.scan``), compute the learner's reward, GAE, then ``update_epochs`` passes of
minibatch PPO updates (nested ``lax.scan``s). ``train(key, dyn)`` runs every iteration in
one ``lax.scan`` (vmap it over seeds or dynamic configs); the CLI instead calls
``chunk(state, dyn)`` repeatedly so the host can log and save between calls.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import jax
import jax.numpy as jnp
import optax
from flax import struct

from rlhp import normalize
from rlhp.agents import networks, ppo
from rlhp.preferences import queries, reward_model
from rlhp.config import Config, ConfigError, Dynamic
from rlhp.envs import Env, Step
from rlhp.explore import state_entropy_reward
from rlhp.preferences.learner import PrefState, RewardLearner


@struct.dataclass
class TrainState:
    params: Any
    opt_state: Any
    env_state: Any
    obs: jax.Array           # [B, *obs_shape] current raw observation
    obs_stats: normalize.RunningStats
    ret_stats: normalize.RunningStats
    disc_return: jax.Array   # [B] running discounted learner return (reward scaling)
    ep_return: jax.Array     # [B] true return of the current episode so far
    ep_length: jax.Array     # [B] int32
    key: jax.Array
    iteration: jax.Array     # [] int32
    pref: PrefState | None   # reward learning (None with the true reward)


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
    network: networks.ActorCritic
    learner: RewardLearner | None
    init: Callable      # (key, dyn) -> TrainState
    train_step: Callable  # (state, dyn) -> (state, metrics)
    chunk: Callable     # jitted (state, dyn) -> (state, metrics [chunk_iterations])
    train: Callable     # (key, dyn) -> (state, metrics [rl_iterations]); vmappable
    rollout: Callable   # state -> (state, Rollout): the policy acting for T steps
    ppo_update: Callable  # (state, rollout, reward [T, B], dyn) -> (state, metrics)

    def policy_obs(self, state: TrainState, obs: jax.Array) -> jax.Array:
        return normalize.normalize(state.obs_stats, obs) if self.cfg.normalize_obs else obs

    def act(self, state: TrainState, obs: jax.Array) -> jax.Array:
        """The deterministic policy's action for raw observations ``[N, *obs_shape]``."""
        head, log_std, _ = self.network.apply(state.params, self.policy_obs(state, obs))
        return networks.mode(head, log_std)


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


def segment_length(cfg: Config, dt: float) -> int:
    """L: ``cfg.segment_length``, or 1.5 s of task time clipped to [15, 60] steps."""
    return cfg.segment_length or int(min(max(round(1.5 / dt), 15), 60))


def make_learner(cfg: Config, spec) -> RewardLearner:
    L = segment_length(cfg, spec.dt)
    if L > cfg.rollout_length:
        raise ConfigError(f"segment length {L} exceeds the rollout length {cfg.rollout_length}")
    return RewardLearner(
        net=reward_model.RewardMLP(tuple(cfg.reward_hidden), spec.num_actions,
                                   cfg.reward_uses_action, cfg.reward_linear),
        members=cfg.ensemble_size, segment_length=L, segment_capacity=cfg.segment_capacity,
        label_capacity=cfg.label_capacity, candidate_factor=cfg.candidate_factor,
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


def make_train(cfg: Config, env: Env) -> Trainer:
    spec = env.spec
    B, T = cfg.num_envs, cfg.rollout_length
    assert spec.num_envs == B, (spec.num_envs, B)
    action_dim = spec.num_actions if spec.discrete else spec.action_shape[0]
    network = networks.ActorCritic(tuple(cfg.hidden), action_dim, spec.discrete)
    tx = optax.chain(optax.scale_by_adam(eps=1e-5))
    learner = make_learner(cfg, spec) if cfg.reward == "learned" else None

    def norm_obs(stats, obs):
        return normalize.normalize(stats, obs) if cfg.normalize_obs else obs

    def init(key: jax.Array, dyn: Dynamic) -> TrainState:
        k_env, k_net, k_rm, key = jax.random.split(key, 4)
        env_state = env.reset(k_env)
        obs = env.obs(env_state)
        params = network.init(k_net, obs[:1])
        state = TrainState(
            params=params, opt_state=tx.init(params), env_state=env_state, obs=obs,
            obs_stats=normalize.init(spec.obs_shape), ret_stats=normalize.init(),
            disc_return=jnp.zeros(B), ep_return=jnp.zeros(B), ep_length=jnp.zeros(B, jnp.int32),
            key=key, iteration=jnp.zeros((), jnp.int32),
            pref=learner.init(k_rm) if learner else None)
        if cfg.explore_iterations:
            state = explore(state, dyn)
        return pretrain(state, dyn) if learner else state

    def explore(state: TrainState, dyn: Dynamic) -> TrainState:
        """Unsupervised exploration: ``cfg.explore_iterations`` of PPO on the state-entropy
        reward; then the return statistics start afresh for the task's reward."""
        def body(state, _):
            state, ro = rollout(state)
            obs = norm_obs(state.obs_stats, ro.obs).reshape(T * B, -1)
            reward = state_entropy_reward(obs, ro.step.valid.reshape(-1)).reshape(T, B)
            state, _ = ppo_update(state, ro, reward, dyn)
            return state.replace(iteration=state.iteration + 1), None

        state, _ = jax.lax.scan(body, state, None, cfg.explore_iterations)
        return state.replace(ret_stats=normalize.init(), disc_return=jnp.zeros(B))

    def pretrain(state: TrainState, dyn: Dynamic) -> TrainState:
        """Before RL: segments from the initial policy, the up-front labels, reward fitting."""
        def collect(state, _):
            state, ro = rollout(state)
            state = update_obs_stats(state, ro)
            return state.replace(pref=keep_segments(state.pref, ro)), None

        state, _ = jax.lax.scan(collect, state, None, cfg.prefill_iterations)
        state = state.replace(pref=state.pref.replace(obs_stats=state.obs_stats))
        key, k_ask, k_fit = jax.random.split(state.key, 3)
        k0 = jnp.round(dyn.upfront_fraction * dyn.labels)
        pref = learner.ask(state.pref, k_ask, cfg.upfront_labels, k0, dyn.query,
                           dyn.teacher_params())
        # the updates in rounds, the L2 weight adapting after each (as between iterations)
        rounds = max(1, min(cfg.pretrain_rounds, cfg.pretrain_updates))

        def fit_round(pref, k):
            pref, _ = learner.fit(pref, k, cfg.pretrain_updates // rounds, dyn.reward_lr)
            return pref, None

        if rounds == 1:
            pref, _ = fit_round(pref, k_fit)
        else:
            pref, _ = jax.lax.scan(fit_round, pref, jax.random.split(k_fit, rounds))
        return state.replace(pref=pref, key=key)

    def keep_segments(pref: PrefState, ro: Rollout) -> PrefState:
        s = ro.step
        return learner.observe(pref, ro.obs, ro.action, s.reward, s.valid,
                               s.terminated | s.truncated)

    def update_obs_stats(state: TrainState, ro: Rollout) -> TrainState:
        """Fold the rollout's valid observations into the normalisation statistics."""
        if not cfg.normalize_obs:
            return state
        flat = ro.obs.reshape((T * B,) + ro.obs.shape[2:])
        return state.replace(obs_stats=normalize.update(state.obs_stats, flat,
                                                        ro.step.valid.reshape(-1)))

    def rollout(state: TrainState):
        def body(carry, _):
            env_state, obs, key = carry
            key, k_act = jax.random.split(key)
            head, log_std, value = network.apply(state.params, norm_obs(state.obs_stats, obs))
            action = networks.sample(k_act, head, log_std)
            logp = networks.log_prob(head, log_std, action)
            env_state, step = env.step(env_state, action)
            return (env_state, step.obs, key), Rollout(obs, action, logp, value, step)

        (env_state, obs, key), ro = jax.lax.scan(
            body, (state.env_state, state.obs, state.key), None, T)
        return state.replace(env_state=env_state, obs=obs, key=key), ro

    def scale(state: TrainState, reward, done, dyn):
        """Divide rewards ``[T, B]`` by the running std of the discounted return."""
        if not cfg.scale_reward:
            return state, reward

        def body(g, x):
            r, d = x
            g = g * dyn.gamma + r
            return jnp.where(d, 0.0, g), g

        disc, gs = jax.lax.scan(body, state.disc_return, (reward, done))
        stats = normalize.update(state.ret_stats, gs.reshape(-1))
        scaled = jnp.clip(reward / jnp.sqrt(stats.var + 1e-8), -10, 10)
        return state.replace(disc_return=disc, ret_stats=stats), scaled

    def update(state: TrainState, batch: ppo.Batch, dyn: Dynamic):
        frac = 1.0 - state.iteration / cfg.num_iterations if cfg.anneal_lr else 1.0
        lr = dyn.learning_rate * frac
        grad_fn = jax.grad(ppo.loss, has_aux=True)

        def minibatch_step(carry, mb):
            params, opt_state = carry
            grads, m = grad_fn(params, network.apply, mb, dyn.clip_eps, dyn.ent_coef, dyn.vf_coef)
            grads = clip_by_norm(grads, dyn.max_grad_norm)
            upd, opt_state = tx.update(grads, opt_state, params)
            params = optax.apply_updates(params, jax.tree.map(lambda u: -lr * u, upd))
            return (params, opt_state), m

        def epoch(carry, key):
            perm = jax.random.permutation(key, cfg.batch_size)
            mbs = jax.tree.map(
                lambda x: x[perm].reshape((cfg.num_minibatches, cfg.minibatch_size) + x.shape[1:]),
                batch)
            return jax.lax.scan(minibatch_step, carry, mbs)

        key, k_ep = jax.random.split(state.key)
        (params, opt_state), m = jax.lax.scan(
            epoch, (state.params, state.opt_state), jax.random.split(k_ep, cfg.update_epochs))
        metrics = jax.tree.map(jnp.mean, m)
        return state.replace(params=params, opt_state=opt_state, key=key), metrics

    def learn_reward(state: TrainState, ro: Rollout, r_hat, spread, dyn: Dynamic):
        """Segments in, queries out to the teacher, the ensemble fit to the database."""
        step = ro.step
        pref = state.pref
        key, k_ask, k_fit = jax.random.split(state.key, 3)
        if cfg.offline:  # the reward model is frozen: no segments, queries or fitting
            diag = learner.split_losses(pref, k_fit)
        else:
            pref = keep_segments(pref, ro)
            # the schedule's clock starts with the up-front labels, after any exploration
            env_steps = (state.iteration + 1 - cfg.explore_iterations) * cfg.batch_size
            due = queries.labels_due(env_steps, cfg.rl_steps, dyn.labels, dyn.upfront_fraction,
                                     cfg.label_horizon)
            k = jnp.clip(due - pref.asked, 0, cfg.labels_per_iteration)
            pref = learner.ask(pref, k_ask, cfg.labels_per_iteration, k, dyn.query,
                               dyn.teacher_params())
            pref, diag = learner.fit(pref, k_fit, cfg.reward_updates, dyn.reward_lr)
        train_loss, val_loss, accuracy = diag
        metrics = dict(labels=pref.asked, comparisons=pref.db.filled.sum(),
                       reward_train_loss=train_loss.mean(), reward_val_loss=val_loss.mean(),
                       reward_val_accuracy=accuracy.mean(), reward_l2=pref.l2.mean(),
                       reward_true_corr=correlation(r_hat, step.reward, step.valid),
                       predicted_reward=ppo.masked_mean(r_hat, step.valid))
        if cfg.uncertainty_bonus:
            metrics.update(reward_spread=ppo.masked_mean(spread, step.valid))
        return state.replace(pref=pref, key=key), metrics

    def ppo_update(state: TrainState, ro: Rollout, reward, dyn: Dynamic):
        """PPO on the learner's ``reward [T, B]`` for rollout ``ro``; then the observation
        statistics take in the rollout. Returns ``(state, metrics)``."""
        step = ro.step
        state, reward = scale(state, reward, step.terminated | step.truncated, dyn)
        obs_n = norm_obs(state.obs_stats, step.obs)
        _, _, next_value = network.apply(state.params, obs_n)
        adv, target = ppo.gae(reward, ro.value, next_value, step.terminated, step.truncated,
                              dyn.gamma, dyn.gae_lambda)
        flat = lambda x: x.reshape((T * B,) + x.shape[2:])
        batch = ppo.Batch(obs=flat(norm_obs(state.obs_stats, ro.obs)), action=flat(ro.action),
                          log_prob=flat(ro.log_prob), advantage=flat(adv), target=flat(target),
                          valid=flat(step.valid))
        state, metrics = update(state, batch, dyn)
        return update_obs_stats(state, ro), metrics

    def train_step(state: TrainState, dyn: Dynamic):
        state, ro = rollout(state)
        step = ro.step
        done = step.terminated | step.truncated
        # The learner's reward: r-hat, or the true reward for the --reward=true baseline.
        if learner:
            pref = state.pref.replace(obs_stats=state.obs_stats)
            pref, r_hat, spread = learner.relabel(pref, ro.obs, ro.action, step.valid,
                                                  dyn.reward_std)
            state = state.replace(pref=pref)
            reward = r_hat
            # Read `spread` only with the bonus on: unread, XLA drops it; computed, it is
            # fused with the mean and changes r-hat's last bits (and the run it seeds).
            if cfg.uncertainty_bonus:  # optimism where the members disagree, fading out
                left = 1.0 - (state.iteration - cfg.explore_iterations) / cfg.rl_iterations
                reward = r_hat + cfg.uncertainty_bonus * left * spread
        else:
            reward = step.reward
        state, metrics = ppo_update(state, ro, reward, dyn)
        ep_return, ep_length, fin_ret, fin = episode_stats(
            step.reward, step.valid, done, state.ep_return, state.ep_length)
        n_fin = fin.sum()
        metrics.update(
            env_steps=(state.iteration + 1) * cfg.batch_size,
            episodes=n_fin,
            true_return=jnp.where(n_fin > 0, (fin_ret * fin).sum() / jnp.maximum(n_fin, 1), jnp.nan),
        )
        if learner:
            state, reward_metrics = learn_reward(state, ro, r_hat, spread, dyn)
            metrics.update(reward_metrics)
        state = state.replace(ep_return=ep_return, ep_length=ep_length,
                              iteration=state.iteration + 1)
        return state, metrics

    def run_chunk(state, dyn, n):
        return jax.lax.scan(lambda s, _: train_step(s, dyn), state, None, n)

    chunk = jax.jit(lambda state, dyn: run_chunk(state, dyn, cfg.chunk_iterations))

    def train(key, dyn):
        return run_chunk(init(key, dyn), dyn, cfg.rl_iterations)

    return Trainer(cfg, env, network, learner, init, train_step, chunk, train, rollout,
                   ppo_update)


def clip_by_norm(tree, max_norm):
    """Scale ``tree`` so its global norm is at most ``max_norm`` (may be traced)."""
    norm = optax.global_norm(tree)
    factor = jnp.minimum(1.0, max_norm / jnp.maximum(norm, 1e-12))
    return jax.tree.map(lambda g: g * factor, tree)


def nonfinite_parts(state: TrainState) -> dict:
    """``{"policy": ok, "reward model": ok}``: whether every parameter is finite."""
    parts = {"policy": state.params}
    if state.pref is not None:
        parts["reward model"] = state.pref.params
    return {name: jnp.all(jnp.stack([jnp.isfinite(x).all() for x in jax.tree.leaves(p)]))
            for name, p in parts.items()}


def restart_episodes(trainer: Trainer, state: TrainState, key: jax.Array) -> TrainState:
    """Fresh episodes in every env (after a resume on a backend whose env state lives
    outside JAX); the learner's state is untouched."""
    env_state = trainer.env.reset(key)
    B = trainer.cfg.num_envs
    return state.replace(env_state=env_state, obs=trainer.env.obs(env_state),
                         disc_return=jnp.zeros(B), ep_return=jnp.zeros(B),
                         ep_length=jnp.zeros(B, jnp.int32))


def evaluate(trainer: Trainer, eval_env: Env, state: TrainState, key: jax.Array):
    """Deterministic-policy episodes on ``eval_env`` (the task's standard reward and episodes).

    Runs one episode in each of the ``E = eval_env.spec.num_envs`` copies; returns the
    true returns ``[E]`` and lengths ``[E]``.
    """
    E = eval_env.spec.num_envs
    horizon = eval_env.spec.max_episode_steps

    def body(carry, _):
        env_state, obs, ret, length, done = carry
        env_state, step = eval_env.step(env_state, trainer.act(state, obs))
        live = ~done & step.valid
        ret = ret + jnp.where(live, step.reward, 0.0)
        length = length + live.astype(jnp.int32)
        done = done | (live & (step.terminated | step.truncated))
        return (env_state, step.obs, ret, length, done), None

    env_state = eval_env.reset(key)
    carry = (env_state, eval_env.obs(env_state), jnp.zeros(E), jnp.zeros(E, jnp.int32),
             jnp.zeros(E, bool))
    (_, _, ret, length, _), _ = jax.lax.scan(body, carry, None, horizon)
    return ret, length
