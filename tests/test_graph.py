import numpy as np
import pytest
import scipy.sparse as sp

from fastgnn import Graph
from tests import reference as ref


def random_edges(rng, n, e):
    return rng.integers(0, n, e), rng.integers(0, n, e)


def dense(g):
    return g.to_scipy().toarray().astype(np.float64)


@pytest.mark.parametrize("n,e", [(1, 0), (2, 1), (5, 12), (40, 200)])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("symmetrize", [True, False])
def test_from_edges_matches_reference(rng, n, e, weighted, symmetrize):
    src, dst = random_edges(rng, n, e)
    w = rng.random(e) * 3 if weighted else None
    g = Graph.from_edges(src, dst, num_nodes=n, weights=w, symmetrize=symmetrize)
    want = ref.dense_adjacency(src, dst, n, w, symmetrize=symmetrize)
    if not weighted:
        want = (want > 0).astype(np.float64)  # unweighted duplicates merge into one edge
    np.testing.assert_allclose(dense(g), want, rtol=1e-6)
    assert g.indptr.dtype == np.int64 and g.indices.dtype == np.int32
    assert g.directed is (not symmetrize)
    # rows sorted and unique
    for i in range(n):
        nb = g.neighbors(i)
        assert np.all(np.diff(nb) > 0)


def test_self_loops_dropped_and_duplicates_merged():
    g = Graph.from_edges([0, 0, 1, 1, 2], [0, 1, 0, 1, 2], weights=[5.0, 1.0, 2.0, 7.0, 1.0])
    assert g.num_nodes == 3
    assert g.num_edges == 1
    assert g.num_arcs == 2
    # (0,1) and (1,0) are the same undirected edge: weights summed
    np.testing.assert_allclose(g.edge_weights(0), [3.0])
    np.testing.assert_allclose(g.edge_weights(1), [3.0])
    assert g.neighbors(2).size == 0


def test_counts_degrees_neighbors(rng):
    src, dst = random_edges(rng, 30, 100)
    g = Graph.from_edges(src, dst, num_nodes=30)
    A = dense(g)
    np.testing.assert_array_equal(g.degrees(), (A > 0).sum(1))
    np.testing.assert_allclose(g.degrees(weighted=True), A.sum(1))
    assert g.num_edges * 2 == g.num_arcs == int((A > 0).sum())
    for i in range(30):
        np.testing.assert_array_equal(g.neighbors(i), np.flatnonzero(A[i]))
    s, d, w = g.edges()
    assert np.all(s < d) and s.size == g.num_edges


def test_empty_graph_is_valid():
    g = Graph.from_edges([], [], num_nodes=4)
    assert (g.num_nodes, g.num_edges) == (4, 0)
    assert g.degrees().tolist() == [0, 0, 0, 0]
    g0 = Graph.from_edges(np.array([], np.int64), np.array([], np.int64))
    assert g0.num_nodes == 0 and g0.num_edges == 0


def test_arrays_are_read_only():
    g = Graph.from_edges([0, 1], [1, 2])
    with pytest.raises(ValueError):
        g.indices[0] = 2


def test_scipy_roundtrip(rng):
    src, dst = random_edges(rng, 25, 80)
    w = rng.random(80) + 0.5
    g = Graph.from_edges(src, dst, num_nodes=25, weights=w)
    g2 = Graph.from_scipy(g.to_scipy())
    assert not g2.directed
    np.testing.assert_allclose(dense(g2), dense(g))
    # asymmetric input: directed; diagonal dropped
    A = sp.csr_matrix(np.array([[1.0, 2.0, 0], [0, 0, 1.0], [0, 0, 0]]))
    g3 = Graph.from_scipy(A)
    assert g3.directed and g3.num_edges == 2
    np.testing.assert_allclose(dense(g3), [[0, 2, 0], [0, 0, 1], [0, 0, 0]])
    ones = Graph.from_scipy(sp.csr_matrix(np.array([[0, 1.0], [1.0, 0]])))
    assert ones.weights is None


