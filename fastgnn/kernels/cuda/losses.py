"""CUDA twins of ``kernels/cpu/losses.py``.

Each ``<name>`` here is a host function with the CPU kernel's signature: it copies the numpy arguments to
the device, launches ``_<name>`` (the ``cuda.jit`` kernel, same argument order, plus scratch arrays where
the CPU version keeps per-thread buffers) and copies the outputs back into the caller's numpy arrays.
Device inputs skip those copies: ``fastgnn/losses/_device.py`` launches the ``_<name>`` kernels itself on
device arrays with :func:`launch1` / :func:`launch2`.
Every output element is written by one thread, so results do not depend on the launch shape.
In-batch InfoNCE has its own entries, :func:`info_nce_inbatch` (host arrays) and
:func:`info_nce_inbatch_device`: GEMMs for the logits and the gradients, row kernels in between.
"""
import math

import numpy as np
from numba import cuda, float64, int64, uint64

from .arrays import full, launch_range_scan
from .autograd import _row_dot
from .grid import grid2, shape2
from .mathfn import mul_rn
from .mathfn import sigmoid as _sigmoid
from .mathfn import softplus as _softplus
from .rng import uniform
from .rows import GROUP, add4, cols4, gather4, gather_sum4, launch_rows, store4
from .warp import SIM, scratch_size, warp_max, warp_sum, warp_sum2, warp_sync

EPS = 1e-8
THREADS = 128  # threads per block (tests lower it so tiny inputs still span several blocks)
TILE = (32, 4)  # (columns, rows) per block for the 2-d kernels


def _dev(x):
    return cuda.to_device(np.ascontiguousarray(x)) if isinstance(x, np.ndarray) else x


