"""CUDA twin of ``kernels/cpu/word2vec.py``: skip-gram and CBOW with negative sampling.

``train_sg`` / ``train_cbow`` are host launchers with the CPU kernels' argument order (device or host
arrays; host arrays are copied by numba). One warp runs one chunk of sentences. All 32 lanes draw the
chunk's ``hash3(seed, (epoch << 32) | chunk, counter)`` stream and take the same scalar decisions
(subsampling, window, noise words, learning rate); lane ``l`` owns columns ``l, l + 32, ...`` of every
row, so row accesses are coalesced, and dot products and norms are per-lane float64 partial sums added
by :func:`.warp.warp_sum`. A single chunk gives the CPU result to rounding (only the order of the
dot-product additions differs); several chunks update the shared tables without locks (Hogwild), reading
them with :func:`.coherent.load_l2` so that warps on different SMs see each other's updates.
Scratch space (kept words, gradient and hidden vector per chunk, noise words per lane) lives in global
buffers, because per-thread local arrays need compile-time sizes (allocate them once per training with
:func:`workspace`). A lane reads only scratch it wrote itself or values all lanes write alike, so lanes
need no synchronisation beyond the reductions. Column loops are ``while`` loops: a stepped ``range``
took 202 registers per thread instead of 140 (sm_90). Every device function is inlined in Numba IR, so
``cuda.compile_ptx`` needs no GPU (a separately compiled one asks the driver for its compute capability).
Pass small ``batch_words`` chunks (many warps) for a GPU-sized launch.
"""
import math

import numpy as np
from numba import cuda, float64, int64, uint64

from .coherent import load_l2
from .mathfn import sigmoid as _sigmoid
from .mathfn import softplus as _softplus
from .rng import hash3, mix64
from .warp import SIM, scratch_size, warp_sum, warp_sum2

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
# Most threads per block (a chunk per warp): one warp under the simulator, whose reductions are block-wide.
# The launchers' default of 64 keeps the most warps resident at 140 registers a thread (14 per SM on sm_90).
BLOCK = 32 if SIM else 128
_SCRATCH = scratch_size(BLOCK)


@cuda.jit(device=True, inline=True)
def _draw(base, counter):
    return mix64(base + _GOLDEN * (uint64(counter) + uint64(1)))


@cuda.jit(device=True, inline=True)
def _noise(r, noise_prob, noise_alias):
    v = noise_prob.shape[0]
    col = int64(((r >> uint64(32)) * uint64(v)) >> uint64(32))
    coin = float64(r & uint64(0xFFFFFFFF)) * (1.0 / 4294967296.0)
    if coin < noise_prob[col]:
        return col
    return int64(noise_alias[col])


@cuda.jit(device=True, inline=True)
def _sq(m, r, lane, scratch, wid):
    s = 0.0
    k = lane
    while k < m.shape[1]:
        v = float64(load_l2(m, r, k))
        s += v * v
        k += 32
    return warp_sum(s, scratch, lane, wid)


@cuda.jit(device=True, inline=True)
def _draw_negatives(target, negative, noise_prob, noise_alias, base, counter, negs, tid):
    """The lane's own copy ``negs[:, tid]`` of the noise words: a shared copy could be overwritten by a
    lane already at the next draw while another still reads it."""
    for s in range(negative):
        t = _noise(_draw(base, counter), noise_prob, noise_alias)
        counter += 1
        negs[s, tid] = -1 if t == target else t
    return counter


