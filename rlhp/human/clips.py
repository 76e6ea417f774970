"""Clips: a segment drawn from the states the agent visited, as a short looping mp4.

gridworld: the path drawn on the grid, growing step by step (the agent a blue square, the
cells it passed through dotted, the goal ringed). envpool MuJoCo (every task): the
simulator's state is reconstructed from the segment's observations (``STATES``, one
function a task). Hopper, walker2d, halfcheetah, swimmer and inverted pendulum observe
their joint positions and velocities except the horizontal position (``qpos[:k]``, ``k =
nq + nv - obs_size``: the walkers leave out x, swimmer x and y, the pendulum nothing),
which is integrated back from the observed velocities (``x_t = sum dt * xdot``, the
segment starting at 0: only motion is shown, and the tracking camera follows the body over
the floor); ant (and brax's humanoid) the same for x and y, after the state come contact
forces (and inertias, actuator forces), derived quantities drawing does not need; reacher
and inverted double pendulum observe their angles' cos and sin, from which the angles
are exact. Then MuJoCo's offscreen renderer draws each state with the task model's
``track`` camera (the free camera's view of the scene where there is none: reacher, the
pendulums), as the final-policy video does. brax MuJoCo (its hopper, walker2d,
halfcheetah, ant, reacher, pendulums and humanoid): the same observations (``BRAX_STATES``:
reacher observes its fingertip's velocity, not its joints'; for hopper and walker2d brax
reports the torso's height where the envpool task reports its ``rootz`` joint, which
starts at the torso's height: the height is shifted back by the torso's rest height), drawn
through brax's own MuJoCo model. Frames are taken at
``rlhp.outputs.video.FPS`` of task time, so a clip plays in real time. Atari: the segment's
stored uint8 frames (``rlhp.preferences.frames.Frames``: the newest frame of each stacked
observation, the score's boxes blank) as the reward model sees them, 84x84 grayscale
scaled up ``ATARI_SCALE`` times (nearest), one frame per env step (15 per second of play).

``python -m rlhp.human.clips --env hopper`` (or ``--env pong``) measures clips rendered per
second here.
"""
from __future__ import annotations

import argparse
import os
import time
from functools import partial
from pathlib import Path

import numpy as np

from rlhp.outputs import video

SIZE = 240  # clip height and width in pixels
ATARI_SCALE = 4  # an Atari clip's pixels per frame pixel (84x84 -> 336x336)
BRAX_HEIGHT = ("hopper", "walker2d")
"""brax tasks whose first observed position is the torso's height above the floor, where
the model's ``rootz`` joint is the height above the torso's rest height."""


class ClipUnavailable(Exception):
    """This task's clips cannot be drawn here (reason in the message)."""


def gridworld_frames(obs: np.ndarray, size: int = SIZE) -> list:
    """Frames ``[L, size, size, 3]`` uint8 of a gridworld segment, obs ``[L, 25]``
    (one-hot cells)."""
    from rlhp.envs import gridworld as g
    board, px = video.gridworld_board(size)
    board = board.copy()
    gr, gc = g.GOAL
    ring = px // 10 + 1
    board[gr * px:(gr + 1) * px, gc * px:(gc + 1) * px] = (1.0, 1.0, 1.0)
    board[gr * px + ring:(gr + 1) * px - ring, gc * px + ring:(gc + 1) * px - ring] = (0.1, 0.6, 0.1)
    cells = np.asarray(obs).argmax(-1)
    frames, img = [], board
    for t, cell in enumerate(cells):
        r, c = divmod(int(cell), g.SIZE)
        if t > 0:  # the cell left behind gets a dot
            pr, pc = divmod(int(cells[t - 1]), g.SIZE)
            dot = px * 2 // 5
            img[pr * px + dot:(pr + 1) * px - dot, pc * px + dot:(pc + 1) * px - dot] = (0.2, 0.2, 0.5)
        frame = img.copy()
        pad = px // 4
        frame[r * px + pad:(r + 1) * px - pad, c * px + pad:(c + 1) * px - pad] = (0.1, 0.2, 0.8)
        frames.append((frame * 255).astype(np.uint8))
    return frames


