"""Random walks over a CSR graph: uniform / weighted first-order walks and node2vec walks.

The walks are the input of DeepWalk / node2vec skip-gram training: an int32 matrix whose rows are
walks, C-contiguous so it can be fed straight into a kernel.
"""
from __future__ import annotations

import numpy as np

from . import _check
from . import backend as _backend
from .graph import Graph

__all__ = ["random_walks"]


def _sorted_csr(graph: Graph):
    """``(indptr, indices, weights)`` with each neighbour list sorted (cached on the graph).

    Graphs built by ``Graph.from_edges`` are already sorted, so this is a check and no copy.
    """
    key = "walks_sorted_csr"
    if key not in graph._cache:
        indptr, indices, weights = graph.indptr, graph.indices, graph.weights
        n = graph.num_nodes
        ok = True
        if indices.size > 1:
            dec = np.flatnonzero(indices[1:] < indices[:-1]) + 1  # positions where the value drops
            # a drop is fine only at the first arc of a row
            starts = np.zeros(indices.size + 1, bool)
            starts[indptr[:-1]] = True
            ok = bool(starts[dec].all())
        if not ok:
            rows = np.repeat(np.arange(n, dtype=np.int64), np.diff(indptr))
            order = np.lexsort((indices, rows))
            indices = np.ascontiguousarray(indices[order])
            weights = None if weights is None else np.ascontiguousarray(weights[order])
        graph._cache[key] = (indptr, indices, weights)
    return graph._cache[key]


def _cumulative(graph: Graph, indptr, weights, k):
    key = "walks_cumulative_weights"
    if key not in graph._cache:
        cum = np.empty(weights.size, np.float64)
        k.row_cumsum(indptr, weights, cum)
        graph._cache[key] = cum
    return graph._cache[key]


def _device_csr(graph: Graph, indptr, indices, cum):
    """Device copies of the walk CSR and cumulative weights, made once per graph (graphs are immutable).

    When the graph's own arrays are already sorted, its :meth:`~fastgnn.Graph.device_arrays` are shared.
    """
    key = "walks_device_csr"
    if key not in graph._cache:
        from .kernels.cuda.arrays import upload

        if indptr is graph.indptr and indices is graph.indices and graph.num_arcs:
            dptr, didx, _ = graph.device_arrays()
        else:
            dptr, didx = upload(indptr), upload(indices)
        graph._cache[key] = (dptr, didx, upload(cum))
    return graph._cache[key]


