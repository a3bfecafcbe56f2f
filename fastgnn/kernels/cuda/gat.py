"""CUDA forward and backward of graph-attention aggregation: the device twin of ``gat_aggregate`` in
``fastgnn/autograd.py`` (the NumPy specification; names below are its variables).

Layout. The graph comes with one self-loop per node as CSR (:meth:`fastgnn.Graph.with_self_loops`): ``indptr``
int64 [N + 1], ``cols`` [E'] (int64), rows sorted, every row holding its self-loop. ``h`` is [N, H, F], ``att_src``
and ``att_dst`` are [H, F], per-arc values (``alpha``, ``act``, ``dz``) are [E', H] (arc-major, heads fastest) and
per-node scores (``s``, ``t``, ``ds``, ``dt``) [N, H]. All are C-contiguous device arrays of one float dtype
(float32 or float64); nothing is copied to the host.

Forward, :func:`gat_forward` (three launches):

* :func:`_scores`: one thread per (node, head), ``s = a_src·h_n`` and ``t = a_dst·h_n`` (the two einsums);
* :func:`_softmax`: one thread per (row, head), two passes over the row's arcs. The first computes
  ``z = s_j + t_i``, ``act`` (1 where ``z > 0``, else ``slope``) and ``e = z·act`` (parked in ``alpha``) and the
  max-shifted sum of exponentials online (rescaled at each new maximum); the second turns ``e`` into
  ``alpha = exp(e - emax) / denom``;
* :func:`_aggregate`: ``out_i = Σ_j alpha_ij h_j`` on a (columns, rows) grid like ``sparse.spmm_csr``, the ``H*F``
  values of a node's row flattened into columns: the lanes of a warp read consecutive values of a neighbour's
  row (coalesced).

``saved`` is ``(alpha, act)``, both [E', H] in the input dtype: all the backward needs besides the inputs.

Backward, :func:`gat_backward`:

* :func:`_row_grads`: one thread per (row, head): ``dalpha = g_i·h_j`` per arc, ``weighted = Σ alpha·dalpha``,
  ``dz = alpha (dalpha - weighted) act`` (into ``dz``) and ``dt_i = Σ dz`` (the row's own sum: no scatter);
* the scatters into columns (``np.add.at(dh, cols, alpha g_i)``, ``np.add.at(ds, cols, dz)``) are gathers over
  the transpose, **not atomics**: :func:`gat_transpose` sorts the arcs stably by column and gives each arc its
  row (``graph.arcs_by_column``: ``arrays.sort_keys`` and ``arrays.key_starts``). :func:`_col_grads` then runs a
  (columns, rows) grid over the ``H*F`` columns and the nodes ``j``: ``dh_j = Σ alpha_ij g_i`` over the arcs into
  ``j``, ``ds_j = Σ dz_ij``, and ``dh_j += ds_j a_src + dt_j a_dst``. The arcs into a column are taken in ascending arc
  order, the order of ``np.add.at``, so the results do not depend on scheduling (same bits on every run). The
  transpose depends on the graph only: callers that run many steps on one graph build it once and pass it
  (``transpose=``);
* :func:`_att_partials` and :func:`_att_finish`: ``da_src = Σ_n ds_n h_n`` and ``da_dst = Σ_n dt_n h_n`` in
  float64, deterministically: ``C = min(N, PARTS)`` partial sums (partial ``c`` over the nodes ``c, c + C, ...``),
  then one thread per column sums the ``C`` partials in order and rounds to the input dtype.

Precision: the dot products over F (scores, ``dalpha``), the softmax sums and the row/column sums of per-arc
values (``weighted``, ``dt``, ``ds``) and the reductions over N accumulate in float64 and are rounded when stored;
the aggregations of feature rows (``out``, the ``alpha g`` part of ``dh``) accumulate in the input dtype, as
``spmm_csr`` does. NumPy computes everything in the input dtype, so float32 results agree to rounding.

Empty inputs (N, H or F = 0) launch nothing that would have an empty grid; the outputs have the right shapes
(``da_src``/``da_dst`` are zeros when N = 0).
"""
import math

import numpy as np
from numba import cuda, float32, float64

from .graph import arcs_by_column
from .grid import grid2, launch2, shape1

THREADS = 128  # threads per block of the 1-d launches (tests lower it so tiny inputs span several blocks)
TILE = (32, 8)  # (columns, rows) per block of the 2-d launches
PARTS = 256  # most partial sums of the reductions over N (fixed for a given N: a fixed summation order)


def _grid1(n):
    return shape1(n, THREADS)


def _launch2(kernel, cols, rows, *args):
    launch2(kernel, cols, rows, TILE, *args)


# --------------------------------------------------------------------------- forward
@cuda.jit(cache=True)
def _scores(h, att_src, att_dst, s, t):
    """s[n, k] = att_src[k]·h[n, k], t[n, k] = att_dst[k]·h[n, k]; one thread per (node, head)."""
    idx = cuda.grid(1)
    N, H, F = h.shape
    if idx >= N * H:
        return
    n = idx // H
    k = idx - n * H
    a = 0.0
    b = 0.0
    for f in range(F):
        x = float64(h[n, k, f])
        a += x * att_src[k, f]
        b += x * att_dst[k, f]
    s[n, k] = a
    t[n, k] = b


