"""Device paths of :mod:`fastgnn.mining`: device arrays in, device ids out, no host copy of the data.

:func:`fastgnn.mining.k_hop` and the miners' ``mine`` call these when an array argument is a device array (a
numba device array, or anything exposing ``__cuda_array_interface__``: CuPy arrays, PyTorch CUDA tensors); the
host inputs of ``backend="cuda"`` reach :func:`run_mine` / :func:`run_graph_mine` after their host checks.

* **device inputs** are viewed without copying (:class:`fastgnn._check.DeviceInputs`): rank, shape, dtype and
  C-contiguity come from their metadata; finiteness and id ranges are checked by device scans whose only
  traffic is one int64 status vector. Host arrays given beside them are checked on the host and uploaded.
* **work on the device**: inverse row norms, unit anchors, the positives' similarities, the per-anchor sort
  of a 2-d ``exclude``, the pool mask of a 1-d one, the k-hop rings; the graph's CSR is copied once per graph.
* **host round trips per call**: the status vector of the checks; k-hop (and so the graph miner) also reads
  back the total ring size, one int64 that sizes ``nodes``.
"""
from __future__ import annotations

import numpy as np

from . import _check
from . import backend as _backend
from .mining import (STRATEGIES, _call_seed, _embedding_rows, _labels, _pool_and_anchors, _strategy_caps,
                     _uses_labels, _uses_positives)


def arrays():
    return _backend.kernels("arrays", "cuda")


def _kernels():
    return _backend.kernels("mining", "cuda")


# --------------------------------------------------------------------------- k-hop
def _csr(graph):
    """The graph's ``(indptr, indices)`` on the device (cached on the graph; an arc-less graph's are not)."""
    if graph.num_arcs:
        return graph.device_arrays()[:2]
    return arrays().upload(graph.indptr), arrays().upload(graph.indices)


def k_hop(graph, sources, k, min_hops):
    """:func:`fastgnn.mining.k_hop` for validated device ``sources``: device ``(offsets, nodes)``."""
    if sources.shape[0] == 0:
        return arrays().full(1, 0, np.int64), arrays().empty(0, graph.indices.dtype)
    k = min(k, max(graph.num_nodes, 1))  # no shortest path is longer than n - 1 hops
    indptr, indices = _csr(graph)
    return _kernels().launch_k_hop(indptr, indices, sources, k, min_hops)


# --------------------------------------------------------------------------- similarity miner
def _labels_of(x, name, length):
    """A device array viewed (int32/int64; any values compare, so none are checked), a host one checked and
    uploaded."""
    if not _check.is_device_array(x):
        return arrays().upload(_labels(x, name, length))
    d = _check.device_array(x, name, dtypes=_check.INT_DTYPES, contiguous=True)
    if d.ndim != 1 or d.shape[0] != length:
        raise ValueError(f"{name}: expected {length} labels (shape [{length}]), got shape {tuple(d.shape)}")
    return d


def _exclude(inp, exclude, B, P):
    """``exclude`` as a device id array (2-d: ``-1`` padded rows) with its range check queued, or None."""
    if exclude is None:
        return None
    view = (_check.device_array(exclude, "exclude", dtypes=None) if _check.is_device_array(exclude)
            else np.asarray(exclude))
    what = f"a pool with {P} rows"
    if view.ndim == 2:
        return inp.ids(view, "exclude", upper=P, ndim=2, shape=(B, None), allow_pad=True, what=what)
    return inp.ids(view, "exclude", upper=P, ndim=1, what=what)


def run_mine(miner, unit, pool, inv_pool, args):
    """The similarity miner's CUDA kernels on device arrays (``args`` as the CPU kernels'): device int64 [B, K]."""
    B, P = unit.shape[0], pool.shape[0]
    out = arrays().empty((B, miner.num_negatives), np.int64)
    caps = _strategy_caps(args[0], miner.num_negatives, miner.hard_ratio)
    return _kernels().launch_mine(unit, pool, inv_pool, miner._block(B, P), args, caps, out)


def mine(miner, anchors, positives, pool, anchor_labels, pool_labels, exclude):
    """:meth:`fastgnn.mining.HardNegativeMiner.mine` with some device input."""
    mode = STRATEGIES[miner.strategy]
    K = miner.num_negatives
    a = arrays()
    inp = _check.DeviceInputs()
    pool, anchors = _pool_and_anchors(inp.floats, pool, anchors, K)
    (P, D), B, dtype = pool.shape, anchors.shape[0], pool.dtype
    if _uses_positives(positives, mode):
        positives = inp.floats(positives, "positives", ndim=2, shape=(B, D))
    use_labels = _uses_labels(anchor_labels, pool_labels)
    if use_labels:
        a_lab, p_lab = _labels_of(anchor_labels, "anchor_labels", B), _labels_of(pool_labels, "pool_labels", P)
    else:
        a_lab = p_lab = a.full(1, 0, np.int64)
    ex = _exclude(inp, exclude, B, P)
    if B:  # as on the host, an empty batch reads no pool values
        inp.checks.finite(pool, "pool")
    inp.checks.run()
    seed = _call_seed(miner.seed, miner.calls)
    miner.calls += 1
    if B == 0:
        return arrays().empty((0, K), np.int64)
    kc = _kernels()
    two_d = ex is not None and ex.ndim == 2
    excl = kc.launch_sort_exclude(ex, P) if two_d else arrays().empty((B, 0), np.int64)
    use_mask = ex is not None and not two_d
    pool_mask = a.scatter_fill(a.full(P, True, np.bool_), ex, False) if use_mask else a.full(1, True, np.bool_)
    unit, pos_sim = kc.launch_anchor_prep(anchors, positives, dtype)
    args = (mode, miner.alpha, np.uint64(seed), pos_sim, a_lab, p_lab, use_labels, pool_mask, use_mask, excl)
    return run_mine(miner, unit, pool, kc.launch_inv_norms(pool), args)


# --------------------------------------------------------------------------- graph miner
def run_graph_mine(miner, graph, E, inv, anchors, seed):
    """Rings and scoring on CUDA from device ``E``, ``inv`` (float64 inverse row norms) and ``anchors`` (B > 0):
    device int64 ids [B, K]."""
    mode = STRATEGIES[miner.strategy]
    K = miner.num_negatives
    offsets, nodes = k_hop(graph, anchors, miner.hops, miner.min_hops)
    out = arrays().empty((anchors.shape[0], K), np.int64)
    return _kernels().launch_graph_mine(E, inv, anchors, offsets, nodes, mode, miner.alpha, np.uint64(seed),
                                        _strategy_caps(mode, K, miner.hard_ratio), out)


def graph_mine(miner, embeddings, graph, anchors):
    """:meth:`fastgnn.mining.GraphHardNegativeMiner.mine` with some device input."""
    n = graph.num_nodes
    inp = _check.DeviceInputs()
    E = _embedding_rows(inp.floats(embeddings, "embeddings", ndim=2, check_finite=False), n)
    anchors = inp.ids(anchors, "anchors", upper=n, ndim=1, what=f"a graph with {n} nodes")
    inp.checks.finite(E, "embeddings")  # after the anchors, in the host path's order
    inp.checks.run()
    seed = _call_seed(miner.seed, miner.calls)
    miner.calls += 1
    if anchors.shape[0] == 0:
        return arrays().empty((0, miner.num_negatives), np.int64)
    return run_graph_mine(miner, graph, E, _kernels().launch_inv_norms(E), anchors, seed)
