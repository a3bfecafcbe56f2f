"""Fused optimizer updates (SGD with momentum/Nesterov, Adam/AdamW/AMSGrad), clipping and row-sparse steps.

Each update reads ``p``, ``g`` and the optimizer state once and writes them once. The element-wise
operations follow ``torch.optim``'s single-tensor code in the same order and without ``fastmath``
(no FMA contraction), so a float32 update is reproduced exactly by the NumPy oracle in
``tests/reference_optim.py``. Hyper-parameters arrive already derived in float64 (``-lr``, ``1 - β``,
``-lr / bc1`` ...) and cast to the parameter dtype, exactly as torch turns its Python-float scalars
into the tensor's dtype.

Many tensors, one launch
------------------------
The ``*_multi`` kernels take a table of raw data addresses (``p_addr``/``g_addr``, one per tensor,
kept alive and validated by the caller) and a chunk table ``(ctens, clo, chi)`` that splits every
tensor into pieces of at most ``CHUNK`` elements; ``prange`` runs over the chunks. One call thus
updates 1,000 small tensors as cheaply as one tensor of the same total size, without moving the
caller's arrays (they stay the live, user-owned arrays) -- the CPU form of a multi-tensor apply.
State (``m``, ``v``, momentum) lives in flat buffers at ``soff[t]``.

The ``*_flat`` kernels are the same updates on one 1-d array each and share their signature with the
CUDA twins in ``kernels/cuda/optim.py``.

Rows
----
``coalesce_rows`` (serial, O(len(rows))) groups repeated row ids into chains in order of first
appearance; ``sgd_rows``/``adam_rows`` then own one distinct row per iteration (no races) and sum a
row's gradients in order of occurrence, so the result does not depend on the thread count.
"""
import numpy as np
from numba import carray, njit, prange, types
from numba.extending import intrinsic

CHUNK = 16384  # elements per work item of the multi-tensor kernels
# The callers hand work items out dynamically (``numba.set_parallel_chunksize`` around the call, a few
# items per task, see ``fastgnn.optim._base.dyn_chunk``): a static split makes every step wait for the
# slowest thread, which on a shared machine is the one that got preempted. The split never changes the arithmetic, so results do not depend on it.
# (Set inside a kernel, the chunk size would make the kernel uncacheable.)
_ROWS_PER_ITEM = 16


@intrinsic
def _as_ptr(typingctx, addr, like):
    """Reinterpret an int64 address as a pointer to ``like``'s dtype."""
    sig = types.CPointer(like.dtype)(addr, like)

    def codegen(context, builder, signature, args):
        return builder.inttoptr(args[0], context.get_value_type(signature.return_type))

    return sig, codegen


@njit(inline="always")
def _view(addr, lo, n, like):
    return carray(_as_ptr(addr + lo * like.itemsize, like), n)


# ----------------------------------------------------------------------------------------------- SGD
@njit(inline="always")
def _sgd_loop(p, g, buf, neg_lr, momentum, one_m_damp, wd, use_wd, maximize, nesterov, mode):
    """mode 0: no momentum; 1: first step (buffer = gradient); 2: momentum. Called with literal flags where
    the case is common, so that after inlining LLVM drops the dead arms and vectorises a lean loop."""
    for i in range(p.size):
        pi = p[i]
        gi = -g[i] if maximize else g[i]
        if use_wd:
            gi = gi + wd * pi
        if mode == 0:
            p[i] = pi + neg_lr * gi
        else:
            b = gi if mode == 1 else buf[i] * momentum + one_m_damp * gi
            buf[i] = b
            if nesterov:
                p[i] = pi + neg_lr * (gi + momentum * b)
            else:
                p[i] = pi + neg_lr * b


@njit(inline="always")
def _sgd_span(p, g, buf, neg_lr, momentum, one_m_damp, wd, nesterov, maximize, first):
    """SGD on one span: g' = ±g + wd·p; b = g' (first) or μ·b + (1−τ)·g'; p ← p − lr·(g' + μ·b | b)."""
    use_wd = wd != 0
    mode = 0 if momentum == 0 else (1 if first else 2)
    if not use_wd and not maximize:  # the common case, specialised
        if mode == 2:
            if nesterov:
                _sgd_loop(p, g, buf, neg_lr, momentum, one_m_damp, wd, False, False, True, 2)
            else:
                _sgd_loop(p, g, buf, neg_lr, momentum, one_m_damp, wd, False, False, False, 2)
        else:
            _sgd_loop(p, g, buf, neg_lr, momentum, one_m_damp, wd, False, False, nesterov, mode)
    else:
        _sgd_loop(p, g, buf, neg_lr, momentum, one_m_damp, wd, use_wd, maximize, nesterov, mode)


