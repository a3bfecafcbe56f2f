"""CUDA twin of ``kernels/cpu/word2vec.py``: skip-gram and CBOW with negative sampling.

``train_sg`` / ``train_cbow`` are host launchers with the CPU kernels' argument order (device or host
arrays; host arrays are copied by numba). One GPU thread runs one chunk of sentences, drawing from
the same ``hash3(seed, (epoch << 32) | chunk, counter)`` stream as the CPU kernel, so a single chunk
gives the CPU result to rounding; several chunks update the shared tables without locks (Hogwild).
Scratch space (kept words, gradient, hidden vector, noise words) lives in global buffers indexed by
the chunk, because per-thread local arrays need compile-time sizes (allocate them once per training
with :func:`workspace`). Pass small ``batch_words`` chunks (many threads) for a GPU-sized launch.
"""
import math

import numpy as np
from numba import cuda, float64, int64, uint64

from .mathfn import sigmoid as _sigmoid
from .mathfn import softplus as _softplus
from .rng import mix64

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


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


@cuda.jit(device=True)
def _sq(m, r):
    s = 0.0
    for k in range(m.shape[1]):
        s += float64(m[r, k]) * float64(m[r, k])
    return s


@cuda.jit(device=True)
def _draw_negatives(target, negative, noise_prob, noise_alias, base, counter, negs, c):
    for s in range(negative):
        t = _noise(_draw(base, counter), noise_prob, noise_alias)
        counter += 1
        negs[c, s] = -1 if t == target else t
    return counter


@cuda.jit(device=True)
def _negative_pass(syn1, H, hr, target, negs, c, negative, alpha, l2, clip, compute_loss, work):
    """Positive ``target`` and noise words ``negs[c]`` for the hidden vector ``H[hr]``; returns the loss."""
    d = H.shape[1]
    loss = 0.0
    for k in range(d):
        work[c, k] = 0
    for s in range(negative + 1):
        if s == 0:
            t = int64(target)
            label = 1.0
        else:
            t = int64(negs[c, s - 1])
            if t < 0:
                continue
            label = 0.0
        f = 0.0
        for k in range(d):
            f += float64(H[hr, k]) * float64(syn1[t, k])
        if compute_loss:
            loss += _softplus(-f) if s == 0 else _softplus(f)
            if l2 > 0.0:
                loss += 0.5 * l2 * _sq(syn1, t)
        g = label - _sigmoid(f)
        scale = alpha
        if clip > 0.0:
            ss = 0.0
            for k in range(d):
                v = g * H[hr, k] - l2 * syn1[t, k]
                ss += v * v
            nrm = math.sqrt(ss)
            if nrm > clip:
                scale = alpha * clip / nrm
        for k in range(d):
            o = syn1[t, k]
            work[c, k] += g * o
            syn1[t, k] = o + scale * (g * H[hr, k] - l2 * o)
    return loss


@cuda.jit(device=True)
def _row_update(syn0, r, work, c, mult, alpha, l2, clip):
    d = syn0.shape[1]
    scale = alpha
    if clip > 0.0:
        ss = 0.0
        for k in range(d):
            v = mult * work[c, k] - l2 * syn0[r, k]
            ss += v * v
        nrm = math.sqrt(ss)
        if nrm > clip:
            scale = alpha * clip / nrm
    for k in range(d):
        x = syn0[r, k]
        syn0[r, k] = x + scale * (mult * work[c, k] - l2 * x)


