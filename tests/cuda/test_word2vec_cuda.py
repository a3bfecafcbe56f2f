"""CUDA twin of the word2vec kernels (run under NUMBA_ENABLE_CUDASIM=1): same results as the NumPy oracle."""
import numpy as np
import pytest

from fastgnn import backend as _backend
from fastgnn.kernels.cpu import word2vec as K
from fastgnn.word2vec import _corpus
from tests import reference_word2vec as ref


@pytest.fixture
def kc():
    if not _backend.cuda_available():
        pytest.skip("CUDA backend not usable here")
    return _backend.kernels("word2vec", "cuda")


def _setup(rng, v, d, nsent, maxlen, sample, batch, dtype):
    lengths = rng.integers(1, maxlen + 1, nsent)
    corpus = rng.integers(0, v, lengths.sum()).astype(np.int32)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    counts = np.bincount(corpus, minlength=v)
    keep = _corpus.keep_probabilities(counts, sample)
    prob, alias = _corpus.noise_table(counts, 0.75, K)
    chunks = _corpus.chunk_bounds(offsets, batch)
    syn0 = (rng.random((v, d)) - 0.5).astype(dtype)
    syn1 = ((rng.random((v, d)) - 0.5) * 0.5).astype(dtype)
    return corpus, offsets, chunks, keep, prob, alias, syn0, syn1


CASES = [  # sg, v, d, nsent, maxlen, window, shrink, negative, shared, cbow_mean, sample, l2, clip
    (1, 6, 3, 3, 5, 2, True, 2, False, True, 0.0, 0.0, 0.0),
    (1, 5, 2, 2, 6, 2, True, 3, True, True, 0.05, 0.01, 0.0),
    (1, 1, 1, 2, 3, 1, False, 1, False, True, 0.0, 0.0, 0.05),
    (0, 6, 3, 3, 5, 2, True, 2, False, True, 0.0, 0.0, 0.0),
    (0, 5, 2, 3, 5, 1, False, 3, False, False, 0.05, 0.02, 0.05),
]


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_one_chunk_matches_reference(kc, rng, case, dtype):
    from numba import cuda

    sg, v, d, nsent, maxlen, window, shrink, negative, shared, cbow_mean, sample, l2, clip = case
    corpus, offsets, chunks, keep, prob, alias, syn0, syn1 = _setup(rng, v, d, nsent, maxlen, sample, 10**6, dtype)
    total = int(offsets[-1])
    r0, r1 = syn0.astype(np.float64), syn1.astype(np.float64)
    args = (0.05, 0.01, total, l2, clip, 9, 2)
    if sg:
        rl, rw = ref.ref_train_sg(corpus, offsets, chunks, keep, prob, alias, r0, r1, window, shrink, negative,
                                  shared, *args)
    else:
        rl, rw = ref.ref_train_cbow(corpus, offsets, chunks, keep, prob, alias, r0, r1, window, shrink, negative,
                                    cbow_mean, *args)
    d0, d1 = cuda.to_device(syn0), cuda.to_device(syn1)
    loss = cuda.to_device(np.zeros(chunks.size - 1))
    words = cuda.to_device(np.zeros(chunks.size - 1, np.int64))
    dev = [cuda.to_device(a) for a in (corpus, offsets, chunks, keep, prob, alias)]
    if sg:
        kc.train_sg(*dev, d0, d1, window, shrink, negative, shared, *args, True, loss, words, threads_per_block=2)
    else:
        kc.train_cbow(*dev, d0, d1, window, shrink, negative, cbow_mean, *args, True, loss, words,
                      threads_per_block=2)
    tol = 2e-5 if dtype == np.float32 else 1e-11
    np.testing.assert_allclose(d0.copy_to_host(), r0, rtol=10 * tol, atol=tol)
    np.testing.assert_allclose(d1.copy_to_host(), r1, rtol=10 * tol, atol=tol)
    np.testing.assert_allclose(loss.copy_to_host(), rl, rtol=10 * tol, atol=tol)
    np.testing.assert_array_equal(words.copy_to_host(), rw)


@pytest.mark.parametrize("sg", [0, 1])
def test_chunks_across_blocks_draw_their_own_streams(kc, rng, sg):
    """Several chunks over several blocks: with alpha = 0 nothing races, so losses and kept words per chunk
    must equal the oracle's exactly (each chunk's draws come from its own stream)."""
    corpus, offsets, chunks, keep, prob, alias, syn0, syn1 = _setup(rng, 7, 2, 7, 4, 0.1, 3, np.float64)
    assert chunks.size - 1 >= 3
    total = int(offsets[-1])
    args = (0.0, 0.0, total, 0.0, 0.0, 4, 0)
    loss = np.zeros(chunks.size - 1)
    words = np.zeros(chunks.size - 1, np.int64)
    if sg:
        kc.train_sg(corpus, offsets, chunks, keep, prob, alias, syn0, syn1, 2, True, 2, False, *args, True, loss,
                    words, threads_per_block=1)
        rl, rw = ref.ref_train_sg(corpus, offsets, chunks, keep, prob, alias, syn0.copy(), syn1.copy(), 2, True, 2,
                                  False, *args)
    else:
        kc.train_cbow(corpus, offsets, chunks, keep, prob, alias, syn0, syn1, 2, True, 2, True, *args, True, loss,
                      words, threads_per_block=1)
        rl, rw = ref.ref_train_cbow(corpus, offsets, chunks, keep, prob, alias, syn0.copy(), syn1.copy(), 2, True, 2,
                                    True, *args)
    np.testing.assert_array_equal(words, rw)
    np.testing.assert_allclose(loss, rl, rtol=1e-12)