def test_from_networkx():
    nx = pytest.importorskip("networkx")
    G = nx.karate_club_graph()
    g = Graph.from_networkx(G, weight=None)
    assert (g.num_nodes, g.num_edges) == (34, 78)
    D = nx.DiGraph()
    D.add_edge("a", "b", weight=2.5)
    D.add_edge("b", "c", weight=1.0)
    gd = Graph.from_networkx(D)
    assert gd.directed and gd.num_edges == 2
    np.testing.assert_allclose(dense(gd), [[0, 2.5, 0], [0, 0, 1], [0, 0, 0]])
    with pytest.raises(TypeError, match="G"):
        Graph.from_networkx([1, 2])


def test_save_load_roundtrip(tmp_path, rng):
    src, dst = random_edges(rng, 20, 50)
    for w in (None, rng.random(50)):
        g = Graph.from_edges(src, dst, num_nodes=20, weights=w)
        g.save(tmp_path / "g.npz")
        h = Graph.load(tmp_path / "g.npz")
        np.testing.assert_array_equal(h.indptr, g.indptr)
        np.testing.assert_array_equal(h.indices, g.indices)
        assert (h.weights is None) == (g.weights is None)
        assert h.directed == g.directed
    with pytest.raises(FileNotFoundError, match="path"):
        Graph.load(tmp_path / "missing.npz")
    np.savez(tmp_path / "bad.npz", x=np.zeros(3))
    with pytest.raises(ValueError, match="not a fastgnn graph"):
        Graph.load(tmp_path / "bad.npz")


def test_read_edgelist(tmp_path):
    p = tmp_path / "e.txt"
    p.write_text("# comment\n0 1\n1\t2\n\n2 3  # trailing\n3 0\n")
    g = Graph.read_edgelist(p)
    assert (g.num_nodes, g.num_edges) == (4, 4)
    pw = tmp_path / "w.txt"
    pw.write_text("0 1 0.5\n1 2 2\n")
    gw = Graph.read_edgelist(pw)
    np.testing.assert_allclose(gw.edge_weights(1), [0.5, 2.0])


@pytest.mark.parametrize("text,line,match", [
    ("0 1\n1 x\n", 2, "integers"),
    ("0 1\n1\n", 2, "expected"),
    ("0 1\n1 2 3 4\n", 2, "expected"),
    ("0 1\n-1 2\n", 2, "negative"),
    ("0 1 1.0\n1 2 nan\n", 2, "weight"),
    ("0 1 1.0\n1 2 -3\n", 2, "weight"),
    ("0 1\n1 2\n2 3 1.0\n", 3, "columns"),
])
def test_read_edgelist_malformed_reports_line(tmp_path, text, line, match):
    p = tmp_path / "bad.txt"
    p.write_text(text)
    with pytest.raises(ValueError, match=rf"line {line}:.*{match}"):
        Graph.read_edgelist(p)


def test_read_edgelist_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="path"):
        Graph.read_edgelist(tmp_path / "nope.txt")


