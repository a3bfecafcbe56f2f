
import numpy as np
import pytest

import fastgnn
from fastgnn import Graph
from fastgnn.mining import GraphHardNegativeMiner, HardNegativeMiner, _call_seed, k_hop
from tests import reference_mining as ref


def _random_graph(rng, n, m, directed=False):
    return Graph.from_edges(rng.integers(0, n, m), rng.integers(0, n, m), num_nodes=n, symmetrize=not directed)


def _with_threads(numba, k, fn):
    old = numba.get_num_threads()
    try:
        numba.set_num_threads(k)
        return fn()
    finally:
        numba.set_num_threads(old)


# ============================================================================================ k_hop
@pytest.mark.parametrize("n,m,directed", [(1, 0, False), (6, 5, False), (30, 45, False), (30, 60, True),
                                          (50, 20, False), (80, 300, False)])
def test_k_hop_matches_reference(rng, n, m, directed):
    g = _random_graph(rng, n, m, directed)
    sources = rng.integers(0, n, 7)
    for k in (1, 2, 3, 5):
        for min_hops in range(0, k + 1):
            off, nodes = k_hop(g, sources, k, min_hops)
            ro, rn = ref.k_hop_ref(g.indptr, g.indices, sources, k, min_hops)
            assert off.dtype == np.int64 and nodes.dtype == g.indices.dtype
            np.testing.assert_array_equal(off, ro)
            np.testing.assert_array_equal(nodes, rn)


def test_k_hop_against_scipy_and_networkx(rng):
    csgraph = pytest.importorskip("scipy.sparse.csgraph")
    nx = pytest.importorskip("networkx")
    g = _random_graph(rng, 120, 200)
    sources = np.arange(0, 120, 7)
    D = csgraph.shortest_path(g.to_scipy(), unweighted=True, indices=sources)
    G = nx.Graph()
    G.add_nodes_from(range(g.num_nodes))
    G.add_edges_from(zip(*g.edges()[:2]))
    for k, min_hops in [(1, 1), (2, 2), (3, 2), (4, 1), (2, 0)]:
        off, nodes = k_hop(g, sources, k, min_hops)
        for i, s in enumerate(sources):
            ring = nodes[off[i]:off[i + 1]]
            assert len(set(ring.tolist())) == ring.size  # no duplicates
            want = set(np.flatnonzero((D[i] >= min_hops) & (D[i] <= k)).tolist())
            assert set(ring.tolist()) == want
            lengths = nx.single_source_shortest_path_length(G, int(s), cutoff=k)
            assert want == {v for v, d in lengths.items() if d >= min_hops}


def test_k_hop_rings_nested_property():
    hyp = pytest.importorskip("hypothesis")
    st = pytest.importorskip("hypothesis.strategies")

    @hyp.settings(max_examples=30, deadline=None)
    @hyp.given(st.integers(1, 25), st.lists(st.tuples(st.integers(0, 24), st.integers(0, 24)), max_size=60),
               st.integers(1, 4))
    def check(n, edges, k):
        src = [min(u, n - 1) for u, _ in edges]
        dst = [min(v, n - 1) for _, v in edges]
        g = Graph.from_edges(src, dst, num_nodes=n)
        sources = np.arange(n)
        o1, n1 = k_hop(g, sources, k, 1)
        o2, n2 = k_hop(g, sources, k + 1, 1)
        for i in range(n):
            assert set(n1[o1[i]:o1[i + 1]]) <= set(n2[o2[i]:o2[i + 1]])
            assert i not in set(n1[o1[i]:o1[i + 1]])

    check()


def test_k_hop_default_excludes_source_and_neighbours():
    g = Graph.from_edges([0, 1, 2, 3, 0], [1, 2, 3, 4, 5])
    off, nodes = k_hop(g, [0], 3)
    assert nodes.tolist() == [2, 3]


