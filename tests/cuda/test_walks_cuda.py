"""CUDA twin of the walk kernel: the same walks (same bits) as the CPU and the reference."""
import numpy as np
import pytest

from fastgnn import Graph
from fastgnn.walks import _sorted_csr, random_walks
from tests import reference_walks as ref


# The simulator evaluates the counter-based hash with NumPy scalars, which warn on the (intended)
# 64-bit wrap-around.
pytestmark = pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")

@pytest.fixture(params=["cpu", "cuda"])
def backend(request):
    if request.param == "cuda":
        from fastgnn import backend as b

        if not b.cuda_available():
            pytest.skip("CUDA backend not usable here")
    return request.param


def _graph(rng, n, m, weighted, directed=False):
    w = rng.uniform(0.1, 2.0, m) if weighted else None
    return Graph.from_edges(rng.integers(0, n, m), rng.integers(0, n, m), num_nodes=n, weights=w,
                            symmetrize=not directed)


@pytest.mark.parametrize("weighted,directed", [(False, False), (True, False), (False, True)])
@pytest.mark.parametrize("p,q", [(1.0, 1.0), (0.25, 4.0)])
def test_walks_match_reference(backend, rng, weighted, directed, p, q):
    g = _graph(rng, 9, 14, weighted, directed)
    got = random_walks(g, 5, 2, p=p, q=q, seed=3, backend=backend)
    want = ref.random_walks_ref(g.indptr, g.indices, g.weights, 5, 2, p, q, 3)
    np.testing.assert_array_equal(got, want)
    assert got.dtype == np.int32 and got.flags.c_contiguous


def test_launch_spans_several_blocks(rng):
    from fastgnn import backend as b

    if not b.cuda_available():
        pytest.skip("CUDA backend not usable here")
    from fastgnn.kernels.cpu import walks as kcpu
    from fastgnn.kernels.cuda import walks as kcuda

    g = _graph(rng, 7, 12, True)
    indptr, indices, weights = _sorted_csr(g)
    cum = np.empty(weights.size)
    kcpu.row_cumsum(indptr, weights, cum)
    starts = np.array([0, 3, 6, 2, 5], np.int32)
    for second, ip, iq in [(False, 1.0, 1.0), (True, 2.0, 0.5)]:
        a = np.empty((15, 4), np.int32)
        b_ = np.empty((15, 4), np.int32)
        kcpu.random_walks(indptr, indices, cum, True, second, ip, iq, starts, 17, a)
        kcuda.launch_random_walks(indptr, indices, cum, True, second, ip, iq, starts, 17, b_, threads=4)
        np.testing.assert_array_equal(a, b_)


def test_dead_ends_and_empty(backend):
    g = Graph.from_edges([0, 1], [1, 2], num_nodes=4, symmetrize=False)
    got = random_walks(g, 4, 1, seed=0, backend=backend)
    np.testing.assert_array_equal(got, [[0, 1, 2, -1], [1, 2, -1, -1], [2, -1, -1, -1], [3, -1, -1, -1]])
    empty = Graph.from_edges([], [], num_nodes=0)
    assert random_walks(empty, 3, 2, seed=0, backend=backend).shape == (0, 3)
