"""Device kernels of a device-resident autograd (GCN / SAGE encoders, a projection head).

Every public function here is a launch helper over numba device arrays: C-contiguous, one float dtype
(float32 or float64) throughout a call, outputs preallocated by the caller. Nothing is copied to the host,
nothing is returned, and an input with a zero dimension launches nothing. The NumPy expression each matches:

* :func:`matmul` ``(A, B, out, trans_a, trans_b)``: ``out = op(A) @ op(B)``, ``op`` transposing where its flag
  is set (A and B in their stored shapes). A tiled GEMM through shared memory; it accumulates in the array
  dtype (float32 for float32, as NumPy's and cuBLAS's SGEMM do), so float32 results agree with a float64
  product to float32 rounding times ~sqrt(K), not bit for bit. ``K == 0`` writes zeros.
* :func:`add_row`: ``out = X + b`` (b [1, F] broadcast over the rows; ``out`` may be ``X``).
* :func:`add`, :func:`mul`: flat ``out = a + b``, ``out = a * b`` (``out`` may alias an input), bit for bit.
* :func:`axpy`: flat ``y += alpha * x`` in the array dtype (a GPU may fuse it into one FMA: not bit for bit).
* :func:`scale`: flat ``out = dtype(alpha) * x``, bit for bit.
* :func:`column_sums`: ``out = G.sum(axis=0, keepdims=True)``, accumulated in float64 in a fixed order (two
  passes, no atomics: the same bits on every run).
* :func:`relu_forward`, :func:`relu_backward`: ``np.where(x > 0, x, 0)`` (NaN gives 0) and ``g * (y > 0)`` as
  a product, bit for bit (the twins of ``kernels/cpu/autograd.py``).
* :func:`elu_forward`: ``out = np.where(x > 0, x, alpha * np.expm1(x))`` and
  ``deriv = np.where(x > 0, 1, alpha * np.expm1(x) + alpha)`` (``math.expm1``; NaN stays NaN).
* :func:`scale_columns`: ``out = X * s[None, :]``, bit for bit.
* :func:`add_scaled_rows`: ``out += scale[:, None] * X`` with the product rounded on its own (never an FMA),
  bit for bit as NumPy's ``out + scale[:, None] * X`` (the in-batch loss's radial terms).
* :func:`mean_axis1`: ``out = x.mean(axis=1)`` for x [N, H, F] (summed over H in order in the dtype, then
  divided by H, as NumPy does); :func:`broadcast_axis1`: ``out = g[:, None, :] / H`` (its backward).
* along one axis of an array viewed as [P, L, Q]: :func:`axis_reduce` (``sum``/``mean``, float64 sums in axis
  order, rounded once) and :func:`axis_spread` (their backward, bit for bit); :func:`axis_softmax` and
  :func:`axis_softmax_back` (softmax / log-softmax, max-shifted, float64 sums; NaN lines stay NaN);
  :func:`copy_block` (``concat`` and its split).
* :func:`grouped_row_sums`: the dense gradient of ``table[ids]`` from the ids grouped by a stable sort
  (``np.add.at``'s sums in its order, bit for bit); the gather itself is ``kernels/cuda/trainer.py:gather_rows``.

The flat kernels take 1-d views (``.reshape(-1)``) and run one thread per element on a 1-d grid of
``THREADS``-thread blocks; the 2-d ones run one thread per element on a (columns, rows) grid of ``TILE``
blocks (:func:`grid.shape2`), the 32 lanes of a warp on consecutive columns of one row (coalesced).
"""
import math

import numpy as np
from numba import cuda, float64, uint32, uint64

from .grid import grid2, launch2, shape1, shape2
from .mathfn import mul_rn
from .warp import SIM, scratch_size, warp_sum

THREADS = 256  # threads per block of the flat kernels (tests lower it so tiny inputs span several blocks)
TILE = (32, 8)  # (columns, rows) per block of the 2-d elementwise kernels

# GEMM: a block of MM_TX x MM_TY threads computes a MM_BM x MM_BN tile of ``out``, each thread an MM_R x MM_R
# register block: rows ty * MM_R + r (consecutive, so a thread reads its MM_R values of a shared A row as vector
# loads) and columns tx + c * MM_TX (strided, so the lanes of a warp store consecutive columns). A shared B row
# holds the tile's columns permuted (_b_slot) so that a thread's MM_R columns lie in runs of MM_CV = 4, each read
# by one 16-byte load, the 16 lanes of a row on consecutive addresses (no bank conflicts). K advances in
# slices of MM_BK staged in K-major shared tiles, each row padded by 4 entries (keeps the rows 16-byte aligned for
# the vector loads, and puts the lanes' transposing stores in distinct banks). Every thread stages MM_A_LOADS
# entries of A's slice and MM_B_LOADS of B's, and loads the next slice into registers while the block multiplies
# the current one. With 8 x 8 per thread a multiply-add needs a quarter of a shared load (4 x 4: half), and
# ptxas (sm_90) gives the float32 kernel 128 registers, so two 256-thread blocks fit on an SM. All the MM_
# constants come from gemm_constants (tests patch them together, with smaller blocks).


