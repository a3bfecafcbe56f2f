"""CUDA twin of ``kernels/cpu/sparse.py`` (same argument order)."""

from numba import cuda, float32

from .grid import grid2, shape2

# A block covers 32 feature columns x 8 rows: the 32 threads of a warp read consecutive columns of
# the same neighbour row, so each gather of X is one coalesced transaction.
_TX = 32
_TY = 8


@cuda.jit(device=True, inline=True)
def _weight(p, j, weights, has_weights, mode, col_scale):
    """The weight of entry ``p`` (column ``j``): its stored weight (or 1), times ``col_scale[j]`` in mode 1."""
    w = weights[p] if has_weights else float32(1.0)
    if mode == 1:
        w *= col_scale[j]
    return w


@cuda.jit(cache=True)
def spmm_csr(indptr, indices, weights, has_weights, mode, row_scale, col_scale, X, out):
    """``out[i, k] = row_scale_i^[mode != 0] Σ_p w_p X[indices[p], k]`` over row ``i``'s entries, in order (the
    CPU kernel's order). The entries go four a step, their indices, weights and rows of X all loaded before the
    four are added: a thread otherwise waits for an index, then for the row it names, once per entry."""
    k, i = grid2()
    n = indptr.shape[0] - 1
    d = X.shape[1]
    if i >= n or k >= d:
        return
    acc = X[0, 0] * 0  # zero of X's dtype
    p = indptr[i]
    end = indptr[i + 1]
    while p + 4 <= end:
        j0 = indices[p]
        j1 = indices[p + 1]
        j2 = indices[p + 2]
        j3 = indices[p + 3]
        w0 = _weight(p, j0, weights, has_weights, mode, col_scale)
        w1 = _weight(p + 1, j1, weights, has_weights, mode, col_scale)
        w2 = _weight(p + 2, j2, weights, has_weights, mode, col_scale)
        w3 = _weight(p + 3, j3, weights, has_weights, mode, col_scale)
        x0 = X[j0, k]
        x1 = X[j1, k]
        x2 = X[j2, k]
        x3 = X[j3, k]
        acc += w0 * x0
        acc += w1 * x1
        acc += w2 * x2
        acc += w3 * x3
        p += 4
    while p < end:
        j = indices[p]
        acc += _weight(p, j, weights, has_weights, mode, col_scale) * X[j, k]
        p += 1
    if mode != 0:
        acc *= row_scale[i]
    out[i, k] = acc


def launch_spmm(indptr, indices, weights, has_weights, mode, row_scale, col_scale, X, out):
    """Launch :func:`spmm_csr` over a (columns, rows) grid on device arrays."""
    n = indptr.shape[0] - 1
    d = X.shape[1]
    if n == 0 or d == 0:
        return
    spmm_csr[shape2(d, n, (_TX, _TY)), (_TX, _TY)](indptr, indices, weights, has_weights, mode, row_scale, col_scale, X, out)
