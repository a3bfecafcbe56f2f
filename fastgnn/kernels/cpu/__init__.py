"""CPU kernels: ``@njit(parallel=True, cache=True)`` functions, compiled on first call and cached on disk."""
