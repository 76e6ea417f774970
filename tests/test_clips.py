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


def rollout(name: str, steps: int, **task):
    """A random-action rollout of envpool task ``name``: observations ``[steps + 1, obs]``,
    actions ``[steps, act]``, ``moved [steps]`` (step ``t`` took ``obs[t]`` to ``obs[t + 1]``
    by ``actions[t]``, not to a reset) and the infos (``steps + 1``)."""
    import envpool

    from rlhp.envs.envpool_env import MUJOCO_IDS
    pool = envpool.make(MUJOCO_IDS[name], env_type="gymnasium", num_envs=1, seed=3, **task)
    obs, info = pool.reset()
    rng = np.random.default_rng(0)
    seen, actions, moved, infos, ended = [obs[0]], [], [], [info], False
    for _ in range(steps):
        action = rng.uniform(-1, 1, (1, *pool.action_space.shape))
        obs, _, term, trunc, info = pool.step(action)
        moved.append(not ended)  # the step after an episode's end resets the pool
        ended = term[0] or trunc[0]
        seen.append(obs[0])
        actions.append(action[0])
        infos.append(info)
    return np.asarray(seen), np.asarray(actions), np.asarray(moved), infos


NEW_TASKS = ("ant", "reacher", "inverted_pendulum", "inverted_double_pendulum")


@pytest.fixture(scope="module")
def rollouts():
    """Each newly drawn task's 30-step rollout (the pendulums fall and restart several
    times) and its reconstructed states."""
    import mujoco

    from rlhp.envs.envpool_env import MUJOCO_DT, MUJOCO_IDS
    from rlhp.outputs.video import envpool_xml
    out = {}
    for name in NEW_TASKS:
        model = mujoco.MjModel.from_xml_path(str(envpool_xml(MUJOCO_IDS[name])))
        task = {"terminate_when_unhealthy": False} if name == "ant" else {}
        obs, actions, moved, infos = rollout(name, 30, **task)
        qpos, qvel = clips.STATES[name](obs, model.nq, model.nv, MUJOCO_DT[name])
        out[name] = model, obs, actions, moved, infos, qpos, qvel
    return out


@pytest.mark.parametrize("name", NEW_TASKS)
def test_reconstructed_state_steps_to_the_next_observed_one(rollouts, name):
    """The state reconstructed from each observation, stepped once through MuJoCo with the
    action envpool took, is the state reconstructed from the next observation: the layout
    (which entry is which joint's position or velocity, angles from cos/sin) is the
    simulator's. Positions modulo a turn (reacher's first joint is unbounded); ant's x
    and y are integrated, not observed (checked below)."""
    import mujoco

    from rlhp.envs.envpool_env import MUJOCO_DT
    model, obs, actions, moved, _, qpos, qvel = rollouts[name]
    assert moved.sum() >= 20, moved
    data = mujoco.MjData(model)
    skip = round(MUJOCO_DT[name] / model.opt.timestep)
    first = 2 if name == "ant" else 0
    for t in np.flatnonzero(moved):
        mujoco.mj_resetData(model, data)
        data.qpos, data.qvel, data.ctrl = qpos[t], qvel[t], actions[t]
        mujoco.mj_step(model, data, skip)
        turn = (data.qpos - qpos[t + 1] + np.pi) % (2 * np.pi) - np.pi
        assert np.abs(turn[first:]).max() < 1e-3, (t, turn)
        assert np.abs(data.qvel - qvel[t + 1]).max() < 1e-2, (t, data.qvel, qvel[t + 1])


def test_ant_position_integrates_to_the_simulators(rollouts):
    """envpool reports the ant's x and y, which its observation leaves out: integrated
    from the observed velocities they stay within 12 cm of it over a 30-step (1.5 s)
    segment (the step is 5 simulator steps: the velocity at its end stands for them)."""
    _, obs, _, moved, infos, qpos, _ = rollouts["ant"]
    assert moved.all()
    where = np.array([[i["x_position"][0], i["y_position"][0]] for i in infos])
    travel = where - where[0]
    assert np.abs(travel).max() > 0.5  # it moved: the check has teeth
    assert np.abs(qpos[:, :2] - travel).max() < 0.12
    np.testing.assert_allclose(qpos[:, 2:], obs[:, :13], atol=1e-6)


