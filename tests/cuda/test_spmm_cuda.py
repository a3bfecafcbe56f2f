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
def test_spmm_cuda_matches_cpu_and_reference(rng, norm, weighted):
    n, e, d = 23, 50, 37  # several 8-row blocks and two 32-column blocks
    src, dst = rng.integers(0, n - 2, e), rng.integers(0, n - 2, e)  # two isolated nodes
    w = rng.random(e) + 0.1 if weighted else None
    g = Graph.from_edges(src, dst, num_nodes=n, weights=w)
    X = rng.standard_normal((n, d)).astype(np.float32)
    Y = spmm(g, X, norm=norm, backend="cuda")
    assert isinstance(Y, np.ndarray) and Y.dtype == np.float32
    np.testing.assert_allclose(Y, spmm(g, X, norm=norm, backend="cpu"), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(Y, ref.spmm_dense(g.to_scipy().toarray(), X, norm), rtol=1e-5, atol=1e-5)
    assert np.all(Y[-2:] == 0)


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
