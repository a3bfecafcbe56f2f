"""Word2Vec / KeyedVectors / DeepWalk: kernels vs the NumPy oracle, gradients, vocabulary, API, errors."""
import itertools
import math

import numba
import numpy as np
import pytest

import fastgnn
from fastgnn import DeepWalk, KeyedVectors, Node2Vec, Word2Vec
from fastgnn.kernels.cpu import word2vec as K
from fastgnn.word2vec import _corpus
from tests import reference_word2vec as ref


# ---------------------------------------------------------------------------- helpers
def _tables(counts, sample, exponent=0.75):
    keep = _corpus.keep_probabilities(counts, sample)
    prob, alias = _corpus.noise_table(counts, exponent, K)
    return keep, prob, alias


def _random_corpus(rng, vocab, nsent, maxlen):
    lengths = rng.integers(1, maxlen + 1, nsent)
    corpus = rng.integers(0, vocab, lengths.sum()).astype(np.int32)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    return corpus, offsets


def _run_kernel(sg, corpus, offsets, chunks, tables, syn0, syn1, *, window=2, shrink=True, negative=3,
                shared=False, cbow_mean=True, alpha=(0.05, 0.01), l2=0.0, clip=0.0, seed=7, epoch=0):
    keep, prob, alias = tables
    nch = chunks.size - 1
    loss = np.zeros(nch)
    words = np.zeros(nch, np.int64)
    total = int(offsets[-1])
    if sg:
        K.train_sg(corpus, offsets, chunks, keep, prob, alias, syn0, syn1, window, shrink, negative, shared,
                   alpha[0], alpha[1], total, l2, clip, seed, epoch, True, loss, words)
    else:
        K.train_cbow(corpus, offsets, chunks, keep, prob, alias, syn0, syn1, window, shrink, negative, cbow_mean,
                     alpha[0], alpha[1], total, l2, clip, seed, epoch, True, loss, words)
    return loss, words


def _run_ref(sg, corpus, offsets, chunks, tables, syn0, syn1, *, window=2, shrink=True, negative=3, shared=False,
             cbow_mean=True, alpha=(0.05, 0.01), l2=0.0, clip=0.0, seed=7, epoch=0):
    keep, prob, alias = tables
    total = int(offsets[-1])
    if sg:
        return ref.ref_train_sg(corpus, offsets, chunks, keep, prob, alias, syn0, syn1, window, shrink, negative,
                                shared, alpha[0], alpha[1], total, l2, clip, seed, epoch)
    return ref.ref_train_cbow(corpus, offsets, chunks, keep, prob, alias, syn0, syn1, window, shrink, negative,
                              cbow_mean, alpha[0], alpha[1], total, l2, clip, seed, epoch)


TOY = [["king", "queen", "royal", "palace"], ["dog", "cat", "pet", "animal"]] * 60


# ---------------------------------------------------------------------------- kernels vs oracle
CASES = [
    # sg, vocab, dim, nsent, maxlen, window, shrink, negative, shared, cbow_mean, sample, l2, clip, batch
    (1, 6, 4, 5, 6, 2, True, 3, False, True, 0.0, 0.0, 0.0, 7),
    (1, 1, 1, 2, 3, 1, False, 1, False, True, 0.0, 0.0, 0.0, 100),   # V=1, D=1: every draw hits the target
    (1, 9, 3, 6, 1, 2, True, 2, False, True, 0.0, 0.0, 0.0, 3),      # one-word sentences: no pairs
    (1, 8, 5, 6, 7, 3, True, 4, True, True, 0.05, 0.01, 0.0, 9),     # shared negatives, sub-sampling, L2
    (1, 7, 6, 4, 8, 2, False, 2, False, True, 0.0, 0.0, 0.05, 100),  # clipping
    (0, 6, 4, 5, 6, 2, True, 3, False, True, 0.0, 0.0, 0.0, 7),
    (0, 6, 4, 5, 6, 2, True, 3, False, False, 0.05, 0.02, 0.0, 7),   # CBOW sum, sub-sampling, L2
    (0, 2, 1, 3, 4, 1, False, 5, False, True, 0.0, 0.0, 0.03, 4),    # vocab < negative + 1, clipping
]


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_kernel_matches_reference(case, dtype, rng, one_thread):
    sg, v, d, nsent, maxlen, window, shrink, negative, shared, cbow_mean, sample, l2, clip, batch = case
    corpus, offsets = _random_corpus(rng, v, nsent, maxlen)
    counts = np.bincount(corpus, minlength=v)
    tables = _tables(counts, sample)
    chunks = _corpus.chunk_bounds(offsets, batch)
    syn0 = ((rng.random((v, d)) - 0.5)).astype(dtype)
    syn1 = ((rng.random((v, d)) - 0.5) * 0.5).astype(dtype)
    r0, r1 = syn0.astype(np.float64), syn1.astype(np.float64)
    kw = dict(window=window, shrink=shrink, negative=negative, shared=shared, cbow_mean=cbow_mean, l2=l2, clip=clip)
    loss, words = _run_kernel(sg, corpus, offsets, chunks, tables, syn0, syn1, **kw)
    rloss, rwords = _run_ref(sg, corpus, offsets, chunks, tables, r0, r1, **kw)
    tol = 2e-5 if dtype == np.float32 else 1e-11
    np.testing.assert_array_equal(words, rwords)
    np.testing.assert_allclose(syn0, r0, rtol=tol * 10, atol=tol)
    np.testing.assert_allclose(syn1, r1, rtol=tol * 10, atol=tol)
    np.testing.assert_allclose(loss, rloss, rtol=tol * 10, atol=tol)
    assert syn0.dtype == dtype


