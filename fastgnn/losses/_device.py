"""Device paths of the loss functions: device arrays in, device gradients out, no host round trip of the data.

The public functions call these when any array argument is a device array (a numba device array, or anything
exposing ``__cuda_array_interface__``: CuPy arrays, PyTorch CUDA tensors). The contract:

* **device inputs** are viewed without copying (:class:`fastgnn._check.DeviceInputs`). Rank, shape, dtype and
  C-contiguity are checked on the host from their metadata; value checks (NaN/inf, index ranges) run as small
  device scans (:class:`fastgnn._check.DeviceChecks`) whose only traffic is one int64 status vector. Only float32
  and float64 arrays (no conversion: that would be a copy), int32/int64 ids and bool ``similar`` are accepted.
* **host inputs** given beside device ones are validated on the host as usual and uploaded (e.g. index arrays
  from a host miner); arrays written in place (``table_grad``, ``out``) must then be device arrays.
* **outputs**: the loss is a Python float (one float64 copied back) or, with ``reduction="none"``, a device
  array; every gradient is a device array. Index bookkeeping (grouping a table's gradient by row, incidence
  lists) runs on the device with a stable sort, so the sums run in the CPU's order.

Host synchronisations per call: one for the value checks of device inputs (none when every value check
ran on the host), one at the end (the loss, and InfoNCE's scan for a non-finite table row), and one more where
an output's shape depends on the data (the number of distinct rows of InfoNCE's table gradient, of
combine_gradients' row-sparse sum). No array is uploaded between kernel launches (on the legacy default
stream an upload would wait for them).
"""
from __future__ import annotations

import numpy as np

from .. import _check
from .. import backend as _backend
from ..graph import Graph
from ._common import inv_sqrt_degrees, reduction_weights, symmetric_view

_FLOATS = _check.FLOAT_DTYPES


def _k():
    return _backend.kernels("losses", "cuda")


def _a():
    return _backend.kernels("arrays", "cuda")


def _inplace(x, name, dtype, shape):
    """A device buffer the kernels add or write into: exact dtype and shape, C-contiguous, never converted."""
    if not _check.is_device_array(x):
        raise TypeError(f"{name}: the inputs are device arrays, so this buffer (updated in place) must be a device "
                        f"array too, got {type(x).__name__}")
    return _check.device_array(x, name, ndim=len(shape), shape=tuple(shape), dtypes=(dtype,), contiguous=True)


def _same_dtype(x, ref, name, refname):
    if x.dtype != ref.dtype:
        raise TypeError(f"{name}: dtype {x.dtype} differs from {refname}' dtype {ref.dtype} (pass both as float32 "
                        f"or both as float64)")


def _flat(x):
    return x if x.ndim == 1 else x.reshape(x.size)


def _loss_buffer(n, reduction, dtype):
    """Per-item losses: float64 when they are summed, the inputs' dtype when returned (``"none"``)."""
    return _a().empty(n, np.float64 if reduction != "none" else dtype)


def _reduce(loss, reduction, n, factor=1.0, status=None, table=None):
    """``"none"``: the device array; else the (mean of the) sum as a Python float, one float64 copied back.

    With ``status`` (from :func:`_status_head`, filled by ``launch_info_nce_rows``), a table row marked there is
    reported like on the host. The loss sum is then written into the status buffer's third word, so the status
    and the loss come back in one transfer: the call waits on the device once at its end.
    """
    summed = reduction != "none" and loss.size > 0
    if status is None:
        if not summed:
            return loss if reduction == "none" else 0.0
        head, slot = _a().empty(1, np.float64), 0
    else:
        head, slot = status.view(np.float64), 2
    if summed:
        _a().sum_into(_flat(loss), head, slot)
    host = head.copy_to_host()
    if status is not None:
        row = int(host.view(np.int64)[1])
        if row >= 0:
            _check.finite(table[row:row + 1].copy_to_host()[0], f"table: row {row}")
            raise ValueError(f"table: row {row} is too large (its squared norm overflows {table.dtype})")
    if reduction == "none":
        return loss
    total = factor * float(host[slot]) if summed else 0.0
    return total / n if (reduction == "mean" and n) else total


