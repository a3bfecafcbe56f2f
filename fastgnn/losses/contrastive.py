"""InfoNCE and local (pairwise margin) contrastive losses."""
from __future__ import annotations

import numpy as np

from .. import _check
from ..graph import Graph
from ._common import REDUCTIONS, device_call, kernels, reduce, reduction_weights

__all__ = ["info_nce", "local_contrastive"]

SIMILARITIES = ("cosine", "dot")


def _same_dtype(x, ref, name, refname):
    if x.dtype != ref.dtype:
        raise TypeError(f"{name}: dtype {x.dtype} differs from {refname}' dtype {ref.dtype} (pass both as float32 or both as float64)")


def info_nce(anchors, positives, negatives=None, *, table=None, temperature=0.07, similarity="cosine",
             reduction="mean", symmetric=False, table_grad=None, backend=None):
    """InfoNCE (NT-Xent) loss with exact gradients.

    ``L_i = -log(exp(s(a_i, p_i)/τ) / (exp(s(a_i, p_i)/τ) + Σ_k exp(s(a_i, n_ik)/τ)))``, computed with
    log-sum-exp in float64; ``s`` is cosine ``a·b / max(‖a‖‖b‖, 1e-8)`` or the dot product.

    Parameters
    ----------
    anchors : float array [B, D]
        float32 (default) or float64; finite.
    positives : float array [B, D]
        Same shape and dtype as ``anchors``.
    negatives : None, int array [B, K] or float array [B, K, D]
        * int ids into ``table`` (the fast path: no copies of negative vectors); ``-1`` marks padding
          and is skipped (a row of only padding has loss 0);
        * float vectors, same dtype as ``anchors``;
        * ``None``: in-batch negatives, the other rows of ``positives`` (``B`` logits per anchor).
    table : float array [N, D], optional
        Embedding table indexed by integer ``negatives`` (required with them, refused otherwise). Only the
        rows that are read are checked for NaN/inf (the table may be far larger than a batch).
    temperature : float > 0
    similarity : "cosine" | "dot"
    reduction : "mean" | "sum" | "none"
        ``"none"`` returns the per-anchor losses [B]; gradients are then those of their sum.
    symmetric : bool
        In-batch only: ``L = (L_rows + L_columns) / 2``, the columns being the positives' InfoNCE against
        the anchors (SimCLR / CLIP form). With ``reduction="none"`` the item ``i`` is ``(L_row_i + L_col_i) / 2``.
    table_grad : float array [N, D], optional
        Dense buffer (``table``'s dtype, C-contiguous) the table gradient is *added* into; without it the
        table gradient is returned row-sparse.
    backend : "cpu" | "cuda" | "auto", optional
        Device inputs imply ``"cuda"``; an explicit ``"cpu"`` with them is a ``ValueError``.

    Returns
    -------
    loss : float, or array [B] for ``reduction="none"``
    grads : dict
        ``"anchors"`` [B, D], ``"positives"`` [B, D], and ``"negatives"`` [B, K, D] (float negatives) or
        ``"table"`` (index negatives): ``(rows, values)`` with sorted distinct int64 ``rows`` and
        ``values`` [len(rows), D], or ``table_grad`` itself when given.

    Raises
    ------
    TypeError
        non-numeric arrays, float ids, dtype mismatches, a ``table_grad`` of the wrong dtype or layout (or a
        host ``table_grad`` with device inputs), non-contiguous device arrays.
    ValueError
        shape mismatches, ids < -1 or >= N, ``temperature <= 0``, non-finite inputs, unknown
        ``similarity`` / ``reduction``, ``table`` without integer negatives, ``symmetric`` with explicit
        negatives, device inputs with ``backend="cpu"``.

    Notes
    -----
    Device inputs: Any array argument may be a CUDA device array (numba, or any object exposing
    ``__cuda_array_interface__``: CuPy, PyTorch CUDA tensors). The call then runs on CUDA without copying the data:
    float arrays must be float32/float64 and ids int32/int64 (no conversion), all C-contiguous; shapes and dtypes
    are checked from the metadata, NaN/inf in ``anchors``/``positives``/float ``negatives`` and the id range by
    device scans (one int64 status vector read back). Host arrays passed beside them are validated on the host and
    uploaded; ``table_grad`` must then be a device array. The loss comes back as a Python float (a device array for
    ``reduction="none"``) and every gradient as a numba device array; the table gradient's row grouping is a stable
    sort on the device (two counts are read back to size it).

    Examples
    --------
    >>> import numpy as np
    >>> a = np.eye(2, dtype=np.float32); table = np.eye(2, dtype=np.float32)
    >>> loss, g = info_nce(a, a, np.array([[1], [0]]), table=table, temperature=1.0)
    >>> round(loss, 4), sorted(g)
    (0.3133, ['anchors', 'positives', 'table'])
    """
    if device_call(backend, anchors=anchors, positives=positives, negatives=negatives, table=table,
                   table_grad=table_grad):
        tau, cosine, reduction, symmetric = _options(temperature, similarity, reduction, symmetric)
        _check_structure(negatives, table, table_grad, symmetric)
        from . import _device

        return _device.info_nce(anchors, positives, negatives, table, table_grad, tau, cosine, reduction, symmetric)
    A = _check.float_array(anchors, "anchors", ndim=2, shape=(None, None), allow_empty=False)
    P = _check.float_array(positives, "positives", ndim=2, shape=A.shape)
    _same_dtype(P, A, "positives", "anchors")
    tau, cosine, reduction, symmetric = _options(temperature, similarity, reduction, symmetric)
    B, D = A.shape
    weight = reduction_weights(reduction, B)
    _check_structure(negatives, table, table_grad, symmetric)
    if negatives is None:
        return _inbatch(A, P, tau, cosine, reduction, symmetric, weight, backend)

    neg = np.asarray(negatives)
    if neg.dtype.kind in "iu":
        if table is None:
            raise ValueError("table: required with integer negatives (ids are rows of table)")
        # only the rows that are read are checked for NaN/inf (by the kernel): the table may be huge
        T = _check.float_array(table, "table", ndim=2, shape=(None, D), check_finite=False)
        _same_dtype(T, A, "table", "anchors")
        ids = _check.index_array(neg, "negatives", upper=T.shape[0], ndim=2, shape=(B, None), allow_pad=True,
                                 dtype=np.int64, what=f"table with {T.shape[0]} rows")  # one kernel specialisation
        if table_grad is not None:
            table_grad = _check.inplace_array(table_grad, "table_grad", dtype=T.dtype, shape=T.shape)
        dense = False
    elif neg.dtype.kind == "f":
        no_table_with_vectors(table, table_grad)
        N3 = _check.float_array(neg, "negatives", ndim=3, shape=(B, None, D))
        _same_dtype(N3, A, "negatives", "anchors")
        K = N3.shape[1]
        T = N3.reshape(B * K, D)
        ids = np.arange(B * K, dtype=np.int64).reshape(B, K)
        dense = True
    else:
        raise TypeError(f"negatives: expected integer ids [B, K] or float vectors [B, K, D], got dtype {neg.dtype}")

    K = ids.shape[1]
    _, k = kernels(backend)
    loss = np.empty(B, np.float64)
    gA = np.empty_like(A)
    gP = np.empty_like(A)
    bad = np.empty(B, np.int64)
    cu = np.empty((B, K), np.float64)
    cv = np.empty((B, K), np.float64)
    scale = np.full(B, weight, np.float64)
    k.info_nce_rows(A, P, T, ids, 1.0 / tau, cosine, scale, loss, gA, gP, cu, cv, bad)
    if not dense and bad.max(initial=-1) >= 0:
        row = int(bad[bad >= 0][0])
        _check.finite(T[row], f"table: row {row}")
        raise ValueError(f"table: row {row} is too large (its squared norm overflows {T.dtype})")
    grads = {"anchors": gA, "positives": gP}
    if dense:
        gN = np.empty((B, K, D), A.dtype)
        k.dense_slot_grad(A, N3, cu, cv, gN)
        grads["negatives"] = gN
        return reduce(loss, reduction, A.dtype), grads
    from ..kernels.cpu.losses import group_by_row  # index bookkeeping runs on the host

    rows, starts, order, major = group_by_row(ids, T.shape[0], max(K, 1))
    # coefficients in grouped order: the table pass then streams them (a gather here is cheap)
    cu_g = np.take(cu.reshape(-1), order)
    cv_g = np.take(cv.reshape(-1), order)
    if table_grad is not None:
        k.table_grad_grouped(A, T, rows, starts, major, cu_g, cv_g, table_grad, True)
        grads["table"] = table_grad
    else:
        values = np.empty((rows.size, D), A.dtype)
        k.table_grad_grouped(A, T, rows, starts, major, cu_g, cv_g, values, False)
        grads["table"] = (rows, values)
    return reduce(loss, reduction, A.dtype), grads