def test_k_hop_isolated_empty_and_repeats():
    g = Graph.from_edges([0], [1], num_nodes=4)
    off, nodes = k_hop(g, [3, 3, 0], 2, 0)
    assert off.tolist() == [0, 1, 2, 4] and nodes.tolist() == [3, 3, 0, 1]
    empty = Graph.from_edges([], [], num_nodes=0)
    off, nodes = k_hop(empty, [], 2)
    assert off.tolist() == [0] and nodes.size == 0
    off, nodes = k_hop(g, np.zeros(0, np.int64), 2)
    assert off.tolist() == [0] and nodes.size == 0
    off, nodes = k_hop(g, [0], 10**9, 1)  # huge k is fine
    assert nodes.tolist() == [1]


def test_k_hop_scratch_overflow_path(rng):
    # the first pass stores what fits in the scratch and the second searches the rest again
    km = pytest.importorskip("fastgnn.kernels.cpu.mining")
    g = _random_graph(rng, 60, 150)
    sources = rng.integers(0, 60, 25).astype(g.indices.dtype)
    ro, rn = ref.k_hop_ref(g.indptr, g.indices, sources, 2, 1)
    for nchunks, cap in [(1, 0), (3, 17), (4, 40), (25, 10), (2, 10**4)]:
        counts = np.empty(25, np.int64)
        scratch = np.empty(cap * nchunks, g.indices.dtype)
        written = np.zeros(nchunks, np.int64)
        km.k_hop_first(g.indptr, g.indices, sources, 2, 1, nchunks, counts, scratch, written)
        off = np.concatenate([[0], np.cumsum(counts)])
        nodes = np.empty(off[-1], g.indices.dtype)
        km.k_hop_rest(g.indptr, g.indices, sources, 2, 1, nchunks, scratch, written, off, nodes)
        np.testing.assert_array_equal(off, ro)
        np.testing.assert_array_equal(nodes, rn)


def test_k_hop_thread_count(rng):
    numba = pytest.importorskip("numba")
    g = _random_graph(rng, 300, 900)
    sources = rng.integers(0, 300, 100)
    one = _with_threads(numba, 1, lambda: k_hop(g, sources, 3, 1))
    two = _with_threads(numba, min(2, numba.config.NUMBA_NUM_THREADS), lambda: k_hop(g, sources, 3, 1))
    for a, b in zip(one, two):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("args,exc,match", [
    (dict(k=0), ValueError, "k: "),
    (dict(k=1.5), TypeError, "k: "),
    (dict(k=2, min_hops=3), ValueError, "min_hops"),
    (dict(k=2, min_hops=-1), ValueError, "min_hops"),
    (dict(sources=[0, 9]), ValueError, "sources"),
    (dict(sources=[-1]), ValueError, "sources"),
    (dict(sources=[0.5]), TypeError, "sources"),
    (dict(sources=[[0]]), ValueError, "sources"),
])
def test_k_hop_bad_input(args, exc, match):
    g = Graph.from_edges([0, 1], [1, 2], num_nodes=5)
    kw = dict(sources=[0], k=2)
    kw.update(args)
    with pytest.raises(exc, match=match):
        k_hop(g, **kw)
    with pytest.raises(TypeError, match="graph"):
        k_hop(np.eye(3), [0], 2)


# ============================================================================================ HardNegativeMiner
STRATS = ["hardest", "semihard", "weighted", "mixed"]


def _data(rng, B, P, D, dtype=np.float64):
    return (rng.normal(size=(B, D)).astype(dtype), rng.normal(size=(B, D)).astype(dtype),
            rng.normal(size=(P, D)).astype(dtype))


@pytest.mark.parametrize("strategy", STRATS)
@pytest.mark.parametrize("B,P,D,K", [(1, 1, 1, 1), (1, 5, 3, 5), (4, 30, 1, 3), (7, 40, 8, 6), (3, 25, 4, 1)])
@pytest.mark.parametrize("block", [None, 1, 7])
def test_miner_matches_reference(rng, strategy, B, P, D, K, block):
    A, Pos, pool = _data(rng, B, P, D)
    m = HardNegativeMiner(strategy, num_negatives=K, alpha=2.0, hard_ratio=0.4, seed=7, block_size=block)
    got = m.mine(A, Pos, pool)
    want = ref.hard_negatives_ref(A, Pos, pool, strategy, K, 2.0, 0.4, _call_seed(7, 0))
    np.testing.assert_array_equal(got, want)
    assert got.dtype == np.int64 and got.shape == (B, K)


