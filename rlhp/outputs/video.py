"""A short video of the final (deterministic) policy on the standard task, as mp4.

gridworld draws its grid; brax replays its own physics state through MuJoCo's renderer;
envpool's C++ pools cannot render, so the policy acts in Gymnasium's copy of the same v5
task (same observation definition), rendered offscreen by MuJoCo. MuJoCo rendering needs
an OpenGL library without a display: EGL (``apt-get install libegl1 libgl1``); without it
``record`` raises ``VideoUnavailable`` and the run goes on.
"""
from __future__ import annotations

import os
from pathlib import Path

import jax
import numpy as np

SIZE = 240        # frame height and width in pixels
FPS = 30
MAX_FRAMES = 300


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


def gridworld_frames(trainer, state):
    import matplotlib

    from rlhp.envs import gridworld as g
    states, _ = jax_trajectory(trainer, state, g.make(1), 4 * g.HORIZON)
    cell_px = SIZE // g.SIZE
    reward = g.true_reward_map()
    colours = matplotlib.colormaps["RdYlGn"]((reward - reward.min()) / np.ptp(reward))[..., :3]
    board = np.kron(colours, np.ones((cell_px, cell_px, 1)))
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


def brax_frames(trainer, state):
    from brax import envs
    from brax.io import image

    from rlhp.envs import brax_env
    spec = trainer.env.spec
    k = stride(spec.dt)
    states, done = jax_trajectory(trainer, state, brax_env.make(spec.name, 1), MAX_FRAMES * k)
    end = int(np.argmax(done)) + 1 if done.any() else done.size
    pipeline = jax.tree.map(lambda x: np.asarray(x[:end:k, 0]), states.inner.pipeline_state)
    n = jax.tree.leaves(pipeline)[0].shape[0]
    sys = envs.get_environment(spec.name, backend="spring").sys
    trajectory = [jax.tree.map(lambda x: x[i], pipeline) for i in range(n)]
    return render_guarded(lambda: image.render_array(sys, trajectory, SIZE, SIZE)), FPS


def envpool_frames(trainer, state):
    import gymnasium

    from rlhp.envs.envpool_env import MUJOCO_IDS
    spec = trainer.env.spec
    act = policy_fn(trainer, state)
    k = stride(spec.dt)

    def frames():
        env = gymnasium.make(MUJOCO_IDS[spec.name], render_mode="rgb_array", width=SIZE,
                             height=SIZE)
        obs, _ = env.reset(seed=trainer.cfg.seed + 2)
        out = []
        for t in range(MAX_FRAMES * k):
            if t % k == 0:
                out.append(env.render())
            action = np.asarray(act(np.asarray(obs, np.float32)[None])[0], np.float64)
            obs, _, terminated, truncated, _ = env.step(action)
            if terminated or truncated:
                break
        env.close()
        return out
    return render_guarded(frames), FPS


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
    frames, fps = FRAMES[trainer.env.spec.backend](trainer, state)
    imageio.mimwrite(path, frames, fps=fps, macro_block_size=1)
    return Path(path)