@cuda.jit(cache=True)
def _softmax(indptr, cols, s, t, slope, alpha, act):
    """act and alpha [E', H] of row i, head k (one thread each): LeakyReLU of z = s_j + t_i, then the softmax over
    the row's arcs, max-shifted (online: one pass for the maximum and the sum, one to write alpha)."""
    idx = cuda.grid(1)
    N, H = s.shape
    if idx >= N * H:
        return
    i = idx // H
    k = idx - i * H
    ti = t[i, k]
    lo = indptr[i]
    hi = indptr[i + 1]
    m = -math.inf
    tot = 0.0
    for p in range(lo, hi):
        z = s[cols[p], k] + ti
        if z > 0:
            e = z
            act[p, k] = 1
        else:
            e = z * slope
            act[p, k] = slope
        alpha[p, k] = e  # e, until the second pass
        if e > m:
            tot = tot * math.exp(m - e) + 1.0
            m = e
        else:
            tot += math.exp(e - m)
    for p in range(lo, hi):
        alpha[p, k] = math.exp(alpha[p, k] - m) / tot


@cuda.jit(cache=True)
def _aggregate(indptr, cols, h, alpha, out):
    """out[i, k, f] = Σ_p alpha[p, k] h[cols[p], k, f] over row i; thread (column k*F + f, row i)."""
    c, i = grid2()
    N, H, F = h.shape
    if i >= N or c >= H * F:
        return
    k = c // F
    f = c - k * F
    acc = float32(0.0)  # float32 sums for float32 h (float64 for float64: the types unify in the loop)
    for p in range(indptr[i], indptr[i + 1]):
        acc += alpha[p, k] * h[cols[p], k, f]
    out[i, k, f] = acc


def gat_forward(indptr, cols, h, att_src, att_dst, slope):
    """Graph-attention aggregation on device arrays: ``(out [N, H, F], saved)``, ``saved = (alpha, act)``
    ([E', H] each) for :func:`gat_backward`. ``indptr``, ``cols``: :meth:`Graph.with_self_loops` on the device."""
    N, H, F = _check(indptr, cols, h, att_src, att_dst)
    E = cols.shape[0]
    out = cuda.device_array((N, H, F), h.dtype)
    alpha = cuda.device_array((E, H), h.dtype)
    act = cuda.device_array((E, H), h.dtype)
    if N * H:
        s = cuda.device_array((N, H), h.dtype)
        t = cuda.device_array((N, H), h.dtype)
        _scores[_grid1(N * H)](h, att_src, att_dst, s, t)
        _softmax[_grid1(N * H)](indptr, cols, s, t, h.dtype.type(slope), alpha, act)
        _launch2(_aggregate, H * F, N, indptr, cols, h, alpha, out)
    return out, (alpha, act)


# --------------------------------------------------------------------------- backward
def gat_transpose(indptr, cols):
    """``(tindptr [N + 1], tarcs [E'], rows [E'])``: the arcs into node ``j`` are ``tarcs[tindptr[j]:tindptr[j + 1]]``
    (ascending), arc ``p`` leaves ``rows[p]`` (``graph.arcs_by_column``). Depends on the graph only (build once,
    pass to :func:`gat_backward`)."""
    return arcs_by_column(indptr, cols)


@cuda.jit(cache=True)
def _row_grads(indptr, cols, h, g, alpha, act, dz, dt):
    """dz [E', H] and dt [N, H] of row i, head k (one thread each): dalpha = g_i·h_j per arc (parked in dz),
    weighted = Σ alpha dalpha, dz = alpha (dalpha - weighted) act, dt_i = Σ dz."""
    idx = cuda.grid(1)
    N, H, F = h.shape
    if idx >= N * H:
        return
    i = idx // H
    k = idx - i * H
    lo = indptr[i]
    hi = indptr[i + 1]
    weighted = 0.0
    for p in range(lo, hi):
        j = cols[p]
        d = 0.0
        for f in range(F):
            d += float64(g[i, k, f]) * h[j, k, f]
        dz[p, k] = d  # dalpha, until the second pass
        weighted += alpha[p, k] * d
    acc = 0.0
    for p in range(lo, hi):
        v = alpha[p, k] * (dz[p, k] - weighted) * act[p, k]
        dz[p, k] = v
        acc += dz[p, k]  # the stored (rounded) value, as ds sums it
    dt[i, k] = acc


