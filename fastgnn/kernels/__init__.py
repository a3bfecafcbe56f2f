"""Compiled kernels: ``cpu/<topic>.py`` (numba njit, parallel) and ``cuda/<topic>.py`` (numba.cuda twins).

Kernels are pure functions over arrays with preallocated outputs; validation happens before them, in
the public functions. Modules here are imported lazily (:func:`fastgnn.backend.kernels`).
"""
