"""The reward fit's matrix products, one at a time, against this machine's matmul rate.

One fit update of the default Hopper preference config runs every member's MLP over its
minibatch: ``R = reward_batch x 2 x L`` rows (64 x 2 x 60 = 7,680) of ``D`` inputs (11),
hidden layers of ``H`` (64). Each product of its forward and backward passes is timed
alone (jitted, members batched as the fit batches them): the forward ``h W``, the input
gradient ``g W^T`` and the weight gradient ``h^T g``, a contraction over the R rows, for
the first (``D x H``) and the second (``H x H``) layer; then the whole update's gradient.

    python -m benchmarks.fit_products --json fit_products.json
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from benchmarks import common

COLUMNS = ["product", "shape", "milliseconds", "gflops_per_second", "vs_machine_matmul"]


def products(M: int, R: int, D: int, H: int) -> dict:
    """``{name: (fn, args, flop)}``: the fit's products at members ``M``, rows ``R``,
    inputs ``D`` and hidden width ``H``."""
    keys = jax.random.split(jax.random.PRNGKey(0), 4)
    x = jax.random.normal(keys[0], (M, R, D))
    h = jax.random.normal(keys[1], (M, R, H))
    g = jax.random.normal(keys[2], (M, R, H))
    w1, w2 = jnp.ones((M, D, H)) / D, jnp.ones((M, H, H)) / H
    out = {
        f"first layer forward x W1 [{R},{D}]x[{D},{H}]": (
            lambda x, w: jnp.einsum("mrd,mdh->mrh", x, w), (x, w1), 2 * M * R * D * H),
        f"first layer weight gradient x^T g [{D},{R}]x[{R},{H}]": (
            lambda x, g: jnp.einsum("mrd,mrh->mdh", x, g), (x, g), 2 * M * R * D * H),
        f"hidden forward h W2 [{R},{H}]x[{H},{H}]": (
            lambda h, w: jnp.einsum("mrd,mdh->mrh", h, w), (h, w2), 2 * M * R * H * H),
        f"hidden input gradient g W2^T [{R},{H}]x[{H},{H}]": (
            lambda g, w: jnp.einsum("mrh,mdh->mrd", g, w), (g, w2), 2 * M * R * H * H),
        f"hidden weight gradient h^T g [{H},{R}]x[{R},{H}]": (
            lambda h, g: jnp.einsum("mrd,mrh->mdh", h, g), (h, g), 2 * M * R * H * H),
    }

    def loss(ws, x):  # the fit's MLP (leaky ReLU) and a stand-in loss on its outputs
        a = jax.nn.leaky_relu(jnp.einsum("mrd,mdh->mrh", x, ws[0]), 0.01)
        a = jax.nn.leaky_relu(jnp.einsum("mrd,mdh->mrh", a, ws[1]), 0.01)
        return jnp.sum(jnp.tanh(a.sum(-1)))

    out["whole update's gradient (both layers)"] = (
        jax.grad(loss), ((w1, w2), x), 3 * 2 * M * R * (D * H + H * H))
    return out


def measure(repeats: int, tiny: bool) -> list[dict]:
    from rlhp.envs import make_env
    from rlhp.presets import preset
    from rlhp.train import segment_length

    cfg = preset("hopper")
    spec = make_env(cfg.env, "envpool", 1).spec
    M, H = cfg.ensemble_size, cfg.reward_hidden[0]
    R, D = cfg.reward_batch * 2 * segment_length(cfg, spec), spec.obs_shape[0]
    if tiny:
        R = 256
    peak = common.matmul_gflops(repeats)
    rows = []
    for name, (fn, args, flop) in products(M, R, D, H).items():
        jitted = jax.jit(fn)
        sec = common.median_seconds(lambda: jax.block_until_ready(jitted(*args)), repeats)
        rate = flop / sec / 1e9
        rows.append({"product": name, "shape": f"M={M} R={R} D={D} H={H}",
                     "milliseconds": 1000 * sec, "gflops_per_second": rate,
                     "vs_machine_matmul": rate / peak, "machine_matmul_gflops_per_second": peak})
    return rows


def main(argv=None):
    return common.run(__doc__, measure, COLUMNS, argv)


if __name__ == "__main__":
    main()