def test_draws_match_hash3():
    from fastgnn.kernels.cpu.rng import hash3

    seed, stream = 123, (5 << 32) | 3
    base = np.uint64(ref._mix64(seed + ref._G * (stream + 1)))
    for c in range(5):
        assert int(K._draw(base, c)) == int(hash3(seed, stream, c)) == ref.ref_hash3(seed, stream, c)


@pytest.mark.parametrize("weights", [[1.0], [3, 1], [0, 2, 0, 5, 1], list(np.arange(1, 40) ** 0.75)])
def test_alias_table_is_exact(weights):
    w = np.asarray(weights, np.float64)
    prob = np.ones(w.size)
    alias = np.arange(w.size, dtype=np.int32)
    K.build_alias(w, prob, alias)
    np.testing.assert_allclose(ref.ref_alias_distribution(prob, alias), w / w.sum(), atol=1e-12)


@pytest.mark.parametrize("seed", [0, 7, 2**62 - 1])
def test_noise_draws_match_reference(rng, seed):
    """The Trainer's negatives kernel: alias draws of hash3(seed, b, j), -1 on the anchor, at any thread count."""
    w = rng.random(11) ** 2
    w[[2, 5]] = 0.0
    prob = np.ones(w.size)
    alias = np.arange(w.size, dtype=np.int32)
    K.build_alias(w, prob, alias)
    anchors = rng.integers(0, w.size, 37)
    out = np.zeros((37, 5), np.int64)
    K.noise_draws(prob, alias, anchors, seed, out)
    expect = ref.ref_noise_draws(prob, alias, anchors, seed, 5)
    np.testing.assert_array_equal(out, expect)
    assert (out == -1).any() and not np.isin(out, [2, 5]).any()
    numba.set_num_threads(1)
    try:
        one = np.zeros_like(out)
        K.noise_draws(prob, alias, anchors, seed, one)
    finally:
        numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
    np.testing.assert_array_equal(one, expect)


def test_keep_probabilities_match_gensim_formula(rng):
    counts = rng.integers(1, 10000, 50)
    for sample in (0.0, 1e-3, 1e-5):
        np.testing.assert_allclose(_corpus.keep_probabilities(counts, sample), ref.ref_keep_prob(counts, sample))


# ---------------------------------------------------------------------------- gradients
@pytest.mark.parametrize("sg,cbow_mean,shared,corpus_ids", [
    (1, True, False, [0, 1, 2, 3, 1]), (1, True, True, [0, 1, 2, 3, 1]),
    (0, True, False, [0, 1, 2, 3, 1]), (0, False, False, [0, 1, 2, 3, 1]),
    (0, True, False, [2, 3]), (0, False, False, [2, 3])])
def test_update_is_gradient_step(sg, cbow_mean, shared, corpus_ids, rng, one_thread):
    """delta / alpha == -dL/dW, L the reported loss, checked by central differences in float64.

    CBOW input rows take word2vec's step (count x / 1/count x the exact one for mean / sum), so they
    are checked where every context has one word (count = 1); the output rows always take the exact step.
    """
    v, d = 4, 3
    corpus = np.array(corpus_ids, np.int32)
    offsets = np.array([0, corpus.size], np.int64)
    chunks = np.array([0, 1], np.int64)
    tables = _tables(np.bincount(corpus, minlength=v), 0.0)
    w0 = rng.standard_normal((v, d)) * 0.5
    w1 = rng.standard_normal((v, d)) * 0.5
    window = 2 if corpus.size > 2 else 1
    kw = dict(window=window, shrink=False, negative=2, shared=shared, cbow_mean=cbow_mean, l2=0.1)

    def loss_at(a, b):
        a, b = a.copy(), b.copy()
        out, _ = _run_kernel(sg, corpus, offsets, chunks, tables, a, b, alpha=(0.0, 0.0), **kw)
        return out.sum()

    alpha = 1e-7
    a, b = w0.copy(), w1.copy()
    _run_kernel(sg, corpus, offsets, chunks, tables, a, b, alpha=(alpha, alpha), **kw)
    step0, step1 = (a - w0) / alpha, (b - w1) / alpha
    eps = 1e-6
    mats = [(1, step1)] if (not sg and corpus.size > 2) else [(0, step0), (1, step1)]
    for mat, step in mats:
        for i, j in itertools.product(range(v), range(d)):
            plus = [w0.copy(), w1.copy()]
            minus = [w0.copy(), w1.copy()]
            plus[mat][i, j] += eps
            minus[mat][i, j] -= eps
            grad = (loss_at(*plus) - loss_at(*minus)) / (2 * eps)
            assert step[i, j] == pytest.approx(-grad, rel=1e-4, abs=1e-5), (mat, i, j)


