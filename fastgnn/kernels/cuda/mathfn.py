"""Numerically safe scalar device functions shared by the CUDA kernels."""
import math

from numba import cuda


@cuda.jit(device=True, inline=True)
def softplus(x):
    """log(1 + exp(x)) without overflow."""
    if x > 0.0:
        return x + math.log1p(math.exp(-x))
    return math.log1p(math.exp(x))


@cuda.jit(device=True, inline=True)
def sigmoid(x):
    """1 / (1 + exp(-x)) without overflow."""
    if x >= 0.0:
        return 1.0 / (1.0 + math.exp(-x))
    e = math.exp(x)
    return e / (1.0 + e)
