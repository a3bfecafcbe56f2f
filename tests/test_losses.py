"""fastgnn.losses against the NumPy oracles in tests/reference_losses.py."""
import numba
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fastgnn
from fastgnn import Graph
from fastgnn.losses import (MultiObjectiveLoss, combine_gradients, info_nce, laplacian_eigenvalues,
                            local_contrastive, reconstruction, spectral)
from tests import reference_losses as ref


def _tol(dtype):
    return dict(rtol=2e-4, atol=2e-5) if dtype == np.float32 else dict(rtol=1e-9, atol=1e-11)


def _random_graph(rng, n, m, weighted=False, directed=False, isolated=0):
    src = rng.integers(0, n - isolated, m)
    dst = rng.integers(0, n - isolated, m)
    w = rng.uniform(0.5, 2.0, m) if weighted else None
    return Graph.from_edges(src, dst, num_nodes=n, weights=w, symmetrize=not directed)


def _threads(fn, n):
    old = numba.get_num_threads()
    numba.set_num_threads(n)
    try:
        return fn()
    finally:
        numba.set_num_threads(old)


def _flat(loss, grads):
    out = [np.atleast_1d(np.asarray(loss, np.float64))]
    for v in grads.values():
        if isinstance(v, tuple):
            out += [np.asarray(x, np.float64).ravel() for x in v]
        else:
            out.append(np.asarray(v, np.float64).ravel())
    return np.concatenate(out)


# ----------------------------------------------------------------------------- info_nce
SHAPES = [(1, 1, 1, 1), (1, 3, 4, 5), (5, 1, 3, 4), (7, 6, 8, 20), (33, 9, 5, 40)]


