"""Atari through envpool: the paper's seven games, stepped from inside the jitted step.

The pool does the standard preprocessing itself (``PREPROCESSING``): up to 30 no-op
starts, frame skip 4 with a max over the last two frames, 84x84 grayscale, the last 4
frames stacked, no sticky actions, the whole game as one episode (no life-loss episodes)
and the score unclipped. Observations are ``[84, 84, 4]`` uint8, the newest frame last.

Two treatments, as in the paper:

- ``make(..., preference=False)``: the standard game, for the true-reward baseline and
  for evaluation; ``Step.reward`` is the score, episodes end when the game ends.
- ``make(..., preference=True)``: what a policy learning from preferences trains in. No
  episode-end signal reaches the agent (``terminated`` and ``truncated`` stay False; the
  pool still restarts the game, and that restart step is invalid as always); the
  teacher's reward (``Step.reward``) is the score minus ``end_penalty`` on the step that
  ends a game, except in Pong, where losing points already says it.

Each game's score (and BeamRider's ship count, Enduro's speedometer panel) lies in
``HIDDEN``, boxes of the 84x84 frame that the reward model and the clips never see
(``EnvSpec.hidden``); the policy sees the whole frame.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct
from jax.experimental import io_callback

from rlhp.envs.base import Env, EnvSpec, Step

GAMES = {
    "pong": "Pong-v5", "beamrider": "BeamRider-v5", "breakout": "Breakout-v5",
    "enduro": "Enduro-v5", "qbert": "Qbert-v5", "seaquest": "Seaquest-v5",
    "spaceinvaders": "SpaceInvaders-v5",
}
PREPROCESSING = dict(noop_max=30, frame_skip=4, img_height=84, img_width=84, gray_scale=True,
                     stack_num=4, repeat_action_probability=0.0, episodic_life=False,
                     reward_clip=False)
FRAME_SKIP = PREPROCESSING["frame_skip"]
DT = FRAME_SKIP / 60.0  # seconds of play per env step (the console runs at 60 frames/s)
# (row0, row1, col0, col1) boxes of the 84x84 frame hidden from the reward model and clips,
# read off frames of each game: the score line at the top; BeamRider's sector line and
# ship count; Enduro's whole dashboard (odometer, day, cars left, speed).
HIDDEN = {
    "pong": ((0, 9, 0, 84),),
    "beamrider": ((0, 16, 0, 84), (70, 80, 0, 42)),
    "breakout": ((0, 7, 0, 84),),
    "enduro": ((62, 84, 0, 84),),
    "qbert": ((0, 12, 0, 84),),
    "seaquest": ((0, 12, 0, 84),),
    "spaceinvaders": ((0, 10, 0, 84),),
}
NO_END_PENALTY = ("pong",)
END_PENALTY = 10.0


@struct.dataclass
class PoolState:
    obs: jax.Array          # [B, 84, 84, 4] uint8
    needs_reset: jax.Array  # [B] bool: the previous step ended a game


def make(name: str, num_envs: int, seed: int = 0, preference: bool = False,
         end_penalty: float = END_PENALTY) -> Env:
    """A pool of ``num_envs`` copies of game ``name`` (a key of ``GAMES``): the standard
    game, or with ``preference`` the paper's treatment for learning from preferences (see
    the module docstring)."""
    import envpool

    pool = envpool.make(GAMES[name], env_type="gymnasium", num_envs=num_envs, seed=seed,
                        **PREPROCESSING)
    stack, h, w = pool.observation_space.shape
    spec = EnvSpec(name=name, backend="envpool", num_envs=num_envs, obs_shape=(h, w, stack),
                   action_shape=(), num_actions=int(pool.action_space.n),
                   max_episode_steps=int(pool.spec.config.max_episode_steps), dt=DT,
                   vmappable=False, frame_stack=stack, hidden=HIDDEN[name])
    obs_struct = jax.ShapeDtypeStruct((num_envs, h, w, stack), jnp.uint8)
    flag = jax.ShapeDtypeStruct((num_envs,), jnp.bool_)
    rew = jax.ShapeDtypeStruct((num_envs,), jnp.float32)
    penalty = 0.0 if name in NO_END_PENALTY else float(end_penalty)

    def host_reset(_):
        return np.ascontiguousarray(pool.reset()[0].transpose(0, 2, 3, 1))

    def host_step(action):
        obs, reward, term, trunc, _info = pool.step(np.asarray(action, np.int32))
        return (np.ascontiguousarray(obs.transpose(0, 2, 3, 1)), reward.astype(np.float32),
                term, trunc)

    def reset(key: jax.Array) -> PoolState:
        obs = io_callback(host_reset, obs_struct, key, ordered=True)
        return PoolState(obs, jnp.zeros(num_envs, bool))

    def step(state: PoolState, action: jax.Array):
        assert action.shape == (num_envs,), action.shape
        obs, score, term, trunc = io_callback(host_step, (obs_struct, rew, flag, flag),
                                              action.astype(jnp.int32), ordered=True)
        valid = ~state.needs_reset
        term, trunc = term & valid, trunc & valid
        ended = term | trunc
        score = jnp.where(valid, score, 0.0)
        if preference:
            never = jnp.zeros(num_envs, bool)
            step = Step(obs=obs, reward=score - penalty * ended, terminated=never,
                        truncated=never, valid=valid)
        else:
            step = Step(obs=obs, reward=score, terminated=term, truncated=trunc, valid=valid)
        return PoolState(obs, ended), step

    return Env(spec, reset, step, lambda s: s.obs)

