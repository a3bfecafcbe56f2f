import numba
import numpy as np
import pytest

from fastgnn import Graph
from fastgnn.graph import spmm
from tests import reference as ref


def make_graph(rng, n, e, weighted, isolated=0):
    src, dst = rng.integers(0, n - isolated, e), rng.integers(0, n - isolated, e)
    w = rng.random(e) + 0.1 if weighted else None
    return Graph.from_edges(src, dst, num_nodes=n, weights=w), src, dst, w


@pytest.mark.parametrize("norm", [None, "sym", "rw"])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("n,e,d", [(1, 0, 1), (3, 2, 1), (17, 40, 5), (60, 300, 33)])
def test_spmm_matches_scipy_and_reference(rng, norm, weighted, n, e, d):
    g, src, dst, w = make_graph(rng, n, e, weighted, isolated=1 if n > 3 else 0)
    X = rng.standard_normal((n, d)).astype(np.float32)
    Y = spmm(g, X, norm=norm)
    assert Y.dtype == np.float32 and Y.shape == (n, d)
    A = g.to_scipy().toarray().astype(np.float64)
    want = ref.spmm_dense(A, X, norm)
    np.testing.assert_allclose(Y, want, rtol=2e-5, atol=2e-5)
    if norm is None:
        np.testing.assert_allclose(Y, g.to_scipy() @ X, rtol=2e-5, atol=2e-5)
    assert np.isfinite(Y).all()


def test_spmm_float64_and_vector(rng):
    g, *_ = make_graph(rng, 30, 90, True)
    X = rng.standard_normal((30, 4))
    Y = spmm(g, X, norm="sym")
    assert Y.dtype == np.float64
    np.testing.assert_allclose(Y, ref.spmm_dense(g.to_scipy().toarray(), X, "sym"), rtol=1e-12, atol=1e-12)
    v = rng.standard_normal(30).astype(np.float32)
    y = spmm(g, v)
    assert y.shape == (30,)
    np.testing.assert_allclose(y, g.to_scipy() @ v, rtol=1e-5, atol=1e-5)


def test_spmm_isolated_nodes_give_zero_rows():
    g = Graph.from_edges([0], [1], num_nodes=4)
    X = np.ones((4, 3), np.float32)
    for norm in (None, "sym", "rw"):
        Y = spmm(g, X, norm=norm)
        assert np.all(Y[2:] == 0) and np.isfinite(Y).all()


def test_spmm_out_argument(rng):
    g, *_ = make_graph(rng, 20, 50, False)
    X = rng.standard_normal((20, 8)).astype(np.float32)
    out = np.full((20, 8), np.nan, np.float32)
    res = spmm(g, X, out=out)
    assert res is out
    np.testing.assert_allclose(out, g.to_scipy() @ X, rtol=1e-5, atol=1e-5)
    with pytest.raises(TypeError, match="out: expected dtype float32"):
        spmm(g, X, out=np.zeros((20, 8)))
    with pytest.raises(TypeError, match="out: must be C-contiguous"):
        spmm(g, X, out=np.zeros((8, 20), np.float32).T)
    with pytest.raises(ValueError, match="out: expected shape"):
        spmm(g, X, out=np.zeros((20, 7), np.float32))


def test_spmm_thread_count_does_not_change_result(rng):
    g, *_ = make_graph(rng, 500, 3000, True)
    X = rng.standard_normal((500, 16)).astype(np.float32)
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        a = spmm(g, X, norm="sym")
        numba.set_num_threads(min(2, numba.config.NUMBA_NUM_THREADS))
        b = spmm(g, X, norm="sym")
    finally:
        numba.set_num_threads(before)
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("X,exc,match", [
    (np.ones((4, 2), np.float32), ValueError, "X: expected 5 rows"),
    (np.ones((5, 2, 2), np.float32), ValueError, "X: expected a 2-d"),
    (np.array([[1.0, np.nan]] * 5, np.float32), ValueError, "X: non-finite"),
    (np.array([[1.0, np.inf]] * 5), ValueError, "X: non-finite"),
    (np.array([["a", "b"]] * 5), TypeError, "X: expected a real numeric"),
    (None, TypeError, "X: expected an array"),
])
def test_spmm_bad_x(X, exc, match):
    g = Graph.from_edges([0, 1], [1, 4])
    with pytest.raises(exc, match=match):
        spmm(g, X)


def test_spmm_bad_norm_graph_backend():
    g = Graph.from_edges([0, 1], [1, 2])
    X = np.ones((3, 2), np.float32)
    with pytest.raises(ValueError, match="norm"):
        spmm(g, X, norm="left")
    with pytest.raises(TypeError, match="graph"):
        spmm(g.to_scipy(), X)
    with pytest.raises(ValueError, match="backend: unknown backend 'gpu'"):
        spmm(g, X, backend="gpu")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("weighted", [False, True])
def test_spmm_scaled_adds_the_self_loop_term(rng, dtype, weighted):
    """``spmm_scaled(..., self_scale=s)``: ``diag(r) A diag(c) X + diag(s) X`` in one pass (a GCN's self-loops)."""
    from fastgnn.graph import spmm_scaled

    n, d = 130, 70
    src, dst = rng.integers(0, n, 600), rng.integers(0, n, 600)
    g = Graph.from_edges(src, dst, num_nodes=n, weights=rng.random(600) + 0.1 if weighted else None)
    X = rng.standard_normal((n, d)).astype(dtype)
    r, c, s = (rng.random(n).astype(dtype) + 0.5 for _ in range(3))
    A = g.to_scipy().toarray()
    want = r[:, None] * (A @ (c[:, None] * X.astype(np.float64))) + ref.add_scaled_rows(0, s, X.astype(np.float64))
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(spmm_scaled(g, X, r, c, self_scale=s), want, rtol=tol, atol=tol)
    np.testing.assert_allclose(spmm_scaled(g, X, r, c), want - s[:, None] * X, rtol=tol, atol=tol)
