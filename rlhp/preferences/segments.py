"""Segments: fixed-length clips of the policy's recent behaviour, in a ring buffer.

A rollout ``[T, B]`` is cut into windows ``[j*L, (j+1)*L)``; a window is a segment only if
every step in it is valid and no episode ends before its last step, so segments never cross
an episode boundary. The buffer keeps the most recent ``capacity`` segments.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct


@struct.dataclass
class SegmentBuffer:
    obs: jax.Array          # [S, L, *obs_shape], or [S, *clip_shape] as stored (frames)
    action: jax.Array       # [S, L, ...]
    true_reward: jax.Array  # [S, L] (only the teacher reads it)
    filled: jax.Array       # [S] bool
    cursor: jax.Array       # [] int32, next slot to write


def init(capacity: int, length: int, obs_shape: tuple, action_shape: tuple,
         action_dtype, clip: tuple | None = None) -> SegmentBuffer:
    """An empty buffer; ``clip``: ``(shape, dtype)`` of a stored clip's observations when
    not ``[length, *obs_shape]`` float32 (``rlhp.preferences.frames``)."""
    clip_shape, clip_dtype = clip or ((length, *obs_shape), jnp.float32)
    return SegmentBuffer(
        obs=jnp.zeros((capacity, *clip_shape), clip_dtype),
        action=jnp.zeros((capacity, length, *action_shape), action_dtype),
        true_reward=jnp.zeros((capacity, length), jnp.float32),
        filled=jnp.zeros(capacity, bool), cursor=jnp.zeros((), jnp.int32))


def cut(obs, action, true_reward, valid, done, length: int):
    """Cut a rollout into candidate segments.

    obs ``[T, B, *O]``, action ``[T, B, ...]``, true_reward/valid/done ``[T, B]``.
    Returns ``(obs [W*B, L, *O], action [W*B, L, ...], true_reward [W*B, L], ok [W*B])``
    with ``W = T // L`` windows per env.
    """
    T = obs.shape[0]
    W = T // length
    assert W >= 1, f"segment length {length} exceeds rollout length {T}"

    def windows(x):
        x = x[: W * length].reshape((W, length) + x.shape[1:])  # [W, L, B, ...]
        x = jnp.moveaxis(x, 2, 1)                                # [W, B, L, ...]
        return x.reshape((W * x.shape[1],) + x.shape[2:])

    v, d = windows(valid), windows(done)
    ok = v.all(-1) & ~d[:, :-1].any(-1)
    return windows(obs), windows(action), windows(true_reward), ok


def add(buf: SegmentBuffer, obs, action, true_reward, ok) -> SegmentBuffer:
    """Write the ``ok`` segments of a batch ``[N, L, ...]`` at the cursor (ring order)."""
    S = buf.filled.shape[0]
    assert obs.shape[1:] == buf.obs.shape[1:], (obs.shape, buf.obs.shape)
    assert action.shape[1:] == buf.action.shape[1:] and action.dtype == buf.action.dtype
    rank = jnp.cumsum(ok) - 1
    slot = jnp.where(ok, (buf.cursor + rank) % S, S)  # S: dropped by the scatter
    put = lambda dst, src: dst.at[slot].set(src, mode="drop")
    return SegmentBuffer(put(buf.obs, obs), put(buf.action, action),
                         put(buf.true_reward, true_reward), put(buf.filled, ok),
                         ((buf.cursor + ok.sum()) % S).astype(jnp.int32))


def blank_head(buf: SegmentBuffer, n: int) -> SegmentBuffer:
    """The buffer with the first ``n`` steps of every segment zeroed (observations as stored
    ``[S, L, *O]``, actions, true rewards): alike in every clip, they add the same to both
    sums of any pair (r-hat's and the teacher's), so a comparison weighs the last ``L - n``
    steps alone."""
    zero = lambda x: x.at[:, :n].set(0)
    return buf.replace(obs=zero(buf.obs), action=zero(buf.action),
                       true_reward=zero(buf.true_reward))
