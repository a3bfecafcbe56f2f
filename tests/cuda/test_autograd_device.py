"""fastgnn.autograd on device tensors (``fastgnn/_autograd_device.py``) against the same ops on host tensors.

Each case runs an op forward and backward (an explicit random output gradient) once on host arrays and once on
device arrays, and compares the values and every input's gradient. The host ops are themselves checked against
finite differences in tests/test_autograd.py, so agreement here makes the device gradients exact too. Runs under
NUMBA_ENABLE_CUDASIM=1 (make test-cuda) or on a real GPU.
"""
import numpy as np
import pytest
import scipy.sparse as sp

from fastgnn import Graph, backend
from fastgnn import autograd as ag
from fastgnn import nn
from fastgnn._check import is_device_array

cuda_ok, why = backend.cuda_status()
pytestmark = pytest.mark.skipif(not cuda_ok, reason=f"CUDA backend not usable: {why}")


def upload(x):
    from numba import cuda

    return cuda.to_device(np.array(x, order="C"))  # a 0-d array stays 0-d


def host(x):
    if isinstance(x, ag.RowSparseGrad):
        return x.to_dense()
    return x.copy_to_host() if is_device_array(x) else np.asarray(x)


def run(fn, inputs, G, device, const=()):
    """``fn(*tensors)`` forward and backward with output gradient ``G``; ``inputs`` are (array, requires_grad);
    indices in ``const`` stay host arrays in the device run (a host constant meeting device tensors)."""
    ts = [ag.Tensor(upload(x) if device and i not in const else x.copy(), requires_grad=rg)
          for i, (x, rg) in enumerate(inputs)]
    out = fn(*ts)
    assert out.on_device == device
    out.backward(upload(G) if device else G)
    for t in ts:  # each gradient sits on its tensor's side
        assert t.grad is None or is_device_array(t.grad) == t.on_device
    return out.numpy(), [None if t.grad is None else host(t.grad) for t in ts]


def check(fn, inputs, out_shape, rng, dtype, const=()):
    inputs = [(np.asarray(x, dtype), rg) for x, rg in inputs]
    G = rng.standard_normal(out_shape).astype(dtype)
    want, want_g = run(fn, inputs, G, device=False)
    got, got_g = run(fn, inputs, G, device=True, const=const)
    tol = dict(rtol=1e-5, atol=1e-5) if dtype == np.float32 else dict(rtol=1e-11, atol=1e-12)
    np.testing.assert_allclose(got, want, **tol)
    assert got.dtype == want.dtype
    for gw, gg in zip(want_g, got_g):
        assert (gw is None) == (gg is None)
        if gw is not None:
            np.testing.assert_allclose(gg, gw, **tol)


@pytest.fixture(scope="module")
def graphs():
    r = np.random.default_rng(5)
    n = 13
    src, dst = r.integers(0, n - 1, 30), r.integers(0, n - 1, 30)  # node 12 isolated
    undirected = Graph.from_edges(src, dst, num_nodes=n)
    directed = Graph.from_edges(src, dst, num_nodes=n, weights=r.random(30) + 0.5, symmetrize=False)
    return {"undirected": undirected, "directed": directed}


N, F, H = 13, 6, 3

