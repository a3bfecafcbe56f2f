"""CPU kernels for ``fastgnn.losses``: fused loss + exact gradient loops.

Conventions shared with the CUDA twins (``kernels/cuda/losses.py``):

* a "slot" is one (anchor, candidate) pair of InfoNCE; for slot ``e`` with similarity ``s_e`` and
  ``g_e = dL/ds_e`` the kernels store two scalars ``u_e``, ``v_e`` such that the candidate's gradient is
  ``u_e * a - v_e * b`` (cosine: ``u = g/den``, ``v = g*s/|b|^2`` when ``|a||b| >= eps``, else 0;
  dot: ``u = g``, ``v = 0``). Gradients of table rows are then sums of these terms grouped by row.
* every output row is written by exactly one thread (rows are owned); scatters to rows owned by others
  go through a grouping (a stable counting sort by target row, built serially) and are applied by owner,
  so results do not depend on the thread count.
* logits, log-sum-exp and loss sums are float64; vector arithmetic stays in the input dtype.
"""
import math

import numpy as np
from numba import njit, prange

from .fastexp import exp_row as _fast_exp_row
from .prefetch import prefetch_row as _prefetch_row
from .rng import uniform

_FM = {"contract", "arcp", "reassoc"}
_EPS = 1e-8
_CHUNK = 16
# Gathers of embedding rows at random ids are bound by memory latency; asking for the rows needed a few
# iterations ahead (software prefetch) keeps more of them in flight: about 1.7x on a 200k x 64 gather.
_AHEAD = 8


@njit(inline="always")
def _softplus(x):
    """log(1 + exp(x)) without overflow."""
    if x > 0.0:
        return x + math.log1p(math.exp(-x))
    return math.log1p(math.exp(x))


@njit(inline="always")
def _sigmoid(x):
    if x >= 0.0:
        return 1.0 / (1.0 + math.exp(-x))
    e = math.exp(x)
    return e / (1.0 + e)


@njit(inline="always")
def _slot(s, den, nb2, q, dot, norm2, na, cosine):
    if cosine:
        den[q] = max(na * math.sqrt(np.float64(norm2)), _EPS)
    else:
        den[q] = 1.0
    s[q] = np.float64(dot) / den[q]
    nb2[q] = norm2


