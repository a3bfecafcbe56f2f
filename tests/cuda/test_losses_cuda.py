"""CUDA twins of the loss kernels (run under NUMBA_ENABLE_CUDASIM=1, or on a real GPU).

The same checks run on "cpu" and "cuda" against the NumPy oracles; tiny inputs and small blocks
(THREADS = 4, TILE = (4, 2)) so every launch spans several blocks.
"""
import numpy as np
import pytest

from fastgnn import Graph, backend as fb
from fastgnn.losses import combine_gradients, info_nce, local_contrastive, reconstruction, spectral
from tests import reference_losses as ref


@pytest.fixture(params=["cpu", "cuda"])
def backend(request, monkeypatch):
    if request.param == "cuda":
        if not fb.cuda_available():
            pytest.skip(fb.cuda_status()[1])
        from fastgnn.kernels.cuda import losses as kc

        monkeypatch.setattr(kc, "THREADS", 4)
        monkeypatch.setattr(kc, "TILE", (4, 2))
    return request.param


def _tol(dtype):
    return dict(rtol=2e-4, atol=2e-5) if dtype == np.float32 else dict(rtol=1e-9, atol=1e-11)


@pytest.mark.parametrize("kind", ["cosine", "dot"])
@pytest.mark.parametrize("D, dtype, K", [(5, np.float32, 3), (130, np.float32, 3), (130, np.float64, 3),
                                         (130, np.float32, 37), (3, np.float64, 66)])
def test_info_nce_index(rng, backend, kind, D, dtype, K):
    """D = 130: the CUDA kernels' two column blocks of 128 (the second with two columns on lanes 0-1). K = 37,
    66: the kernels' chunks of 32 negative slots (the last one partial, its slots not a multiple of the
    forward's four or the backward's two a step)."""
    B, N = 9, 7
    A, P = rng.standard_normal((2, B, D)).astype(dtype)
    T = rng.standard_normal((N, D)).astype(dtype)
    ids = rng.integers(-1, N, (B, K))
    tol = dict(rtol=1e-4, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-10, atol=1e-13)
    loss, g = info_nce(A, P, ids, table=T, temperature=0.5, similarity=kind, reduction="none", backend=backend)
    np.testing.assert_allclose(loss, ref.info_nce_items(A, P, ids, T, 0.5, kind), **_tol(dtype))
    cpu_loss, cpu = info_nce(A, P, ids, table=T, temperature=0.5, similarity=kind, reduction="none", backend="cpu")
    np.testing.assert_allclose(g["anchors"], cpu["anchors"], **tol)
    np.testing.assert_allclose(g["positives"], cpu["positives"], **tol)
    np.testing.assert_array_equal(g["table"][0], cpu["table"][0])
    np.testing.assert_allclose(g["table"][1], cpu["table"][1], **tol)
    buf = np.ones_like(T)
    info_nce(A, P, ids, table=T, temperature=0.5, similarity=kind, table_grad=buf, backend=backend)
    want = np.ones_like(T)
    want[cpu["table"][0]] += cpu["table"][1] / B
    np.testing.assert_allclose(buf, want, **tol)


def test_info_nce_no_negatives(rng, backend):
    A, P = rng.standard_normal((2, 3, 2)).astype(np.float32)
    loss, g = info_nce(A, P, np.zeros((3, 0), np.int64), table=np.ones((4, 2), np.float32), backend=backend)
    assert loss == 0.0 and g["table"][0].size == 0 and np.all(g["anchors"] == 0)


