"""A short video of the evaluated (deterministic) policy, as mp4, with its return drawn in.

gridworld draws its grid. The MuJoCo backends film the first episode of the final
evaluation itself: the run's jitted evaluation runs again with what the video needs kept
(its return is the one filmed). brax keeps env 0's physics states and draws them through
MuJoCo's renderer; envpool keeps the actions and replays them in a pool of the same seed
that renders (``pool.render``: envpool's own MuJoCo build, deterministic, so the same
states) once a GL context is current in this thread. Both view through the task model's
``track`` camera (it follows the body's centre of mass), so a body that hops several
metres stays in frame; tasks without one (the pendulums, reacher) use the fixed default
view of their small scene.

Rendering needs an OpenGL library without a display: EGL (``apt-get install libegl1
libgl1``); without it ``record`` raises ``VideoUnavailable`` and the run goes on.
"""
from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from pathlib import Path
from types import SimpleNamespace

import jax
import numpy as np

SIZE = 240        # frame height and width in pixels
FPS = 30
MAX_FRAMES = 300
TRACK_CAMERA = "track"  # the MuJoCo task models' camera that follows the body


class VideoUnavailable(Exception):
    """The host cannot render this task (reason in the message)."""


def policy_fn(trainer, state):
    """Jitted deterministic policy: obs ``[N, *obs_shape]`` -> action ``[N, ...]``."""
    return jax.jit(lambda obs: trainer.act(state, obs))


def jax_trajectory(trainer, state, env, steps: int):
    """Roll the policy ``steps`` steps in a one-env JAX ``env``; returns the env states
    (stacked over time) and ``done [steps]`` (the step ended an episode)."""
    act = policy_fn(trainer, state)

    def body(env_state, _):
        env_state, step = env.step(env_state, act(env.obs(env_state)))
        return env_state, (env_state, step.terminated[0] | step.truncated[0])

    _, (states, done) = jax.jit(lambda k: jax.lax.scan(body, env.reset(k), None, steps))(
        jax.random.PRNGKey(trainer.cfg.seed + 2))
    return states, np.asarray(done)


def gridworld_board(size: int = SIZE):
    """The 5x5 world drawn ``[size, size, 3]`` float in [0, 1], each cell coloured by its
    true reward (red low, green high); and the cell size in pixels."""
    import matplotlib

    from rlhp.envs import gridworld as g
    cell_px = size // g.SIZE
    reward = g.true_reward_map()
    colours = matplotlib.colormaps["RdYlGn"]((reward - reward.min()) / np.ptp(reward))[..., :3]
    return np.kron(colours, np.ones((cell_px, cell_px, 1))), cell_px


def gridworld_frames(trainer, state):
    from rlhp.envs import gridworld as g
    states, _ = jax_trajectory(trainer, state, g.make(1), 4 * g.HORIZON)
    board, cell_px = gridworld_board()
    frames = []
    for cell in np.asarray(states.cell[:, 0]):
        img = board.copy()
        r, c = divmod(int(cell), g.SIZE)
        pad = cell_px // 4
        img[r * cell_px + pad:(r + 1) * cell_px - pad, c * cell_px + pad:(c + 1) * cell_px - pad] = (0.1, 0.2, 0.8)
        frames.append((img * 255).astype(np.uint8))
    return frames, 4


def stride(dt: float) -> int:
    """Env steps per video frame for real-time playback at ``FPS``."""
    return max(1, round(1.0 / (FPS * dt)))