# --------------------------------------------------------------------------- InfoNCE, explicit negatives
@njit(parallel=True, cache=True, fastmath=_FM)
def info_nce_rows(A, P, table, ids, inv_tau, cosine, scale, loss, gA, gP, coef_u, coef_v, bad):
    """InfoNCE over explicit candidates, one anchor per iteration (the anchor owns gA[i], gP[i]).

    Row i's logits are ``s(A[i], P[i])/tau`` and ``s(A[i], table[ids[i, k]])/tau`` for ``ids[i, k] >= 0``
    (-1 is padding and skipped). ``loss[i] = lse - z_pos``; ``scale[i]`` multiplies the gradient
    (1/B for a mean). ``coef_u[i, k]``, ``coef_v[i, k]`` receive the slot coefficients of the negatives
    (zero for padding), for :func:`table_grad_grouped` (after the caller puts them in grouped order) or
    :func:`dense_slot_grad`.
    ``bad[i]`` is set to a table row read by anchor i whose values (or squared norm) are not finite, else -1:
    the table is checked only where it is read, by the caller after the kernel.
    """
    B, D = A.shape
    K = ids.shape[1]
    flat_ids = ids.reshape(-1)
    nchunks = (B + _CHUNK - 1) // _CHUNK
    for c in prange(nchunks):
        s = np.empty(K + 1, np.float64)
        z = np.empty(K + 1, np.float64)
        den = np.empty(K + 1, np.float64)
        nb2 = np.empty(K + 1, np.float64)
        acc = np.empty(D, A.dtype)
        for i in range(c * _CHUNK, min(B, (c + 1) * _CHUNK)):
            # positive
            d0 = A.dtype.type(0.0)
            na2 = A.dtype.type(0.0)
            np2 = A.dtype.type(0.0)
            for t in range(D):
                a = A[i, t]
                b = P[i, t]
                d0 += a * b
                na2 += a * a
                np2 += b * b
            na = math.sqrt(np.float64(na2))
            if cosine:
                den[0] = max(na * math.sqrt(np.float64(np2)), _EPS)
            else:
                den[0] = 1.0
            s[0] = np.float64(d0) / den[0]
            nb2[0] = np2
            # negatives: four rows at a time keep several gathers in flight (the loop is bound by memory latency)
            k = 0
            while k < K:
                for q in range(i * K + k + _AHEAD, min(flat_ids.size, i * K + k + _AHEAD + 4)):
                    if flat_ids[q] >= 0:
                        _prefetch_row(table, flat_ids[q])
                if k + 4 <= K and ids[i, k] >= 0 and ids[i, k + 1] >= 0 and ids[i, k + 2] >= 0 and ids[i, k + 3] >= 0:
                    j0 = ids[i, k]
                    j1 = ids[i, k + 1]
                    j2 = ids[i, k + 2]
                    j3 = ids[i, k + 3]
                    x0 = x1 = x2 = x3 = A.dtype.type(0.0)
                    y0 = y1 = y2 = y3 = A.dtype.type(0.0)
                    for t in range(D):
                        a = A[i, t]
                        b0 = table[j0, t]
                        b1 = table[j1, t]
                        b2 = table[j2, t]
                        b3 = table[j3, t]
                        x0 += a * b0
                        x1 += a * b1
                        x2 += a * b2
                        x3 += a * b3
                        y0 += b0 * b0
                        y1 += b1 * b1
                        y2 += b2 * b2
                        y3 += b3 * b3
                    _slot(s, den, nb2, k + 1, x0, y0, na, cosine)
                    _slot(s, den, nb2, k + 2, x1, y1, na, cosine)
                    _slot(s, den, nb2, k + 3, x2, y2, na, cosine)
                    _slot(s, den, nb2, k + 4, x3, y3, na, cosine)
                    k += 4
                    continue
                j = ids[i, k]
                if j >= 0:
                    dk = A.dtype.type(0.0)
                    bk = A.dtype.type(0.0)
                    for t in range(D):
                        b = table[j, t]
                        dk += A[i, t] * b
                        bk += b * b
                    _slot(s, den, nb2, k + 1, dk, bk, na, cosine)
                k += 1
            bad[i] = -1
            for k in range(K):
                if ids[i, k] >= 0 and not (math.isfinite(s[k + 1]) and math.isfinite(nb2[k + 1])):
                    bad[i] = ids[i, k]
            # log-sum-exp over valid slots (logits stored once, so a lone positive gives exactly 0)
            for k in range(K + 1):
                z[k] = s[k] * inv_tau
            m = z[0]
            for k in range(K):
                if ids[i, k] >= 0 and z[k + 1] > m:
                    m = z[k + 1]
            tot = 0.0
            for k in range(K + 1):
                if k == 0 or ids[i, k - 1] >= 0:
                    tot += math.exp(z[k] - m)
            lse = m + math.log(tot)
            loss[i] = lse - z[0]
            # gradients: g_k = scale * (softmax_k - [k == 0]) / tau
            sc = scale[i] * inv_tau
            wa = 0.0  # coefficient of a in dL/da
            for t in range(D):
                acc[t] = 0.0
            for k in range(K + 1):
                if k > 0 and ids[i, k - 1] < 0:
                    coef_u[i, k - 1] = 0.0
                    coef_v[i, k - 1] = 0.0
                    continue
                pk = math.exp(z[k] - lse)
                g = sc * (pk - 1.0) if k == 0 else sc * pk
                u = g / den[k]
                v = 0.0
                if cosine and den[k] > _EPS:
                    v = g * s[k] / nb2[k]
                    wa += g * s[k] / (na * na)
                ut = A.dtype.type(u)
                if k == 0:
                    vt = A.dtype.type(v)
                    for t in range(D):
                        acc[t] += ut * P[i, t]
                        gP[i, t] = ut * A[i, t] - vt * P[i, t]
                else:
                    j = ids[i, k - 1]
                    coef_u[i, k - 1] = u
                    coef_v[i, k - 1] = v
                    for t in range(D):
                        acc[t] += ut * table[j, t]
            wat = A.dtype.type(wa)
            for t in range(D):
                gA[i, t] = acc[t] - wat * A[i, t]


