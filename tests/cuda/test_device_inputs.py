"""Device inputs end to end: the loss functions, combine_gradients and random_walks take device arrays (numba,
or anything exposing ``__cuda_array_interface__``) without copies and return device arrays.

Each check compares against the CPU backend on the same values given as host arrays. Tiny inputs and small
blocks (THREADS = 4, TILE = (4, 2)) so every launch spans several blocks; under NUMBA_ENABLE_CUDASIM=1 each
device-function call costs about a millisecond, so sizes stay small.
"""
import numpy as np
import pytest
from numba import cuda

from fastgnn import Graph
from fastgnn import backend as fb
from fastgnn._check import DeviceChecks, is_device_array
from fastgnn.losses import (MultiObjectiveLoss, combine_gradients, info_nce, local_contrastive, reconstruction,
                            spectral)
from fastgnn.walks import random_walks

pytestmark = [  # shared by the other device-input tests (test_device_mining_optim.py)
    pytest.mark.skipif(not fb.cuda_available(), reason=fb.cuda_status()[1]),
    # the simulator runs the counter-based hash on NumPy scalars, which warn on the intended 64-bit wrap-around
    pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning"),
    pytest.mark.usefixtures("small_blocks"),  # conftest.py
]


class Foreign:
    """A foreign device array: only ``__cuda_array_interface__`` (as CuPy arrays and torch CUDA tensors have)."""

    def __init__(self, d):
        self._d = d

    @property
    def __cuda_array_interface__(self):
        iface = getattr(self._d, "__cuda_array_interface__", None)
        if iface is not None:  # a real GPU
            return iface
        ai = self._d._ary.__array_interface__  # the simulator's device memory is host memory
        return {"shape": ai["shape"], "typestr": ai["typestr"], "data": ai["data"], "strides": ai["strides"],
                "version": 3}


def dev(x):
    return cuda.to_device(np.ascontiguousarray(x))


def host(x):
    """Assert ``x`` is a device array and copy it back for the comparison."""
    assert is_device_array(x) and not isinstance(x, np.ndarray), type(x)
    return x.copy_to_host()


def _close(dtype):
    return dict(rtol=2e-5, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-10, atol=1e-12)


# --------------------------------------------------------------------------- info_nce
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("id_dtype", [np.int32, np.int64])
def test_info_nce_index_negatives(rng, dtype, id_dtype):
    B, K, D, N = 6, 3, 5, 8
    A, P = rng.standard_normal((2, B, D)).astype(dtype)
    T = rng.standard_normal((N, D)).astype(dtype)
    ids = rng.integers(-1, N, (B, K)).astype(id_dtype)
    ids[0, 0] = ids[1, 1] = 5  # a repeated row
    want, wg = info_nce(A, P, ids, table=T, temperature=0.4, backend="cpu")
    loss, g = info_nce(dev(A), dev(P), dev(ids), table=dev(T), temperature=0.4)
    assert isinstance(loss, float)
    np.testing.assert_allclose(loss, want, **_close(dtype))
    np.testing.assert_allclose(host(g["anchors"]), wg["anchors"], **_close(dtype))
    np.testing.assert_allclose(host(g["positives"]), wg["positives"], **_close(dtype))
    rows, values = g["table"]
    np.testing.assert_array_equal(host(rows), wg["table"][0])
    np.testing.assert_allclose(host(values), wg["table"][1], **_close(dtype))
    assert g["anchors"].dtype == dtype and values.dtype == dtype

    # dense buffer, added into in place on the device; per-item losses stay on the device
    buf = dev(np.ones_like(T))
    items, g2 = info_nce(dev(A), dev(P), dev(ids), table=dev(T), temperature=0.4, reduction="none", table_grad=buf)
    assert g2["table"] is buf
    want_items, _ = info_nce(A, P, ids, table=T, temperature=0.4, reduction="none", backend="cpu")
    np.testing.assert_allclose(host(items), want_items, **_close(dtype))
    assert items.dtype == dtype
    dense = np.ones_like(T)
    dense[wg["table"][0]] += wg["table"][1] * B  # "none" gives the gradient of the sum
    np.testing.assert_allclose(buf.copy_to_host(), dense, **_close(dtype))


