"""NumPy references for the elementwise kernels of ``fastgnn/kernels/cpu/autograd.py``."""
import math

import numpy as np


def relu(x):
    return np.where(x > 0, x, 0).astype(x.dtype)


def relu_grad(g, x):
    return g * (x > 0)


def elu(x, alpha):
    """``(value, derivative)`` of ELU, as libm's expm1 gives them (float64: Python's ``math.expm1``, which is
    libm's; NumPy 2.4.6's own float64 ``expm1`` loop differs from it by an ulp on 7% of inputs)."""
    m = np.minimum(x, 0)
    if x.dtype == np.float64:
        e = np.array([math.expm1(v) for v in m.reshape(-1)], np.float64).reshape(m.shape)
    else:
        e = np.expm1(m)
    neg = x.dtype.type(alpha) * e
    return np.where(x > 0, x, neg).astype(x.dtype), np.where(x > 0, 1.0, neg + x.dtype.type(alpha)).astype(x.dtype)