@njit(cache=True)
def group_by_row(ids, num_rows, ncols):
    """Group the non-negative entries of ``ids`` (read flat, ``ncols`` entries per major row) by value, stably.

    Returns ``rows`` (sorted distinct values), ``starts`` [len(rows) + 1], ``order`` (flat entry positions,
    grouped by row in their original order) and ``major`` (``order // ncols``, without divisions).
    Serial: O(len(ids) + num_rows).
    """
    flat = ids.ravel()
    cnt = np.zeros(num_rows + 1, np.int64)
    for e in range(flat.size):
        j = flat[e]
        if j >= 0:
            cnt[j] += 1
    nuniq = 0
    for j in range(num_rows):
        if cnt[j] > 0:
            nuniq += 1
    rows = np.empty(nuniq, np.int64)
    starts = np.empty(nuniq + 1, np.int64)
    slot = np.empty(num_rows, np.int64)
    u = 0
    pos = 0
    for j in range(num_rows):
        if cnt[j] > 0:
            rows[u] = j
            starts[u] = pos
            slot[j] = u
            pos += cnt[j]
            u += 1
    starts[nuniq] = pos
    cursor = starts[:nuniq].copy()
    order = np.empty(pos, np.int64)
    major = np.empty(pos, np.int64)
    i = 0
    c = 0
    for e in range(flat.size):
        j = flat[e]
        if j >= 0:
            r = slot[j]
            order[cursor[r]] = e
            major[cursor[r]] = i
            cursor[r] += 1
        c += 1
        if c == ncols:
            c = 0
            i += 1
    return rows, starts, order, major


@njit(parallel=True, cache=True, fastmath=_FM)
def table_grad_grouped(A, table, rows, starts, major, coef_u, coef_v, out, into_table):
    """Per distinct table row r (owned by one thread): ``sum_q u_q A[major_q] - (sum_q v_q) table[rows[r]]``
    over its grouped slots q in ``starts[r]:starts[r+1]`` (coefficients given in grouped order, so they are
    streamed rather than gathered: twice as fast as reading them through ``order``).

    Writes ``out[r]`` (row-sparse values) or, with ``into_table``, adds into ``out[rows[r]]`` (a dense
    [N, D] buffer).
    """
    D = A.shape[1]
    U = rows.size
    nchunks = (U + 63) // 64
    for ch in prange(nchunks):
        acc = np.empty(D, A.dtype)
        for r in range(ch * 64, min(U, (ch + 1) * 64)):
            j = rows[r]
            vsum = 0.0
            acc[:] = 0
            for q in range(starts[r], starts[r + 1]):
                i = major[q]
                ut = A.dtype.type(coef_u[q])
                vsum += coef_v[q]
                for t in range(D):
                    acc[t] += ut * A[i, t]
            vt = A.dtype.type(vsum)
            if into_table:
                for t in range(D):
                    out[j, t] += acc[t] - vt * table[j, t]
            else:
                for t in range(D):
                    out[r, t] = acc[t] - vt * table[j, t]


@njit(parallel=True, cache=True, fastmath=_FM)
def dense_slot_grad(A, N, coef_u, coef_v, gN):
    """Dense negatives [B, K, D]: gN[i, k] = u_ik A[i] - v_ik N[i, k] (each slot owned)."""
    B, K, D = N.shape
    for i in prange(B):
        for k in range(K):
            ut = A.dtype.type(coef_u[i, k])
            vt = A.dtype.type(coef_v[i, k])
            for t in range(D):
                gN[i, k, t] = ut * A[i, t] - vt * N[i, k, t]


# --------------------------------------------------------------------------- InfoNCE, in-batch negatives
@njit(parallel=True, cache=True, fastmath=_FM)
def row_norms_sq(X, out):
    """out[i] = |X[i]|^2 (float64)."""
    n, D = X.shape
    for i in prange(n):
        acc = X.dtype.type(0.0)
        for t in range(D):
            acc += X[i, t] * X[i, t]
        out[i] = acc


@njit(parallel=True, cache=True, fastmath=_FM)
def inbatch_similarity_rows(S, na2, np2, inv_tau, cosine, row_lse, row_loss):
    """S holds raw dots a_i . p_j on entry and similarities s_ij on exit; per row: log-sum-exp and loss."""
    B = S.shape[0]
    for i in prange(B):
        na = math.sqrt(na2[i])
        m = -np.inf
        for j in range(B):
            if cosine:
                den = max(na * math.sqrt(np2[j]), _EPS)
                S[i, j] = S[i, j] / den
            z = S[i, j] * inv_tau
            if z > m:
                m = z
        tot = 0.0
        for j in range(B):
            tot += math.exp(S[i, j] * inv_tau - m)
        row_lse[i] = m + math.log(tot)
        row_loss[i] = row_lse[i] - S[i, i] * inv_tau