def _status_head():
    """InfoNCE's status pair (both -1: no bad table row) and a third int64 word that :func:`_reduce` reuses as
    the float64 loss sum: one buffer, one copy back."""
    return _a().full(3, -1, np.int64)


def _zeros2(shape, dtype):
    out = _a().empty(shape, dtype)
    if out.size:
        _a().fill(_flat(out), 0)
    return out


# --------------------------------------------------------------------------- InfoNCE
def info_nce(anchors, positives, negatives, table, table_grad, tau, cosine, reduction, symmetric):
    inp = _check.DeviceInputs()
    A = inp.floats(anchors, "anchors", ndim=2, shape=(None, None), allow_empty=False)
    P = inp.floats(positives, "positives", ndim=2, shape=tuple(A.shape))
    _same_dtype(P, A, "positives", "anchors")
    B, D = A.shape
    weight = reduction_weights(reduction, B)
    if negatives is None:
        inp.checks.run()
        return _inbatch(A, P, 1.0 / tau, cosine, reduction, symmetric, weight)

    if _check.is_device_array(negatives):
        neg_dtype = np.dtype(_check.device_array(negatives, "negatives", dtypes=None).dtype)
    else:
        neg_dtype = np.asarray(negatives).dtype
    kind = neg_dtype.kind
    if kind in "iu":
        if table is None:
            raise ValueError("table: required with integer negatives (ids are rows of table)")
        # only the rows that are read are checked for NaN/inf (by the kernel): the table may be huge
        T = inp.floats(table, "table", ndim=2, shape=(None, D), check_finite=False)
        _same_dtype(T, A, "table", "anchors")
        N = T.shape[0]
        ids = inp.ids(negatives, "negatives", upper=N, ndim=2, shape=(B, None), allow_pad=True,
                      what=f"table with {N} rows")
        if table_grad is not None:
            table_grad = _inplace(table_grad, "table_grad", T.dtype, T.shape)
        dense = False
    elif kind == "f":
        from .contrastive import no_table_with_vectors

        no_table_with_vectors(table, table_grad)
        N3 = inp.floats(negatives, "negatives", ndim=3, shape=(B, None, D))
        _same_dtype(N3, A, "negatives", "anchors")
        K = N3.shape[1]
        # slot k of anchor i is row i*K + k of the flattened negatives (no reshape of zero-size arrays)
        T = N3.reshape(B * K, D) if K else A
        ids = _a().iota(B * K).reshape(B, K) if K else None
        dense = True
    else:
        raise TypeError(f"negatives: expected integer ids [B, K] or float vectors [B, K, D], got dtype {neg_dtype}")
    inp.checks.run()

    k, a = _k(), _a()
    K = N3.shape[1] if dense else ids.shape[1]
    if K == 0:  # no negatives: one all-padding column keeps every buffer non-empty; the table is not read
        ids = a.full(B, -1, np.int64).reshape(B, 1)
    if T.size == 0:
        T = A
    Kc = ids.shape[1]
    loss = _loss_buffer(B, reduction, A.dtype)
    gA, gP = _a().empty((B, D), A.dtype), _a().empty((B, D), A.dtype)
    bad = _a().empty(B, np.int64)
    into = table_grad is not None and table_grad.shape[0] > 0
    # the coefficients of the table rows' terms: only for the grouped pass (a dense buffer is added into directly)
    cu, cv = (_a().empty((B, 0 if into else Kc), np.float64) for _ in range(2))
    status = _status_head()
    k.launch_info_nce_rows(A, P, T, ids, 1.0 / tau, cosine, a.full(B, weight), loss, gA, gP, cu, cv, bad,
                           k.info_nce_scratch(B, Kc), out=table_grad if into else None, guard=not dense,
                           status=status[:2])
    grads = {"anchors": gA, "positives": gP}
    if dense:
        gN = _a().empty((B, K, D), A.dtype)
        k.launch2(k._dense_slot_grad, B * K, D, A, N3, cu, cv, gN)
        grads["negatives"] = gN
        return _reduce(loss, reduction, B), grads
    if table_grad is not None:  # added into by the backward kernel (skipped on the device when a row is bad)
        grads["table"] = table_grad
        return _reduce(loss, reduction, B, status=status, table=T), grads
    if K == 0:
        rows, starts, order, major = (_a().empty(0, np.int64), _a().empty(1, np.int64), _a().empty(0, np.int64),
                                      _a().empty(0, np.int64))
    else:
        rows, starts, order, major = a.group_by_row(_flat(ids), K, bound=T.shape[0])
    # coefficients in grouped order: the table pass then streams them
    cu_g, cv_g = a.take(_flat(cu), order), a.take(_flat(cv), order)
    values = _a().empty((rows.shape[0], D), A.dtype)
    k.launch_table_grad_grouped(A, T, rows, starts, major, cu_g, cv_g, values, False)
    grads["table"] = (rows, values)
    return _reduce(loss, reduction, B, status=status, table=T), grads


