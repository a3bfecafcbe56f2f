"""Skip-gram and CBOW with negative sampling over a flat int32 corpus (Hogwild SGD).

The corpus is one int32 array of word ids with sentence offsets; sentences are grouped into chunks
(about ``batch_words`` words each, fixed by the caller independently of the thread count) and the
chunks are processed in parallel, updating the shared ``syn0`` (input) and ``syn1`` (output) tables
without locks (Hogwild, as word2vec and gensim do). Every random draw is ``hash3(seed, stream,
counter)`` with ``stream = (epoch << 32) | chunk`` and a counter local to the chunk, so the draws do
not depend on the thread count; with one thread the chunks run in order and the result is
bit-reproducible. With several threads the order of the (racing) updates varies between runs.

Per word pair the update is word2vec's: ``f = syn0[c]·syn1[t]``, ``g = label - σ(f)``,
``syn1[t] += α (g syn0[c] - λ syn1[t])``, ``syn0[c] += α (Σ_t g syn1[t] - λ syn0[c])``, i.e. one SGD
step on ``L = softplus(-f⁺) + Σ softplus(f⁻) + λ/2 (|syn0[c]|² + Σ_t |syn1[t]|²)``. With ``clip > 0``
each row's gradient longer than ``clip`` is rescaled to length ``clip`` (direction kept).
"""
import numpy as np
from numba import njit, prange

from .prefetch import prefetch_row_for_write as _prefetch_row
from .rng import mix64

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_FASTMATH = {"contract", "arcp", "reassoc"}


@njit(inline="always", cache=True)
def _prefetch_targets(syn1, target, negs):
    _prefetch_row(syn1, target)
    for s in range(negs.size):
        if negs[s] >= 0:
            _prefetch_row(syn1, negs[s])


@njit(inline="always", cache=True)
def _draw(base, counter):
    """Same bits as ``hash3(seed, stream, counter)`` when ``base = mix64(seed + G (stream + 1))``."""
    return mix64(base + _GOLDEN * (np.uint64(counter) + np.uint64(1)))


@njit(inline="always", cache=True)
def _noise(r, noise_prob, noise_alias):
    """Walker alias draw from one 64-bit word: high 32 bits pick a column, low 32 bits the coin."""
    v = noise_prob.size
    col = np.int64(((r >> np.uint64(32)) * np.uint64(v)) >> np.uint64(32))
    coin = np.float64(r & np.uint64(0xFFFFFFFF)) * (1.0 / 4294967296.0)
    if coin < noise_prob[col]:
        return col
    return np.int64(noise_alias[col])


@njit(inline="always", cache=True)
def _subsample(corpus, start, end, keep_prob, base, counter, sent):
    """Copy the kept words of ``corpus[start:end]`` into ``sent``; returns (count, counter)."""
    n = 0
    for p in range(start, end):
        w = corpus[p]
        kp = keep_prob[w]
        if kp < 1.0:
            u = np.float64(_draw(base, counter) >> np.uint64(11)) * (1.0 / 9007199254740992.0)
            counter += 1
            if u >= kp:
                continue
        sent[n] = w
        n += 1
    return n, counter


@njit(inline="always", cache=True)
def _out_update(syn1, t, h, g, a, l2, clip, work):
    """work += g syn1[t]; syn1[t] += a (g h - l2 syn1[t]) (gradient clipped to norm ``clip``)."""
    d = h.size
    scale = a
    if clip > 0.0:
        ss = 0.0
        for k in range(d):
            v = g * h[k] - l2 * syn1[t, k]
            ss += v * v
        nrm = np.sqrt(ss)
        if nrm > clip:
            scale = a * syn1.dtype.type(clip / nrm)
    for k in range(d):
        o = syn1[t, k]
        work[k] += g * o
        syn1[t, k] = o + scale * (g * h[k] - l2 * o)


