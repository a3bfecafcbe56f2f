"""Device inputs end to end for the miners, k_hop and the optimizers' row-sparse step: device arrays (numba, or
anything exposing ``__cuda_array_interface__``) are used without copies and give device arrays back.

Each check compares against the CPU backend on the same values given as host arrays. Tiny inputs and small
blocks so every launch spans several blocks; under NUMBA_ENABLE_CUDASIM=1 each device-function call costs about
a millisecond, so sizes stay small.
"""
import numpy as np
import pytest
from numba import cuda

from fastgnn import Graph
from fastgnn.mining import GraphHardNegativeMiner, HardNegativeMiner, k_hop
from fastgnn.optim import SGD, Adam
from tests.cuda import test_device_inputs
from tests.cuda.test_device_inputs import Foreign, dev, host

pytestmark = test_device_inputs.pytestmark  # CUDA usable, simulator warnings, small blocks


def _graph(rng, n, m):
    return Graph.from_edges(rng.integers(0, n, m), rng.integers(0, n, m), num_nodes=n)


# --------------------------------------------------------------------------- k_hop
def test_k_hop_device_sources(rng):
    g = _graph(rng, 14, 20)
    sources = np.array([0, 5, 13, 5, 2], np.int32)
    for k, min_hops in ((2, 2), (3, 0)):
        want_off, want_nodes = k_hop(g, sources, k, min_hops, backend="cpu")
        off, nodes = k_hop(g, Foreign(dev(sources)) if k == 2 else dev(sources.astype(np.int64)), k, min_hops)
        np.testing.assert_array_equal(host(off), want_off)
        np.testing.assert_array_equal(host(nodes), want_nodes)
        assert off.dtype == np.int64 and nodes.dtype == g.indices.dtype
    assert "device" in g._cache  # the CSR went to the device once, cached on the graph
    off, nodes = k_hop(g, dev(np.zeros(0, np.int64)), 2)
    assert host(off).tolist() == [0] and host(nodes).size == 0
    off, nodes = k_hop(Graph.from_edges([], [], num_nodes=3), dev(np.array([1, 2])), 2, 0)  # no arcs at all
    assert host(off).tolist() == [0, 1, 2] and host(nodes).tolist() == [1, 2]


def test_k_hop_bad_device_sources(rng):
    g = _graph(rng, 6, 8)
    with pytest.raises(ValueError, match="sources: index 6 out of range for a graph with 6 nodes"):
        k_hop(g, dev(np.array([0, 6])), 2)
    with pytest.raises(ValueError, match="sources: negative id -1"):
        k_hop(g, dev(np.array([-1, 2])), 2)
    with pytest.raises(TypeError, match="sources: expected int32 or int64, got float64"):
        k_hop(g, dev(np.array([0.0])), 2)
    with pytest.raises(ValueError, match="sources: expected a 1-d array"):
        k_hop(g, dev(np.zeros((2, 2), np.int64)), 2)
    with pytest.raises(ValueError, match="sources: a CUDA device array needs backend 'cuda'"):
        k_hop(g, dev(np.array([0])), 2, backend="cpu")


# --------------------------------------------------------------------------- similarity miner
@pytest.mark.parametrize("strategy,dtype", [("hardest", np.float32), ("semihard", np.float64),
                                            ("weighted", np.float64), ("mixed", np.float32)])
def test_miner_device_inputs(rng, strategy, dtype):
    B, P, D, K = 5, 13, 3, 4
    A, Pos = rng.standard_normal((2, B, D)).astype(dtype)
    pool = rng.standard_normal((P, D)).astype(dtype)
    pool[4] = 0  # a zero row: similarity 0
    al, pl = rng.integers(0, 3, B).astype(np.int32), rng.integers(0, 3, P)
    ex = rng.integers(-1, P, (B, 3))  # unsorted, -1 padded, repeats

    def miner():
        return HardNegativeMiner(strategy, num_negatives=K, seed=4, block_size=5)

    want = miner().mine(A, Pos, pool, al, pl, ex)
    got = miner().mine(dev(A), dev(Pos), Foreign(dev(pool)), dev(al), dev(pl), dev(ex.astype(np.int32)))
    assert got.dtype == np.int64 and got.shape == (B, K)
    np.testing.assert_array_equal(host(got), want)
    # mixed: host labels and a host 1-d exclude beside device embeddings (checked on the host, copied over)
    want = miner().mine(A, Pos, pool, exclude=[1, 2, 1])
    np.testing.assert_array_equal(host(miner().mine(dev(A), Pos, dev(pool), exclude=[1, 2, 1])), want)
    got = miner().mine(dev(A), Pos, dev(pool), exclude=dev(np.array([1, 2, 1])))
    np.testing.assert_array_equal(host(got), want)


