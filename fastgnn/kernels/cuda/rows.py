"""A warp's share of a feature row: kernels that give one row to a warp give each lane four columns of a block of
``GROUP`` = 128, ``t0``, ``t0 + 32``, ``t0 + 64`` and ``t0 + 96`` with ``t0 = 128 * block + lane``. The warp's loads
of a row are then four coalesced 128-byte transactions, and a lane's four loads are independent.

The guards are per column (``t < D``) and per row (``r >= 0``, the padding id -1): the column guards do not change
along a row loop, so the compiler predicates the loads instead of branching; the row guard also rules out the
negative-index wrap-around code of ``X[r, t]``.
"""
from numba import cuda, uint64

from .grid import launch2

GROUP = 128  # columns of a block: four per lane


@cuda.jit(device=True, inline=True)
def col(X, r, t, D):
    """``X[r, t]``, or 0 for a column ``t`` past ``D`` or a row ``r < 0`` (nothing loaded)."""
    return X[r, t] if t < D and r >= 0 else X.dtype.type(0)


@cuda.jit(device=True, inline=True)
def cols4(X, r, t0, D):
    """This lane's four entries ``X[r, t0 + 32c]`` of a column block (:func:`col`)."""
    return col(X, r, t0, D), col(X, r, t0 + 32, D), col(X, r, t0 + 64, D), col(X, r, t0 + 96, D)


@cuda.jit(device=True, inline=True)
def _at(X, r, t, D):
    return X[r, t] if 0 <= t < D and r >= 0 else X.dtype.type(0)


@cuda.jit(device=True, inline=True)
def gather4(X, r, t0, D):
    """:func:`cols4` for a loop over many rows at fixed columns (a gather): the guard also says ``t >= 0``, so the
    compiler drops the column's wrap-around code and computes one address per row (ptxas: 73 instructions a step
    of ``sparse.spmm_csr`` instead of 141), for four more predicates held across the loop. (The InfoNCE kernels,
    which loop over column blocks and are held to 64 registers, keep :func:`cols4`: there the predicates spill.)"""
    return _at(X, r, t0, D), _at(X, r, t0 + 32, D), _at(X, r, t0 + 64, D), _at(X, r, t0 + 96, D)


@cuda.jit(device=True, inline=True)
def store4(X, r, t0, D, v0, v1, v2, v3):
    """``X[r, t0 + 32c] = v_c`` for this lane's columns of a column block that lie below ``D``."""
    if t0 < D:
        X[r, t0] = v0
    if t0 + 32 < D:
        X[r, t0 + 32] = v1
    if t0 + 64 < D:
        X[r, t0 + 64] = v2
    if t0 + 96 < D:
        X[r, t0 + 96] = v3


@cuda.jit(device=True, inline=True)
def add4(X, r, t0, D, v0, v1, v2, v3):
    """``X[r, t0 + 32c] += v_c`` for this lane's columns of a column block that lie below ``D`` (no atomics: the
    caller owns row ``r``)."""
    if t0 < D:
        X[r, t0] += v0
    if t0 + 32 < D:
        X[r, t0 + 32] += v1
    if t0 + 64 < D:
        X[r, t0 + 64] += v2
    if t0 + 96 < D:
        X[r, t0 + 96] += v3


def launch_rows(kernel, rows, cols, warps, *args):
    """Launch a kernel that gives each (row, block of ``GROUP`` columns) to one warp, ``warps`` rows a block:
    blocks of ``(32, warps)`` threads; the kernel's row is :func:`.grid.grid2`'s second value, its ``t0``
    ``cuda.blockIdx.x * GROUP + cuda.threadIdx.x``. Nothing is launched for zero rows or columns.

    Rows of fewer than 32 columns take ``cols`` lanes a row, not 32 (the kernels use no warp-wide operations):
    the lanes past the last column would load nothing, and the Numba CUDA simulator runs every thread."""
    lanes = min(32, cols)
    launch2(kernel, lanes * (-(-cols // GROUP)), rows, (lanes, warps), *args)


@cuda.jit(device=True, inline=True)
def _entry(X, src, coef, has_coef, scale, use_scale, q):
    """``(j, w)`` of entry ``q``: its gathered row ``src[q]`` (unsigned) and its coefficient, rounded to ``X``'s dtype
    (1 without ``has_coef``), times ``scale[j]`` with ``use_scale``."""
    j = uint64(src[q])
    w = X.dtype.type(coef[q]) if has_coef else X.dtype.type(1.0)
    if use_scale:
        w *= scale[j]
    return j, w


@cuda.jit(device=True, inline=True)
def gather_sum4(X, src, coef, has_coef, scale, use_scale, q, end, t0, D, a0, a1, a2, a3):
    """This lane's four sums ``a_c + Σ w_q X[src[q], t0 + 32c]`` over the entries ``q .. end - 1``, in that order, in
    ``X``'s dtype: ``w_q = coef[q]`` (rounded to ``X``'s dtype first, as the CPU kernels do; 1 without
    ``has_coef``), times ``scale[src[q]]`` with ``use_scale`` (``scale`` of ``X``'s dtype). Two entries a step: the
    eight loads of the two gathered rows (:func:`gather4`) are issued together, and depend on no load of ``X``."""
    while q + 1 < end:
        ja, wa = _entry(X, src, coef, has_coef, scale, use_scale, q)
        jb, wb = _entry(X, src, coef, has_coef, scale, use_scale, q + 1)
        xa0, xa1, xa2, xa3 = gather4(X, ja, t0, D)
        xb0, xb1, xb2, xb3 = gather4(X, jb, t0, D)
        a0 = (a0 + wa * xa0) + wb * xb0  # entry order: one entry's term at a time
        a1 = (a1 + wa * xa1) + wb * xb1
        a2 = (a2 + wa * xa2) + wb * xb2
        a3 = (a3 + wa * xa3) + wb * xb3
        q += 2
    if q < end:
        j, w = _entry(X, src, coef, has_coef, scale, use_scale, q)
        x0, x1, x2, x3 = gather4(X, j, t0, D)
        a0 += w * x0
        a1 += w * x1
        a2 += w * x2
        a3 += w * x3
    return a0, a1, a2, a3
