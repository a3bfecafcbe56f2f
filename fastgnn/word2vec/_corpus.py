"""Vocabulary scanning, corpus encoding and the sampling tables shared by Word2Vec and DeepWalk."""
from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator

import numpy as np


def check_sentences(sentences, name="sentences", *, restartable=True):
    """Reject the usual mistakes early: None, a plain string, a one-shot iterator where two passes are needed."""
    if sentences is None:
        raise TypeError(f"{name}: expected an iterable of token lists, got None")
    if isinstance(sentences, (str, bytes)):
        raise TypeError(f"{name}: expected an iterable of token lists, got a {type(sentences).__name__} "
                        "(split it into sentences of tokens first)")
    if not isinstance(sentences, Iterable):
        raise TypeError(f"{name}: expected an iterable of token lists, got {type(sentences).__name__}")
    if restartable and isinstance(sentences, Iterator):
        raise TypeError(f"{name}: a one-shot iterator cannot be read twice (vocabulary, then training); "
                        "pass a list or a restartable iterable, or use stream_train")
    return sentences


def _tokens(sentence, name, i):
    if isinstance(sentence, (str, bytes)):
        raise TypeError(f"{name}: sentence {i} is a {type(sentence).__name__}, expected a list of tokens")
    return sentence


def scan_vocab(sentences, max_vocab_size, name="sentences"):
    """Raw counts in order of first occurrence (gensim's pruning when ``max_vocab_size`` is exceeded).

    Returns ``(Counter, number of sentences, number of tokens)``.
    """
    counts: Counter = Counter()
    min_reduce = 1
    nsent = 0
    ntok = 0
    for i, sentence in enumerate(sentences):
        sentence = _tokens(sentence, name, i)
        counts.update(sentence)
        nsent += 1
        ntok += len(sentence)
        if max_vocab_size is not None and len(counts) > max_vocab_size:
            for w in [w for w, c in counts.items() if c <= min_reduce]:
                del counts[w]
            min_reduce += 1
    return counts, nsent, ntok


def sorted_new_words(counts: Counter, min_count, known=None):
    """Words with count >= min_count not in ``known``, by descending count (ties: first occurrence)."""
    items = [(w, c) for w, c in counts.items() if c >= min_count and (known is None or w not in known)]
    items.sort(key=lambda wc: -wc[1])
    return items


def encode(sentences, key_to_index, name="sentences"):
    """Flat int32 ids (out-of-vocabulary tokens dropped) and int64 sentence offsets; also the raw token count."""
    ids: list = []
    lengths: list = []
    raw = 0
    get = key_to_index.__getitem__
    for i, sentence in enumerate(sentences):
        sentence = _tokens(sentence, name, i)
        raw += len(sentence)
        before = len(ids)
        try:
            ids.extend(map(get, sentence))
        except (KeyError, TypeError):
            del ids[before:]
            ids.extend([key_to_index[w] for w in sentence if _known(key_to_index, w)])
        lengths.append(len(ids) - before)
    corpus = np.fromiter(ids, dtype=np.int32, count=len(ids))
    offsets = np.zeros(len(lengths) + 1, np.int64)
    if lengths:
        np.cumsum(np.asarray(lengths, np.int64), out=offsets[1:])
    return corpus, offsets, raw


def _known(mapping, w):
    try:
        return w in mapping
    except TypeError:  # unhashable token
        return False


def chunk_bounds(offsets, batch_words):
    """Sentence-index boundaries of chunks of about ``batch_words`` words (independent of thread count)."""
    nsent = offsets.size - 1
    total = int(offsets[-1])
    if nsent == 0:
        return np.zeros(1, np.int64)
    cuts = np.searchsorted(offsets, np.arange(batch_words, total, batch_words, dtype=np.int64), side="left")
    bounds = np.unique(np.concatenate([[0], np.minimum(cuts, nsent), [nsent]]).astype(np.int64))
    return np.ascontiguousarray(bounds, np.int64)


def keep_probabilities(counts, sample):
    """gensim's sub-sampling keep probability ``min(1, (sqrt(c/(s·T)) + 1)·(s·T)/c)``, T = Σ counts."""
    counts = np.asarray(counts, np.float64)
    keep = np.ones(counts.size, np.float64)
    if sample > 0 and counts.size:
        thr = sample * counts.sum()
        pos = counts > 0
        c = counts[pos]
        keep[pos] = np.minimum(1.0, (np.sqrt(c / thr) + 1.0) * (thr / c))
    return keep


def noise_table(counts, exponent, kernels):
    """Alias table (prob float64 [V], alias int32 [V]) of counts**exponent (unseen words get weight 0)."""
    counts = np.asarray(counts, np.float64)
    weights = np.zeros(counts.size, np.float64)
    pos = counts > 0
    weights[pos] = counts[pos] ** exponent
    if not np.isfinite(weights).all() or weights.sum() <= 0:
        weights = pos.astype(np.float64)  # degenerate exponent: uniform over seen words
    if weights.sum() <= 0:
        weights = np.ones(counts.size, np.float64)
    prob = np.ones(counts.size, np.float64)
    alias = np.arange(counts.size, dtype=np.int32)
    kernels.build_alias(weights, prob, alias)
    return prob, alias


def walks_to_corpus(walks):
    """int32 walk matrix [W, L] with -1 padding -> (flat corpus, offsets), no copy of strings."""
    lengths = (walks >= 0).sum(axis=1).astype(np.int64)
    offsets = np.zeros(walks.shape[0] + 1, np.int64)
    np.cumsum(lengths, out=offsets[1:])
    corpus = np.ascontiguousarray(walks[walks >= 0], dtype=np.int32)
    return corpus, offsets
