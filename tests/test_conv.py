"""rlhp.conv: the im2col convolution computes XLA's convolution, with nn.Conv's parameters."""
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rlhp.conv import Conv, patches


@pytest.mark.parametrize("shape,kernel,stride", [((2, 84, 84, 4), 7, 3), ((3, 10, 9, 2), 3, 2),
                                                 ((1, 5, 5, 1), 5, 1)])
def test_conv_as_matmul_matches_nn_conv_values_and_gradients(shape, kernel, stride):
    x = jax.random.normal(jax.random.PRNGKey(0), shape)
    ref = nn.Conv(6, (kernel, kernel), (stride, stride), padding="VALID")
    params = ref.init(jax.random.PRNGKey(1), x)
    params = jax.tree.map(lambda p: p + 0.1, params)  # a nonzero bias too
    expect = ref.apply(params, x)
    for as_matmul in (True, False):
        conv = Conv(6, kernel, stride, as_matmul=as_matmul)
        assert jax.tree.map(jnp.shape, conv.init(jax.random.PRNGKey(1), x)) == \
            jax.tree.map(jnp.shape, params)
        np.testing.assert_allclose(conv.apply(params, x), expect, rtol=1e-4, atol=1e-4)

        def loss(m, p, x):
            return jnp.sum(jnp.sin(m.apply(p, x)))

        g = jax.grad(lambda p, x: loss(conv, p, x), argnums=(0, 1))(params, x)
        g_ref = jax.grad(lambda p, x: loss(ref, p, x), argnums=(0, 1))(params, x)
        for a, b in zip(jax.tree.leaves(g), jax.tree.leaves(g_ref)):
            np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-3)


def test_patches_are_the_windows_in_kernel_order():
    x = jnp.arange(2 * 6 * 7 * 3, dtype=jnp.float32).reshape(2, 6, 7, 3)
    p = patches(x, 3, 2)
    assert p.shape == (2, 2, 3, 27)
    # output row 1, column 2 is the window at rows 2-4, columns 4-6
    np.testing.assert_array_equal(p[1, 1, 2], x[1, 2:5, 4:7, :].reshape(-1))