def test_miner_device_calls_draw_afresh_and_empty_batches(rng):
    A = rng.standard_normal((3, 2))
    pool = rng.standard_normal((6, 2))
    host_m = HardNegativeMiner("weighted", num_negatives=2, seed=1, backend="cpu")
    dev_m = HardNegativeMiner("weighted", num_negatives=2, seed=1)
    for _ in range(2):
        np.testing.assert_array_equal(host(dev_m.mine(dev(A), None, dev(pool))), host_m.mine(A, None, pool))
    empty = dev_m.mine(dev(A[:0]), None, dev(pool))
    assert host(empty).shape == (0, 2) and dev_m.calls == 3


def test_miner_bad_device_inputs(rng):
    A = rng.standard_normal((4, 3))
    pool = rng.standard_normal((7, 3))
    m = HardNegativeMiner("hardest", num_negatives=2, seed=0)
    with pytest.raises(TypeError, match="pool: expected float32 or float64, got int64"):
        m.mine(dev(A), None, dev(pool.astype(np.int64)))
    with pytest.raises(TypeError, match="anchors: expected float64, got float32"):
        m.mine(dev(A.astype(np.float32)), None, dev(pool))
    with pytest.raises(ValueError, match=r"anchors: expected shape \[\?, 3\]"):
        m.mine(dev(A[:, :2]), None, dev(pool))
    with pytest.raises(ValueError, match=r"positives: expected shape \[4, 3\]"):
        HardNegativeMiner("semihard", num_negatives=2).mine(dev(A), dev(A[:3]), dev(pool))
    with pytest.raises(ValueError, match="positives: the 'semihard' strategy needs"):
        HardNegativeMiner("semihard", num_negatives=2).mine(dev(A), None, dev(pool))
    with pytest.raises(ValueError, match="num_negatives: 8 is larger than the pool"):
        HardNegativeMiner(num_negatives=8).mine(dev(A), None, dev(pool))
    bad = pool.copy()
    bad[2, 1] = np.nan
    with pytest.raises(ValueError, match=r"pool: non-finite value nan at index \(2, 1\)"):
        m.mine(dev(A), None, dev(bad))
    with pytest.raises(ValueError, match=r"anchors: non-finite value inf at index \(0, 0\)"):
        m.mine(dev(np.where(A == A[0, 0], np.inf, A)), None, dev(pool))
    with pytest.raises(ValueError, match="exclude: index 7 out of range for a pool with 7 rows"):
        m.mine(dev(A), None, dev(pool), exclude=dev(np.full((4, 2), 7)))
    with pytest.raises(ValueError, match=r"exclude: negative id -2 \(only -1 is allowed"):
        m.mine(dev(A), None, dev(pool), exclude=dev(np.full((4, 2), -2)))
    with pytest.raises(ValueError, match=r"exclude: expected shape \[4, \?\]"):
        m.mine(dev(A), None, dev(pool), exclude=dev(np.zeros((3, 2), np.int64)))
    with pytest.raises(ValueError, match="exclude: negative id -1$"):  # 1-d: no padding
        m.mine(dev(A), None, dev(pool), exclude=dev(np.array([-1])))
    with pytest.raises(ValueError, match=r"pool_labels: expected 7 labels \(shape \[7\]\), got shape \(6,\)"):
        m.mine(dev(A), None, dev(pool), dev(np.zeros(4, np.int64)), dev(np.zeros(6, np.int64)))
    with pytest.raises(TypeError, match="anchor_labels: expected int32 or int64, got float64"):
        m.mine(dev(A), None, dev(pool), dev(np.zeros(4)), np.zeros(7, np.int64))
    with pytest.raises(ValueError, match="pool_labels: anchor_labels and pool_labels must be given together"):
        m.mine(dev(A), None, dev(pool), dev(np.zeros(4, np.int64)))
    with pytest.raises(ValueError, match="pool: a CUDA device array needs backend 'cuda'"):
        HardNegativeMiner(backend="cpu", num_negatives=2).mine(A, None, dev(pool))
    assert m.calls == 0  # every failure came before the call's draw