@pytest.mark.parametrize("hard_ratio", [0.0, 0.1, 1.0])
@pytest.mark.parametrize("fused", [True, False])
def test_mixed_hard_ratio_extremes(rng, monkeypatch, hard_ratio, fused):
    # 0: no hardest part at all (all K drawn uniformly); 1: all K hardest
    import fastgnn.mining as mining

    if not fused:
        monkeypatch.setattr(mining, "_single_threaded_blas", lambda: None)
    A, Pos, pool = _data(rng, 5, 40, 4)
    m = HardNegativeMiner("mixed", num_negatives=6, hard_ratio=hard_ratio, seed=2, block_size=7)
    got = m.mine(A, Pos, pool)
    want = ref.hard_negatives_ref(A, Pos, pool, "mixed", 6, 1.0, hard_ratio, _call_seed(2, 0))
    np.testing.assert_array_equal(got, want)
    hardest = HardNegativeMiner("hardest", num_negatives=6, seed=2).mine(A, Pos, pool)
    if hard_ratio == 1.0:
        np.testing.assert_array_equal(got, hardest)
    elif hard_ratio == 0.0:
        # uniform draws: the hardest candidate is not forced into the first column
        assert (got[:, 0] != hardest[:, 0]).any()


@pytest.mark.parametrize("strategy", STRATS)
def test_miner_labels_and_exclude(rng, strategy):
    B, P, D, K = 6, 30, 5, 8
    A, Pos, pool = _data(rng, B, P, D)
    al = rng.integers(0, 3, B)
    pl = rng.integers(0, 3, P)
    ex2 = rng.integers(-1, P, (B, 4))
    ex1 = rng.integers(0, P, 5)
    for exclude in (None, ex1, ex2):
        m = HardNegativeMiner(strategy, num_negatives=K, seed=3, block_size=4)
        got = m.mine(A, Pos, pool, anchor_labels=al, pool_labels=pl, exclude=exclude)
        want = ref.hard_negatives_ref(A, Pos, pool, strategy, K, 1.0, 0.5, _call_seed(3, 0), al, pl, exclude)
        np.testing.assert_array_equal(got, want)
        for b in range(B):
            row = got[b][got[b] >= 0]
            assert len(set(row.tolist())) == row.size
            assert np.all(pl[row] != al[b])


@pytest.mark.parametrize("strategy", STRATS)
def test_miner_pads_with_minus_one(rng, strategy):
    A, Pos, pool = _data(rng, 2, 6, 3)
    pl = np.array([0, 0, 0, 0, 1, 1])
    m = HardNegativeMiner(strategy, num_negatives=4, seed=0)
    got = m.mine(A, Pos, pool, anchor_labels=[0, 1], pool_labels=pl)
    assert set(got[0].tolist()) == {4, 5, -1} and list(got[0, 2:]) == [-1, -1]
    assert set(got[1].tolist()) == {0, 1, 2, 3}
    got = HardNegativeMiner(strategy, num_negatives=3, seed=0).mine(A, Pos, pool, exclude=[[0, 1, 2, 3, 4], [-1] * 5])
    assert got[0].tolist() == [5, -1, -1]


@pytest.mark.parametrize("strategy", STRATS)
@pytest.mark.parametrize("fused", [True, False])
def test_miner_bound_scan_long_pool(rng, monkeypatch, strategy, fused):
    # a pool much longer than K: most candidates are rejected by the heaps' bound (both kernels); the
    # unfused path (BLAS per block, then topk_block) is what runs without threadpoolctl
    import fastgnn.mining as mining

    if not fused:
        monkeypatch.setattr(mining, "_single_threaded_blas", lambda: None)
    A, Pos, pool = _data(rng, 5, 1500, 4)
    al = rng.integers(0, 2, 5)
    pl = rng.integers(0, 2, 1500)
    ex = np.sort(rng.integers(-1, 1500, (5, 40)), axis=1)
    for block in (None, 100):
        m = HardNegativeMiner(strategy, num_negatives=6, alpha=3.0, seed=2, block_size=block)
        got = m.mine(A, Pos, pool, anchor_labels=al, pool_labels=pl, exclude=ex)
        want = ref.hard_negatives_ref(A, Pos, pool, strategy, 6, 3.0, 0.5, _call_seed(2, 0), al, pl, ex)
        np.testing.assert_array_equal(got, want)
        got = HardNegativeMiner(strategy, num_negatives=6, alpha=3.0, seed=2, block_size=block).mine(A, Pos, pool)
        np.testing.assert_array_equal(got, ref.hard_negatives_ref(A, Pos, pool, strategy, 6, 3.0, 0.5,
                                                                  _call_seed(2, 0)))


