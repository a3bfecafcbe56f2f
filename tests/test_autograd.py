"""Every autograd op against central finite differences in float64 (and forward values against NumPy)."""
import numpy as np
import pytest

from fastgnn import Graph
from fastgnn import autograd as ag
from tests import reference as ref


def numeric_grad(f, arrays, k, eps=1e-6):
    x = arrays[k]
    g = np.zeros_like(x)
    it = np.nditer(x, flags=["multi_index"])
    for _ in it:
        i = it.multi_index
        old = x[i]
        x[i] = old + eps
        fp = f(*arrays)
        x[i] = old - eps
        fm = f(*arrays)
        x[i] = old
        g[i] = (fp - fm) / (2 * eps)
    return g


def check(op, *arrays, rtol=1e-5, atol=1e-7, weights_seed=0):
    """Loss = Σ W ⊙ op(...) with a fixed random W, so every output entry matters."""
    arrays = [np.array(a, np.float64) for a in arrays]
    out_shape = op(*[ag.Tensor(a) for a in arrays]).shape
    W = np.random.default_rng(weights_seed).standard_normal(out_shape)

    def scalar(*arrs):
        return float((op(*[ag.Tensor(a) for a in arrs]).data * W).sum())

    ts = [ag.Tensor(a.copy(), requires_grad=True) for a in arrays]
    y = op(*ts)
    ag.sum(ag.mul(y, W)).backward()
    for k, t in enumerate(ts):
        num = numeric_grad(scalar, [a.copy() for a in arrays], k)
        got = t.grad.to_dense() if isinstance(t.grad, ag.RowSparseGrad) else t.grad
        np.testing.assert_allclose(got, num, rtol=rtol, atol=atol, err_msg=f"input {k}")


@pytest.fixture
def graph(rng):
    src, dst = rng.integers(0, 7, 14), rng.integers(0, 7, 14)
    return Graph.from_edges(src, dst, num_nodes=8, weights=rng.random(14) + 0.2)  # node 7 isolated


def test_elementwise_and_matmul(rng):
    A, B = rng.standard_normal((4, 3)), rng.standard_normal((3, 5))
    bias = rng.standard_normal((1, 5))
    check(ag.matmul, A, B)
    check(lambda a, b: ag.add(ag.matmul(a, b), ag.Tensor(bias)), A, B)
    check(ag.add, rng.standard_normal((4, 5)), bias)  # bias broadcasting
    check(ag.sub, rng.standard_normal((4, 5)), bias)
    check(ag.mul, rng.standard_normal((4, 5)), rng.standard_normal((4, 1)))
    check(ag.neg, A)
    check(lambda a: a * 2.0 + 1.0 - a @ np.ones((3, 3)), A)


@pytest.mark.parametrize("op", [ag.relu, lambda x: ag.leaky_relu(x, 0.1), lambda x: ag.elu(x, 1.3),
                                ag.softmax, ag.log_softmax, ag.l2_normalize, lambda x: ag.mean(x, axis=0),
                                lambda x: ag.mean(x), lambda x: ag.sum(x, axis=1), lambda x: ag.reshape(x, (2, 6))])
def test_unary_ops(rng, op):
    x = rng.standard_normal((3, 4))
    x[np.abs(x) < 1e-3] = 0.5  # keep away from the kinks of relu-like ops
    check(op, x)


def test_forward_values(rng):
    x = rng.standard_normal((3, 4))
    np.testing.assert_allclose(ag.softmax(ag.Tensor(x)).data.sum(1), 1.0)
    np.testing.assert_allclose(ag.log_softmax(ag.Tensor(x)).data, np.log(ag.softmax(ag.Tensor(x)).data))
    np.testing.assert_allclose(np.linalg.norm(ag.l2_normalize(ag.Tensor(x)).data, axis=1), 1.0)
    z = ag.l2_normalize(ag.Tensor(np.zeros((2, 3)), requires_grad=True))
    ag.sum(z).backward()
    assert np.isfinite(z.data).all()
    big = ag.softmax(ag.Tensor(np.array([[1000.0, 0.0]]))).data
    assert np.isfinite(big).all()
    np.testing.assert_allclose(ag.elu(ag.Tensor(np.array([-1.0, 2.0]))).data, [np.expm1(-1.0), 2.0])