def mujoco_states(obs: np.ndarray, nq: int, nv: int, dt: float):
    """``(qpos [L, nq], qvel [L, nv])`` of a segment's observations ``[L, nq - k + nv]``:
    the ``k`` positions the observation leaves out integrated from their velocities
    ``qvel[:, :k]`` (starting at 0)."""
    obs = np.asarray(obs, np.float64)
    k = nq + nv - obs.shape[-1]
    qvel = obs[:, nq - k:]
    left_out = np.concatenate([np.zeros((1, k)), np.cumsum(qvel[1:, :k] * dt, 0)])
    return np.concatenate([left_out, obs[:, :nq - k]], -1), qvel


def free_body_states(obs: np.ndarray, nq: int, nv: int, dt: float):
    """``(qpos [L, nq], qvel [L, nv])`` of a body on a free joint (ant, humanoid) from
    observations ``[L, nq - 2 + nv + m]``: ``qpos[2:]``, ``qvel``, then ``m`` quantities
    derived from them (contact forces, inertias, actuator forces), which drawing does not
    need; x and y integrated from their velocities as in ``mujoco_states``."""
    return mujoco_states(np.asarray(obs)[:, :nq - 2 + nv], nq, nv, dt)


def reacher_states(obs: np.ndarray, nq: int, nv: int, dt: float, joint_velocities=True):
    """``(qpos [L, 4], qvel [L, 4])`` of reacher observations ``[L, 10 or 11]``: the arm's
    two angles from their cosines and sines (``obs[:, :4]``), the target's position
    (``obs[:, 4:6]``, its joints ``target_x``/``target_y``), the arm's joint velocities
    (``obs[:, 6:8]``) on envpool; brax observes the fingertip's velocity there instead, so
    with ``joint_velocities=False`` the velocities are 0 (drawing needs only positions).
    The target never moves: its velocity is 0."""
    obs = np.asarray(obs, np.float64)
    qpos = np.concatenate([np.arctan2(obs[:, 2:4], obs[:, 0:2]), obs[:, 4:6]], -1)
    qvel = np.zeros((len(obs), nv))
    if joint_velocities:
        qvel[:, :2] = obs[:, 6:8]
    return qpos, qvel


def double_pendulum_states(obs: np.ndarray, nq: int, nv: int, dt: float):
    """``(qpos [L, 3], qvel [L, 3])`` of inverted double pendulum observations ``[L, 8 or
    9]``: the cart's position, the two hinges' angles from their sines and cosines, and the
    velocities, which the task clips to [-10, 10] (a faster swing keeps 10: positions, all
    drawing needs, are exact); envpool's last entry, a constraint force, is not state."""
    obs = np.asarray(obs, np.float64)
    qpos = np.concatenate([obs[:, :1], np.arctan2(obs[:, 1:3], obs[:, 3:5])], -1)
    return qpos, obs[:, 5:8].copy()


STATES = {
    "hopper": mujoco_states, "hopper-backflip": mujoco_states, "walker2d": mujoco_states,
    "halfcheetah": mujoco_states, "halfcheetah-oneleg": mujoco_states,
    "swimmer": mujoco_states, "inverted_pendulum": mujoco_states,
    "ant": free_body_states, "humanoid": free_body_states,
    "reacher": reacher_states, "inverted_double_pendulum": double_pendulum_states,
}
"""Each MuJoCo task's ``states(obs [L, *obs_shape], nq, nv, dt) -> (qpos [L, nq], qvel
[L, nv])``: the simulator's state reconstructed from a segment's observations (the same
layout on envpool and brax, but for the one in ``BRAX_STATES``)."""
BRAX_STATES = {**STATES, "reacher": partial(reacher_states, joint_velocities=False)}


def drawn(backend: str) -> tuple:
    """The MuJoCo tasks whose clips ``backend`` (envpool or brax) draws."""
    if backend == "brax":
        from rlhp.envs.brax_env import TASKS
        return tuple(t for t in TASKS if t in BRAX_STATES)
    from rlhp.envs.envpool_env import MUJOCO_IDS
    return tuple(t for t in MUJOCO_IDS if t in STATES)