def evaluation(trainer, state, pick):
    """The final evaluation exactly as ``rlhp.run`` runs it (the same env, pool seed, key and
    jitted ``rlhp.train.evaluate``), keeping what ``pick(env_state, action)`` (traced;
    ``action`` is None for the reset state) selects from the reset state and after every
    step, for the whole batch. Returns ``(returns [E], lengths [E], kept)``: ``kept[0]``
    from the reset, ``kept[t]`` after step ``t``; episode ``i`` of the evaluation is steps
    ``1..lengths[i]``."""
    from jax.experimental import io_callback

    from rlhp.envs import make_env
    from rlhp.envs.base import Env
    from rlhp.run import EVAL_SEED_OFFSET, env_seed
    from rlhp.train import evaluate, evaluation_key
    cfg = trainer.cfg
    env = make_env(cfg.env, cfg.backend, cfg.eval_episodes,
                   seed=env_seed(cfg.seed, EVAL_SEED_OFFSET))
    kept = []

    def keep(tree):  # ordered: the host sees every step once, in order
        io_callback(lambda t: kept.append(jax.tree.map(np.asarray, t)), None, tree, ordered=True)

    def reset(key):
        env_state = env.reset(key)
        keep(pick(env_state, None))
        return env_state

    def step(env_state, action):
        env_state, out = env.step(env_state, action)
        keep(pick(env_state, action))
        return env_state, out

    tapped = Env(env.spec, reset, step, env.obs)
    returns, lengths = jax.jit(lambda s, k: evaluate(trainer, tapped, s, k))(
        state, evaluation_key(cfg.seed))
    return np.asarray(returns), np.asarray(lengths), kept