def test_concat(rng):
    check(lambda a, b: ag.concat([a, b], axis=1), rng.standard_normal((3, 2)), rng.standard_normal((3, 4)))
    check(lambda a, b: ag.concat([a, b], axis=0), rng.standard_normal((2, 3)), rng.standard_normal((1, 3)))


def test_dropout_is_seeded_and_exact(rng):
    x = rng.standard_normal((50, 6))
    a = ag.dropout(ag.Tensor(x), 0.3, np.random.default_rng(5)).data
    b = ag.dropout(ag.Tensor(x), 0.3, np.random.default_rng(5)).data
    np.testing.assert_array_equal(a, b)
    kept = a != 0
    np.testing.assert_allclose(a[kept], x[kept] / 0.7)
    assert 0.5 < kept.mean() < 0.9
    check(lambda t: ag.dropout(t, 0.4, np.random.default_rng(1)), x[:3])
    assert ag.dropout(ag.Tensor(x), 0.3, None, training=False).data is not None
    with pytest.raises(TypeError, match="rng"):
        ag.dropout(ag.Tensor(x), 0.3, 42)
    with pytest.raises(ValueError, match="p"):
        ag.dropout(ag.Tensor(x), 1.0, np.random.default_rng(0))


@pytest.mark.parametrize("norm", [None, "sym", "rw"])
@pytest.mark.parametrize("directed", [False, True])
def test_spmm_op(rng, norm, directed):
    src, dst = rng.integers(0, 6, 15), rng.integers(0, 6, 15)
    g = Graph.from_edges(src, dst, num_nodes=7, weights=rng.random(15) + 0.1, symmetrize=not directed)
    x = rng.standard_normal((7, 3))
    y = ag.spmm(g, ag.Tensor(x), norm=norm)
    np.testing.assert_allclose(y.data, ref.spmm_dense(g.to_scipy().toarray(), x, norm), rtol=1e-10, atol=1e-12)
    check(lambda t: ag.spmm(g, t, norm=norm), x)


@pytest.mark.parametrize("directed", [False, True])
def test_gcn_propagate(rng, directed):
    src, dst = rng.integers(0, 6, 12), rng.integers(0, 6, 12)
    g = Graph.from_edges(src, dst, num_nodes=7, symmetrize=not directed)
    x = rng.standard_normal((7, 3))
    A = g.to_scipy().toarray() + np.eye(7)
    d = A.sum(1) ** -0.5
    want = (d[:, None] * A * d[None, :]) @ x
    np.testing.assert_allclose(ag.gcn_propagate(g, ag.Tensor(x)).data, want, rtol=1e-10)
    check(lambda t: ag.gcn_propagate(g, t), x)


def test_gat_aggregate(graph, rng):
    n, H, F = graph.num_nodes, 2, 3
    h = rng.standard_normal((n, H, F))
    a_s, a_d = rng.standard_normal((H, F)), rng.standard_normal((H, F))
    out = ag.gat_aggregate(graph, ag.Tensor(h), ag.Tensor(a_s), ag.Tensor(a_d), 0.2).data
    # reference: a plain loop over nodes and heads
    A = graph.to_scipy().toarray() > 0
    want = np.zeros_like(h)
    for i in range(n):
        nb = list(np.flatnonzero(A[i])) + [i]
        for k in range(H):
            z = np.array([h[j, k] @ a_s[k] + h[i, k] @ a_d[k] for j in nb])
            e = np.where(z > 0, z, 0.2 * z)
            al = np.exp(e - e.max()) / np.exp(e - e.max()).sum()
            want[i, k] = (al[:, None] * h[nb, k]).sum(0)
    np.testing.assert_allclose(out, want, rtol=1e-10, atol=1e-12)
    check(lambda a, b, c: ag.gat_aggregate(graph, a, b, c, 0.2), h, a_s, a_d, rtol=1e-4, atol=1e-6)


def test_embedding_row_sparse_gradient(rng):
    table = rng.standard_normal((6, 3))
    ids = np.array([1, 4, 1, 0])
    check(lambda t: ag.embedding(t, ids), table)
    t = ag.Tensor(table, requires_grad=True)
    ag.sum(ag.embedding(t, ids)).backward()
    assert isinstance(t.grad, ag.RowSparseGrad)
    rows, vals = t.grad.coalesce()
    assert rows.tolist() == [0, 1, 4] and np.allclose(vals[1], 2.0)
    with pytest.raises(ValueError, match="ids: index 6 out of range"):
        ag.embedding(t, [6])


