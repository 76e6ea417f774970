"""Atari: the envpool games under the paper's treatment on real frames, the uint8 clip
store, the CNNs (shapes, the reward CNN's train/eval split) and A2C's n-step returns."""
import imageio.v2 as imageio
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rlhp.agents import a2c, networks
from rlhp.envs import atari, make_env, resolve_backend
from rlhp.preferences import frames, reward_model, segments

B, T = 2, 700


def random_play(env, steps: int, seed: int = 0):
    """``steps`` steps of uniformly random actions in ``env``, jitted: (first obs, Step
    [steps, B])."""
    def body(state, key):
        return env.step(state, jax.random.randint(key, (B,), 0, env.spec.num_actions))

    def run(key):
        state = env.reset(key)
        return env.obs(state), jax.lax.scan(body, state, jax.random.split(key, steps))[1]

    return jax.jit(run)(jax.random.PRNGKey(seed))


@pytest.fixture(scope="module")
def breakout():
    """The same random play (same pool seed, same actions) in the standard game and in
    the preference treatment: Breakout ends a game within a few hundred random steps."""
    standard = random_play(make_env("breakout", "envpool", B, seed=3), T)
    preference = random_play(make_env("breakout", "envpool", B, seed=3,
                                      preference_episodes=True, end_penalty=7.0), T)
    return jax.tree.map(np.asarray, (standard, preference))


@pytest.fixture(scope="module")
def pong():
    return jax.tree.map(np.asarray, random_play(make_env("pong", "envpool", B, seed=1), 300))


def test_games_registered():
    for name in ("pong", "beamrider", "breakout", "enduro", "qbert", "seaquest",
                 "spaceinvaders"):
        assert resolve_backend(name) == "envpool"
    spec = make_env("pong", "auto", B).spec
    assert spec.obs_shape == (84, 84, 4) and spec.num_actions == 6 and spec.frame_stack == 4
    assert spec.hidden == atari.HIDDEN["pong"] and spec.max_episode_steps == 27000


def test_standard_game_auto_resets(breakout):
    (first, s), _ = breakout
    assert first.dtype == np.uint8 and s.obs.shape == (T, B, 84, 84, 4)
    done, valid = s.terminated | s.truncated, s.valid
    assert done.any(), "random Breakout should lose a game within the test"
    np.testing.assert_array_equal(valid[1:], ~done[:-1])   # the step after an end is invalid
    assert (s.reward[~valid] == 0).all() and valid[0].all()
    # the invalid step starts the next game: its frames are new, not the last ones shifted
    t, b = np.argwhere(~valid)[0]
    assert not np.array_equal(s.obs[t, b, ..., :3], s.obs[t - 1, b, ..., 1:])


def test_preference_treatment_hides_game_ends(breakout):
    """No end signal reaches the agent; the teacher pays the end penalty at a game's end;
    the reset step stays masked; the play itself is the same game."""
    (_, std), (_, pref) = breakout
    assert not pref.terminated.any() and not pref.truncated.any()
    np.testing.assert_array_equal(pref.valid, std.valid)
    np.testing.assert_array_equal(pref.obs, std.obs)
    ended = std.terminated | std.truncated
    np.testing.assert_allclose(pref.reward, std.reward - 7.0 * ended)


def test_pong_has_no_end_penalty():
    env = make_env("pong", "envpool", B, preference_episodes=True, end_penalty=7.0)
    assert env.spec.name == "pong" and "pong" in atari.NO_END_PENALTY


def test_score_region_is_blank_for_the_reward_model(pong):
    """Pong's score lives in the hidden box (it changes when a point is scored) and is
    zero in the stored clips and in what r-hat sees; the rest of the frame is kept."""
    first, s = pong
    store = frames.codec(make_env("pong", "envpool", B).spec)
    (r0, r1, c0, c1), = atari.HIDDEN["pong"]
    t, b = np.argwhere(s.reward != 0)[0]   # a point scored
    before, after = s.obs[t - 1, b, ..., -1], s.obs[t + 2, b, ..., -1]
    assert not np.array_equal(before[r0:r1, c0:c1], after[r0:r1, c0:c1])
    clip = np.asarray(store.pack(jnp.asarray(s.obs[t - 5:t + 5, b])))   # [10 + 3, 84, 84]
    assert (clip[:, r0:r1, c0:c1] == 0).all()
    np.testing.assert_array_equal(clip[3:, r1:], s.obs[t - 5:t + 5, b, r1:, :, -1])
    seen = np.asarray(store.inputs(None, jnp.asarray(s.obs[t, b])))
    assert (seen[r0:r1, c0:c1] == 0).all() and seen.dtype == np.float32
    np.testing.assert_allclose(seen[r1:], s.obs[t, b, r1:] / 255.0, rtol=1e-6)