def test_cbow_input_step_follows_word2vec(rng, one_thread):
    """Mean: every context row moves by the full h-gradient step (gensim's rule); sum: by 1/count of it."""
    v, d = 5, 3
    corpus = np.array([0, 1, 2], np.int32)  # centre 1 has context {0, 2}
    offsets = np.array([0, 3], np.int64)
    chunks = np.array([0, 1], np.int64)
    tables = _tables(np.array([1, 1, 1, 1, 1]), 0.0)
    w0 = rng.standard_normal((v, d))
    w1 = rng.standard_normal((v, d))
    for cbow_mean in (True, False):
        r0, r1 = w0.copy(), w1.copy()
        rl, _ = ref.ref_train_cbow(corpus, offsets, chunks, *tables, r0, r1, 1, False, 2, cbow_mean, 0.1, 0.1, 3,
                                   0.0, 0.0, 7, 0)
        a, b = w0.copy(), w1.copy()
        _run_kernel(0, corpus, offsets, chunks, tables, a, b, window=1, shrink=False, negative=2,
                    cbow_mean=cbow_mean, alpha=(0.1, 0.1))
        np.testing.assert_allclose(a, r0, atol=1e-12)
        np.testing.assert_allclose(b, r1, atol=1e-12)


def test_clipping_bounds_the_row_step_norm(rng, one_thread):
    v, d, clip, alpha = 2, 16, 1e-3, 0.5
    corpus = np.array([0, 1], np.int32)
    offsets = np.array([0, 2], np.int64)
    chunks = np.array([0, 1], np.int64)
    tables = _tables(np.array([1, 1]), 0.0)
    w0 = rng.standard_normal((v, d))
    w1 = rng.standard_normal((v, d))
    a, b = w0.copy(), w1.copy()
    _run_kernel(1, corpus, offsets, chunks, tables, a, b, window=1, shrink=False, negative=1, alpha=(alpha, alpha),
                clip=clip)
    a0, b0 = w0.copy(), w1.copy()
    _run_kernel(1, corpus, offsets, chunks, tables, a0, b0, window=1, shrink=False, negative=1,
                alpha=(alpha, alpha))
    step = np.linalg.norm(a - w0, axis=1)
    # each input row is updated once; its step is the clipped gradient: length alpha * clip, not more
    np.testing.assert_allclose(step, alpha * clip, rtol=1e-6)
    # first update (row 1) keeps the unclipped direction
    u, c = a0[1] - w0[1], a[1] - w0[1]
    assert u @ c / (np.linalg.norm(u) * np.linalg.norm(c)) == pytest.approx(1.0, abs=1e-9)


def test_l2_shrinks_rows(rng):
    base = dict(vector_size=8, min_count=1, sg=1, seed=3, workers=1, epochs=3, alpha=0.05)
    plain = Word2Vec(TOY, **base)
    decayed = Word2Vec(TOY, **base, l2=5.0)
    assert np.linalg.norm(decayed.wv.vectors) < 0.8 * np.linalg.norm(plain.wv.vectors)


# ---------------------------------------------------------------------------- determinism and threads
@pytest.mark.parametrize("sg", [0, 1])
def test_workers1_is_bit_reproducible(sg):
    kw = dict(vector_size=8, min_count=1, sg=sg, seed=11, workers=1, epochs=2, batch_words=20)
    a, b = Word2Vec(TOY, **kw), Word2Vec(TOY, **kw)
    np.testing.assert_array_equal(a.wv.vectors, b.wv.vectors)
    np.testing.assert_array_equal(a.syn1neg, b.syn1neg)
    assert a.epoch_losses == b.epoch_losses
    c = Word2Vec(TOY, **{**kw, "seed": 12})
    assert not np.array_equal(a.wv.vectors, c.wv.vectors)