def test_miner_float32_close_to_reference(rng):
    A, Pos, pool = _data(rng, 16, 500, 32, np.float32)
    got = HardNegativeMiner("hardest", num_negatives=10, block_size=64).mine(A, Pos, pool)
    S = ref.cosine(A, pool)
    want = ref.hard_negatives_ref(A, Pos, pool, "hardest", 10)
    np.testing.assert_allclose(np.take_along_axis(S, got, 1), np.take_along_axis(S, want, 1), atol=1e-5)
    m = HardNegativeMiner("hardest", num_negatives=10)
    assert m.mine(A, Pos, pool.astype(np.float64)).dtype == np.int64


def test_miner_semihard_definition(rng):
    A, Pos, pool = _data(rng, 5, 50, 4)
    got = HardNegativeMiner("semihard", num_negatives=4, seed=0).mine(A, Pos, pool)
    S = ref.cosine(A, pool)
    pos = np.array([ref.cosine(A[b:b + 1], Pos[b:b + 1])[0, 0] for b in range(5)])
    for b in range(5):
        semi = np.flatnonzero(S[b] < pos[b])
        if semi.size >= 4:
            assert np.all(S[b, got[b]] < pos[b])
            assert np.all(np.diff(S[b, got[b]]) <= 0)


def test_miner_block_size_and_threads_do_not_matter(rng):
    numba = pytest.importorskip("numba")
    A, Pos, pool = _data(rng, 9, 300, 6)
    for strategy in STRATS:
        res = []
        for block, threads in [(None, 1), (13, 1), (300, 2), (1, 2)]:
            m = HardNegativeMiner(strategy, num_negatives=7, seed=5, block_size=block)
            res.append(_with_threads(numba, min(threads, numba.config.NUMBA_NUM_THREADS),
                                     lambda: m.mine(A, Pos, pool)))
        for r in res[1:]:
            np.testing.assert_array_equal(r, res[0])


def test_miner_calls_draw_afresh_and_are_reproducible(rng):
    A, Pos, pool = _data(rng, 3, 40, 4)
    m1 = HardNegativeMiner("weighted", num_negatives=5, seed=1)
    m2 = HardNegativeMiner("weighted", num_negatives=5, seed=1)
    a = [m1.mine(A, None, pool) for _ in range(3)]
    b = [m2.mine(A, None, pool) for _ in range(3)]
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(a[0], a[1])
    h = HardNegativeMiner("hardest", num_negatives=5, seed=1)
    np.testing.assert_array_equal(h.mine(A, None, pool), h.mine(A, None, pool))


def test_weighted_sampling_law():
    stats = pytest.importorskip("scipy.stats")
    # K=1: P(x) = softmax(alpha * sim)
    pool = np.array([[1, 0], [0.8, 0.6], [0, 1], [-1, 0], [0.6, -0.8]], np.float64)
    anchor = np.array([[1.0, 0.0]])
    alpha = 2.0
    m = HardNegativeMiner("weighted", num_negatives=1, alpha=alpha, seed=2)
    counts = np.zeros(5)
    for _ in range(1500):
        counts[m.mine(anchor, None, pool)[0, 0]] += 1
    s = ref.cosine(anchor, pool)[0]
    p = np.exp(alpha * s) / np.exp(alpha * s).sum()
    assert stats.chisquare(counts, p * counts.sum()).pvalue > 1e-4