def _inbatch(A, P, inv_tau, cosine, reduction, symmetric, weight):
    k, a = _k(), _a()
    B = A.shape[0]
    row_scale = a.full(B, weight * (0.5 if symmetric else 1.0))
    col_scale = row_scale if symmetric else a.full(B, 0.0)
    row_loss, col_loss, gA, gP = k.info_nce_inbatch_device(A, P, inv_tau, cosine, symmetric, row_scale, col_scale)
    item = _loss_buffer(B, reduction, A.dtype)
    if symmetric:
        a.average(row_loss, col_loss, item)
    elif reduction == "none":
        a.copy_into(row_loss, item, 0)
    else:
        item = row_loss
    return _reduce(item, reduction, B), {"anchors": gA, "positives": gP}


# --------------------------------------------------------------------------- local contrastive
def _graph_pairs(graph):
    """The graph's edges as an int64 device array [E, 2] (``graph.edges()`` order), uploaded once."""
    key = "device_edge_pairs"
    if key not in graph._cache:
        src, dst, _ = graph.edges()
        graph._cache[key] = _a().upload(np.stack([np.asarray(src, np.int64), np.asarray(dst, np.int64)], axis=1))
    return graph._cache[key]


def local_contrastive(Z, pairs, similar, margin, reduction):
    k, a = _k(), _a()
    inp = _check.DeviceInputs()
    Zd = inp.floats(Z, "Z", ndim=2, shape=(None, None))
    N, D = Zd.shape
    if isinstance(pairs, Graph):
        if pairs.num_nodes != N:
            raise ValueError(f"Z: expected {pairs.num_nodes} rows (graph.num_nodes), got {N}")
        if similar is None and reduction != "none" and not pairs.directed:
            inp.checks.run()
            # all pairs similar: the unweighted graph smoothness, one owner-computes pass over the CSR
            E = pairs.num_edges
            indptr, indices, w = pairs.device_arrays()
            grad, sq = _a().empty((N, D), Zd.dtype), _a().empty((N, D), np.float64)
            k.launch2(k._spectral_rows, N, D, indptr, indices, w, False, 0, a.full(1, 1.0), Zd,
                      reduction_weights(reduction, E), grad, sq)
            return _reduce(sq, reduction, E, factor=0.5), {"Z": grad}
        P2 = _graph_pairs(pairs)
    else:
        P2 = inp.ids(pairs, "pairs", upper=N, ndim=2, shape=(None, 2), what=f"Z with {N} rows")
    E = P2.shape[0]
    if similar is None:
        sim = a.full(E, True, np.bool_)
    elif _check.is_device_array(similar):
        sim = _check.device_array(similar, "similar", ndim=1, shape=(E,), dtypes=(np.bool_,), contiguous=True)
    else:
        from .contrastive import host_similar

        sim = a.upload(host_similar(similar, E))
    inp.checks.run()
    loss = _loss_buffer(E, reduction, Zd.dtype)
    gamma = _a().empty(E, np.float64)
    k.launch1(k._contrastive_pairs, E, Zd, P2, sim, margin, a.full(E, reduction_weights(reduction, E)), loss, gamma)
    # incidence lists on the device: endpoints sorted by node (stable), node x's at starts[x]:starts[x+1]
    keys, entries = a.sort_keys(_flat(P2), bound=N)  # node ids (checked): ceil(bits(N) / 8) radix passes
    starts = a.key_starts(keys, N)
    grad = _a().empty((N, D), Zd.dtype)
    k.launch2(k._contrastive_gather, N, D, Zd, P2, gamma, starts, entries, grad)
    return _reduce(loss, reduction, E), {"Z": grad}


