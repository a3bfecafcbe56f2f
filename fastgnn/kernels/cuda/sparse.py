"""CUDA twin of ``kernels/cpu/sparse.py`` (same argument order)."""

from numba import cuda, float32

from .grid import grid2, shape2

# A block covers 32 feature columns x 8 rows: the 32 threads of a warp read consecutive columns of
# the same neighbour row, so each gather of X is one coalesced transaction.
_TX = 32
_TY = 8


@cuda.jit(cache=True)
def spmm_csr(indptr, indices, weights, has_weights, mode, row_scale, col_scale, X, out):
    k, i = grid2()
    n = indptr.shape[0] - 1
    d = X.shape[1]
    if i >= n or k >= d:
        return
    acc = X[0, 0] * 0  # zero of X's dtype
    for p in range(indptr[i], indptr[i + 1]):
        j = indices[p]
        w = weights[p] if has_weights else float32(1.0)
        if mode == 1:
            w *= col_scale[j]
        acc += w * X[j, k]
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