def gemm_constants(tx, ty, r, bk):
    """The GEMM's module constants, name -> value, for blocks of ``tx`` x ``ty`` threads of ``r`` x ``r`` outputs
    and K slices of ``bk``. ValueError unless the threads stage whole slices: ``tx * ty`` a multiple of ``bk``,
    ``r * ty`` and ``r * tx``."""
    nt, bm, bn = tx * ty, r * ty, r * tx
    if nt % bk or nt % bm or nt % bn:
        raise ValueError(f"GEMM layout: {tx} x {ty} threads cannot stage slices of {bm} x {bk} and {bk} x {bn}")
    cv = 4  # columns per vector load of a shared B row (16 bytes of float32)
    if r % cv:
        raise ValueError(f"GEMM layout: a register block of {r} columns is not whole runs of {cv}")
    return dict(MM_TX=tx, MM_TY=ty, MM_R=r, MM_CV=cv, MM_BK=bk, MM_BM=bm, MM_BN=bn, MM_NT=nt, MM_A_LOADS=bk * bm // nt,
                MM_B_LOADS=bk * bn // nt, MM_A_SHARED=(bk, bm + 4), MM_B_SHARED=(bk, bn + 4))


(MM_TX, MM_TY, MM_R, MM_CV, MM_BK, MM_BM, MM_BN, MM_NT, MM_A_LOADS, MM_B_LOADS, MM_A_SHARED,
 MM_B_SHARED) = gemm_constants(16, 16, 8, 8).values()
# split K (launch geometry only, read on the host): blocks wanted (4 per SM of a 132-SM H100), fewest K per part
MM_SPLIT_BLOCKS = 512
MM_SPLIT_MIN_K = 1024

# column sums: blocks of (CS_TX columns, CS_TY rows); the rows are split over column_parts(N) blocks per column
# group, whose float64 partial sums a second kernel adds in order.
CS_TX = 32  # a warp along consecutive columns of a row
CS_TY = 8  # a power of two (the block's tree)
CS_PARTS = 128  # most row parts
CS_MIN_ROWS = 64  # fewest rows per part


def _grid1(n):
    return shape1(n, THREADS)


def _launch2(kernel, rows, cols, *args):
    launch2(kernel, cols, rows, TILE, *args)


# --------------------------------------------------------------------------- GEMM
@cuda.jit(device=True, inline=True)
def _stage(X, trans, lo, hi, j0, dj, k0, dk, k_hi, buf, count):
    """One thread's share of a slice, into registers: for i < count, with j = lo + j0 + i * dj and
    k = k0 + i * dk, buf[i] = X[j, k] (X stored [J, K]), or X[k, j] when ``trans`` (X stored [K, J]); 0 where
    j >= hi or k >= k_hi."""
    zero = buf.dtype.type(0)
    for i in range(count):
        j = lo + j0 + i * dj
        k = k0 + i * dk
        if j < hi and k < k_hi:  # j, k >= 0: unsigned indices skip the wrap-around of negative ones
            buf[i] = X[uint64(k), uint64(j)] if trans else X[uint64(j), uint64(k)]
        else:
            buf[i] = zero


@cuda.jit(device=True, inline=True)
def _col_offset(c):
    """Where column c of a thread's register block (tile column tx + c * MM_TX) sits in a shared B row, relative
    to the thread's first (MM_CV * tx): runs of MM_CV, one 16-byte vector load each, MM_CV * MM_TX apart."""
    return (c // MM_CV) * (MM_CV * MM_TX) + c % MM_CV


@cuda.jit(device=True, inline=True)
def _b_slot(j):
    """The shared B row position of tile column ``j`` (uint32): j = tx + c * MM_TX goes to MM_CV * tx +
    _col_offset(c), so that each thread's columns lie in runs of MM_CV while the columns it stores to ``out`` stay
    MM_TX apart (a warp's stores coalesced)."""
    return (j // uint32(MM_CV * MM_TX)) * uint32(MM_CV * MM_TX) + (j % uint32(MM_TX)) * uint32(MM_CV) + \
        (j // uint32(MM_TX)) % uint32(MM_CV)


@cuda.jit(device=True, inline=True)
def _gemm_tile(A, B, out, trans_a, trans_b, m0, n0, k_lo, k_hi):
    """out[m0:m0+BM, n0:n0+BN] = op(A)[m0:, k_lo:k_hi] @ op(B)[k_lo:k_hi, n0:] for one block.

    Each K slice of op(A) (BM x BK) and op(B) (BK x BN) is read with consecutive threads on consecutive
    addresses of the stored array (along K for A and Bᵀ stored row-major, along M / N for Aᵀ and B) into
    registers, one slice ahead, then stored into K-major shared tiles of ``out``'s dtype. Entries past M, N or
    k_hi load as 0, so the last partial slice adds exact zeros. Each output sums its products in ascending k."""
    M = out.shape[0]
    N = out.shape[1]
    tx = cuda.threadIdx.x
    ty = cuda.threadIdx.y
    tid = ty * MM_TX + tx
    As = cuda.shared.array(MM_A_SHARED, out.dtype)  # staged in the output dtype (float32 operands of a
    Bs = cuda.shared.array(MM_B_SHARED, out.dtype)  # float64 out multiply exactly)
    acc = cuda.local.array((MM_R, MM_R), out.dtype)  # constant indices only: registers (no local memory)
    av = cuda.local.array(MM_R, out.dtype)
    bv = cuda.local.array(MM_R, out.dtype)
    pa = cuda.local.array(MM_A_LOADS, out.dtype)
    pb = cuda.local.array(MM_B_LOADS, out.dtype)
    zero = out.dtype.type(0)
    for r in range(MM_R):
        for c in range(MM_R):
            acc[r, c] = zero
    # this thread's entries of a slice: (row or column, k) = (j0 + i * dj, k0 + i * dk), i < count
    if trans_a:  # A [K, M]: consecutive threads along m
        a_j, a_k, a_dj, a_dk = tid % MM_BM, tid // MM_BM, 0, MM_NT // MM_BM
    else:  # A [M, K]: consecutive threads along k
        a_j, a_k, a_dj, a_dk = tid // MM_BK, tid % MM_BK, MM_NT // MM_BK, 0
    if trans_b:  # B [N, K]: consecutive threads along k
        b_j, b_k, b_dj, b_dk = tid // MM_BK, tid % MM_BK, MM_NT // MM_BK, 0
    else:  # B [K, N]: consecutive threads along n
        b_j, b_k, b_dj, b_dk = tid % MM_BN, tid // MM_BN, 0, MM_NT // MM_BN
    a_row = uint32(ty * MM_R)  # this thread's first row of a shared A slice, and first column of a B slice
    b_col = uint32(MM_CV * tx)
    k0 = k_lo
    _stage(A, trans_a, m0, M, a_j, a_dj, k0 + a_k, a_dk, k_hi, pa, MM_A_LOADS)
    _stage(B, not trans_b, n0, N, b_j, b_dj, k0 + b_k, b_dk, k_hi, pb, MM_B_LOADS)
    while k0 < k_hi:
        for i in range(MM_A_LOADS):
            As[a_k + i * a_dk, a_j + i * a_dj] = pa[i]
        for i in range(MM_B_LOADS):
            Bs[b_k + i * b_dk, _b_slot(uint32(b_j + i * b_dj))] = pb[i]
        cuda.syncthreads()
        k1 = k0 + MM_BK
        if k1 < k_hi:  # the next slice's loads run while this one is multiplied
            _stage(A, trans_a, m0, M, a_j, a_dj, k1 + a_k, a_dk, k_hi, pa, MM_A_LOADS)
            _stage(B, not trans_b, n0, N, b_j, b_dj, k1 + b_k, b_dk, k_hi, pb, MM_B_LOADS)
        for kk in range(MM_BK):  # unsigned shared indices: no wrap-around arithmetic for negative ones
            uk = uint32(kk)
            for r in range(MM_R):
                av[r] = As[uk, a_row + uint32(r)]
            for c in range(MM_R):
                bv[c] = Bs[uk, b_col + uint32(_col_offset(c))]
            for r in range(MM_R):
                for c in range(MM_R):
                    acc[r, c] += av[r] * bv[c]
        cuda.syncthreads()  # every thread is done with the tiles before they are overwritten
        k0 = k1
    for r in range(MM_R):
        m = m0 + ty * MM_R + r
        if m < M:
            for c in range(MM_R):
                n = n0 + tx + c * MM_TX
                if n < N:
                    out[m, n] = acc[r, c]


@cuda.jit(cache=True)
def _matmul(A, B, out, trans_a, trans_b):
    """out = op(A) @ op(B); block (bx, by) computes out[by*BM:(by+1)*BM, bx*BN:(bx+1)*BN] over all of K."""
    m0 = (cuda.blockIdx.z * cuda.gridDim.y + cuda.blockIdx.y) * MM_BM
    if m0 >= out.shape[0]:  # a folded grid's spare blocks: the whole block leaves, before any barrier
        return
    K = A.shape[0] if trans_a else A.shape[1]
    _gemm_tile(A, B, out, trans_a, trans_b, m0, cuda.blockIdx.x * MM_BN, 0, K)


@cuda.jit(cache=True)
def _matmul_split(A, B, part, trans_a, trans_b, kchunk):
    """part[z] = op(A)[:, z*kchunk:(z+1)*kchunk] @ op(B)[z*kchunk:(z+1)*kchunk, :]: block (bx, by, z) computes
    one output tile over one K range (split K, for outputs of few tiles and a long K)."""
    K = A.shape[0] if trans_a else A.shape[1]
    z = cuda.blockIdx.z
    k_lo = z * kchunk
    _gemm_tile(A, B, part[z], trans_a, trans_b, cuda.blockIdx.y * MM_BM, cuda.blockIdx.x * MM_BN, k_lo,
               min(K, k_lo + kchunk))


@cuda.jit(cache=True)
def _sum_parts(part, out):
    """out = part.sum(axis=0), in float64, adding the parts in order (deterministic)."""
    j, i = grid2()
    if i < out.shape[0] and j < out.shape[1]:
        acc = 0.0
        for z in range(part.shape[0]):
            acc += float64(part[z, i, j])
        out[i, j] = acc


def _split_k(M, N, K):
    """``(parts, kchunk)``: how many K ranges of ``kchunk`` (a multiple of MM_BK) the product is split into.
    One part unless the output has too few tiles to fill the GPU (MM_SPLIT_BLOCKS blocks wanted) and K is long
    enough for at least two ranges of MM_SPLIT_MIN_K: a GNN weight gradient Xᵀ G is 128 x 256 over 200k rows,
    8 tiles that would each run the whole of K on one SM."""
    tiles = math.ceil(M / MM_BM) * math.ceil(N / MM_BN)
    want = min(MM_SPLIT_BLOCKS // tiles, K // MM_SPLIT_MIN_K)
    if want < 2:
        return 1, K
    kchunk = math.ceil(math.ceil(K / want) / MM_BK) * MM_BK
    return math.ceil(K / kchunk), kchunk


def matmul(A, B, out, trans_a=False, trans_b=False):
    """``out = op(A) @ op(B)`` (2-d device arrays; ``op`` transposes where the flag is set, so ``trans_a`` with A
    [K, M] multiplies by Aᵀ [M, K]). Accumulates in ``out``'s dtype (float32 A and B into a float64 ``out``:
    exact products summed in float64, in ascending k); a split K (see :func:`_split_k`) adds its parts in
    float64, in order. Raises ValueError on mismatched shapes."""
    M, K = (A.shape[1], A.shape[0]) if trans_a else A.shape
    K2, N = (B.shape[1], B.shape[0]) if trans_b else B.shape
    if K != K2 or tuple(out.shape) != (M, N):
        raise ValueError(f"matmul: op(A) {M}x{K} @ op(B) {K2}x{N} into out {tuple(out.shape)}")
    if M == 0 or N == 0:
        return
    parts, kchunk = _split_k(M, N, K)
    if parts == 1:
        _matmul[shape2(N, M, (MM_BN, MM_BM)), (MM_TX, MM_TY)](A, B, out, bool(trans_a), bool(trans_b))
        return
    part = cuda.device_array((parts, M, N), out.dtype)
    grid = (math.ceil(N / MM_BN), math.ceil(M / MM_BM), parts)
    _matmul_split[grid, (MM_TX, MM_TY)](A, B, part, bool(trans_a), bool(trans_b), kchunk)
    _launch2(_sum_parts, M, N, part, out)


# --------------------------------------------------------------------------- elementwise, 2-d
@cuda.jit(cache=True)
def _add_row(X, b, out):
    j, i = grid2()
    if i < X.shape[0] and j < X.shape[1]:
        out[i, j] = X[i, j] + b[0, j]


@cuda.jit(cache=True)
def _scale_columns(X, s, out):
    j, i = grid2()
    if i < X.shape[0] and j < X.shape[1]:
        out[i, j] = X[i, j] * s[j]


@cuda.jit(cache=True)
def _add_scaled_rows(out, scale, X):
    j, i = grid2()
    if i < X.shape[0] and j < X.shape[1]:
        # the product of two float32 is exact in float64: rounding it to the dtype is the dtype's own product,
        # and mul_rn keeps a float64 product from fusing with the add (NumPy rounds twice)
        p = out.dtype.type(mul_rn(float64(scale[i]), float64(X[i, j])))
        out[i, j] = out[i, j] + p


@cuda.jit(cache=True)
def _mean_axis1(x, out):
    j, i = grid2()
    H = x.shape[1]
    if i < x.shape[0] and j < x.shape[2]:
        acc = out.dtype.type(0)
        for h in range(H):
            acc += x[i, h, j]
        out[i, j] = acc / out.dtype.type(H)


@cuda.jit(cache=True)
def _broadcast_axis1(g, h, out):
    j, r = grid2()  # r = i * H + head: a row of out viewed as [N * H, F]
    H = out.shape[1]
    if r < out.shape[0] * H and j < out.shape[2]:
        i = r // H
        out[i, r - i * H, j] = g[i, j] / h


def add_row(X, b, out):
    """``out = X + b`` (X [N, F], b [1, F]); ``out`` may be ``X``."""
    _launch2(_add_row, X.shape[0], X.shape[1], X, b, out)


def scale_columns(X, s, out):
    """``out = X * s[None, :]`` (X [N, F], s [F] of X's dtype)."""
    _launch2(_scale_columns, X.shape[0], X.shape[1], X, s, out)


def add_scaled_rows(out, scale, X):
    """``out += scale[:, None] * X`` in place (out, X [N, F], scale [N]), rounded like NumPy (no FMA)."""
    _launch2(_add_scaled_rows, X.shape[0], X.shape[1], out, scale, X)


def mean_axis1(x, out):
    """``out = x.mean(axis=1)`` (x [N, H, F], out [N, F]); H = 0 gives NaN, as NumPy does."""
    _launch2(_mean_axis1, x.shape[0], x.shape[2], x, out)


def broadcast_axis1(g, H, out):
    """``out = g[:, None, :] / H`` (g [N, F], out [N, H, F]): the gradient of :func:`mean_axis1`."""
    if H:
        _launch2(_broadcast_axis1, out.shape[0] * H, out.shape[2], g, out.dtype.type(H), out)


# --------------------------------------------------------------------------- elementwise, flat
@cuda.jit(cache=True)
def _add(a, b, out):
    i = cuda.grid(1)
    if i < out.shape[0]:
        out[i] = a[i] + b[i]


@cuda.jit(cache=True)
def _mul(a, b, out):
    i = cuda.grid(1)
    if i < out.shape[0]:
        out[i] = a[i] * b[i]


@cuda.jit(cache=True)
def _axpy(alpha, x, y):
    i = cuda.grid(1)
    if i < y.shape[0]:
        y[i] += alpha * x[i]


@cuda.jit(cache=True)
def _scale(x, alpha, out):
    i = cuda.grid(1)
    if i < out.shape[0]:
        out[i] = alpha * x[i]


@cuda.jit(cache=True)
def _relu_forward(x, out):
    i = cuda.grid(1)
    if i < out.shape[0]:
        zero = x.dtype.type(0)
        v = x[i]
        out[i] = v if v > zero else zero


@cuda.jit(cache=True)
def _relu_backward(g, y, out):
    i = cuda.grid(1)
    if i < out.shape[0]:
        zero = y.dtype.type(0)
        one = y.dtype.type(1)
        out[i] = g[i] * (one if y[i] > zero else zero)


@cuda.jit(cache=True)
def _elu_forward(x, alpha, out, deriv):
    i = cuda.grid(1)
    if i < out.shape[0]:
        v = x[i]
        neg = alpha * math.expm1(v)
        out[i] = v if v > 0 else neg
        deriv[i] = x.dtype.type(1) if v > 0 else neg + alpha


@cuda.jit(cache=True)
def _leaky_forward(x, slope, out, deriv):
    i = cuda.grid(1)
    if i < out.shape[0]:
        v = x[i]
        d = x.dtype.type(1) if v > 0 else slope
        deriv[i] = d
        out[i] = v * d


_ROW_BLOCK = 32 if SIM else 128  # threads per block of the row kernels: a row per warp
_ROW_SCRATCH = scratch_size(_ROW_BLOCK)


@cuda.jit(device=True, inline=True)
def _row_dot(a, b, r, lane, scratch, w):
    """Σ_t a[r, t] b[r, t] in float64 over the warp's lanes (columns lane, lane + 32, ...), on every lane; 0 for
    a row past the end. Every lane of the block calls it (the simulator's reductions are block-wide)."""
    s = 0.0
    if r < a.shape[0]:
        for t in range(lane, a.shape[1], 32):
            s += float64(a[r, t]) * float64(b[r, t])
    return warp_sum(s, scratch, lane, w)


@cuda.jit(cache=True)
def _l2_rows_forward(x, eps, y, denom, proj_on):
    """Warp ``r`` scales row ``r`` of ``x`` [R, F] by ``denom[r] = dtype(max(‖x_r‖, eps))`` (the norm summed in
    float64); ``proj_on[r] = 0`` where the norm is below ``eps`` (the backward drops the projection), else 1."""
    scratch = cuda.shared.array(_ROW_SCRATCH, float64)
    r = cuda.grid(1) // 32
    lane = cuda.threadIdx.x % 32
    w = cuda.threadIdx.x // 32
    R, F = x.shape
    s = _row_dot(x, x, r, lane, scratch, w)
    if r < R:
        norm = math.sqrt(s)
        d = x.dtype.type(eps if norm < eps else norm)  # np.maximum: a NaN norm stays NaN
        for t in range(lane, F, 32):
            y[r, t] = x[r, t] / d
        if lane == 0:
            denom[r] = d
            proj_on[r] = x.dtype.type(0) if norm < eps else x.dtype.type(1)


@cuda.jit(cache=True)
def _l2_rows_backward(g, y, denom, proj_on, dx):
    """``dx_r = (g_r - y_r (y_r·g_r)) / denom[r]``, the dot summed in float64 and rounded to the dtype (0 where
    ``proj_on[r]`` is 0); a warp per row."""
    scratch = cuda.shared.array(_ROW_SCRATCH, float64)
    r = cuda.grid(1) // 32
    lane = cuda.threadIdx.x % 32
    w = cuda.threadIdx.x // 32
    R, F = y.shape
    s = _row_dot(g, y, r, lane, scratch, w)
    if r < R:
        proj = y.dtype.type(s) if proj_on[r] != 0 else y.dtype.type(0)
        d = denom[r]
        for t in range(lane, F, 32):
            dx[r, t] = (g[r, t] - y[r, t] * proj) / d


def _launch_rows(kernel, rows, *args):
    if rows:
        kernel[-(-32 * rows // _ROW_BLOCK), _ROW_BLOCK](*args)


def _launch1(kernel, n, *args):
    if n:
        kernel[_grid1(n)](*args)


def add(a, b, out):
    """``out = a + b`` (1-d, equal sizes); ``out`` may alias ``a`` or ``b``."""
    _launch1(_add, out.shape[0], a, b, out)


def mul(a, b, out):
    """``out = a * b`` (1-d, equal sizes); ``out`` may alias ``a`` or ``b``."""
    _launch1(_mul, out.shape[0], a, b, out)


def axpy(alpha, x, y):
    """``y += alpha * x`` (1-d; ``alpha`` a Python float, taken in the arrays' dtype)."""
    _launch1(_axpy, y.shape[0], y.dtype.type(alpha), x, y)


def scale(x, alpha, out):
    """``out = alpha * x`` (1-d; ``alpha`` taken in the arrays' dtype); ``out`` may be ``x``."""
    _launch1(_scale, out.shape[0], x, out.dtype.type(alpha), out)


def relu_forward(x, out):
    """``out = x if x > 0 else 0`` (1-d; NaN gives 0); ``out`` may be ``x``."""
    _launch1(_relu_forward, out.shape[0], x, out)


def relu_backward(g, y, out):
    """``out = g * (y > 0)`` (1-d, y the forward output; a product: a non-finite g where y > 0 stays)."""
    _launch1(_relu_backward, out.shape[0], g, y, out)


def elu_forward(x, alpha, out, deriv):
    """``out = x if x > 0 else alpha * expm1(x)``; ``deriv = 1 if x > 0 else alpha * expm1(x) + alpha`` (1-d)."""
    _launch1(_elu_forward, out.shape[0], x, out.dtype.type(alpha), out, deriv)


def leaky_forward(x, slope, out, deriv):
    """``deriv = 1 if x > 0 else dtype(slope)``, ``out = x * deriv`` (1-d; NaN gives NaN), bit for bit."""
    _launch1(_leaky_forward, out.shape[0], x, out.dtype.type(slope), out, deriv)


def l2_rows_forward(x, eps, y, denom, proj_on):
    """Rows of ``x`` [R, F] to unit norm: ``y = x / denom``, ``denom`` [R] = ``max(‖x_r‖, eps)`` in the dtype,
    ``proj_on`` [R] = 0 where ``‖x_r‖ < eps`` else 1 (for :func:`l2_rows_backward`)."""
    _launch_rows(_l2_rows_forward, x.shape[0], x, float(eps), y, denom, proj_on)


def l2_rows_backward(g, y, denom, proj_on, dx):
    """``dx = (g - y (y·g) proj_on) / denom`` per row (the twin of ``fastgnn.autograd.l2_normalize``'s backward)."""
    _launch_rows(_l2_rows_backward, y.shape[0], g, y, denom, proj_on, dx)


# --------------------------------------------------------------------------- column sums
@cuda.jit(cache=True)
def _column_partials(G, parts):
    """parts[p, j] = Σ G[i, j] over rows i = p * CS_TY + t + s * P * CS_TY (t < CS_TY, P = gridDim.y), in
    float64: each thread sums its rows in order, then a fixed tree over the block's CS_TY rows."""
    tx = cuda.threadIdx.x
    ty = cuda.threadIdx.y
    j = cuda.blockIdx.x * CS_TX + tx
    p = cuda.blockIdx.y
    buf = cuda.shared.array((CS_TY, CS_TX), float64)
    acc = 0.0
    if j < G.shape[1]:
        for i in range(p * CS_TY + ty, G.shape[0], cuda.gridDim.y * CS_TY):
            acc += G[i, j]
    buf[ty, tx] = acc
    cuda.syncthreads()
    step = CS_TY // 2
    while step > 0:
        if ty < step:
            buf[ty, tx] += buf[ty + step, tx]
        cuda.syncthreads()
        step //= 2
    if ty == 0 and j < G.shape[1]:
        parts[p, j] = buf[0, tx]


@cuda.jit(cache=True)
def _column_finish(parts, out):
    j = cuda.grid(1)
    if j < out.shape[1]:
        s = 0.0
        for p in range(parts.shape[0]):
            s += parts[p, j]
        out[0, j] = s


def column_parts(n):
    """Row parts (rows of the float64 scratch) :func:`column_sums` uses for ``n`` rows."""
    return max(1, min(CS_PARTS, -(-n // CS_MIN_ROWS)))


def column_sums(G, out, scratch=None):
    """``out = G.sum(axis=0, keepdims=True)`` (G [N, F], out [1, F]) in float64, deterministic.

    ``scratch``: optional float64 device array of at least ``column_parts(N) * F`` elements, to reuse across
    calls (allocated here otherwise). N = 0 writes zeros."""
    n, f = G.shape
    if f == 0:
        return
    P = column_parts(n)
    if scratch is None:
        scratch = cuda.device_array(P * f, np.float64)
    parts = scratch.reshape(-1)[:P * f].reshape(P, f)
    _column_partials[(-(-f // CS_TX), P), (CS_TX, CS_TY)](G, parts)
    _launch1(_column_finish, f, parts, out)


# --------------------------------------------------------------------------- along one axis
# An array reshaped to [P, L, Q] (P: the dimensions before the axis, L: the axis, Q: those after it); a "line"
# is x[p, :, q]. One thread per line (or per entry for the spreads and copies), sums in float64 in axis order.
@cuda.jit(device=True, inline=True)
def _line(shape):
    """``(p, q)``: this thread's line ``x[p, :, q]`` of a [P, L, Q] array (Q > 0); ``p >= P`` past the last."""
    t = cuda.grid(1)
    p = t // shape[2]
    return p, t - p * shape[2]


@cuda.jit(device=True, inline=True)
def _entry(shape):
    """``(p, l, q)``: this thread's entry of a [P, L, Q] array (L, Q > 0); ``p >= P`` past the last."""
    t = cuda.grid(1)
    lq = shape[1] * shape[2]
    p = t // lq
    r = t - p * lq
    l = r // shape[2]
    return p, l, r - l * shape[2]


@cuda.jit(cache=True)
def _axis_reduce(x, div, out):
    """out[p, q] = (Σ_l x[p, l, q]) / div, summed in float64 in axis order and rounded once."""
    p, q = _line(x.shape)
    if p >= x.shape[0]:
        return
    s = 0.0
    for l in range(x.shape[1]):
        s += x[p, l, q]
    out[p, q] = s / div


@cuda.jit(cache=True)
def _axis_spread(g, div, dx):
    """dx[p, l, q] = g[p, q] / div in the dtype (``div`` of dx's dtype)."""
    p, l, q = _entry(dx.shape)
    if p < dx.shape[0]:
        dx[p, l, q] = g[p, q] / div


@cuda.jit(cache=True)
def _axis_softmax(x, log, y):
    """Per line: ``m = max`` (NaN if any entry is NaN, as np.max), ``s = Σ exp(x - m)`` in float64, then
    ``y = exp(x - m) / s`` or, with ``log``, ``y = (x - m) - log(s)``."""
    p, q = _line(x.shape)
    if p >= x.shape[0]:
        return
    L = x.shape[1]
    m = x[p, 0, q]
    for l in range(1, L):
        v = x[p, l, q]
        if v > m or v != v:
            m = v
    s = 0.0
    for l in range(L):
        s += math.exp(float64(x[p, l, q] - m))
    if log:
        ls = math.log(s)
        for l in range(L):
            y[p, l, q] = float64(x[p, l, q] - m) - ls
    else:
        for l in range(L):
            y[p, l, q] = math.exp(float64(x[p, l, q] - m)) / s


@cuda.jit(cache=True)
def _axis_softmax_back(g, y, log, dx):
    """Per line: softmax ``dx = y (g - Σ g y)``; log-softmax ``dx = g - exp(y) Σ g`` (sums in float64)."""
    p, q = _line(y.shape)
    if p >= y.shape[0]:
        return
    L = y.shape[1]
    s = 0.0
    for l in range(L):
        s += float64(g[p, l, q]) if log else float64(g[p, l, q]) * float64(y[p, l, q])
    for l in range(L):
        if log:
            dx[p, l, q] = g[p, l, q] - math.exp(float64(y[p, l, q])) * s
        else:
            dx[p, l, q] = y[p, l, q] * (g[p, l, q] - s)


@cuda.jit(cache=True)
def _copy_block(src, dst, off, into):
    """``into``: dst[p, off + l, q] = src[p, l, q]; else src[p, l, q] = dst[p, off + l, q] (one thread each)."""
    p, l, q = _entry(src.shape)
    if p >= src.shape[0]:
        return
    if into:
        dst[p, off + l, q] = src[p, l, q]
    else:
        src[p, l, q] = dst[p, off + l, q]


def axis_reduce(x, div, out):
    """``out = x.sum(axis=1) / div`` for x [P, L, Q], out [P, Q] (``div`` a float; float64 sums)."""
    _launch1(_axis_reduce, out.size, x, float(div), out)


def axis_spread(g, div, dx):
    """``dx = broadcast(g[:, None, :] / dtype(div))`` for g [P, Q], dx [P, L, Q]."""
    _launch1(_axis_spread, dx.size, g, dx.dtype.type(div), dx)


def axis_softmax(x, log, y):
    """(Log-)softmax of x [P, L, Q] along its middle axis into y (L >= 1)."""
    _launch1(_axis_softmax, x.shape[0] * x.shape[2], x, bool(log), y)


def axis_softmax_back(g, y, log, dx):
    """The backward of :func:`axis_softmax` from its output ``y`` and the gradient ``g`` (all [P, L, Q])."""
    _launch1(_axis_softmax_back, y.shape[0] * y.shape[2], g, y, bool(log), dx)


def copy_block(src, dst, off, into=True):
    """``dst[:, off:off + L, :] = src`` (``into``) or ``src[...] = dst[:, off:off + L, :]`` (src [P, L, Q])."""
    _launch1(_copy_block, src.size, src, dst, np.int64(off), bool(into))


# --------------------------------------------------------------------------- embedding gradient
@cuda.jit(cache=True)
def _grouped_row_sums(g, pos, starts, out):
    """out[r, j] = Σ g[pos[k], j] over k in starts[r]:starts[r + 1], added in that order to 0 in the dtype."""
    j, r = grid2()
    if r < out.shape[0] and j < out.shape[1]:
        s = out.dtype.type(0)
        for k in range(starts[r], starts[r + 1]):
            s += g[pos[k], j]
        out[r, j] = s


def grouped_row_sums(g, pos, starts, out):
    """Dense ``out`` [N, W] with row ``r`` the sum of the rows ``g[pos[starts[r]:starts[r + 1]]]`` in that order
    (``arrays.sort_keys`` and ``key_starts`` of the ids: ``np.add.at(zeros, ids, g)`` bit for bit)."""
    _launch2(_grouped_row_sums, out.shape[0], out.shape[1], g, pos, starts, out)
