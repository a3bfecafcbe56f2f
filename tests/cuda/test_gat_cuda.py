"""CUDA graph-attention kernels (fastgnn/kernels/cuda/gat.py) against the NumPy ``autograd.gat_aggregate``, run
under NUMBA_ENABLE_CUDASIM=1 (make test-cuda) or on a real GPU.

Small blocks (THREADS = 4, TILE = (8, 4), PARTS = 3) so the tiny inputs span several blocks in both grid
dimensions and every reduction over N has several partials.
"""
import numpy as np
import pytest
from numba import cuda

from fastgnn import Graph, backend
from fastgnn import autograd as ag

cuda_ok, why = backend.cuda_status()
pytestmark = pytest.mark.skipif(not cuda_ok, reason=f"CUDA backend not usable: {why}")


@pytest.fixture
def kg(monkeypatch):
    from fastgnn.kernels.cuda import arrays as ka
    from fastgnn.kernels.cuda import gat

    monkeypatch.setattr(gat, "THREADS", 4)
    monkeypatch.setattr(gat, "TILE", (8, 4))
    monkeypatch.setattr(gat, "PARTS", 3)
    monkeypatch.setattr(ka, "THREADS", 4)
    return gat


def _tol(dtype):
    return 1e-5 if dtype == np.float32 else 1e-12


def _assert_close(got, want, dtype):
    """Relative ``_tol`` per element, absolute ``_tol`` x the largest reference value over all outputs: some
    gradients cancel to rounding noise (``dt_i = Σ_j dz_ij`` is 0 when a row's LeakyReLU slopes are all equal)."""
    atol = _tol(dtype) * max(float(np.abs(w).max(initial=0)) for w in want)
    for got_a, want_a in zip(got, want):
        assert got_a.dtype == want_a.dtype == dtype and got_a.shape == want_a.shape
        np.testing.assert_allclose(got_a, want_a, rtol=_tol(dtype), atol=atol)