def test_one_chunk_is_identical_at_one_and_two_threads():
    # one chunk (batch_words above the corpus size) has no concurrent updates: thread count cannot matter
    kw = dict(vector_size=8, min_count=1, sg=1, seed=5, epochs=1, batch_words=10**6)
    a = Word2Vec(TOY, workers=1, **kw)
    b = Word2Vec(TOY, workers=2, **kw)
    np.testing.assert_array_equal(a.wv.vectors, b.wv.vectors)


def test_hogwild_two_threads_trains():
    kw = dict(vector_size=16, min_count=1, sg=1, seed=5, epochs=10, batch_words=30, workers=2, sample=0)
    m = Word2Vec(TOY, **kw)
    assert m.epoch_losses[-1] < m.epoch_losses[0]
    assert m.wv.similarity("king", "queen") > m.wv.similarity("king", "dog")


# ---------------------------------------------------------------------------- model behaviour
@pytest.mark.parametrize("sg,shared", [(1, False), (1, True), (0, False)])
def test_learns_topics_and_loss_decreases(sg, shared):
    m = Word2Vec(TOY, vector_size=16, min_count=1, sg=sg, shared_negatives=shared, seed=1, workers=1, epochs=10,
                 negative=3, window=3, sample=0)
    assert len(m.epoch_losses) == 10 and all(np.isfinite(m.epoch_losses))
    assert m.epoch_losses[-1] < m.epoch_losses[0]
    top = [w for w, _ in m.wv.most_similar("king", topn=3)]
    assert set(top) == {"queen", "royal", "palace"}


def test_vocabulary_order_min_count_and_pruning():
    sents = [["a", "b", "b", "c", "c", "c", "d"], ["c", "e", "b"]]
    m = Word2Vec(min_count=2, vector_size=4)
    assert m.build_vocab(sents) == 2
    assert m.wv.index_to_key == ["c", "b"]
    np.testing.assert_array_equal(m.wv.counts, [4, 3])
    m1 = Word2Vec(min_count=1, vector_size=4)
    m1.build_vocab([["x", "y", "x", "z"]])
    assert m1.wv.index_to_key == ["x", "y", "z"]  # ties keep first-occurrence order
    pruned = Word2Vec(min_count=1, vector_size=4, max_vocab_size=3)
    pruned.build_vocab([["a", "a", "a", "b", "c", "d", "e"]])
    assert "a" in pruned.wv and len(pruned.wv) <= 3


def test_incremental_vocab_keeps_trained_vectors():
    m = Word2Vec(TOY, vector_size=8, min_count=1, sg=1, seed=0, workers=1, epochs=2)
    before0, before1 = m.wv.vectors.copy(), m.syn1neg.copy()
    added = m.build_vocab([["emperor", "king", "emperor"], ["puppy", "dog"]], update=True)
    assert added == 2 and m.wv.index_to_key[-2:] == ["emperor", "puppy"]
    np.testing.assert_array_equal(m.wv.vectors[: len(before0)], before0)
    np.testing.assert_array_equal(m.syn1neg[: len(before1)], before1)
    assert m.wv.counts[m.wv.key_to_index["king"]] == 61
    # train only on the new text: input rows of words absent from it do not move
    frozen = [m.wv.key_to_index[w] for w in ("cat", "pet", "palace")]
    kept = m.wv.vectors[frozen].copy()
    eff, raw = m.train([["emperor", "king", "emperor"], ["puppy", "dog"]] * 5, epochs=2)
    assert raw == 25 * 2 and eff > 0
    np.testing.assert_array_equal(m.wv.vectors[frozen], kept)


def test_incremental_vocab_appends_in_count_order():
    m = Word2Vec(min_count=1, vector_size=4, seed=0)
    m.build_vocab([["a", "b"]])
    m.build_vocab([["x", "y", "y", "a"]], update=True)
    assert m.wv.index_to_key == ["a", "b", "y", "x"]
    np.testing.assert_array_equal(m.wv.counts, [2, 1, 2, 1])


def test_stream_train_is_online():
    def gen():
        for _ in range(30):
            yield ["a", "b", "c"]
        for _ in range(30):
            yield ["x", "y", "a"]

    m = Word2Vec(min_count=3, vector_size=8, sg=1, seed=0, workers=1)
    assert m.stream_train(gen(), batch_size=20) == 3
    assert set(m.wv.index_to_key) == {"a", "b", "c", "x", "y"}
    # a word admitted only once its running count crosses min_count
    m2 = Word2Vec(min_count=3, vector_size=4, seed=0, workers=1)
    m2.stream_train(iter([["p", "q"], ["p"], ["p", "q"], ["q", "r"]]), batch_size=1)
    assert set(m2.wv.index_to_key) == {"p", "q"} and m2._pending == {"r": 1}


