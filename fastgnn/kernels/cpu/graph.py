"""CSR bookkeeping for :class:`fastgnn.Graph`: the arc → edge map, edge dropping and edge-subset graphs.

Linear passes over the arcs (a few microseconds per thousand arcs): cheap enough to run every epoch for edge
dropping, where rebuilding through ``Graph.from_edges`` (sort, merge, validate) is not. Which edges a view keeps
is a counter-based hash of ``(seed, edge)`` (:func:`edge_keeps`), so ``kernels/cuda/graph.py`` builds the same
graph on the device without drawing anything on the host.
"""
from numba import njit, prange

from .rng import uniform


@njit(cache=True, parallel=True)
def edge_keeps(seed, p, keep):
    """``keep[e] = uniform(seed, e, 0) >= p``: edge ``e`` survives a drop with probability ``1 - p``. The draw is
    a pure function of ``(seed, e)`` (the same at any thread count, and in the CUDA kernels)."""
    for e in prange(keep.size):
        keep[e] = uniform(seed, e, 0) >= p


@njit(cache=True)
def edge_plan(indptr, indices, directed, arc_edge, edge_arc):
    """Number the edges as ``Graph.edges()`` lists them (the arcs ``i < j`` of an undirected graph, every arc
    of a directed one, in CSR order): ``edge_arc[e]`` is that arc, ``arc_edge[p]`` the edge of arc ``p`` (an
    undirected arc ``i > j`` maps to its reverse). Returns the number of edges, or -1 when a row is not
    strictly increasing, an arc is a self-loop, or an undirected arc lacks its reverse."""
    n = indptr.size - 1
    m = 0
    lower = 0
    for i in range(n):
        prev = -1
        for p in range(indptr[i], indptr[i + 1]):
            j = indices[p]
            if j <= prev or j == i:
                return -1
            prev = j
            if directed or i < j:
                arc_edge[p] = m
                edge_arc[m] = p
                m += 1
            else:
                lower += 1
    if directed:
        return m
    if lower != m:
        return -1
    for i in range(n):
        for p in range(indptr[i], indptr[i + 1]):
            j = indices[p]
            if j < i:  # binary search for the reverse arc (j, i) in row j
                lo = indptr[j]
                hi = indptr[j + 1]
                while lo < hi:
                    mid = (lo + hi) // 2
                    if indices[mid] < i:
                        lo = mid + 1
                    else:
                        hi = mid
                if lo == indptr[j + 1] or indices[lo] != i:
                    return -1
                arc_edge[p] = arc_edge[lo]
    return m


@njit(cache=True)
def keep_arcs(indptr, indices, weights, has_weights, arc_edge, edge_arc, keep, out_indptr, out_indices,
              out_weights):
    """Copy the arcs whose edge is kept (``keep[arc_edge[p]]``) in CSR order; a kept arc weighs what its
    edge's listing arc weighs. Returns the number of arcs written."""
    n = indptr.size - 1
    q = 0
    out_indptr[0] = 0
    for i in range(n):
        for p in range(indptr[i], indptr[i + 1]):
            e = arc_edge[p]
            if keep[e]:
                out_indices[q] = indices[p]
                if has_weights:
                    out_weights[q] = weights[edge_arc[e]]
                q += 1
        out_indptr[i + 1] = q
    return q