@njit(cache=True, fastmath={"reassoc"})
def _span_nonfinite(g):
    """True when the span holds a NaN or ±inf: a float sum of ``x − x`` (+0 for finite x, NaN otherwise).

    ``reassoc`` lets the sum vectorise (it is a separate function so the flag never reaches the update
    arithmetic); without ``nnan``/``ninf`` LLVM may not fold ``x − x`` to 0. The span is read as four
    interleaved streams (its quarters): more lines in flight per thread, ~20% faster than one stream.
    """
    q = g.size // 4
    g0 = g[:q]
    g1 = g[q:2 * q]
    g2 = g[2 * q:3 * q]
    g3 = g[3 * q:4 * q]
    a0 = g.dtype.type(0)
    a1 = a0
    a2 = a0
    a3 = a0
    for i in range(q):
        a0 += g0[i] - g0[i]
        a1 += g1[i] - g1[i]
        a2 += g2[i] - g2[i]
        a3 += g3[i] - g3[i]
    for i in range(4 * q, g.size):
        a0 += g[i] - g[i]
    acc = (a0 + a1) + (a2 + a3)
    return acc != acc


@njit(parallel=True, cache=True)
def sgd_multi(p_addr, g_addr, ctens, clo, chi, soff, buf, first, neg_lr, momentum, one_m_damp, wd, nesterov,
              maximize, check, bad):
    """SGD over many tensors in one launch (see the module notes). ``first[t]``: momentum buffer unset.

    With ``check``, every gradient chunk is first tested for NaN/inf (``bad[c]``); if one is found nothing
    is written and the first bad chunk's index is returned. Returns -1 after a complete update.
    """
    if check:
        for c in prange(ctens.size):
            bad[c] = _span_nonfinite(_view(g_addr[ctens[c]], clo[c], chi[c] - clo[c], buf))
        for c in range(ctens.size):
            if bad[c]:
                return c
    use_mom = momentum != 0
    for c in prange(ctens.size):
        t = ctens[c]
        lo = clo[c]
        n = chi[c] - lo
        p = _view(p_addr[t], lo, n, buf)
        g = _view(g_addr[t], lo, n, buf)
        o = soff[t] + lo
        b = buf[o:o + n] if use_mom else buf[0:0]
        _sgd_span(p, g, b, neg_lr, momentum, one_m_damp, wd, nesterov, maximize, first[t])
    return -1


