"""Final-policy videos for the MuJoCo backends (gridworld's is checked in test_lifecycle)."""
import types

import imageio.v2 as imageio
import jax
import numpy as np
import pytest

from rlhp.outputs import video
from rlhp.presets import preset
from rlhp.envs import make_env
from rlhp.train import make_train


def body_visible(frames) -> np.ndarray:
    """Per frame: is the body in it? The task models' bodies are brown or orange (red well
    above blue) against a grey or black-and-white floor and a blue-grey sky; the body counts
    as visible when such pixels cover at least 0.2% of the frame (a standing hopper filmed
    by the tracking camera covers ~1.7%). The caption is white on black: not counted."""
    f = np.asarray(frames).astype(int)
    return ((f[..., 0] - f[..., 2]) > 20).mean(axis=(1, 2)) >= 0.002


def tiny_trainer(env_name, backend):
    cfg = preset(env_name, backend=backend, reward="true", num_envs=2, rollout_length=16,
                 num_minibatches=2)
    trainer = make_train(cfg, make_env(env_name, backend, cfg.num_envs))
    return trainer, jax.jit(trainer.init)(jax.random.PRNGKey(0), cfg.dynamic())


# brax's case compiles a brax trainer and its evaluation (about a minute here): opt-in;
# brax's drawing stays in the default suite (test_brax_video_keeps_a_moving_hopper_in_frame)
@pytest.mark.parametrize("env_name,backend", [
    ("hopper", "envpool"),
    pytest.param("inverted_pendulum", "brax", marks=pytest.mark.slow)])
def test_video_of_an_initial_policy(env_name, backend, tmp_path):
    trainer, state = tiny_trainer(env_name, backend)
    try:
        path = video.record(trainer, state, tmp_path / "policy.mp4")
    except video.VideoUnavailable as e:
        pytest.skip(str(e))
    frames = np.stack(imageio.mimread(path))
    assert frames.shape[0] >= 2 and frames.shape[1:] == (video.SIZE, video.SIZE, 3)
    assert frames.std() > 5                  # a scene was drawn, not a blank image
    assert np.abs(np.diff(frames.astype(float), axis=0)).mean() > 0.01  # and it moves


def test_envpool_video_films_the_evaluated_episode():
    """The evaluation with its actions kept returns what the plain evaluation returns, and
    replaying the first episode's actions in a rendering pool gives that episode's return."""
    import jax.numpy as jnp

    from rlhp.run import EVAL_SEED_OFFSET, env_seed
    from rlhp.train import evaluate
    trainer, state = tiny_trainer("hopper", "envpool")
    cfg = trainer.cfg
    seed, key = env_seed(cfg.seed, EVAL_SEED_OFFSET), jax.random.PRNGKey(cfg.seed + 1)
    plain, _ = jax.jit(lambda s, k: evaluate(
        trainer, make_env("hopper", "envpool", cfg.eval_episodes, seed=seed), s, k))(state, key)
    returns, lengths, kept = video.evaluation(
        trainer, state, lambda s, action: jnp.zeros(()) if action is None else action)
    np.testing.assert_array_equal(returns, np.asarray(plain))
    # the evaluation stops once every episode has ended: the reset, then the longest episode
    assert len(kept) == 1 + int(lengths.max()) < 1 + trainer.env.spec.max_episode_steps
    actions = iter(kept[1:])
    try:
        frames, episode_return, _ = video.render_guarded(lambda: video.envpool_episode(
            "Hopper-v5", seed, cfg.eval_episodes, lambda obs: next(actions), 1000, 8, size=16))
    except video.VideoUnavailable as e:
        pytest.skip(str(e))
    assert len(frames) == 1 + -(-int(lengths[0]) // 8)
    assert episode_return == pytest.approx(float(returns[0]), rel=1e-6)


class Sway:
    """A scripted policy: phase-shifted sines on the joints. With falls not ending the
    episode, it drags a hopper ~2.9 m forward in 400 steps (3.2 s)."""

    def __init__(self, n):
        self.n, self.t = n, 0

    def __call__(self, obs):
        self.t += 1
        return np.sin(self.t * 0.1 + np.arange(self.n))[None]


def test_envpool_video_keeps_a_moving_hopper_in_frame():
    try:
        frames, _, x = video.render_guarded(lambda: video.envpool_episode(
            "Hopper-v5", 0, 1, Sway(3), 400, 10, size=64, terminate_when_unhealthy=False))
    except video.VideoUnavailable as e:
        pytest.skip(str(e))
    assert x[-1] - x[0] > 2.5  # a fixed camera at the start would have lost it by ~1.5 m
    assert body_visible(frames).mean() >= 0.9


def test_brax_video_keeps_a_moving_hopper_in_frame(monkeypatch):
    """brax states moved 6 m along x: the tracking camera keeps the body in frame, a fixed
    one (the free camera) loses it (which also shows the pixel count tells them apart)."""
    from brax import envs
    sys = envs.get_environment("hopper", backend="spring").sys
    q0 = np.asarray(sys.init_q)
    states = [types.SimpleNamespace(q=q0 + x * np.eye(q0.size)[0], qd=np.zeros(sys.qd_size()))
              for x in np.linspace(0.0, 6.0, 30)]
    try:
        tracked = video.render_guarded(lambda: video.render_brax(sys, states, 64))
    except video.VideoUnavailable as e:
        pytest.skip(str(e))
    assert body_visible(tracked).mean() >= 0.9
    monkeypatch.setattr(video, "camera_of", lambda model: -1)
    assert body_visible(video.render_brax(sys, states, 64)).mean() < 0.6


def test_caption_draws_the_return_in_the_top_left():
    frames = [np.full((video.SIZE, video.SIZE, 3), 100, np.uint8)] * 2
    a = video.caption(frames, "Hopper-v5 (envpool)", 1234.5)
    b = video.caption(frames, "Hopper-v5 (envpool)", 987.6)
    assert len(a) == 2 and a[0].shape == frames[0].shape
    rows, cols = np.nonzero(np.any(a[0] != frames[0], axis=-1))
    assert rows.size > 100 and rows.max() < video.SIZE // 4 and cols.min() < 20
    assert (a[0] != b[0]).any()  # the return is part of it
    assert not body_visible(a).any()