# --------------------------------------------------------------------------- spectral, reconstruction
def _graph_embedding(Z, graph):
    inp = _check.DeviceInputs()
    Zd = inp.floats(Z, "Z", ndim=2, shape=(None, None))
    if Zd.shape[0] != graph.num_nodes:
        raise ValueError(f"Z: expected {graph.num_nodes} rows (graph.num_nodes), got {Zd.shape[0]}")
    inp.checks.run()
    return Zd


def spectral(Z, graph, lam, mode):
    k, a = _k(), _a()
    Zd = _graph_embedding(Z, graph)
    g = symmetric_view(graph)
    indptr, indices, w = g.device_arrays()
    if mode:
        key = "device_inv_sqrt_degrees"
        if key not in g._cache:
            g._cache[key] = a.upload(inv_sqrt_degrees(g))
        dscale = g._cache[key]
    else:
        dscale = a.full(1, 1.0)
    n, D = Zd.shape
    grad, sq = _a().empty((n, D), Zd.dtype), _a().empty((n, D), np.float64)
    k.launch2(k._spectral_rows, n, D, indptr, indices, w, g.weights is not None, mode, dscale, Zd, lam, grad, sq)
    # each undirected edge is visited from both ends
    return _reduce(sq, "sum", n * D, factor=0.5 * lam), {"Z": grad}


def _reconstruction_tables(graph):
    """Host ``(cdf, guide)`` plus their device copies and each arc's source node on the device, cached."""
    from .graph import negative_cdf

    key = "device_reconstruction_tables"
    if key not in graph._cache:
        a = _a()
        cdf, guide = negative_cdf(graph)
        src = np.repeat(np.arange(graph.num_nodes, dtype=np.int64), np.diff(graph.indptr))
        graph._cache[key] = (cdf, a.upload(cdf), a.upload(guide), a.upload(src))
    return graph._cache[key]