def test_reacher_fingertip_is_where_envpool_measured_it(rollouts):
    """The reacher's angles from their cos/sin and the target's position put the
    fingertip, relative to the target, where envpool's simulator measured it (the
    observation's last two entries)."""
    import mujoco
    model, obs, _, _, _, qpos, qvel = rollouts["reacher"]
    data = mujoco.MjData(model)
    for t in range(len(obs)):
        data.qpos, data.qvel = qpos[t], qvel[t]
        mujoco.mj_forward(model, data)
        tip = data.body("fingertip").xpos - data.body("target").xpos
        np.testing.assert_allclose(tip[:2], obs[t, 8:10], atol=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("name", ("ant", "reacher", "inverted_pendulum",
                                  "inverted_double_pendulum", "humanoid"))
def test_brax_states_are_reconstructed_from_observations(name):
    """brax keeps the physics state: the state reconstructed from its observations over 10
    random steps is it (angles modulo a turn; the free bodies' x and y integrated, within
    3 cm; reacher's velocities are not its joints', so 0). 8-60 s each: brax compiles."""
    import warnings

    import jax
    from brax import envs
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        env = envs.get_environment(name, backend="spring")
    step = jax.jit(env.step)
    state = jax.jit(env.reset)(jax.random.PRNGKey(0))
    rng = np.random.default_rng(0)
    kept = [(state.obs, state.pipeline_state.q, state.pipeline_state.qd)]
    for _ in range(10):
        state = step(state, rng.uniform(-1, 1, env.action_size).astype(np.float32))
        kept.append((state.obs, state.pipeline_state.q, state.pipeline_state.qd))
    obs, q, qd = (np.asarray(x) for x in zip(*kept))
    model = env.sys.mj_model
    qpos, qvel = clips.BRAX_STATES[name](obs, model.nq, model.nv, float(env.dt))
    first = 2 if name in ("ant", "humanoid") else 0
    turn = (qpos - q + np.pi) % (2 * np.pi) - np.pi
    assert np.abs(turn[:, first:]).max() < 1e-5
    assert np.abs(qpos[:, :first] - (q[:, :first] - q[0, :first])).max(initial=0) < 0.03
    np.testing.assert_allclose(qvel, 0 * qd if name == "reacher" else qd, atol=1e-5)


def pixel_of(model, data, camera: str, point: np.ndarray, size: int):
    """``(row, col)`` where ``camera`` (a perspective camera, looking along its -z axis,
    vertical field of view ``fovy``) sees world ``point`` in a ``size``-square frame."""
    cam = model.camera(camera).id
    x, y, z = data.cam_xmat[cam].reshape(3, 3).T @ (point - data.cam_xpos[cam])
    focal = size / 2 / np.tan(np.radians(model.cam_fovy[cam]) / 2)
    return round(size / 2 - focal * y / -z), round(size / 2 + focal * x / -z)


def test_hopper_clip_draws_the_body_where_the_state_says():
    """Two hand-set Hopper states, the torso leaning forward and back (the tracking camera
    follows the centre of mass, so the lean is what moves on screen): the top of the torso
    is drawn where MuJoCo's camera projects it in each state's frame, and not there in the
    other's."""
    import mujoco

    from rlhp.outputs.video import VideoUnavailable
    try:
        draw = clips.MujocoClips("hopper", 0.008, "envpool")
    except VideoUnavailable as e:
        pytest.skip(str(e))
    model, data = draw.model, mujoco.MjData(draw.model)
    frames, tops = [], []
    for lean in (0.6, -0.6):
        qpos = np.array([0.0, 0.0, lean, 0.0, 0.0, 0.0])  # x, z (from rest), rooty, joints
        frames.append(draw.frames(np.concatenate([qpos[1:], np.zeros(6)])[None])[0])
        data.qpos, data.qvel = qpos, 0
        mujoco.mj_forward(model, data)
        torso = data.body("torso")
        top = torso.xpos + torso.xmat.reshape(3, 3) @ [0, 0, 0.15]  # inside the capsule's top
        tops.append(pixel_of(model, data, "track", top, clips.SIZE))
    assert abs(tops[0][1] - tops[1][1]) > 30, tops  # the lean moves the top sideways
    body = lambda f, rc: (f[rc[0] - 2:rc[0] + 3, rc[1] - 2:rc[1] + 3, 0].astype(int)  # noqa: E731
                          - f[rc[0] - 2:rc[0] + 3, rc[1] - 2:rc[1] + 3, 2] > 20).mean()
    assert body(frames[0], tops[0]) > 0.8 and body(frames[1], tops[1]) > 0.8
    assert body(frames[0], tops[1]) < 0.2 and body(frames[1], tops[0]) < 0.2
