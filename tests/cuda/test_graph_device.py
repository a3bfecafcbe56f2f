"""Graphs built on the device (``kernels/cuda/graph.py``, ``fastgnn.graph._DeviceGraph``): GRACE's dropped-edge
views, their degree scales, self-loops and transpose, against the host ``Graph`` code. Run under
NUMBA_ENABLE_CUDASIM=1 (make test-cuda) or on a real GPU.

Small blocks (THREADS = 4) so that the tiny graphs span several blocks.
"""
import numpy as np
import pytest

from fastgnn import Graph, backend
from fastgnn import autograd as ag
from fastgnn.graph import _DeviceGraph

cuda_ok, why = backend.cuda_status()
pytestmark = pytest.mark.skipif(not cuda_ok, reason=f"CUDA backend not usable: {why}")


@pytest.fixture(autouse=True)
def small_blocks(monkeypatch):
    from fastgnn.kernels.cuda import arrays as ka
    from fastgnn.kernels.cuda import graph as kg

    monkeypatch.setattr(kg, "THREADS", 4)
    monkeypatch.setattr(ka, "THREADS", 4)


def _graph(rng, n, e, directed, weighted):
    src, dst = rng.integers(0, n - 1, e), rng.integers(0, n - 1, e)  # the last node is isolated
    w = rng.random(e) + 0.1 if weighted else None
    return Graph.from_edges(src, dst, num_nodes=n, weights=w, symmetrize=not directed)


def _host(d):
    """The device graph's arrays copied back by hand (not through its lazy host properties)."""
    indptr, indices, w = (a.copy_to_host() for a in d.device_arrays())
    return indptr, indices, w


@pytest.mark.parametrize("directed", [False, True])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("p", [0.3, 0.8, 1.0])
def test_device_views_are_the_host_views(rng, directed, weighted, p):
    g = _graph(rng, 19, 45, directed, weighted)
    for seed in (3, 2**62 - 5):
        want = g._drop_edges(p, seed)
        got = g._drop_edges(p, seed, device=True)
        assert isinstance(got, _DeviceGraph) and not isinstance(want, _DeviceGraph)
        indptr, indices, w = _host(got)
        q = want.num_arcs
        np.testing.assert_array_equal(indptr, want.indptr)
        np.testing.assert_array_equal(indices[:q], want.indices)
        assert indices.dtype == want.indices.dtype and indices.size == g.num_arcs
        assert np.all(indices[q:] == -1)  # padding past the kept arcs
        if weighted:
            np.testing.assert_array_equal(w[:q], want.weights)
        assert got._weighted == weighted and got.directed == directed and got.num_nodes == 19
        assert got._host is None
        assert got.num_arcs == q and got._host is None  # one integer read back, not the arrays
        # the lazy host arrays are the host view's
        np.testing.assert_array_equal(got.indptr, want.indptr)
        np.testing.assert_array_equal(got.indices, want.indices)
        assert (got.weights is None) == (not weighted)
        if weighted:
            np.testing.assert_array_equal(got.weights, want.weights)
        assert got.num_edges == want.num_edges


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_device_scales_are_the_host_scales(rng, weighted, dtype):
    g = _graph(rng, 21, 40, False, weighted)
    host = g._drop_edges(0.4, 9)
    dev = g._drop_edges(0.4, 9, device=True)
    assert np.any(host.degrees() == 0)  # isolated nodes: zero scales, never inf
    for norm in (None, "sym", "rw", "gcn"):
        want = [a.copy_to_host() for a in host._device_scales(norm, dtype)]  # uploaded host vectors
        got = [a.copy_to_host() for a in dev._device_scales(norm, dtype)]  # computed on the device
        for gv, wv in zip(got, want):
            assert gv.dtype == dtype
            np.testing.assert_array_equal(gv, wv)  # bit for bit
    assert dev._host is None


def test_device_self_loops_and_transpose(rng):
    for directed in (False, True):
        g = _graph(rng, 17, 40, directed, True)
        host = g._drop_edges(0.5, 4)
        dev = g._drop_edges(0.5, 4, device=True)
        indptr, cols, _ = dev._device_self_loops()
        want_indptr, want_cols = host.with_self_loops()
        got_indptr, got_cols = indptr.copy_to_host(), cols.copy_to_host()
        np.testing.assert_array_equal(got_indptr, want_indptr)
        np.testing.assert_array_equal(got_cols[:want_cols.size], want_cols)
        assert np.all(got_cols[want_cols.size:] == -1) and got_cols.size == g.num_arcs + 17
        t, want = dev.transpose(), host.transpose()
        assert (t is dev) == (not directed) and dev.transpose() is t  # cached
        if directed:
            indptr, indices, w = _host(t)
            q = want.num_arcs
            np.testing.assert_array_equal(indptr, want.indptr)
            np.testing.assert_array_equal(indices[:q], want.indices)
            np.testing.assert_array_equal(w[:q], want.weights)
            assert indices.dtype == want.indices.dtype and np.all(indices[q:] == -1)
        assert dev._host is None


def _grads(graph, op, x, g):
    xt = ag.tensor(x, requires_grad=True)
    out = op(graph, xt)
    ag.sum(ag.mul(out, g)).backward()
    to = (lambda a: a.copy_to_host()) if hasattr(out.data, "copy_to_host") else np.asarray
    return to(out.data), to(xt.grad)


@pytest.mark.parametrize("directed", [False, True])
def test_encoder_ops_on_a_device_view_match_the_host_view(rng, directed):
    from fastgnn import _autograd_device as _ad

    g = _graph(rng, 15, 35, directed, True)
    host, dev = g._drop_edges(0.3, 11), g._drop_edges(0.3, 11, device=True)
    x = rng.standard_normal((15, 6))
    gr = rng.standard_normal((15, 6))
    ops = [ag.gcn_propagate, lambda G, t: ag.spmm(G, t, norm="rw"), lambda G, t: ag.spmm(G, t, norm="sym"),
           lambda G, t: ag.spmm(G, t)]
    for op in ops:
        want = _grads(host, op, x, gr)
        got = _grads(dev, op, _ad.upload(x), _ad.upload(gr))
        for a, b in zip(got, want):
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)
    h = rng.standard_normal((15, 2, 3))
    a_src, a_dst = rng.standard_normal((2, 2, 3))
    want = ag.gat_aggregate(host, h, a_src, a_dst).data
    got = ag.gat_aggregate(dev, _ad.upload(h), _ad.upload(a_src), _ad.upload(a_dst)).data.copy_to_host()
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    assert dev._host is None  # nothing read back


def test_grace_views_are_built_on_the_device(monkeypatch):
    """The Trainer's device path builds both views on the device: no host CSR copy, no host view."""
    from fastgnn.trainer import Trainer

    calls = []
    monkeypatch.setattr(Graph, "_keep_edges", lambda *a: calls.append("host view"))
    monkeypatch.setattr(_DeviceGraph, "_host_arrays", lambda self: calls.append("copied back"))
    g = Graph.from_edges([0, 1, 2, 3, 4, 5, 0, 2], [1, 2, 3, 4, 5, 6, 3, 6], num_nodes=8)
    X = np.random.default_rng(0).standard_normal((8, 5))
    tr = Trainer("gcn", positives="views", dim=3, hidden=4, seed=1, backend="cuda", dtype=np.float64,
                 edge_drop=0.4)
    hist = tr.fit(g, epochs=2, features=X)
    assert len(hist) == 2 and calls == []