@cuda.jit(device=True, inline=True)
def _negative_pass(syn1, H, hr, target, negs, tid, negative, alpha, l2, clip, compute_loss, work, c, lane,
                   scratch, wid):
    """Positive ``target`` and noise words ``negs[:, tid]`` for the hidden vector ``H[hr]``; returns the loss."""
    d = H.shape[1]
    loss = 0.0
    k = lane
    while k < d:
        work[c, k] = 0
        k += 32
    for s in range(negative + 1):
        if s == 0:
            t = int64(target)
            label = 1.0
        else:
            t = int64(negs[s - 1, tid])
            if t < 0:
                continue
            label = 0.0
        f = 0.0
        q = 0.0  # |syn1[t]|², for the loss's L2 term
        k = lane
        while k < d:
            o = float64(load_l2(syn1, t, k))
            f += float64(load_l2(H, hr, k)) * o
            q += o * o
            k += 32
        if compute_loss and l2 > 0.0:
            f, q = warp_sum2(f, q, scratch, lane, wid)
        else:
            f = warp_sum(f, scratch, lane, wid)
        if compute_loss:
            loss += _softplus(-f) if s == 0 else _softplus(f)
            if l2 > 0.0:
                loss += 0.5 * l2 * q
        g = label - _sigmoid(f)
        scale = alpha
        if clip > 0.0:
            ss = 0.0
            k = lane
            while k < d:
                v = g * load_l2(H, hr, k) - l2 * load_l2(syn1, t, k)
                ss += v * v
                k += 32
            nrm = math.sqrt(warp_sum(ss, scratch, lane, wid))
            if nrm > clip:
                scale = alpha * clip / nrm
        k = lane
        while k < d:
            o = load_l2(syn1, t, k)
            work[c, k] += g * o
            syn1[t, k] = o + scale * (g * load_l2(H, hr, k) - l2 * o)
            k += 32
    return loss


@cuda.jit(device=True, inline=True)
def _row_update(syn0, r, work, c, mult, alpha, l2, clip, lane, scratch, wid):
    d = syn0.shape[1]
    scale = alpha
    if clip > 0.0:
        ss = 0.0
        k = lane
        while k < d:
            v = mult * work[c, k] - l2 * load_l2(syn0, r, k)
            ss += v * v
            k += 32
        nrm = math.sqrt(warp_sum(ss, scratch, lane, wid))
        if nrm > clip:
            scale = alpha * clip / nrm
    k = lane
    while k < d:
        x = load_l2(syn0, r, k)
        syn0[r, k] = x + scale * (mult * work[c, k] - l2 * x)
        k += 32


@cuda.jit(device=True, inline=True)
def _subsample(corpus, start, end, keep_prob, base, counter, sent):
    n = 0
    for p in range(start, end):
        w = corpus[p]
        kp = keep_prob[w]
        if kp < 1.0:
            u = float64(_draw(base, counter) >> uint64(11)) * (1.0 / 9007199254740992.0)
            counter += 1
            if u >= kp:
                continue
        sent[start + n] = w
        n += 1
    return n, counter


@cuda.jit(device=True, inline=True)
def _window_draw(base, counter, window):
    return int64(((_draw(base, counter) >> uint64(32)) * uint64(window)) >> uint64(32))