def test_mixed_random_part_is_uniform():
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(0)
    pool = rng.normal(size=(8, 3))
    anchor = rng.normal(size=(1, 3))
    m = HardNegativeMiner("mixed", num_negatives=3, hard_ratio=0.5, seed=4)  # 2 hardest + 1 random
    hard = np.argsort(-ref.cosine(anchor, pool)[0], kind="stable")[:2]
    counts = np.zeros(8)
    for _ in range(1200):
        row = m.mine(anchor, None, pool)[0]
        np.testing.assert_array_equal(row[:2], hard)
        counts[row[2]] += 1
    assert counts[hard].sum() == 0
    rest = np.setdiff1d(np.arange(8), hard)
    assert stats.chisquare(counts[rest]).pvalue > 1e-4


def test_zero_vectors_have_zero_similarity():
    pool = np.array([[0.0, 0.0], [1.0, 0.0], [-1.0, 0.0]])
    got = HardNegativeMiner("hardest", num_negatives=3).mine([[1.0, 0.0]], None, pool)
    assert got.tolist() == [[1, 0, 2]]


def test_empty_batch():
    got = HardNegativeMiner("hardest", num_negatives=2).mine(np.zeros((0, 3)), None, np.ones((4, 3)))
    assert got.shape == (0, 2)


def test_public_names():
    assert fastgnn.HardNegativeMiner is HardNegativeMiner
    assert fastgnn.GraphHardNegativeMiner is GraphHardNegativeMiner
    assert fastgnn.k_hop is k_hop