def host_similar(similar, E):
    """``similar`` as a contiguous bool array [E] (0/1 integers accepted)."""
    sim = np.asarray(similar)
    if sim.dtype != np.bool_:
        if sim.dtype.kind not in "iu" or (sim.size and not np.isin(sim, (0, 1)).all()):
            raise TypeError(f"similar: expected booleans (or 0/1), got dtype {sim.dtype}")
        sim = sim.astype(np.bool_)
    if sim.shape != (E,):
        raise ValueError(f"similar: expected shape ({E},) like the pairs, got {sim.shape}")
    return np.ascontiguousarray(sim)


def _options(temperature, similarity, reduction, symmetric):
    """``(tau, cosine, reduction, symmetric)`` validated."""
    tau = _check.real(temperature, "temperature", minimum=0.0, strict_min=True)
    cosine = _check.choice(similarity, "similarity", SIMILARITIES) == "cosine"
    reduction = _check.choice(reduction, "reduction", REDUCTIONS)
    if not isinstance(symmetric, (bool, np.bool_)):
        raise TypeError(f"symmetric: expected a bool, got {type(symmetric).__name__}")
    return tau, cosine, reduction, bool(symmetric)


def no_table_with_vectors(table, table_grad):
    """``table`` / ``table_grad`` belong to integer negatives; vectors as negatives take neither."""
    if table is not None:
        raise ValueError("table: only used with integer negatives (negatives holds vectors)")
    if table_grad is not None:
        raise ValueError("table_grad: only used with integer negatives (negatives holds vectors)")