@pytest.mark.parametrize("B,K,D,N", SHAPES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kind", ["cosine", "dot"])
def test_info_nce_index_matches_reference(rng, B, K, D, N, dtype, kind):
    A = rng.standard_normal((B, D)).astype(dtype)
    P = rng.standard_normal((B, D)).astype(dtype)
    T = rng.standard_normal((N, D)).astype(dtype)
    ids = rng.integers(-1, N, (B, K))
    tau = 0.5
    loss, grads = info_nce(A, P, ids, table=T, temperature=tau, similarity=kind, reduction="none")
    want = ref.info_nce_items(A, P, ids, T, tau, kind)
    assert loss.shape == (B,) and loss.dtype == dtype
    np.testing.assert_allclose(loss, want, **_tol(dtype))
    mean, _ = info_nce(A, P, ids, table=T, temperature=tau, similarity=kind)
    np.testing.assert_allclose(mean, want.mean(), **_tol(dtype))
    rows, values = grads["table"]
    assert np.array_equal(rows, np.unique(ids[ids >= 0]))
    assert values.shape == (rows.size, D) and values.dtype == dtype
    assert grads["anchors"].dtype == dtype and grads["positives"].shape == (B, D)


@pytest.mark.parametrize("kind", ["cosine", "dot"])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_info_nce_index_gradients_finite_differences(rng, kind, reduction):
    B, K, D, N = 4, 5, 3, 6
    A = rng.standard_normal((B, D))
    P = rng.standard_normal((B, D))
    T = rng.standard_normal((N, D))
    ids = rng.integers(0, N, (B, K))
    ids[0, :2] = 3  # duplicates within a row
    ids[1, 4] = -1  # padding
    tau = 0.7
    _, grads = info_nce(A, P, ids, table=T, temperature=tau, similarity=kind, reduction=reduction)

    def total(a, p, t):
        return np.sum(ref.reduce(ref.info_nce_items(a, p, ids, t, tau, kind), reduction))

    np.testing.assert_allclose(grads["anchors"], ref.numerical_grad(lambda a: total(a, P, T), A), rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(grads["positives"], ref.numerical_grad(lambda p: total(A, p, T), P), rtol=1e-6, atol=1e-8)
    dense = np.zeros_like(T)
    rows, values = grads["table"]
    dense[rows] = values
    np.testing.assert_allclose(dense, ref.numerical_grad(lambda t: total(A, P, t), T), rtol=1e-6, atol=1e-8)


def test_info_nce_table_grad_buffer_accumulates(rng):
    A, P = rng.standard_normal((2, 6, 4)).astype(np.float32)
    T = rng.standard_normal((10, 4)).astype(np.float32)
    ids = rng.integers(-1, 10, (6, 3))
    _, g = info_nce(A, P, ids, table=T)
    buf = np.full((10, 4), 0.5, np.float32)
    _, g2 = info_nce(A, P, ids, table=T, table_grad=buf)
    assert g2["table"] is buf
    want = np.full((10, 4), 0.5, np.float32)
    want[g["table"][0]] += g["table"][1]
    np.testing.assert_allclose(buf, want, rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(g["anchors"], g2["anchors"])


def test_info_nce_int32_ids_and_all_padding(rng):
    A, P = rng.standard_normal((2, 3, 2)).astype(np.float32)
    T = rng.standard_normal((4, 2)).astype(np.float32)
    ids = np.array([[-1, -1], [0, 3], [2, -1]], np.int32)
    loss, g = info_nce(A, P, ids, table=T, reduction="none")
    assert loss[0] == 0 and np.all(g["anchors"][0] == 0) and np.all(g["positives"][0] == 0)
    np.testing.assert_allclose(loss, ref.info_nce_items(A, P, ids, T, 0.07), rtol=2e-4, atol=1e-5)
    _, g = info_nce(A, P, np.zeros((3, 0), np.int64), table=T)
    assert g["table"][0].size == 0 and np.all(g["anchors"] == 0)


@pytest.mark.parametrize("kind", ["cosine", "dot"])
def test_info_nce_dense_negatives(rng, kind):
    B, K, D, N = 5, 4, 3, 12
    A = rng.standard_normal((B, D))
    P = rng.standard_normal((B, D))
    T = rng.standard_normal((N, D))
    ids = rng.integers(0, N, (B, K))
    Nv = T[ids]
    loss, g = info_nce(A, P, Nv, temperature=0.3, similarity=kind, reduction="sum")
    np.testing.assert_allclose(loss, ref.info_nce_items(A, P, Nv, None, 0.3, kind).sum(), rtol=1e-10)
    num = ref.numerical_grad(lambda n: ref.info_nce_items(A, P, n, None, 0.3, kind).sum(), Nv)
    np.testing.assert_allclose(g["negatives"], num, rtol=1e-6, atol=1e-8)
    # the index path gives the same anchor gradient and the summed slot gradients
    loss2, g2 = info_nce(A, P, ids, table=T, temperature=0.3, similarity=kind, reduction="sum")
    np.testing.assert_allclose(loss2, loss, rtol=1e-12)
    np.testing.assert_allclose(g2["anchors"], g["anchors"], rtol=1e-10, atol=1e-12)
    dense = np.zeros_like(T)
    np.add.at(dense, ids, g["negatives"])
    rows, vals = g2["table"]
    np.testing.assert_allclose(vals, dense[rows], rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("B,D", [(1, 1), (1, 4), (4, 1), (9, 5), (70, 3)])
@pytest.mark.parametrize("symmetric", [False, True])
@pytest.mark.parametrize("kind", ["cosine", "dot"])
def test_info_nce_inbatch_matches_reference(rng, B, D, symmetric, kind):
    A = rng.standard_normal((B, D)).astype(np.float32)
    P = rng.standard_normal((B, D)).astype(np.float32)
    loss, g = info_nce(A, P, temperature=0.5, similarity=kind, symmetric=symmetric, reduction="none")
    np.testing.assert_allclose(loss, ref.info_nce_items(A, P, None, None, 0.5, kind, symmetric), rtol=2e-4, atol=2e-5)
    assert g["anchors"].dtype == np.float32 and set(g) == {"anchors", "positives"}


@pytest.mark.parametrize("symmetric", [False, True])
@pytest.mark.parametrize("kind", ["cosine", "dot"])
def test_info_nce_inbatch_gradients_finite_differences(rng, symmetric, kind):
    B, D = 5, 3
    A = rng.standard_normal((B, D))
    P = rng.standard_normal((B, D))
    _, g = info_nce(A, P, temperature=0.4, similarity=kind, symmetric=symmetric)
    f = lambda a, p: ref.info_nce_items(a, p, None, None, 0.4, kind, symmetric).mean()  # noqa: E731
    np.testing.assert_allclose(g["anchors"], ref.numerical_grad(lambda a: f(a, P), A), rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(g["positives"], ref.numerical_grad(lambda p: f(A, p), P), rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("symmetric", [False, True])
@pytest.mark.parametrize("kind", ["cosine", "dot"])
def test_info_nce_inbatch_fast_and_exact_paths_agree(rng, symmetric, kind):
    from fastgnn.backend import kernels
    from fastgnn.losses import contrastive

    k = kernels("losses", "cpu")
    B, D = 12, 4
    for dtype in (np.float32, np.float64):
        A = rng.standard_normal((B, D)).astype(dtype)
        P = rng.standard_normal((B, D)).astype(dtype)
        rs = np.full(B, 0.5 / B if symmetric else 1.0 / B)
        cs = rs if symmetric else np.zeros(B)
        na2, np2 = (A.astype(np.float64) ** 2).sum(1), (P.astype(np.float64) ** 2).sum(1)
        fast = contrastive._inbatch_fast(k, A, P, 2.0, kind == "cosine", symmetric, rs, cs)
        exact = contrastive._inbatch_exact(k, A, P, na2, np2, 2.0, kind == "cosine", symmetric, rs, cs)
        for f, e in zip(fast, exact):
            np.testing.assert_allclose(f, e, **_tol(dtype))
        np.testing.assert_allclose(fast[0], ref.info_nce_items(A, P, None, None, 0.5, kind, symmetric), **_tol(dtype))


def test_info_nce_inbatch_wide_logit_range_falls_back(rng):
    # tau = 0.01 with opposed pairs: column maxima lie far below the global maximum (exact path)
    A = rng.standard_normal((6, 3))
    P = np.concatenate([A[:3], -A[3:]])
    from fastgnn.backend import kernels
    from fastgnn.losses import contrastive

    scale = np.full(6, 0.5)
    assert contrastive._inbatch_fast(kernels("losses", "cpu"), A, P, 100.0, True, True, scale, scale) is None
    loss, g = info_nce(A, P, temperature=0.01, symmetric=True, reduction="none")
    np.testing.assert_allclose(loss, ref.info_nce_items(A, P, None, None, 0.01, "cosine", True), rtol=1e-9)
    f = lambda a: ref.info_nce_items(a, P, None, None, 0.01, "cosine", True).sum()  # noqa: E731
    np.testing.assert_allclose(g["anchors"], ref.numerical_grad(f, A, h=1e-7), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("negs", ["index", "dense", "inbatch"])
def test_info_nce_extreme_numerics_finite(rng, negs):
    B, K, D = 6, 4, 8
    for dtype in (np.float32, np.float64):
        for tau, kind, scale in [(0.01, "cosine", 1.0), (0.01, "dot", 100.0), (10.0, "cosine", 1.0), (10.0, "dot", 1e3)]:
            A = (rng.standard_normal((B, D)) * scale).astype(dtype)
            P = (-A).astype(dtype)  # far apart: the positive is the least similar candidate
            T = (rng.standard_normal((20, D)) * scale).astype(dtype)
            A[0] = 0  # a zero vector
            T[1] = 0
            ids = rng.integers(0, 20, (B, K))
            ids[:, 0] = 1
            args = {"index": (ids,), "dense": (T[ids],), "inbatch": (None,)}[negs]
            kw = {"table": T} if negs == "index" else {}
            loss, g = info_nce(A, P, *args, temperature=tau, similarity=kind, **kw)
            assert np.isfinite(loss)
            assert np.all(np.isfinite(_flat(loss, g)))


def test_info_nce_zero_vectors_give_finite_values():
    A = np.zeros((2, 3), np.float32)
    loss, g = info_nce(A, A, np.zeros((2, 2), np.int64), table=np.zeros((1, 3), np.float32))
    assert loss == pytest.approx(np.log(3.0))
    assert np.all(np.isfinite(_flat(loss, g)))


def test_info_nce_matches_torch(rng):
    torch = pytest.importorskip("torch")
    B, K, D, N, tau = 16, 5, 8, 30, 0.2
    A = rng.standard_normal((B, D)).astype(np.float32)
    P = rng.standard_normal((B, D)).astype(np.float32)
    T = rng.standard_normal((N, D)).astype(np.float32)
    ids = rng.integers(0, N, (B, K))
    loss, g = info_nce(A, P, ids, table=T, temperature=tau)
    a, p, t = (torch.tensor(x, requires_grad=True) for x in (A, P, T))
    an, pn = torch.nn.functional.normalize(a, dim=1), torch.nn.functional.normalize(p, dim=1)
    nn_ = torch.nn.functional.normalize(t[torch.tensor(ids)], dim=2)
    logits = torch.cat([(an * pn).sum(1, keepdim=True), torch.einsum("bd,bkd->bk", an, nn_)], 1) / tau
    tl = torch.nn.functional.cross_entropy(logits, torch.zeros(B, dtype=torch.long))
    tl.backward()
    assert loss == pytest.approx(tl.item(), rel=1e-5)
    np.testing.assert_allclose(g["anchors"], a.grad.numpy(), rtol=1e-4, atol=1e-6)
    dense = np.zeros_like(T)
    dense[g["table"][0]] = g["table"][1]
    np.testing.assert_allclose(dense, t.grad.numpy(), rtol=1e-4, atol=1e-6)


def test_info_nce_threads_identical(rng):
    A, P = rng.standard_normal((2, 300, 16)).astype(np.float32)
    T = rng.standard_normal((50, 16)).astype(np.float32)
    ids = rng.integers(-1, 50, (300, 7))
    for args, kw in [((ids,), {"table": T}), ((None,), {"symmetric": True}), ((T[ids],), {})]:
        one = _threads(lambda: _flat(*info_nce(A, P, *args, **kw)), 1)
        two = _threads(lambda: _flat(*info_nce(A, P, *args, **kw)), 2)
        np.testing.assert_array_equal(one, two)


@settings(max_examples=15, deadline=None)
@given(st.integers(1, 6), st.integers(0, 4), st.floats(0.05, 5.0), st.integers(0, 2**31))
def test_info_nce_nonnegative(B, K, tau, seed):
    r = np.random.default_rng(seed)
    A, P = r.standard_normal((2, B, 3)).astype(np.float32)
    T = r.standard_normal((5, 3)).astype(np.float32)
    loss, _ = info_nce(A, P, r.integers(-1, 5, (B, K)), table=T, temperature=tau, reduction="none")
    assert np.all(loss >= -1e-6)


def test_info_nce_bad_inputs(rng):
    A = rng.standard_normal((4, 3)).astype(np.float32)
    T = rng.standard_normal((10, 3)).astype(np.float32)
    ids = rng.integers(0, 10, (4, 2))
    with pytest.raises(ValueError, match="positives"):
        info_nce(A, A[:3], ids, table=T)
    with pytest.raises(TypeError, match="positives"):
        info_nce(A, A.astype(np.float64), ids, table=T)
    with pytest.raises(ValueError, match="anchors"):
        info_nce(A[0], A[0])
    with pytest.raises(ValueError, match="anchors"):
        info_nce(np.zeros((0, 3), np.float32), np.zeros((0, 3), np.float32))
    with pytest.raises(ValueError, match="table"):
        info_nce(A, A, ids, table=T[:, :2])
    with pytest.raises(TypeError, match="table"):
        info_nce(A, A, ids, table=T.astype(np.float64))
    with pytest.raises(ValueError, match="table"):
        info_nce(A, A, ids)
    with pytest.raises(ValueError, match="table"):
        info_nce(A, A, table=T)
    with pytest.raises(ValueError, match="negatives: index 10 out of range for table with 10 rows"):
        info_nce(A, A, np.full((4, 2), 10), table=T)
    with pytest.raises(ValueError, match="negatives: negative id -2"):
        info_nce(A, A, np.full((4, 2), -2), table=T)
    with pytest.raises(ValueError, match="negatives"):
        info_nce(A, A, ids[:3], table=T)
    with pytest.raises(ValueError, match="negatives"):
        info_nce(A, A, np.zeros((4, 2, 2), np.float32))
    with pytest.raises(TypeError, match="negatives"):
        info_nce(A, A, np.zeros((4, 2, 3), np.float64))
    with pytest.raises(TypeError, match="negatives"):
        info_nce(A, A, np.zeros((4, 2), bool), table=T)
    for tau in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="temperature"):
            info_nce(A, A, temperature=tau)
    with pytest.raises(ValueError, match="similarity"):
        info_nce(A, A, similarity="l2")
    with pytest.raises(ValueError, match="reduction"):
        info_nce(A, A, reduction="avg")
    bad = A.copy()
    bad[1, 2] = np.nan
    with pytest.raises(ValueError, match="anchors: non-finite"):
        info_nce(bad, A)
    T2 = T.copy()
    T2[9, 0] = np.inf
    ids9 = ids.copy()
    ids9[2, 1] = 9
    with pytest.raises(ValueError, match="table: row 9: non-finite value"):
        info_nce(A, A, ids9, table=T2)
    T2[9, 0] = 3e19  # finite, but its squared norm overflows float32
    with pytest.raises(ValueError, match="table: row 9 is too large"):
        info_nce(A, A, ids9, table=T2)
    with pytest.raises(TypeError, match="table_grad"):
        info_nce(A, A, ids, table=T, table_grad=np.zeros((10, 3)))
    with pytest.raises(ValueError, match="table_grad"):
        info_nce(A, A, ids, table=T, table_grad=np.zeros((9, 3), np.float32))
    with pytest.raises(TypeError, match="table_grad"):
        info_nce(A, A, ids, table=T, table_grad=np.zeros((3, 10), np.float32).T)
    with pytest.raises(ValueError, match="symmetric"):
        info_nce(A, A, ids, table=T, symmetric=True)
    with pytest.raises(TypeError, match="anchors"):
        info_nce(np.array([["a"]]), A)


# ----------------------------------------------------------------------------- spectral
GRAPHS = [
    dict(n=1, m=0), dict(n=2, m=1), dict(n=8, m=12), dict(n=15, m=30, weighted=True, isolated=3),
    dict(n=12, m=25, directed=True, weighted=True),
]


def _graph(rng, n, m, **kw):
    if m == 0:
        return Graph.from_edges([], [], num_nodes=n)
    if n == 2:
        return Graph.from_edges([0, 0, 1], [1, 1, 0], num_nodes=2)  # duplicate edges merge
    return _random_graph(rng, n, m, **kw)


@pytest.mark.parametrize("spec", GRAPHS)
@pytest.mark.parametrize("normalization", ["none", "sym", "edge"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_spectral_matches_reference(rng, spec, normalization, dtype):
    g = _graph(rng, **spec)
    for D in (1, 5):
        Z = rng.standard_normal((g.num_nodes, D)).astype(dtype)
        loss, grads = spectral(Z, g, lam=0.7, normalization=normalization)
        A = ref.dense_adjacency_of(g)
        want, want_g = ref.spectral(Z, A, 0.7, normalization)
        np.testing.assert_allclose(loss, want, **_tol(dtype))
        np.testing.assert_allclose(loss, ref.spectral_edges(Z, A, 0.7, normalization), **_tol(dtype))
        np.testing.assert_allclose(grads["Z"], want_g, **_tol(dtype))
        assert grads["Z"].dtype == dtype


@pytest.mark.parametrize("normalization", ["none", "sym"])
def test_spectral_against_scipy_laplacian(rng, normalization):
    from scipy.sparse.csgraph import laplacian

    g = _random_graph(rng, 30, 60, weighted=True, isolated=4)
    Z = rng.standard_normal((30, 4))
    L = laplacian(g.to_scipy().astype(np.float64), normed=normalization == "sym")
    loss, grads = spectral(Z, g, normalization=normalization)
    np.testing.assert_allclose(loss, np.sum(Z * (L @ Z)), rtol=1e-10)
    np.testing.assert_allclose(grads["Z"], 2 * (L @ Z), rtol=1e-10, atol=1e-12)
    assert np.all(grads["Z"][26:] == 0)  # isolated nodes


@pytest.mark.parametrize("normalization", ["none", "sym", "edge"])
def test_spectral_gradient_finite_differences(rng, normalization):
    g = _random_graph(rng, 7, 10, weighted=True)
    Z = rng.standard_normal((7, 2))
    A = ref.dense_adjacency_of(g)
    _, grads = spectral(Z, g, lam=1.3, normalization=normalization)
    num = ref.numerical_grad(lambda z: ref.spectral_edges(z, A, 1.3, normalization), Z)
    np.testing.assert_allclose(grads["Z"], num, rtol=1e-6, atol=1e-7)


def test_spectral_bad_inputs(rng):
    g = _random_graph(rng, 5, 6)
    Z = np.zeros((5, 2), np.float32)
    with pytest.raises(ValueError, match="Z"):
        spectral(np.zeros((4, 2)), g)
    with pytest.raises(ValueError, match="Z"):
        spectral(np.zeros(5), g)
    with pytest.raises(ValueError, match="normalization"):
        spectral(Z, g, normalization="rw")
    with pytest.raises(TypeError, match="graph"):
        spectral(Z, np.eye(5))
    with pytest.raises(ValueError, match="lam"):
        spectral(Z, g, lam=float("nan"))
    Z[2, 1] = np.inf
    with pytest.raises(ValueError, match="Z: non-finite"):
        spectral(Z, g)


# ----------------------------------------------------------------------------- local_contrastive
@pytest.mark.parametrize("E,N,D", [(1, 2, 1), (5, 4, 3), (40, 12, 6)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_local_contrastive_matches_reference(rng, E, N, D, dtype, reduction):
    Z = rng.standard_normal((N, D)).astype(dtype)
    pairs = rng.integers(0, N, (E, 2))
    similar = rng.random(E) < 0.5
    loss, g = local_contrastive(Z, pairs, similar, margin=2.0, reduction=reduction)
    items = ref.local_contrastive_items(Z, pairs, similar, 2.0)
    np.testing.assert_allclose(loss, ref.reduce(items, reduction), **_tol(dtype))
    np.testing.assert_allclose(g["Z"], ref.local_contrastive_grad(Z, pairs, similar, 2.0, reduction), **_tol(dtype))


def test_local_contrastive_gradient_finite_differences(rng):
    Z = rng.standard_normal((6, 3))
    pairs = rng.integers(0, 6, (15, 2))
    pairs = pairs[pairs[:, 0] != pairs[:, 1]]
    similar = np.arange(len(pairs)) % 2 == 0
    _, g = local_contrastive(Z, pairs, similar, margin=3.0)
    num = ref.numerical_grad(lambda z: ref.local_contrastive_items(z, pairs, similar, 3.0).mean(), Z)
    np.testing.assert_allclose(g["Z"], num, rtol=1e-6, atol=1e-8)


def test_local_contrastive_zero_distance_gradient_is_zero():
    Z = np.ones((3, 2), np.float32)
    loss, g = local_contrastive(Z, np.array([[0, 1], [1, 1]]), np.array([False, False]), margin=1.5)
    assert loss == pytest.approx(1.5 ** 2)
    assert np.all(g["Z"] == 0) and np.all(np.isfinite(g["Z"]))


@pytest.mark.parametrize("directed", [False, True])
def test_local_contrastive_graph(rng, directed):
    g = _random_graph(rng, 20, 40, weighted=True, directed=directed)
    Z = rng.standard_normal((20, 4))
    src, dst, _ = g.edges()
    pairs = np.stack([src, dst], 1)
    for reduction in ("mean", "sum"):
        loss, grads = local_contrastive(Z, g, reduction=reduction)
        loss2, grads2 = local_contrastive(Z, pairs, reduction=reduction)
        np.testing.assert_allclose(loss, loss2, rtol=1e-10)
        np.testing.assert_allclose(grads["Z"], grads2["Z"], rtol=1e-10, atol=1e-12)
    sim = rng.random(len(pairs)) < 0.3
    loss, grads = local_contrastive(Z, g, sim, margin=2.5, reduction="none")
    np.testing.assert_allclose(loss, ref.local_contrastive_items(Z, pairs, sim, 2.5), rtol=1e-10)


def test_local_contrastive_threads_identical(rng):
    Z = rng.standard_normal((200, 8)).astype(np.float32)
    pairs = rng.integers(0, 200, (3000, 2))
    sim = rng.random(3000) < 0.5
    g = _random_graph(rng, 200, 1500)
    for args in [(pairs, sim), (g,)]:
        one = _threads(lambda: _flat(*local_contrastive(Z, *args)), 1)
        two = _threads(lambda: _flat(*local_contrastive(Z, *args)), 2)
        np.testing.assert_array_equal(one, two)
    one = _threads(lambda: _flat(*spectral(Z, g, normalization="sym")), 1)
    two = _threads(lambda: _flat(*spectral(Z, g, normalization="sym")), 2)
    np.testing.assert_array_equal(one, two)


def test_local_contrastive_bad_inputs(rng):
    Z = np.zeros((5, 2), np.float32)
    pairs = np.array([[0, 1], [2, 3]])
    with pytest.raises(ValueError, match="margin"):
        local_contrastive(Z, pairs, margin=-0.1)
    with pytest.raises(ValueError, match="pairs: index 5 out of range"):
        local_contrastive(Z, np.array([[0, 5]]))
    with pytest.raises(ValueError, match="pairs: negative id"):
        local_contrastive(Z, np.array([[-1, 2]]))
    with pytest.raises(ValueError, match="pairs"):
        local_contrastive(Z, np.array([0, 1, 2]))
    with pytest.raises(TypeError, match="pairs"):
        local_contrastive(Z, np.array([[0.0, 1.0]]))
    with pytest.raises(ValueError, match="similar"):
        local_contrastive(Z, pairs, np.array([True]))
    with pytest.raises(TypeError, match="similar"):
        local_contrastive(Z, pairs, np.array([0.5, 1.0]))
    with pytest.raises(ValueError, match="reduction"):
        local_contrastive(Z, pairs, reduction="max")
    with pytest.raises(ValueError, match="Z"):
        local_contrastive(np.zeros((4, 2)), _random_graph(rng, 5, 4))
    with pytest.raises(ValueError, match="Z: non-finite"):
        local_contrastive(np.full((5, 2), np.nan), pairs)


# ----------------------------------------------------------------------------- reconstruction
@pytest.mark.parametrize("spec", [dict(n=2, m=1), dict(n=10, m=15, isolated=2), dict(n=9, m=20, directed=True, weighted=True)])
@pytest.mark.parametrize("K", [0, 1, 3])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_reconstruction_matches_reference(rng, spec, K, dtype):
    g = _graph(rng, **spec)
    Z = (0.5 * rng.standard_normal((g.num_nodes, 3))).astype(dtype)
    loss, grads = reconstruction(Z, g, num_negatives=K, seed=11, reduction="none")
    negs = ref.reconstruction_negatives(g, K, 11)
    np.testing.assert_allclose(loss, ref.reconstruction_items(Z, g, negs), **_tol(dtype))
    deg = g.degrees()
    if K:
        assert np.all(deg[negs] > 0)  # isolated nodes are never drawn
    mean, _ = reconstruction(Z, g, num_negatives=K, seed=11)
    np.testing.assert_allclose(mean, ref.reconstruction_items(Z, g, negs).mean(), **_tol(dtype))


def test_reconstruction_gradient_finite_differences(rng):
    g = _random_graph(rng, 8, 12, directed=True)
    Z = 0.5 * rng.standard_normal((8, 3))
    _, grads = reconstruction(Z, g, num_negatives=4, seed=3)
    negs = ref.reconstruction_negatives(g, 4, 3)
    num = ref.numerical_grad(lambda z: ref.reconstruction_items(z, g, negs).mean(), Z)
    np.testing.assert_allclose(grads["Z"], num, rtol=1e-6, atol=1e-8)


def test_reconstruction_seeded_and_thread_independent(rng):
    g = _random_graph(rng, 100, 400)
    Z = (0.3 * rng.standard_normal((100, 8))).astype(np.float32)
    one = _threads(lambda: _flat(*reconstruction(Z, g, seed=5)), 1)
    two = _threads(lambda: _flat(*reconstruction(Z, g, seed=5)), 2)
    np.testing.assert_array_equal(one, two)
    assert not np.array_equal(one, _flat(*reconstruction(Z, g, seed=6)))


def test_reconstruction_degree_distribution(rng):
    g = Graph.from_edges([0, 0, 0, 0, 1], [1, 2, 3, 4, 2], num_nodes=6)
    negs = ref.reconstruction_negatives(g, 4000, 0)[0]
    freq = np.bincount(negs, minlength=6) / negs.size
    p = g.degrees().astype(float) ** 0.75
    np.testing.assert_allclose(freq, p / p.sum(), atol=0.03)


def test_reconstruction_bad_inputs(rng):
    g = _random_graph(rng, 5, 6)
    Z = np.zeros((5, 2), np.float32)
    with pytest.raises(ValueError, match="num_negatives"):
        reconstruction(Z, g, num_negatives=-1)
    with pytest.raises(TypeError, match="num_negatives"):
        reconstruction(Z, g, num_negatives=2.0)
    with pytest.raises(ValueError, match="seed"):
        reconstruction(Z, g, seed=-3)
    with pytest.raises(ValueError, match="Z"):
        reconstruction(Z[:3], g)
    with pytest.raises(ValueError, match="reduction"):
        reconstruction(Z, g, reduction="avg")
    zero = Graph.from_edges([0, 1], [1, 2], num_nodes=5, weights=[0.0, 0.0])
    with pytest.raises(ValueError, match="graph: every weighted degree is 0"):
        reconstruction(Z, zero, num_negatives=2)
    assert np.isfinite(reconstruction(Z, zero, num_negatives=0)[0])


# ----------------------------------------------------------------------------- laplacian_eigenvalues
@pytest.mark.parametrize("normalization", ["sym", "none"])
@pytest.mark.parametrize("which", ["smallest", "largest"])
def test_laplacian_eigenvalues_small(rng, normalization, which):
    g = _random_graph(rng, 25, 50, weighted=True, isolated=2)
    vals, vecs = laplacian_eigenvalues(g, 4, normalization=normalization, which=which, return_vectors=True)
    L = ref.laplacian(ref.dense_adjacency_of(g), normalization)
    want = np.linalg.eigh(L)[0]
    want = want[:4] if which == "smallest" else want[-4:]
    np.testing.assert_allclose(vals, want, atol=1e-10)
    np.testing.assert_allclose(L @ vecs, vecs * vals, atol=1e-8)
    assert vals.dtype == np.float64 and vecs.shape == (25, 4)


@pytest.mark.parametrize("normalization", ["sym", "none"])
def test_laplacian_eigenvalues_lanczos(rng, normalization):
    g = _random_graph(rng, 600, 2400)
    L = ref.laplacian(ref.dense_adjacency_of(g), normalization)
    want = np.linalg.eigh(L)[0]
    vals, vecs = laplacian_eigenvalues(g, 3, normalization=normalization, return_vectors=True)
    np.testing.assert_allclose(vals, want[:3], atol=1e-6)
    np.testing.assert_allclose(L @ vecs, vecs * vals, atol=1e-5)
    np.testing.assert_allclose(laplacian_eigenvalues(g, 2, normalization=normalization, which="largest"),
                               want[-2:], rtol=1e-8)


def test_laplacian_eigenvalues_path_graph():
    g = Graph.from_edges([0, 1], [1, 2])
    np.testing.assert_allclose(laplacian_eigenvalues(g, 2), [0.0, 1.0], atol=1e-12)
    np.testing.assert_allclose(laplacian_eigenvalues(g, 2, normalization="none", which="largest"), [1.0, 3.0], atol=1e-12)


def test_laplacian_eigenvalues_bad_inputs(rng):
    g = _random_graph(rng, 5, 6)
    with pytest.raises(ValueError, match="k: must be smaller than the number of nodes"):
        laplacian_eigenvalues(g, 5)
    with pytest.raises(ValueError, match="k"):
        laplacian_eigenvalues(g, 0)
    with pytest.raises(TypeError, match="k"):
        laplacian_eigenvalues(g, 1.5)
    with pytest.raises(ValueError, match="normalization"):
        laplacian_eigenvalues(g, 2, normalization="edge")
    with pytest.raises(ValueError, match="which"):
        laplacian_eigenvalues(g, 2, which="middle")
    with pytest.raises(TypeError, match="graph"):
        laplacian_eigenvalues(np.eye(3), 1)


# ----------------------------------------------------------------------------- MultiObjectiveLoss
def test_multi_objective_fixed_and_uncertainty():
    mol = MultiObjectiveLoss(3, weights=[1.0, 0.5, 2.0])
    total, g = mol([1.0, 2.0, 3.0])
    assert total == pytest.approx(ref.multi_objective([1, 2, 3], "fixed", [1.0, 0.5, 2.0]))
    np.testing.assert_allclose(g["losses"], [1.0, 0.5, 2.0])
    mol = MultiObjectiveLoss(names=["a", "b"], mode="uncertainty", log_vars=[0.3, -0.2])
    L = np.array([1.5, 0.7])
    total, g = mol({"a": 1.5, "b": 0.7})
    assert total == pytest.approx(ref.multi_objective(L, "uncertainty", log_vars=[0.3, -0.2]))
    num_L = ref.numerical_grad(lambda x: ref.multi_objective(x, "uncertainty", log_vars=[0.3, -0.2]), L)
    num_s = ref.numerical_grad(lambda s: ref.multi_objective(L, "uncertainty", log_vars=s), np.array([0.3, -0.2]))
    np.testing.assert_allclose(g["losses"], num_L, rtol=1e-7)
    np.testing.assert_allclose(g["log_vars"], num_s, rtol=1e-7)
    assert mol.parameters()["log_vars"] is mol.log_vars


def test_multi_objective_uncertainty_learns_inverse_variance():
    mol = MultiObjectiveLoss(2, mode="uncertainty")
    L = np.array([4.0, 0.25])
    for _ in range(2000):
        _, g = mol(L)
        mol.log_vars -= 0.05 * g["log_vars"]  # plain SGD on s
    np.testing.assert_allclose(mol.log_vars, np.log(L), atol=1e-6)  # optimum s_i = log L_i


def test_multi_objective_gradnorm_balances():
    mol = MultiObjectiveLoss(2, mode="gradnorm", alpha=0.0, lr=0.0005)
    for _ in range(2000):
        mol.gradnorm_step([1.0, 1.0], grad_norms=[10.0, 1.0])
        assert mol.weights.sum() == pytest.approx(2.0)
    # equal training rates and alpha 0: the weighted norms w_i * |g_i| become equal
    G = mol.weights * np.array([10.0, 1.0])
    assert abs(G[0] - G[1]) / G.mean() < 0.1
    # alpha > 0: the task that trains slower (higher loss ratio) gets a larger target norm
    mol = MultiObjectiveLoss(2, mode="gradnorm", alpha=1.5, lr=0.01)
    mol.gradnorm_step([1.0, 1.0], [1.0, 1.0])
    for _ in range(300):
        mol.gradnorm_step([0.9, 0.3], [1.0, 1.0])
    assert mol.weights[0] > mol.weights[1]
    total, g = mol([2.0, 3.0])
    assert total == pytest.approx(float(mol.weights @ [2.0, 3.0]))
    state = mol.state_dict()
    other = MultiObjectiveLoss(2, mode="gradnorm")
    other.load_state_dict(state)
    np.testing.assert_array_equal(other.weights, mol.weights)
    np.testing.assert_array_equal(other.initial_losses, mol.initial_losses)


def test_multi_objective_bad_inputs():
    with pytest.raises(ValueError, match="mode"):
        MultiObjectiveLoss(2, mode="pareto")
    with pytest.raises(ValueError, match="num_tasks"):
        MultiObjectiveLoss(0)
    with pytest.raises(ValueError, match="num_tasks"):
        MultiObjectiveLoss()
    with pytest.raises(ValueError, match="weights"):
        MultiObjectiveLoss(2, weights=[1.0, -1.0])
    with pytest.raises(ValueError, match="weights"):
        MultiObjectiveLoss(2, weights=[1.0])
    with pytest.raises(ValueError, match="alpha"):
        MultiObjectiveLoss(2, mode="gradnorm", alpha=-1)
    with pytest.raises(ValueError, match="lr"):
        MultiObjectiveLoss(2, mode="gradnorm", lr=0)
    mol = MultiObjectiveLoss(2, mode="gradnorm")
    with pytest.raises(ValueError, match="losses"):
        mol([1.0])
    with pytest.raises(ValueError, match="losses: non-finite"):
        mol([1.0, np.nan])
    with pytest.raises(TypeError, match="losses"):
        mol({"a": 1.0, "b": 2.0})
    with pytest.raises(ValueError, match="losses"):
        mol.gradnorm_step([0.0, 1.0], [1.0, 1.0])
    with pytest.raises(ValueError, match="grad_norms"):
        mol.gradnorm_step([1.0, 1.0], [1.0, -1.0])
    with pytest.raises(RuntimeError, match="gradnorm"):
        MultiObjectiveLoss(2).gradnorm_step([1.0, 1.0], [1.0, 1.0])
    with pytest.raises(ValueError, match="losses"):
        MultiObjectiveLoss(names=["a", "b"])({"a": 1.0, "c": 2.0})


# ----------------------------------------------------------------------------- combine_gradients
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_combine_gradients_dense(rng, dtype):
    for shape in [(1,), (7,), (5000, 3)]:
        gs = [rng.standard_normal(shape).astype(dtype) for _ in range(6)]  # two fused passes of up to four
        w = [0.5, -2.0, 1.5, 0.25, 3.0, -1.0]
        for m in (1, 3, 4, 6):
            np.testing.assert_allclose(combine_gradients(gs[:m], w[:m]), ref.combine_dense(gs[:m], w[:m]), **_tol(dtype))
        out = combine_gradients(gs, w)
        buf = np.empty(shape, dtype)
        assert combine_gradients(gs, w, out=buf) is buf
        np.testing.assert_array_equal(buf, out)


def test_combine_gradients_sparse_and_mixed(rng):
    g1 = (np.array([4, 1, 4]), rng.standard_normal((3, 2)))
    g2 = (np.array([0, 1]), rng.standard_normal((2, 2)))
    rows, vals = combine_gradients([g1, g2], [2.0, 0.5])
    want_rows, want_vals = ref.combine_sparse([g1, g2], [2.0, 0.5], 2)
    np.testing.assert_array_equal(rows, want_rows)
    np.testing.assert_allclose(vals, want_vals, rtol=1e-12)
    dense = rng.standard_normal((6, 2))
    out = combine_gradients([dense, g1, g2], [1.0, 2.0, 0.5])
    want = dense.copy()
    want[want_rows] += want_vals
    np.testing.assert_allclose(out, want, rtol=1e-12)
    # the info_nce table gradient plugs straight in
    A, P = rng.standard_normal((2, 4, 2))
    _, g = info_nce(A, P, rng.integers(0, 6, (4, 3)), table=dense)
    rows, vals = combine_gradients([g["table"]], [3.0])
    np.testing.assert_allclose(vals, 3.0 * g["table"][1])


def test_combine_gradients_bad_inputs(rng):
    a = np.ones((3, 2), np.float32)
    with pytest.raises(ValueError, match="grads"):
        combine_gradients([], [])
    with pytest.raises(TypeError, match="grads"):
        combine_gradients(a, [1.0])
    with pytest.raises(ValueError, match="weights"):
        combine_gradients([a, a], [1.0])
    with pytest.raises(ValueError, match="weights"):
        combine_gradients([a], [np.inf])
    with pytest.raises(TypeError, match="grads"):
        combine_gradients([a, a.astype(np.float64)], [1.0, 1.0])
    with pytest.raises(ValueError, match="grads"):
        combine_gradients([a, a[:2]], [1.0, 1.0])
    with pytest.raises(ValueError, match="grads rows: index 3 out of range"):
        combine_gradients([a, (np.array([3]), np.ones((1, 2), np.float32))], [1.0, 1.0])
    with pytest.raises(TypeError, match="out"):
        combine_gradients([a], [1.0], out=np.empty((3, 2)))
    with pytest.raises(ValueError, match="out"):
        combine_gradients([(np.array([0]), np.ones((1, 2)))], [1.0], out=np.empty((3, 2)))
    out = combine_gradients([a, np.full((3, 2), np.nan, np.float32)], [1.0, 1.0])
    assert np.isnan(out).all()  # non-finite gradients propagate (not scanned, see the docstring)


def test_public_names_lazy():
    for name in ("info_nce", "local_contrastive", "spectral", "reconstruction", "laplacian_eigenvalues",
                 "MultiObjectiveLoss"):
        assert getattr(fastgnn, name) is getattr(fastgnn.losses, name)


@pytest.mark.parametrize("module", ["contrastive", "graph", "multi"])
def test_docstring_examples(module):
    import doctest
    import importlib

    mod = importlib.import_module(f"fastgnn.losses.{module}")
    result = doctest.testmod(mod, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0