@pytest.mark.parametrize("kwargs,exc,match", [
    (dict(strategy="hard"), ValueError, "strategy"),
    (dict(num_negatives=0), ValueError, "num_negatives"),
    (dict(num_negatives=2.0), TypeError, "num_negatives"),
    (dict(hard_ratio=1.5), ValueError, "hard_ratio"),
    (dict(alpha=float("inf")), ValueError, "alpha"),
    (dict(seed=-1), ValueError, "seed"),
    (dict(block_size=0), ValueError, "block_size"),
    (dict(backend="gpu"), ValueError, "backend"),
])
def test_miner_bad_constructor(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        HardNegativeMiner(**kwargs)


def _bad_mine_cases():
    A = np.ones((2, 3))
    pool = np.ones((5, 3))
    nan_pool = pool.copy()
    nan_pool[3, 1] = np.nan
    inf_a = A.copy()
    inf_a[1, 0] = np.inf
    return [
        (dict(num_negatives=6), dict(), ValueError, "num_negatives"),
        (dict(), dict(pool=nan_pool), ValueError, "pool"),
        (dict(), dict(anchors=inf_a), ValueError, "anchors"),
        (dict(strategy="semihard"), dict(positives=np.full((2, 3), np.nan)), ValueError, "positives"),
        (dict(strategy="semihard"), dict(positives=None), ValueError, "positives"),
        (dict(), dict(positives=np.ones((3, 3))), ValueError, "positives"),
        (dict(), dict(anchors=np.ones((2, 4))), ValueError, "anchors"),
        (dict(), dict(pool=np.ones((0, 3))), ValueError, "pool"),
        (dict(), dict(pool=np.ones(5)), ValueError, "pool"),
        (dict(), dict(anchor_labels=[0, 1, 2], pool_labels=[0] * 5), ValueError, "anchor_labels"),
        (dict(), dict(anchor_labels=[0, 1], pool_labels=[0] * 4), ValueError, "pool_labels"),
        (dict(), dict(anchor_labels=[0, 1]), ValueError, "pool_labels"),
        (dict(), dict(anchor_labels=[0.0, 1.0], pool_labels=[0] * 5), TypeError, "anchor_labels"),
        (dict(), dict(exclude=[7]), ValueError, "exclude"),
        (dict(), dict(exclude=[[0], [5]]), ValueError, "exclude"),
        (dict(), dict(exclude=[[0], [0], [0]]), ValueError, "exclude"),
        (dict(), dict(exclude=[-1]), ValueError, "exclude"),
        (dict(), dict(pool=np.array([["a"] * 3] * 5)), TypeError, "pool"),
    ]


@pytest.mark.parametrize("ctor,kw,exc,match", _bad_mine_cases())
def test_miner_bad_mine_input(ctor, kw, exc, match):
    args = dict(anchors=np.ones((2, 3)), positives=np.ones((2, 3)), pool=np.ones((5, 3)))
    args.update(kw)
    c = dict(strategy="hardest", num_negatives=2)
    c.update(ctor)
    with pytest.raises(exc, match=match):
        HardNegativeMiner(**c).mine(**args)


# ============================================================================================ graph miner
@pytest.mark.parametrize("strategy", ["hardest", "weighted", "mixed"])
@pytest.mark.parametrize("hops,min_hops,K", [(2, 2, 3), (3, 2, 5), (1, 1, 2), (2, 0, 1)])
def test_graph_miner_matches_reference(rng, strategy, hops, min_hops, K):
    g = _random_graph(rng, 40, 70)
    E = rng.normal(size=(40, 6))
    anchors = rng.integers(0, 40, 9)
    m = GraphHardNegativeMiner(hops=hops, num_negatives=K, seed=8, min_hops=min_hops, strategy=strategy)
    got = m.mine(E, g, anchors)
    want = ref.graph_hard_negatives_ref(E, g.indptr, g.indices, anchors, hops, min_hops, strategy, K,
                                        seed=_call_seed(8, 0))
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("hard_ratio", [0.0, 1.0])
def test_graph_miner_mixed_hard_ratio_extremes(rng, hard_ratio):
    g = _random_graph(rng, 40, 90)
    E = rng.normal(size=(40, 6))
    anchors = rng.integers(0, 40, 9)
    got = GraphHardNegativeMiner(hops=3, num_negatives=4, seed=8, strategy="mixed", hard_ratio=hard_ratio).mine(
        E, g, anchors)
    want = ref.graph_hard_negatives_ref(E, g.indptr, g.indices, anchors, 3, 2, "mixed", 4, hard_ratio=hard_ratio,
                                        seed=_call_seed(8, 0))
    np.testing.assert_array_equal(got, want)


def test_graph_miner_ring_and_padding():
    # path 0-1-2-3 plus isolated node 4: ring(0) at distance 2 is {2}
    g = Graph.from_edges([0, 1, 2], [1, 2, 3], num_nodes=5)
    E = np.eye(5, dtype=np.float32)
    got = GraphHardNegativeMiner(hops=2, num_negatives=2, seed=0).mine(E, g, [0, 4])
    assert got.tolist() == [[2, -1], [-1, -1]]
    got = GraphHardNegativeMiner(hops=2, num_negatives=2, seed=0).mine(E, g, [])
    assert got.shape == (0, 2)
    empty = Graph.from_edges([], [], num_nodes=0)
    got = GraphHardNegativeMiner(num_negatives=3, seed=0).mine(np.zeros((0, 4)), empty, [])
    assert got.shape == (0, 3)


@pytest.mark.parametrize("call,exc,match", [
    (lambda g, E: GraphHardNegativeMiner(hops=0), ValueError, "hops"),
    (lambda g, E: GraphHardNegativeMiner(num_negatives=0), ValueError, "num_negatives"),
    (lambda g, E: GraphHardNegativeMiner(strategy="semihard"), ValueError, "strategy"),
    (lambda g, E: GraphHardNegativeMiner(min_hops=-1), ValueError, "min_hops"),
    (lambda g, E: GraphHardNegativeMiner(num_negatives=1).mine(E[:3], g, [0]), ValueError, "embeddings"),
    (lambda g, E: GraphHardNegativeMiner(num_negatives=1).mine(np.where(E == 1, np.nan, E), g, [0]), ValueError,
     "embeddings"),
    (lambda g, E: GraphHardNegativeMiner(num_negatives=1).mine(E, g, [4]), ValueError, "anchors"),
    (lambda g, E: GraphHardNegativeMiner(num_negatives=1).mine(E, g, [0.0]), TypeError, "anchors"),
    (lambda g, E: GraphHardNegativeMiner(num_negatives=1).mine(E, E, [0]), TypeError, "graph"),
])
def test_graph_miner_bad_input(call, exc, match):
    g = Graph.from_edges([0, 1], [1, 2], num_nodes=4)
    E = np.eye(4)
    with pytest.raises(exc, match=match):
        call(g, E)