@njit(parallel=True, cache=True)
def sgd_flat(p, g, buf, first, neg_lr, momentum, one_m_damp, wd, nesterov, maximize):
    """SGD on one flat array (CPU twin of the CUDA kernel)."""
    n = p.size
    use_mom = momentum != 0
    for c in prange((n + CHUNK - 1) // CHUNK):
        lo = c * CHUNK
        hi = min(n, lo + CHUNK)
        b = buf[lo:hi] if use_mom else buf[0:0]
        _sgd_span(p[lo:hi], g[lo:hi], b, neg_lr, momentum, one_m_damp, wd, nesterov, maximize, first)


# ---------------------------------------------------------------------------------------------- Adam
@njit(inline="always")
def _adam_loop(p, g, m, v, vmax, neg_step, bc2_sqrt, w, one_m_w, beta2, one_m_b2, eps, wd, decay, use_wd, use_decay,
               low_w, amsgrad):
    """The Adam loop. Called with literal flags for the common cases, so that after inlining LLVM drops the
    dead arms (a select that computes both arms costs ~25% here); otherwise the flags are loop-invariant."""
    for i in range(p.size):
        pi = p[i]
        if use_decay:
            pi = pi * decay
        gi = g[i]
        if use_wd:
            gi = gi + wd * pi
        mi = m[i]
        # torch.lerp's two-sided formula (exact at both ends)
        mi = mi + w * (gi - mi) if low_w else gi - (gi - mi) * one_m_w
        vi = v[i] * beta2 + (one_m_b2 * gi) * gi
        m[i] = mi
        v[i] = vi
        if amsgrad:
            mx = vmax[i]
            vi = mx if (mx > vi) | (mx != mx) else vi  # torch.maximum: NaN wins
            vmax[i] = vi
        p[i] = pi + neg_step * (mi / (np.sqrt(vi) / bc2_sqrt + eps))


@njit(inline="always")
def _adam_span(p, g, m, v, vmax, neg_step, bc2_sqrt, w, one_m_w, beta2, one_m_b2, eps, wd, decay, amsgrad):
    """Adam on one span, torch order: p ← decay·p; g' = g + wd·p; m ← lerp(m, g', 1−β1);
    v ← β2·v + (1−β2)·g'²; v̂ = max(v̂, v); p ← p − s·m / (√v̂ / √bc2 + ε)."""
    low_w = w < 0.5
    use_wd = wd != 0
    use_decay = decay != 1
    if low_w and not use_wd:  # Adam and AdamW with the usual betas, specialised
        if amsgrad:
            if use_decay:
                _adam_loop(p, g, m, v, vmax, neg_step, bc2_sqrt, w, one_m_w, beta2, one_m_b2, eps, wd, decay,
                           False, True, True, True)
            else:
                _adam_loop(p, g, m, v, vmax, neg_step, bc2_sqrt, w, one_m_w, beta2, one_m_b2, eps, wd, decay,
                           False, False, True, True)
        elif use_decay:
            _adam_loop(p, g, m, v, vmax, neg_step, bc2_sqrt, w, one_m_w, beta2, one_m_b2, eps, wd, decay,
                       False, True, True, False)
        else:
            _adam_loop(p, g, m, v, vmax, neg_step, bc2_sqrt, w, one_m_w, beta2, one_m_b2, eps, wd, decay,
                       False, False, True, False)
    elif amsgrad:
        _adam_loop(p, g, m, v, vmax, neg_step, bc2_sqrt, w, one_m_w, beta2, one_m_b2, eps, wd, decay,
                   use_wd, use_decay, low_w, True)
    else:
        _adam_loop(p, g, m, v, vmax, neg_step, bc2_sqrt, w, one_m_w, beta2, one_m_b2, eps, wd, decay,
                   use_wd, use_decay, low_w, False)


@njit(parallel=True, cache=True)
def adam_multi(p_addr, g_addr, ctens, clo, chi, soff, m, v, vmax, neg_step, bc2_sqrt, w, one_m_w, beta2, one_m_b2,
               eps, wd, decay, amsgrad, check, bad):
    """Adam/AdamW/AMSGrad over many tensors in one launch. ``neg_step[t] = −lr / bc1_t`` and
    ``bc2_sqrt[t] = √bc2_t`` per tensor (tensors may have taken different numbers of steps).

    ``check``/``bad`` and the return value as in :func:`sgd_multi`.
    """
    if check:
        for c in prange(ctens.size):
            bad[c] = _span_nonfinite(_view(g_addr[ctens[c]], clo[c], chi[c] - clo[c], m))
        for c in range(ctens.size):
            if bad[c]:
                return c
    for c in prange(ctens.size):
        t = ctens[c]
        lo = clo[c]
        n = chi[c] - lo
        p = _view(p_addr[t], lo, n, m)
        g = _view(g_addr[t], lo, n, m)
        o = soff[t] + lo
        vm = vmax[o:o + n] if amsgrad else vmax[0:0]
        _adam_span(p, g, m[o:o + n], v[o:o + n], vm, neg_step[t], bc2_sqrt[t], w, one_m_w, beta2, one_m_b2, eps,
                   wd, decay, amsgrad)
    return -1


@njit(parallel=True, cache=True)
def adam_flat(p, g, m, v, vmax, neg_step, bc2_sqrt, w, one_m_w, beta2, one_m_b2, eps, wd, decay, amsgrad):
    """Adam on one flat array (CPU twin of the CUDA kernel); scalars instead of per-tensor arrays."""
    n = p.size
    for c in prange((n + CHUNK - 1) // CHUNK):
        lo = c * CHUNK
        hi = min(n, lo + CHUNK)
        vm = vmax[lo:hi] if amsgrad else vmax[0:0]
        _adam_span(p[lo:hi], g[lo:hi], m[lo:hi], v[lo:hi], vm, neg_step, bc2_sqrt, w, one_m_w, beta2, one_m_b2, eps, wd,
                   decay, amsgrad)


# ------------------------------------------------------------------------------------ checks, clipping
@njit(parallel=True, cache=True, fastmath={"reassoc"})
def nonfinite_flat(x):
    """True when the 1-d array ``x`` holds a NaN or an infinity.

    A float sum of ``x − x`` (``reassoc`` lets it vectorise; without ``nnan``/``ninf`` LLVM may not fold
    ``x − x`` to 0) runs at read bandwidth, twice as fast as counting hits.
    """
    acc = x.dtype.type(0)
    for i in prange(x.size):
        acc += x[i] - x[i]
    return acc != acc


@njit(parallel=True, cache=True, fastmath={"reassoc"})
def sumsq_chunks(g_addr, ctens, clo, chi, like, out):
    """out[c] = Σ g² over chunk c, accumulated in float64. ``reassoc`` lets the sum vectorise; its order is
    fixed by the compiled code and the chunk table, never by the thread count."""
    for c in prange(ctens.size):
        t = ctens[c]
        lo = clo[c]
        n = chi[c] - lo
        g = _view(g_addr[t], lo, n, like)
        acc = 0.0
        for i in range(n):
            x = np.float64(g[i])
            acc += x * x
        out[c] = acc


@njit(parallel=True, cache=True)
def scale_chunks(g_addr, ctens, clo, chi, like, coef):
    """g ← g · coef in every chunk."""
    for c in prange(ctens.size):
        t = ctens[c]
        lo = clo[c]
        n = chi[c] - lo
        g = _view(g_addr[t], lo, n, like)
        for i in range(n):
            g[i] = g[i] * coef


@njit(parallel=True, cache=True)
def clamp_chunks(g_addr, ctens, clo, chi, like, lo_val, hi_val):
    """g ← min(max(g, lo), hi) in every chunk (NaN stays NaN, like torch.clamp)."""
    for c in prange(ctens.size):
        t = ctens[c]
        lo = clo[c]
        n = chi[c] - lo
        g = _view(g_addr[t], lo, n, like)
        for i in range(n):
            x = g[i]
            if x < lo_val:
                g[i] = lo_val
            elif x > hi_val:
                g[i] = hi_val


# ------------------------------------------------------------------------------------------ row-sparse
@njit(cache=True)
def coalesce_rows(rows, slot, ufirst, nxt):
    """Group repeated ids: returns ``nu``; ``ufirst[:nu]`` = first occurrence of each distinct row (in order
    of appearance), ``nxt[i]`` = next occurrence of the same row after ``i`` (or -1).

    ``slot`` (one int32 per table row, all -1) is scratch and is left all -1 again.
    """
    nu = 0
    last = np.empty(rows.size, dtype=np.int64)
    for i in range(rows.size):
        r = rows[i]
        u = slot[r]
        nxt[i] = -1
        if u < 0:
            slot[r] = nu
            ufirst[nu] = i
            last[nu] = i
            nu += 1
        else:
            nxt[last[u]] = i
            last[u] = i
    for u in range(nu):
        slot[rows[ufirst[u]]] = -1
    return nu


@njit(inline="always")
def _sum_chain(grads, i, nxt, acc):
    for k in range(acc.size):
        acc[k] = grads[i, k]
    j = nxt[i]
    while j >= 0:
        for k in range(acc.size):
            acc[k] += grads[j, k]
        j = nxt[j]


@njit(parallel=True, cache=True)
def sgd_rows(p, rows, grads, ufirst, nxt, nu, buf, first, neg_lr, momentum, one_m_damp, wd, nesterov, maximize):
    """Row-sparse SGD on a 2-d table: each distinct row gets the summed gradient of its occurrences."""
    d = p.shape[1]
    use_mom = momentum != 0
    for c in prange((nu + _ROWS_PER_ITEM - 1) // _ROWS_PER_ITEM):
        acc = np.empty(d, dtype=p.dtype)
        for u in range(c * _ROWS_PER_ITEM, min(nu, (c + 1) * _ROWS_PER_ITEM)):
            i = ufirst[u]
            r = rows[i]
            _sum_chain(grads, i, nxt, acc)
            b = buf[r] if use_mom else acc[0:0]
            _sgd_span(p[r], acc, b, neg_lr, momentum, one_m_damp, wd, nesterov, maximize, first)


@njit(parallel=True, cache=True)
def adam_rows(p, rows, grads, ufirst, nxt, nu, m, v, vmax, neg_step, bc2_sqrt, w, one_m_w, beta2, one_m_b2, eps, wd, decay,
              amsgrad):
    """Lazy Adam on a 2-d table: only the distinct rows in ``rows`` (and their moments) change."""
    d = p.shape[1]
    for c in prange((nu + _ROWS_PER_ITEM - 1) // _ROWS_PER_ITEM):
        acc = np.empty(d, dtype=p.dtype)
        for u in range(c * _ROWS_PER_ITEM, min(nu, (c + 1) * _ROWS_PER_ITEM)):
            i = ufirst[u]
            r = rows[i]
            _sum_chain(grads, i, nxt, acc)
            vm = vmax[r] if amsgrad else acc[0:0]
            _adam_span(p[r], acc, m[r], v[r], vm, neg_step, bc2_sqrt, w, one_m_w, beta2, one_m_b2, eps, wd, decay, amsgrad)
