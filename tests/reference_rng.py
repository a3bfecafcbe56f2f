"""Pure-Python / NumPy copies of the counter-based generator in ``fastgnn/kernels/cpu/rng.py``.

One oracle for every reference that replays kernel draws (walks, reconstruction negatives, word2vec).
"""
import numpy as np

__all__ = ["MASK64", "GOLDEN", "mix64", "hash3", "uniform", "randbelow", "uniform_array"]

MASK64 = (1 << 64) - 1
GOLDEN = 0x9E3779B97F4A7C15


def mix64(z):
    """SplitMix64 finaliser on a Python int (wrapping at 64 bits)."""
    z &= MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
    return z ^ (z >> 31)


def hash3(seed, stream, counter):
    z = mix64((seed + GOLDEN * (stream + 1)) & MASK64)
    return mix64((z + GOLDEN * (counter + 1)) & MASK64)


def uniform(seed, stream, counter):
    return (hash3(seed, stream, counter) >> 11) * (1.0 / 9007199254740992.0)


def randbelow(seed, stream, counter, n):
    return ((hash3(seed, stream, counter) >> 32) * n) >> 32


def _mix_array(z):
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def uniform_array(seed, stream, counter):
    """:func:`uniform` vectorised over arrays of streams and counters."""
    g = np.uint64(GOLDEN)
    with np.errstate(over="ignore"):
        s = np.asarray(stream, np.uint64)
        c = np.asarray(counter, np.uint64)
        z = _mix_array(np.uint64(seed) + g * (s + np.uint64(1)))
        z = _mix_array(z + g * (c + np.uint64(1)))
    return (z >> np.uint64(11)).astype(np.float64) * (1.0 / 9007199254740992.0)
