"""Graph losses: spectral smoothness, edge reconstruction, and Laplacian eigenvalues."""
from __future__ import annotations

import numpy as np

from .. import _check
from ._common import (REDUCTIONS, check_graph, device_call, inv_sqrt_degrees, kernels, reduce, reduction_weights,
                      symmetric_view)

__all__ = ["spectral", "reconstruction", "laplacian_eigenvalues"]

# normalization name -> kernel mode (see kernels/cpu/losses.py:spectral_rows)
_SPECTRAL_MODES = {"none": 0, "sym": 1, "edge": 2}


def _embedding(Z, graph):
    Z = _check.float_array(Z, "Z", ndim=2, shape=(None, None))
    if Z.shape[0] != graph.num_nodes:
        raise ValueError(f"Z: expected {graph.num_nodes} rows (graph.num_nodes), got {Z.shape[0]}")
    return Z


def spectral(Z, graph, lam=1.0, normalization="none", *, backend=None):
    """Spectral (Laplacian smoothness) loss with its exact gradient.

    ``"none"``: ``λ·tr(ZᵀLZ) = λ Σ_(i,j)∈E w_ij‖z_i − z_j‖²``; ``"sym"``: ``λ·tr(Zᵀ L_sym Z)`` with
    ``L_sym = I − D^−½AD^−½``; ``"edge"``: ``λ Σ_(i,j)∈E w_ij/√(d_i d_j)‖z_i − z_j‖²``. ``D`` holds the
    weighted degrees; isolated nodes contribute nothing (their ``L_sym`` diagonal is 0, as in
    ``scipy.sparse.csgraph.laplacian(normed=True)``). A directed graph is symmetrised first
    (``A + Aᵀ``), so ``"none"`` is then the sum over its arcs. The gradient is ``2λ L Z``.

    Parameters
    ----------
    Z : float array [num_nodes, D]
        float32 (default) or float64; finite.
    graph : Graph
    lam : float
        Finite weight λ.
    normalization : "none" | "sym" | "edge"
    backend : "cpu" | "cuda" | "auto", optional
        A device ``Z`` implies ``"cuda"``; an explicit ``"cpu"`` with it is a ``ValueError``.

    Returns
    -------
    loss : float
    grads : dict
        ``{"Z": array [num_nodes, D]}``.

    Raises
    ------
    TypeError, ValueError
        wrong graph type, ``Z`` shape or dtype, non-finite values, unknown ``normalization``, a non-contiguous
        device ``Z``, a device ``Z`` with ``backend="cpu"``.

    Notes
    -----
    Device inputs: ``Z`` may be a CUDA device array (numba, or any object exposing ``__cuda_array_interface__``;
    float32 or float64, C-contiguous). It is used without a copy (NaN/inf checked by a device scan), the graph's CSR
    and degree scales are copied to the device once and cached on the graph, the loss comes back as a Python float
    and ``grads["Z"]`` is a numba device array.

    Examples
    --------
    >>> import numpy as np
    >>> from fastgnn import Graph
    >>> g = Graph.from_edges([0], [1])
    >>> loss, grads = spectral(np.array([[0.0], [2.0]], np.float32), g)
    >>> loss, grads["Z"].ravel().tolist()
    (4.0, [-4.0, 4.0])
    """
    if device_call(backend, Z=Z):
        graph = check_graph(graph)
        lam = _check.real(lam, "lam")
        mode = _SPECTRAL_MODES[_check.choice(normalization, "normalization", tuple(_SPECTRAL_MODES))]
        from . import _device

        return _device.spectral(Z, graph, lam, mode)
    graph = check_graph(graph)
    Z = _embedding(Z, graph)
    lam = _check.real(lam, "lam")
    mode = _SPECTRAL_MODES[_check.choice(normalization, "normalization", tuple(_SPECTRAL_MODES))]
    g = symmetric_view(graph)
    has_w = g.weights is not None
    w = g.weights if has_w else np.ones(1, np.float32)
    dscale = inv_sqrt_degrees(g) if mode else np.ones(1)
    _, k = kernels(backend)
    grad = np.empty_like(Z)
    row_loss = np.empty(g.num_nodes, np.float64)
    k.spectral_rows(g.indptr, g.indices, w, has_w, mode, dscale, Z, lam, grad, row_loss)
    # each undirected edge is visited from both ends
    return 0.5 * lam * float(row_loss.sum()), {"Z": grad}


