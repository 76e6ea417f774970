"""Final-policy videos for the MuJoCo backends (gridworld's is checked in test_lifecycle)."""
import imageio.v2 as imageio
import jax
import numpy as np
import pytest

from rlhp.outputs import video
from rlhp.presets import preset
from rlhp.envs import make_env
from rlhp.train import make_train


@pytest.mark.parametrize("env_name,backend", [("hopper", "envpool"),
                                              ("inverted_pendulum", "brax")])
def test_video_of_an_initial_policy(env_name, backend, tmp_path):
    cfg = preset(env_name, backend=backend, reward="true", num_envs=2, rollout_length=16,
                 num_minibatches=2)
    trainer = make_train(cfg, make_env(env_name, backend, cfg.num_envs))
    state = jax.jit(trainer.init)(jax.random.PRNGKey(0), cfg.dynamic())
    try:
        path = video.record(trainer, state, tmp_path / "policy.mp4")
    except video.VideoUnavailable as e:
        pytest.skip(str(e))
    frames = np.stack(imageio.mimread(path))
    assert frames.shape[0] >= 2 and frames.shape[1:] == (video.SIZE, video.SIZE, 3)
    assert frames.std() > 5                  # a scene was drawn, not a blank image
    assert np.abs(np.diff(frames.astype(float), axis=0)).mean() > 0.01  # and it moves