class MujocoClips:
    """Draws MuJoCo segments of task ``name`` on ``backend`` (envpool or brax; one model
    and renderer, reused; the renderer's GL context belongs to the thread that made it)."""

    SHADOW_SIZE = 1024
    """The shadow map's side in pixels. The task models ask 4096, which costs software GL
    (llvmpipe) half of a frame's time; for 240x240 frames 1024 draws the same shadows
    (frames differ by 0.02 of 255 on average)."""

    def __init__(self, name: str, dt: float, backend: str = "envpool", size: int = SIZE):
        import mujoco

        if name not in drawn(backend):
            raise ClipUnavailable(f"no clips of {name!r} on {backend}; drawn: "
                                  f"{', '.join(drawn(backend))}")
        self.states = (BRAX_STATES if backend == "brax" else STATES)[name]
        self.lift = 0.0
        if backend == "brax":
            import warnings

            from brax import envs
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                self.model = envs.get_environment(name, backend="spring").sys.mj_model
            if name in BRAX_HEIGHT:
                self.lift = float(self.model.body_pos[1][2])
        else:
            from rlhp.envs.envpool_env import MUJOCO_IDS
            self.model = mujoco.MjModel.from_xml_path(str(video.envpool_xml(MUJOCO_IDS[name])))
        self.data = mujoco.MjData(self.model)
        self.camera = video.camera_of(self.model)
        self.dt, self.stride = dt, video.stride(dt)
        self.model.vis.quality.shadowsize = self.SHADOW_SIZE
        self.renderer = video.render_guarded(lambda: mujoco.Renderer(self.model, size, size))

    def frames(self, obs: np.ndarray) -> list:
        """Frames of a segment, obs ``[L, *obs_shape]``: every ``stride``-th state."""
        import mujoco
        qpos, qvel = self.states(obs, self.model.nq, self.model.nv, self.dt)
        qpos[:, 1] -= self.lift  # brax: the torso's height back to its rootz joint
        out = []
        for t in range(0, len(qpos), self.stride):
            self.data.qpos, self.data.qvel = qpos[t], qvel[t]
            mujoco.mj_forward(self.model, self.data)
            self.renderer.update_scene(self.data, camera=self.camera)
            out.append(self.renderer.render().copy())
        return out


def atari_frames(clip: np.ndarray, store, scale: int = ATARI_SCALE) -> list:
    """Frames ``[L, 84 * scale, 84 * scale, 3]`` uint8 of a stored Atari clip ``[L + K - 1,
    84, 84]`` uint8 (``store``: its ``rlhp.preferences.frames.Frames``): the newest frame of
    each of the ``L`` observations, hidden boxes blank, each pixel a ``scale``-square."""
    frames = np.asarray(clip)[store.stack - 1:] * store.visible()
    big = frames.repeat(scale, 1).repeat(scale, 2)
    return list(np.repeat(big[..., None], 3, -1))


def clip_maker(spec):
    """``frames(clip) -> list of [H, W, 3] uint8`` and the clips' frame rate, for an env's
    spec; ``clip`` is one segment as the reward learner stores it
    (``rlhp.preferences.frames.codec(spec)``: observations ``[L, *obs_shape]``, or Atari's
    frames ``[L + K - 1, 84, 84]`` uint8). Raises ``ClipUnavailable`` (or
    ``VideoUnavailable``)."""
    if spec.frame_stack:
        from rlhp.preferences.frames import codec
        return partial(atari_frames, store=codec(spec)), round(1 / spec.dt)
    if spec.backend == "gridworld":
        return gridworld_frames, 4
    if spec.backend in ("envpool", "brax"):
        return MujocoClips(spec.name, spec.dt, spec.backend).frames, video.FPS
    raise ClipUnavailable(f"no clips for the {spec.backend} backend yet (gridworld, envpool, "
                          f"brax, Atari)")


