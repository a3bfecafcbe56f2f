"""Numerically safe scalar device functions shared by the CUDA kernels."""
import math

from numba import config, cuda


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


if config.ENABLE_CUDASIM:
    @cuda.jit(device=True, inline=True)
    def mul_rn(a, b):
        """``a * b`` rounded on its own (the simulator never fuses)."""
        return a * b
else:
    from numba.cuda import libdevice

    @cuda.jit(device=True, inline=True)
    def mul_rn(a, b):
        """``a * b`` (float64) rounded on its own: never contracted into an FMA with a following add, so
        ``mul_rn(s, k) - mul_rn(s, k)`` is exactly 0 (a lone positive's InfoNCE loss is exactly 0)."""
        return libdevice.dmul_rn(a, b)