@cuda.jit
def _train_kernel(sg, corpus, offsets, chunks, keep_prob, noise_prob, noise_alias, syn0, syn1, window, shrink,
                  negative, shared, cbow_mean, alpha_start, alpha_end, total_words, l2, clip, seed, epoch,
                  compute_loss, loss_out, words_out, sent, work, hbuf, negs):
    scratch = cuda.shared.array(_SCRATCH, float64)
    tid = cuda.grid(1)
    c = tid // 32
    lane = cuda.threadIdx.x % 32
    wid = cuda.threadIdx.x // 32
    if c >= chunks.shape[0] - 1:  # the whole warp leaves together
        return
    base = mix64(uint64(seed) + _GOLDEN * (((uint64(epoch) << uint64(32)) | uint64(c)) + uint64(1)))
    counter = int64(0)
    loss = 0.0
    kept = int64(0)
    d = syn0.shape[1]
    for s in range(chunks[c], chunks[c + 1]):
        start = offsets[s]
        alpha = alpha_start + (alpha_end - alpha_start) * (start / max(total_words, 1))
        n, counter = _subsample(corpus, start, offsets[s + 1], keep_prob, base, counter, sent)
        kept += n
        for i in range(n):
            b = 0
            if shrink:
                b = _window_draw(base, counter, window)
                counter += 1
            lo = max(0, i - window + b)
            hi = min(n, i + window + 1 - b)
            wi = sent[start + i]
            if sg:
                if shared and hi - lo > 1:
                    counter = _draw_negatives(wi, negative, noise_prob, noise_alias, base, counter, negs, tid)
                for j in range(lo, hi):
                    if j == i:
                        continue
                    wj = sent[start + j]
                    if not shared:
                        counter = _draw_negatives(wi, negative, noise_prob, noise_alias, base, counter, negs, tid)
                    loss += _negative_pass(syn1, syn0, wj, wi, negs, tid, negative, alpha, l2, clip, compute_loss,
                                           work, c, lane, scratch, wid)
                    if compute_loss and l2 > 0.0:
                        loss += 0.5 * l2 * _sq(syn0, wj, lane, scratch, wid)
                    _row_update(syn0, wj, work, c, 1.0, alpha, l2, clip, lane, scratch, wid)
            else:
                count = hi - lo - 1
                if count <= 0:
                    continue
                k = lane
                while k < d:
                    hbuf[c, k] = 0
                    k += 32
                for j in range(lo, hi):
                    if j != i:
                        wj = sent[start + j]
                        k = lane
                        while k < d:
                            hbuf[c, k] += load_l2(syn0, wj, k)
                            k += 32
                mult = 1.0 / count  # word2vec's rule, as the CPU kernel
                if cbow_mean:
                    k = lane
                    while k < d:
                        hbuf[c, k] *= mult
                        k += 32
                    mult = 1.0
                counter = _draw_negatives(wi, negative, noise_prob, noise_alias, base, counter, negs, tid)
                loss += _negative_pass(syn1, hbuf, c, wi, negs, tid, negative, alpha, l2, clip, compute_loss, work,
                                       c, lane, scratch, wid)
                for j in range(lo, hi):
                    if j != i:
                        wj = sent[start + j]
                        if compute_loss and l2 > 0.0:
                            loss += 0.5 * l2 * _sq(syn0, wj, lane, scratch, wid)
                        _row_update(syn0, wj, work, c, mult, alpha, l2, clip, lane, scratch, wid)
    if lane == 0:
        loss_out[c] = loss
        words_out[c] = kept


def to_device(a):
    """Host array -> device array (one copy)."""
    return cuda.to_device(np.ascontiguousarray(a))


def device_empty(shape, dtype):
    """Uninitialised device array (the kernels write every element of their outputs)."""
    return cuda.device_array(shape, dtype)


def workspace(corpus_size, nchunks, dim, negative, dtype):
    """Scratch buffers of one training run ``(sent, work, hbuf, negs)``: kept words per corpus position,
    gradient and hidden vector per chunk, noise words per lane (``[negative, 32 nchunks]``). Reusable across
    epochs and launches with the same corpus, chunks, ``dim``, ``negative`` and ``dtype``."""
    nch = max(int(nchunks), 1)
    return (cuda.device_array(max(int(corpus_size), 1), np.int32),
            cuda.device_array((nch, dim), dtype),
            cuda.device_array((nch, dim), dtype),
            cuda.device_array((max(int(negative), 1), 32 * nch), np.int64))