def test_clip_shows_the_frames_the_reward_model_sees(pong, tmp_path):
    """A pair's clips on the labelling page: each step's newest stored frame, 4x larger,
    the score blank, the two segments different, written as an mp4 that reads back."""
    from rlhp.human import clips

    _, s = pong
    spec = make_env("pong", "envpool", B).spec
    store = frames.codec(spec)
    (r0, r1, _, _), = atari.HIDDEN["pong"]
    L = 25
    obs = [s.obs[100:100 + L, 0], s.obs[200:200 + L, 1]]
    assert all(o[:, r0:r1, :, -1].any() for o in obs)       # the game shows its score
    stored = [np.asarray(store.pack(jnp.asarray(o))) for o in obs]   # [L + 3, 84, 84] each
    draw, fps = clips.clip_maker(spec)
    left, right = (np.asarray(draw(c)) for c in stored)
    assert left.shape == (L, 336, 336, 3) and left.dtype == np.uint8 and fps == 15
    np.testing.assert_array_equal(left[:, ::4, ::4, 0], stored[0][3:])  # nearest, x4
    np.testing.assert_array_equal(left[:, r1 * 4::4, ::4, 1], obs[0][:, r1:, :, -1])
    assert (left[:, :r1 * 4] == 0).all() and (right[:, :r1 * 4] == 0).all()  # score blank
    assert left.std() > 20                                   # real frames, not blank
    assert np.abs(left.astype(float) - right).mean() > 0.1   # the two segments differ
    back = np.stack(imageio.mimread(clips.write(list(left), tmp_path / "l.mp4", fps)))
    assert back.shape == left.shape and np.abs(back.astype(float) - left).mean() < 2


def test_uint8_store_round_trip(pong):
    """A clip is stored once per frame (L + 3 frames of uint8) and stacked again on read,
    through the segment buffer as the learner uses it."""
    _, s = pong
    store = frames.Frames((84, 84, 4))  # nothing hidden: an exact round trip
    L = 25
    obs = jnp.asarray(np.stack([s.obs[10:10 + L, 0], s.obs[40:40 + L, 1]]))  # [2, L, ...]
    shape, dtype = store.stored(L)
    assert shape == (L + 3, 84, 84) and dtype == jnp.uint8
    buf = segments.init(4, L, (84, 84, 4), (), jnp.int32, (shape, dtype))
    buf = segments.add(buf, store.pack(obs), jnp.zeros((2, L), jnp.int32),
                       jnp.zeros((2, L)), jnp.ones(2, bool))
    assert buf.obs.dtype == jnp.uint8 and buf.obs.nbytes == 4 * (L + 3) * 84 * 84
    np.testing.assert_array_equal(np.asarray(store.unpack(buf.obs[:2])), np.asarray(obs))


def test_segment_rewards_read_stored_frames(pong):
    """The run's reward scatter reads the buffered clips of frames back as observations."""
    from types import SimpleNamespace

    from rlhp.outputs.report import segment_rewards
    from rlhp.preferences.learner import RewardLearner

    _, s = pong
    learner = RewardLearner(
        net=reward_model.RewardMLP((4,), num_actions=6, use_action=False), members=2,
        segment_length=5,
        segment_capacity=4, label_capacity=2, candidate_factor=1, batch=1,
        obs_shape=(84, 84, 4), action_shape=(), action_dtype=jnp.int32,
        clips=frames.Frames((84, 84, 4), atari.HIDDEN["pong"]))
    pref = learner.init(jax.random.PRNGKey(0))
    obs = jnp.asarray(s.obs[:10].reshape(2, 5, B, 84, 84, 4).transpose(0, 2, 1, 3, 4, 5))
    valid = jnp.ones((10, B), bool)
    pref = learner.observe(pref, jnp.asarray(s.obs[:10]), jnp.zeros((10, B), jnp.int32),
                           jnp.asarray(s.reward[:10]), valid, ~valid)
    assert pref.segments.filled.all() and pref.segments.obs.shape == (4, 8, 84, 84)
    r_hat, true = segment_rewards(SimpleNamespace(learner=learner), SimpleNamespace(pref=pref))
    assert r_hat.shape == true.shape == (4 * 5,)
    direct = learner.predict(pref, obs.reshape(4, 5, 84, 84, 4), jnp.zeros((4, 5), jnp.int32),
                             1.0)
    np.testing.assert_allclose(r_hat, np.asarray(direct).ravel(), rtol=1e-5)


