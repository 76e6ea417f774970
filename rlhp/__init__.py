"""Deep reinforcement learning from human preferences in one jitted JAX training step."""

import os as _os

# Offscreen MuJoCo rendering (run videos) without a display; must be set before MuJoCo
# picks its GL backend. A user's own MUJOCO_GL wins.
_os.environ.setdefault("MUJOCO_GL", "egl")