def _check_structure(negatives, table, table_grad, symmetric):
    if negatives is None:
        if table is not None:
            raise ValueError("table: only used with integer negatives (negatives is None)")
        if table_grad is not None:
            raise ValueError("table_grad: only used with integer negatives (negatives is None)")
    elif symmetric:
        raise ValueError("symmetric: only defined for in-batch negatives (negatives=None)")


def _inbatch(A, P, tau, cosine, reduction, symmetric, weight, backend):
    B, D = A.shape
    name, k = kernels(backend)
    inv_tau = 1.0 / tau
    row_scale = np.full(B, weight * (0.5 if symmetric else 1.0), np.float64)
    col_scale = row_scale if symmetric else np.zeros(B, np.float64)
    if name == "cuda":
        loss, gA, gP = k.info_nce_inbatch(A, P, inv_tau, cosine, symmetric, row_scale, col_scale)
        return reduce(loss, reduction, A.dtype), {"anchors": gA, "positives": gP}
    na2 = np.empty(B, np.float64)
    np2 = np.empty(B, np.float64)
    k.row_norms_sq(A, na2)
    k.row_norms_sq(P, np2)
    result = None
    if not cosine or np.sqrt(na2.min()) * np.sqrt(np2.min()) >= _EPS:
        result = _inbatch_fast(k, A, P, inv_tau, cosine, symmetric, row_scale, col_scale)
    if result is None:  # clamped pairs, or a symmetric logit range too wide for the one-exp path
        result = _inbatch_exact(k, A, P, na2, np2, inv_tau, cosine, symmetric, row_scale, col_scale)
    loss, gA, gP = result
    return reduce(loss, reduction, A.dtype), {"anchors": gA, "positives": gP}


_EPS = 1e-8
# The symmetric fast path recovers column softmaxes from the stored row exponentials; it is exact to
# float rounding while every column's largest logit is within this margin of the global largest one.
_COLUMN_RANGE = 60.0