def _graph(rng, kind, n):
    """A random graph of ``n`` nodes whose node ``n // 2`` has no neighbour (only its self-loop)."""
    e = 3 * n
    others = np.delete(np.arange(n), n // 2)
    src, dst = others[rng.integers(0, n - 1, e)], others[rng.integers(0, n - 1, e)]
    if kind == "undirected":
        return Graph.from_edges(src, dst, num_nodes=n)
    if kind == "directed":
        return Graph.from_edges(src, dst, num_nodes=n, symmetrize=False)
    return Graph.from_edges(src, dst, num_nodes=n, weights=rng.random(e) + 0.5)  # weights play no part


def _inputs(rng, n, H, F, dtype):
    h = rng.standard_normal((n, H, F)).astype(dtype)
    a_src, a_dst = (rng.standard_normal((2, H, F)) / np.sqrt(F)).astype(dtype)
    g = rng.standard_normal((n, H, F)).astype(dtype)
    return h, a_src, a_dst, g


def _numpy(graph, h, a_src, a_dst, slope, g):
    """``(out, dh, da_src, da_dst)`` of the NumPy specification."""
    th, ts, td = (ag.Tensor(x, requires_grad=True) for x in (h, a_src, a_dst))
    out = ag.gat_aggregate(graph, th, ts, td, negative_slope=slope)
    out.backward(g)
    return out.data, th.grad, ts.grad, td.grad


def _up(x):
    from fastgnn.kernels.cuda.arrays import upload

    return upload(x)  # size-0 arrays allocated, not copied


def _device_graph(graph, native=False):
    """The self-loop CSR on the device; ``cols`` int64, or as ``with_self_loops`` gives it (int32) with ``native``."""
    indptr, cols = graph.with_self_loops()
    return _up(indptr.astype(np.int64)), _up(cols if native else cols.astype(np.int64))


def _run(kg, graph, h, a_src, a_dst, slope, g, transpose=None, native=False):
    indptr, cols = _device_graph(graph, native)
    dh_, ds_, dd_, dg_ = (_up(x) for x in (h, a_src, a_dst, g))
    out, saved = kg.gat_forward(indptr, cols, dh_, ds_, dd_, slope)
    grads = kg.gat_backward(indptr, cols, dh_, ds_, dd_, saved, dg_, transpose=transpose)
    return out.copy_to_host(), tuple(a.copy_to_host() for a in saved), tuple(x.copy_to_host() for x in grads)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("H, F", [(1, 1), (3, 5), (1, 33), (3, 33)])
def test_gat_cuda_matches_numpy(rng, kg, dtype, H, F):
    n = 9
    graph = _graph(rng, "undirected", n)
    h, a_src, a_dst, g = _inputs(rng, n, H, F, dtype)
    slope = 0.2
    out, (alpha, act), (dh, da_src, da_dst) = _run(kg, graph, h, a_src, a_dst, slope, g)
    _assert_close((out, dh, da_src, da_dst), _numpy(graph, h, a_src, a_dst, slope, g), dtype)
    # the saved softmax: rows sum to 1, LeakyReLU slopes are 1 or slope, both taken
    indptr, _ = graph.with_self_loops()
    np.testing.assert_allclose(np.add.reduceat(alpha, indptr[:-1], axis=0), 1.0, rtol=_tol(dtype))
    assert set(np.unique(act)) == {dtype(1), dtype(slope)}
    # node n // 2 only has its self-loop: alpha 1, out = h
    iso = n // 2
    assert np.diff(indptr)[iso] == 1 and np.all(alpha[indptr[iso]] == 1) and np.array_equal(out[iso], h[iso])


@pytest.mark.parametrize("kind", ["directed", "weighted"])
def test_gat_cuda_directed_and_weighted_graphs(rng, kg, kind):
    n, H, F = 11, 2, 7
    graph = _graph(rng, kind, n)
    h, a_src, a_dst, g = _inputs(rng, n, H, F, np.float64)
    assert graph.with_self_loops()[1].dtype == np.int32  # taken as it is: the kernels accept int32 columns
    out, _, grads = _run(kg, graph, h, a_src, a_dst, 0.1, g, native=True)
    _assert_close((out,) + grads, _numpy(graph, h, a_src, a_dst, 0.1, g), np.float64)


def test_gat_cuda_backward_is_deterministic_and_takes_a_transpose(rng, kg):
    n, H, F = 10, 2, 3
    graph = _graph(rng, "undirected", n)
    h, a_src, a_dst, g = _inputs(rng, n, H, F, np.float32)
    _, _, first = _run(kg, graph, h, a_src, a_dst, 0.2, g)
    indptr, cols = _device_graph(graph)
    tindptr, tarcs, rows = kg.gat_transpose(indptr, cols)
    ip, cl = graph.with_self_loops()
    want_rows = np.repeat(np.arange(n), np.diff(ip))
    want_arcs = np.argsort(cl, kind="stable")
    np.testing.assert_array_equal(rows.copy_to_host(), want_rows)
    np.testing.assert_array_equal(tarcs.copy_to_host(), want_arcs)
    np.testing.assert_array_equal(tindptr.copy_to_host(), np.searchsorted(cl[want_arcs], np.arange(n + 1)))
    _, _, again = _run(kg, graph, h, a_src, a_dst, 0.2, g, transpose=(tindptr, tarcs, rows))
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)


def test_gat_cuda_single_node_and_empty_graph(rng, kg):
    h, a_src, a_dst, g = _inputs(rng, 1, 3, 5, np.float64)
    graph = Graph.from_edges([], [], num_nodes=1)
    out, _, grads = _run(kg, graph, h, a_src, a_dst, 0.2, g)
    _assert_close((out,) + grads, _numpy(graph, h, a_src, a_dst, 0.2, g), np.float64)
    empty = Graph.from_edges([], [], num_nodes=0)
    h0, g0 = h[:0], g[:0]
    out, (alpha, act), (dh, da_src, da_dst) = _run(kg, empty, h0, a_src, a_dst, 0.2, g0)
    assert out.shape == (0, 3, 5) and alpha.shape == act.shape == (0, 3) and dh.shape == (0, 3, 5)
    assert da_src.shape == da_dst.shape == (3, 5) and not da_src.any() and not da_dst.any()


def test_gat_cuda_rejects_mismatched_inputs(rng, kg):
    graph = _graph(rng, "undirected", 4)
    indptr, cols = _device_graph(graph)
    h, a_src, a_dst, g = _inputs(rng, 4, 2, 3, np.float32)
    with pytest.raises(ValueError, match="att_dst"):
        kg.gat_forward(indptr, cols, cuda.to_device(h), cuda.to_device(a_src), cuda.to_device(a_dst[:1]), 0.2)
    with pytest.raises(ValueError, match="indptr"):
        kg.gat_forward(indptr[:3], cols, cuda.to_device(h), cuda.to_device(a_src), cuda.to_device(a_dst), 0.2)