def test_stream_train_does_not_revisit_old_batches():
    m = Word2Vec(min_count=1, vector_size=8, sg=1, seed=0, workers=1)
    m.stream_train(iter([["a", "b"]] * 10), batch_size=10)
    a_before = m.wv["a"].copy()
    m.stream_train(iter([["c", "d"]] * 10), batch_size=10)
    np.testing.assert_array_equal(m.wv["a"], a_before)


@pytest.mark.parametrize("sg", [0, 1])
def test_vocabulary_smaller_than_negative(sg):
    m = Word2Vec([["solo"]] * 5, vector_size=4, min_count=1, negative=10, sg=sg, workers=1)
    assert len(m.wv) == 1
    m = Word2Vec([["a", "b"]] * 5, vector_size=4, min_count=1, negative=20, sg=sg, workers=1)
    assert np.isfinite(m.wv.vectors).all()


class _Const:
    def __init__(self, lr):
        self.lr = lr
        self.calls = []

    def lr_at(self, step):
        self.calls.append(step)
        return self.lr


def test_lr_schedule_object_and_early_stopping():
    sched = _Const(0.0)
    m = Word2Vec(vector_size=4, min_count=1, seed=0, workers=1, lr_schedule=sched, epochs=5, patience=2)
    m.build_vocab(TOY)
    before = m.wv.vectors.copy()
    m.train(TOY)
    np.testing.assert_array_equal(m.wv.vectors, before)  # lr 0: nothing moves
    assert sched.calls == [0, 1, 2] and m.stopped_early and len(m.epoch_losses) == 3


@pytest.mark.parametrize("make", [
    lambda lr: lr.Constant(0.02),
    lambda lr: lr.Exponential(0.1, gamma=0.5),
    lambda lr: lr.Step(0.1, step_size=2, gamma=0.5),
    lambda lr: lr.Cosine(0.1, t_max=3),
])
def test_crate_schedules_from_optim_lr(make, monkeypatch):
    lr = pytest.importorskip("fastgnn.optim.lr")
    sched = make(lr)
    seen = []
    real = K.train_sg

    def spy(*args):
        seen.append((args[12], args[13]))
        return real(*args)

    monkeypatch.setattr(K, "train_sg", spy)
    m = Word2Vec(TOY, vector_size=4, min_count=1, sg=1, seed=0, workers=1, lr_schedule=sched, epochs=3)
    m.train(TOY, epochs=1)  # the schedule continues across train calls
    want = [sched.lr_at(e) for e in range(4)]
    np.testing.assert_allclose([a for a, _ in seen], want)
    np.testing.assert_allclose([b for _, b in seen], want)  # constant within an epoch
    assert len(m.epoch_losses) == 4 and all(np.isfinite(m.epoch_losses))


def test_linear_decay_reaches_min_alpha(monkeypatch):
    seen = []
    real = K.train_sg

    def spy(*args):
        seen.append((args[12], args[13]))
        return real(*args)

    monkeypatch.setattr(K, "train_sg", spy)
    Word2Vec(TOY, vector_size=4, min_count=1, sg=1, epochs=4, alpha=0.1, min_alpha=0.02, workers=1)
    np.testing.assert_allclose([s[0] for s in seen], [0.1, 0.08, 0.06, 0.04])
    np.testing.assert_allclose([s[1] for s in seen], [0.08, 0.06, 0.04, 0.02])


def test_save_load_continues_training(tmp_path):
    kw = dict(vector_size=8, min_count=1, sg=1, seed=4, workers=1, epochs=1)
    a = Word2Vec(TOY, **kw)
    p = tmp_path / "m.npz"
    a.save(p)
    b = Word2Vec.load(p)
    np.testing.assert_array_equal(a.wv.vectors, b.wv.vectors)
    assert b.wv.index_to_key == a.wv.index_to_key and b.epochs_trained == 1
    a.train(TOY)
    b.train(TOY)
    np.testing.assert_array_equal(a.wv.vectors, b.wv.vectors)
    np.testing.assert_array_equal(a.syn1neg, b.syn1neg)


def test_load_rejects_other_files(tmp_path):
    p = tmp_path / "x.npz"
    np.savez(p, a=np.zeros(3))
    with pytest.raises(ValueError, match="path"):
        Word2Vec.load(p)
    with pytest.raises(FileNotFoundError):
        Word2Vec.load(tmp_path / "missing.npz")


def test_float64_model():
    m = Word2Vec(TOY, vector_size=4, min_count=1, dtype=np.float64, workers=1)
    assert m.wv.vectors.dtype == np.float64 and m.syn1neg.dtype == np.float64