@njit(parallel=True, cache=True)
def inbatch_column_lse(S, inv_tau, col_lse, col_loss):
    """Column-wise log-sum-exp of S/tau (the symmetric NT-Xent term), blocks of columns per thread."""
    B = S.shape[0]
    W = 64
    nblocks = (B + W - 1) // W
    for c in prange(nblocks):
        j0 = c * W
        j1 = min(B, j0 + W)
        m = np.full(j1 - j0, -np.inf)
        tot = np.zeros(j1 - j0)
        for i in range(B):
            for j in range(j0, j1):
                z = S[i, j] * inv_tau
                q = j - j0
                if z > m[q]:
                    tot[q] = tot[q] * math.exp(m[q] - z) + 1.0
                    m[q] = z
                else:
                    tot[q] += math.exp(z - m[q])
        for j in range(j0, j1):
            col_lse[j] = m[j - j0] + math.log(tot[j - j0])
            col_loss[j] = col_lse[j] - S[j, j] * inv_tau


@njit(parallel=True, cache=True, fastmath=_FM)
def inbatch_coefficients(S, na2, np2, inv_tau, cosine, row_lse, col_lse, row_scale, col_scale,
                         symmetric, row_v, col_v_parts):
    """Overwrite S (similarities) with U_ij = g_ij / den_ij; row_v[i] = sum_j g_ij s_ij / |a_i|^2 (cosine).

    ``g_ij = (row_scale[i] (softmax_row - I) + col_scale[j] (softmax_col - I)) / tau`` (the column term
    only when ``symmetric``). Column sums of ``g s / |p_j|^2`` are accumulated per fixed block of rows into
    ``col_v_parts[block]`` (reduced by the caller in block order: deterministic).
    """
    B = S.shape[0]
    nparts = col_v_parts.shape[0]
    per = (B + nparts - 1) // nparts
    for c in prange(nparts):
        for i in range(c * per, min(B, (c + 1) * per)):
            na = math.sqrt(na2[i])
            rv = 0.0
            for j in range(B):
                s = S[i, j]
                z = s * inv_tau
                g = row_scale[i] * math.exp(z - row_lse[i])
                if symmetric:
                    g += col_scale[j] * math.exp(z - col_lse[j])
                if i == j:
                    g -= row_scale[i]
                    if symmetric:
                        g -= col_scale[j]
                g *= inv_tau
                if cosine:
                    den = na * math.sqrt(np2[j])
                    if den > _EPS:
                        S[i, j] = g / den
                        if na2[i] > 0.0:
                            rv += g * s / na2[i]
                        col_v_parts[c, j] += g * s / np2[j]
                    else:
                        S[i, j] = g / _EPS
                else:
                    S[i, j] = g
            row_v[i] = rv


@njit(parallel=True, cache=True, fastmath=_FM)
def subtract_scaled_rows(G, X, coef):
    """G[i] -= coef[i] * X[i]."""
    n, D = G.shape
    for i in prange(n):
        c = G.dtype.type(coef[i])
        for t in range(D):
            G[i, t] -= c * X[i, t]


