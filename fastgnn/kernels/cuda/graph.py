"""Graphs built on the device: the CUDA side of ``kernels/cpu/graph.py`` and of the per-node vectors
:class:`fastgnn.Graph` computes on the host.

GRACE's views drop edges every epoch. On the CPU path :func:`fastgnn.trainer.drop_edges` keeps edge ``e`` where
``uniform(seed, e, 0) >= p`` (``kernels/cpu/graph.py:edge_keeps``) and copies the kept arcs. Here the same test
runs per arc on the device (an arc asks for its edge, ``arc_edge[a]``), so a view is built where the encoder
reads it, with the CPU's arcs in the CPU's order, and nothing crosses the bus:

* :func:`drop_edges`: one thread per arc writes its keep flag (0/1), an exclusive scan of the flags
  (``arrays.exclusive_scan``) gives each kept arc its slot and the number kept, and one thread per arc (and per
  node, for the offsets) copies the kept arcs. Reads and writes are coalesced; integer sums are exact.
* :func:`degree_scales`: the per-node scales of the normalised propagations (GCN's ``(d + 1)^-1/2``, ``"sym"``,
  ``"rw"``) from the device CSR: one thread per node sums its row's weights in float64 in arc order (the order of
  the host's ``np.bincount``), and ``1 / sqrt`` and ``1 / d`` are correctly rounded on both sides, so the vectors
  are the host's bit for bit.
* :func:`self_loops`: the CSR plus one self-loop per node, inserted in sorted position (rows must be sorted, as
  they are in a graph that has an edge plan): what :meth:`fastgnn.Graph.with_self_loops` returns, for GAT.
* :func:`arcs_by_column`: the arcs grouped by their column, stably (a radix sort): the transpose's layout.
"""
import math

import numpy as np
from numba import cuda, float64, int64

from . import arrays
from .grid import shape1
from .rng import uniform

THREADS = 128  # threads per block of the 1-d launches


def _grid(n):
    return shape1(n, THREADS)


# --------------------------------------------------------------------------- edge dropping
@cuda.jit(cache=True)
def _keep_flags(arc_edge, seed, p, flags):
    """flags[a] = 1 where arc a's edge survives (``uniform(seed, edge, 0) >= p``, the CPU's ``edge_keeps``)."""
    a = cuda.grid(1)
    if a < arc_edge.shape[0]:
        flags[a] = 1 if uniform(seed, arc_edge[a], 0) >= p else 0


@cuda.jit(cache=True)
def _compact_arcs(indptr, indices, weights, has_w, arc_edge, edge_arc, pos, out_indptr, out_indices, out_weights):
    """Thread t: arc t, if kept (``pos[t + 1] > pos[t]``), goes to slot ``pos[t]`` with the weight of its edge's
    listing arc, and slot t is padding (-1) if past the kept arcs; node t's offset is ``pos[indptr[t]]``."""
    t = cuda.grid(1)
    m = indices.shape[0]
    if t < m:
        q = pos[t]
        if pos[t + 1] > q:
            out_indices[q] = indices[t]
            if has_w:
                out_weights[q] = weights[edge_arc[arc_edge[t]]]
        if t >= pos[m]:
            out_indices[t] = -1
    if t < indptr.shape[0]:
        out_indptr[t] = pos[indptr[t]]


def drop_edges(indptr, indices, weights, has_w, arc_edge, edge_arc, seed, p):
    """``(indptr [N + 1] int64, indices [E], weights)`` of the graph keeping the edges with
    ``uniform(seed, e, 0) >= p``: the CPU's ``keep_arcs`` of ``edge_keeps``. ``indices`` (and ``weights`` when
    ``has_w``) have the input's capacity ``E``: the first ``indptr[N]`` entries are the kept arcs, the rest of
    ``indices`` is -1 (unused capacity, which ``arrays.sort_keys`` drops). An unweighted graph's ``weights`` is
    its one-element ones array, passed through (the kernels read no weights then)."""
    m = indices.shape[0]
    n = indptr.shape[0] - 1
    pos = cuda.device_array(m + 1, np.int64)
    if m:
        _keep_flags[_grid(m)](arc_edge, np.uint64(seed), float64(p), pos)
        arrays.exclusive_scan(pos[:m], pos[:m], pos, m)
    else:
        arrays.fill(pos, 0)
    out_indptr = cuda.device_array(n + 1, np.int64)
    out_indices = cuda.device_array(m, indices.dtype)
    out_weights = cuda.device_array(m, np.float32) if has_w else weights
    _compact_arcs[_grid(max(m, n + 1))](indptr, indices, weights, has_w, arc_edge, edge_arc, pos, out_indptr,
                                        out_indices, out_weights)
    return out_indptr, out_indices, out_weights