def reconstruction(Z, graph, K, seed, reduction):
    k, a = _k(), _a()
    Zd = _graph_embedding(Z, graph)
    arcs, N = graph.num_arcs, graph.num_nodes
    cdf, dcdf, dguide, arc_src = _reconstruction_tables(graph)
    if K and arcs and cdf[-1] <= 0:
        raise ValueError("graph: every weighted degree is 0, so no negatives can be drawn (num_negatives > 0)")
    D = Zd.shape[1]
    loss = _loss_buffer(arcs, reduction, Zd.dtype)
    if arcs == 0:
        return _reduce(loss, reduction, arcs), {"Z": _zeros2((N, D), Zd.dtype)}
    Kc = max(K, 1)  # one unused column when K == 0 keeps the buffers non-empty
    grad = _a().empty((N, D), Zd.dtype)
    negs, cneg = _a().empty((arcs, Kc), np.int64), _a().empty((arcs, Kc), np.float64)
    cpos = _a().empty(arcs, np.float64)
    scale = a.full(arcs, reduction_weights(reduction, arcs))
    indptr, indices, _ = graph.device_arrays()
    k.launch1(k._reconstruction_rows, N, indptr, indices, Zd, dcdf, dguide, K, np.uint64(seed), scale, loss, grad,
              negs, cpos, cneg)
    # the target-side gradients: z_j gets cpos * z_i, z_n gets cneg * z_i; grouped by target (stable sort on the
    # device, as the CPU groups them), applied by owner
    M = arcs * (1 + K)
    targets = _a().empty(M, np.int64)
    k.launch1(k._reconstruction_keys, M, indices, negs, Kc, targets)
    keys, pos = a.sort_keys(targets, bound=N)  # node ids: ceil(bits(N) / 8) radix passes
    starts = a.key_starts(keys, N)
    src, coef = _a().empty(M, np.int64), _a().empty(M, np.float64)
    k.launch1(k._reconstruction_sources, M, pos, arc_src, Kc, cpos, cneg, src, coef)
    k.launch_scatter_gather(Zd, src, coef, a.iota(N), starts, grad)
    return _reduce(loss, reduction, arcs), {"Z": grad}


# --------------------------------------------------------------------------- combining gradients
def combine_gradients(grads, w, out, is_sparse):
    k, a = _k(), _a()
    inp = _check.DeviceInputs()
    dense, dense_w, sparse, sparse_w = [], [], [], []
    for m, g in enumerate(grads):
        if is_sparse(g):
            r, v = g
            v = inp.floats(v, "grads values", ndim=2, check_finite=False)
            sparse.append((r, v))
            sparse_w.append(w[m])
        else:
            # gradients are not scanned for NaN/inf (as on the host): a non-finite gradient propagates
            if g is None:
                raise TypeError(f"grads[{m}]: expected an array, got None")
            if _check.is_device_array(g):
                dense.append(_check.device_array(g, f"grads[{m}]", dtypes=_FLOATS, contiguous=True))
            else:
                dense.append(a.upload(_check.float_array(g, f"grads[{m}]", check_finite=False)))
            dense_w.append(w[m])
    from .multi import gradient_layout

    dtype, shape, width, srows, svals = gradient_layout(dense, sparse, lambda r, upper, n: inp.ids(
        r, "grads rows", upper=upper, ndim=1, shape=(n,), what=f"dense gradients with {upper} rows"))
    if dense:
        out = _a().empty(shape, dtype) if out is None else _inplace(out, "out", dtype, shape)
    elif out is not None:
        raise ValueError("out: only used when some gradient is dense (row-sparse inputs give a row-sparse result)")
    inp.checks.run()
    if dense:
        if out.size:
            k.weighted_sum_device([_flat(g) for g in dense], np.asarray(dense_w), _flat(out))
        if sparse:
            rows, vals = _sparse_sum(srows, svals, sparse_w, dtype, width)
            k.launch2(k._add_rows, rows.shape[0], width, out, rows, vals)  # rows are distinct
        return out
    return _sparse_sum(srows, svals, sparse_w, dtype, width)


def _sparse_sum(srows, svals, sweights, dtype, width):
    k, a = _k(), _a()
    total = sum(r.shape[0] for r in srows)
    keys = _a().empty(total, np.int64)
    vals = _a().empty((total, width), dtype)
    entry_w = _a().empty(total, np.float64)
    off = 0
    for r, v, wm in zip(srows, svals, sweights):
        n = r.shape[0]
        if n:
            a.copy_into(r, keys, off)
            if width:
                a.copy_into(_flat(v), _flat(vals), off * width)
            a.fill(entry_w[off:off + n], float(wm))
        off += n
    rows, starts, order, _ = a.group_by_row(keys, 1)
    out = _a().empty((rows.shape[0], width), dtype)
    k.launch2(k._sparse_weighted_sum, rows.shape[0], width, vals, entry_w, starts, order, out)
    return rows, out