def negative_cdf(graph):
    """The negative-sampling table: float64 cumulative sums of ``degree^0.75`` (weighted out-degrees) and a
    guide (for each of ``N`` equal slices of the total, the first node past its start) for O(1) draws."""
    deg = np.asarray(graph.degrees(weighted=True), np.float64)
    cdf = np.cumsum(deg ** 0.75)
    if cdf.size == 0 or cdf[-1] <= 0:
        return np.zeros(1), np.zeros(1, np.int64)
    guide = np.searchsorted(cdf, np.arange(cdf.size) * (cdf[-1] / cdf.size), side="right")
    return cdf, np.minimum(guide, cdf.size - 1).astype(np.int64)


def reconstruction(Z, graph, num_negatives=5, *, seed=0, reduction="mean", backend=None):
    """Edge reconstruction loss with negative sampling (LINE / graph auto-encoder form), exact gradients.

    For every stored arc ``(i, j)`` (an undirected edge is used in both directions):
    ``L_ij = −log σ(z_i·z_j) − Σ_n log σ(−z_i·z_n)`` with ``num_negatives`` nodes ``n`` drawn
    ``∝ degree^0.75`` (weighted out-degree) from a counter-based hash of ``(seed, arc, draw)``: the same
    seed gives the same negatives at any thread count and on CUDA. Edge weights do not scale the terms.

    Parameters
    ----------
    Z : float array [num_nodes, D]
    graph : Graph
    num_negatives : int >= 0
    seed : int >= 0
        Pass a different seed at every training step to draw fresh negatives.
    reduction : "mean" | "sum" | "none"
        Mean over arcs; ``"none"`` returns per-arc losses [num_arcs] in CSR order (gradients of their sum).
    backend : "cpu" | "cuda" | "auto", optional
        A device ``Z`` implies ``"cuda"``; an explicit ``"cpu"`` with it is a ``ValueError``.

    Returns
    -------
    loss : float, or array [num_arcs]
    grads : dict
        ``{"Z": array [num_nodes, D]}``.

    Raises
    ------
    TypeError, ValueError
        wrong graph type, ``Z`` shape or dtype, non-finite values, ``num_negatives < 0``, negative seed,
        unknown ``reduction``, a non-contiguous device ``Z``, a device ``Z`` with ``backend="cpu"``.

    Notes
    -----
    Device inputs: ``Z`` may be a CUDA device array (numba, or any object exposing ``__cuda_array_interface__``;
    float32 or float64, C-contiguous). It is used without a copy (NaN/inf checked by a device scan); the graph's
    CSR, the negative-sampling table and each arc's source are copied to the device once and cached on the graph;
    the target-side gradients are grouped by a stable sort on the device (the CPU's summation order). The loss comes
    back as a Python float (a device array for ``reduction="none"``), ``grads["Z"]`` as a numba device array.

    Examples
    --------
    >>> import numpy as np
    >>> from fastgnn import Graph
    >>> g = Graph.from_edges([0], [1])
    >>> loss, grads = reconstruction(np.zeros((2, 3), np.float32), g, num_negatives=1)
    >>> round(loss, 4)  # 2 log 2
    1.3863
    """
    if device_call(backend, Z=Z):
        graph = check_graph(graph)
        K = _check.integer(num_negatives, "num_negatives", minimum=0)
        seed = _check.seed_value(seed)
        reduction = _check.choice(reduction, "reduction", REDUCTIONS)
        from . import _device

        return _device.reconstruction(Z, graph, K, seed, reduction)
    graph = check_graph(graph)
    Z = _embedding(Z, graph)
    K = _check.integer(num_negatives, "num_negatives", minimum=0)
    seed = _check.seed_value(seed)
    reduction = _check.choice(reduction, "reduction", REDUCTIONS)
    arcs = graph.num_arcs
    N = graph.num_nodes
    cdf, guide = negative_cdf(graph)
    if K and arcs and cdf[-1] <= 0:
        raise ValueError("graph: every weighted degree is 0, so no negatives can be drawn (num_negatives > 0)")
    _, k = kernels(backend)
    loss = np.empty(arcs, np.float64)
    grad = np.empty_like(Z)
    negs = np.empty((arcs, K), np.int64)
    cpos = np.empty(arcs, np.float64)
    cneg = np.empty((arcs, K), np.float64)
    scale = np.full(arcs, reduction_weights(reduction, arcs), np.float64)
    k.reconstruction_rows(graph.indptr, graph.indices, Z, cdf, guide, K, seed, scale, loss, grad, negs, cpos, cneg)
    # the target-side gradients: z_j gets cpos * z_i, z_n gets cneg * z_i; grouped by target, applied by owner
    from ..kernels.cpu.losses import group_by_row

    src_arc = np.repeat(np.arange(N, dtype=np.int64), np.diff(graph.indptr))
    targets = np.concatenate([np.asarray(graph.indices, np.int64), negs.ravel()])
    rows, starts, order, _ = group_by_row(targets, N, 1)
    # sources and coefficients in grouped order, so the scatter pass streams them
    src = np.concatenate([src_arc, np.repeat(src_arc, K)])[order]
    coef = np.concatenate([cpos, cneg.ravel()])[order]
    k.scatter_gather(Z, src, coef, rows, starts, grad)
    return reduce(loss, reduction, Z.dtype), {"Z": grad}