def _inbatch_fast(k, A, P, inv_tau, cosine, symmetric, row_scale, col_scale):
    """One GEMM for S, one exp per element, two GEMMs for the gradients (no pair clamped)."""
    B = A.shape[0]
    if cosine:
        Ah, Ph = np.empty_like(A), np.empty_like(P)
        na, np_ = np.empty(B), np.empty(B)
        k.normalize_rows(A, Ah, na)
        k.normalize_rows(P, Ph, np_)
    else:
        Ah, Ph = A, P
    S = Ah @ Ph.T
    row_c = row_scale * inv_tau
    row_tot, zdiag = np.empty(B), np.empty(B)
    if symmetric and cosine and 2.0 * inv_tau <= _COLUMN_RANGE:
        # logits lie in [-1/τ, 1/τ]: one fixed shift serves rows and columns, so a single pass over S gives
        # the exponentials with their row and column sums
        parts = np.zeros((min(16, B), B))
        k.inbatch_exp_shifted(S, inv_tau, inv_tau, S.dtype == np.float32, row_tot, zdiag, parts)
        colsum = parts.sum(axis=0)
        loss = inv_tau + 0.5 * (np.log(row_tot) + np.log(colsum)) - zdiag
        col_c = col_scale * inv_tau
        k.inbatch_symmetric_grad(S, row_c / row_tot, np.ones(B), col_c / colsum, row_c + col_c)
        return loss, *_inbatch_backward(k, S, Ah, Ph, na, np_)
    row_m, row_loss = np.empty(B), np.empty(B)
    colmax = np.full((min(16, B), B) if symmetric else (1, 1), -np.inf)
    k.inbatch_softmax_rows(S, inv_tau, row_c, symmetric, S.dtype == np.float32, row_m, row_tot, row_loss, zdiag,
                           colmax)
    loss = row_loss
    if symmetric:
        M = row_m.max()
        if M - colmax.max(axis=0).min() > _COLUMN_RANGE:
            return None
        r = np.exp(row_m - M)
        colsum = np.empty(B)
        k.weighted_column_sums(S, r, colsum)
        col_loss = M + np.log(colsum) - zdiag
        loss = 0.5 * (row_loss + col_loss)
        col_c = col_scale * inv_tau
        k.inbatch_symmetric_grad(S, row_c / row_tot, r, col_c / colsum, row_c + col_c)
    return loss, *_inbatch_backward(k, S, Ah, Ph, na if cosine else None, np_ if cosine else None)


def _inbatch_backward(k, G, Ah, Ph, na, np_):
    """Two GEMMs from ``G = dL/dS``, then back through the row normalisations (when ``na`` is given)."""
    gA = G @ Ph
    gP = G.T @ Ah
    if na is not None:
        k.project_normalized(gA, Ah, na)
        k.project_normalized(gP, Ph, np_)
    return gA, gP


def _inbatch_exact(k, A, P, na2, np2, inv_tau, cosine, symmetric, row_scale, col_scale):
    """Per-pair clamped similarities and two exps per element: exact for any input."""
    B = A.shape[0]
    S = A @ P.T  # raw dots by BLAS; the kernels below turn them into similarities, then coefficients
    row_lse = np.empty(B)
    row_loss = np.empty(B)
    k.inbatch_similarity_rows(S, na2, np2, inv_tau, cosine, row_lse, row_loss)
    col_lse = np.zeros(B)
    col_loss = np.zeros(B)
    if symmetric:
        k.inbatch_column_lse(S, inv_tau, col_lse, col_loss)
    row_v = np.empty(B)
    parts = np.zeros((min(16, B), B))
    k.inbatch_coefficients(S, na2, np2, inv_tau, cosine, row_lse, col_lse, row_scale, col_scale, symmetric,
                           row_v, parts)
    gA = S @ P
    gP = S.T @ A
    if cosine:
        k.subtract_scaled_rows(gA, A, row_v)
        k.subtract_scaled_rows(gP, P, parts.sum(axis=0))
    loss = 0.5 * (row_loss + col_loss) if symmetric else row_loss
    return loss, gA, gP