def caption(frames, title: str, episode_return: float) -> list:
    """``frames`` with ``title`` and the episode's return drawn in the top left."""
    from PIL import Image, ImageDraw, ImageFont
    font = ImageFont.load_default(size=max(10, SIZE // 18))
    out = []
    for frame in frames:
        img = Image.fromarray(np.ascontiguousarray(frame))
        draw = ImageDraw.Draw(img)
        draw.multiline_text((5, 4), f"{title}\nreturn {episode_return:,.1f}", font=font,
                            fill=(255, 255, 255), stroke_width=2, stroke_fill=(0, 0, 0))
        out.append(np.asarray(img))
    return out


def camera_of(model) -> int | str:
    """The ``track`` camera of a MuJoCo model if it has one, else the free camera (-1)."""
    import mujoco
    return TRACK_CAMERA if mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_CAMERA,
                                             TRACK_CAMERA) >= 0 else -1


def camera_index(xml_path: Path, name: str = TRACK_CAMERA) -> int:
    """Camera ``name``'s index in the model compiled from ``xml_path`` (MuJoCo numbers a
    body's own cameras, then its children's, depth first), or -1 (the free camera)."""
    cams = []

    def walk(body):
        cams.extend(c.get("name") for c in body.findall("camera"))
        for child in body.findall("body"):
            walk(child)
    walk(ET.parse(xml_path).getroot().find("worldbody"))
    return cams.index(name) if name in cams else -1


def render_brax(sys, states, size: int = SIZE) -> list:
    """Frames of brax ``states`` (each with generalised ``q``, ``qd``) through ``sys``'s
    MuJoCo model and its tracking camera."""
    import mujoco
    model = sys.mj_model
    data = mujoco.MjData(model)
    cam = camera_of(model)
    frames = []
    with mujoco.Renderer(model, size, size) as renderer:
        for s in states:
            data.qpos, data.qvel = s.q, s.qd
            mujoco.mj_forward(model, data)
            renderer.update_scene(data, camera=cam)
            frames.append(renderer.render())
    return frames


def brax_frames(trainer, state):
    from brax import envs
    spec = trainer.env.spec
    k = stride(spec.dt)

    def pick(env_state, action):
        physics = env_state.inner.pipeline_state
        return physics.q[0], physics.qd[0]

    returns, lengths, kept = evaluation(trainer, state, pick)
    n = min(int(lengths[0]), MAX_FRAMES * k)
    states = [SimpleNamespace(q=q, qd=qd) for q, qd in kept[:n + 1:k]]
    sys = envs.get_environment(spec.name, backend="spring").sys
    frames = render_guarded(lambda: render_brax(sys, states))
    return caption(frames, f"{spec.name} (brax)", float(returns[0])), FPS


def envpool_xml(task_id: str) -> Path:
    """The MuJoCo model file envpool compiles for ``task_id`` (its ``_envpool`` copy of
    the Gymnasium model where there is one)."""
    import envpool
    config = envpool.make_spec(task_id).config
    xml = Path(config.base_path) / "mujoco" / "assets_gym" / config.xml_file
    envpool_copy = xml.with_name(xml.stem + "_envpool.xml")
    return envpool_copy if envpool_copy.exists() else xml


def envpool_episode(task_id: str, seed: int, num_envs: int, act, max_steps: int, k: int,
                    size: int = SIZE, **task_kwargs):
    """Run ``act`` (obs ``[num_envs, ...]`` float32 -> actions) in an envpool pool of
    ``task_id`` seeded ``seed`` until env 0's episode ends (or ``max_steps``), rendering
    env 0 with the task model's tracking camera at the start and after every ``k``-th
    step. Returns ``(frames, episode_return, x_positions)`` (x at each frame)."""
    import envpool
    import mujoco

    camera = camera_index(envpool_xml(task_id))
    pool = envpool.make(task_id, env_type="gymnasium", num_envs=num_envs, seed=seed,
                        render_mode="rgb_array", render_width=size, render_height=size,
                        render_camera_id=camera, **task_kwargs)
    space = pool.action_space
    low, high = np.asarray(space.low, np.float32), np.asarray(space.high, np.float32)
    context = mujoco.GLContext(size, size)  # envpool draws in this thread's current context
    context.make_current()
    try:
        obs, info = pool.reset()
        frames, xs = [pool.render(0)[0]], [float(info.get("x_position", [0.0])[0])]
        total = 0.0
        for t in range(1, max_steps + 1):
            action = np.clip(np.asarray(act(np.asarray(obs, np.float32)), np.float32), low, high)
            obs, reward, terminated, truncated, info = pool.step(action.astype(space.dtype))
            total += float(reward[0])
            done = terminated[0] or truncated[0]
            if t % k == 0 or done:
                frames.append(pool.render(0)[0])
                xs.append(float(info.get("x_position", [0.0])[0]))
            if done:
                break
    finally:
        context.free()
        pool.close()
    return frames, total, np.asarray(xs)


def envpool_frames(trainer, state):
    """The evaluation's first episode: its actions, kept as the evaluation sent them, are
    replayed in a pool with the same seed that can render (envpool is deterministic: the
    same states and return)."""
    import jax.numpy as jnp

    from rlhp.envs.envpool_env import MUJOCO_IDS, pool_kwargs
    from rlhp.run import EVAL_SEED_OFFSET, env_seed
    spec, cfg = trainer.env.spec, trainer.cfg
    k = stride(spec.dt)
    returns, lengths, kept = evaluation(
        trainer, state, lambda s, action: jnp.zeros(()) if action is None else action)
    actions = iter(kept[1:])
    frames, _, _ = render_guarded(lambda: envpool_episode(
        MUJOCO_IDS[spec.name], env_seed(cfg.seed, EVAL_SEED_OFFSET), cfg.eval_episodes,
        lambda obs: next(actions), min(int(lengths[0]), MAX_FRAMES * k), k,
        **pool_kwargs(spec.name)))
    return caption(frames, f"{MUJOCO_IDS[spec.name]} (envpool)", float(returns[0])), FPS


def render_guarded(render):
    """Run ``render()`` once MuJoCo has shown it can draw offscreen (else VideoUnavailable)."""
    import mujoco
    try:
        model = mujoco.MjModel.from_xml_string("<mujoco><worldbody><geom size='1'/></worldbody></mujoco>")
        with mujoco.Renderer(model, 8, 8) as probe:
            probe.update_scene(mujoco.MjData(model))
            probe.render()
    except Exception as e:  # missing libraries surface as ImportError, FatalError, ...
        raise VideoUnavailable(
            f"MuJoCo cannot render offscreen with MUJOCO_GL={os.environ.get('MUJOCO_GL')} "
            f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}); "
            f"install EGL: apt-get install libegl1 libgl1") from None
    return render()


FRAMES = {"gridworld": gridworld_frames, "brax": brax_frames, "envpool": envpool_frames}


def record(trainer, state, path: Path) -> Path:
    """Write an mp4 of the trained policy to ``path``; returns the path."""
    import imageio.v2 as imageio
    if trainer.env.spec.frame_stack:
        raise VideoUnavailable("Atari games are not filmed yet")
    frames, fps = FRAMES[trainer.env.spec.backend](trainer, state)
    imageio.mimwrite(path, frames, fps=fps, macro_block_size=1)
    return Path(path)