@cuda.jit(cache=True)
def _col_grads(tindptr, tarcs, rows, g, alpha, dz, dt, att_src, att_dst, ds, dh):
    """dh [N, H, F] and ds [N, H] of node j, thread (column k*F + f, node j): Σ over the arcs p = (i, j) into j, in
    ascending order, of alpha[p, k] g[i, k, f] and dz[p, k]; then dh += ds a_src + dt a_dst."""
    c, j = grid2()
    N, H, F = g.shape
    if j >= N or c >= H * F:
        return
    k = c // F
    f = c - k * F
    acc = float32(0.0)  # float32 sums for float32 g (float64 for float64)
    dsum = 0.0
    for q in range(tindptr[j], tindptr[j + 1]):
        p = tarcs[q]
        acc += alpha[p, k] * g[rows[p], k, f]
        dsum += dz[p, k]
    if f == 0:
        ds[j, k] = dsum
    dh[j, k, f] = acc + dsum * att_src[k, f] + dt[j, k] * att_dst[k, f]


@cuda.jit(cache=True)
def _att_partials(h, ds, dt, parts):
    """parts[c, 0, k*F + f] = Σ_n ds[n, k] h[n, k, f] and parts[c, 1, .] the same with dt, over the nodes
    n = c, c + C, c + 2C, ... (C = parts.shape[0]), in float64; thread (column, partial c)."""
    col, c = grid2()
    N, H, F = h.shape
    C = parts.shape[0]
    if c >= C or col >= H * F:
        return
    k = col // F
    f = col - k * F
    a = 0.0
    b = 0.0
    for n in range(c, N, C):
        x = float64(h[n, k, f])
        a += ds[n, k] * x
        b += dt[n, k] * x
    parts[c, 0, col] = a
    parts[c, 1, col] = b


@cuda.jit(cache=True)
def _att_finish(parts, da_src, da_dst):
    """da_src, da_dst [H, F] = the sums of the partials in order (zeros when there are none); one thread per column."""
    col = cuda.grid(1)
    H, F = da_src.shape
    if col >= H * F:
        return
    k = col // F
    f = col - k * F
    a = 0.0
    b = 0.0
    for c in range(parts.shape[0]):
        a += parts[c, 0, col]
        b += parts[c, 1, col]
    da_src[k, f] = a
    da_dst[k, f] = b


def gat_backward(indptr, cols, h, att_src, att_dst, saved, g, transpose=None):
    """Gradients ``(dh, da_src, da_dst)`` of ``Σ g·out`` for :func:`gat_forward`'s ``out`` (``saved`` its second
    result, ``g`` [N, H, F]). ``transpose``: :func:`gat_transpose` of the graph (built here when None)."""
    N, H, F = _check(indptr, cols, h, att_src, att_dst)
    alpha, act = saved
    E = cols.shape[0]
    if tuple(g.shape) != (N, H, F) or g.dtype != h.dtype:
        raise ValueError(f"g: expected a {h.dtype} device array of shape {(N, H, F)}, got {g.dtype} {tuple(g.shape)}")
    for name, a in (("alpha", alpha), ("act", act)):
        if tuple(a.shape) != (E, H) or a.dtype != h.dtype:
            raise ValueError(f"saved {name}: expected a {h.dtype} array of shape {(E, H)}, got {a.dtype} "
                             f"{tuple(a.shape)}")
    dh = cuda.device_array((N, H, F), h.dtype)
    da_src = cuda.device_array((H, F), h.dtype)
    da_dst = cuda.device_array((H, F), h.dtype)
    if H * F == 0:
        return dh, da_src, da_dst
    C = min(N, PARTS)
    parts = cuda.device_array((C, 2, H * F), np.float64)
    if N:
        tindptr, tarcs, rows = gat_transpose(indptr, cols) if transpose is None else transpose
        dz = cuda.device_array((E, H), h.dtype)
        ds = cuda.device_array((N, H), h.dtype)
        dt = cuda.device_array((N, H), h.dtype)
        _row_grads[_grid1(N * H)](indptr, cols, h, g, alpha, act, dz, dt)
        _launch2(_col_grads, H * F, N, tindptr, tarcs, rows, g, alpha, dz, dt, att_src, att_dst, ds, dh)
        _launch2(_att_partials, H * F, C, h, ds, dt, parts)
    _att_finish[_grid1(H * F)](parts, da_src, da_dst)  # no partials (N = 0): zeros
    return dh, da_src, da_dst


def _check(indptr, cols, h, att_src, att_dst):
    """``(N, H, F)`` after checking the shapes and dtypes (host-side metadata only)."""
    if len(h.shape) != 3 or h.dtype not in (np.float32, np.float64):
        raise ValueError(f"h: expected a float32 or float64 device array [N, H, F], got {h.dtype} {tuple(h.shape)}")
    N, H, F = h.shape
    if tuple(indptr.shape) != (N + 1,):
        raise ValueError(f"indptr: expected shape {(N + 1,)} (h has {N} rows), got {tuple(indptr.shape)}")
    if len(cols.shape) != 1:
        raise ValueError(f"cols: expected a 1-d array, got shape {tuple(cols.shape)}")
    for name, a in (("att_src", att_src), ("att_dst", att_dst)):
        if tuple(a.shape) != (H, F) or a.dtype != h.dtype:
            raise ValueError(f"{name}: expected a {h.dtype} array of shape {(H, F)}, got {a.dtype} {tuple(a.shape)}")
    return N, H, F