def test_reward_cnn_shapes_and_train_eval_split():
    net = reward_model.RewardCNN()
    x = jax.random.uniform(jax.random.PRNGKey(0), (2, 2, 84, 84, 4))
    variables = jax.jit(lambda k: net.init(k, x, None))(jax.random.PRNGKey(1))
    evaluate = jax.jit(lambda inputs: net.apply(variables, inputs, None))
    kernels = [variables["params"][f"Conv_{i}"]["kernel"].shape for i in range(4)]
    assert kernels == [(7, 7, 4, 16), (5, 5, 16, 16), (3, 3, 16, 16), (3, 3, 16, 16)]
    assert variables["params"]["Dense_0"]["kernel"].shape == (7 * 7 * 16, 64)
    assert variables["params"]["Dense_1"]["kernel"].shape == (64, 1)
    assert set(variables) == {"params", "batch_stats"}
    out = evaluate(x)
    assert out.shape == (2, 2)
    # eval: deterministic, each frame on its own (running statistics)
    np.testing.assert_allclose(evaluate(x.at[1].set(0.0))[0], out[0], rtol=1e-5)

    @jax.jit
    def train(key, inputs):
        return net.apply(variables, inputs, None, train=True, rngs={"dropout": key},
                         mutable=["batch_stats"])

    a, stats = train(jax.random.PRNGKey(2), x)
    b, _ = train(jax.random.PRNGKey(3), x)
    assert a.shape == (2, 2) and not np.allclose(a, b)        # dropout draws
    assert not np.allclose(a, out)                            # batch statistics, dropout
    moved = jax.tree.map(lambda u, v: not np.allclose(u, v), stats["batch_stats"],
                         variables["batch_stats"])
    assert all(jax.tree.leaves(moved))                        # running statistics update
    # in training a frame's output depends on the rest of the batch
    c, _ = train(jax.random.PRNGKey(2), x.at[1].set(0.0))
    assert not np.allclose(a[0], c[0])


def test_nature_cnn_shapes():
    net = networks.NatureCNN(6)
    obs = jax.ShapeDtypeStruct((5, 2, 84, 84, 4), jnp.uint8)
    params = jax.eval_shape(net.init, jax.random.PRNGKey(0), obs)
    logits, log_std, value = jax.eval_shape(net.apply, params, obs)
    assert logits.shape == (5, 2, 6) and log_std is None and value.shape == (5, 2)
    p = params["params"]
    assert [p[f"Conv_{i}"]["kernel"].shape for i in range(3)] == [
        (8, 8, 4, 32), (4, 4, 32, 64), (3, 3, 64, 64)]
    assert p["Dense_0"]["kernel"].shape == (7 * 7 * 64, 512)
    # a convolution kernel is orthogonal as a [8 * 8 * 4, 32] matrix, gain sqrt 2
    k = np.asarray(networks.orthogonal(np.sqrt(2))(jax.random.PRNGKey(1), (8, 8, 4, 32)))
    assert k.shape == (8, 8, 4, 32)
    np.testing.assert_allclose(k.reshape(-1, 32).T @ k.reshape(-1, 32), 2 * np.eye(32),
                               atol=1e-4)