# --------------------------------------------------------------------------- graph miner
@pytest.mark.parametrize("strategy", ["hardest", "mixed"])
def test_graph_miner_device_inputs(rng, strategy):
    g = _graph(rng, 12, 18)
    E = rng.standard_normal((12, 3)).astype(np.float32)
    anchors = np.array([0, 7, 3, 7], np.int32)

    def miner():
        return GraphHardNegativeMiner(hops=3, num_negatives=3, seed=2, strategy=strategy)

    want = miner().mine(E, g, anchors)
    got = miner().mine(Foreign(dev(E)), g, dev(anchors))
    assert got.dtype == np.int64 and got.shape == (4, 3)
    np.testing.assert_array_equal(host(got), want)
    np.testing.assert_array_equal(host(miner().mine(dev(E), g, anchors)), want)  # host anchors beside
    assert host(miner().mine(dev(E), g, dev(np.zeros(0, np.int64)))).shape == (0, 3)


def test_graph_miner_bad_device_inputs(rng):
    g = _graph(rng, 5, 6)
    E = rng.standard_normal((5, 2))
    m = GraphHardNegativeMiner(num_negatives=2)
    with pytest.raises(ValueError, match=r"embeddings: expected 5 rows \(graph.num_nodes\), got 4"):
        m.mine(dev(E[:4]), g, [0])
    with pytest.raises(TypeError, match="embeddings: expected float32 or float64, got int64"):
        m.mine(dev(E.astype(np.int64)), g, [0])
    with pytest.raises(ValueError, match="anchors: index 5 out of range for a graph with 5 nodes"):
        m.mine(dev(E), g, dev(np.array([1, 5])))
    with pytest.raises(TypeError, match="anchors: expected int32 or int64, got float32"):
        m.mine(dev(E), g, dev(np.array([1.0], np.float32)))
    E[3, 1] = np.nan
    with pytest.raises(ValueError, match=r"embeddings: non-finite value nan at index \(3, 1\)"):
        m.mine(dev(E), g, dev(np.array([1])))
    with pytest.raises(ValueError, match="anchors: a CUDA device array needs backend 'cuda'"):
        GraphHardNegativeMiner(backend="cpu").mine(E, g, dev(np.array([1])))