def _launch(sg, corpus, offsets, chunks, keep_prob, noise_prob, noise_alias, syn0, syn1, window, shrink, negative,
            shared, cbow_mean, alpha_start, alpha_end, total_words, l2, clip, seed, epoch, compute_loss, loss_out,
            words_out, threads_per_block, scratch):
    nch = chunks.shape[0] - 1
    if nch <= 0:
        return
    d = syn0.shape[1]
    if scratch is None:
        scratch = workspace(corpus.shape[0], nch, d, negative, syn0.dtype)
    sent, work, hbuf, negs = scratch
    if (work.shape[0] < nch or work.shape[1] != d or negs.shape[0] < negative or negs.shape[1] < 32 * nch
            or sent.shape[0] < corpus.shape[0] or np.dtype(work.dtype) != np.dtype(syn0.dtype)):
        raise ValueError(f"workspace: buffers of shapes {sent.shape}, {work.shape}, {negs.shape} ({work.dtype}) do "
                         f"not fit {corpus.shape[0]} words, {nch} chunks, dim {d}, negative {negative} ({syn0.dtype})")
    # whole warps, at most BLOCK threads, no idle warps when there are few chunks
    warps = min(max(1, -(-int(threads_per_block) // 32)), BLOCK // 32, nch)
    blocks = math.ceil(nch / warps)
    _train_kernel[blocks, 32 * warps](
        sg, corpus, offsets, chunks, keep_prob, noise_prob, noise_alias, syn0, syn1, window, shrink, negative,
        shared, cbow_mean, alpha_start, alpha_end, total_words, l2, clip, seed, epoch, compute_loss, loss_out,
        words_out, sent, work, hbuf, negs)


def train_sg(corpus, offsets, chunks, keep_prob, noise_prob, noise_alias, syn0, syn1, window, shrink, negative,
             shared, alpha_start, alpha_end, total_words, l2, clip, seed, epoch, compute_loss, loss_out, words_out,
             threads_per_block=64, workspace=None):
    """One skip-gram epoch on the GPU; arguments as the CPU ``train_sg`` (device arrays updated in place).

    ``threads_per_block``: rounded up to whole warps (one chunk each), at most :data:`BLOCK`.
    ``workspace``: buffers from :func:`workspace` (allocated here when omitted)."""
    _launch(True, corpus, offsets, chunks, keep_prob, noise_prob, noise_alias, syn0, syn1, window, shrink,
            negative, shared, False, alpha_start, alpha_end, total_words, l2, clip, seed, epoch, compute_loss,
            loss_out, words_out, threads_per_block, workspace)


def train_cbow(corpus, offsets, chunks, keep_prob, noise_prob, noise_alias, syn0, syn1, window, shrink, negative,
               cbow_mean, alpha_start, alpha_end, total_words, l2, clip, seed, epoch, compute_loss, loss_out,
               words_out, threads_per_block=64, workspace=None):
    """One CBOW epoch on the GPU; arguments as the CPU ``train_cbow`` (device arrays updated in place).

    ``threads_per_block``: rounded up to whole warps (one chunk each), at most :data:`BLOCK`.
    ``workspace``: buffers from :func:`workspace` (allocated here when omitted)."""
    _launch(False, corpus, offsets, chunks, keep_prob, noise_prob, noise_alias, syn0, syn1, window, shrink,
            negative, False, cbow_mean, alpha_start, alpha_end, total_words, l2, clip, seed, epoch, compute_loss,
            loss_out, words_out, threads_per_block, workspace)


@cuda.jit(cache=True)
def _noise_draws(noise_prob, noise_alias, anchors, seed, out):
    i = cuda.grid(1)
    k = out.shape[1]
    if i < out.shape[0] * k:
        b = i // k
        j = i - b * k
        t = _noise(hash3(seed, b, j), noise_prob, noise_alias)
        out[b, j] = -1 if t == anchors[b] else t


def noise_draws(noise_prob, noise_alias, anchors, seed, out):
    """Device twin of the CPU ``noise_draws`` (the same ids): ``out[b, j]`` (int64 [B, k]) is draw ``j`` of the
    alias table for anchor ``b``, from ``hash3(seed, b, j)``, or -1 where it hits ``anchors[b]``; one thread per
    entry, consecutive threads on consecutive entries of a row (coalesced stores)."""
    n = out.shape[0] * out.shape[1]
    if n:
        _noise_draws[math.ceil(n / 256), 256](noise_prob, noise_alias, anchors, seed, out)
