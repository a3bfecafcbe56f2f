"""Shared helpers of the loss functions: reductions, backend dispatch, graph views."""
from __future__ import annotations

import weakref

import numpy as np

from .. import _check
from .. import backend as _backend
from ..graph import Graph

REDUCTIONS = ("mean", "sum", "none")

# directed graph -> its symmetrised view A + A^T (graphs are immutable, so the view stays valid)
_SYMMETRIC = weakref.WeakKeyDictionary()


def reduction_weights(reduction: str, n: int) -> float:
    """Gradient weight of each item: 1/n for a mean (1 if n == 0), else 1."""
    if reduction == "mean":
        return 1.0 / n if n else 1.0
    return 1.0


def reduce(per_item: np.ndarray, reduction: str, dtype):
    """Apply ``reduction`` to float64 per-item losses (a float, or an array of ``dtype`` for "none")."""
    if reduction == "none":
        return per_item.astype(dtype)
    total = float(per_item.sum())
    if reduction == "mean":
        return total / per_item.size if per_item.size else 0.0
    return total


def kernels(backend):
    """``(backend_name, kernel_module)`` for the resolved backend."""
    name = _backend.resolve(backend)
    return name, _backend.kernels("losses", name)


device_call = _check.device_call  # device inputs imply CUDA (shared with the miners)


def check_graph(graph, name="graph") -> Graph:
    if not isinstance(graph, Graph):
        raise TypeError(f"{name}: expected a fastgnn.Graph, got {type(graph).__name__}")
    return graph


def symmetric_view(graph: Graph) -> Graph:
    """The graph itself when undirected, else ``A + A^T`` (weights summed), cached per graph."""
    if not graph.directed:
        return graph
    sym = _SYMMETRIC.get(graph)
    if sym is None:
        A = graph.to_scipy().astype(np.float64)
        sym = Graph.from_scipy((A + A.T).tocsr(), directed=False)
        _SYMMETRIC[graph] = sym
    return sym


def inv_sqrt_degrees(graph: Graph) -> np.ndarray:
    """float64 d^-1/2 of the weighted degrees, 0 for isolated nodes."""
    deg = np.asarray(graph.degrees(weighted=True), np.float64)
    out = np.zeros_like(deg)
    pos = deg > 0
    out[pos] = deg[pos] ** -0.5
    return out