@njit(inline="always", cache=True)
def _row_update(syn0, c, work, mult, a, l2, clip):
    """syn0[c] += a (mult work - l2 syn0[c]) (gradient clipped to norm ``clip``)."""
    d = work.size
    scale = a
    if clip > 0.0:
        ss = 0.0
        for k in range(d):
            v = mult * work[k] - l2 * syn0[c, k]
            ss += v * v
        nrm = np.sqrt(ss)
        if nrm > clip:
            scale = a * syn0.dtype.type(clip / nrm)
    for k in range(d):
        x = syn0[c, k]
        syn0[c, k] = x + scale * (mult * work[k] - l2 * x)


@njit(inline="always", cache=True)
def _sq(syn, r):
    s = 0.0
    for k in range(syn.shape[1]):
        s += np.float64(syn[r, k]) * np.float64(syn[r, k])
    return s


@njit(inline="always", cache=True)
def _draw_negatives(target, negative, noise_prob, noise_alias, base, counter, negs):
    """Fill ``negs`` with noise words (-1 where a draw hit ``target``: skipped, as word2vec); returns counter."""
    for s in range(negative):
        t = _noise(_draw(base, counter), noise_prob, noise_alias)
        counter += 1
        negs[s] = -1 if t == target else t
    return counter


@njit(inline="always", cache=True)
def _negative_pass(syn1, h, target, negs, alpha, l2, clip, compute_loss, work):
    """Positive ``target`` and the noise words ``negs`` for hidden vector ``h``; returns the loss."""
    dt = syn1.dtype.type
    d = h.size
    loss = 0.0
    for k in range(d):
        work[k] = 0
    for s in range(negs.size + 1):
        if s == 0:
            t = np.int64(target)
            label = 1.0
        else:
            t = np.int64(negs[s - 1])
            if t < 0:
                continue
            label = 0.0
        f = dt(0)
        for k in range(d):
            f += h[k] * syn1[t, k]
        # one exp per target: e = exp(-|f|) gives σ(f) and, for the loss, softplus(∓f) = max(∓f, 0) + log1p(e)
        e = np.exp(-abs(f))
        sig = dt(1) / (dt(1) + e) if f >= 0 else e / (dt(1) + e)
        if compute_loss:
            ff = np.float64(f)
            lp = np.float64(np.log1p(e))
            loss += (max(-ff, 0.0) + lp) if s == 0 else (max(ff, 0.0) + lp)
            if l2 > 0.0:
                loss += 0.5 * l2 * _sq(syn1, t)
        g = dt(label) - sig
        _out_update(syn1, t, h, g, dt(alpha), dt(l2), clip, work)
    return loss


