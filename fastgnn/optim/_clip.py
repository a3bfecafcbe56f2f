"""Gradient clipping over a list of gradient arrays (in place), with torch's semantics."""
from __future__ import annotations

import math

import numpy as np

from .. import _check
from .. import backend as _backend
from ._base import _address, _cpu_kernels, dyn_chunk, run_cpu


def _grad_list(grads, name="grads"):
    if isinstance(grads, np.ndarray) or _check.is_device_array(grads):
        grads = [grads]
    if not isinstance(grads, (list, tuple)):
        raise TypeError(f"{name}: expected a list of arrays clipped in place, got {type(grads).__name__}")
    grads = list(grads)
    if not grads:
        return grads, None, False
    dev = [_check.is_device_array(g) for g in grads]
    if any(dev) and not all(dev):
        raise TypeError(f"{name}: mix of host (numpy) and device arrays")
    dtype = None
    for i, g in enumerate(grads):
        if dev[0]:
            if g.dtype not in (np.float32, np.float64) or not g.is_c_contiguous():
                raise TypeError(f"{name}[{i}]: expected a C-contiguous float32/float64 device array")
        else:
            _check.inplace_array(g, f"{name}[{i}]")
        if dtype is None:
            dtype = g.dtype
        elif g.dtype != dtype:
            raise TypeError(f"{name}[{i}]: dtype {g.dtype} differs from {name}[0]'s {dtype}")
    return grads, np.dtype(dtype), dev[0]


def _chunks(grads):
    chunk = _cpu_kernels().CHUNK
    sizes = np.array([g.size for g in grads], dtype=np.int64)
    counts = (sizes + chunk - 1) // chunk
    ctens = np.repeat(np.arange(len(grads), dtype=np.int64), counts)
    starts = np.cumsum(counts) - counts
    clo = (np.arange(ctens.size, dtype=np.int64) - np.repeat(starts, counts)) * chunk
    chi = np.minimum(clo + chunk, sizes[ctens])
    addr = np.array([_address(g) for g in grads], dtype=np.int64)
    return addr, ctens, clo, chi


def clip_grad_norm(grads, max_norm, *, error_if_nonfinite=False) -> float:
    """Scale ``grads`` in place so that their global L2 norm is at most ``max_norm`` (``torch.nn.utils.clip_grad_norm_``).

    ``N = √(Σ_i ‖g_i‖²);  g_i ← g_i · min(1, max_norm / (N + 1e-6))``. The sum of squares is accumulated in
    float64 in a fixed order, so the result does not depend on the thread count.

    Parameters
    ----------
    grads : list of ndarray (or one ndarray)
        float32/float64 C-contiguous writeable arrays of one dtype; an empty list returns 0.0.
    max_norm : float
        ``>= 0``.
    error_if_nonfinite : bool, default False
        Raise ``ValueError`` when the norm is NaN or infinite (torch's flag); otherwise the grads are scaled
        anyway, as torch does.

    Returns
    -------
    float
        The global norm before clipping.

    Raises
    ------
    TypeError, ValueError
        bad arrays, a negative ``max_norm``, or a non-finite norm with ``error_if_nonfinite``.

    Examples
    --------
    >>> import numpy as np
    >>> from fastgnn.optim import clip_grad_norm
    >>> g = [np.array([3.0, 4.0], dtype=np.float32)]
    >>> clip_grad_norm(g, 1.0)
    5.0
    >>> g[0].round(4)
    array([0.6, 0.8], dtype=float32)
    """
    max_norm = _check.real(max_norm, "max_norm", minimum=0.0)
    grads, dtype, dev = _grad_list(grads)
    if not grads:
        return 0.0
    if dev:
        ck = _backend.kernels("optim", "cuda")
        total = math.sqrt(sum(ck.sum_squares(g.reshape(g.size)) for g in grads))
    else:
        addr, ctens, clo, chi = _chunks(grads)
        total_size = sum(g.size for g in grads)
        like = np.empty(0, dtype=dtype)
        partial = np.zeros(ctens.size, dtype=np.float64)
        run_cpu("sumsq_chunks", addr, ctens, clo, chi, like, partial, chunk=dyn_chunk(ctens.size, total_size),
                work=total_size)
        total = math.sqrt(float(partial.sum()))
    if error_if_nonfinite and not math.isfinite(total):
        raise ValueError(f"grads: the total gradient norm is non-finite ({total}); cannot clip")
    coef = max_norm / (total + 1e-6)
    coef = min(coef, 1.0) if coef == coef else coef
    if dev:
        for g in grads:
            ck.launch_scale(g.reshape(g.size), dtype.type(coef))
    else:
        run_cpu("scale_chunks", addr, ctens, clo, chi, like, dtype.type(coef), chunk=dyn_chunk(ctens.size, total_size),
                work=total_size)
    return total


def clip_grad_value(grads, value) -> None:
    """Clamp every gradient element to ``[-value, value]`` in place (``torch.nn.utils.clip_grad_value_``).

    ``g ← min(max(g, −c), c)``; NaN stays NaN.

    Parameters
    ----------
    grads : list of ndarray (or one ndarray)
        float32/float64 C-contiguous writeable arrays of one dtype.
    value : float
        ``c >= 0``.

    Raises
    ------
    TypeError, ValueError
        bad arrays or a negative ``value``.

    Examples
    --------
    >>> import numpy as np
    >>> from fastgnn.optim import clip_grad_value
    >>> g = [np.array([-3.0, 0.5, 2.0], dtype=np.float32)]
    >>> clip_grad_value(g, 1.0)
    >>> g[0]
    array([-1. ,  0.5,  1. ], dtype=float32)
    """
    value = _check.real(value, "value", minimum=0.0)
    grads, dtype, dev = _grad_list(grads)
    if not grads:
        return None
    lo, hi = dtype.type(-value), dtype.type(value)
    if dev:
        ck = _backend.kernels("optim", "cuda")
        for g in grads:
            ck.launch_clamp(g.reshape(g.size), lo, hi)
        return None
    addr, ctens, clo, chi = _chunks(grads)
    total_size = sum(g.size for g in grads)
    run_cpu("clamp_chunks", addr, ctens, clo, chi, np.empty(0, dtype=dtype), lo, hi,
            chunk=dyn_chunk(ctens.size, total_size), work=total_size)
    return None