def test_info_nce_gradients_float64(rng, backend):
    B, K, D, N = 4, 3, 3, 5
    A, P = rng.standard_normal((2, B, D))
    T = rng.standard_normal((N, D))
    ids = rng.integers(0, N, (B, K))
    Nv = T[ids]
    _, g = info_nce(A, P, Nv, temperature=0.4, backend=backend)
    f = lambda a: ref.info_nce_items(a, P, Nv, None, 0.4).mean()  # noqa: E731
    np.testing.assert_allclose(g["anchors"], ref.numerical_grad(f, A), rtol=1e-6, atol=1e-8)
    fn = lambda n: ref.info_nce_items(A, P, n, None, 0.4).mean()  # noqa: E731
    np.testing.assert_allclose(g["negatives"], ref.numerical_grad(fn, Nv), rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("symmetric", [False, True])
@pytest.mark.parametrize("kind", ["cosine", "dot"])
def test_info_nce_inbatch(rng, backend, symmetric, kind):
    B, D = 6, 3
    A, P = rng.standard_normal((2, B, D))
    loss, g = info_nce(A, P, temperature=0.5, similarity=kind, symmetric=symmetric, reduction="none", backend=backend)
    np.testing.assert_allclose(loss, ref.info_nce_items(A, P, None, None, 0.5, kind, symmetric), rtol=1e-9)
    f = lambda a, p: ref.info_nce_items(a, p, None, None, 0.5, kind, symmetric).sum()  # noqa: E731
    np.testing.assert_allclose(g["anchors"], ref.numerical_grad(lambda a: f(a, P), A), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(g["positives"], ref.numerical_grad(lambda p: f(A, p), P), rtol=1e-6, atol=1e-7)


def test_info_nce_inbatch_zero_row_matches_cpu(rng, backend):
    A, P = rng.standard_normal((2, 5, 3)).astype(np.float32)
    A[1] = 0  # clamped pairs: the exact CPU path
    loss, g = info_nce(A, P, symmetric=True, reduction="none", backend=backend)
    cpu_loss, cpu = info_nce(A, P, symmetric=True, reduction="none", backend="cpu")
    np.testing.assert_allclose(loss, cpu_loss, rtol=1e-5)
    np.testing.assert_allclose(g["anchors"], cpu["anchors"], rtol=1e-4)
    np.testing.assert_allclose(g["positives"], cpu["positives"], rtol=1e-4, atol=1e-5)


# chunks of S: 3 + 3 + 1 rows (a partial last one), or all rows at once
@pytest.mark.parametrize("rows, dtype", [(3, np.float64), (3, np.float32), (40, np.float32)])
def test_info_nce_inbatch_in_chunks_matches_cpu(rng, monkeypatch, rows, dtype):
    """The CUDA in-batch path takes S = A Pᵀ in chunks of rows (IB_CHUNK_BYTES), and its column kernels take a
    chunk's rows in parts (IB_PART_ROWS): the statistics over all chunks first, then the gradients chunk by chunk.
    Any chunking gives the CPU's losses and gradients (to rounding), with a zero row (clamped pairs) and both
    reductions."""
    if not fb.cuda_available():
        pytest.skip(fb.cuda_status()[1])
    from fastgnn.kernels.cuda import losses as kc

    B, D = 7, 6
    monkeypatch.setattr(kc, "IB_CHUNK_BYTES", rows * B * np.dtype(dtype).itemsize)
    monkeypatch.setattr(kc, "IB_PART_ROWS", 2)  # column sums over parts of 2 rows: 2 parts of a 3-row chunk, 4 of 7
    monkeypatch.setattr(kc, "TILE", (4, 2))
    A, P = rng.standard_normal((2, B, D)).astype(dtype)
    A[4] = 0
    tol = dict(rtol=1e-4, atol=1e-5) if dtype == np.float32 else dict(rtol=1e-10, atol=1e-12)
    for kind in ("cosine", "dot"):
        for symmetric in (False, True):
            kw = dict(similarity=kind, symmetric=symmetric, temperature=0.3, reduction="none")
            loss, g = info_nce(A, P, backend="cuda", **kw)
            want, w = info_nce(A, P, backend="cpu", **kw)
            np.testing.assert_allclose(loss, want, **tol)
            scale = max(np.abs(w["anchors"]).max(), 1.0)  # the zero row's clamped gradient is ~1/EPS
            np.testing.assert_allclose(g["anchors"], w["anchors"], rtol=tol["rtol"], atol=tol["atol"] * scale)
            np.testing.assert_allclose(g["positives"], w["positives"], **tol)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_info_nce_inbatch_fast_path_where_it_applies(rng, monkeypatch, dtype):
    """The CUDA in-batch loss takes its fast path (normalised rows, one exponential an element) where the CPU
    takes its own: S in one chunk, no clamped pair, and for the symmetric loss cosine with 2/τ within the one
    shift's range. Each case agrees with the reference formula and its finite-difference gradients; the other
    cases fall back to the exact path."""
    if not fb.cuda_available():
        pytest.skip(fb.cuda_status()[1])
    from fastgnn.kernels.cuda import losses as kc

    taken = []
    real = kc._inbatch_fast
    monkeypatch.setattr(kc, "_inbatch_fast", lambda *a: taken.append(real(*a) is not None) or real(*a))
    monkeypatch.setattr(kc, "TILE", (4, 2))  # several blocks of the 2-d kernels
    monkeypatch.setattr(kc, "IB_PART_ROWS", 3)  # the exact path's column sums over 3 parts
    B, D = 9, 37  # two column strides of a warp
    A, P = rng.standard_normal((2, B, D))
    tol = dict(rtol=1e-4, atol=1e-5) if dtype == np.float32 else dict(rtol=1e-9, atol=1e-11)
    cases = [("cosine", True, 0.5, True), ("cosine", False, 0.5, True), ("dot", False, 0.3, True),
             ("cosine", True, 0.02, False), ("dot", True, 0.3, False), ("zero row", True, 0.5, False)]
    for kind, symmetric, tau, fast in cases:
        a = A.copy()
        if kind == "zero row":
            a[3] = 0.0
            kind = "cosine"
        kw = dict(temperature=tau, similarity=kind, symmetric=symmetric, reduction="sum")
        taken.clear()
        loss, g = info_nce(a.astype(dtype), P.astype(dtype), backend="cuda", **kw)
        assert taken == [fast], (kind, symmetric, tau)
        want, wg = info_nce(a, P, backend="cpu", **kw)  # float64 on the CPU: the reference for both dtypes
        np.testing.assert_allclose(loss, want, rtol=tol["rtol"])
        for key in ("anchors", "positives"):  # atol scaled: float32 sums cancel; a clamped gradient is ~1/EPS
            scale = max(np.abs(wg[key]).max(), 1.0)
            np.testing.assert_allclose(g[key], wg[key], rtol=tol["rtol"], atol=tol["atol"] * scale, err_msg=key)
        if dtype == np.float64 and fast:
            f = lambda x, y: ref.info_nce_items(x, y, None, None, tau, kind, symmetric).sum()  # noqa: E731
            np.testing.assert_allclose(g["anchors"], ref.numerical_grad(lambda x: f(x, P), a), rtol=1e-6, atol=1e-6)
            np.testing.assert_allclose(g["positives"], ref.numerical_grad(lambda y: f(a, y), P), rtol=1e-6,
                                       atol=1e-6)


@pytest.mark.parametrize("normalization", ["none", "sym", "edge"])
def test_spectral(rng, backend, normalization):
    g = Graph.from_edges(rng.integers(0, 9, 14), rng.integers(0, 9, 14), num_nodes=11, weights=rng.uniform(0.5, 2, 14))
    Z = rng.standard_normal((11, 5))
    loss, grads = spectral(Z, g, lam=0.5, normalization=normalization, backend=backend)
    want, want_g = ref.spectral(Z, ref.dense_adjacency_of(g), 0.5, normalization)
    np.testing.assert_allclose(loss, want, rtol=1e-9)
    np.testing.assert_allclose(grads["Z"], want_g, rtol=1e-9, atol=1e-12)


def test_local_contrastive(rng, backend):
    Z = rng.standard_normal((7, 5)).astype(np.float32)
    pairs = rng.integers(0, 7, (13, 2))
    sim = rng.random(13) < 0.5
    loss, g = local_contrastive(Z, pairs, sim, margin=2.0, reduction="sum", backend=backend)
    np.testing.assert_allclose(loss, ref.local_contrastive_items(Z, pairs, sim, 2.0).sum(), rtol=1e-5)
    np.testing.assert_allclose(g["Z"], ref.local_contrastive_grad(Z, pairs, sim, 2.0, "sum"), rtol=1e-4, atol=1e-5)
    graph = Graph.from_edges(pairs[:, 0], pairs[:, 1], num_nodes=7)
    loss, g = local_contrastive(Z, graph, backend=backend)
    src, dst, _ = graph.edges()
    p2 = np.stack([src, dst], 1)
    np.testing.assert_allclose(loss, ref.local_contrastive_items(Z, p2, np.ones(len(p2), bool), 1.0).mean(), rtol=1e-5)


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")  # the simulator runs rng.py on numpy scalars
def test_reconstruction_same_negatives_as_cpu(rng, backend):
    g = Graph.from_edges(rng.integers(0, 8, 10), rng.integers(0, 8, 10), num_nodes=9)
    Z = 0.5 * rng.standard_normal((9, 3))
    loss, grads = reconstruction(Z, g, num_negatives=3, seed=4, reduction="none", backend=backend)
    negs = ref.reconstruction_negatives(g, 3, 4)
    np.testing.assert_allclose(loss, ref.reconstruction_items(Z, g, negs), rtol=1e-9)
    num = ref.numerical_grad(lambda z: ref.reconstruction_items(z, g, negs).sum(), Z)
    np.testing.assert_allclose(grads["Z"], num, rtol=1e-6, atol=1e-8)


def test_combine_gradients(rng, backend):
    gs = [rng.standard_normal((5, 3)).astype(np.float32) for _ in range(3)]
    out = combine_gradients(gs, [1.0, -0.5, 2.0], backend=backend)
    np.testing.assert_allclose(out, ref.combine_dense(gs, [1.0, -0.5, 2.0]), rtol=1e-5, atol=1e-6)
    sp = [(np.array([3, 0, 3]), rng.standard_normal((3, 2))), (np.array([1]), rng.standard_normal((1, 2)))]
    rows, vals = combine_gradients(sp, [2.0, 3.0], backend=backend)
    wr, wv = ref.combine_sparse(sp, [2.0, 3.0], 2)
    np.testing.assert_array_equal(rows, wr)
    np.testing.assert_allclose(vals, wv, rtol=1e-12)