def write(frames: list, path: Path, fps: int) -> Path:
    """``frames`` as an mp4 at ``path``, atomically (a reader never sees half a file)."""
    import imageio.v2 as imageio
    path = Path(path)
    tmp = path.with_name(".tmp-" + path.name)
    imageio.mimwrite(tmp, frames, fps=fps, macro_block_size=1, format="FFMPEG")
    os.replace(tmp, path)
    return path


def random_segments(name: str, n: int, length: int, spec) -> np.ndarray:
    """``[n, length, *obs_shape]`` observations of random behaviour: a random walk on the
    grid, or random actions in an envpool pool of the task (bodies in real poses, fallen
    ones not restarted, the pendulums restarted; brax's hopper, walker2d and halfcheetah
    observe the same way; Atari games preprocessed as in training, ``[84, 84, 4]`` uint8)."""
    rng = np.random.default_rng(0)
    if spec.backend == "gridworld":
        from rlhp.envs import gridworld as g
        cell, nxt, cells = 12, g.next_cell(), []
        for _ in range(n * length):
            cells.append(cell)
            cell = nxt[cell, rng.integers(g.NUM_ACTIONS)]
        return np.eye(g.NUM_CELLS, dtype=np.float32)[cells].reshape(n, length, g.NUM_CELLS)
    import envpool

    if spec.frame_stack:
        from rlhp.envs import atari
        pool = envpool.make(atari.GAMES[name], env_type="gymnasium", num_envs=n, seed=0,
                            **atari.PREPROCESSING)
        act = lambda: rng.integers(pool.action_space.n, size=n)
        as_seen = lambda obs: obs.transpose(0, 2, 3, 1)  # frames last, as the env gives them
    else:
        from rlhp.envs.envpool_env import MUJOCO_IDS, pool_kwargs
        pool = envpool.make(MUJOCO_IDS[name], env_type="gymnasium", num_envs=n, seed=0,
                            **pool_kwargs(name, preference=True))
        act = lambda: rng.uniform(-1, 1, (n, *pool.action_space.shape))
        as_seen = lambda obs: obs.astype(np.float32)
    obs, _ = pool.reset()
    out = []
    for _ in range(length):
        out.append(as_seen(obs))
        obs = pool.step(act())[0]
    return np.stack(out, 1)


def cpu_seconds() -> float:
    """CPU time of this process (every thread) and of its ended children (the ffmpeg
    processes that encode the mp4s)."""
    import resource
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


def main(argv=None) -> None:
    """Clips rendered (frames and mp4) per second for a task's segments (random behaviour,
    stored as the reward learner stores them)."""
    p = argparse.ArgumentParser(prog="python -m rlhp.human.clips", description=main.__doc__)
    p.add_argument("--env", default="hopper")
    p.add_argument("--backend", default="auto", help="auto, gridworld, envpool or brax "
                   "(Atari games: envpool)")
    p.add_argument("--clips", type=int, default=20)
    p.add_argument("--out", default="/tmp/rlhp-clips")
    args = p.parse_args(argv)
    from rlhp.envs import make_env
    from rlhp.preferences.frames import codec
    from rlhp.presets import preset
    from rlhp.train import segment_length
    cfg = preset(args.env, backend=args.backend)
    spec = make_env(args.env, cfg.backend, 1).spec
    L = segment_length(cfg, spec)
    segments = np.asarray(codec(spec).pack(random_segments(args.env, args.clips, L, spec)))
    frames, fps = clip_maker(spec)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0, c0 = time.time(), cpu_seconds()
    for i, seg in enumerate(segments):
        drawn = frames(seg)
        write(drawn, out / f"{i}.mp4", fps)
    seconds, cpu = time.time() - t0, cpu_seconds() - c0
    size = drawn[0].shape[0]
    print(f"{args.env} ({spec.backend}): {args.clips} clips of {L} steps in {seconds:.1f} s: "
          f"{args.clips / seconds:.2f} clips/s ({size}x{size} frames, mp4); "
          f"{cpu / args.clips:.3f} CPU-seconds per clip (this process, every thread, and its "
          f"ffmpeg encoders)")


if __name__ == "__main__":
    main()
