"""Plain Python/NumPy oracles for the word2vec kernels (slow; tiny inputs only).

They replay the kernels' exact random draws (``hash3`` of seed, stream, counter) so that, with one
thread, kernel and oracle must agree to rounding.
"""
import numpy as np

__all__ = ["ref_hash3", "ref_alias_distribution", "ref_noise_draws", "ref_train_sg", "ref_train_cbow", "ref_keep_prob"]

from tests.reference_rng import GOLDEN as _G  # noqa: E402
from tests.reference_rng import hash3 as ref_hash3  # noqa: E402
from tests.reference_rng import mix64 as _mix64  # noqa: E402,F401


def ref_alias_distribution(prob, alias):
    """Noise probabilities implied by an alias table: p[i] = (prob[i] + Σ_{alias[j]=i} (1 - prob[j])) / V."""
    v = prob.size
    p = np.asarray(prob, np.float64) / v
    for j in range(v):
        p[alias[j]] += (1.0 - prob[j]) / v
    return p


def ref_keep_prob(counts, sample):
    """gensim's keep probability: (sqrt(c / (s T)) + 1) (s T / c), capped at 1; sample = 0 keeps all."""
    counts = np.asarray(counts, np.float64)
    if sample == 0:
        return np.ones_like(counts)
    t = sample * counts.sum()
    with np.errstate(divide="ignore"):
        p = (np.sqrt(counts / t) + 1.0) * (t / counts)
    return np.minimum(p, 1.0)


class _Draws:
    def __init__(self, seed, epoch, chunk):
        self.seed = seed
        self.stream = (epoch << 32) | chunk
        self.counter = 0

    def next(self):
        r = ref_hash3(self.seed, self.stream, self.counter)
        self.counter += 1
        return r


def _noise(r, prob, alias):
    v = prob.size
    col = ((r >> 32) * v) >> 32
    coin = (r & 0xFFFFFFFF) / 4294967296.0
    return col if coin < prob[col] else int(alias[col])


def ref_noise_draws(prob, alias, anchors, seed, k):
    """``[B, k]``: draw ``j`` for anchor ``b`` is the alias draw of ``hash3(seed, b, j)``, -1 where it is the
    anchor itself (the Trainer's uniform negatives)."""
    out = np.empty((len(anchors), k), np.int64)
    for b, a in enumerate(anchors):
        for j in range(k):
            t = _noise(ref_hash3(seed, b, j), prob, alias)
            out[b, j] = -1 if t == a else t
    return out


def _softplus(x):
    return float(np.logaddexp(0.0, x))


def _sentences(corpus, offsets, chunks, keep_prob, draws_for_chunk):
    for c in range(len(chunks) - 1):
        dr = draws_for_chunk(c)
        for s in range(chunks[c], chunks[c + 1]):
            sent = []
            for p in range(offsets[s], offsets[s + 1]):
                w = int(corpus[p])
                if keep_prob[w] < 1.0:
                    u = (dr.next() >> 11) / 9007199254740992.0
                    if u >= keep_prob[w]:
                        continue
                sent.append(w)
            yield c, s, dr, sent


def _clip(v, clip):
    n = np.linalg.norm(v)
    if clip > 0 and n > clip:
        return v * (clip / n)
    return v


def _draw_negs(target, negative, prob, alias, dr):
    negs = [_noise(dr.next(), prob, alias) for _ in range(negative)]
    return [-1 if t == target else t for t in negs]


def _neg_pass(syn1, h, target, negs, alpha, l2, clip):
    h = h.astype(np.float64)
    work = np.zeros_like(h)
    loss = 0.0
    for s in range(len(negs) + 1):
        if s == 0:
            t, label = target, 1.0
        else:
            t = negs[s - 1]
            if t < 0:
                continue
            label = 0.0
        o = syn1[t].astype(np.float64)
        f = float(h @ o)
        loss += _softplus(-f) if s == 0 else _softplus(f)
        loss += 0.5 * l2 * float(o @ o)
        g = label - 1.0 / (1.0 + np.exp(-f))
        work += g * o
        syn1[t] = o + alpha * _clip(g * h - l2 * o, clip)
    return loss, work


def ref_train_sg(corpus, offsets, chunks, keep_prob, prob, alias, syn0, syn1, window, shrink, negative, shared,
                 alpha_start, alpha_end, total_words, l2, clip, seed, epoch):
    """Returns (loss per chunk, kept words per chunk); updates syn0/syn1 in place (sequential chunks)."""
    nch = len(chunks) - 1
    losses = np.zeros(nch)
    kept = np.zeros(nch, np.int64)
    for c, s, dr, sent in _sentences(corpus, offsets, chunks, keep_prob, lambda c: _Draws(seed, epoch, c)):
        alpha = alpha_start + (alpha_end - alpha_start) * (offsets[s] / max(total_words, 1))
        n = len(sent)
        kept[c] += n
        for i in range(n):
            b = (((dr.next() >> 32) * window) >> 32) if shrink else 0
            lo, hi = max(0, i - window + b), min(n, i + window + 1 - b)
            if shared and hi - lo > 1:
                negs = _draw_negs(sent[i], negative, prob, alias, dr)
            for j in range(lo, hi):
                if j == i:
                    continue
                wj = sent[j]
                h = syn0[wj].astype(np.float64)
                if not shared:
                    negs = _draw_negs(sent[i], negative, prob, alias, dr)
                loss, work = _neg_pass(syn1, h, sent[i], negs, alpha, l2, clip)
                loss += 0.5 * l2 * float(h @ h)
                losses[c] += loss
                syn0[wj] = h + alpha * _clip(work - l2 * h, clip)
    return losses, kept


def ref_train_cbow(corpus, offsets, chunks, keep_prob, prob, alias, syn0, syn1, window, shrink, negative,
                   cbow_mean, alpha_start, alpha_end, total_words, l2, clip, seed, epoch):
    """CBOW oracle; same contract as :func:`ref_train_sg`."""
    nch = len(chunks) - 1
    losses = np.zeros(nch)
    kept = np.zeros(nch, np.int64)
    for c, s, dr, sent in _sentences(corpus, offsets, chunks, keep_prob, lambda c: _Draws(seed, epoch, c)):
        alpha = alpha_start + (alpha_end - alpha_start) * (offsets[s] / max(total_words, 1))
        n = len(sent)
        kept[c] += n
        for i in range(n):
            b = (((dr.next() >> 32) * window) >> 32) if shrink else 0
            ctx = [j for j in range(max(0, i - window + b), min(n, i + window + 1 - b)) if j != i]
            if not ctx:
                continue
            h = np.zeros(syn0.shape[1])
            for j in ctx:
                h += syn0[sent[j]]
            # word2vec / gensim: mean -> h = mean, rows get the h-gradient unscaled; sum -> rows get it / count
            h *= 1.0 / len(ctx) if cbow_mean else 1.0
            mult = 1.0 if cbow_mean else 1.0 / len(ctx)
            negs = _draw_negs(sent[i], negative, prob, alias, dr)
            loss, work = _neg_pass(syn1, h, sent[i], negs, alpha, l2, clip)
            for j in ctx:
                x = syn0[sent[j]].astype(np.float64)
                loss += 0.5 * l2 * float(x @ x)
                syn0[sent[j]] = x + alpha * _clip(mult * work - l2 * x, clip)
            losses[c] += loss
    return losses, kept
