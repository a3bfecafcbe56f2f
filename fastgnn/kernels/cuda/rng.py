"""Device-function twin of ``kernels/cpu/rng.py``: the same bits for the same (seed, stream, counter)."""
import numpy as np
from numba import cuda, float64, int64, uint64

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_TWO53 = 1.0 / 9007199254740992.0


@cuda.jit(device=True, inline=True)
def mix64(z):
    z = uint64(z)
    z = (z ^ (z >> uint64(30))) * _M1
    z = (z ^ (z >> uint64(27))) * _M2
    return z ^ (z >> uint64(31))


@cuda.jit(device=True, inline=True)
def hash3(seed, stream, counter):
    z = mix64(uint64(seed) + _GOLDEN * (uint64(stream) + uint64(1)))
    return mix64(z + _GOLDEN * (uint64(counter) + uint64(1)))


@cuda.jit(device=True, inline=True)
def uniform(seed, stream, counter):
    return float64(hash3(seed, stream, counter) >> uint64(11)) * _TWO53


@cuda.jit(device=True, inline=True)
def randbelow(seed, stream, counter, n):
    r = hash3(seed, stream, counter) >> uint64(32)
    return int64((r * uint64(n)) >> uint64(32))
