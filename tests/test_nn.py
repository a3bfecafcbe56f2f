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