# ---------------------------------------------------------------------------- bad inputs
@pytest.mark.parametrize("kwargs,exc,match", [
    (dict(vector_size=0), ValueError, "vector_size"),
    (dict(window=0), ValueError, "window"),
    (dict(negative=0), ValueError, "negative"),
    (dict(sample=-1.0), ValueError, "sample"),
    (dict(alpha=0.0), ValueError, "alpha"),
    (dict(sg=2), ValueError, "sg"),
    (dict(min_count=0), ValueError, "min_count"),
    (dict(epochs=1.5), TypeError, "epochs"),
    (dict(workers=0), ValueError, "workers"),
    (dict(seed=-1), ValueError, "seed"),
    (dict(dtype=np.int32), TypeError, "dtype"),
    (dict(lr_schedule=0.1), TypeError, "lr_schedule"),
    (dict(patience=2, compute_loss=False), ValueError, "patience"),
    (dict(l2=-1.0), ValueError, "l2"),
    (dict(clip_grad=float("nan")), ValueError, "clip_grad"),
    (dict(shrink_windows="yes"), TypeError, "shrink_windows"),
    (dict(backend="tpu"), ValueError, "backend: unknown backend 'tpu'"),
    (dict(backend=1), TypeError, "backend"),
])
def test_bad_arguments(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        Word2Vec(**kwargs)


def test_bad_sentences():
    with pytest.raises(TypeError, match="sentences"):
        Word2Vec("a b c", min_count=1)
    with pytest.raises(TypeError, match="sentences"):
        Word2Vec(iter([["a"]]), min_count=1)
    with pytest.raises(TypeError, match="sentences"):
        Word2Vec(["a b", "c"], min_count=1)
    with pytest.raises(ValueError, match="min_count=5"):
        Word2Vec([["a", "b"]], min_count=5)
    m = Word2Vec(min_count=1)
    with pytest.raises(ValueError, match="update"):
        m.build_vocab([["a"]], update=True)
    with pytest.raises(ValueError, match="build_vocab"):
        m.train([["a"]])
    with pytest.raises(TypeError, match="sentences"):
        m.build_vocab(None)
    m.build_vocab([["a"]])
    with pytest.raises(ValueError, match="batch_size"):
        m.stream_train([["a"]], batch_size=0)


# ---------------------------------------------------------------------------- KeyedVectors
@pytest.fixture
def kv(rng):
    keys = [f"w{i}" for i in range(30)]
    return KeyedVectors(keys, rng.standard_normal((30, 6)).astype(np.float32))


def _unit(x):
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def test_most_similar_matches_brute_force(kv):
    V = _unit(kv.vectors.astype(np.float64))
    q = _unit(V[3] + V[7] - V[2])
    sims = V @ q
    sims[[3, 7, 2]] = -np.inf
    want = np.argsort(-sims)[:5]
    got = kv.most_similar(positive=["w3", "w7"], negative=["w2"], topn=5)
    assert [k for k, _ in got] == [f"w{i}" for i in want]
    np.testing.assert_allclose([s for _, s in got], sims[want], rtol=1e-5)
    # restrict_vocab: only the first rows are candidates
    assert all(int(k[1:]) < 10 for k, _ in kv.most_similar("w3", topn=5, restrict_vocab=10))
    # a raw vector as query
    assert kv.most_similar(positive=[kv["w3"]], topn=1)[0][0] == "w3"


def test_analogy_is_b_minus_a_plus_c():
    v = np.array([[1, 0, 0, 0], [1, 1, 0, 0], [0, 0, 1, 0], [0, 1, 1, 0], [-1, 1, 0, 0], [0, -1, 1, 0]],
                 np.float32)
    kv = KeyedVectors(["man", "king", "woman", "queen", "wrong_sign", "wrong_sign2"], v)
    assert kv.analogy("man", "king", "woman")[0][0] == "queen"
    assert KeyedVectors(kv.index_to_key[:4], v[:4]).analogy("man", "king", "woman", method="mul")[0][0] == "queen"
    # the query words never come back
    assert {k for k, _ in kv.analogy("man", "king", "woman", topn=3)}.isdisjoint({"man", "king", "woman"})


def test_cosmul_formula(kv):
    V = _unit(kv.vectors.astype(np.float64))
    s = lambda i: (1 + V @ V[i]) / 2  # noqa: E731
    score = s(1) * s(4) / (s(0) + 1e-6)
    score[[0, 1, 4]] = -np.inf
    got = kv.most_similar_cosmul(positive=["w1", "w4"], negative=["w0"], topn=3)
    assert [k for k, _ in got] == [f"w{i}" for i in np.argsort(-score)[:3]]


def test_keyedvectors_access(kv):
    assert kv["w2"].shape == (6,) and kv[["w1", "w2"]].shape == (2, 6)
    assert "w1" in kv and "nope" not in kv and len(kv) == 30 and kv.vector_size == 6
    assert kv.similarity("w1", "w1") == pytest.approx(1.0, abs=1e-6)
    assert kv.key_to_index["w5"] == 5 and kv.get_index("nope", -1) == -1
    np.testing.assert_allclose(np.linalg.norm(kv.get_vector("w4", norm=True)), 1.0, rtol=1e-6)
    with pytest.raises(KeyError, match="nope"):
        kv["nope"]
    with pytest.raises(KeyError, match="nope"):
        kv.most_similar("nope")
    with pytest.raises(ValueError, match="positive"):
        kv.most_similar()
    with pytest.raises(ValueError, match="topn"):
        kv.most_similar("w1", topn=0)
    with pytest.raises(ValueError, match="method"):
        kv.analogy("w1", "w2", "w3", method="sub")


def test_keyedvectors_bad_construction():
    with pytest.raises(ValueError, match="duplicate"):
        KeyedVectors(["a", "a"], np.zeros((2, 2), np.float32))
    with pytest.raises(ValueError, match="vectors"):
        KeyedVectors(["a"], np.zeros((2, 2), np.float32))
    with pytest.raises(ValueError, match="vectors"):
        KeyedVectors(["a"], [[np.nan, 1.0]])


def test_zero_vectors_do_not_produce_nan():
    kv = KeyedVectors(["a", "b", "c"], np.array([[0, 0], [1, 0], [0, 1]], np.float32))
    assert kv.similarity("a", "b") == 0.0
    assert all(math.isfinite(s) for _, s in kv.most_similar("b"))


def test_wv_sees_training_updates():
    m = Word2Vec(vector_size=4, min_count=1, sg=1, seed=0, workers=1)
    m.build_vocab(TOY)
    m.wv.most_similar("king")  # fills the norm cache
    m.train(TOY)
    V = _unit(m.wv.vectors.astype(np.float64))
    assert m.wv.similarity("king", "dog") == pytest.approx(float(V[m.wv.key_to_index["king"]] @
                                                                 V[m.wv.key_to_index["dog"]]), abs=1e-5)


# ---------------------------------------------------------------------------- DeepWalk / Node2Vec
def _two_cliques():
    src, dst = [], []
    for base in (0, 6):
        for i, j in itertools.combinations(range(base, base + 6), 2):
            src.append(i)
            dst.append(j)
    src.append(5)
    dst.append(6)
    return fastgnn.Graph.from_edges(np.array(src), np.array(dst), num_nodes=13)  # node 12 isolated


@pytest.mark.parametrize("cls,kw", [(DeepWalk, {}), (DeepWalk, {"shared_negatives": False}),
                                    (Node2Vec, {"p": 0.5, "q": 2.0})])
def test_graph_embeddings_separate_communities(cls, kw):
    g = _two_cliques()
    model = cls(g, walk_length=20, walks_per_node=20, vector_size=16, window=4, epochs=3, seed=0, workers=1, **kw)
    emb = model.fit()
    assert emb.shape == (13, 16) and emb.dtype == np.float32 and np.isfinite(emb).all()
    V = _unit(emb[:12].astype(np.float64))
    sim = V @ V.T
    inside = np.mean([sim[i, j] for i in range(6) for j in range(6) if i != j])
    across = np.mean([sim[i, j] for i in range(6) for j in range(6, 12)])
    assert inside > across + 0.3
    assert model.wv.most_similar(0, topn=1)[0][0] in range(6)


def test_deepwalk_reproducible_and_isolated_node_untrained():
    g = _two_cliques()
    kw = dict(walk_length=10, walks_per_node=4, vector_size=8, seed=3, workers=1)
    a, b = DeepWalk(g, **kw).fit(), DeepWalk(g, **kw).fit()
    np.testing.assert_array_equal(a, b)
    dw = DeepWalk(g, keep_walks=True, **kw)
    dw.fit()
    assert dw.walks.shape == (4 * 13, 10)
    init = ((np.random.default_rng([3, 0]).random((13, 8)) - 0.5) / 8).astype(np.float32)
    np.testing.assert_array_equal(a[12], init[12])  # an isolated node has no context: initial vector


def test_deepwalk_bad_inputs():
    g = _two_cliques()
    with pytest.raises(TypeError, match="graph"):
        DeepWalk(np.zeros((3, 3)))
    with pytest.raises(ValueError, match="walk_length"):
        DeepWalk(g, walk_length=0)
    with pytest.raises(ValueError, match="p"):
        Node2Vec(g, p=0.0)
    with pytest.raises(ValueError, match="vector_size"):
        DeepWalk(g, vector_size=0)
    with pytest.raises(TypeError, match="sentences"):
        DeepWalk(g, sentences=[["a"]])


def test_backend_cpu_is_the_default_path():
    s = [["a", "b", "c"], ["c", "b", "a", "d"]] * 5
    kw = dict(vector_size=4, min_count=1, seed=2, workers=1)
    ref_model = Word2Vec(s, **kw)
    for how in ("argument", "context"):
        if how == "argument":
            m = Word2Vec(s, backend="cpu", **kw)
        else:
            with fastgnn.backend.use_backend("cpu"):
                m = Word2Vec(s, **kw)
        np.testing.assert_array_equal(m.wv.vectors, ref_model.wv.vectors)
    g = _two_cliques()
    a = DeepWalk(g, walk_length=5, walks_per_node=2, vector_size=4, seed=1, workers=1, backend="cpu").fit()
    b = DeepWalk(g, walk_length=5, walks_per_node=2, vector_size=4, seed=1, workers=1).fit()
    np.testing.assert_array_equal(a, b)


def _no_cuda(monkeypatch):
    """Make CUDA unusable the way a machine without numba-cuda is (the simulator included)."""
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "numba_cuda" else real(name, *a))
    fastgnn.backend.cuda_status(refresh=True)