_EIG_NORMS = ("none", "sym")
_WHICH = ("smallest", "largest")
_DENSE_MAX = 512


def laplacian_eigenvalues(graph, k, normalization="sym", which="smallest", return_vectors=False):
    """The ``k`` smallest (or largest) eigenvalues of the graph Laplacian.

    ``L = D − A`` (``"none"``) or ``L_sym = I − D^−½AD^−½`` (``"sym"``; isolated nodes have a zero row),
    ``L v = λ v``. Graphs up to 512 nodes use a dense ``numpy.linalg.eigh``; larger ones Lanczos
    (``scipy.sparse.linalg.eigsh``) on the shifted operator ``cI − L`` (``c`` a Gershgorin bound), whose
    largest eigenvalues are ``L``'s smallest. A directed graph is symmetrised (``A + Aᵀ``) first.

    Parameters
    ----------
    graph : Graph
    k : int, 1 <= k < num_nodes
    normalization : "sym" | "none"
    which : "smallest" | "largest"
    return_vectors : bool

    Returns
    -------
    eigenvalues : float64 array [k], ascending
    eigenvectors : float64 array [num_nodes, k], only with ``return_vectors`` (unit columns, aligned)

    Raises
    ------
    TypeError
        not a Graph, non-integer ``k``.
    ValueError
        ``k < 1`` or ``k >= num_nodes``, unknown ``normalization`` or ``which``.

    Examples
    --------
    >>> from fastgnn import Graph
    >>> g = Graph.from_edges([0, 1], [1, 2])  # a path: L_sym eigenvalues 0, 1, 2
    >>> (laplacian_eigenvalues(g, 2).round(6) + 0.0).tolist()  # + 0.0 turns a -0.0 into 0.0
    [0.0, 1.0]
    """
    graph = check_graph(graph)
    n = graph.num_nodes
    k = _check.integer(k, "k", minimum=1)
    if k >= n:
        raise ValueError(f"k: must be smaller than the number of nodes ({n}), got {k}")
    norm = _check.choice(normalization, "normalization", _EIG_NORMS)
    which = _check.choice(which, "which", _WHICH)
    if not isinstance(return_vectors, (bool, np.bool_)):
        raise TypeError(f"return_vectors: expected a bool, got {type(return_vectors).__name__}")
    L, bound = _laplacian(symmetric_view(graph), norm)
    if n <= _DENSE_MAX:
        vals, vecs = np.linalg.eigh(L.toarray())
        sel = slice(0, k) if which == "smallest" else slice(n - k, n)
        vals, vecs = vals[sel], vecs[:, sel]
    else:
        import scipy.sparse as sp
        from scipy.sparse.linalg import eigsh

        v0 = np.random.default_rng(0).standard_normal(n)  # fixed start vector: reproducible results
        if which == "smallest":
            M = (bound * sp.identity(n, format="csr") - L).tocsr()
            vals, vecs = eigsh(M, k=k, which="LA", v0=v0, tol=1e-10)
            vals = bound - vals
        else:
            vals, vecs = eigsh(L, k=k, which="LA", v0=v0, tol=1e-10)
        order = np.argsort(vals)
        vals, vecs = vals[order], vecs[:, order]
    vals = np.asarray(vals, np.float64)
    if return_vectors:
        return vals, np.asarray(vecs, np.float64)
    return vals


def _laplacian(graph, norm):
    """Sparse float64 Laplacian and an upper bound on its spectrum."""
    import scipy.sparse as sp

    A = graph.to_scipy().astype(np.float64)
    deg = np.asarray(graph.degrees(weighted=True), np.float64)
    if norm == "none":
        L = sp.diags(deg) - A
        bound = 2.0 * float(deg.max(initial=0.0)) + 1e-6
    else:
        inv = inv_sqrt_degrees(graph)
        L = sp.diags((deg > 0).astype(np.float64)) - sp.diags(inv) @ A @ sp.diags(inv)
        bound = 2.0 + 1e-6
    return L.tocsr(), bound