# --------------------------------------------------------------------------- graph smoothness (spectral)
@njit(parallel=True, cache=True, fastmath=_FM)
def spectral_rows(indptr, indices, weights, has_weights, mode, dscale, Z, coef, grad, row_loss):
    """Per node i (owner of grad[i]): over its arcs (i, j) with c = w (mode 0, 1) or w d_i^-1/2 d_j^-1/2 (mode 2)
    and alpha = 1 (mode 0, 2) or d^-1/2 (mode 1):

    ``row_loss[i] = sum_j c |alpha_i z_i - alpha_j z_j|^2`` and
    ``grad[i] = 2 coef alpha_i sum_j c (alpha_i z_i - alpha_j z_j)``.
    ``weights`` is ignored (may have length 1) without ``has_weights``; ``dscale`` likewise in mode 0.
    Four arcs per step keep several row gathers in flight (the loop is bound by memory latency).
    """
    n = indptr.size - 1
    nnz = indices.size
    D = Z.shape[1]
    nchunks = (n + 63) // 64
    for ch in prange(nchunks):
        acc = np.empty(D, Z.dtype)
        sq = np.empty(D, Z.dtype)
        for i in range(ch * 64, min(n, (ch + 1) * 64)):
            acc[:] = 0
            sq[:] = 0
            ai = Z.dtype.type(1.0)
            if mode == 1:
                ai = Z.dtype.type(dscale[i])
            p = indptr[i]
            end = indptr[i + 1]
            while p + 4 <= end:
                if p + _AHEAD + 4 <= nnz:
                    for q in range(p + _AHEAD, p + _AHEAD + 4):
                        _prefetch_row(Z, indices[q])
                j0 = indices[p]
                j1 = indices[p + 1]
                j2 = indices[p + 2]
                j3 = indices[p + 3]
                c0 = Z.dtype.type(weights[p] if has_weights else 1.0)
                c1 = Z.dtype.type(weights[p + 1] if has_weights else 1.0)
                c2 = Z.dtype.type(weights[p + 2] if has_weights else 1.0)
                c3 = Z.dtype.type(weights[p + 3] if has_weights else 1.0)
                a0 = a1 = a2 = a3 = Z.dtype.type(1.0)
                if mode == 1:
                    a0 = Z.dtype.type(dscale[j0])
                    a1 = Z.dtype.type(dscale[j1])
                    a2 = Z.dtype.type(dscale[j2])
                    a3 = Z.dtype.type(dscale[j3])
                elif mode == 2:
                    c0 *= Z.dtype.type(dscale[i] * dscale[j0])
                    c1 *= Z.dtype.type(dscale[i] * dscale[j1])
                    c2 *= Z.dtype.type(dscale[i] * dscale[j2])
                    c3 *= Z.dtype.type(dscale[i] * dscale[j3])
                for t in range(D):
                    zi = ai * Z[i, t]
                    e0 = zi - a0 * Z[j0, t]
                    e1 = zi - a1 * Z[j1, t]
                    e2 = zi - a2 * Z[j2, t]
                    e3 = zi - a3 * Z[j3, t]
                    f0 = c0 * e0
                    f1 = c1 * e1
                    f2 = c2 * e2
                    f3 = c3 * e3
                    acc[t] += (f0 + f1) + (f2 + f3)
                    sq[t] += (f0 * e0 + f1 * e1) + (f2 * e2 + f3 * e3)
                p += 4
            while p < end:
                if p + _AHEAD < nnz:
                    _prefetch_row(Z, indices[p + _AHEAD])
                j = indices[p]
                c = Z.dtype.type(weights[p] if has_weights else 1.0)
                a = Z.dtype.type(1.0)
                if mode == 1:
                    a = Z.dtype.type(dscale[j])
                elif mode == 2:
                    c *= Z.dtype.type(dscale[i] * dscale[j])
                for t in range(D):
                    e = ai * Z[i, t] - a * Z[j, t]
                    f = c * e
                    acc[t] += f
                    sq[t] += f * e
                p += 1
            g = Z.dtype.type(2.0 * coef) * ai
            tot = 0.0
            for t in range(D):
                grad[i, t] = g * acc[t]
                tot += sq[t]
            row_loss[i] = tot


# --------------------------------------------------------------------------- local contrastive (pairs)
@njit(parallel=True, cache=True, fastmath=_FM)
def contrastive_pairs(Z, pairs, similar, margin, scale, loss, gamma):
    """Per pair e = (u, v), d = |z_u - z_v|: loss[e] = d^2 (similar) or max(0, margin - d)^2; gamma[e] is
    the coefficient with dL/dz_u = gamma_e (z_u - z_v) = -dL/dz_v (0 at d = 0 for dissimilar pairs)."""
    E = pairs.shape[0]
    D = Z.shape[1]
    for e in prange(E):
        if e + _AHEAD < E:
            _prefetch_row(Z, pairs[e + _AHEAD, 0])
            _prefetch_row(Z, pairs[e + _AHEAD, 1])
        u = pairs[e, 0]
        v = pairs[e, 1]
        d2 = Z.dtype.type(0.0)
        for t in range(D):
            x = Z[u, t] - Z[v, t]
            d2 += x * x
        d2 = np.float64(d2)
        if similar[e]:
            loss[e] = d2
            gamma[e] = 2.0 * scale[e]
        else:
            d = math.sqrt(d2)
            if d < margin:
                loss[e] = (margin - d) * (margin - d)
                gamma[e] = -2.0 * scale[e] * (margin - d) / d if d > 0.0 else 0.0
            else:
                loss[e] = 0.0
                gamma[e] = 0.0


@njit(cache=True)
def incidence(pairs, num_nodes):
    """Stable grouping of pair endpoints by node: ``starts`` [num_nodes + 1] and ``entries`` (2 e + side)."""
    E = pairs.shape[0]
    starts = np.zeros(num_nodes + 1, np.int64)
    for e in range(E):
        starts[pairs[e, 0] + 1] += 1
        starts[pairs[e, 1] + 1] += 1
    for x in range(num_nodes):
        starts[x + 1] += starts[x]
    cursor = starts[:num_nodes].copy()
    entries = np.empty(2 * E, np.int64)
    for e in range(E):
        for side in range(2):
            x = pairs[e, side]
            entries[cursor[x]] = 2 * e + side
            cursor[x] += 1
    return starts, entries


