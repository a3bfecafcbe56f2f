import numpy as np
import pytest

from fastgnn import autograd as ag
from fastgnn import datasets, nn
from fastgnn import Graph
from tests.test_autograd import numeric_grad


@pytest.fixture
def small(rng):
    src, dst = rng.integers(0, 9, 20), rng.integers(0, 9, 20)
    g = Graph.from_edges(src, dst, num_nodes=10)  # node 9 isolated
    return g, rng.standard_normal((10, 4))


def layer_cases():
    return [
        ("linear", lambda: nn.Linear(4, 3, seed=1, dtype=np.float64)),
        ("gcn", lambda: nn.GCNConv(4, 3, seed=1, dtype=np.float64)),
        ("sage", lambda: nn.SAGEConv(4, 3, seed=1, dtype=np.float64)),
        ("gat", lambda: nn.GATConv(4, 3, heads=2, seed=1, dtype=np.float64)),
        ("gat-mean", lambda: nn.GATConv(4, 3, heads=2, concat=False, seed=1, dtype=np.float64)),
    ]


def run(layer, g, x):
    return layer(x) if isinstance(layer, nn.Linear) else layer(g, x)


@pytest.mark.parametrize("name,make", layer_cases())
def test_parameter_gradients_match_finite_differences(small, name, make):
    g, x = small
    layer = make()
    W = np.random.default_rng(3).standard_normal(run(layer, g, ag.Tensor(x)).shape)
    xt = ag.Tensor(x.copy(), requires_grad=True)
    ag.sum(ag.mul(ag.elu(run(layer, g, xt)), W)).backward()
    params = dict(layer.named_parameters())
    assert params, "layer has parameters"
    for pname, p in params.items():
        def f(arr, p=p):
            old = p.data.copy()
            p.data[...] = arr
            val = float((ag.elu(run(layer, g, ag.Tensor(x))).data * W).sum())
            p.data[...] = old
            return val
        num = numeric_grad(f, [p.data.copy()], 0)
        np.testing.assert_allclose(p.grad, num, rtol=1e-4, atol=1e-6, err_msg=f"{name}.{pname}")
    num_x = numeric_grad(lambda a: float((ag.elu(run(layer, g, ag.Tensor(a))).data * W).sum()), [x.copy()], 0)
    np.testing.assert_allclose(xt.grad, num_x, rtol=1e-4, atol=1e-6)


def test_shapes_seeds_and_state_dict(small):
    g, x = small
    a = nn.Sequential(nn.GCNConv(4, 8, seed=3), nn.ReLU(), nn.Dropout(0.5, seed=1), nn.GATConv(8, 2, heads=3, seed=4))
    b = nn.Sequential(nn.GCNConv(4, 8, seed=3), nn.ReLU(), nn.Dropout(0.5, seed=1), nn.GATConv(8, 2, heads=3, seed=4))
    assert a(g, x).shape == (10, 6)
    for (na, pa), (nb, pb) in zip(a.named_parameters(), b.named_parameters()):
        assert na == nb
        np.testing.assert_array_equal(pa.data, pb.data)
    assert [n for n, _ in a.named_parameters()] == [
        "0.lin.weight", "0.bias", "3.lin.weight", "3.att_src", "3.att_dst", "3.bias"]
    state = a.state_dict()
    c = nn.Sequential(nn.GCNConv(4, 8, seed=9), nn.ReLU(), nn.Dropout(0.5, seed=1), nn.GATConv(8, 2, heads=3, seed=9))
    c.load_state_dict(state)
    a.eval()
    c.eval()
    np.testing.assert_array_equal(a(g, x).data, c(g, x).data)
    with pytest.raises(ValueError, match="state: does not match"):
        c.load_state_dict({"x": np.zeros(1)})
    bad = dict(state)
    bad["0.bias"] = np.zeros((1, 9))
    with pytest.raises(ValueError, match="0.bias has shape"):
        c.load_state_dict(bad)
    with pytest.raises(TypeError, match="layers"):
        nn.Sequential(nn.ReLU(), "relu")
    with pytest.raises(ValueError, match="x: expected shape"):
        nn.Linear(3, 2)(np.ones((2, 4)))


def test_embedding_module():
    emb = nn.Embedding(20, 4, seed=0)
    out = emb([1, 2, 2])
    assert out.shape == (3, 4)
    ag.sum(out).backward()
    assert isinstance(emb.weight.grad, ag.RowSparseGrad)
    assert emb().shape == (20, 4)


def test_gcn_learns_karate_factions():
    ds = datasets.karate_club()
    g, y = ds.graph, ds.labels
    x = np.eye(34, dtype=np.float32)
    model = nn.Sequential(nn.GCNConv(34, 16, seed=0), nn.ReLU(), nn.GCNConv(16, 2, seed=1))
    train = np.array([0, 33])  # one labelled member per faction (the instructor and the officer)
    onehot = np.eye(2, dtype=np.float32)[y[train]]
    first = None
    for step in range(100):
        model.zero_grad()
        logp = ag.log_softmax(model(g, x))
        picked = ag.mul(ag.embedding(logp, train), onehot)
        loss = ag.mul(ag.sum(picked), -1.0 / len(train))
        loss.backward()
        first = loss.item() if first is None else first
        for p in model.parameters():
            p.data -= 0.05 * p.grad
    assert loss.item() < first
    model.eval()
    acc = (model(g, x).data.argmax(1) == y).mean()
    assert acc >= 0.8, acc  # semi-supervised from 2 labels, as in Kipf & Welling's karate demo