def test_atari_preset_and_its_rules():
    from rlhp.config import ConfigError
    from rlhp.presets import preset
    from rlhp.run import check_memory
    from rlhp.train import make_learner

    cfg = preset("pong")
    assert (cfg.agent, cfg.reward_net, cfg.num_envs, cfg.a2c_steps) == ("a2c", "cnn", 16, 5)
    assert (cfg.labels, cfg.upfront_labels, cfg.label_capacity) == (3300, 500, 3000)
    assert preset("pong", reward="true").reward_net == "mlp"  # no reward model to build
    assert preset("hopper").agent == "ppo"
    with pytest.raises(ConfigError, match="label_window"):
        preset("pong", label_window=100)                  # less than the up-front labels
    with pytest.raises(ConfigError, match="a2c_steps"):
        preset("pong", a2c_steps=7)                       # does not divide the rollout
    spec = make_env("pong", "envpool", 16).spec
    # the database of 3,000 pairs of 28 uint8 frames: 1.2 GB, over half of 2 GiB
    with pytest.raises(ConfigError, match="label_window=3000: .* 1.2 GiB.*at most 2,557"):
        check_memory(cfg, spec, available=2 * 2**30)
    check_memory(cfg, spec, available=4 * 2**30)
    human = make_learner(preset("pong", teacher="human"), spec)   # a person labels frames too
    assert human.store.stored(human.segment_length) == ((28, 84, 84), jnp.uint8)
    with pytest.raises(ConfigError, match="reward_net='cnn' needs image observations"):
        make_learner(preset("hopper", reward_net="cnn"), make_env("hopper", "envpool", 16).spec)


def test_nstep_returns_by_hand():
    g = 0.5
    reward = jnp.array([[1.0, 1.0], [2.0, 2.0], [4.0, 4.0]])
    next_value = jnp.array([[10.0, 10.0], [20.0, 20.0], [8.0, 8.0]])
    term = jnp.array([[False, False], [False, True], [False, False]])
    trunc = jnp.array([[False, True], [False, False], [False, False]])
    r = np.asarray(a2c.nstep_returns(reward, next_value, term, trunc, g))
    # env 0: 4 + .5 * 8 = 8; 2 + .5 * 8 = 6; 1 + .5 * 6 = 4
    np.testing.assert_allclose(r[:, 0], [4.0, 6.0, 8.0])
    # env 1: 8; terminated at 1: 2; truncated at 0: 1 + .5 * 10 = 6
    np.testing.assert_allclose(r[:, 1], [6.0, 2.0, 8.0])


@pytest.fixture(scope="module")
def tiny_pong():
    """A tiny Pong preference run (2 envs, 4 iterations of 25 steps, 40 labels): its
    initial state and the state after one jitted chunk of every iteration."""
    from rlhp.presets import preset
    from rlhp.train import make_train

    cfg = preset("pong", num_envs=2, total_steps=2 * 25 * 4, prefill_iterations=2, labels=40,
                 upfront_fraction=0.5, label_window=30, pretrain_updates=2, reward_batch=4,
                 segment_capacity=16, reward_split_sample=4)
    trainer = make_train(cfg, make_env("pong", "envpool", 2, preference_episodes=True))
    dyn = cfg.dynamic()
    state = jax.jit(trainer.init)(jax.random.PRNGKey(0), dyn)
    after, metrics = trainer.chunk(state, dyn)
    return cfg, *jax.tree.map(np.asarray, (state, after, metrics))


@pytest.mark.slow  # 3.5 min here, mostly XLA compiling the convolutions and their gradients
def test_tiny_pong_preference_run_updates(tiny_pong):
    cfg, state, after, m = tiny_pong
    assert cfg.agent == "a2c" and cfg.reward_net == "cnn" and cfg.chunk_iterations == 4
    changed = lambda a, b: any(not np.array_equal(x, y) for x, y in
                               zip(jax.tree.leaves(a), jax.tree.leaves(b)))
    assert changed(state.agent.params, after.agent.params)           # A2C updated
    assert int(after.agent.updates) == int(state.agent.updates) + 4 * 5  # n = 5 of T = 25
    assert changed(state.pref.params["params"], after.pref.params["params"])  # r-hat fit
    assert changed(state.pref.params["batch_stats"], after.pref.params["batch_stats"])
    db = after.pref.db
    assert db.obs.dtype == np.uint8 and db.obs.shape == (30, 2, 28, 84, 84)
    assert db.filled.all() and int(db.total) == 40                    # the window wrapped
    assert (db.obs[..., :9, :] == 0).all() and db.obs.any()           # Pong's score hidden
    assert list(m["labels"]) == sorted(m["labels"]) and m["labels"][-1] == 40
    for key in ("policy_loss", "value_loss", "entropy", "reward_train_loss",
                "predicted_reward"):
        assert np.isfinite(m[key]).all(), key
    assert np.isnan(m["true_return"]).all()  # no game end reaches the training loop
