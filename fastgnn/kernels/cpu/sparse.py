"""Sparse-dense products over CSR arrays."""
import numpy as np
from numba import njit, prange

from .prefetch import prefetch_row

# Rows are processed in chunks so each chunk owns one accumulator buffer: the inner loops then read X
# and write a private buffer that LLVM vectorises (no aliasing with ``out``).
_CHUNK = 64
# Arcs ahead whose X rows are prefetched (rows of consecutive arcs are random, so latency-bound).
_AHEAD = 8


@njit(inline="always")
def _arc_weight(p, j, weights, has_weights, mode, col_scale):
    w = weights[p] if has_weights else np.float32(1.0)
    if mode == 1:
        w = w * col_scale[j]
    return w


@njit(parallel=True, cache=True, fastmath={"contract", "arcp", "reassoc"})
def spmm_csr(indptr, indices, weights, has_weights, mode, row_scale, col_scale, self_scale, has_self, X, out):
    """out[i] = r_i * sum_p w_p * c_{j_p} * X[j_p] over row i's arcs, plus ``self_scale[i] * X[i]`` with
    ``has_self`` (a GCN's self-loop term, ``D̃^-1/2 (A + I) D̃^-1/2 X`` in one pass).

    mode 0: r = c = 1; mode 1: both scales used ("sym"); mode 2: only ``row_scale`` ("rw").
    ``weights`` is ignored (it may be a length-1 array) when ``has_weights`` is False, and ``self_scale`` when
    ``has_self`` is False.
    Four arcs are gathered per step and the rows of arcs ``_AHEAD`` further on are prefetched:
    independent row loads keep more memory requests in flight, which is what bounds this loop on a
    random graph.
    """
    n = indptr.size - 1
    d = X.shape[1]
    nnz = indices.size
    nchunks = (n + _CHUNK - 1) // _CHUNK
    for c in prange(nchunks):
        acc = np.empty(d, dtype=out.dtype)
        stop = min(n, (c + 1) * _CHUNK)
        for i in range(c * _CHUNK, stop):
            acc[:] = 0
            p = indptr[i]
            end = indptr[i + 1]
            while p + 4 <= end:
                q = p + _AHEAD
                if q + 4 <= nnz:
                    prefetch_row(X, indices[q])
                    prefetch_row(X, indices[q + 1])
                    prefetch_row(X, indices[q + 2])
                    prefetch_row(X, indices[q + 3])
                j0 = indices[p]
                j1 = indices[p + 1]
                j2 = indices[p + 2]
                j3 = indices[p + 3]
                w0 = _arc_weight(p, j0, weights, has_weights, mode, col_scale)
                w1 = _arc_weight(p + 1, j1, weights, has_weights, mode, col_scale)
                w2 = _arc_weight(p + 2, j2, weights, has_weights, mode, col_scale)
                w3 = _arc_weight(p + 3, j3, weights, has_weights, mode, col_scale)
                for k in range(d):
                    acc[k] += (w0 * X[j0, k] + w1 * X[j1, k]) + (w2 * X[j2, k] + w3 * X[j3, k])
                p += 4
            while p < end:
                j = indices[p]
                w = _arc_weight(p, j, weights, has_weights, mode, col_scale)
                for k in range(d):
                    acc[k] += w * X[j, k]
                p += 1
            s = row_scale[i] if mode != 0 else np.float32(1.0)
            if has_self:
                t = self_scale[i]
                for k in range(d):
                    out[i, k] = acc[k] * s + t * X[i, k]
            else:
                for k in range(d):
                    out[i, k] = acc[k] * s