@njit(parallel=True, cache=True, fastmath=_FASTMATH)
def train_sg(corpus, offsets, chunks, keep_prob, noise_prob, noise_alias, syn0, syn1, window, shrink,
             negative, shared, alpha_start, alpha_end, total_words, l2, clip, seed, epoch, compute_loss,
             loss_out, words_out):
    """One epoch of skip-gram with negative sampling (Hogwild over chunks of sentences).

    corpus int32 [T] word ids; offsets int64 [S + 1] sentence starts; chunks int64 [C + 1] sentence
    index boundaries of the chunks; keep_prob float64 [V] sub-sampling keep probability (>= 1: always
    kept); noise_prob float64 [V] / noise_alias int32 [V] Walker alias table of the noise distribution;
    syn0, syn1 float [V, D] updated in place. The learning rate of a sentence is interpolated
    linearly from ``alpha_start`` to ``alpha_end`` by its word offset / ``total_words``. Writes the
    float64 loss and the number of kept words of chunk ``c`` to ``loss_out[c]`` and ``words_out[c]``.
    For each centre ``i`` and context ``j`` (reduced window ``window - b``, ``b`` uniform in
    [0, window) when ``shrink``), the context row ``syn0[j]`` learns to predict ``i`` (gensim's order).
    With ``shared`` the ``negative`` noise words are drawn once per centre word and reused by every
    context word of its window (Ji et al., "Parallelizing Word2Vec in Shared and Distributed Memory"):
    the output rows stay in cache across the window, and there are 2·window times fewer draws.
    """
    nchunks = chunks.size - 1
    d = syn0.shape[1]
    for c in prange(nchunks):
        base = mix64(np.uint64(seed) + _GOLDEN * (((np.uint64(epoch) << np.uint64(32)) | np.uint64(c))
                                                  + np.uint64(1)))
        counter = np.int64(0)
        s0 = chunks[c]
        s1 = chunks[c + 1]
        maxlen = 0
        for s in range(s0, s1):
            maxlen = max(maxlen, offsets[s + 1] - offsets[s])
        sent = np.empty(maxlen, np.int32)
        work = np.empty(d, syn0.dtype)
        negs = np.empty(negative, np.int64)
        loss = 0.0
        kept = 0
        for s in range(s0, s1):
            frac = offsets[s] / max(total_words, 1)
            alpha = alpha_start + (alpha_end - alpha_start) * frac
            n, counter = _subsample(corpus, offsets[s], offsets[s + 1], keep_prob, base, counter, sent)
            kept += n
            for i in range(n):
                b = 0
                if shrink:
                    b = np.int64(((_draw(base, counter) >> np.uint64(32)) * np.uint64(window)) >> np.uint64(32))
                    counter += 1
                lo = max(0, i - window + b)
                hi = min(n, i + window + 1 - b)
                wi = sent[i]
                if shared and hi - lo > 1:
                    counter = _draw_negatives(wi, negative, noise_prob, noise_alias, base, counter, negs)
                    _prefetch_targets(syn1, wi, negs)
                for j in range(lo, hi):
                    if j == i:
                        continue
                    wj = sent[j]
                    h = syn0[wj]
                    if not shared:
                        counter = _draw_negatives(wi, negative, noise_prob, noise_alias, base, counter, negs)
                        _prefetch_targets(syn1, wi, negs)
                    nxt = j + 1 if j + 1 != i else j + 2
                    if nxt < hi:
                        _prefetch_row(syn0, sent[nxt])
                    pl = _negative_pass(syn1, h, wi, negs, alpha, l2, clip, compute_loss, work)
                    if compute_loss:
                        loss += pl
                        if l2 > 0.0:
                            loss += 0.5 * l2 * _sq(syn0, wj)
                    _row_update(syn0, wj, work, syn0.dtype.type(1.0), syn0.dtype.type(alpha),
                                syn0.dtype.type(l2), clip)
        loss_out[c] = loss
        words_out[c] = kept


