"""Reward learning from preferences, as pure functions over ``PrefState``.

The three processes of the paper meet here: segments of the policy's behaviour are
collected (``observe``); pairs of them are chosen (``select``), answered by a teacher and
the answers put into the database (``insert``); and the reward-model ensemble is fit to
the database (``fit``). ``ask`` is the synthetic path, fused on device; a host-side
teacher (a person) answers a ``Query`` between jitted chunks and calls ``insert``. ``relabel`` gives the
policy its reward: the mean over members of each member's normalised r-hat.
"""
from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
import optax
from flax import struct

from rlhp import normalize
from rlhp.preferences import comparisons, frames, queries, reward_model, segments, teachers

L2_BOUNDS = (1e-6, 10.0)
L2_STEP = 1.25  # multiplicative step of the adaptive L2 weight
SPLIT_SAMPLE = 64  # labels per member and split drawn to estimate its losses
DROPOUT_STREAM = 0xD0  # a fit step's dropout key: fold_in(its key, DROPOUT_STREAM)


@struct.dataclass
class PrefState:
    params: object                  # stacked r-hat params [M, ...]
    opt_state: object
    stats: normalize.RunningStats   # per-member output statistics, shape [M]
    l2: jax.Array                   # [M] adaptive L2 weights
    segments: segments.SegmentBuffer
    db: comparisons.Comparisons
    asked: jax.Array                # [] float32 queries asked so far (skips included)
    segments_seen: jax.Array        # [] int32
    obs_stats: normalize.RunningStats  # the policy's observation statistics (r-hat inputs)


@struct.dataclass
class Query:
    """Pairs of segments put to a teacher; ``[K, 2, L, ...]`` clips of ``K`` pairs."""

    obs: jax.Array          # [K, 2, L, *obs_shape]
    action: jax.Array       # [K, 2, L, ...]
    true_reward: jax.Array  # [K, 2, L] what a synthetic teacher judges by
    asked: jax.Array        # [K] bool: the pairs really asked (a static maximum, masked)
    predicted: jax.Array    # [K] bool: r-hat, not yet fit on these pairs, prefers the first


@struct.dataclass
class FreshLabels:
    """How r-hat's predictions on pairs it was never fit on compare with the teacher's
    answers: ``correct [K]``, and ``judged [K]``: pairs asked and answered, ties excluded."""

    correct: jax.Array  # [K] bool
    judged: jax.Array   # [K] bool

    @staticmethod
    def of(query: Query, mu, answered) -> "FreshLabels":
        """The teacher's answers ``mu [K]``, ``answered [K]`` against ``query.predicted``."""
        return FreshLabels(correct=query.predicted == (mu > 0.5),
                           judged=query.asked & answered & (mu != 0.5))


