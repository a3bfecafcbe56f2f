"""A vectorisable float32 exp for kernels that exponentiate whole rows (shared by the loss and activation kernels).

``exp_row`` splits each value into a mantissa part (stored in place) and an exponent (stored as float32 bits),
so the caller's next loop gets ``exp = S[i, j] * bits.view(np.float32)[j]``: both loops are plain arithmetic
that LLVM vectorises, where a call to libm's ``expf`` per element is not.
"""
import numpy as np
from numba import njit

_FM = {"contract", "arcp", "reassoc"}
_LOG2E = np.float32(1.4426950408889634)
_LN2_HI = np.float32(0.693359375)
_LN2_LO = np.float32(-2.12194440e-4)


@njit(inline="always", fastmath=_FM)
def exp_row(S, i, scale, shift, bits):
    """S[i, j] <- the mantissa part of exp(S[i, j] scale - shift) and ``bits[j]`` its power of two (as float32
    bits), by Cody-Waite reduction and a degree-6 polynomial (about 2 ulp; arguments below -87 give exp(-87))."""
    it = np.float32(scale)
    mm = np.float32(shift)
    for j in range(S.shape[1]):
        x = max(np.float32(S[i, j]) * it - mm, np.float32(-87.0))
        n = np.floor(x * _LOG2E + np.float32(0.5))
        f = x - n * _LN2_HI - n * _LN2_LO
        S[i, j] = np.float32(1.0) + f * (np.float32(1.0) + f * (np.float32(0.5) + f * (
            np.float32(1.0 / 6.0) + f * (np.float32(1.0 / 24.0) + f * (
                np.float32(1.0 / 120.0) + f * np.float32(1.0 / 720.0))))))
        bits[j] = (np.int32(n) + np.int32(127)) << np.int32(23)