CASES = {
    "add-row": (lambda a, b: ag.add(a, b), [((N, F), True), ((1, F), True)], (N, F)),
    "add-row-left": (lambda a, b: ag.add(b, a), [((N, F), True), ((1, F), True)], (N, F)),
    "add-same": (lambda a, b: a + b, [((N, F), True), ((N, F), True)], (N, F)),
    "sub-row": (lambda a, b: a - b, [((N, F), True), ((1, F), True)], (N, F)),
    "sub-row-left": (lambda a, b: b - a, [((N, F), True), ((1, F), True)], (N, F)),
    "mul-same": (lambda a, b: a * b, [((N, F), True), ((N, F), True)], (N, F)),
    "mul-scalar": (lambda a: 2.5 * a, [((N, F), True)], (N, F)),
    "neg": (lambda a: -a, [((N, F), True)], (N, F)),
    "matmul": (lambda a, b: a @ b, [((N, F), True), ((F, 5), True)], (N, 5)),
    "matmul-one-grad": (lambda a, b: a @ b, [((N, F), False), ((F, 5), True)], (N, 5)),
    "relu": (ag.relu, [((N, F), True)], (N, F)),
    "elu": (lambda a: ag.elu(a, 0.7), [((N, F), True)], (N, F)),
    "mean-heads": (lambda a: ag.mean(a, axis=1), [((N, H, F), True)], (N, F)),
    "reshape": (lambda a: ag.reshape(a, (N, -1)), [((N, H, F), True)], (N, H * F)),
    "leaky-relu": (lambda a: ag.leaky_relu(a, 0.1), [((N, F), True)], (N, F)),
    "l2-normalize": (ag.l2_normalize, [((N, F), True)], (N, F)),
    "l2-normalize-wide": (ag.l2_normalize, [((3, 70), True)], (3, 70)),  # three columns a lane
    "l2-normalize-3d": (ag.l2_normalize, [((N, H, F), True)], (N, H, F)),
    "l2-normalize-1d": (ag.l2_normalize, [((F,), True)], (F,)),
    "softmax": (ag.softmax, [((N, F), True)], (N, F)),
    "softmax-axis0-3d": (lambda a: ag.softmax(a, axis=0), [((N, H, F), True)], (N, H, F)),
    "log-softmax": (ag.log_softmax, [((N, F), True)], (N, F)),
    "log-softmax-middle": (lambda a: ag.log_softmax(a, axis=-2), [((N, H, F), True)], (N, H, F)),
    "concat": (lambda a, b: ag.concat([a, b], axis=1), [((N, F), True), ((N, 2), True)], (N, F + 2)),
    "concat-rows-3": (lambda a, b, c: ag.concat([a, b, c], axis=0), [((2, F), True), ((N, F), False),
                                                                       ((1, F), True)], (N + 3, F)),
    "concat-middle": (lambda a, b: ag.concat([a, b], axis=1), [((N, H, F), True), ((N, 1, F), True)],
                      (N, H + 1, F)),
    "mean-all": (ag.mean, [((N, F), True)], ()),
    "mean-last-3d": (lambda a: ag.mean(a, axis=-1), [((N, H, F), True)], (N, H)),
    "sum-rows": (lambda a: ag.sum(a, axis=0), [((N, F), True)], (F,)),
    "sum-all": (ag.sum, [((N, H, F), True)], ()),
    "sum-middle": (lambda a: ag.sum(a, axis=1), [((N, H, F), True)], (N, F)),
    # the operations without a device kernel of their own run through the host
    "sum-two-axes": (lambda a: ag.sum(a, axis=(0, 2)), [((N, H, F), True)], (H,)),
    "embedding": (lambda t: ag.embedding(t, np.array([3, 0, 3, 7])), [((N, F), True)], (4, F)),
    "embedding-2d-ids": (lambda t: ag.embedding(t, np.array([[3, 0], [3, 12], [3, 1]])), [((N, H, F), True)],
                         (3, 2, H, F)),
}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", list(CASES))
def test_op_matches_host(case, dtype, rng):
    fn, shapes, out_shape = CASES[case]
    inputs = [(rng.standard_normal(s), rg) for s, rg in shapes]
    check(fn, inputs, out_shape, rng, dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_leaky_relu_and_l2_normalize_run_on_the_device(dtype, rng, monkeypatch):
    """No host round trip (``via_host`` is not called); the edge rows as on the host: a zero row, a row of norm
    below eps but not zero (the projection dropped), a NaN row, NaN and -0.0 through leaky_relu."""
    from fastgnn import _autograd_device as _ad

    def no_host(*a, **kw):
        raise AssertionError("went through the host")

    monkeypatch.setattr(_ad, "via_host", no_host)
    x = rng.standard_normal((5, 4)).astype(dtype)
    x[1] = 0.0
    x[2] = [3e-13, -2e-13, 0.0, 1e-13]  # a norm below eps, not zero: y != 0 and the projection is dropped
    x[3, 2] = np.nan
    x[4, :2] = [-0.0, 1e-30]
    G = rng.standard_normal((5, 4)).astype(dtype)
    for fn in (ag.l2_normalize, lambda a: ag.leaky_relu(a, 0.2)):
        want, want_g = run(fn, [(x, True)], G, device=False)
        got, got_g = run(fn, [(x, True)], G, device=True)
        np.testing.assert_allclose(got, want, rtol=1e-6 if dtype == np.float32 else 1e-13, atol=0)
        np.testing.assert_allclose(got_g[0], want_g[0], rtol=1e-5 if dtype == np.float32 else 1e-12, atol=1e-7)
    leaky = ag.leaky_relu(ag.Tensor(upload(x)), 0.2).numpy()
    np.testing.assert_array_equal(leaky, x * np.where(x > 0, 1.0, 0.2).astype(dtype))  # bit for bit


def test_host_constant_meets_device_tensor(rng):
    """Node features on the host times device weights: the constant is uploaded, the weight's gradient stays
    on the device; a host tensor that needs a gradient gets a host one."""
    check(lambda x, w: x @ w, [(rng.standard_normal((N, F)), False), (rng.standard_normal((F, 4)), True)], (N, 4),
          rng, np.float32, const=(0,))
    check(lambda b, x: x + b, [(rng.standard_normal((1, F)), True), (rng.standard_normal((N, F)), True)], (N, F),
          rng, np.float64, const=(0,))


@pytest.mark.parametrize("kind", ["undirected", "directed"])
@pytest.mark.parametrize("op", ["spmm-none", "spmm-sym", "spmm-rw", "gcn", "gat"])
def test_graph_ops_match_host(graphs, kind, op, rng):
    g = graphs[kind]
    if op == "gcn":
        fn, shapes, out = (lambda x: ag.gcn_propagate(g, x)), [((N, F), True)], (N, F)
    elif op == "gat":
        fn = lambda h, s, t: ag.gat_aggregate(g, h, s, t, 0.2)  # noqa: E731
        shapes, out = [((N, 2, 5), True), ((2, 5), True), ((2, 5), True)], (N, 2, 5)
    else:
        norm = None if op == "spmm-none" else op.split("-")[1]
        fn, shapes, out = (lambda x: ag.spmm(g, x, norm=norm)), [((N, H, F), True)], (N, H, F)
    for dtype in (np.float32, np.float64):
        check(fn, [(rng.standard_normal(s), rg) for s, rg in shapes], out, rng, dtype)


@pytest.mark.parametrize("masked", [False, True])
def test_sparse_features_product(masked, rng):
    X = sp.random(N, 9, density=0.3, random_state=3, format="csr", dtype=np.float64)
    M = ag.SparseMatrix(X)
    if masked:
        M = M.scale_columns((rng.random(9) > 0.4).astype(np.float64))
    for dtype in (np.float32, np.float64):
        check(lambda w: ag.matmul(M, w), [(rng.standard_normal((9, 4)), True)], (N, 4), rng, dtype)


def test_dropout_draws_like_the_host():
    x = np.random.default_rng(1).standard_normal((N, F)).astype(np.float32)
    G = np.ones((N, F), np.float32)
    want, gw = run(lambda t: ag.dropout(t, 0.4, np.random.default_rng(9)), [(x, True)], G, device=False)
    got, gg = run(lambda t: ag.dropout(t, 0.4, np.random.default_rng(9)), [(x, True)], G, device=True)
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(gg[0], gw[0])
    assert (want == 0).any() and (want != 0).any()


def test_from_gradients_scales_device_gradients(rng):
    Z = rng.standard_normal((N, F)).astype(np.float32)
    dZ = rng.standard_normal((N, F)).astype(np.float32)
    t = ag.Tensor(upload(Z), requires_grad=True)
    loss = ag.mul(ag.from_gradients(1.5, [t], [upload(dZ)]), 3.0)  # a host scalar over a device input
    assert not loss.on_device and loss.item() == pytest.approx(4.5)
    loss.backward()
    np.testing.assert_allclose(host(t.grad), 3.0 * dZ, rtol=1e-6)
    loss2 = ag.from_gradients(2.0, [t], [upload(dZ)])
    loss2.backward()  # accumulates into the device gradient in place
    np.testing.assert_allclose(host(t.grad), 4.0 * dZ, rtol=1e-6)


def test_device_errors_name_the_problem():
    a = ag.Tensor(upload(np.ones((3, 4), np.float32)), requires_grad=True)
    with pytest.raises(ValueError, match=r"add: device tensors of shapes \(3, 4\) and \(3, 1\)"):
        ag.add(a, ag.Tensor(upload(np.ones((3, 1), np.float32))))
    with pytest.raises(TypeError, match="mul: device operands of different dtypes"):
        ag.mul(a, ag.Tensor(upload(np.ones((3, 4), np.float64))))
    with pytest.raises(TypeError, match="data: expected float32 or float64, got int64"):
        ag.Tensor(upload(np.ones(3, np.int64)))


@pytest.mark.parametrize("layer", ["gcn", "gcn-widen", "sage", "sage-widen", "gat", "gat-mean", "linear-elu"])
def test_modules_on_the_device_match_the_host(graphs, layer, rng):
    """``Module.to("cuda")``: a two-layer encoder's output and parameter gradients match the host module's
    (``-widen``: the first layer widens, so it propagates its input before it multiplies)."""
    g = graphs["undirected"]
    make = {
        "gcn": lambda: nn.Sequential(nn.GCNConv(F, 5, seed=1), nn.ReLU(), nn.GCNConv(5, 3, seed=2)),
        "gcn-widen": lambda: nn.Sequential(nn.GCNConv(F, 8, seed=1), nn.ReLU(), nn.GCNConv(8, 3, seed=2)),
        "sage": lambda: nn.Sequential(nn.SAGEConv(F, 5, seed=1), nn.ReLU(), nn.SAGEConv(5, 3, seed=2)),
        "sage-widen": lambda: nn.Sequential(nn.SAGEConv(F, 8, seed=1), nn.ReLU(), nn.SAGEConv(8, 3, seed=2)),
        "gat": lambda: nn.Sequential(nn.GATConv(F, 2, heads=2, seed=1), nn.ELU(), nn.GATConv(4, 3, seed=2)),
        "gat-mean": lambda: nn.Sequential(nn.GATConv(F, 3, heads=2, concat=False, seed=1)),
        "linear-elu": lambda: nn.Sequential(nn.Linear(F, 5, seed=1), nn.ELU(0.5), nn.Linear(5, 3, seed=2)),
    }[layer]
    X = rng.standard_normal((N, F)).astype(np.float32)
    cpu, dev = make(), make().to("cuda")
    assert all(p.on_device for p in dev.parameters())
    G = rng.standard_normal((N, 3)).astype(np.float32)
    call = (lambda m, x: m(g, x)) if layer != "linear-elu" else (lambda m, x: m[2](m[1](m[0](x))))
    out_c = call(cpu, X)
    out_c.backward(G)
    out_d = call(dev, upload(X))
    out_d.backward(upload(G))
    np.testing.assert_allclose(out_d.numpy(), out_c.numpy(), rtol=1e-5, atol=1e-5)
    for pc, pd in zip(cpu.parameters(), dev.parameters()):
        np.testing.assert_allclose(host(pd.grad), pc.grad, rtol=1e-4, atol=1e-5)
    state = dev.state_dict()  # host copies of the device parameters
    assert all(type(v) is np.ndarray for v in state.values())
    dev.to("cpu")
    assert not any(p.on_device for p in dev.parameters())
    for k, v in cpu.state_dict().items():
        np.testing.assert_array_equal(state[k], v)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_axis_ops_run_on_the_device(dtype, rng, monkeypatch):
    """sum / mean / softmax / log_softmax / concat take no host round trip; their edge cases match the host: a
    row with -inf and +inf, a NaN row, large values (no overflow: max-shifted), an empty axis (sum 0, mean NaN),
    a host tensor in a device concat, and a bad axis named in the error."""
    from fastgnn import _autograd_device as _ad

    def no_host(*a, **kw):
        raise AssertionError("went through the host")

    monkeypatch.setattr(_ad, "via_host", no_host)
    x = rng.standard_normal((5, 4)).astype(dtype)
    x[1] = [-np.inf, 0.0, 1.0, 2.0]
    x[2, 1] = np.nan
    x[3] = [1000.0, 999.0, -1000.0, 1000.0]
    G = rng.standard_normal((5, 4)).astype(dtype)
    tol = dict(rtol=1e-5, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-14)
    for fn in (ag.softmax, ag.log_softmax, lambda a: ag.softmax(a, axis=0)):
        with np.errstate(invalid="ignore"):
            want, want_g = run(fn, [(x, True)], G, device=False)
        got, got_g = run(fn, [(x, True)], G, device=True)
        np.testing.assert_allclose(got, want, **tol)
        np.testing.assert_allclose(got_g[0], want_g[0], **tol)
    for fn, shape in ((lambda a: ag.sum(a, axis=1), (5,)), (lambda a: ag.mean(a, axis=0), (4,)),
                      (ag.sum, ()), (ag.mean, ())):
        g = rng.standard_normal(shape).astype(dtype)
        want, want_g = run(fn, [(x, True)], g, device=False)
        got, got_g = run(fn, [(x, True)], g, device=True)
        np.testing.assert_allclose(got, want, **tol)
        np.testing.assert_array_equal(got_g[0], want_g[0])  # a spread of g: bit for bit
    empty = np.zeros((3, 0), dtype)
    assert ag.sum(ag.Tensor(upload(empty)), axis=1).numpy().tolist() == [0, 0, 0]
    assert np.isnan(ag.mean(ag.Tensor(upload(empty)), axis=1).numpy()).all()
    assert ag.softmax(ag.Tensor(upload(empty))).numpy().shape == (3, 0)
    a = ag.Tensor(upload(x), requires_grad=True)
    b = ag.Tensor(x[:, :2].copy(), requires_grad=True)  # a host tensor in a device concat
    out = ag.concat([a, b], axis=1)
    assert out.on_device
    np.testing.assert_array_equal(out.numpy(), np.concatenate([x, x[:, :2]], axis=1))
    out.backward(upload(np.arange(30, dtype=dtype).reshape(5, 6)))
    np.testing.assert_array_equal(a.grad.copy_to_host(), np.arange(30, dtype=dtype).reshape(5, 6)[:, :4])
    assert isinstance(b.grad, np.ndarray)
    np.testing.assert_array_equal(b.grad, np.arange(30, dtype=dtype).reshape(5, 6)[:, 4:])
    with pytest.raises(ValueError, match="axis: 2 is out of range"):
        ag.softmax(a, axis=2)
    with pytest.raises(ValueError, match="differ off axis"):
        ag.concat([a, ag.Tensor(upload(np.ones((4, 4), dtype)))], axis=1)
    with pytest.raises(ValueError, match="one rank"):
        ag.concat([a, ag.Tensor(upload(np.ones(4, dtype)))], axis=0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_embedding_runs_on_the_device(dtype, rng, monkeypatch):
    """Rows gathered on the device, device or host ids; the dense gradient is ``np.add.at``'s bit for bit (many
    repeats of one id); a bad id is named before any kernel runs."""
    from fastgnn import _autograd_device as _ad

    monkeypatch.setattr(_ad, "via_host", lambda *a, **k: (_ for _ in ()).throw(AssertionError("via the host")))
    table = rng.standard_normal((9, 5)).astype(dtype)
    ids = rng.integers(0, 9, 200)
    ids[:50] = 4
    g = rng.standard_normal((200, 5)).astype(dtype)
    want = np.zeros_like(table)
    np.add.at(want, ids, g)
    for ids_in in (ids, upload(ids), upload(ids.astype(np.int32))):
        t = ag.Tensor(upload(table), requires_grad=True)
        out = ag.embedding(t, ids_in)
        np.testing.assert_array_equal(out.numpy(), table[ids])
        out.backward(upload(g))
        np.testing.assert_array_equal(t.grad.copy_to_host(), want)
    t = ag.Tensor(upload(table), requires_grad=True)
    with pytest.raises(ValueError, match="ids: index 9 out of range"):
        ag.embedding(t, upload(np.array([0, 9])))
    with pytest.raises(ValueError, match="ids"):
        ag.embedding(t, np.array([-1]))
    empty = ag.embedding(t, np.zeros(0, np.int64))
    assert empty.shape == (0, 5)