def local_contrastive(Z, pairs, similar=None, margin=1.0, reduction="mean", *, backend=None):
    """Pairwise (Hadsell-style) contrastive loss on embeddings with exact gradients.

    ``L_e = ‖z_u − z_v‖²`` for a similar pair ``e = (u, v)``, ``max(0, margin − ‖z_u − z_v‖)²`` for a
    dissimilar one; the gradient of a dissimilar pair at zero distance is 0 (never NaN).

    Parameters
    ----------
    Z : float array [N, D]
        float32 (default) or float64; finite.
    pairs : int array [E, 2] or Graph
        Node pairs; a :class:`~fastgnn.Graph` means its edges (``graph.edges()``: each undirected edge
        once; edge weights are not used).
    similar : bool array [E], optional
        Which pairs are similar; ``None``: all. For a Graph it is aligned with ``graph.edges()``.
    margin : float >= 0
    reduction : "mean" | "sum" | "none"
        ``"none"`` returns per-pair losses [E] (gradients of their sum).
    backend : "cpu" | "cuda" | "auto", optional
        Device inputs imply ``"cuda"``; an explicit ``"cpu"`` with them is a ``ValueError``.

    Returns
    -------
    loss : float, or array [E] for ``reduction="none"``
    grads : dict
        ``{"Z": array [N, D]}``.

    Raises
    ------
    TypeError
        non-integer pairs, non-boolean ``similar``, wrong ``Z`` dtype, non-contiguous device arrays.
    ValueError
        shapes, ids out of range, ``margin < 0``, non-finite ``Z``, unknown ``reduction``, device inputs with
        ``backend="cpu"``.

    Notes
    -----
    Device inputs: ``Z``, ``pairs`` and ``similar`` may be CUDA device arrays (numba, or any object exposing
    ``__cuda_array_interface__``): float32/float64 ``Z``, int32/int64 ``pairs``, bool ``similar`` (no conversion),
    C-contiguous. The call then runs on CUDA without copying them: shapes and dtypes are checked from the metadata,
    NaN/inf in ``Z`` and the pair ids' range by device scans; host arrays beside them (and a Graph's edge list,
    cached on the graph) are uploaded. The per-node incidence lists are built by a stable sort on the device. The
    loss is a Python float (a device array for ``reduction="none"``), ``grads["Z"]`` a numba device array.

    Examples
    --------
    >>> import numpy as np
    >>> Z = np.array([[0.0, 0.0], [3.0, 4.0]], np.float32)
    >>> loss, g = local_contrastive(Z, np.array([[0, 1]]), similar=np.array([False]), margin=6.0)
    >>> loss, g["Z"].tolist()
    (1.0, [[1.2000000476837158, 1.600000023841858], [-1.2000000476837158, -1.600000023841858]])
    """
    if device_call(backend, Z=Z, pairs=None if isinstance(pairs, Graph) else pairs, similar=similar):
        m = _check.real(margin, "margin", minimum=0.0)
        reduction = _check.choice(reduction, "reduction", REDUCTIONS)
        from . import _device

        return _device.local_contrastive(Z, pairs, similar, m, reduction)
    Z = _check.float_array(Z, "Z", ndim=2, shape=(None, None))
    N, D = Z.shape
    m = _check.real(margin, "margin", minimum=0.0)
    reduction = _check.choice(reduction, "reduction", REDUCTIONS)
    name, k = kernels(backend)
    if isinstance(pairs, Graph):
        if pairs.num_nodes != N:
            raise ValueError(f"Z: expected {pairs.num_nodes} rows (graph.num_nodes), got {N}")
        if similar is None and reduction != "none" and not pairs.directed:
            # all pairs similar: the loss is the unweighted graph smoothness, one owner-computes pass over CSR
            E = pairs.num_edges
            grad = np.empty_like(Z)
            row_loss = np.empty(N, np.float64)
            w = reduction_weights(reduction, E)
            k.spectral_rows(pairs.indptr, pairs.indices, np.ones(1, np.float32), False, 0, np.ones(1), Z,
                            w, grad, row_loss)
            total = 0.5 * float(row_loss.sum())
            return (total / E if (reduction == "mean" and E) else total), {"Z": grad}
        src, dst, _ = pairs.edges()
        P2 = np.stack([np.asarray(src, np.int64), np.asarray(dst, np.int64)], axis=1)
    else:
        P2 = _check.index_array(pairs, "pairs", upper=N, ndim=2, shape=(None, 2), what=f"Z with {N} rows")
    E = P2.shape[0]
    sim = np.ones(E, np.bool_) if similar is None else host_similar(similar, E)
    loss = np.empty(E, np.float64)
    gamma = np.empty(E, np.float64)
    scale = np.full(E, reduction_weights(reduction, E), np.float64)
    k.contrastive_pairs(Z, P2, sim, m, scale, loss, gamma)
    from ..kernels.cpu.losses import incidence  # index bookkeeping runs on the host

    starts, entries = incidence(P2, N)
    grad = np.empty_like(Z)
    k.contrastive_gather(Z, P2, gamma, starts, entries, grad)
    return reduce(loss, reduction, Z.dtype), {"Z": grad}