# --------------------------------------------------------------------------- degree scales
SCALE_MODES = {"gcn": 0, "sym": 1, "rw": 2}


@cuda.jit(cache=True)
def _degree_scales(indptr, weights, has_w, mode, r, r2):
    """Node i's weighted degree ``d`` (float64, in arc order), then mode 0: ``r = 1/sqrt(d + 1)``, ``r2 = r * r``
    in r's dtype (GCN); 1: ``r = 1/sqrt(d)``; 2: ``r = 1/d`` (0 for ``d = 0`` in modes 1 and 2)."""
    i = cuda.grid(1)
    if i >= r.shape[0]:
        return
    lo = indptr[i]
    hi = indptr[i + 1]
    d = 0.0
    if has_w:
        for a in range(lo, hi):
            d += float64(weights[a])
    else:
        d = float64(hi - lo)
    if mode == 0:
        r[i] = 1.0 / math.sqrt(d + 1.0)
        x = r[i]
        r2[i] = x * x
    elif d > 0:
        r[i] = 1.0 / math.sqrt(d) if mode == 1 else 1.0 / d
    else:
        r[i] = 0.0


def degree_scales(indptr, weights, has_w, kind, dtype):
    """``(r, r2)`` device vectors [N] of ``dtype``: ``kind`` "gcn" gives ``(d+1)^-1/2`` and its square,
    "sym" ``d^-1/2`` and "rw" ``1/d`` (``r2`` then unused and uninitialised); ``d`` is the weighted out-degree."""
    n = indptr.shape[0] - 1
    r = cuda.device_array(n, dtype)
    r2 = cuda.device_array(n if kind == "gcn" else 1, dtype)
    if n:
        _degree_scales[_grid(n)](indptr, weights, has_w, int64(SCALE_MODES[kind]), r, r2)
    return r, r2


# --------------------------------------------------------------------------- self-loops, transpose
@cuda.jit(cache=True)
def _self_loops(indptr, indices, out_indptr, out_cols):
    """Row i (one thread): its arcs with ``i`` inserted before the first column above it (rows sorted)."""
    i = cuda.grid(1)
    n = indptr.shape[0] - 1
    if i >= n:
        return
    lo = indptr[i]
    hi = indptr[i + 1]
    q = lo + i
    out_indptr[i] = q
    if i == n - 1:
        out_indptr[n] = hi + n
    placed = False
    for a in range(lo, hi):
        j = indices[a]
        if not placed and j > i:
            out_cols[q] = i
            q += 1
            placed = True
        out_cols[q] = j
        q += 1
    if not placed:
        out_cols[q] = i


def self_loops(indptr, indices):
    """``(indptr [N + 1] int64, cols [E + N])``: the arcs plus one self-loop per node, in sorted position (rows
    sorted, no stored self-loops): :meth:`fastgnn.Graph.with_self_loops` on the device. ``indices`` may be
    longer than ``indptr[N]`` (a capacity); ``cols`` past the arcs is then -1 (padding)."""
    n = indptr.shape[0] - 1
    out_indptr = cuda.device_array(n + 1, np.int64)
    out_cols = arrays.full(indices.shape[0] + n, -1, indices.dtype)
    if n:
        _self_loops[_grid(n)](indptr, indices, out_indptr, out_cols)
    else:
        arrays.fill(out_indptr, 0)
    return out_indptr, out_cols


@cuda.jit(cache=True)
def _arc_rows(indptr, rows):
    """rows[p] = the row of arc p; one thread per row."""
    i = cuda.grid(1)
    if i < indptr.shape[0] - 1:
        for p in range(indptr[i], indptr[i + 1]):
            rows[p] = i


def arcs_by_column(indptr, cols):
    """``(tindptr [N + 1], tarcs [E], rows [E])``: the arcs into node ``j`` are ``tarcs[tindptr[j]:tindptr[j + 1]]``
    (ascending), arc ``p`` leaves ``rows[p]``. A stable radix sort of ``cols`` on the device; the transpose's CSR
    is ``(tindptr, rows[tarcs])``. Padding (negative ``cols`` past ``indptr[N]``) sorts last, with row -1."""
    n = indptr.shape[0] - 1
    keys, tarcs = arrays.sort_keys(cols, bound=n)
    tindptr = arrays.key_starts(keys, n)
    rows = arrays.full(cols.shape[0], -1, np.int64)
    if n:
        _arc_rows[_grid(n)](indptr, rows)
    return tindptr, tarcs, rows