@pytest.mark.parametrize("kwargs,exc,match", [
    (dict(src=[0, -1], dst=[1, 2]), ValueError, "src: negative id -1"),
    (dict(src=[0, 1], dst=[1, -5]), ValueError, "dst: negative id -5"),
    (dict(src=[0.5, 1], dst=[1, 2]), TypeError, "src: expected integer"),
    (dict(src=[0, 1], dst=[1.0, 2.0]), TypeError, "dst: expected integer"),
    (dict(src=[0, 1], dst=[1, 2, 3]), ValueError, "src and dst: lengths differ"),
    (dict(src=[0, 5], dst=[1, 2], num_nodes=4), ValueError, "src: index 5 out of range"),
    (dict(src=[0, 1], dst=[1, 9], num_nodes=4), ValueError, "dst: index 9 out of range"),
    (dict(src=[0, 1], dst=[1, 2], weights=[1.0, np.nan]), ValueError, "weights: non-finite"),
    (dict(src=[0, 1], dst=[1, 2], weights=[1.0, -2.0]), ValueError, "weights: must be non-negative"),
    (dict(src=[0, 1], dst=[1, 2], weights=[1.0]), ValueError, "weights: length"),
    (dict(src=[0, 1], dst=[1, 2], num_nodes=-1), ValueError, "num_nodes"),
    (dict(src=[[0, 1]], dst=[[1, 2]]), ValueError, "src: expected a 1-d"),
])
def test_from_edges_bad_input(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        Graph.from_edges(**kwargs)


def test_constructor_validates_csr():
    with pytest.raises(ValueError, match="indptr: must start at 0"):
        Graph([1, 2], [0])
    with pytest.raises(ValueError, match="indptr: last value"):
        Graph([0, 1, 3], [1, 0])
    with pytest.raises(ValueError, match="indptr: must be non-decreasing"):
        Graph([0, 2, 1, 2], [1, 2])
    with pytest.raises(ValueError, match="indices: index 5 out of range"):
        Graph([0, 1, 2], [1, 5])
    with pytest.raises(TypeError, match="indptr"):
        Graph([0.0, 1.0], [0])
    with pytest.raises(ValueError, match="neighbors|i: node"):
        Graph.from_edges([0], [1]).neighbors(2)


@pytest.mark.parametrize("directed", [False, True])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("n,e", [(2, 1), (9, 20), (80, 400)])
def test_keep_edges_matches_from_edges(rng, directed, weighted, n, e):
    src, dst = rng.integers(0, n - 1, e), rng.integers(0, n - 1, e)  # the last node is isolated
    w = rng.random(e) + 0.1 if weighted else None
    g = Graph.from_edges(src, dst, num_nodes=n, weights=w, symmetrize=not directed)
    arc_edge, edge_arc = g._edge_plan()
    want_arc_edge, want_edge_arc = ref.edge_plan(g.indptr, g.indices, directed)
    np.testing.assert_array_equal(arc_edge, want_arc_edge)
    np.testing.assert_array_equal(edge_arc, want_edge_arc)
    s, d, ww = g.edges()
    for keep in (rng.random(s.size) < 0.5, np.zeros(s.size, bool), np.ones(s.size, bool)):
        got = g._keep_edges(keep)
        want = Graph.from_edges(s[keep], d[keep], num_nodes=n, weights=ww[keep] if weighted else None,
                                symmetrize=not directed)
        np.testing.assert_array_equal(got.indptr, want.indptr)
        np.testing.assert_array_equal(got.indices, want.indices)
        assert got.indices.dtype == want.indices.dtype and got.directed == directed
        if weighted:
            np.testing.assert_array_equal(got.weights, want.weights)
        else:
            assert got.weights is None
        np.testing.assert_array_equal(got.to_scipy().toarray(), ref.dense_adjacency(
            s[keep], d[keep], n, ww[keep] if weighted else None, symmetrize=not directed))
        assert not got.indices.flags.writeable


def test_edge_plan_refuses_graphs_from_edges_would_change():
    # unsorted row, self-loop, missing reverse arc: drop_edges then goes through from_edges
    for indptr, indices in (([0, 2, 3, 4], [2, 1, 0, 0]), ([0, 2, 3], [0, 1, 0]), ([0, 1, 1], [1])):
        g = Graph(indptr, indices)
        assert g._edge_plan() is None
    g = Graph([0, 2, 3, 4], [2, 1, 0, 0])
    from fastgnn.trainer import drop_edges

    out = drop_edges(g, 0.5, np.random.default_rng(0))
    assert out.num_nodes == 3 and np.all(np.diff(out.indices[out.indptr[0]:out.indptr[1]]) > 0)


def _random_graph(rng, n, e, directed, weighted):
    src, dst = rng.integers(0, n - 1, e), rng.integers(0, n - 1, e)  # the last node is isolated
    w = rng.random(e) + 0.1 if weighted else None
    return Graph.from_edges(src, dst, num_nodes=n, weights=w, symmetrize=not directed)


@pytest.mark.parametrize("directed", [False, True])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("p", [0.3, 0.9, 1.0])
def test_drop_edges_keeps_the_hashed_edges(rng, directed, weighted, p):
    from fastgnn import backend
    from fastgnn.trainer import drop_edges
    from tests.reference_rng import uniform_array

    g = _random_graph(rng, 60, 300, directed, weighted)
    s, d, w = g.edges()
    for seed in (0, 12345, 2**62 - 1):
        keep = uniform_array(seed, np.arange(s.size), 0) >= p
        k = np.empty(s.size, bool)
        backend.kernels("graph", "cpu").edge_keeps(np.uint64(seed), p, k)
        np.testing.assert_array_equal(k, keep)
        got = g._drop_edges(p, seed)
        want = Graph.from_edges(s[keep], d[keep], num_nodes=60, weights=w[keep] if weighted else None,
                                symmetrize=not directed)
        np.testing.assert_array_equal(got.indptr, want.indptr)
        np.testing.assert_array_equal(got.indices, want.indices)
        if weighted:
            np.testing.assert_array_equal(got.weights, want.weights)
    # the trainer's call: one seed from the generator, the same draw on every call
    a, b = drop_edges(g, p, np.random.default_rng(5)), drop_edges(g, p, np.random.default_rng(5))
    want = g._drop_edges(p, int(np.random.default_rng(5).integers(0, 2**62)))
    np.testing.assert_array_equal(a.indices, want.indices)
    np.testing.assert_array_equal(b.indptr, want.indptr)
    assert (a.num_edges == 0) == (p == 1.0)


def test_edge_keeps_is_the_same_at_any_thread_count():
    import numba

    from fastgnn import backend

    k = backend.kernels("graph", "cpu").edge_keeps
    out = [np.empty(10_001, bool) for _ in range(2)]
    before = numba.get_num_threads()
    try:
        k(np.uint64(7), 0.4, out[0])
        numba.set_num_threads(1)
        k(np.uint64(7), 0.4, out[1])
    finally:
        numba.set_num_threads(before)
    np.testing.assert_array_equal(out[0], out[1])
    assert abs(out[0].mean() - 0.6) < 0.02  # keeps 1 - p of the edges


def test_drop_edges_without_a_plan_uses_the_same_draws(rng):
    from tests.reference_rng import uniform_array

    g = Graph([0, 2, 3, 4], [2, 1, 0, 0])  # an unsorted row: no edge plan, the from_edges path
    assert g._edge_plan() is None
    s, d, _ = g.edges()
    for seed in range(6):
        keep = uniform_array(seed, np.arange(s.size), 0) >= 0.5
        got = g._drop_edges(0.5, seed)
        want = Graph.from_edges(s[keep], d[keep], num_nodes=3)
        np.testing.assert_array_equal(got.indptr, want.indptr)
        np.testing.assert_array_equal(got.indices, want.indices)


@pytest.mark.parametrize("weighted", [False, True])
def test_scales_are_correctly_rounded(rng, weighted):
    g = _random_graph(rng, 40, 150, False, weighted)
    deg = g.degrees(weighted=True).astype(np.float64)
    for dtype in (np.float32, np.float64):
        want = np.zeros(40)
        want[deg > 0] = 1.0 / np.sqrt(deg[deg > 0])
        r, c = g.norm_scales("sym", dtype)
        np.testing.assert_array_equal(r, want.astype(dtype))
        np.testing.assert_array_equal(g.gcn_scale(dtype), (1.0 / np.sqrt(deg + 1.0)).astype(dtype))
        np.testing.assert_allclose(g.gcn_scale(dtype), (deg + 1.0) ** -0.5, rtol=1e-6)
