"""Clips are real frames of the segment: the gridworld agent where the observation puts
it; the MuJoCo body reconstructed from its observations where the simulator had it, drawn,
and different segments drawn differently."""
import numpy as np
import pytest

from rlhp.envs import gridworld as g
from rlhp.human import clips


def test_gridworld_clip_draws_the_agent_on_its_cell():
    cells = [12, 13, 8, 3, 4]
    frames = clips.gridworld_frames(np.eye(g.NUM_CELLS)[cells], size=100)
    assert len(frames) == len(cells) and frames[0].shape == (100, 100, 3)
    px = 100 // g.SIZE
    blue = lambda f, cell: f[(cell // g.SIZE) * px + px // 2, (cell % g.SIZE) * px + px // 2]
    for f, cell in zip(frames, cells):
        assert tuple(blue(f, cell)) == (25, 51, 204)           # the agent's square
    assert tuple(blue(frames[-1], 13)) != (25, 51, 204)        # it left that cell
    other = clips.gridworld_frames(np.eye(g.NUM_CELLS)[[0, 1, 2, 7, 6]], size=100)
    assert np.abs(np.asarray(frames, float) - np.asarray(other, float)).mean() > 1


def test_hopper_state_reconstruction_matches_the_simulator():
    """envpool reports the x position the observation leaves out: integrating the observed
    x velocity puts the body within 1 cm of it over a 60-step segment."""
    import envpool
    pool = envpool.make("Hopper-v5", env_type="gymnasium", num_envs=1, seed=3,
                        terminate_when_unhealthy=False)
    obs, info = pool.reset()
    rng = np.random.default_rng(0)
    seen, xs = [obs[0]], [info["x_position"][0]]
    for _ in range(59):
        obs, _, _, _, info = pool.step(rng.uniform(-1, 1, (1, 3)))
        seen.append(obs[0])
        xs.append(info["x_position"][0])
    qpos, qvel = clips.mujoco_states(np.asarray(seen), 6, 6, 0.008)
    assert np.abs(qpos[:, 0] - (np.asarray(xs) - xs[0])).max() < 0.01
    np.testing.assert_allclose(qpos[:, 1:], np.asarray(seen)[:, :5], atol=1e-6)
    np.testing.assert_allclose(qvel, np.asarray(seen)[:, 5:], atol=1e-6)


def test_hopper_clips_show_the_body_and_differ(tmp_path):
    from rlhp.envs import make_env
    from rlhp.outputs.video import VideoUnavailable
    spec = make_env("hopper", "envpool", 1).spec
    segments = clips.random_segments("hopper", 2, 60, spec)
    try:
        frames = clips.clip_maker(spec)[0]
    except VideoUnavailable as e:
        pytest.skip(str(e))
    a, b = np.asarray(frames(segments[0])), np.asarray(frames(segments[1]))
    assert a.shape == (60 // 4, clips.SIZE, clips.SIZE, 3)
    body = lambda f: ((f[..., 0].astype(int) - f[..., 2]) > 20).mean(axis=(1, 2))  # brown body
    assert (body(a) > 0.002).all() and (body(b) > 0.002).all()
    assert np.abs(a.astype(float) - b.astype(float)).mean() > 1
    path = clips.write(list(a), tmp_path / "a.mp4", 30)
    assert path.stat().st_size > 1000


def test_brax_hopper_clips_draw_the_body_as_envpool_does():
    """brax observes a hopper as envpool does (the torso's height first, where brax's own
    model has a rootz joint at 0 when standing): a brax clip of a segment is the envpool
    clip's picture of it, up to the two models' floors and lights, and nearer to it than
    to the envpool clip of another segment."""
    from rlhp.envs import make_env
    from rlhp.outputs.video import VideoUnavailable
    spec = make_env("hopper", "envpool", 1).spec
    segments = clips.random_segments("hopper", 2, 60, spec)
    try:
        envpool_frames = clips.MujocoClips("hopper", spec.dt, "envpool").frames
        brax_frames = clips.MujocoClips("hopper", spec.dt, "brax").frames
    except VideoUnavailable as e:
        pytest.skip(str(e))
    grey = lambda frames: np.asarray(frames, float).mean(-1)  # noqa: E731
    drawn = [grey(envpool_frames(s)) for s in segments]
    mine = grey(brax_frames(segments[0]))
    same, other = np.abs(mine - drawn[0]).mean(), np.abs(mine - drawn[1]).mean()
    assert same < 15 and same < 0.8 * other, (same, other)
    with pytest.raises(clips.ClipUnavailable, match="brax"):
        clips.MujocoClips("swimmer", spec.dt, "brax")