def launch1(kernel, n, *args):
    """Launch ``kernel`` on ``n`` threads (blocks of THREADS) over device arrays: no copies."""
    if n:
        kernel[(n + THREADS - 1) // THREADS, THREADS](*args)


def launch2(kernel, rows, cols, *args):
    """Launch ``kernel`` on a (cols, rows) grid of TILE blocks over device arrays: no copies."""
    if rows and cols:
        kernel[shape2(cols, rows, TILE), TILE](*args)


def _on_host(launch, args, outputs):
    """``launch(*device copies of args)`` (non-arrays pass as they are); copy ``outputs`` (indices) back."""
    dargs = [_dev(a) for a in args]
    launch(*dargs)
    for q in outputs:
        args[q][...] = dargs[q].copy_to_host()


def _launch1(kernel, n, args, outputs):
    """Launch ``kernel`` on ``n`` threads over device copies of ``args``; copy ``outputs`` (indices) back."""
    if n:
        _on_host(lambda *d: launch1(kernel, n, *d), args, outputs)


def _launch2(kernel, rows, cols, args, outputs):
    """Launch on a (cols, rows) grid of TILE blocks."""
    if rows and cols:
        _on_host(lambda *d: launch2(kernel, rows, cols, *d), args, outputs)


# --------------------------------------------------------------------------- InfoNCE, explicit negatives
WARP_BLOCK = 128  # threads per block of the warp-per-anchor kernels (4 anchors of 32 lanes)
_WARPS = WARP_BLOCK // 32
_WARP_SCRATCH = scratch_size(WARP_BLOCK)
# At most 64 registers a thread (8 blocks of 128 threads an SM: 32 of its 64 warps). ptxas gave the previous
# kernels 96 and 92 registers for float32 (5 blocks, 20 warps an SM), too few warps in flight for kernels that
# wait on random table rows. The simulator's jit takes no launch bounds.
_BOUNDS = {} if SIM else {"launch_bounds": (WARP_BLOCK, 8)}


@cuda.jit(device=True, inline=True)
def _dot_sq(a0, a1, a2, a3, X, j, t0, D, d, q):
    """``d`` and ``q`` plus this lane's four products ``a_c X[j, t0 + 32c]`` and squares ``X[j, t0 + 32c]²``
    (float32 products, float64 sums, in column order; zeros for a row ``j < 0``)."""
    b0, b1, b2, b3 = cols4(X, j, t0, D)
    d += a0 * b0
    d += a1 * b1
    d += a2 * b2
    d += a3 * b3
    q += b0 * b0
    q += b1 * b1
    q += b2 * b2
    q += b3 * b3
    return d, q


@cuda.jit(device=True, inline=True)
def _sim_den(d, q, na, cosine):
    """``(s, den)`` of a row from its dot product ``d`` and squared norm ``q``."""
    den = max(na * math.sqrt(q), EPS) if cosine else 1.0
    return d / den, den


@cuda.jit(device=True, inline=True)
def _fwd_slot(i, k, j, s, den, b2, inv_tau, lead, sbuf, dbuf, nbuf, m, tot, worst):
    """One negative slot of the forward: its buffers, the non-finite mark, the online log-sum-exp."""
    if j >= 0:
        if lead:
            sbuf[i, k + 1] = s
            dbuf[i, k + 1] = den
            nbuf[i, k + 1] = b2
        if not (math.isfinite(s) and math.isfinite(b2)):
            worst = j
        x = mul_rn(s, inv_tau)
        if x > m:
            tot = tot * math.exp(m - x) + 1.0
            m = x
        else:
            tot += math.exp(x - m)
    return m, tot, worst


@cuda.jit(**_BOUNDS)
def _info_nce_fwd_warp(A, P, table, ids, inv_tau, cosine, loss, bad, stats, sbuf, dbuf, nbuf):
    """InfoNCE forward with integer negatives (first half of the twin of the CPU ``info_nce_rows``), 32 threads
    (lanes) per anchor. Lane ``l`` owns columns ``l, l + 32, l + 64, l + 96`` of each block of :data:`.rows.GROUP`
    (one coalesced 128-byte transaction per 32 floats of a row); the lanes' partial dot products (float32
    products, float64 sums in column order) are combined by :func:`~.warp.warp_sum2` (shuffles on a GPU).
    The negative slots go in chunks of 32: lane ``q`` reads the id of slot ``c + q`` (one coalesced load a
    chunk) into shared memory, then the warp takes the chunk's slots four a step, the four rows' loads in flight
    together, and folds them into the log-sum-exp in slot order (accumulated online, rescaled at each new
    maximum). Lane 0 writes the similarities, denominators and squared norms (``sbuf``, ``dbuf``, ``nbuf``:
    ``[B, K + 1]``, positive first), the loss, ``bad[i]`` (a table row whose similarity is not finite, else -1)
    and ``stats[i] = (log-sum-exp, squared anchor norm)``. Launch ``32 * B`` threads (rounded up to whole
    blocks) in blocks of :data:`WARP_BLOCK`; lanes past the last anchor only take part in the reductions."""
    scratch = cuda.shared.array(_WARP_SCRATCH, float64)
    slot_ids = cuda.shared.array((_WARPS, 32), int64)
    i = cuda.grid(1) // 32
    lane = cuda.threadIdx.x % 32
    w = cuda.threadIdx.x // 32
    B, D = A.shape
    K = ids.shape[1]
    active = i < B
    ii = i if active else 0
    na2 = 0.0
    dp = 0.0
    qp = 0.0
    for c0 in range(0, D, GROUP):
        t0 = c0 + lane
        a0, a1, a2, a3 = cols4(A, ii, t0, D)
        na2 += a0 * a0
        na2 += a1 * a1
        na2 += a2 * a2
        na2 += a3 * a3
        dp, qp = _dot_sq(a0, a1, a2, a3, P, ii, t0, D, dp, qp)
    na2, dp = warp_sum2(na2, dp, scratch, lane, w)
    qp = warp_sum(qp, scratch, lane, w)
    na = math.sqrt(na2)
    s, den = _sim_den(dp, qp, na, cosine)
    lead = active and lane == 0
    if lead:
        sbuf[i, 0] = s
        dbuf[i, 0] = den
        nbuf[i, 0] = qp
    x0 = mul_rn(s, inv_tau)
    m = x0
    tot = 1.0
    worst = -1
    for c in range(0, K, 32):
        q = c + lane
        slot_ids[w, lane] = ids[i, q] if active and q < K else -1
        warp_sync()
        for kk in range(0, min(32, K - c), 4):  # ids past K read as -1
            j1 = slot_ids[w, kk]
            j2 = slot_ids[w, kk + 1]
            j3 = slot_ids[w, kk + 2]
            j4 = slot_ids[w, kk + 3]
            d1 = q1 = d2 = q2 = d3 = q3 = d4 = q4 = 0.0
            for c0 in range(0, D, GROUP):
                t0 = c0 + lane
                a0, a1, a2, a3 = cols4(A, ii, t0, D)
                d1, q1 = _dot_sq(a0, a1, a2, a3, table, j1, t0, D, d1, q1)
                d2, q2 = _dot_sq(a0, a1, a2, a3, table, j2, t0, D, d2, q2)
                d3, q3 = _dot_sq(a0, a1, a2, a3, table, j3, t0, D, d3, q3)
                d4, q4 = _dot_sq(a0, a1, a2, a3, table, j4, t0, D, d4, q4)
            d1, d2 = warp_sum2(d1, d2, scratch, lane, w)
            q1, q2 = warp_sum2(q1, q2, scratch, lane, w)
            d3, d4 = warp_sum2(d3, d4, scratch, lane, w)
            q3, q4 = warp_sum2(q3, q4, scratch, lane, w)
            k = c + kk
            s, den = _sim_den(d1, q1, na, cosine)
            m, tot, worst = _fwd_slot(i, k, j1, s, den, q1, inv_tau, lead, sbuf, dbuf, nbuf, m, tot, worst)
            s, den = _sim_den(d2, q2, na, cosine)
            m, tot, worst = _fwd_slot(i, k + 1, j2, s, den, q2, inv_tau, lead, sbuf, dbuf, nbuf, m, tot, worst)
            s, den = _sim_den(d3, q3, na, cosine)
            m, tot, worst = _fwd_slot(i, k + 2, j3, s, den, q3, inv_tau, lead, sbuf, dbuf, nbuf, m, tot, worst)
            s, den = _sim_den(d4, q4, na, cosine)
            m, tot, worst = _fwd_slot(i, k + 3, j4, s, den, q4, inv_tau, lead, sbuf, dbuf, nbuf, m, tot, worst)
        warp_sync()  # every lane has read the chunk's ids before the next chunk overwrites them
    if lead:
        bad[i] = worst
        lse = m + math.log(tot)
        loss[i] = lse - x0
        stats[i, 0] = lse
        stats[i, 1] = na2


@cuda.jit(device=True, inline=True)
def _term_into(out, j, t0, D, u, v, a0, a1, a2, a3, b0, b1, b2, b3):
    """Add the table-row term ``u A[i] - v table[j]`` over this lane's four columns into ``out[j]`` (atomics)."""
    if t0 < D:
        cuda.atomic.add(out, (j, t0), u * a0 - v * b0)
    if t0 + 32 < D:
        cuda.atomic.add(out, (j, t0 + 32), u * a1 - v * b1)
    if t0 + 64 < D:
        cuda.atomic.add(out, (j, t0 + 64), u * a2 - v * b2)
    if t0 + 96 < D:
        cuda.atomic.add(out, (j, t0 + 96), u * a3 - v * b3)


@cuda.jit(**_BOUNDS)
def _info_nce_bwd_warp(A, P, table, ids, inv_tau, cosine, scale, stats, sbuf, dbuf, nbuf, status, gA, gP, coef_u,
                       coef_v, out):
    """InfoNCE backward after :func:`_info_nce_fwd_warp`, 32 lanes per anchor: the anchor's and positive's
    gradients (accumulated in the CPU kernel's order) and, per negative slot, either the coefficients ``coef_u``,
    ``coef_v`` of its table-row term ``u A[i] - v table[j]`` (when ``out`` has no rows) or that term added into
    ``out[j]`` with atomics (``out`` a dense ``[N, D]`` table gradient: atomics because rows can collide; where
    they do, the order of the additions is not fixed). The columns go in blocks of :data:`.rows.GROUP`, lane ``l``
    owning columns ``l, l + 32, l + 64, l + 96`` of a block: the anchor's row and its gradient stay in
    registers while the slots stream past, so a slot costs the loads of its table row and no read-modify-write
    of ``gA`` in memory (each partial sum is rounded to ``gA``'s dtype, as the stored one was). The negative
    slots go in chunks of 32: lane ``q`` computes slot ``c + q``'s coefficients (its exponential, the
    coalesced ``coef_u``/``coef_v`` stores) into shared memory, then the warp takes the chunk's slots two a
    step, both rows' loads in flight together. Does nothing once ``status[1] >= 0`` (the forward met a
    non-finite table row: the caller raises, and ``out`` stays untouched). Launch like the forward."""
    slot_j = cuda.shared.array((_WARPS, 32), int64)
    slot_u = cuda.shared.array((_WARPS, 32), float64)
    slot_v = cuda.shared.array((_WARPS, 32), float64)
    slot_w = cuda.shared.array((_WARPS, 32), float64)
    if status[1] >= 0:
        return
    i = cuda.grid(1) // 32
    lane = cuda.threadIdx.x % 32
    w = cuda.threadIdx.x // 32
    B, D = A.shape
    K = ids.shape[1]
    if i >= B:  # a whole warp: the chunk loop's warp barriers below are the warp's own
        return
    into = out.shape[0] > 0
    lse = stats[i, 0]
    na2 = stats[i, 1]
    sc = scale[i] * inv_tau
    cast = gA.dtype.type
    zero = cast(0)
    for c0 in range(0, max(D, 1), GROUP):  # one block without columns still writes the coefficients
        t0 = c0 + lane
        a0, a1, a2, a3 = cols4(A, i, t0, D)
        # the positive (slot 0)
        s = sbuf[i, 0]
        den = dbuf[i, 0]
        gk = sc * (math.exp(mul_rn(s, inv_tau) - lse) - 1.0)
        u = gk / den
        v = 0.0
        wa = 0.0
        if cosine and den > EPS:
            v = gk * s / nbuf[i, 0]
            wa += gk * s / na2
        b0, b1, b2, b3 = cols4(P, i, t0, D)
        store4(gP, i, t0, D, u * a0 - v * b0, u * a1 - v * b1, u * a2 - v * b2, u * a3 - v * b3)
        g0 = cast(zero + u * b0)
        g1 = cast(zero + u * b1)
        g2 = cast(zero + u * b2)
        g3 = cast(zero + u * b3)
        for c in range(0, K, 32):
            q = c + lane
            j = ids[i, q] if q < K else -1
            u = 0.0
            v = 0.0
            wq = 0.0
            if j >= 0:
                s = sbuf[i, q + 1]
                den = dbuf[i, q + 1]
                gk = sc * math.exp(mul_rn(s, inv_tau) - lse)
                u = gk / den
                if cosine and den > EPS:
                    v = gk * s / nbuf[i, q + 1]
                    wq = gk * s / na2
            if q < K and c0 == 0 and not into:
                coef_u[i, q] = u
                coef_v[i, q] = v
            slot_j[w, lane] = j
            slot_u[w, lane] = u
            slot_v[w, lane] = v
            slot_w[w, lane] = wq
            warp_sync()
            for kk in range(0, min(32, K - c), 2):  # slots past K read as -1
                j1 = slot_j[w, kk]
                j2 = slot_j[w, kk + 1]
                b0, b1, b2, b3 = cols4(table, j1, t0, D)
                e0, e1, e2, e3 = cols4(table, j2, t0, D)
                if j1 >= 0:
                    u = slot_u[w, kk]
                    wa += slot_w[w, kk]
                    if into:
                        _term_into(out, j1, t0, D, u, slot_v[w, kk], a0, a1, a2, a3, b0, b1, b2, b3)
                    g0 = cast(g0 + u * b0)
                    g1 = cast(g1 + u * b1)
                    g2 = cast(g2 + u * b2)
                    g3 = cast(g3 + u * b3)
                if j2 >= 0:
                    u = slot_u[w, kk + 1]
                    wa += slot_w[w, kk + 1]
                    if into:
                        _term_into(out, j2, t0, D, u, slot_v[w, kk + 1], a0, a1, a2, a3, e0, e1, e2, e3)
                    g0 = cast(g0 + u * e0)
                    g1 = cast(g1 + u * e1)
                    g2 = cast(g2 + u * e2)
                    g3 = cast(g3 + u * e3)
            warp_sync()  # every lane has read the chunk before the next chunk overwrites it
        store4(gA, i, t0, D, g0 - wa * a0, g1 - wa * a1, g2 - wa * a2, g3 - wa * a3)


def info_nce_scratch(B, K):
    """Device buffers the two InfoNCE kernels pass between them for ``B`` anchors and ``K`` negative slots:
    ``stats [B, 2]`` and ``sbuf, dbuf, nbuf [B, K + 1]`` (float64)."""
    return [cuda.device_array((B, 2), np.float64)] + [cuda.device_array((B, K + 1), np.float64) for _ in range(3)]


def launch_info_nce_rows(A, P, table, ids, inv_tau, cosine, scale, loss, gA, gP, coef_u, coef_v, bad, scratch,
                         out=None, guard=False, status=None):
    """The two InfoNCE kernels over device arrays: the CPU kernel's arguments, then :func:`info_nce_scratch`'s
    buffers. With ``out`` (a dense ``[N, D]`` table gradient) the backward adds into it by atomics instead of
    writing the coefficients. With ``guard`` the backward is skipped on the device when the forward marked a
    non-finite table row. Returns the status pair (``status[1]``: the highest such row, -1 if none; computed
    only with ``guard``, else -1): a new device array, or ``status`` (int64, 2 entries, both set to -1 by the
    caller) when given, e.g. part of a buffer that is copied back with the loss in one transfer.

    On an H200 (B=65,536, K=64, D=128, N=10^7; ``asv_benchmarks/GPU_RESULTS.md``, Runs 4 and 5) the two kernels
    take 2.67 ms with the coefficients out and 3.77 ms adding into a dense buffer; before their launch bounds and
    chunks of 32 slots they took 6.44 and 7.19 ms."""
    if status is None:
        status = full(2, -1, np.int64)
    B = A.shape[0]
    if not B:
        return status
    stats, sbuf, dbuf, nbuf = scratch
    grid = ((32 * B + WARP_BLOCK - 1) // WARP_BLOCK, WARP_BLOCK)
    _info_nce_fwd_warp[grid](A, P, table, ids, inv_tau, cosine, loss, bad, stats, sbuf, dbuf, nbuf)
    if guard:
        launch_range_scan(bad, -1, 0, status, 0)
    if out is None:
        out = cuda.device_array((0, A.shape[1]), A.dtype)
    _info_nce_bwd_warp[grid](A, P, table, ids, inv_tau, cosine, scale, stats, sbuf, dbuf, nbuf, status, gA, gP,
                             coef_u, coef_v, out)
    return status


def info_nce_rows(A, P, table, ids, inv_tau, cosine, scale, loss, gA, gP, coef_u, coef_v, bad):
    B, K = ids.shape
    if K == 0:  # size-0 arrays cannot be copied to the device: no negatives, a zero-width view of a spare column
        spare = [np.zeros((B, 1), a.dtype) for a in (ids, coef_u, coef_v)]
        spare[0][:] = -1
        info_nce_rows(A, P, table, spare[0], inv_tau, cosine, scale, loss, gA, gP, spare[1], spare[2], bad)
        return
    args = [A, P, table, ids, inv_tau, cosine, scale, loss, gA, gP, coef_u, coef_v, bad]
    dargs = [_dev(x) for x in args]
    launch_info_nce_rows(*dargs, info_nce_scratch(B, K))
    for q in (7, 8, 9, 10, 11, 12):
        args[q][...] = dargs[q].copy_to_host()


@cuda.jit(cache=True)
def _table_grad_grouped(A, table, rows, starts, major, coef_u, coef_v, out, into_table):
    """Row ``r`` of the grouped table gradient: ``Σ_q coef_u[q] A[major[q]] - (Σ_q coef_v[q]) table[rows[r]]`` over
    the row's entries ``q`` in ``starts[r]:starts[r + 1]``, in that order, in ``A``'s dtype (coefficients rounded
    to it, ``Σ coef_v`` summed in float64 and then rounded, as the CPU kernel does); into ``out[r]``, or added into
    ``out[rows[r]]`` with ``into_table``. A warp per (row, block of 128 columns) (:mod:`.rows`), two entries a
    step (:func:`.rows.gather_sum4`)."""
    _, r = grid2()
    if r >= rows.shape[0]:
        return
    D = A.shape[1]
    t0 = cuda.blockIdx.x * GROUP + cuda.threadIdx.x
    q = starts[r]
    end = starts[r + 1]
    zero = A.dtype.type(0)
    a0, a1, a2, a3 = gather_sum4(A, major, coef_u, True, coef_u, False, q, end, t0, D, zero, zero, zero, zero)
    vsum = 0.0
    for p in range(q, end):
        vsum += coef_v[p]
    vt = A.dtype.type(vsum)
    j = uint64(rows[r])
    b0, b1, b2, b3 = gather4(table, j, t0, D)
    v0, v1, v2, v3 = a0 - vt * b0, a1 - vt * b1, a2 - vt * b2, a3 - vt * b3
    if into_table:
        add4(out, j, t0, D, v0, v1, v2, v3)
    else:
        store4(out, r, t0, D, v0, v1, v2, v3)


def launch_table_grad_grouped(A, table, rows, starts, major, coef_u, coef_v, out, into_table):
    """Launch :func:`_table_grad_grouped` on device arrays (a warp per row and block of 128 columns)."""
    launch_rows(_table_grad_grouped, rows.shape[0], A.shape[1], _WARPS, A, table, rows, starts, major, coef_u,
                coef_v, out, into_table)


def table_grad_grouped(A, table, rows, starts, major, coef_u, coef_v, out, into_table):
    _on_host(launch_table_grad_grouped, [A, table, rows, starts, major, coef_u, coef_v, out, into_table], (7,))


@cuda.jit
def _dense_slot_grad(A, N, coef_u, coef_v, gN):
    t, e = grid2()
    B, K, D = N.shape
    if e >= B * K or t >= D:
        return
    i = e // K
    k = e % K
    gN[i, k, t] = coef_u[i, k] * A[i, t] - coef_v[i, k] * N[i, k, t]


def dense_slot_grad(A, N, coef_u, coef_v, gN):
    B, K, D = N.shape
    _launch2(_dense_slot_grad, B * K, D, [A, N, coef_u, coef_v, gN], (4,))


# --------------------------------------------------------------------------- InfoNCE, in-batch (GEMMs)
# The device twin of ``losses/contrastive.py:_inbatch_exact``: the raw dots S = A Pᵀ by the register-tiled GEMM
# (``autograd.matmul``, in the inputs' dtype, as BLAS does on the CPU path), per-row log-sum-exps over S (a warp per
# row) and per-column ones (a thread per column and part of the rows, parts merged in order), the coefficients
# U = dL/dS (scaled back through the cosine's denominators) written over S, then two GEMMs, gA = U P and
# gP = Uᵀ A, and the cosine's radial terms (``autograd.add_scaled_rows``). S is taken in chunks of rows (at most
# IB_CHUNK_BYTES each): a pass over the chunks for the statistics, a second for the gradients (with one chunk, S is
# kept between them). Every sum has a fixed order (warp trees per row; per column, rows in order within a part, then
# parts and chunks in order): the same bits on every run.
IB_CHUNK_BYTES = 1 << 31  # bytes of one chunk of S (tests lower it: several chunks)
IB_BLOCK = 32 if SIM else 128  # threads per block of the row kernels: a row per warp
IB_PARTS = 64  # most row parts of the column kernels (a thread per column and part; parts merged in order)
IB_PART_ROWS = 64  # fewest rows per part
_IB_SCRATCH = scratch_size(IB_BLOCK)


@cuda.jit
def _norms_sq(X, out):
    """``out[i] = (‖X_i‖², ‖X_i‖)`` in float64: the root taken once a row, not once a pair by the kernels below
    (the same bits: a square root is correctly rounded)."""
    i = cuda.grid(1)
    if i < X.shape[0]:
        acc = 0.0
        for t in range(X.shape[1]):
            acc += float64(X[i, t]) * float64(X[i, t])
        out[i, 0] = acc
        out[i, 1] = math.sqrt(acc)


@cuda.jit(device=True, inline=True)
def _ib_den(na2, np2, i, j):
    """``‖a_i‖ ‖p_j‖`` from :func:`_norms_sq`'s rows."""
    return na2[i, 1] * np2[j, 1]


@cuda.jit(device=True, inline=True)
def _ib_g(s, i, j, inv_tau, row_lse, col_lse, row_scale, col_scale, symmetric):
    """dL/ds_ij: ``(row_scale_i (softmax_row - I) + col_scale_j (softmax_col - I)) / tau``."""
    z = mul_rn(s, inv_tau)
    g = row_scale[i] * math.exp(z - row_lse[i])
    if symmetric:
        g += col_scale[j] * math.exp(z - col_lse[j])
    if i == j:
        g -= row_scale[i]
        if symmetric:
            g -= col_scale[j]
    return g * inv_tau


@cuda.jit(device=True, inline=True)
def _warp_row():
    """``(row, lane, warp of the block)`` of this thread in a launch of a warp per row."""
    return cuda.grid(1) // 32, cuda.threadIdx.x % 32, cuda.threadIdx.x // 32


@cuda.jit
def _ib_rows(S, r0, na2, np2, inv_tau, cosine, row_lse, row_loss, zdiag):
    """Warp il: row i = r0 + il of the chunk. S's raw dots become similarities (divided by ``max(|a_i| |p_j|,
    EPS)`` for the cosine); then the row's log-sum-exp of s/τ (max, then the shifted sum), its loss and s_ii/τ."""
    scratch = cuda.shared.array(_IB_SCRATCH, float64)
    il, lane, w = _warp_row()
    if il >= S.shape[0]:
        return
    i = r0 + il
    B = S.shape[1]
    m = -math.inf
    for j in range(lane, B, 32):
        if cosine:
            S[il, j] = float64(S[il, j]) / max(_ib_den(na2, np2, i, j), EPS)
        z = mul_rn(float64(S[il, j]), inv_tau)  # the stored similarity, as on the CPU path
        if z > m or z != z:
            m = z
    m = warp_max(m, scratch, lane, w)
    tot = 0.0
    for j in range(lane, B, 32):
        tot += math.exp(mul_rn(float64(S[il, j]), inv_tau) - m)
    tot = warp_sum(tot, scratch, lane, w)
    if lane == 0:
        zi = mul_rn(float64(S[il, i]), inv_tau)
        row_lse[i] = m + math.log(tot)
        row_loss[i] = row_lse[i] - zi
        zdiag[i] = zi


@cuda.jit
def _ib_cols(S, inv_tau, per, pm, pt):
    """Column j, part k (a thread; a warp reads consecutive columns): the log-sum-exp of s/τ over the chunk's
    rows k·per .. (k+1)·per - 1, in order, as (max, shifted sum) in pm[k, j], pt[k, j]."""
    j, k = grid2()
    if j >= S.shape[1] or k >= pm.shape[0]:
        return
    m = -math.inf
    t = 0.0
    for il in range(k * per, min(S.shape[0], (k + 1) * per)):
        z = mul_rn(float64(S[il, j]), inv_tau)
        if z > m:
            t = t * math.exp(m - z) + 1.0
            m = z
        else:
            t += math.exp(z - m)
    pm[k, j] = m
    pt[k, j] = t


@cuda.jit
def _ib_cols_merge(pm, pt, col_m, col_t):
    """Column j: the running (max, shifted sum) merged with each part's, parts in order."""
    j = cuda.grid(1)
    if j >= col_m.shape[0]:
        return
    m = col_m[j]
    t = col_t[j]
    for k in range(pm.shape[0]):
        if pt[k, j] > 0.0:
            mk = pm[k, j]
            if mk > m:
                t = t * math.exp(m - mk) + pt[k, j]
                m = mk
            else:
                t += pt[k, j] * math.exp(mk - m)
    col_m[j] = m
    col_t[j] = t


@cuda.jit
def _ib_col_finish(col_m, col_t, zdiag, col_lse, col_loss):
    j = cuda.grid(1)
    if j < col_m.shape[0]:
        col_lse[j] = col_m[j] + math.log(col_t[j])
        col_loss[j] = col_lse[j] - zdiag[j]


@cuda.jit
def _ib_col_radial(S, r0, per, na2, np2, inv_tau, row_lse, col_lse, row_scale, col_scale, symmetric, parts):
    """Column j, part k (a thread): parts[k, j] = Σ_i g_ij s_ij / |p_j|² over the part's rows of the chunk with an
    unclamped pair, in order."""
    j, k = grid2()
    if j >= S.shape[1] or k >= parts.shape[0]:
        return
    acc = 0.0
    for il in range(k * per, min(S.shape[0], (k + 1) * per)):
        i = r0 + il
        if _ib_den(na2, np2, i, j) > EPS:
            s = float64(S[il, j])
            acc += _ib_g(s, i, j, inv_tau, row_lse, col_lse, row_scale, col_scale, symmetric) * s / np2[j, 0]
    parts[k, j] = acc


@cuda.jit
def _add_parts(parts, out):
    """out[j] += Σ_k parts[k, j], parts in order."""
    j = cuda.grid(1)
    if j < out.shape[0]:
        acc = out[j]
        for k in range(parts.shape[0]):
            acc += parts[k, j]
        out[j] = acc


@cuda.jit
def _ib_coefficients(S, r0, na2, np2, inv_tau, cosine, row_lse, col_lse, row_scale, col_scale, symmetric, row_v):
    """Warp il: row i = r0 + il. S[il, j] becomes U_ij = g_ij / den_ij (g_ij / EPS for a clamped pair; g_ij for
    dot products) and row_v[i] = Σ_j g_ij s_ij / |a_i|² over the unclamped pairs (cosine)."""
    scratch = cuda.shared.array(_IB_SCRATCH, float64)
    il, lane, w = _warp_row()
    if il >= S.shape[0]:
        return
    i = r0 + il
    rv = 0.0
    for j in range(lane, S.shape[1], 32):
        s = float64(S[il, j])
        g = _ib_g(s, i, j, inv_tau, row_lse, col_lse, row_scale, col_scale, symmetric)
        if cosine:
            den = _ib_den(na2, np2, i, j)
            if den > EPS:
                S[il, j] = g / den
                if na2[i, 0] > 0.0:
                    rv += g * s / na2[i, 0]
            else:
                S[il, j] = g / EPS
        else:
            S[il, j] = g
    rv = warp_sum(rv, scratch, lane, w)
    if lane == 0:
        row_v[i] = rv


def _ib_rows_launch(kernel, rows, *args):
    if rows:
        kernel[-(-32 * rows // IB_BLOCK), IB_BLOCK](*args)


# The fast path, the twin of the CPU's ``_inbatch_fast`` (``losses/contrastive.py``): when S fits in one chunk
# and no pair is clamped, the rows are normalised first, S = Â P̂ᵀ is one GEMM, and each element takes one
# exponential, in S's dtype (float32 S: float32 exp, as the CPU's vectorised exp): the exact path above takes
# six float64 ones. Rows take their own maximum as the shift; the symmetric cosine loss takes the one shift
# 1/τ for rows and columns (logits lie in [-1/τ, 1/τ]), so the column sums come from the same exponentials.
IB_COLUMN_RANGE = 60.0  # the CPU's ``_COLUMN_RANGE``: the fixed shift serves while 2/τ stays within it


@cuda.jit
def _ib_normalize(X, out, norms, lo, slot):
    """Warp i: ``out[i] = X[i] / |X[i]|``, ``norms[i] = |X[i]|`` (float64 sum, a fixed warp tree) and
    ``lo[slot] = min(lo[slot], |X[i]|)`` (the caller takes the fast path only when no pair is clamped; a zero
    row writes zeros, never read then)."""
    scratch = cuda.shared.array(_IB_SCRATCH, float64)
    i, lane, w = _warp_row()
    if i >= X.shape[0]:
        return
    D = X.shape[1]
    nrm = math.sqrt(_row_dot(X, X, i, lane, scratch, w))
    inv = X.dtype.type(1.0 / nrm) if nrm > 0.0 else X.dtype.type(0)
    for t in range(lane, D, 32):
        out[i, t] = X[i, t] * inv
    if lane == 0:
        norms[i] = nrm
        cuda.atomic.min(lo, slot, nrm)


@cuda.jit
def _ib_exp_rows(S, inv_tau, fixed, row_m, row_tot, zdiag):
    """Warp i: ``m_i`` = 1/τ (``fixed``: the one shift) or the row's largest ``z_ij = s_ij / τ``; then ``S[i, j] = e_ij =
    exp(z_ij - m_i)`` in S's dtype, ``row_tot[i] = Σ_j e_ij`` (float64, a fixed warp tree), ``row_m[i] = m_i``,
    ``zdiag[i] = z_ii``."""
    scratch = cuda.shared.array(_IB_SCRATCH, float64)
    i, lane, w = _warp_row()
    if i >= S.shape[0]:
        return
    B = S.shape[1]
    it = S.dtype.type(inv_tau)
    m = inv_tau
    if not fixed:
        m = -math.inf
        for j in range(lane, B, 32):
            z = float64(S[i, j] * it)
            if z > m or z != z:
                m = z
        m = warp_max(m, scratch, lane, w)
    mm = S.dtype.type(m)
    tot = 0.0
    zd = 0.0
    for j in range(lane, B, 32):
        z = S[i, j] * it
        if j == i:
            zd = float64(z)
        e = math.exp(z - mm)
        S[i, j] = e
        tot += float64(e)
    tot, zd = warp_sum2(tot, zd, scratch, lane, w)  # zd: one lane's z_ii plus zeros, exact
    if lane == 0:
        row_m[i] = float64(mm)  # the shift the exponentials took (float32 S: 1/τ rounded)
        row_tot[i] = tot
        zdiag[i] = zd


@cuda.jit
def _ib_fast_factors(row_m, row_tot, col_sum, zdiag, inv_tau, row_scale, col_scale, symmetric, row_loss, col_loss,
                     alpha, beta, diag):
    """Per row i: the losses (``m_i + log Σ_j e_ij - z_ii``; symmetric, the column's with the one shift) and the
    gradient's factors ``dL/ds_ij = e_ij (alpha_i + beta_j) - [i == j] diag_i``."""
    i = cuda.grid(1)
    if i >= row_m.shape[0]:
        return
    rc = row_scale[i] * inv_tau
    row_loss[i] = row_m[i] + math.log(row_tot[i]) - zdiag[i]
    alpha[i] = rc / row_tot[i]
    if symmetric:
        cc = col_scale[i] * inv_tau
        col_loss[i] = row_m[i] + math.log(col_sum[i]) - zdiag[i]  # row_m: the one shift
        beta[i] = cc / col_sum[i]
        diag[i] = rc + cc
    else:
        beta[i] = 0.0
        diag[i] = rc


@cuda.jit
def _ib_fast_grad(E, alpha, beta, diag):
    """``E[i, j] <- E[i, j] (alpha_i + beta_j) - [i == j] diag_i`` (a thread an element, rows of a warp's columns)."""
    j, i = grid2()
    if i < E.shape[0] and j < E.shape[1]:
        g = float64(E[i, j]) * (alpha[i] + beta[j])
        if i == j:
            g -= diag[i]
        E[i, j] = g


@cuda.jit
def _ib_project(G, Xh, norms):
    """Warp i: back through x̂ = x / |x|: ``G[i] <- (G[i] - (G[i]·x̂_i) x̂_i) / |x_i|`` (float64 dot, a fixed tree)."""
    scratch = cuda.shared.array(_IB_SCRATCH, float64)
    i, lane, w = _warp_row()
    if i >= G.shape[0]:
        return
    D = G.shape[1]
    d = G.dtype.type(_row_dot(G, Xh, i, lane, scratch, w))
    inv = G.dtype.type(1.0 / norms[i])
    for t in range(lane, D, 32):
        G[i, t] = (G[i, t] - d * Xh[i, t]) * inv


def _inbatch_fast(dA, dP, inv_tau, cosine, symmetric, row_scale, col_scale):
    """The fast path (see :data:`IB_COLUMN_RANGE`), or None where it does not apply: S larger than one chunk, a
    symmetric loss without the one shift (dot products, or 2/τ past the range), or a clamped pair (a zero row:
    checked on the device, one read back of two numbers)."""
    from .autograd import column_sums, matmul

    B, D = dA.shape
    if B * B * np.dtype(dA.dtype).itemsize > IB_CHUNK_BYTES or (symmetric and not (
            cosine and 2.0 * inv_tau <= IB_COLUMN_RANGE)):
        return None
    f64 = np.float64
    if cosine:
        Ah, Ph = cuda.device_array((B, D), dA.dtype), cuda.device_array((B, D), dA.dtype)
        na, nq = cuda.device_array(B, f64), cuda.device_array(B, f64)
        lo = full(2, math.inf)
        _ib_rows_launch(_ib_normalize, B, dA, Ah, na, lo, 0)
        _ib_rows_launch(_ib_normalize, B, dP, Ph, nq, lo, 1)
        lo_a, lo_p = lo.copy_to_host()
        if not lo_a * lo_p >= EPS:
            return None
    else:
        Ah, Ph = dA, dP
    S = cuda.device_array((B, B), dA.dtype)
    matmul(Ah, Ph, S, trans_b=True)
    row_m, row_tot, zdiag = (cuda.device_array(B, f64) for _ in range(3))
    _ib_rows_launch(_ib_exp_rows, B, S, float64(inv_tau), bool(symmetric), row_m, row_tot, zdiag)
    col_sum = full(B, 0.0)
    if symmetric:  # Σ_i e_ij in float64, the autograd's deterministic column sums
        column_sums(S, col_sum.reshape(1, B))
    row_loss, col_loss = cuda.device_array(B, f64), full(B, 0.0)
    alpha, beta, diag = (cuda.device_array(B, f64) for _ in range(3))
    launch1(_ib_fast_factors, B, row_m, row_tot, col_sum, zdiag, float64(inv_tau), row_scale, col_scale, symmetric,
            row_loss, col_loss, alpha, beta, diag)
    launch2(_ib_fast_grad, B, B, S, alpha, beta, diag)
    gA = cuda.device_array((B, D), dA.dtype)
    gP = cuda.device_array((B, D), dA.dtype)
    matmul(S, Ph, gA)
    matmul(S, Ah, gP, trans_a=True)
    if cosine:
        _ib_rows_launch(_ib_project, B, gA, Ah, na)
        _ib_rows_launch(_ib_project, B, gP, Ph, nq)
    return row_loss, col_loss, gA, gP


def info_nce_inbatch_device(dA, dP, inv_tau, cosine, symmetric, row_scale, col_scale):
    """In-batch InfoNCE on device arrays: ``(row_loss, col_loss, gA, gP)``, all device arrays.

    ``row_loss`` / ``col_loss`` are float64 [B] (``col_loss`` is zeros unless ``symmetric``); the item loss is
    ``row_loss`` or, symmetric, ``(row_loss + col_loss) / 2``. ``row_scale`` / ``col_scale``: float64 device [B].
    The fast path (:func:`_inbatch_fast`) where it applies, else the exact one: per-pair clamped similarities
    in chunks of rows.
    """
    from .autograd import add, add_scaled_rows, matmul, scale

    fast = _inbatch_fast(dA, dP, inv_tau, cosine, symmetric, row_scale, col_scale)
    if fast is not None:
        return fast
    B, D = dA.shape
    f64 = np.float64
    na2, np2 = cuda.device_array((B, 2), f64), cuda.device_array((B, 2), f64)  # squared norms and norms
    launch1(_norms_sq, B, dA, na2)
    launch1(_norms_sq, B, dP, np2)
    R = max(1, min(B, IB_CHUNK_BYTES // max(B * np.dtype(dA.dtype).itemsize, 1)))
    chunks = [(r0, min(B, r0 + R)) for r0 in range(0, B, R)]
    S = cuda.device_array((R, B), dA.dtype)
    per = max(IB_PART_ROWS, -(-R // IB_PARTS))  # the column kernels' rows per thread
    pm, pt = cuda.device_array((-(-R // per), B), f64), cuda.device_array((-(-R // per), B), f64)
    row_lse, row_loss, zdiag = (cuda.device_array(B, f64) for _ in range(3))
    col_lse, col_loss = full(B, 0.0), full(B, 0.0)
    col_m, col_t = full(B, -math.inf), full(B, 0.0)
    inv_tau = float64(inv_tau)

    def similarities(r0, r1):
        Sc = S[:r1 - r0]
        matmul(dA[r0:r1], dP, Sc, trans_b=True)
        _ib_rows_launch(_ib_rows, r1 - r0, Sc, r0, na2, np2, inv_tau, cosine, row_lse, row_loss, zdiag)
        return Sc

    for r0, r1 in chunks:
        Sc = similarities(r0, r1)
        if symmetric:
            launch2(_ib_cols, pm.shape[0], B, Sc, inv_tau, per, pm, pt)
            launch1(_ib_cols_merge, B, pm, pt, col_m, col_t)
    if symmetric:
        launch1(_ib_col_finish, B, col_m, col_t, zdiag, col_lse, col_loss)
    gA = cuda.device_array((B, D), dA.dtype)
    gP = cuda.device_array((B, D), dA.dtype)
    row_v, col_v = cuda.device_array(B, f64), full(B, 0.0)
    part = cuda.device_array((B, D), dA.dtype) if len(chunks) > 1 else gP
    for c, (r0, r1) in enumerate(chunks):
        Sc = S[:r1 - r0] if len(chunks) == 1 else similarities(r0, r1)  # one chunk: S still holds them
        if cosine:
            launch2(_ib_col_radial, pm.shape[0], B, Sc, r0, per, na2, np2, inv_tau, row_lse, col_lse, row_scale,
                    col_scale, symmetric, pm)
            launch1(_add_parts, B, pm, col_v)
        _ib_rows_launch(_ib_coefficients, r1 - r0, Sc, r0, na2, np2, inv_tau, cosine, row_lse, col_lse, row_scale,
                        col_scale, symmetric, row_v)
        matmul(Sc, dP, gA[r0:r1])
        matmul(Sc, dA[r0:r1], gP if c == 0 else part, trans_a=True)
        if c:
            add(gP.reshape(B * D), part.reshape(B * D), gP.reshape(B * D))
    if cosine:  # the radial terms, g[i] -= v[i] x[i]: v negated in place, then added as row scales
        for G, X, v in ((gA, dA, row_v), (gP, dP, col_v)):
            scale(v, -1.0, v)
            add_scaled_rows(G, v, X)
    return row_loss, col_loss, gA, gP


def info_nce_inbatch(A, P, inv_tau, cosine, symmetric, row_scale, col_scale):
    """In-batch InfoNCE on the GPU: ``(per-row losses float64 [B], gA, gP)`` as numpy arrays."""
    row_loss, col_loss, gA, gP = info_nce_inbatch_device(cuda.to_device(A), cuda.to_device(P), inv_tau, cosine,
                                                         symmetric, cuda.to_device(row_scale),
                                                         cuda.to_device(col_scale))
    loss = row_loss.copy_to_host()
    if symmetric:
        loss = 0.5 * (loss + col_loss.copy_to_host())
    return loss, gA.copy_to_host(), gP.copy_to_host()


# --------------------------------------------------------------------------- spectral
@cuda.jit
def _spectral_rows(indptr, indices, weights, has_weights, mode, dscale, Z, coef, grad, sq):
    t, i = grid2()
    n = indptr.shape[0] - 1
    if i >= n or t >= Z.shape[1]:
        return
    ai = dscale[i] if mode == 1 else 1.0
    acc = 0.0
    s2 = 0.0
    for p in range(indptr[i], indptr[i + 1]):
        j = indices[p]
        c = weights[p] if has_weights else 1.0
        a = 1.0
        if mode == 1:
            a = dscale[j]
        elif mode == 2:
            c *= dscale[i] * dscale[j]
        e = ai * Z[i, t] - a * Z[j, t]
        acc += c * e
        s2 += c * e * e
    grad[i, t] = 2.0 * coef * ai * acc
    sq[i, t] = s2


def spectral_rows(indptr, indices, weights, has_weights, mode, dscale, Z, coef, grad, row_loss):
    n, D = Z.shape
    sq = np.zeros((n, D), np.float64)
    _launch2(_spectral_rows, n, D, [indptr, indices, weights, has_weights, mode, dscale, Z, coef, grad, sq], (8, 9))
    row_loss[...] = sq.sum(axis=1)


# --------------------------------------------------------------------------- local contrastive
@cuda.jit
def _contrastive_pairs(Z, pairs, similar, margin, scale, loss, gamma):
    e = cuda.grid(1)
    if e >= pairs.shape[0]:
        return
    u = pairs[e, 0]
    v = pairs[e, 1]
    d2 = 0.0
    for t in range(Z.shape[1]):
        x = Z[u, t] - Z[v, t]
        d2 += x * x
    if similar[e]:
        loss[e] = d2
        gamma[e] = 2.0 * scale[e]
    else:
        d = math.sqrt(d2)
        if d < margin:
            loss[e] = (margin - d) * (margin - d)
            gamma[e] = -2.0 * scale[e] * (margin - d) / d if d > 0.0 else 0.0
        else:
            loss[e] = 0.0
            gamma[e] = 0.0


def contrastive_pairs(Z, pairs, similar, margin, scale, loss, gamma):
    _launch1(_contrastive_pairs, pairs.shape[0], [Z, pairs, similar, margin, scale, loss, gamma], (5, 6))


@cuda.jit
def _contrastive_gather(Z, pairs, gamma, starts, entries, grad):
    t, x = grid2()
    if x >= starts.shape[0] - 1 or t >= Z.shape[1]:
        return
    acc = 0.0
    for q in range(starts[x], starts[x + 1]):
        code = entries[q]
        e = code // 2
        other = pairs[e, 1 - (code - 2 * e)]
        acc += gamma[e] * (Z[x, t] - Z[other, t])
    grad[x, t] = acc


def contrastive_gather(Z, pairs, gamma, starts, entries, grad):
    _launch2(_contrastive_gather, Z.shape[0], Z.shape[1], [Z, pairs, gamma, starts, entries, grad], (5,))


# --------------------------------------------------------------------------- reconstruction
@cuda.jit(device=True, inline=True)
def _draw(seed, stream, counter, cdf):
    n = cdf.shape[0]
    x = uniform(seed, stream, counter) * cdf[n - 1]
    lo = 0
    hi = n - 1
    while lo < hi:
        mid = (lo + hi) // 2
        if cdf[mid] > x:
            hi = mid
        else:
            lo = mid + 1
    return lo


@cuda.jit
def _reconstruction_rows(indptr, indices, Z, cdf, guide, num_neg, seed, scale, loss, grad, negs, cpos, cneg):
    i = cuda.grid(1)
    n = indptr.shape[0] - 1
    if i >= n:
        return
    D = Z.shape[1]
    for t in range(D):
        grad[i, t] = 0.0
    for p in range(indptr[i], indptr[i + 1]):
        j = indices[p]
        s = 0.0
        for t in range(D):
            s += Z[i, t] * Z[j, t]
        lp = _softplus(-s)
        g = scale[p] * (_sigmoid(s) - 1.0)
        cpos[p] = g
        for t in range(D):
            grad[i, t] += g * Z[j, t]
        for k in range(num_neg):
            m = _draw(seed, p, k, cdf)
            negs[p, k] = m
            sn = 0.0
            for t in range(D):
                sn += Z[i, t] * Z[m, t]
            lp += _softplus(sn)
            gn = scale[p] * _sigmoid(sn)
            cneg[p, k] = gn
            for t in range(D):
                grad[i, t] += gn * Z[m, t]
        loss[p] = lp


def reconstruction_rows(indptr, indices, Z, cdf, guide, num_neg, seed, scale, loss, grad, negs, cpos, cneg):
    # the binary search below returns the same index as the CPU's guided search (first cdf entry > x)
    n = indptr.size - 1
    if cpos.size == 0:
        grad[...] = 0
        return
    if negs.size == 0:  # size-0 arrays cannot be copied to the device
        negs, cneg = np.zeros((cpos.size, 1), np.int64), np.zeros((cpos.size, 1))
    _launch1(_reconstruction_rows, n,
             [indptr, indices, Z, cdf, guide, num_neg, np.uint64(seed), scale, loss, grad, negs, cpos, cneg],
             (8, 9, 10, 11, 12))


@cuda.jit(cache=True)
def _scatter_gather(Z, src, coef, rows, starts, grad):
    """``grad[rows[r]] += Σ_q coef[q] Z[src[q]]`` over the grouped entries ``q`` in ``starts[r]:starts[r + 1]``, added
    one entry at a time in that order in ``Z``'s dtype, as the CPU kernel does. A warp per (row, block of 128
    columns) (:mod:`.rows`), two entries a step (:func:`.rows.gather_sum4`); the row is read once and written
    once."""
    _, r = grid2()
    if r >= rows.shape[0]:
        return
    D = Z.shape[1]
    t0 = cuda.blockIdx.x * GROUP + cuda.threadIdx.x
    x = uint64(rows[r])
    a0, a1, a2, a3 = gather4(grad, x, t0, D)
    a0, a1, a2, a3 = gather_sum4(Z, src, coef, True, coef, False, starts[r], starts[r + 1], t0, D, a0, a1, a2, a3)
    store4(grad, x, t0, D, a0, a1, a2, a3)


def launch_scatter_gather(Z, src, coef, rows, starts, grad):
    """Launch :func:`_scatter_gather` on device arrays (a warp per row and block of 128 columns)."""
    launch_rows(_scatter_gather, rows.shape[0], Z.shape[1], _WARPS, Z, src, coef, rows, starts, grad)


def scatter_gather(Z, src, coef, rows, starts, grad):
    _on_host(launch_scatter_gather, [Z, src, coef, rows, starts, grad], (5,))


# --------------------------------------------------------------------------- combining gradients
@cuda.jit
def _weighted_sum(stacked, weights, out):
    x = cuda.grid(1)
    if x >= out.shape[0]:
        return
    acc = weights[0] * stacked[0, x]
    for m in range(1, stacked.shape[0]):
        acc += weights[m] * stacked[m, x]
    out[x] = acc


def weighted_sum(grads, weights, out):
    _launch1(_weighted_sum, out.size, [np.stack(grads), weights, out], (2,))


@cuda.jit
def _sparse_weighted_sum(values, entry_weight, starts, order, out):
    t, r = grid2()
    if r >= starts.shape[0] - 1 or t >= values.shape[1]:
        return
    acc = 0.0
    for q in range(starts[r], starts[r + 1]):
        e = order[q]
        acc += entry_weight[e] * values[e, t]
    out[r, t] = acc


def sparse_weighted_sum(values, entry_weight, starts, order, out):
    _launch2(_sparse_weighted_sum, starts.size - 1, values.shape[1], [values, entry_weight, starts, order, out], (4,))


@cuda.jit
def _weighted_sum4(g0, g1, g2, g3, w0, w1, w2, w3, accumulate, out):
    """Device twin of the CPU ``weighted_sum4``: out (+)= w0 g0 + w1 g1 + w2 g2 + w3 g3 over flat arrays."""
    x = cuda.grid(1)
    if x >= out.shape[0]:
        return
    acc = (w0 * g0[x] + w1 * g1[x]) + (w2 * g2[x] + w3 * g3[x])
    if accumulate:
        out[x] += acc
    else:
        out[x] = acc


def weighted_sum_device(grads, weights, out):
    """``out = Σ_m weights[m] grads[m]`` over flat device arrays (``weights`` host floats, passed as kernel
    arguments: no upload), four per pass; unused slots repeat ``grads[0]`` with weight 0."""
    for start in range(0, len(grads), 4):
        chunk = list(grads[start:start + 4])
        w = [0.0] * 4
        w[:len(chunk)] = [float(x) for x in weights[start:start + 4]]
        chunk += [chunk[0]] * (4 - len(chunk))
        launch1(_weighted_sum4, out.shape[0], *chunk, *w, start > 0, out)


@cuda.jit
def _add_rows(out, rows, values):
    """out[rows[r]] += values[r] (rows distinct: each thread owns one element)."""
    t, r = grid2()
    if r >= rows.shape[0] or t >= values.shape[1]:
        return
    out[rows[r], t] += values[r, t]


# --------------------------------------------------------------------------- device-side bookkeeping
@cuda.jit
def _reconstruction_keys(indices, negs, num_neg, keys):
    """The target of every term: keys[p] = indices[p] for the arcs, then the negatives, arc-major."""
    e = cuda.grid(1)
    arcs = indices.shape[0]
    if e >= keys.shape[0]:
        return
    if e < arcs:
        keys[e] = indices[e]
    else:
        q = e - arcs
        keys[e] = negs[q // num_neg, q % num_neg]


@cuda.jit
def _reconstruction_sources(pos, arc_src, num_neg, cpos, cneg, src, coef):
    """For the terms in grouped order: the source node and the coefficient of each."""
    i = cuda.grid(1)
    if i >= src.shape[0]:
        return
    e = pos[i]
    arcs = cpos.shape[0]
    if e < arcs:
        src[i] = arc_src[e]
        coef[i] = cpos[e]
    else:
        q = e - arcs
        p = q // num_neg
        src[i] = arc_src[p]
        coef[i] = cneg[p, q % num_neg]