@pytest.mark.parametrize("make", [
    lambda: Word2Vec([["a", "b"]] * 3, min_count=1, vector_size=4, backend="cuda"),
    lambda: DeepWalk(_two_cliques(), walk_length=4, walks_per_node=1, vector_size=4, backend="cuda").fit(),
    lambda: Node2Vec(_two_cliques(), p=2.0, walk_length=4, walks_per_node=1, vector_size=4, backend="cuda").fit(),
])
def test_cuda_without_gpu_is_the_backend_modules_error(make, monkeypatch):
    _no_cuda(monkeypatch)
    try:
        with pytest.raises(fastgnn.backend.BackendUnavailableError,
                           match="backend 'cuda' is not usable: numba-cuda is not installed"):
            make()
    finally:
        monkeypatch.undo()
        fastgnn.backend.cuda_status(refresh=True)


@pytest.mark.parametrize("cmd", ["train", "deepwalk"])
def test_cli_backend_option(cmd, tmp_path, monkeypatch, capsys):
    from fastgnn import cli

    if cmd == "train":
        data = tmp_path / "corpus.txt"
        data.write_text("a b c d\n" * 20)
        argv = ["word2vec", "train", str(data), "--min-count", "1", "--dim", "4", "-q"]
    else:
        data = tmp_path / "edges.tsv"
        data.write_text("0 1\n1 2\n2 0\n")
        argv = ["deepwalk", str(data), "--dim", "4", "--walks", "1", "--length", "4"]
    out = str(tmp_path / "v.txt")
    assert cli.main(argv + ["-o", out, "--backend", "cpu", "--workers", "1"]) == 0
    _no_cuda(monkeypatch)
    try:
        capsys.readouterr()
        assert cli.main(argv + ["-o", out, "--backend", "cuda"]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "backend 'cuda' is not usable" in err
    finally:
        monkeypatch.undo()
        fastgnn.backend.cuda_status(refresh=True)


def test_cuda_without_gpu_here_is_a_clear_error():
    ok, why = fastgnn.backend.cuda_status()
    if ok:
        pytest.skip(f"CUDA is usable here ({why})")
    with pytest.raises(fastgnn.backend.BackendUnavailableError, match="backend 'cuda' is not usable: .*"
                       "(numba-cuda|driver|device)"):
        Word2Vec([["a", "b"]] * 3, min_count=1, vector_size=4, backend="cuda")


def test_walks_to_corpus_drops_padding():
    walks = np.array([[0, 1, 2], [3, -1, -1], [4, 5, -1]], np.int32)
    corpus, offsets = _corpus.walks_to_corpus(walks)
    np.testing.assert_array_equal(corpus, [0, 1, 2, 3, 4, 5])
    np.testing.assert_array_equal(offsets, [0, 3, 4, 6])


# ---------------------------------------------------------------------------- properties
from hypothesis import given, settings, strategies as st  # noqa: E402


@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(0.0, 1e6, allow_nan=False), min_size=1, max_size=40).filter(lambda w: sum(w) > 0))
def test_alias_table_property(weights):
    w = np.asarray(weights, np.float64)
    prob = np.ones(w.size)
    alias = np.arange(w.size, dtype=np.int32)
    K.build_alias(w, prob, alias)
    assert ((prob >= 0) & (prob <= 1)).all() and ((alias >= 0) & (alias < w.size)).all()
    np.testing.assert_allclose(ref.ref_alias_distribution(prob, alias), w / w.sum(), atol=1e-9)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(0, 30), min_size=0, max_size=30), st.integers(1, 50))
def test_chunk_bounds_partition_sentences(lengths, batch):
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    b = _corpus.chunk_bounds(offsets, batch)
    assert b[0] == 0 and b[-1] == len(lengths) and (np.diff(b) > 0).all()
