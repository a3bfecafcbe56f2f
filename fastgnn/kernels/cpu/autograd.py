"""Elementwise kernels for :mod:`fastgnn.autograd` (references: ``tests/reference_autograd.py``).

The ReLU kernels run over flat (1-d views of C-contiguous) arrays and match ``np.where(x > 0, x, 0)`` and
``g * (x > 0)`` bit for bit (a NaN input of ReLU gives 0). ELU works per row of a 2-d view.
"""
import math

import numpy as np
from numba import njit, prange

from .fastexp import exp_row

_FM = {"contract", "arcp", "reassoc"}
_ROWS = 64  # rows per task of the row kernels (each task owns one scratch buffer)


@njit(parallel=True, cache=True)
def relu_forward(x, out):
    """out = x where x > 0, else 0."""
    zero = x.dtype.type(0.0)
    for i in prange(x.size):
        v = x[i]
        out[i] = v if v > zero else zero


@njit(parallel=True, cache=True)
def relu_backward(g, y, out):
    """out = g * (y > 0) with ``y`` the forward output (a product: a non-finite g stays non-finite)."""
    zero = y.dtype.type(0.0)
    one = y.dtype.type(1.0)
    for i in prange(g.size):
        out[i] = g[i] * (one if y[i] > zero else zero)


@njit(parallel=True, cache=True, fastmath=_FM)
def elu_rows(X, alpha, fast, out, deriv):
    """Per row of a 2-d X: out = x if x > 0 else alpha * expm1(x); deriv = 1 if x > 0 else alpha * expm1(x) + alpha.

    ``fast`` (float32 only): expm1 is a degree-8 Taylor polynomial on [-0.5, 0] and exp(x) - 1 below (the
    vectorised exp of :mod:`.fastexp`), within a few ulp of libm's; otherwise ``math.expm1``. NaN stays NaN.
    """
    n, d = X.shape
    a = X.dtype.type(alpha)
    one = X.dtype.type(1.0)
    for c in prange((n + _ROWS - 1) // _ROWS):
        bits = np.empty(d, np.int32)
        scale2 = bits.view(np.float32)
        for i in range(c * _ROWS, min(n, (c + 1) * _ROWS)):
            if fast:
                for k in range(d):
                    out[i, k] = min(X[i, k], 0.0)  # only the exps of negative entries are used
                exp_row(out, i, 1.0, 0.0, bits)
            for k in range(d):
                x = X[i, k]
                if fast:
                    taylor = x * (one + x * (np.float32(1 / 2) + x * (np.float32(1 / 6) + x * (np.float32(1 / 24) + x * (
                        np.float32(1 / 120) + x * (np.float32(1 / 720) + x * (np.float32(1 / 5040) + x * np.float32(
                            1 / 40320))))))))
                    em1 = (out[i, k] * scale2[k] - one) if x < -0.5 else taylor
                else:
                    em1 = math.expm1(x)
                neg = a * em1
                out[i, k] = x if x > 0 else neg
                deriv[i, k] = one if x > 0 else neg + a
