"""CUDA twin of spmm, run under NUMBA_ENABLE_CUDASIM=1 (make test-cuda) or on a real GPU."""
import numpy as np
import pytest
from numba import cuda

from fastgnn import Graph, backend
from fastgnn.graph import spmm
from tests import reference as ref

cuda_ok, why = backend.cuda_status()
pytestmark = pytest.mark.skipif(not cuda_ok, reason=f"CUDA backend not usable: {why}")


@pytest.mark.parametrize("norm", [None, "sym", "rw"])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("d", [37, 128, 300])  # a partial group of 128 columns; one full group; two and a part
def test_spmm_cuda_matches_cpu_and_reference(rng, norm, weighted, d):
    n, e = 120, 300  # the last two nodes isolated; several rows per block on a GPU
    src, dst = rng.integers(2, n - 2, e), rng.integers(0, n - 2, e)
    # node 0 gets 69 out-arcs and node 1 gets 33: rows of three and two chunks of 32 arcs, each with an odd number
    # of arcs in its last chunk (the warp takes two arcs per step, then the last one alone)
    src = np.concatenate([src, np.zeros(69, np.int64), np.ones(33, np.int64)])
    dst = np.concatenate([dst, rng.choice(np.arange(2, n - 2), 69, replace=False),
                          rng.choice(np.arange(2, n - 2), 33, replace=False)])
    w = rng.random(src.size) + 0.1 if weighted else None
    g = Graph.from_edges(src, dst, num_nodes=n, weights=w, symmetrize=False)
    assert np.diff(g.indptr)[:2].tolist() == [69, 33]
    X = rng.standard_normal((n, d)).astype(np.float32)
    Y = spmm(g, X, norm=norm, backend="cuda")
    assert isinstance(Y, np.ndarray) and Y.dtype == np.float32
    np.testing.assert_allclose(Y, spmm(g, X, norm=norm, backend="cpu"), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(Y, ref.spmm_dense(g.to_scipy().toarray(), X, norm), rtol=1e-5, atol=1e-5)
    assert np.all(Y[-2:] == 0)


def test_spmm_cuda_float64_is_summed_in_float64(rng):
    n, d = 40, 130
    g = Graph.from_edges(rng.integers(0, n, 400), rng.integers(0, n, 400), num_nodes=n, weights=rng.random(400) + 0.1)
    X = rng.standard_normal((n, d))
    Y = spmm(g, X, norm="sym", backend="cuda")
    assert Y.dtype == np.float64
    np.testing.assert_allclose(Y, ref.spmm_dense(g.to_scipy().toarray(), X, "sym"), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("d", [37, 300])
def test_spmm_cuda_self_loop_term_matches_cpu(rng, d):
    """The device ``spmm_scaled(..., self_scale)`` (a GCN's ``D̃^-1/2 (A + I) D̃^-1/2 X`` in one pass) against the
    CPU kernel, in full and partial groups of 128 columns."""
    from fastgnn import _autograd_device as ad
    from fastgnn.graph import spmm_scaled

    n = 60
    g = Graph.from_edges(rng.integers(0, n, 300), rng.integers(0, n, 300), num_nodes=n)
    X = rng.standard_normal((n, d)).astype(np.float32)
    r, c, t = (rng.random(n).astype(np.float32) + 0.5 for _ in range(3))
    got = ad.spmm_scaled(g, cuda.to_device(X), cuda.to_device(r), cuda.to_device(c), cuda.to_device(t))
    np.testing.assert_allclose(got.copy_to_host(), spmm_scaled(g, X, r, c, self_scale=t), rtol=1e-5, atol=1e-5)
    got = ad.spmm_scaled(g, cuda.to_device(X), cuda.to_device(r), cuda.to_device(c))
    np.testing.assert_allclose(got.copy_to_host(), spmm_scaled(g, X, r, c), rtol=1e-5, atol=1e-5)


def test_spmm_cuda_device_array_in_device_array_out(rng):
    g = Graph.from_edges([0, 1, 2], [1, 2, 3])
    X = rng.standard_normal((4, 3))
    dX = cuda.to_device(X)
    dY = spmm(g, dX, norm="sym")
    assert hasattr(dY, "copy_to_host")
    np.testing.assert_allclose(dY.copy_to_host(), spmm(g, X, norm="sym", backend="cpu"), rtol=1e-12)
    with pytest.raises(ValueError, match="X: expected a 2-d device array with 4 rows"):
        spmm(g, cuda.to_device(np.ones((3, 3))))
    with pytest.raises(ValueError, match="backend 'cuda'"):
        spmm(g, dX, backend="cpu")


# The simulator runs the uint64 hash on NumPy scalars, which warn on the wrap-around the hash relies on.
@pytest.mark.filterwarnings("ignore:overflow encountered in scalar:RuntimeWarning")
def test_rng_twins_give_the_same_bits():
    from fastgnn.kernels.cpu import rng as crng
    from fastgnn.kernels.cuda import rng as grng

    @cuda.jit
    def draw(out_u, out_i):
        i = cuda.grid(1)
        if i < out_u.size:
            out_u[i] = grng.uniform(123, 7, i)
            out_i[i] = grng.randbelow(123, 8, i, 1000)

    n = 70
    u = np.zeros(n)
    k = np.zeros(n, np.int64)
    draw[3, 32](u, k)
    np.testing.assert_array_equal(u, [crng.uniform(123, 7, i) for i in range(n)])
    np.testing.assert_array_equal(k, [crng.randbelow(123, 8, i, 1000) for i in range(n)])