@njit(parallel=True, cache=True, fastmath=_FM)
def contrastive_gather(Z, pairs, gamma, starts, entries, grad):
    """grad[x] = sum over pairs touching x of gamma_e (z_x - z_other) (node x owns grad[x])."""
    n = starts.size - 1
    D = Z.shape[1]
    for x in prange(n):
        for t in range(D):
            grad[x, t] = 0.0
        for q in range(starts[x], starts[x + 1]):
            if q + _AHEAD < entries.size:
                ahead = entries[q + _AHEAD]
                _prefetch_row(Z, pairs[ahead // 2, 1 - (ahead % 2)])
            code = entries[q]
            e = code // 2
            other = pairs[e, 1 - (code - 2 * e)]
            g = Z.dtype.type(gamma[e])
            for t in range(D):
                grad[x, t] += g * (Z[x, t] - Z[other, t])


# --------------------------------------------------------------------------- edge reconstruction
@njit(inline="always")
def _draw(seed, stream, counter, cdf, guide):
    """Index of the first cdf entry > u * total (zero-mass entries are never drawn), u = uniform(seed, stream,
    counter). ``guide[b]`` is that index for x = b * total / len(guide): the search starts there and
    moves a step or two, O(1) expected (a binary search costs ~16 dependent, mispredicted loads)."""
    n = cdf.size
    total = cdf[n - 1]
    x = uniform(seed, stream, counter) * total
    b = min(guide.size - 1, np.int64(x / total * guide.size))
    idx = guide[b]
    while idx > 0 and cdf[idx - 1] > x:
        idx -= 1
    while idx < n - 1 and cdf[idx] <= x:
        idx += 1
    return idx


@njit(parallel=True, cache=True, fastmath=_FM)
def reconstruction_rows(indptr, indices, Z, cdf, guide, num_neg, seed, scale, loss, grad, negs, cpos, cneg):
    """Per source node i (owner of grad[i]) and arc p = (i, j): loss[p] = softplus(-z_i.z_j) +
    sum_k softplus(z_i.z_n) with n = negs[p, k] drawn from ``cdf`` (with its ``guide``) by hash(seed, p, k).

    grad[i] gets the source-side gradient; cpos[p] = scale_p (sigma(s) - 1) and cneg[p, k] = scale_p sigma(s_n)
    are the coefficients of z_i in the gradients of z_j and z_n (applied by :func:`scatter_gather`).
    """
    n = indptr.size - 1
    D = Z.shape[1]
    for i in prange(n):
        for t in range(D):
            grad[i, t] = 0.0
        for p in range(indptr[i], indptr[i + 1]):
            j = indices[p]
            s = Z.dtype.type(0.0)
            for t in range(D):
                s += Z[i, t] * Z[j, t]
            s = np.float64(s)
            lp = _softplus(-s)
            g = scale[p] * (_sigmoid(s) - 1.0)
            cpos[p] = g
            gt = Z.dtype.type(g)
            for t in range(D):
                grad[i, t] += gt * Z[j, t]
            for k in range(num_neg):
                m = _draw(seed, p, k, cdf, guide)
                negs[p, k] = m
                sn = Z.dtype.type(0.0)
                for t in range(D):
                    sn += Z[i, t] * Z[m, t]
                sn = np.float64(sn)
                lp += _softplus(sn)
                gn = scale[p] * _sigmoid(sn)
                cneg[p, k] = gn
                gt = Z.dtype.type(gn)
                for t in range(D):
                    grad[i, t] += gt * Z[m, t]
            loss[p] = lp


@njit(parallel=True, cache=True, fastmath=_FM)
def scatter_gather(Z, src, coef, rows, starts, grad):
    """grad[rows[r]] += sum_q coef[q] * Z[src[q]] over grouped entries q in starts[r]:starts[r+1]
    (``src``/``coef`` given in grouped order; row r owned by one thread)."""
    D = Z.shape[1]
    nnz = src.size
    for r in prange(rows.size):
        x = rows[r]
        for q in range(starts[r], starts[r + 1]):
            if q + _AHEAD < nnz:
                _prefetch_row(Z, src[q + _AHEAD])
            c = Z.dtype.type(coef[q])
            y = src[q]
            for t in range(D):
                grad[x, t] += c * Z[y, t]


# --------------------------------------------------------------------------- combining gradients
@njit(parallel=True, cache=True, fastmath=_FM)
def weighted_sum4(g0, g1, g2, g3, weights, accumulate, out):
    """out (+)= w0 g0 + w1 g1 + w2 g2 + w3 g3 over flat arrays, in fixed-size blocks (one pass over out).

    Fixed arity keeps the loop vectorised (indexing a tuple of arrays by a loop variable does not, 3x
    slower); unused slots repeat ``g0`` with weight 0, which costs no extra memory traffic.
    """
    n = out.size
    w0 = out.dtype.type(weights[0])
    w1 = out.dtype.type(weights[1])
    w2 = out.dtype.type(weights[2])
    w3 = out.dtype.type(weights[3])
    for b in prange((n + 4095) // 4096):
        lo = b * 4096
        hi = min(n, lo + 4096)
        if accumulate:
            for x in range(lo, hi):
                out[x] += (w0 * g0[x] + w1 * g1[x]) + (w2 * g2[x] + w3 * g3[x])
        else:
            for x in range(lo, hi):
                out[x] = (w0 * g0[x] + w1 * g1[x]) + (w2 * g2[x] + w3 * g3[x])


def weighted_sum(grads, weights, out):
    """Host driver: ``out = sum_m weights[m] * grads[m]`` (flat arrays), four gradients per fused pass."""
    for start in range(0, len(grads), 4):
        chunk = list(grads[start:start + 4])
        w = np.zeros(4)
        w[:len(chunk)] = weights[start:start + 4]
        chunk += [chunk[0]] * (4 - len(chunk))
        weighted_sum4(chunk[0], chunk[1], chunk[2], chunk[3], w, start > 0, out)


@njit(parallel=True, cache=True, fastmath=_FM)
def sparse_weighted_sum(values, entry_weight, starts, order, out):
    """out[r] = sum over grouped entries e of entry_weight[e] * values[e] (rows owned)."""
    D = values.shape[1]
    for r in prange(starts.size - 1):
        for t in range(D):
            out[r, t] = 0.0
        for q in range(starts[r], starts[r + 1]):
            e = order[q]
            w = out.dtype.type(entry_weight[e])
            for t in range(D):
                out[r, t] += w * values[e, t]


# --------------------------------------------------------------------------- InfoNCE, in-batch fast path
# Used when no pair is clamped (min|a| * min|p| >= eps): similarities are then dot products of unit rows,
# S = Â P̂ᵀ comes from one BLAS GEMM, and the softmax is taken once per element (exp values stored).
@njit(parallel=True, cache=True, fastmath=_FM)
def normalize_rows(X, out, norms):
    """out[i] = X[i] / |X[i]| and norms[i] = |X[i]| (float64); the caller guarantees |X[i]| > 0."""
    n, D = X.shape
    for i in prange(n):
        acc = X.dtype.type(0.0)
        for t in range(D):
            acc += X[i, t] * X[i, t]
        nrm = math.sqrt(np.float64(acc))
        norms[i] = nrm
        inv = X.dtype.type(1.0 / nrm)
        for t in range(D):
            out[i, t] = X[i, t] * inv


@njit(inline="always", fastmath=_FM)
def _exp_row_sum(S, i, inv_tau, shift, fast_exp, bits, col_sums, with_cols):
    """S[i, j] <- exp(S[i, j] inv_tau - shift) (``fast_exp``: the vectorised float32 exp, ``bits`` its scratch);
    returns the row's sum (float64) and, ``with_cols``, adds the row into ``col_sums``."""
    tot = 0.0
    if fast_exp:
        _fast_exp_row(S, i, inv_tau, shift, bits)
        scale2 = bits.view(np.float32)
        for j in range(S.shape[1]):
            e = S[i, j] * scale2[j]
            S[i, j] = e
            tot += e
            if with_cols:
                col_sums[j] += e
    else:
        for j in range(S.shape[1]):
            e = math.exp(S[i, j] * inv_tau - shift)
            S[i, j] = e
            tot += e
            if with_cols:
                col_sums[j] += e
    return tot


@njit(parallel=True, cache=True, fastmath=_FM)
def inbatch_exp_shifted(S, inv_tau, shift, fast_exp, row_tot, row_zdiag, col_parts):
    """Symmetric in-batch pass with one fixed shift (cosine logits z = S inv_tau never exceed inv_tau, so no
    row maxima are needed): S <- e = exp(z - shift), row_tot[i] = sum_j e_ij, row_zdiag[i] = z_ii and
    ``col_parts[part, j]`` = sum of e_ij over a fixed block of rows (the caller adds the blocks, so the
    column sums do not depend on the thread count). ``fast_exp`` as in :func:`inbatch_softmax_rows`."""
    B = S.shape[0]
    nparts = col_parts.shape[0]
    per = (B + nparts - 1) // nparts
    for part in prange(nparts):
        cs = col_parts[part]
        bits = np.empty(B, np.int32)
        for i in range(part * per, min(B, (part + 1) * per)):
            row_zdiag[i] = S[i, i] * inv_tau
            row_tot[i] = _exp_row_sum(S, i, inv_tau, shift, fast_exp, bits, cs, True)


@njit(parallel=True, cache=True, fastmath=_FM)
def inbatch_softmax_rows(S, inv_tau, row_c, symmetric, fast_exp, row_m, row_tot, row_loss, row_zdiag,
                         colmax_parts):
    """S holds similarities on entry. Per row i: m_i = max_j z_ij (z = S inv_tau), e_ij = exp(z_ij - m_i)
    overwrites S, row_tot[i] = sum_j e_ij, row_loss[i] = m_i + log(tot_i) - z_ii and row_zdiag[i] = z_ii.

    Not ``symmetric``: S is then turned into the gradient ``dL/ds_ij = row_c[i] (e_ij / tot_i - [i == j])``
    while the row is in cache. ``symmetric``: S keeps e, and ``colmax_parts[part, j]`` receives the column
    maxima of z over each fixed block of rows (for the caller's range check).

    ``fast_exp`` (float32 S only): exp by Cody-Waite reduction, a degree-6 polynomial and the exponent
    written as integer bits, a loop LLVM vectorises (about 2 ulp; arguments below -87 give exp(-87),
    negligible next to the row maximum's 1).
    """
    B = S.shape[0]
    nparts = colmax_parts.shape[0]
    per = (B + nparts - 1) // nparts
    for part in prange(nparts):
        cm = colmax_parts[part]
        bits = np.empty(B, np.int32)
        for i in range(part * per, min(B, (part + 1) * per)):
            m = -np.inf
            if symmetric:
                for j in range(B):
                    z = S[i, j] * inv_tau
                    m = max(m, z)
                    cm[j] = max(cm[j], z)
            else:
                for j in range(B):
                    m = max(m, S[i, j] * inv_tau)
            zii = S[i, i] * inv_tau
            tot = _exp_row_sum(S, i, inv_tau, m, fast_exp, bits, cm, False)
            row_m[i] = m
            row_tot[i] = tot
            row_loss[i] = m + math.log(tot) - zii
            row_zdiag[i] = zii
            if not symmetric:
                f = S.dtype.type(row_c[i] / tot)
                for j in range(B):
                    S[i, j] *= f
                S[i, i] -= row_c[i]


@njit(parallel=True, cache=True)
def weighted_column_sums(E, r, out):
    """out[j] = sum_i r[i] E[i, j] (float64), blocks of 128 columns per thread (fixed order)."""
    B, C = E.shape
    W = 128
    for c in prange((C + W - 1) // W):
        j0 = c * W
        j1 = min(C, j0 + W)
        acc = np.zeros(j1 - j0)
        for i in range(B):
            ri = r[i]
            for j in range(j0, j1):
                acc[j - j0] += ri * E[i, j]
        for j in range(j0, j1):
            out[j] = acc[j - j0]


@njit(parallel=True, cache=True, fastmath=_FM)
def inbatch_symmetric_grad(E, alpha, r, beta, diag):
    """E[i, j] <- E[i, j] (alpha_i + r_i beta_j) - [i == j] diag_i (the symmetric NT-Xent dL/ds)."""
    B = E.shape[0]
    for i in prange(B):
        a = alpha[i]
        ri = r[i]
        for j in range(B):
            E[i, j] = E[i, j] * (a + ri * beta[j])
        E[i, i] -= diag[i]


@njit(parallel=True, cache=True, fastmath=_FM)
def project_normalized(G, Xhat, norms):
    """Back through x̂ = x/|x|: G[i] <- (G[i] - (G[i]·x̂_i) x̂_i) / |x_i|."""
    n, D = G.shape
    for i in prange(n):
        d = G.dtype.type(0.0)
        for t in range(D):
            d += G[i, t] * Xhat[i, t]
        inv = G.dtype.type(1.0 / norms[i])
        for t in range(D):
            G[i, t] = (G[i, t] - d * Xhat[i, t]) * inv