def random_walks(graph, walk_length, walks_per_node, p=1.0, q=1.0, seed=None, start_nodes=None, backend=None,
                 output=None):
    """Random walks over ``graph``: first-order (``p == q == 1``) or node2vec second-order.

    A first-order walk moves from ``v`` to a neighbour ``x`` with probability ``w(v,x) / Σ_y w(v,y)``
    (uniform when the graph is unweighted). A node2vec walk that came from ``t`` moves from ``v`` to
    ``x`` with probability ``∝ w(v,x)·α(t,x)``, ``α = 1/p`` if ``x = t``, ``1`` if ``x`` is a
    neighbour of ``t``, ``1/q`` otherwise; it is drawn by rejection sampling (the way back is folded
    into the envelope), with no per-edge precomputation.

    Parameters
    ----------
    graph : Graph
        Walks follow stored arcs (both directions of an undirected edge).
    walk_length : int >= 1
        Nodes per walk, the start node included.
    walks_per_node : int >= 1
        Walks started from each start node.
    p, q : float > 0
        node2vec return and in-out parameters; ``p == q == 1`` is the first-order fast path.
    seed : int, optional
        Same seed, same walks, at any thread count and on either backend. ``None``: a fresh seed.
    start_nodes : int array [S], optional
        Start nodes (repeats allowed); default: every node ``0 .. num_nodes - 1``. May be a CUDA device
        array (numba, or any object exposing ``__cuda_array_interface__``: CuPy, PyTorch CUDA tensors) of
        int32/int64, C-contiguous: it is used without a copy, its range is checked by a device scan (one int64
        pair read back), the walks run on CUDA and, by default, stay there.
    backend : "cpu" | "cuda" | "auto", optional
        Device ``start_nodes`` or ``output="device"`` imply ``"cuda"``; an explicit ``"cpu"`` with them is
        a ``ValueError``.
    output : None | "host" | "device"
        Where the walks are returned: ``"host"`` a numpy array, ``"device"`` a numba device array (CUDA
        backend; no copy back to the host). ``None``: ``"device"`` when ``start_nodes`` is a device array,
        else ``"host"``. On CUDA the graph's CSR (and cumulative weights) is copied to the device once and
        cached on the (immutable) graph.

    Returns
    -------
    walks : int32 array [walks_per_node * S, walk_length], C-contiguous (a device array for ``output="device"``)
        Walk-major order: row ``r * S + s`` is the ``r``-th walk from ``start_nodes[s]`` (every start
        node's first walk, then every start node's second walk, ...). A walk that reaches a node with
        no out-neighbours (or only zero-weight arcs) stops there; the rest of its row is ``-1``.

    Raises
    ------
    TypeError
        ``graph`` not a Graph, non-integer ``walk_length`` / ``walks_per_node`` / ``start_nodes``, a device
        ``start_nodes`` that is not int32/int64 or not C-contiguous.
    ValueError
        ``walk_length < 1``, ``walks_per_node < 1``, ``p`` or ``q`` not > 0, ``start_nodes`` out of range,
        unknown ``output``, device input or output with ``backend="cpu"``.

    Examples
    --------
    >>> g = Graph.from_edges([0, 1], [1, 2])
    >>> random_walks(g, walk_length=4, walks_per_node=2, seed=0).shape
    (6, 4)
    """
    if not isinstance(graph, Graph):
        raise TypeError(f"graph: expected a fastgnn.Graph, got {type(graph).__name__}")
    walk_length = _check.integer(walk_length, "walk_length", minimum=1)
    walks_per_node = _check.integer(walks_per_node, "walks_per_node", minimum=1)
    p = _check.real(p, "p", minimum=0.0, strict_min=True)
    q = _check.real(q, "q", minimum=0.0, strict_min=True)
    seed = _check.seed_value(seed)
    n = graph.num_nodes
    if n >= 2**31 - 1:
        raise ValueError(f"graph: {n} nodes do not fit the int32 walk matrix")
    device_starts = start_nodes is not None and _check.is_device_array(start_nodes)
    output = _check.choice(output, "output", (None, "host", "device"))
    if output is None:
        output = "device" if device_starts else "host"
    if device_starts or output == "device":
        if backend is not None and _backend._validate_name(backend) == "cpu":
            what = "start_nodes: a CUDA device array" if device_starts else "output: 'device'"
            raise ValueError(f"{what} needs backend 'cuda' (or None / 'auto'), got 'cpu'")
        name = _backend.resolve("cuda")
    else:
        name = _backend.resolve(backend)
    if start_nodes is None:
        starts = np.arange(n, dtype=np.int32)
    elif device_starts:
        starts = _check.device_array(start_nodes, "start_nodes", ndim=1, dtypes=(np.int32, np.int64), contiguous=True)
        checks = _check.DeviceChecks()
        checks.index(starts, "start_nodes", upper=n, what=f"a graph with {n} nodes")
        checks.run()
    else:
        starts = _check.index_array(start_nodes, "start_nodes", upper=n, what=f"a graph with {n} nodes",
                                    dtype=np.int32)
    shape = (walks_per_node * starts.shape[0], walk_length)
    if output == "device":
        from numba import cuda

        out = cuda.device_array(shape, dtype=np.int32)
    else:
        out = np.empty(shape, np.int32)
    if out.size == 0:
        return out
    second = not (p == 1.0 and q == 1.0)
    k = _backend.kernels("walks", "cpu")  # the cumulative weights are built on the CPU either way (once per graph)
    indptr, indices, weights = _sorted_csr(graph)
    weighted = weights is not None
    cum = _cumulative(graph, indptr, weights, k) if weighted else np.zeros(1, np.float64)
    if name == "cuda":
        kc = _backend.kernels("walks", "cuda")
        dptr, didx, dcum = _device_csr(graph, indptr, indices, cum)
        kc.launch_random_walks(dptr, didx, dcum, weighted, second, 1.0 / p, 1.0 / q, starts, seed, out)
    else:
        k.random_walks(indptr, indices, cum, weighted, second, 1.0 / p, 1.0 / q, starts, seed, out)
    return out
