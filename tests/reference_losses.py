"""Plain NumPy oracles for fastgnn.losses (float64, loops where clarity wins; no numba, no scipy).

Losses are computed directly from their definitions; gradients come from :func:`numerical_grad`
(central differences) or, for the quadratic graph losses, from the closed form ``2 λ L Z``.
"""
import numpy as np

from tests.reference_rng import uniform_array

# what ``tests/reference.py`` re-exports (helpers such as ``uniform`` and ``reduce`` stay local: other
# topics' references define names like them)
__all__ = [
    "numerical_grad", "info_nce_items", "dense_adjacency_of", "laplacian", "spectral", "spectral_edges",
    "local_contrastive_items", "local_contrastive_grad", "reconstruction_negatives", "reconstruction_items",
    "multi_objective", "combine_dense", "combine_sparse",
]

EPS = 1e-8



def numerical_grad(f, x, h=1e-6):
    """Central finite differences of the scalar function ``f`` at the float64 array ``x``."""
    x = np.array(x, np.float64)
    g = np.zeros_like(x)
    flat = x.reshape(-1)
    gf = g.reshape(-1)
    for q in range(flat.size):
        old = flat[q]
        flat[q] = old + h
        up = f(x)
        flat[q] = old - h
        down = f(x)
        flat[q] = old
        gf[q] = (up - down) / (2 * h)
    return g


def similarity(a, b, kind="cosine"):
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    d = float(a @ b)
    if kind == "dot":
        return d
    return d / max(np.linalg.norm(a) * np.linalg.norm(b), EPS)


def _lse(z):
    m = max(z)
    return m + np.log(sum(np.exp(v - m) for v in z))


def info_nce_items(A, P, negatives=None, table=None, tau=0.07, kind="cosine", symmetric=False):
    """Per-anchor InfoNCE losses [B] from the definition (negatives: None, ids [B, K] with -1 padding, or [B, K, D])."""
    A = np.asarray(A, np.float64)
    P = np.asarray(P, np.float64)
    B = A.shape[0]
    out = np.zeros(B)
    if negatives is None:
        S = np.array([[similarity(A[i], P[j], kind) for j in range(B)] for i in range(B)]) / tau
        for i in range(B):
            row = _lse(S[i]) - S[i, i]
            if symmetric:
                col = _lse(S[:, i]) - S[i, i]
                out[i] = 0.5 * (row + col)
            else:
                out[i] = row
        return out
    negatives = np.asarray(negatives)
    for i in range(B):
        z = [similarity(A[i], P[i], kind) / tau]
        for k in range(negatives.shape[1]):
            if negatives.ndim == 2:
                j = int(negatives[i, k])
                if j < 0:
                    continue
                z.append(similarity(A[i], table[j], kind) / tau)
            else:
                z.append(similarity(A[i], negatives[i, k], kind) / tau)
        out[i] = _lse(z) - z[0]
    return out


def reduce(items, reduction):
    if reduction == "none":
        return items
    if reduction == "sum":
        return float(np.sum(items))
    return float(np.mean(items)) if len(items) else 0.0


def dense_adjacency_of(graph):
    """Dense float64 adjacency of a fastgnn Graph, symmetrised (A + A^T) when directed."""
    n = graph.num_nodes
    A = np.zeros((n, n))
    w = graph.weights if graph.weights is not None else np.ones(graph.num_arcs)
    for i in range(n):
        for p in range(graph.indptr[i], graph.indptr[i + 1]):
            A[i, graph.indices[p]] += w[p]
    return A + A.T if graph.directed else A


def laplacian(A, normalization="none"):
    """Dense Laplacian: D - A ("none"), I' - D^-1/2 A D^-1/2 ("sym", I' zero at isolated nodes),
    or D_e - A_e with A_e = A_ij / sqrt(d_i d_j) ("edge")."""
    A = np.asarray(A, np.float64)
    d = A.sum(axis=1)
    inv = np.where(d > 0, 1.0 / np.sqrt(np.where(d > 0, d, 1.0)), 0.0)
    if normalization == "none":
        return np.diag(d) - A
    if normalization == "sym":
        return np.diag((d > 0).astype(float)) - inv[:, None] * A * inv[None, :]
    Ae = inv[:, None] * A * inv[None, :]
    return np.diag(Ae.sum(axis=1)) - Ae