@njit(parallel=True, cache=True, fastmath=_FASTMATH)
def train_cbow(corpus, offsets, chunks, keep_prob, noise_prob, noise_alias, syn0, syn1, window, shrink,
               negative, cbow_mean, alpha_start, alpha_end, total_words, l2, clip, seed, epoch, compute_loss,
               loss_out, words_out):
    """One epoch of CBOW with negative sampling (Hogwild over chunks); arguments as :func:`train_sg`.

    The hidden vector is ``h = Σ_j syn0[j]`` over the reduced window (divided by the context size when
    ``cbow_mean``); it predicts the centre word with ``L = softplus(-h·syn1[i]) + Σ softplus(h·syn1[n])
    + λ/2 (Σ_j |syn0[j]|² + Σ_t |syn1[t]|²)``. ``syn1`` takes the exact gradient step. Every context row
    takes word2vec's (and gensim's) step: the gradient with respect to ``h``, unscaled for the mean and
    divided by the context size for the sum (for the mean that is ``count`` times the exact
    gradient, for the sum ``1/count`` times), plus its own L2 term.
    """
    nchunks = chunks.size - 1
    d = syn0.shape[1]
    for c in prange(nchunks):
        base = mix64(np.uint64(seed) + _GOLDEN * (((np.uint64(epoch) << np.uint64(32)) | np.uint64(c))
                                                  + np.uint64(1)))
        counter = np.int64(0)
        s0 = chunks[c]
        s1 = chunks[c + 1]
        maxlen = 0
        for s in range(s0, s1):
            maxlen = max(maxlen, offsets[s + 1] - offsets[s])
        sent = np.empty(maxlen, np.int32)
        work = np.empty(d, syn0.dtype)
        negs = np.empty(negative, np.int64)
        h = np.empty(d, syn0.dtype)
        loss = 0.0
        kept = 0
        for s in range(s0, s1):
            frac = offsets[s] / max(total_words, 1)
            alpha = alpha_start + (alpha_end - alpha_start) * frac
            n, counter = _subsample(corpus, offsets[s], offsets[s + 1], keep_prob, base, counter, sent)
            kept += n
            for i in range(n):
                b = 0
                if shrink:
                    b = np.int64(((_draw(base, counter) >> np.uint64(32)) * np.uint64(window)) >> np.uint64(32))
                    counter += 1
                lo = max(0, i - window + b)
                hi = min(n, i + window + 1 - b)
                count = hi - lo - 1
                if count <= 0:
                    continue
                counter = _draw_negatives(sent[i], negative, noise_prob, noise_alias, base, counter, negs)
                _prefetch_targets(syn1, sent[i], negs)
                for j in range(lo, hi):
                    if j != i:
                        _prefetch_row(syn0, sent[j])
                for k in range(d):
                    h[k] = 0
                for j in range(lo, hi):
                    if j == i:
                        continue
                    wj = sent[j]
                    for k in range(d):
                        h[k] += syn0[wj, k]
                # word2vec / gensim rule: the mean's gradient goes to every context row unscaled, the sum's
                # is divided by the context size (so both take steps of the same size)
                mult = syn0.dtype.type(1.0 / count)
                if cbow_mean:
                    for k in range(d):
                        h[k] *= mult
                    mult = syn0.dtype.type(1.0)
                pl = _negative_pass(syn1, h, sent[i], negs, alpha, l2, clip, compute_loss, work)
                if compute_loss:
                    loss += pl
                for j in range(lo, hi):
                    if j == i:
                        continue
                    wj = sent[j]
                    if compute_loss and l2 > 0.0:
                        loss += 0.5 * l2 * _sq(syn0, wj)
                    _row_update(syn0, wj, work, mult, syn0.dtype.type(alpha), syn0.dtype.type(l2), clip)
        loss_out[c] = loss
        words_out[c] = kept


@njit(parallel=True, cache=True)
def noise_draws(noise_prob, noise_alias, anchors, seed, out):
    """``out[b, j]``: draw ``j`` of the alias table for anchor ``b``, from ``hash3(seed, b, j)`` (:func:`_noise`:
    the high 32 bits pick a column, the low 32 the coin), or -1 where it hits ``anchors[b]`` itself. The draws
    do not depend on the thread count; the CUDA ``noise_draws`` gives the same ids."""
    k = out.shape[1]
    for b in prange(out.shape[0]):
        base = mix64(np.uint64(seed) + _GOLDEN * (np.uint64(b) + np.uint64(1)))
        a = anchors[b]
        for j in range(k):
            t = _noise(_draw(base, j), noise_prob, noise_alias)
            out[b, j] = -1 if t == a else t


@njit(cache=True)
def build_alias(weights, prob, alias):
    """Walker/Vose alias table of ``weights`` (non-negative float64 [V], positive sum) into prob/alias.

    A draw takes column ``k`` uniformly and keeps it with probability ``prob[k]``, else ``alias[k]``; the
    result has probability ``weights / Σ weights`` exactly (up to rounding of the table).
    """
    v = weights.size
    total = 0.0
    for i in range(v):
        total += weights[i]
    scaled = np.empty(v, np.float64)
    small = np.empty(v, np.int64)
    large = np.empty(v, np.int64)
    ns = 0
    nl = 0
    for i in range(v):
        scaled[i] = weights[i] * v / total
        alias[i] = i
        if scaled[i] < 1.0:
            small[ns] = i
            ns += 1
        else:
            large[nl] = i
            nl += 1
    while ns > 0 and nl > 0:
        ns -= 1
        s = small[ns]
        l = large[nl - 1]
        prob[s] = scaled[s]
        alias[s] = l
        scaled[l] = (scaled[l] + scaled[s]) - 1.0
        if scaled[l] < 1.0:
            nl -= 1
            small[ns] = l
            ns += 1
    while nl > 0:
        nl -= 1
        prob[large[nl]] = 1.0
    while ns > 0:  # only rounding leftovers
        ns -= 1
        prob[small[ns]] = 1.0
