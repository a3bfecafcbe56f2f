"""CUDA twins of the mining kernels, checked against the NumPy references on tiny inputs."""
import numpy as np
import pytest

from fastgnn import Graph
from fastgnn.mining import GraphHardNegativeMiner, HardNegativeMiner, _call_seed, k_hop
from tests import reference_mining as ref


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


def _graph(rng, n, m, directed=False):
    return Graph.from_edges(rng.integers(0, n, m), rng.integers(0, n, m), num_nodes=n, symmetrize=not directed)


@pytest.mark.parametrize("directed", [False, True])
def test_k_hop(backend, rng, directed):
    g = _graph(rng, 20, 30, directed)
    sources = rng.integers(0, 20, 5)
    for k, min_hops in [(1, 1), (2, 2), (3, 0)]:
        off, nodes = k_hop(g, sources, k, min_hops, backend=backend)
        ro, rn = ref.k_hop_ref(g.indptr, g.indices, sources, k, min_hops)
        np.testing.assert_array_equal(off, ro)
        np.testing.assert_array_equal(nodes, rn)


def test_k_hop_batches_and_blocks(rng):
    from fastgnn import backend as b

    if not b.cuda_available():
        pytest.skip("CUDA backend not usable here")
    from fastgnn.kernels.cuda import mining as kc

    g = _graph(rng, 15, 25)
    sources = rng.integers(0, 15, 9).astype(g.indices.dtype)
    ro, rn = ref.k_hop_ref(g.indptr, g.indices, sources, 2, 1)
    # scratch for 4 sources per batch, 2 warps (sources) per block: several batches and blocks
    per = ((15 >> 6) + 1) * 8 + 15 * g.indices.dtype.itemsize
    from numba import cuda

    dev = [cuda.to_device(a) for a in (g.indptr, g.indices, sources)]
    off, nodes = kc.launch_k_hop(*dev, 2, 1, threads=64, scratch_bytes=4 * per)  # device arrays in and out
    np.testing.assert_array_equal(off.copy_to_host(), ro)
    np.testing.assert_array_equal(nodes.copy_to_host(), rn)


# small: blocks of 5 and 4 pool rows. wide: blocks of 45 and 44 rows (two 32-lane sweeps of the device top-K,
# the second partial), D = 20 (two shared-memory tiles of the device product, the second partial) and 6 anchors
# (partial tiles of anchors too)
MINER_SHAPES = {"small": (5, 13, 3, 4, 5, 2, 4), "wide": (6, 70, 20, 5, 45, 3, 7)}


@pytest.mark.parametrize("shape", sorted(MINER_SHAPES))
@pytest.mark.parametrize("strategy", ["hardest", "semihard", "weighted", "mixed"])
def test_miner(backend, rng, strategy, shape):
    B, P, D, K, block, E, seed = MINER_SHAPES[shape]
    A = rng.normal(size=(B, D))
    Pos = rng.normal(size=(B, D))
    pool = rng.normal(size=(P, D))
    al = rng.integers(0, 2, B)
    pl = rng.integers(0, 2, P)
    ex = rng.integers(-1, P, (B, E))
    m = HardNegativeMiner(strategy, num_negatives=K, seed=seed, block_size=block, backend=backend)
    got = m.mine(A, Pos, pool, anchor_labels=al, pool_labels=pl, exclude=ex)
    want = ref.hard_negatives_ref(A, Pos, pool, strategy, K, 1.0, 0.5, _call_seed(seed, 0), al, pl, ex)
    np.testing.assert_array_equal(got, want)
    got = HardNegativeMiner(strategy, num_negatives=K, seed=seed, block_size=block - 1, backend=backend).mine(
        A, Pos, pool, exclude=[1, 2])
    want = ref.hard_negatives_ref(A, Pos, pool, strategy, K, 1.0, 0.5, _call_seed(seed, 0), exclude=[1, 2])
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("strategy", ["hardest", "weighted", "mixed"])
def test_graph_miner(backend, rng, strategy):
    g = _graph(rng, 16, 24)
    E = rng.normal(size=(16, 3))
    anchors = rng.integers(0, 16, 4)
    m = GraphHardNegativeMiner(hops=3, num_negatives=3, seed=2, strategy=strategy, backend=backend)
    got = m.mine(E, g, anchors)
    want = ref.graph_hard_negatives_ref(E, g.indptr, g.indices, anchors, 3, 2, strategy, 3, seed=_call_seed(2, 0))
    np.testing.assert_array_equal(got, want)


def test_mixed_without_hardest_part(backend, rng):
    # hard_ratio=0: a zero-width hardest heap on the device, all K drawn uniformly
    B, P, D, K = 4, 11, 3, 3
    A = rng.normal(size=(B, D))
    pool = rng.normal(size=(P, D))
    got = HardNegativeMiner("mixed", num_negatives=K, hard_ratio=0.0, seed=4, block_size=5, backend=backend).mine(
        A, None, pool)
    want = ref.hard_negatives_ref(A, None, pool, "mixed", K, 1.0, 0.0, _call_seed(4, 0))
    np.testing.assert_array_equal(got, want)
