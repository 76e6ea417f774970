"""How the reward learner stores the observations of its clips, and what r-hat sees.

- ``Vectors`` (MuJoCo, gridworld): a clip's observations are stored as they are,
  ``[L, *obs_shape]`` float32; r-hat sees them normalised by the policy's running
  statistics.
- ``Frames`` (Atari): observations are the last ``K`` frames stacked, ``[H, W, K]`` uint8,
  so consecutive observations share ``K - 1`` frames. A clip of ``L`` steps is stored as
  its ``L + K - 1`` distinct frames ``[L + K - 1, H, W]`` uint8 (the first observation's
  ``K`` frames, then the newest frame of each later one) and stacked again on read: 4x
  less than the stacked uint8 observations and 16x less than float32, so the paper's
  database of 3,000 labelled pairs of 25-step clips takes 1.2 GB. The env's hidden boxes
  (the score, ``EnvSpec.hidden``) are zeroed when a clip is stored and in everything r-hat
  sees; r-hat sees frames scaled to [0, 1].

A clip never crosses an episode boundary (``rlhp.preferences.segments``), so its frames
are one continuous stretch of play and ``unpack(pack(obs)) == obs`` (hidden boxes aside).
"""
from __future__ import annotations

from dataclasses import dataclass

import jax.numpy as jnp
import numpy as np

from rlhp import normalize


@dataclass(frozen=True)
class Vectors:
    """Clips stored as observed; r-hat's inputs normalised like the policy's."""

    obs_shape: tuple

    def stored(self, length: int):
        """``(shape, dtype)`` of one stored clip of ``length`` steps."""
        return (length, *self.obs_shape), jnp.float32

    def pack(self, obs):
        """``[..., L, *obs_shape] -> [..., *stored]``."""
        return obs.astype(jnp.float32)

    def unpack(self, clips):
        """``[..., *stored] -> [..., L, *obs_shape]``."""
        return clips

    def inputs(self, obs_stats: normalize.RunningStats, obs):
        """What r-hat sees of observations ``[..., *obs_shape]``."""
        return normalize.normalize(obs_stats, obs)


@dataclass(frozen=True)
class Frames:
    """Stacked uint8 frames ``[H, W, K]`` stored once per frame (see the module)."""

    obs_shape: tuple
    hidden: tuple = ()  # (row0, row1, col0, col1) boxes zeroed

    @property
    def stack(self) -> int:
        return self.obs_shape[-1]

    def visible(self) -> np.ndarray:
        """``[H, W]`` uint8: 0 inside the hidden boxes, 1 elsewhere."""
        mask = np.ones(self.obs_shape[:2], np.uint8)
        for r0, r1, c0, c1 in self.hidden:
            mask[r0:r1, c0:c1] = 0
        return mask

    def stored(self, length: int):
        H, W, K = self.obs_shape
        return (length + K - 1, H, W), jnp.uint8

    def pack(self, obs):
        """``[..., L, H, W, K] -> [..., L + K - 1, H, W]`` uint8, hidden boxes zeroed."""
        first = jnp.moveaxis(obs[..., 0, :, :, :-1], -1, -3)    # [..., K - 1, H, W]
        frames = jnp.concatenate([first, obs[..., -1]], -3)     # [..., L + K - 1, H, W]
        return frames * jnp.asarray(self.visible())

    def unpack(self, clips):
        """``[..., L + K - 1, H, W] -> [..., L, H, W, K]``, the oldest frame first."""
        L = clips.shape[-3] - self.stack + 1
        return jnp.stack([clips[..., i:i + L, :, :] for i in range(self.stack)], -1)

    def inputs(self, obs_stats: normalize.RunningStats, obs):
        """Frames ``[..., H, W, K]`` as r-hat sees them: in [0, 1], hidden boxes zeroed."""
        scale = jnp.asarray(self.visible()[:, :, None], jnp.float32) / 255.0
        return obs.astype(jnp.float32) * scale


def codec(spec) -> Vectors | Frames:
    """The clip storage for an env with ``spec`` (``rlhp.envs.EnvSpec``)."""
    if spec.frame_stack:
        return Frames(tuple(spec.obs_shape), tuple(spec.hidden))
    return Vectors(tuple(spec.obs_shape))
