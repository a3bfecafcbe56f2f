"""CUDA twin of ``kernels/cpu/sparse.py`` (same argument order).

:func:`spmm_csr` gives each row to one warp, and each warp a block of up to 128 feature columns
(:mod:`.rows`: lane ``l`` sums the columns ``l``, ``l + 32``, ``l + 64`` and ``l + 96`` of its block; wider ``X``
takes more blocks, one warp each). The warp walks the row's arcs two at a time: every lane reads the two arcs'
column indices and weights (the same addresses on every lane: one broadcast transaction each, from L1 after the
first arcs of a line), then the two neighbours' rows of ``X`` as eight coalesced 128-byte loads, none of which
waits for another. (The previous kernel, a thread per (row, column), kept one load of ``X`` in flight, each behind its
own load of the arc's index.)

No shared memory and no barriers: the warps of a block may take rows of any length, and the Numba CUDA
simulator runs the same code at its usual cost.

The sums run over the row's arcs in CSR order in ``X``'s dtype, as the CPU kernel does. ``has_self`` adds
``self_scale[i] * X[i]`` after the row scale (a GCN's self-loop), saving a pass over ``out`` and ``X``.
"""

from numba import cuda

from .grid import grid2
from .rows import GROUP, gather4, gather_sum4, launch_rows, store4

WARPS = 4  # warps (rows) per block


@cuda.jit(cache=True)
def spmm_csr(indptr, indices, weights, has_weights, mode, row_scale, col_scale, self_scale, has_self, X, out):
    _, i = grid2()
    n = indptr.shape[0] - 1
    if i >= n:
        return
    D = X.shape[1]
    t0 = cuda.blockIdx.x * GROUP + cuda.threadIdx.x
    zero = X.dtype.type(0)
    a0, a1, a2, a3 = gather_sum4(X, indices, weights, has_weights, col_scale, mode == 1, indptr[i], indptr[i + 1], t0,
                                 D, zero, zero, zero, zero)
    if mode != 0:
        s = row_scale[i]
        a0 *= s
        a1 *= s
        a2 *= s
        a3 *= s
    if has_self:  # the self-loop term: + self_scale[i] * X[i] (the row's own features, coalesced)
        s = self_scale[i]
        x0, x1, x2, x3 = gather4(X, i, t0, D)
        a0 += s * x0
        a1 += s * x1
        a2 += s * x2
        a3 += s * x3
    store4(out, i, t0, D, a0, a1, a2, a3)


def launch_spmm(indptr, indices, weights, has_weights, mode, row_scale, col_scale, self_scale, has_self, X, out):
    """Launch :func:`spmm_csr` on device arrays: one warp per (row, block of 128 columns)."""
    launch_rows(spmm_csr, indptr.shape[0] - 1, X.shape[1], WARPS, indptr, indices, weights, has_weights, mode,
                row_scale, col_scale, self_scale, has_self, X, out)
