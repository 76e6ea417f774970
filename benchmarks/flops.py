"""Matrix arithmetic of a JAX function, counted on its jaxpr.

``matmul_flops(fn, *args)`` traces ``fn`` and adds up the floating-point operations of its
matrix products (``dot_general``: 2 x output size x contracted size; convolutions
likewise), multiplying each ``scan`` body by its length and taking the larger branch of a
``cond``. Elementwise work is left out: on a CPU these products are what a dense layer
costs, and their count divided by the machine's matmul rate is a floor on the wall time.
"""
from __future__ import annotations

import math

import jax
from jax.extend import core


def _sub_jaxprs(value):
    """Jaxprs held in an equation parameter (a jaxpr, closed jaxpr, or a tuple of them)."""
    if isinstance(value, core.ClosedJaxpr):
        return [value.jaxpr]
    if isinstance(value, core.Jaxpr):
        return [value]
    if isinstance(value, (tuple, list)):
        return [j for v in value for j in _sub_jaxprs(v)]
    return []


def _eqn_flops(eqn) -> float:
    name = eqn.primitive.name
    if name == "dot_general":
        (lhs_contract, _), _ = eqn.params["dimension_numbers"]
        lhs = eqn.invars[0].aval.shape
        out = eqn.outvars[0].aval.shape
        return 2.0 * math.prod(out) * math.prod(lhs[d] for d in lhs_contract)
    if name == "conv_general_dilated":
        rhs = eqn.invars[1].aval.shape
        out = eqn.outvars[0].aval
        out_features = rhs[eqn.params["dimension_numbers"].rhs_spec[0]]
        return 2.0 * math.prod(out.shape) * math.prod(rhs) / out_features
    inner = [jaxpr_flops(j) for v in eqn.params.values() for j in _sub_jaxprs(v)]
    if name == "scan":
        return eqn.params["length"] * sum(inner)
    if name == "cond":
        return max(inner, default=0.0)
    return sum(inner)  # calls, custom derivatives, while loops (body counted once)


def jaxpr_flops(jaxpr) -> float:
    return sum(_eqn_flops(e) for e in jaxpr.eqns)


def matmul_flops(fn, *args) -> float:
    """Floating-point operations of the matrix products in ``fn(*args)``."""
    return jaxpr_flops(jax.make_jaxpr(fn)(*args).jaxpr)