# --------------------------------------------------------------------------- row-sparse optimizer steps
@pytest.mark.parametrize("kind", ["sgd", "adam"])
def test_step_rows_device_rows(rng, kind):
    table = rng.standard_normal((12, 5)).astype(np.float32)
    mirror = table.copy()
    d_table = dev(table)
    if kind == "sgd":
        make = lambda p: SGD([p], lr=0.1, momentum=0.9, weight_decay=0.01)  # noqa: E731
    else:
        make = lambda p: Adam([p], lr=0.01, amsgrad=True, weight_decay=0.1)  # noqa: E731
    opt, ref = make(d_table), make(mirror)
    for step in range(3):
        rows = rng.integers(0, 8, 9)  # repeats; rows 8.. never touched
        rg = rng.standard_normal((9, 5)).astype(np.float32)
        ref.step_rows(0, rows, rg)
        if step == 0:
            args = dev(rows.astype(np.int32)), dev(rg)
        elif step == 1:
            args = dev(rows), rg  # a host gradient beside device rows: checked on the host, copied over
        else:
            args = rows, Foreign(dev(rg))
        assert opt.step_rows(0, *args) is True
    np.testing.assert_allclose(d_table.copy_to_host(), mirror, rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(d_table.copy_to_host()[8:], table[8:])
    for name, buf in ref.state_of(0).items():
        got = opt.state_of(0)[name]
        np.testing.assert_allclose(got if name == "step" else got.copy_to_host(), buf, rtol=1e-6, atol=1e-7)
    assert opt.step_rows(0, dev(np.zeros(0, np.int64)), dev(np.zeros((0, 5), np.float32))) is True
    assert opt.steps[0] == 4


def test_step_rows_bad_device_rows(rng):
    p = dev(np.zeros((6, 3), np.float32))
    opt = Adam([p])
    with pytest.raises(TypeError, match="rows: the parameters are host"):
        Adam([np.zeros((6, 3), np.float32)]).step_rows(0, dev(np.array([0])), np.ones((1, 3), np.float32))
    with pytest.raises(TypeError, match="row_grads: the parameters are host"):
        Adam([np.zeros((6, 3), np.float32)]).step_rows(0, [0], dev(np.ones((1, 3), np.float32)))
    with pytest.raises(ValueError, match="rows: index 6 out of range for parameter 0 with 6 rows"):
        opt.step_rows(0, dev(np.array([1, 6])), dev(np.ones((2, 3), np.float32)))
    with pytest.raises(TypeError, match="rows: expected int32 or int64, got float64"):
        opt.step_rows(0, dev(np.array([1.0])), dev(np.ones((1, 3), np.float32)))
    with pytest.raises(TypeError, match="row_grads: expected float32, got float64"):
        opt.step_rows(0, dev(np.array([1])), dev(np.ones((1, 3))))
    with pytest.raises(ValueError, match=r"row_grads: expected shape \[2, 3\]"):
        opt.step_rows(0, dev(np.array([1, 2])), dev(np.ones((2, 4), np.float32)))
    g = np.ones((2, 3), np.float32)
    g[1, 2] = np.nan
    with pytest.raises(ValueError, match=r"row_grads: non-finite value nan at index \(1, 2\) \(parameter 0"):
        opt.step_rows(0, dev(np.array([1, 2])), dev(g))
    skip = Adam([p], nonfinite="skip")
    assert skip.step_rows(0, dev(np.array([1, 2])), dev(g)) is False and skip.skipped_steps == 1
    assert opt.steps[0] == 0 and skip.steps[0] == 0 and np.all(p.copy_to_host() == 0)  # nothing was written
    assert Adam([p], nonfinite="propagate").step_rows(0, dev(np.array([1, 2])), dev(g)) is True
    assert np.isnan(p.copy_to_host()[2, 2])


# --------------------------------------------------------------------------- host traffic
def test_host_round_trips(rng, monkeypatch):
    """Device inputs are never copied: per call one int64 status vector (the value checks) goes up and comes
    back, plus the one int64 that sizes k-hop's rings; no float data moves."""
    g = _graph(rng, 8, 10)
    E, pool = dev(rng.standard_normal((8, 2))), dev(rng.standard_normal((6, 2)))
    anchors, ex = dev(np.array([0, 3])), dev(np.array([[0, -1], [5, 2]]))
    g.device_arrays()  # the graph's CSR is copied once per graph, not per call
    opt = Adam([dev(np.zeros((6, 2), np.float32))])
    rows, rg = dev(np.array([1, 4, 1])), dev(np.ones((3, 2), np.float32))
    miner = HardNegativeMiner("semihard", num_negatives=2, seed=0)
    moved = []
    fake = type(cuda.device_array(1))
    to_host, to_device = fake.copy_to_host, cuda.to_device

    def counting_to_host(self, *a, **kw):
        moved.append(("down", self.dtype))
        return to_host(self, *a, **kw)

    def counting_to_device(x, *a, **kw):
        moved.append(("up", np.asarray(x).dtype))
        return to_device(x, *a, **kw)

    monkeypatch.setattr(fake, "copy_to_host", counting_to_host)
    monkeypatch.setattr(cuda, "to_device", counting_to_device)
    for call, downs in ((lambda: k_hop(g, anchors, 2), 2), (lambda: GraphHardNegativeMiner().mine(E, g, anchors), 2),
                        (lambda: miner.mine(E[:2], E[2:4], pool, exclude=ex), 1),
                        (lambda: opt.step_rows(0, rows, rg), 1)):
        moved.clear()
        call()
        assert [d for d, _ in moved].count("down") == downs, moved
        assert all(dtype == np.int64 for _, dtype in moved), moved
