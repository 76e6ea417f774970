"""A 2-D convolution that trains fast inside loops on XLA's CPU backend.

XLA:CPU runs a convolution's gradient about 15x slower inside a loop body (``lax.scan``,
where every update of the training step sits) than outside one (jax-ml/jax#12868; here
the paper's Atari reward CNN: 11.6 s against 0.8 s for three updates of 200 frames), while
the forward pass is as fast in both. Written as one matrix product over the ``k x k``
strided slices of the input (im2col), the convolution and its gradient are dots, slices
and pads, which XLA:CPU runs at the same speed in and out of loops (1.0 s). Other
backends keep XLA's own convolution.

``Conv`` has ``nn.Conv``'s parameters (``kernel [k, k, C, F]``, ``bias [F]``, same names),
so either form reads the other's checkpoints.
"""
from __future__ import annotations

from typing import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp


def as_matmul_here() -> bool:
    """Whether ``Conv`` computes by im2col on the default backend: on CPU."""
    return jax.default_backend() == "cpu"


def patches(x: jax.Array, kernel: int, stride: int) -> jax.Array:
    """The ``kernel x kernel`` windows of ``x [N, H, W, C]`` at ``stride``, VALID:
    ``[N, H', W', kernel * kernel * C]``, ordered (row, column, channel) as a flattened
    ``nn.Conv`` kernel."""
    _, h, w, _ = x.shape
    out_h, out_w = (h - kernel) // stride + 1, (w - kernel) // stride + 1
    span_h, span_w = stride * (out_h - 1) + 1, stride * (out_w - 1) + 1
    return jnp.concatenate([x[:, i:i + span_h:stride, j:j + span_w:stride, :]
                            for i in range(kernel) for j in range(kernel)], -1)


class Conv(nn.Module):
    """VALID convolution, ``[N, H, W, C] -> [N, H', W', features]``, square ``kernel`` and
    ``stride``. ``as_matmul``: im2col and one dot (None: on CPU), or ``lax`` convolution."""

    features: int
    kernel: int
    stride: int
    kernel_init: Callable = nn.initializers.lecun_normal()
    as_matmul: bool | None = None

    @nn.compact
    def __call__(self, x):
        k = self.kernel
        w = self.param("kernel", self.kernel_init, (k, k, x.shape[-1], self.features))
        b = self.param("bias", nn.initializers.zeros, (self.features,))
        matmul = as_matmul_here() if self.as_matmul is None else self.as_matmul
        if matmul:
            y = patches(x, k, self.stride) @ w.reshape(-1, self.features)
        else:
            y = jax.lax.conv_general_dilated(x, w, (self.stride, self.stride), "VALID",
                                             dimension_numbers=("NHWC", "HWIO", "NHWC"))
        return y + b