@cuda.jit(device=True)
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
    c = cuda.grid(1)
    if c >= chunks.shape[0] - 1:
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
                    counter = _draw_negatives(wi, negative, noise_prob, noise_alias, base, counter, negs, c)
                for j in range(lo, hi):
                    if j == i:
                        continue
                    wj = sent[start + j]
                    if not shared:
                        counter = _draw_negatives(wi, negative, noise_prob, noise_alias, base, counter, negs, c)
                    loss += _negative_pass(syn1, syn0, wj, wi, negs, c, negative, alpha, l2, clip, compute_loss,
                                           work)
                    if compute_loss and l2 > 0.0:
                        loss += 0.5 * l2 * _sq(syn0, wj)
                    _row_update(syn0, wj, work, c, 1.0, alpha, l2, clip)
            else:
                count = hi - lo - 1
                if count <= 0:
                    continue
                for k in range(d):
                    hbuf[c, k] = 0
                for j in range(lo, hi):
                    if j != i:
                        wj = sent[start + j]
                        for k in range(d):
                            hbuf[c, k] += syn0[wj, k]
                mult = 1.0 / count  # word2vec's rule, as the CPU kernel
                if cbow_mean:
                    for k in range(d):
                        hbuf[c, k] *= mult
                    mult = 1.0
                counter = _draw_negatives(wi, negative, noise_prob, noise_alias, base, counter, negs, c)
                loss += _negative_pass(syn1, hbuf, c, wi, negs, c, negative, alpha, l2, clip, compute_loss, work)
                for j in range(lo, hi):
                    if j != i:
                        wj = sent[start + j]
                        if compute_loss and l2 > 0.0:
                            loss += 0.5 * l2 * _sq(syn0, wj)
                        _row_update(syn0, wj, work, c, mult, alpha, l2, clip)
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
    gradient and hidden vector per chunk, noise words per chunk. Reusable across epochs and launches
    with the same corpus, chunks, ``dim``, ``negative`` and ``dtype``."""
    return (cuda.device_array(max(int(corpus_size), 1), np.int32),
            cuda.device_array((max(int(nchunks), 1), dim), dtype),
            cuda.device_array((max(int(nchunks), 1), dim), dtype),
            cuda.device_array((max(int(nchunks), 1), max(int(negative), 1)), np.int64))


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
    if (work.shape[0] < nch or work.shape[1] != d or negs.shape[1] < negative or sent.shape[0] < corpus.shape[0]
            or np.dtype(work.dtype) != np.dtype(syn0.dtype)):
        raise ValueError(f"workspace: buffers of shapes {sent.shape}, {work.shape}, {negs.shape} ({work.dtype}) do "
                         f"not fit {corpus.shape[0]} words, {nch} chunks, dim {d}, negative {negative} ({syn0.dtype})")
    threads_per_block = max(1, min(threads_per_block, nch))  # no idle threads when there are few chunks
    blocks = math.ceil(nch / threads_per_block)
    _train_kernel[blocks, threads_per_block](
        sg, corpus, offsets, chunks, keep_prob, noise_prob, noise_alias, syn0, syn1, window, shrink, negative,
        shared, cbow_mean, alpha_start, alpha_end, total_words, l2, clip, seed, epoch, compute_loss, loss_out,
        words_out, sent, work, hbuf, negs)


def train_sg(corpus, offsets, chunks, keep_prob, noise_prob, noise_alias, syn0, syn1, window, shrink, negative,
             shared, alpha_start, alpha_end, total_words, l2, clip, seed, epoch, compute_loss, loss_out, words_out,
             threads_per_block=64, workspace=None):
    """One skip-gram epoch on the GPU; arguments as the CPU ``train_sg`` (device arrays updated in place).

    ``workspace``: buffers from :func:`workspace` (allocated here when omitted)."""
    _launch(True, corpus, offsets, chunks, keep_prob, noise_prob, noise_alias, syn0, syn1, window, shrink,
            negative, shared, False, alpha_start, alpha_end, total_words, l2, clip, seed, epoch, compute_loss,
            loss_out, words_out, threads_per_block, workspace)


def train_cbow(corpus, offsets, chunks, keep_prob, noise_prob, noise_alias, syn0, syn1, window, shrink, negative,
               cbow_mean, alpha_start, alpha_end, total_words, l2, clip, seed, epoch, compute_loss, loss_out,
               words_out, threads_per_block=64, workspace=None):
    """One CBOW epoch on the GPU; arguments as the CPU ``train_cbow`` (device arrays updated in place).

    ``workspace``: buffers from :func:`workspace` (allocated here when omitted)."""
    _launch(False, corpus, offsets, chunks, keep_prob, noise_prob, noise_alias, syn0, syn1, window, shrink,
            negative, False, cbow_mean, alpha_start, alpha_end, total_words, l2, clip, seed, epoch, compute_loss,
            loss_out, words_out, threads_per_block, workspace)