def spectral(Z, A, lam=1.0, normalization="none"):
    """``(loss, grad)``: λ tr(Zᵀ L Z) and 2 λ L Z."""
    Z = np.asarray(Z, np.float64)
    L = laplacian(A, normalization)
    return lam * float(np.trace(Z.T @ L @ Z)), 2 * lam * L @ Z


def spectral_edges(Z, A, lam=1.0, normalization="none"):
    """The same loss as a sum over edges i < j (the definition in the issue)."""
    Z = np.asarray(Z, np.float64)
    d = A.sum(axis=1)
    total = 0.0
    n = A.shape[0]
    for i in range(n):
        for j in range(i + 1, n):
            w = A[i, j]
            if w == 0:
                continue
            if normalization == "none":
                total += w * np.sum((Z[i] - Z[j]) ** 2)
            elif normalization == "edge":
                total += w / np.sqrt(d[i] * d[j]) * np.sum((Z[i] - Z[j]) ** 2)
            else:
                total += w * np.sum((Z[i] / np.sqrt(d[i]) - Z[j] / np.sqrt(d[j])) ** 2)
    return lam * total


def local_contrastive_items(Z, pairs, similar, margin):
    Z = np.asarray(Z, np.float64)
    out = np.zeros(len(pairs))
    for e, (u, v) in enumerate(pairs):
        d = np.linalg.norm(Z[u] - Z[v])
        out[e] = d * d if similar[e] else max(0.0, margin - d) ** 2
    return out


def local_contrastive_grad(Z, pairs, similar, margin, reduction="mean"):
    """Analytic gradient (0 for a dissimilar pair at zero distance)."""
    Z = np.asarray(Z, np.float64)
    G = np.zeros_like(Z)
    s = 1.0 / len(pairs) if (reduction == "mean" and len(pairs)) else 1.0
    for e, (u, v) in enumerate(pairs):
        diff = Z[u] - Z[v]
        d = np.linalg.norm(diff)
        if similar[e]:
            g = 2 * diff
        elif 0 < d < margin:
            g = -2 * (margin - d) * diff / d
        else:
            g = 0 * diff
        G[u] += s * g
        G[v] -= s * g
    return G


def reconstruction_negatives(graph, K, seed):
    """[num_arcs, K] negatives: inverse-CDF draws ∝ weighted degree^0.75 from hash(seed, arc, draw)."""
    deg = np.asarray(graph.degrees(weighted=True), np.float64)
    cdf = np.cumsum(deg ** 0.75)
    arcs = graph.num_arcs
    p = np.repeat(np.arange(arcs), K)
    k = np.tile(np.arange(K), arcs)
    u = uniform_array(seed, p, k)
    return np.searchsorted(cdf, u * cdf[-1], side="right").reshape(arcs, K)


def reconstruction_items(Z, graph, negs):
    """Per-arc losses -log σ(z_i·z_j) - Σ_n log σ(-z_i·z_n) in CSR order."""
    Z = np.asarray(Z, np.float64)
    out = np.zeros(graph.num_arcs)
    for i in range(graph.num_nodes):
        for p in range(graph.indptr[i], graph.indptr[i + 1]):
            j = graph.indices[p]
            s = Z[i] @ Z[j]
            total = np.logaddexp(0.0, -s)
            for n in negs[p]:
                total += np.logaddexp(0.0, Z[i] @ Z[n])
            out[p] = total
    return out


def multi_objective(losses, mode, weights=None, log_vars=None):
    L = np.asarray(losses, np.float64)
    if mode == "uncertainty":
        s = np.asarray(log_vars, np.float64)
        return float(np.sum(np.exp(-s) * L + s))
    return float(np.sum(np.asarray(weights, np.float64) * L))


def combine_dense(grads, weights):
    out = np.zeros(np.shape(grads[0]))
    for g, w in zip(grads, weights):
        out = out + w * np.asarray(g, np.float64)
    return out


def combine_sparse(grads, weights, width):
    acc = {}
    for (rows, vals), w in zip(grads, weights):
        for r, v in zip(rows, vals):
            acc[int(r)] = acc.get(int(r), np.zeros(width)) + w * np.asarray(v, np.float64)
    rows = np.array(sorted(acc), np.int64)
    return rows, np.array([acc[r] for r in rows]).reshape(len(rows), width)