def _gcn_matrix(g):
    """Kipf & Welling's D̃^-1/2 (A + I) D̃^-1/2 as a dense float64 matrix (a plain NumPy oracle)."""
    A = np.zeros((g.num_nodes, g.num_nodes))
    for i in range(g.num_nodes):
        for p in range(g.indptr[i], g.indptr[i + 1]):
            A[i, g.indices[p]] += 1.0 if g.weights is None else g.weights[p]
    A += np.eye(g.num_nodes)
    r = A.sum(axis=1) ** -0.5
    return r[:, None] * A * r[None, :]


def _mean_matrix(g):
    A = np.zeros((g.num_nodes, g.num_nodes))
    for i in range(g.num_nodes):
        for p in range(g.indptr[i], g.indptr[i + 1]):
            A[i, g.indices[p]] += 1.0
    deg = A.sum(axis=1)
    return np.divide(A, deg[:, None], out=np.zeros_like(A), where=deg[:, None] > 0)


@pytest.mark.parametrize("kind", ["gcn", "sage"])
@pytest.mark.parametrize("fout", [2, 4, 7])  # narrows (propagate X W), keeps and widens the width (propagate X)
def test_graph_layers_match_the_dense_formula_in_either_order(small, kind, fout, monkeypatch):
    """GCNConv / SAGEConv propagate on the narrower side (``nn._aggregate_first``); the output and every
    gradient, for a constant input and for one that needs its gradient, equal the dense formula's."""
    g, x = small
    layer = (nn.GCNConv if kind == "gcn" else nn.SAGEConv)(4, fout, seed=2, dtype=np.float64)
    assert nn._aggregate_first(x, layer.lin if kind == "gcn" else layer.lin_neigh) == (fout >= 4)
    G = np.random.default_rng(5).standard_normal((10, fout))
    if kind == "gcn":
        M, W, b = _gcn_matrix(g), layer.lin.weight.data, layer.bias.data
        want = M @ x @ W + b
        want_W, want_x = (M @ x).T @ G, M.T @ G @ W.T
    else:
        M, Ws, Wn, b = _mean_matrix(g), layer.lin_self.weight.data, layer.lin_neigh.weight.data, layer.lin_self.bias.data
        want = x @ Ws + M @ x @ Wn + b
        want_W, want_x = (M @ x).T @ G, G @ Ws.T + M.T @ G @ Wn.T
    calls = []
    real = ag.gcn_propagate if kind == "gcn" else ag.spmm
    monkeypatch.setattr(ag, real.__name__, lambda *a, **k: calls.append(a[1].shape[1]) or real(*a, **k))
    out = layer(g, x)  # a constant input
    np.testing.assert_allclose(out.data, want, rtol=1e-12, atol=1e-12)
    assert calls == [min(4, fout)]  # one sparse product, over the narrower width
    out.backward(G)
    wgrad = layer.lin.weight.grad if kind == "gcn" else layer.lin_neigh.weight.grad
    np.testing.assert_allclose(wgrad, want_W, rtol=1e-12, atol=1e-12)
    layer.zero_grad()
    xt = ag.Tensor(x.copy(), requires_grad=True)
    layer(g, xt).backward(G)
    np.testing.assert_allclose(xt.grad, want_x, rtol=1e-12, atol=1e-12)


def test_gcn_layer_keeps_a_sparse_input_sparse(small):
    """A sparse feature matrix is multiplied first (``Â (X W)``) whatever the widths: it is never densified."""
    import scipy.sparse as sp

    g, x = small
    x[np.abs(x) < 0.8] = 0.0
    layer = nn.GCNConv(4, 7, seed=2, dtype=np.float64)
    assert not nn._aggregate_first(sp.csr_matrix(x), layer.lin)
    np.testing.assert_allclose(layer(g, sp.csr_matrix(x)).data, layer(g, x).data, rtol=1e-12, atol=1e-12)


def test_gcn_cached_input_is_reused_while_graph_and_array_stay(small, monkeypatch):
    """``GCNConv(cached=True)`` runs ``Â X`` once for a constant input; another graph, another array, an input
    that needs its gradient, or :meth:`clear_cache` make it propagate again (with the new values)."""
    g, x = small
    calls = []
    real = ag.gcn_propagate
    monkeypatch.setattr(ag, "gcn_propagate", lambda *a: calls.append(1) or real(*a))
    layer = nn.GCNConv(4, 6, seed=2, dtype=np.float64, cached=True)
    plain = nn.GCNConv(4, 6, seed=2, dtype=np.float64)
    want = plain(g, x).data
    for _ in range(3):
        np.testing.assert_array_equal(layer(g, x).data, want)
    assert len(calls) == 1 + 1  # plain's call, then the cached layer's one
    layer(g, ag.Tensor(x.copy(), requires_grad=True))  # needs its gradient: never cached
    layer(g, x.copy())  # another array: propagates again, and keeps that one
    assert len(calls) == 4
    g2 = Graph.from_edges([0, 1], [1, 2], num_nodes=10)
    np.testing.assert_allclose(layer(g2, x).data, plain(g2, x).data, rtol=1e-12)
    x[0] += 1.0  # changed in place: the identity-keyed cache needs clear_cache
    layer(g, x)
    layer.clear_cache()
    np.testing.assert_allclose(layer(g, x).data, plain(g, x).data, rtol=1e-12)
    layer.zero_grad()
    out = layer(g, x)
    out.backward(np.ones(out.shape))
    np.testing.assert_allclose(layer.lin.weight.grad, (_gcn_matrix(g) @ x).T @ np.ones(out.shape), rtol=1e-12)