def test_info_nce_no_negatives_and_float_negatives(rng):
    A, P = rng.standard_normal((2, 3, 2))
    loss, g = info_nce(dev(A), dev(P), dev(np.zeros((3, 0), np.int64)), table=dev(np.ones((4, 2))))
    assert loss == 0.0 and host(g["table"][0]).size == 0 and host(g["table"][1]).shape == (0, 2)
    assert np.all(host(g["anchors"]) == 0)
    Nv = rng.standard_normal((3, 2, 2))
    want, wg = info_nce(A, P, Nv, temperature=0.3, similarity="dot", reduction="sum", backend="cpu")
    loss, g = info_nce(dev(A), dev(P), dev(Nv), temperature=0.3, similarity="dot", reduction="sum")
    np.testing.assert_allclose(loss, want, rtol=1e-12)
    for key in ("anchors", "positives", "negatives"):
        np.testing.assert_allclose(host(g[key]), wg[key], rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("symmetric", [False, True])
def test_info_nce_inbatch(rng, symmetric):
    A, P = rng.standard_normal((2, 5, 3))
    A[2] = 0  # a clamped pair
    for reduction in ("mean", "none"):
        want, wg = info_nce(A, P, symmetric=symmetric, reduction=reduction, backend="cpu")
        loss, g = info_nce(dev(A), dev(P), symmetric=symmetric, reduction=reduction)
        np.testing.assert_allclose(loss if reduction == "mean" else host(loss), want, rtol=1e-9)
        np.testing.assert_allclose(host(g["anchors"]), wg["anchors"], rtol=1e-8, atol=1e-10)
        np.testing.assert_allclose(host(g["positives"]), wg["positives"], rtol=1e-8, atol=1e-10)


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")  # the inf table row, simulated
def test_info_nce_bad_device_inputs(rng):
    A, P = rng.standard_normal((2, 4, 3)).astype(np.float32)
    T = rng.standard_normal((6, 3)).astype(np.float32)
    ids = rng.integers(0, 6, (4, 2))
    with pytest.raises(ValueError, match=r"positives: expected shape \[4, 3\]"):
        info_nce(dev(A), dev(P[:3]))
    with pytest.raises(TypeError, match="anchors: expected float32 or float64, got int64"):
        info_nce(dev(ids), dev(ids))
    with pytest.raises(TypeError, match="positives: dtype float64 differs from anchors"):
        info_nce(dev(A), dev(P.astype(np.float64)))
    with pytest.raises(TypeError, match="negatives: expected int32 or int64, got uint8"):
        info_nce(dev(A), dev(P), dev(ids.astype(np.uint8)), table=dev(T))
    with pytest.raises(ValueError, match="negatives: expected shape"):
        info_nce(dev(A), dev(P), dev(ids[:3]), table=dev(T))
    with pytest.raises(ValueError, match="table: expected shape"):
        info_nce(dev(A), dev(P), dev(ids), table=dev(T[:, :2]))
    with pytest.raises(TypeError, match="table_grad: expected float32, got float64"):
        info_nce(dev(A), dev(P), dev(ids), table=dev(T), table_grad=dev(np.zeros((6, 3))))
    with pytest.raises(TypeError, match="anchors: the device array must be C-contiguous"):
        # a strided view (a real GPU's DeviceNDArray.T launches a transpose and returns a contiguous copy)
        info_nce(dev(np.ones((4, 6), np.float32))[:, ::2], dev(A))
    # value checks run on the device
    with pytest.raises(ValueError, match="negatives: index 6 out of range for table with 6 rows"):
        info_nce(dev(A), dev(P), dev(np.where(ids == ids[1, 1], 6, ids)), table=dev(T))
    with pytest.raises(ValueError, match=r"negatives: negative id -2 \(only -1 is allowed"):
        info_nce(dev(A), dev(P), dev(np.where(ids == ids[0, 0], -2, ids)), table=dev(T))
    bad = A.copy()
    bad[2, 1] = np.nan
    with pytest.raises(ValueError, match=r"anchors: non-finite value nan at index \(2, 1\)"):
        info_nce(dev(bad), dev(P))
    T_bad = T.copy()
    T_bad[ids[3, 0]] = np.inf
    with pytest.raises(ValueError, match=f"table: row {ids[3, 0]}: non-finite value .*inf"):
        info_nce(dev(A), dev(P), dev(ids), table=dev(T_bad))
    buf = dev(np.ones_like(T))  # the table-gradient pass is guarded on the device: nothing is added
    with pytest.raises(ValueError, match=f"table: row {ids[3, 0]}: non-finite value .*inf"):
        info_nce(dev(A), dev(P), dev(ids), table=dev(T_bad), table_grad=buf)
    np.testing.assert_array_equal(buf.copy_to_host(), np.ones_like(T))


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_info_nce_status_and_loss_come_back_in_one_transfer(rng, reduction, host_waits):
    """Index negatives with a dense table gradient: the call waits on the device twice, for its input checks and
    once at its end, where the status pair and the loss sum (in the status buffer's third word) come back
    together; a finite table row whose squared norm overflows is still reported, and nothing is added then."""
    B, K, D, N = 5, 3, 4, 9
    A, P = rng.standard_normal((2, B, D)).astype(np.float32)
    T = rng.standard_normal((N, D)).astype(np.float32)
    ids = rng.integers(0, N, (B, K))
    want, _ = info_nce(A, P, ids, table=T, temperature=0.3, reduction=reduction, backend="cpu")
    dA, dP, dids, dT, buf = dev(A), dev(P), dev(ids), dev(T), dev(np.zeros_like(T))
    host_waits.clear()
    loss, _ = info_nce(dA, dP, dids, table=dT, temperature=0.3, reduction=reduction, table_grad=buf)
    assert len(host_waits) == 2 and all(n <= 8 for _, n in host_waits), host_waits
    if reduction == "none":
        np.testing.assert_allclose(host(loss), want, rtol=2e-5, atol=1e-6)
    else:
        assert isinstance(loss, float)
        np.testing.assert_allclose(loss, want, rtol=2e-5, atol=1e-6)
    T[ids[2, 1], 0] = 3e19  # finite, but its squared norm overflows float32
    buf = dev(np.zeros_like(T))
    with pytest.raises(ValueError, match=f"table: row {ids[2, 1]} is too large"):
        info_nce(dA, dP, dids, table=dev(T), temperature=0.3, reduction=reduction, table_grad=buf)
    np.testing.assert_array_equal(buf.copy_to_host(), 0)


def test_device_inputs_with_backend_cpu_and_mixed_inputs(rng):
    A, P = rng.standard_normal((2, 4, 3))
    T = rng.standard_normal((6, 3))
    ids = rng.integers(0, 6, (4, 2))
    with pytest.raises(ValueError, match="positives: a CUDA device array needs backend 'cuda'"):
        info_nce(A, dev(P), backend="cpu")
    with fb.use_backend("cpu"):  # a default is for host inputs: device inputs still run on CUDA
        loss, g = info_nce(dev(A), dev(P))
    assert is_device_array(g["anchors"])
    # mixed: host arrays are validated on the host and uploaded; the result is on the device
    want, wg = info_nce(A, P, ids, table=T, backend="cpu")
    loss, g = info_nce(A, P, ids, table=dev(T))
    np.testing.assert_allclose(loss, want, rtol=1e-12)
    np.testing.assert_allclose(host(g["table"][1]), wg["table"][1], rtol=1e-10)
    with pytest.raises(ValueError, match="negatives: index 6 out of range"):  # host ids: checked on the host
        info_nce(dev(A), dev(P), np.full((4, 2), 6), table=dev(T))
    with pytest.raises(TypeError, match="table_grad: the inputs are device arrays, so this buffer"):
        info_nce(dev(A), dev(P), ids, table=dev(T), table_grad=np.zeros_like(T))


def test_foreign_arrays_are_used_without_copies(rng):
    A, P = rng.standard_normal((2, 4, 3))
    T = rng.standard_normal((5, 3))
    ids = rng.integers(0, 5, (4, 2))
    buf = dev(np.zeros_like(T))
    want, wg = info_nce(A, P, ids, table=T, backend="cpu")
    loss, g = info_nce(Foreign(dev(A)), Foreign(dev(P)), Foreign(dev(ids)), table=Foreign(dev(T)),
                       table_grad=Foreign(buf))
    np.testing.assert_allclose(loss, want, rtol=1e-12)
    dense = np.zeros_like(T)
    dense[wg["table"][0]] = wg["table"][1]
    np.testing.assert_allclose(buf.copy_to_host(), dense, rtol=1e-10, atol=1e-14)  # written through the view
    np.testing.assert_allclose(host(g["anchors"]), wg["anchors"], rtol=1e-10)
    starts = dev(np.array([0, 2], np.int64))
    g2 = Graph.from_edges([0, 1, 2], [1, 2, 0])
    np.testing.assert_array_equal(host(random_walks(g2, 3, 2, seed=1, start_nodes=Foreign(starts))),
                                  random_walks(g2, 3, 2, seed=1, start_nodes=[0, 2], backend="cpu"))


# --------------------------------------------------------------------------- local contrastive
def test_local_contrastive(rng):
    Z = rng.standard_normal((7, 4))
    pairs = rng.integers(0, 7, (11, 2)).astype(np.int32)
    sim = rng.random(11) < 0.5
    for reduction in ("mean", "none"):
        want, wg = local_contrastive(Z, pairs, sim, margin=2.0, reduction=reduction, backend="cpu")
        loss, g = local_contrastive(dev(Z), dev(pairs), dev(sim), margin=2.0, reduction=reduction)
        np.testing.assert_allclose(loss if reduction == "mean" else host(loss), want, rtol=1e-12)
        np.testing.assert_allclose(host(g["Z"]), wg["Z"], rtol=1e-10, atol=1e-12)
    graph = Graph.from_edges(pairs[:, 0], pairs[:, 1], num_nodes=7)
    for similar in (None, np.arange(graph.num_edges) % 2 == 0):  # the CSR fast path, then the pair path
        want, wg = local_contrastive(Z, graph, similar, backend="cpu")
        loss, g = local_contrastive(dev(Z), graph, similar)
        np.testing.assert_allclose(loss, want, rtol=1e-12)
        np.testing.assert_allclose(host(g["Z"]), wg["Z"], rtol=1e-10, atol=1e-12)
    loss, g = local_contrastive(dev(Z), dev(np.zeros((0, 2), np.int64)))
    assert loss == 0.0 and np.all(host(g["Z"]) == 0)


def test_local_contrastive_bad_device_inputs(rng):
    Z = dev(rng.standard_normal((5, 3)))
    with pytest.raises(ValueError, match=r"pairs: expected shape \[\?, 2\]"):
        local_contrastive(Z, dev(np.zeros((3, 3), np.int64)))
    with pytest.raises(ValueError, match="pairs: index 5 out of range for Z with 5 rows"):
        local_contrastive(Z, dev(np.array([[0, 5]])))
    with pytest.raises(TypeError, match="similar: expected bool, got int64"):
        local_contrastive(Z, dev(np.array([[0, 1]])), dev(np.array([1])))
    with pytest.raises(ValueError, match=r"similar: expected shape \[1\], got \(2,\)"):
        local_contrastive(Z, dev(np.array([[0, 1]])), dev(np.array([True, False])))
    with pytest.raises(ValueError, match="Z: a CUDA device array needs backend 'cuda'"):
        local_contrastive(Z, np.array([[0, 1]]), backend="cpu")


# --------------------------------------------------------------------------- graph losses
@pytest.mark.parametrize("normalization", ["none", "sym", "edge"])
def test_spectral(rng, normalization):
    g = Graph.from_edges(rng.integers(0, 8, 12), rng.integers(0, 8, 12), num_nodes=9, weights=rng.uniform(0.5, 2, 12),
                         symmetrize=normalization != "edge")  # "edge": a directed graph, symmetrised first
    Z = rng.standard_normal((9, 3))
    want, wg = spectral(Z, g, lam=0.5, normalization=normalization, backend="cpu")
    loss, grads = spectral(dev(Z), g, lam=0.5, normalization=normalization)
    np.testing.assert_allclose(loss, want, rtol=1e-12)
    np.testing.assert_allclose(host(grads["Z"]), wg["Z"], rtol=1e-10, atol=1e-12)


def test_reconstruction(rng):
    g = Graph.from_edges(rng.integers(0, 7, 9), rng.integers(0, 7, 9), num_nodes=8)
    Z = (0.5 * rng.standard_normal((8, 3))).astype(np.float32)
    for K, reduction in ((2, "mean"), (0, "none")):
        want, wg = reconstruction(Z, g, num_negatives=K, seed=5, reduction=reduction, backend="cpu")
        loss, grads = reconstruction(dev(Z), g, num_negatives=K, seed=5, reduction=reduction)
        np.testing.assert_allclose(loss if reduction == "mean" else host(loss), want, rtol=2e-5, atol=1e-6)
        np.testing.assert_allclose(host(grads["Z"]), wg["Z"], rtol=2e-5, atol=1e-6)
    again = reconstruction(dev(Z), g, num_negatives=2, seed=5)[1]["Z"]
    np.testing.assert_array_equal(host(again), host(reconstruction(dev(Z), g, num_negatives=2, seed=5)[1]["Z"]))
    empty = Graph.from_edges([], [], num_nodes=3)
    loss, grads = reconstruction(dev(Z[:3]), empty)
    assert loss == 0.0 and np.all(host(grads["Z"]) == 0)


def test_graph_losses_bad_device_inputs(rng):
    g = Graph.from_edges([0, 1], [1, 2])
    with pytest.raises(ValueError, match=r"Z: expected 3 rows \(graph.num_nodes\), got 4"):
        spectral(dev(np.ones((4, 2))), g)
    with pytest.raises(TypeError, match="Z: expected float32 or float64, got int64"):
        reconstruction(dev(np.ones((3, 2), np.int64)), g)
    Z = np.ones((3, 2))
    Z[1, 0] = np.inf
    with pytest.raises(ValueError, match=r"Z: non-finite value inf at index \(1, 0\)"):
        reconstruction(dev(Z), g)
    with pytest.raises(ValueError, match="Z: a CUDA device array needs backend 'cuda'"):
        spectral(dev(np.ones((3, 2))), g, backend="cpu")


# --------------------------------------------------------------------------- combining gradients
def test_combine_gradients(rng):
    gs = [rng.standard_normal((5, 3)).astype(np.float32) for _ in range(5)]
    w = [1.0, -0.5, 2.0, 0.25, 3.0]
    want = combine_gradients(gs, w, backend="cpu")
    np.testing.assert_allclose(host(combine_gradients([dev(x) for x in gs], w)), want, rtol=1e-6, atol=1e-6)
    out = dev(np.full((5, 3), 7.0, np.float32))
    assert combine_gradients([dev(x) for x in gs[:3]] + gs[3:], w, out=out) is out  # mixed: host ones uploaded
    np.testing.assert_allclose(out.copy_to_host(), want, rtol=1e-6, atol=1e-6)
    sp = [(np.array([3, 0, 3]), rng.standard_normal((3, 2))), (np.array([1, 3], np.int32), rng.standard_normal((2, 2)))]
    wr, wv = combine_gradients(sp, [2.0, 3.0], backend="cpu")
    rows, vals = combine_gradients([(dev(r), dev(v)) for r, v in sp], dev(np.array([2.0, 3.0])))
    np.testing.assert_array_equal(host(rows), wr)
    np.testing.assert_allclose(host(vals), wv, rtol=1e-12)
    dense = rng.standard_normal((4, 2))
    want = combine_gradients([dense, *sp], [0.5, 2.0, 3.0], backend="cpu")
    got = combine_gradients([dev(dense), *[(dev(r), dev(v)) for r, v in sp]], [0.5, 2.0, 3.0])
    np.testing.assert_allclose(host(got), want, rtol=1e-12)


def test_combine_gradients_bad_device_inputs(rng):
    a = dev(np.ones((4, 2)))
    with pytest.raises(ValueError, match="grads: shapes differ"):
        combine_gradients([a, dev(np.ones((3, 2)))], [1.0, 1.0])
    with pytest.raises(TypeError, match="grads: dtypes differ"):
        combine_gradients([a, dev(np.ones((4, 2), np.float32))], [1.0, 1.0])
    with pytest.raises(ValueError, match="grads rows: index 4 out of range for dense gradients with 4 rows"):
        combine_gradients([a, (dev(np.array([4])), dev(np.ones((1, 2))))], [1.0, 1.0])
    with pytest.raises(ValueError, match="grads rows: negative id -1"):
        combine_gradients([(dev(np.array([-1])), dev(np.ones((1, 2))))], [1.0])
    with pytest.raises(TypeError, match="out: the inputs are device arrays"):
        combine_gradients([a], [1.0], out=np.zeros((4, 2)))
    with pytest.raises(TypeError, match="out: expected float64, got float32"):
        combine_gradients([a], [1.0], out=dev(np.zeros((4, 2), np.float32)))
    with pytest.raises(ValueError, match=r"grads\[1\]: a CUDA device array needs backend 'cuda'"):
        combine_gradients([np.ones((4, 2)), a], [1.0, 1.0], backend="cpu")


def test_multi_objective_accepts_device_losses():
    mol = MultiObjectiveLoss(2, mode="uncertainty", log_vars=[0.0, 1.0])
    total, g = mol(dev(np.array([1.0, 3.0])))
    want_total, want = mol([1.0, 3.0])
    assert total == want_total
    np.testing.assert_array_equal(g["log_vars"], want["log_vars"])
    gn = MultiObjectiveLoss(2, mode="gradnorm")
    assert gn.gradnorm_step(dev(np.array([1.0, 2.0])), dev(np.array([0.5, 1.0]))) == \
        MultiObjectiveLoss(2, mode="gradnorm").gradnorm_step([1.0, 2.0], [0.5, 1.0])


# --------------------------------------------------------------------------- random walks
@pytest.mark.parametrize("p,q,weighted", [(1.0, 1.0, False), (0.5, 2.0, True)])
def test_random_walks_device_start_nodes(rng, p, q, weighted):
    w = rng.uniform(0.1, 2.0, 12) if weighted else None
    g = Graph.from_edges(rng.integers(0, 8, 12), rng.integers(0, 8, 12), num_nodes=9, weights=w)
    starts = np.array([0, 3, 8, 3, 5], np.int32)
    want = random_walks(g, 4, 2, p=p, q=q, seed=7, start_nodes=starts, backend="cpu")
    got = random_walks(g, 4, 2, p=p, q=q, seed=7, start_nodes=dev(starts))
    assert got.dtype == np.int32 and got.shape == want.shape
    np.testing.assert_array_equal(host(got), want)
    # host copy on request; device output from host start nodes
    np.testing.assert_array_equal(random_walks(g, 4, 2, p=p, q=q, seed=7, start_nodes=dev(starts), output="host"), want)
    full = random_walks(g, 3, 1, p=p, q=q, seed=2, output="device")
    np.testing.assert_array_equal(host(full), random_walks(g, 3, 1, p=p, q=q, seed=2, backend="cpu"))
    assert "walks_device_csr" in g._cache  # the CSR went to the device once


def test_random_walks_bad_device_inputs():
    g = Graph.from_edges([0, 1], [1, 2])
    with pytest.raises(ValueError, match="start_nodes: index 3 out of range for a graph with 3 nodes"):
        random_walks(g, 3, 1, start_nodes=dev(np.array([0, 3])))
    with pytest.raises(TypeError, match="start_nodes: expected int32 or int64, got float64"):
        random_walks(g, 3, 1, start_nodes=dev(np.array([0.0])))
    with pytest.raises(ValueError, match=r"start_nodes: expected a 1-d array"):
        random_walks(g, 3, 1, start_nodes=dev(np.zeros((2, 2), np.int64)))
    with pytest.raises(ValueError, match="start_nodes: a CUDA device array needs backend 'cuda'"):
        random_walks(g, 3, 1, start_nodes=dev(np.array([0])), backend="cpu")
    with pytest.raises(ValueError, match="output: 'device' needs backend 'cuda'"):
        random_walks(g, 3, 1, output="device", backend="cpu")
    with pytest.raises(ValueError, match="output: expected one of"):
        random_walks(g, 3, 1, output="gpu")
    assert random_walks(g, 3, 2, start_nodes=dev(np.zeros(0, np.int64))).shape == (0, 3)


# --------------------------------------------------------------------------- the device primitives
def test_device_grouping_matches_the_cpu(rng):
    from fastgnn.kernels.cpu.losses import group_by_row as cpu_group
    from fastgnn.kernels.cuda import arrays as ka

    for n, ncols in ((1, 1), (13, 3), (20, 4)):
        keys = rng.integers(-1, 6, n)
        want = cpu_group(keys, 6, ncols)
        got = ka.group_by_row(dev(keys), ncols)
        for w, d in zip(want, got):
            np.testing.assert_array_equal(host(d), w)
        skeys, pos = ka.sort_keys(dev(keys))
        starts = host(ka.key_starts(skeys, 6))
        np.testing.assert_array_equal(starts, np.searchsorted(np.sort(keys[keys >= 0]), np.arange(7)))


def test_device_sum_is_the_float64_sum(rng, monkeypatch):
    from fastgnn.kernels.cuda import arrays as ka

    monkeypatch.setattr(ka, "_PARTS", 3)  # several first-pass blocks
    x = rng.standard_normal(300)
    out = dev(np.zeros(2))
    ka.sum_into(dev(x), out, 1)
    np.testing.assert_allclose(out.copy_to_host(), [0.0, x.sum()], rtol=1e-12)


def test_device_checks_report_like_the_host():
    checks = DeviceChecks()
    checks.finite(dev(np.array([1.0, 2.0])), "a")
    checks.index(dev(np.array([0, 4, 9, -1], np.int32)), "ids", upper=10, allow_pad=True)
    checks.run()  # all fine
    checks.index(dev(np.array([3, 12, 11])), "ids", upper=10, what="table with 10 rows")
    with pytest.raises(ValueError, match="ids: index 12 out of range for table with 10 rows"):
        checks.run()


def test_optimizer_over_foreign_device_parameters(rng):
    # parameters exposing only __cuda_array_interface__ (CuPy, torch CUDA tensors): updated in the caller's memory
    from fastgnn.optim import Adam

    p = rng.standard_normal((6, 3))
    g = rng.standard_normal((6, 3))
    want = p.copy()
    Adam([want], lr=0.1).step([g])
    d = dev(p)
    opt = Adam([Foreign(d)], lr=0.1)
    opt.step([Foreign(dev(g))])  # a foreign gradient too
    np.testing.assert_allclose(d.copy_to_host(), want, rtol=1e-12)
    with pytest.raises(TypeError, match=r"params\[0\]: expected float32 or float64"):
        Adam([Foreign(dev(np.zeros(3, np.int64)))])
