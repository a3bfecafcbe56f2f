"""Counter-based random numbers for parallel kernels (SplitMix64 finaliser).

A draw is a pure function of ``(seed, stream, counter)``: no state is shared between threads, so a
kernel gives the same bits at any thread count and on CUDA (``kernels/cuda/rng.py`` is the same code
compiled as device functions). Typical use: ``stream`` = row / walk / anchor id, ``counter`` = draw
number within it.
"""
import numpy as np
from numba import njit

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_TWO53 = 1.0 / 9007199254740992.0


@njit(inline="always", cache=True)
def mix64(z):
    """SplitMix64 finaliser: a bijective avalanche of a uint64."""
    z = np.uint64(z)
    z = (z ^ (z >> np.uint64(30))) * _M1
    z = (z ^ (z >> np.uint64(27))) * _M2
    return z ^ (z >> np.uint64(31))


@njit(inline="always", cache=True)
def hash3(seed, stream, counter):
    """A uint64 from three integers (any signed/unsigned ints; negative values wrap)."""
    z = mix64(np.uint64(seed) + _GOLDEN * (np.uint64(stream) + np.uint64(1)))
    return mix64(z + _GOLDEN * (np.uint64(counter) + np.uint64(1)))


@njit(inline="always", cache=True)
def uniform(seed, stream, counter):
    """A float64 in [0, 1) with 53 random bits."""
    return np.float64(hash3(seed, stream, counter) >> np.uint64(11)) * _TWO53


@njit(inline="always", cache=True)
def randbelow(seed, stream, counter, n):
    """An int64 in [0, n) for n >= 1 (Lemire-style multiply of 32 random bits; bias < n / 2^32)."""
    r = hash3(seed, stream, counter) >> np.uint64(32)
    return np.int64((r * np.uint64(n)) >> np.uint64(32))
