"""NumPy references for graph construction and sparse products (no scipy, no numba)."""
import numpy as np


def dense_adjacency(src, dst, num_nodes, weights=None, symmetrize=True):
    """Dense adjacency with self-loops dropped and duplicates summed (a plain loop: the oracle)."""
    A = np.zeros((num_nodes, num_nodes), np.float64)
    w = np.ones(len(src)) if weights is None else np.asarray(weights, np.float64)
    for u, v, x in zip(np.asarray(src), np.asarray(dst), w):
        if u == v:
            continue
        A[u, v] += x
        if symmetrize:
            A[v, u] += x
    return A


def spmm_dense(A, X, norm=None):
    """``Â X`` with Â = A, D^-1/2 A D^-1/2 or D^-1 A (D = row sums; isolated rows give zeros)."""
    A = np.asarray(A, np.float64)
    deg = A.sum(axis=1)
    inv = np.zeros_like(deg)
    pos = deg > 0
    if norm == "sym":
        inv[pos] = deg[pos] ** -0.5
        A = inv[:, None] * A * inv[None, :]
    elif norm == "rw":
        inv[pos] = 1.0 / deg[pos]
        A = inv[:, None] * A
    return A @ np.asarray(X, np.float64)


def edge_plan(indptr, indices, directed):
    """``(arc_edge, edge_arc)``: edges numbered as ``Graph.edges()`` lists them (the arcs i < j of an undirected
    graph, all arcs of a directed one), the edge of every arc (an arc i > j takes its reverse's) and the arc
    that lists each edge (a dictionary over arc endpoints: the oracle)."""
    indptr, indices = np.asarray(indptr), np.asarray(indices)
    src = np.repeat(np.arange(indptr.size - 1), np.diff(indptr))
    listed = np.flatnonzero(np.ones(src.size, bool) if directed else src < indices)
    number = {(int(src[p]), int(indices[p])): e for e, p in enumerate(listed)}
    arc_edge = np.array([number[(int(u), int(v)) if directed or u < v else (int(v), int(u))]
                         for u, v in zip(src, indices)], np.int64)
    return arc_edge, listed


def add_scaled_rows(out, scale, X):
    """``out + scale[:, None] * X`` (the self-loop term of a GCN propagation)."""
    return out + np.asarray(scale)[:, None] * X