@dataclass(frozen=True)
class RewardLearner:
    """Static shapes of the reward-learning machinery, built once from the config.

    Clips' observations are kept as ``clips`` stores them (``rlhp.preferences.frames``;
    default: as observed): ``PrefState.segments.obs``, ``db.obs`` and ``Query.obs`` hold
    stored clips, read back through ``clip_inputs``."""

    net: reward_model.RewardMLP | reward_model.RewardCNN
    members: int
    segment_length: int
    segment_capacity: int
    label_capacity: int
    candidate_factor: int
    batch: int
    obs_shape: tuple
    action_shape: tuple
    action_dtype: object
    l2_max: float = L2_BOUNDS[1]
    l2_init: float = 1e-4
    stats_window: float = 0
    clips: frames.Vectors | frames.Frames | None = None
    split_sample: int = SPLIT_SAMPLE

    @property
    def store(self) -> frames.Vectors | frames.Frames:
        return self.clips or frames.Vectors(tuple(self.obs_shape))

    def init(self, key) -> PrefState:
        obs = jnp.zeros((1, *self.obs_shape), jnp.float32)
        act = jnp.zeros((1, *self.action_shape), self.action_dtype)
        params = reward_model.init_ensemble(self.net, key, self.members, obs, act)
        M, L = self.members, self.segment_length
        clip = self.store.stored(L)
        return PrefState(
            params=params, opt_state=_adam().init(params),
            stats=normalize.init((M,)), l2=jnp.full((M,), self.l2_init, jnp.float32),
            segments=segments.init(self.segment_capacity, L, self.obs_shape,
                                   self.action_shape, self.action_dtype, clip),
            db=comparisons.init(self.label_capacity, M, L, self.obs_shape,
                                self.action_shape, self.action_dtype, clip),
            asked=jnp.zeros((), jnp.float32), segments_seen=jnp.zeros((), jnp.int32),
            obs_stats=normalize.init(self.obs_shape))

    def inputs(self, pref: PrefState, obs):
        """Observations ``[..., *obs_shape]`` as r-hat sees them (``frames``: normalised
        like the policy's; images scaled, the score hidden)."""
        return self.store.inputs(pref.obs_stats, obs)

    def clip_inputs(self, pref: PrefState, clips):
        """Stored clips ``[..., *stored]`` as r-hat sees them: ``[..., L, *obs_shape]``."""
        return self.inputs(pref, self.store.unpack(clips))

    def raw(self, pref: PrefState, obs, action):
        """Raw member outputs ``[M, ...]``."""
        return reward_model.apply_ensemble(self.net, pref.params, self.inputs(pref, obs), action)

    def predict(self, pref: PrefState, obs, action, reward_std):
        """r-hat as the policy gets it, without updating any statistics: the members'
        normalised outputs averaged, ``[...]`` for obs ``[..., *obs_shape]``."""
        return reward_model.normalized(self.raw(pref, obs, action), pref.stats, reward_std).mean(0)

    def relabel(self, pref: PrefState, obs, action, valid, reward_std, update: bool = True):
        """r-hat for a rollout: obs ``[T, B, ...]``, valid ``[T, B]``; updates the
        normalisation statistics with the valid steps (unless ``update`` is False: a frozen
        reward model); returns ``(pref, r_hat [T, B], spread [T, B])``, spread being the
        members' std about r-hat (their disagreement)."""
        raw = self.raw(pref, obs, action)                       # [M, T, B]
        if update:
            flat = raw.reshape(raw.shape[0], -1).T              # [T*B, M]
            stats = normalize.update(pref.stats, flat, valid.reshape(-1), self.stats_window)
        else:
            stats = pref.stats
        members = reward_model.normalized(raw, stats, reward_std)
        return pref.replace(stats=stats), members.mean(0), members.std(0)

    def freeze(self, pref: PrefState, reward_std) -> PrefState:
        """The members' normalisation statistics set from the buffered segments' steps, for
        a reward model that changes no more (``relabel(update=False)`` from then on)."""
        seg = pref.segments
        valid = jnp.broadcast_to(seg.filled[:, None], seg.true_reward.shape)
        return self.relabel(pref, self.store.unpack(seg.obs), seg.action, valid, reward_std)[0]

    def observe(self, pref: PrefState, obs, action, true_reward, valid, done) -> PrefState:
        """Cut a rollout ``[T, B, ...]`` into segments and keep them."""
        seg = segments.cut(obs, action, true_reward, valid, done, self.segment_length)
        buf = segments.add(pref.segments, self.store.pack(seg[0]), *seg[1:])
        return pref.replace(segments=buf, segments_seen=pref.segments_seen + seg[3].sum())

    def pair_sums(self, pref: PrefState, pairs):
        """Every member's raw segment sums ``[M, N, 2]`` on pairs ``[N, 2]`` of buffered
        segments."""
        buf = pref.segments
        if 2 * pairs.shape[0] > self.segment_capacity:
            # fewer segments than candidate slots: score each segment once, then gather
            per_segment = reward_model.apply_ensemble(
                self.net, pref.params, self.clip_inputs(pref, buf.obs), buf.action).sum(-1)  # [M, S]
            return per_segment[:, pairs]                                                # [M, N, 2]
        return reward_model.segment_sums(self.net, pref.params,
                                         self.clip_inputs(pref, buf.obs[pairs]), buf.action[pairs])

    def features(self, pref: PrefState, clips):
        """Clip features for k-center: r-hat's inputs averaged over each clip of a pair,
        both clips side by side: stored clips ``[..., 2, *stored]`` -> ``[..., 2 * F]``."""
        x = self.clip_inputs(pref, clips).mean(-1 - len(self.obs_shape))
        return x.reshape(*x.shape[:-1 - len(self.obs_shape)], -1)

    def preferred(self, pref: PrefState, sums):
        """``[N]`` bool: r-hat as the policy gets it (the members' normalised outputs
        averaged) prefers the first segment, from raw member sums ``[M, N, 2]``."""
        normed = reward_model.normalized(sums, pref.stats, 1.0).mean(0)
        return normed[..., 0] > normed[..., 1]

    def select(self, pref: PrefState, k_pairs, k_score, k_max: int, k, scheme) -> Query:
        """Choose ``k <= k_max`` pairs (``k`` may be traced) of buffered segments: the best
        ``k_max`` by ``scheme`` among ``candidate_factor * k_max`` random candidates, the
        first ``k`` of them asked. ``k_pairs`` draws the candidates, ``k_score`` breaks
        ties for the random scheme. Returns the pairs' clips as a ``Query``, with r-hat's
        prediction on each."""
        buf, db = pref.segments, pref.db
        n = jnp.minimum(pref.segments_seen, self.segment_capacity)
        pairs = queries.candidate_pairs(k_pairs, n, self.candidate_factor * k_max)
        sums = self.pair_sums(pref, pairs)
        best = queries.choose(scheme, k_score, sums,
                              lambda: self.features(pref, buf.obs[pairs]),
                              lambda: self.features(pref, db.obs), lambda: db.filled, k_max)
        chosen = pairs[best]  # [K, 2]
        return Query(obs=buf.obs[chosen], action=buf.action[chosen],
                     true_reward=buf.true_reward[chosen],
                     asked=(jnp.arange(k_max) < k) & (n >= 2),
                     predicted=self.preferred(pref, sums[:, best]))

    def insert(self, pref: PrefState, key, query: Query, mu, answered) -> PrefState:
        """Put the answers ``mu [K]`` (1: first better, 0: second, 0.5: equal) to ``query``
        into the database: the pairs asked and ``answered [K]`` ("can't tell" is not);
        every pair asked counts against the budget."""
        db = comparisons.add(pref.db, key, query.obs, query.action, mu, query.asked & answered)
        return pref.replace(db=db, asked=pref.asked + query.asked.sum())

    def ask(self, pref: PrefState, key, k_max: int, k, scheme, teacher: teachers.TeacherParams):
        """The synthetic path, fused on device: ``select`` pairs, a synthetic teacher
        answers them from their true rewards, ``insert`` the answers. Returns ``(pref,
        FreshLabels [k_max])``: r-hat's predictions on the pairs, made before any fit on
        them, against the answers."""
        k_pairs, k_score, k_teach, k_db = jax.random.split(key, 4)
        query = self.select(pref, k_pairs, k_score, k_max, k, scheme)
        mu, answered = teachers.label(teacher, k_teach, query.true_reward)
        return self.insert(pref, k_db, query, mu, answered), FreshLabels.of(query, mu, answered)

    def audit(self, pref: PrefState, key, n: int, teacher: teachers.TeacherParams) -> FreshLabels:
        """Audit labels: ``n`` random pairs of buffered segments answered by a synthetic
        teacher and judged against r-hat's predictions, never stored nor counted against
        the budget. Returns ``FreshLabels [n]``."""
        k_pairs, k_teach = jax.random.split(key)
        filled = jnp.minimum(pref.segments_seen, self.segment_capacity)
        pairs = queries.candidate_pairs(k_pairs, filled, n)
        buf = pref.segments
        query = Query(obs=buf.obs[pairs], action=buf.action[pairs],
                      true_reward=buf.true_reward[pairs], asked=jnp.full(n, filled >= 2),
                      predicted=self.preferred(pref, self.pair_sums(pref, pairs)))
        return FreshLabels.of(query, *teachers.label(teacher, k_teach, query.true_reward))

    def member_sums(self, params, obs, action):
        """Each member's segment sums on its own pairs: obs ``[M, N, 2, L, ...]`` ->
        ``[M, N, 2]``."""
        return reward_model.over_members(
            self.net, lambda p, o, a: self.net.apply(p, o, a).sum(-1), params, obs, action)

    def member_losses(self, params, obs, action, mu, key):
        """BT loss per member and pair, each member on its own pairs, as in training:
        obs ``[M, N, 2, L, ...]``, mu ``[M, N]``. Returns ``(losses [M, N], updates)``:
        a net with a training mode (the CNN's dropout and batch norm,
        ``reward_model.RewardCNN``) runs in it, drawing its dropout from ``key``, and
        ``updates`` holds its new batch statistics (``{}`` for the MLP)."""
        if not self.net.training_mode:
            sums = self.member_sums(params, obs, action)
            return reward_model.bt_loss(sums[..., 0], sums[..., 1], mu), {}

        def member(p, o, a, k):
            out, updates = self.net.apply(p, o, a, train=True, rngs={"dropout": k},
                                          mutable=["batch_stats"])
            return out.sum(-1), updates

        sums, updates = reward_model.over_members(
            self.net, member, params, obs, action, jax.random.split(key, self.members))
        return reward_model.bt_loss(sums[..., 0], sums[..., 1], mu), updates

    def fit(self, pref: PrefState, key, num_updates: int, lr) -> PrefState:
        """``num_updates`` Adam steps; each member draws its minibatch from its own
        bootstrap weights (a no-op while the database is empty); then the L2 weights adapt.
        Returns ``(pref, (train_loss [M], val_loss [M], val_accuracy [M]))``."""
        db = pref.db
        has_data = (db.weight.T * db.filled).sum(-1) > 0  # [M]
        tx = _adam()

        def loss_fn(params, idx, l2, key):
            losses, updates = self.member_losses(
                params, self.clip_inputs(pref, db.obs[idx]), db.action[idx], db.mu[idx], key)
            l2_term = l2 * mean_square(params["params"])
            return jnp.sum(jnp.where(has_data, losses.mean(-1) + l2_term, 0.0)), updates

        def step(carry, key):
            params, opt_state = carry
            idx = comparisons.sample(db, key, self.batch)  # [M, b]
            grads, updates = jax.grad(loss_fn, has_aux=True)(
                params, idx, pref.l2, jax.random.fold_in(key, DROPOUT_STREAM))
            upd, opt_state = tx.update(grads, opt_state, params)
            params = optax.apply_updates(params, jax.tree.map(lambda u: -lr * u, upd))
            # batch statistics are not trained (their gradients are 0): they are replaced
            return ({**params, **updates}, opt_state), None

        k_steps, k_split = jax.random.split(key)
        (params, opt_state), _ = jax.lax.scan(step, (pref.params, pref.opt_state),
                                              jax.random.split(k_steps, num_updates))
        return self.adapt_l2(pref.replace(params=params, opt_state=opt_state), k_split)

    def fit_in_rounds(self, pref: PrefState, key, num_updates: int, rounds: int, lr):
        """Reward pretraining: ``num_updates`` fit steps in ``rounds`` equal rounds
        (``num_updates // rounds`` each), the L2 weight adapting after each round as it does
        between RL iterations. Returns ``pref``."""
        rounds = max(1, min(rounds, num_updates))

        def fit_round(pref, k):
            pref, _ = self.fit(pref, k, num_updates // rounds, lr)
            return pref, None

        if rounds == 1:
            return fit_round(pref, key)[0]
        return jax.lax.scan(fit_round, pref, jax.random.split(key, rounds))[0]

    def split_losses(self, pref: PrefState, key):
        """Per-member mean loss on its training labels and on its held-out labels, and
        held-out accuracy (ties excluded): ``(train [M], val [M], accuracy [M])``.

        Estimated on ``split_sample`` labels per member and split, drawn with replacement
        (training labels by bootstrap count), each member evaluating only its own: the
        adaptive L2 rule needs a ratio, not exact means (the whole database cost a quarter
        of a Hopper step; a shared 256-label sample still a tenth)."""
        db = pref.db
        held_out = db.validation.astype(jnp.float32)

        def estimate(weight, key):
            idx = comparisons.sample(db, key, self.split_sample, weight)     # [M, n]
            sums = self.member_sums(pref.params, self.clip_inputs(pref, db.obs[idx]),
                                    db.action[idx])
            mu = db.mu[idx]
            losses = reward_model.bt_loss(sums[..., 0], sums[..., 1], mu)    # [M, n]
            correct = (sums[..., 0] > sums[..., 1]) == (mu > 0.5)
            ok = jnp.take_along_axis((weight * db.filled[:, None]).T, idx, 1) > 0
            return losses, correct, ok, mu

        k_train, k_val = jax.random.split(key)
        train, _, train_ok, _ = estimate(db.weight, k_train)
        val, correct, val_ok, mu = estimate(held_out, k_val)
        mean = lambda x, w: (x * w).sum(-1) / jnp.maximum(w.sum(-1), 1e-8)
        return (mean(train, train_ok), mean(val, val_ok),
                mean(correct, val_ok & (mu != 0.5)))

    def adapt_l2(self, pref: PrefState, key):
        """Keep validation loss within 1.1x-1.5x of training loss by scaling the L2 weight.
        Returns ``(pref, split_losses(pref, key))``."""
        diag = self.split_losses(pref, key)
        enough = (pref.db.validation & pref.db.filled[:, None]).sum(0) >= 4
        return pref.replace(l2=adapt_l2(pref.l2, diag[0], diag[1], enough, self.l2_max)), diag


def mean_square(params) -> jax.Array:
    """``[M]``: each member's mean squared parameter (of its trained ``params`` collection,
    not its batch statistics). (The L2 weight multiplies this mean,
    not the sum: on the sum, the adaptive rule drove the penalty far above the
    Bradley-Terry loss and flattened r-hat.)"""
    leaves = jax.tree.leaves(params)
    total = sum(jnp.sum(p.reshape(p.shape[0], -1) ** 2, -1) for p in leaves)
    return total / sum(p[0].size for p in leaves)


def adapt_l2(l2, train_loss, val_loss, enough, l2_max=L2_BOUNDS[1]):
    """The adaptive L2 rule, elementwise over members: raise the weight when validation
    loss exceeds 1.5x training loss, lower it below 1.1x, leave it otherwise (or when a
    member has too few held-out labels to judge)."""
    up = enough & (val_loss > 1.5 * train_loss)
    down = enough & (val_loss < 1.1 * train_loss)
    l2 = jnp.where(up, l2 * L2_STEP, jnp.where(down, l2 / L2_STEP, l2))
    return jnp.clip(l2, L2_BOUNDS[0], l2_max)


def _adam():
    return optax.scale_by_adam()