def test_from_gradients_and_shared_inputs(rng):
    x = rng.standard_normal((4, 2))
    # loss = Σ x², gradient 2x, entered as a kernel result; used twice so gradients accumulate
    t = ag.Tensor(x.copy(), requires_grad=True)
    l1 = ag.from_gradients((x ** 2).sum(), [t], [2 * x])
    l2 = ag.mul(ag.sum(t), 3.0)
    ag.add(ag.mul(l1, 0.5), l2).backward()
    np.testing.assert_allclose(t.grad, x + 3.0)
    with pytest.raises(ValueError, match="grads"):
        ag.from_gradients(1.0, [t], [np.zeros((3, 2))])


def test_backward_errors():
    t = ag.Tensor(np.ones((2, 2)), requires_grad=True)
    with pytest.raises(ValueError, match="grad: backward of a non-scalar"):
        ag.relu(t).backward()
    with pytest.raises(ValueError, match="does not require a gradient"):
        ag.Tensor(np.ones(2)).backward()
    with pytest.raises(ValueError, match="matmul"):
        ag.matmul(t, ag.Tensor(np.ones((3, 2))))


def test_matmul_with_sparse_constant_features(rng):
    import scipy.sparse as sp

    A = sp.random(6, 5, density=0.3, random_state=1, format="csr")
    B = rng.standard_normal((5, 3))
    check(lambda b: ag.matmul(A, b), B)
    np.testing.assert_allclose(ag.matmul(A, ag.Tensor(B)).data, A.toarray() @ B)
    with pytest.raises(ValueError, match="matmul"):
        ag.matmul(A, ag.Tensor(np.ones((4, 2))))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(1,), (1, 1), (7, 3), (300, 129), (2, 3, 4)])
def test_activation_kernels_match_reference(rng, dtype, shape):
    x = (rng.standard_normal(shape) * 4).astype(dtype)
    flat = x.reshape(-1)
    flat[:4] = [np.nan, -0.0, -100.0, -0.5][:flat.size]
    g = rng.standard_normal(shape).astype(dtype)
    t = ag.Tensor(x, requires_grad=True)
    y = ag.relu(t)
    np.testing.assert_array_equal(y.data, ref.relu(x))
    y.backward(g)
    np.testing.assert_array_equal(t.grad, ref.relu_grad(g, x))
    t = ag.Tensor(x, requires_grad=True)
    y = ag.elu(t, 1.3)
    want, deriv = ref.elu(x, 1.3)
    if dtype == np.float64:  # libm's expm1, as NumPy
        np.testing.assert_array_equal(y.data, want)
    else:  # the vectorised expm1: a few ulp
        np.testing.assert_allclose(y.data, want, rtol=5e-7, atol=1e-37)
    assert y.data.dtype == dtype and np.isnan(y.data.reshape(-1)[0])
    y.backward(g)
    # deriv = neg + alpha cancels for very negative x: compare at the scale of alpha * |g|
    np.testing.assert_allclose(t.grad, g * deriv, rtol=0, atol=(2e-6 if dtype == np.float32 else 1e-15) * np.abs(g).max())


def test_sparse_matrix_column_scale_and_transpose(rng):
    import scipy.sparse as sp

    M = sp.random(9, 6, density=0.4, random_state=2, format="csr")
    M.data = M.data.astype(np.float32)
    S = ag.SparseMatrix(M)
    keep = (rng.random(6) > 0.4).astype(np.float32)
    Sk = S.scale_columns(keep)
    assert S.nnz == M.nnz and Sk.shape == (9, 6) and ag._is_sparse(Sk)
    dense = M.toarray() * keep[None, :]
    np.testing.assert_array_equal(Sk.tocsr().toarray(), dense)
    B = rng.standard_normal((6, 4)).astype(np.float32)
    G = rng.standard_normal((9, 4)).astype(np.float32)
    for A, want in ((S, M.toarray()), (Sk, dense)):
        b = ag.Tensor(B, requires_grad=True)
        y = ag.matmul(A, b)
        np.testing.assert_allclose(y.data, want @ B, rtol=1e-5, atol=1e-6)
        y.backward(G)
        np.testing.assert_allclose(b.grad, want.T @ G, rtol=1e-5, atol=1e-6)
    assert "T" in S._shared  # the transpose is built once and shared with the scaled copy
    check(lambda b: ag.matmul(ag.SparseMatrix(M.astype(np.float64)).scale_columns(keep.astype(np.float64)), b),
          B.astype(np.float64))
