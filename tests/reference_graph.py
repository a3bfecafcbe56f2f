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
