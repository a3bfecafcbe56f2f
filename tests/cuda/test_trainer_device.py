"""The Trainer's device-resident table (``model="table"``, ``positives="neighbors"``, ``backend="cuda"``).

The same seed draws the same indices on both backends, so the device run's history and table follow the CPU run's
(to float rounding: the device sums in other orders). Tiny graph (11 nodes, one isolated), small blocks so every
launch spans several blocks; under NUMBA_ENABLE_CUDASIM=1 each device-function call costs about a millisecond.
"""
import numpy as np
import pytest

from fastgnn import Graph
from fastgnn import backend as fb
from fastgnn._check import is_device_array
from fastgnn.schedules import CurriculumScheduler, CurriculumStage
from fastgnn.trainer import EarlyStopping, Trainer, TrainingDiverged

pytestmark = [
    pytest.mark.skipif(not fb.cuda_available(), reason=fb.cuda_status()[1]),
    pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning"),
    # the simulator runs the device NaN/inf scan (y * 0 != 0) on NumPy scalars, which warn on inf * 0
    pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning"),
]

ALL = ("infonce", "local", "spectral", "reconstruction")


@pytest.fixture(autouse=True)
def small_blocks(monkeypatch):
    from fastgnn.kernels.cuda import arrays as ka
    from fastgnn.kernels.cuda import losses as kl

    monkeypatch.setattr(kl, "THREADS", 4)
    monkeypatch.setattr(kl, "TILE", (4, 2))
    monkeypatch.setattr(ka, "THREADS", 4)


@pytest.fixture(scope="module")
def graph():
    src = [0, 1, 2, 3, 4, 5, 6, 7, 8, 0, 2, 5]
    dst = [1, 2, 3, 4, 5, 6, 7, 8, 0, 4, 7, 9]
    return Graph.from_edges(src, dst, num_nodes=11)  # node 10 is isolated: never an anchor


def trainer(backend, objectives=("infonce",), **kw):
    opts = dict(positives="neighbors", dim=4, lr=0.05, num_negatives=2, seed=0, dtype=np.float64)
    opts.update(kw)
    return Trainer("table", objectives, backend=backend, **opts)


def assert_histories_close(hd, hc, rtol):
    assert len(hd) == len(hc)
    for rd, rc in zip(hd.epochs, hc.epochs):
        assert rd["losses"].keys() == rc["losses"].keys()
        np.testing.assert_allclose([rd["loss"], *rd["losses"].values()], [rc["loss"], *rc["losses"].values()],
                                   rtol=rtol, atol=1e-12)
        np.testing.assert_allclose(list(rd["weights"].values()), list(rc["weights"].values()), rtol=rtol)
        assert (rd["temperature"], rd["num_negatives"], rd["stage"]) == (rc["temperature"], rc["num_negatives"],
                                                                         rc["stage"])


def curriculum():
    """One stage with a difficulty threshold: mined-negative filtering runs (on the device for the device run)."""
    return CurriculumScheduler([CurriculumStage("only", 2, 0.5, 2, {"infonce": 1.0, "local": 0.2, "spectral": 0.5,
                                                                     "reconstruction": 0.3}, 0.6)])


@pytest.mark.parametrize("objectives, extra", [
    (("infonce",), {}),  # degree^0.75 negatives (index ids into the device table)
    (("infonce",), {"miner": None, "dtype": np.float32}),  # in-batch negatives
    (ALL, {"num_negatives": 1}),  # K = 1 (and fewer reconstruction negatives to sort on the simulator)
    # the difficulty filter on the device, GradNorm from device gradient norms
    (("infonce", "spectral"), {"curriculum": curriculum(), "combine": "gradnorm"}),
    (("infonce", "local"), {"combine": "uncertainty", "batch_size": 6}),
], ids=["infonce", "inbatch-float32", "all", "curriculum-gradnorm", "uncertainty-batch"])
def test_device_history_matches_cpu(graph, objectives, extra):
    """Same seed, same indices: the losses, weights and tables agree to rounding (summation orders differ)."""
    rtol = 1e-9 if extra.get("dtype", np.float64) == np.float64 else 1e-4
    cpu = trainer("cpu", objectives, **extra)
    hc = cpu.fit(graph, epochs=2)
    dev = trainer("cuda", objectives, **extra)
    hd = dev.fit(graph, epochs=2)
    assert_histories_close(hd, hc, rtol=rtol)
    np.testing.assert_allclose(dev.embed(), cpu.embed(), rtol=rtol, atol=rtol * 1e-3)
    np.testing.assert_allclose(dev.mol.weights, cpu.mol.weights, rtol=rtol)
    np.testing.assert_allclose(dev.mol.log_vars, cpu.mol.log_vars, rtol=rtol)


def test_table_and_optimizer_state_stay_on_the_device(graph, monkeypatch):
    from fastgnn.trainer._device import DeviceTable

    copies = []
    real_pull = DeviceTable.pull

    def counting_pull(self):
        copies.append(self.stale)  # a pull copies only when the device table is newer
        return real_pull(self)

    monkeypatch.setattr(DeviceTable, "pull", counting_pull)
    seen = []

    def inspect(tr, rec):
        table = tr._dev.table
        seen.append((is_device_array(table) and not isinstance(table, np.ndarray),
                     tr.optimizer.params[0] is table,
                     all(is_device_array(v) for k, v in tr.optimizer.state_of(0).items() if k != "step"),
                     tr._dev.stale))

    tr = trainer("cuda", ("infonce", "spectral"))
    tr.fit(graph, epochs=2, callbacks=[inspect])
    assert seen == [(True, True, True, True)] * 2
    assert sum(copies) == 1  # one copy back, at the end of fit
    assert tr._dev.stale is False
    np.testing.assert_array_equal(tr.model.weight.data, tr._dev.table.copy_to_host())
    Z = tr.embed()
    assert type(Z) is np.ndarray and Z.shape == (11, 4) and Z.dtype == np.float64
    assert sum(copies) == 1  # the host copy was current: embed() copied nothing
    # the host table is the newer one between fits: a later fit starts from it (as on the CPU)
    cpu = trainer("cpu", ("infonce", "spectral"))
    cpu.fit(graph, epochs=2)
    for t in (tr, cpu):
        t.model.weight.data[...] = np.linspace(-1, 1, 44).reshape(11, 4)
    h = tr.fit(graph, epochs=3)
    assert_histories_close(h, cpu.fit(graph, epochs=3), rtol=1e-9)


def test_eval_fn_and_callbacks_read_host_copies(graph):
    got = []
    tr = trainer("cuda")
    h = tr.fit(graph, epochs=2, eval_fn=lambda Z: got.append(Z.copy()) or {"norm": float(np.linalg.norm(Z))},
               callbacks=[lambda t, rec: got.append(t.embed())])
    assert all(type(z) is np.ndarray for z in got) and len(got) == 4
    np.testing.assert_array_equal(got[2], got[3])
    assert h["norm"][1] == pytest.approx(np.linalg.norm(tr.embed()))
    assert not np.array_equal(got[0], got[2])  # the device table moved between the epochs


def test_checkpoint_resume_is_bit_identical(graph, tmp_path):
    objs = ("infonce",)
    full = trainer("cuda", objs)
    full.fit(graph, epochs=2)
    ck = tmp_path / "ck.pkl"
    part = trainer("cuda", objs)
    part.fit(graph, epochs=1, checkpoint=ck)
    assert ck.exists() and not list(tmp_path.glob(".ckpt-*"))
    resumed = trainer("cuda", objs)
    h = resumed.fit(graph, epochs=2, resume=ck)  # the table and Adam's moments come back onto the device
    assert len(h) == 2 and resumed.epoch == 2
    np.testing.assert_array_equal(resumed.embed(), full.embed())
    # the checkpoint holds host arrays: a CPU trainer resumes from it too, and follows the device run closely
    on_cpu = trainer("cpu", objs)
    on_cpu.fit(graph, epochs=2, resume=ck)
    np.testing.assert_allclose(on_cpu.embed(), full.embed(), rtol=1e-9, atol=1e-12)


def test_early_stopping_restores_the_best_state(graph):
    tr = trainer("cuda")
    h = tr.fit(graph, epochs=10, early_stopping=EarlyStopping(patience=1, min_delta=1e9))
    assert h.stopped_early and len(h) == 2 and h.best_epoch == 0
    one = trainer("cpu")
    one.fit(graph, epochs=1)  # the state after epoch 0
    np.testing.assert_allclose(tr.embed(), one.embed(), rtol=1e-9, atol=1e-12)
    np.testing.assert_array_equal(tr._dev.table.copy_to_host(), tr.embed())  # restored on the device too


def test_divergence_restores_last_good_state(graph, monkeypatch):
    from fastgnn import losses

    tr = trainer("cuda", ("infonce", "spectral"), dtype=np.float32)
    tr.fit(graph, epochs=1)
    good = tr.embed()
    real = losses.spectral

    def broken(Z, graph, **kw):
        assert is_device_array(Z)
        loss, g = real(Z, graph, **kw)
        return float("nan"), g

    with monkeypatch.context() as m:
        m.setattr(losses, "spectral", broken)
        with pytest.raises(TrainingDiverged, match=r"epoch 1, step 0: loss component 'spectral' is nan"):
            tr.fit(graph, epochs=3)
    np.testing.assert_array_equal(tr.embed(), good)
    tr.optimizer.lr = 1e38  # the next step overflows float32
    with pytest.raises(TrainingDiverged, match=r"epoch 1, step 0: parameters became non-finite after the "
                                                r"optimizer step; restored to the last good epoch"):
        tr.fit(graph, epochs=3)
    np.testing.assert_array_equal(tr.model.weight.data, good)  # the host copy is current after fit raised
    np.testing.assert_array_equal(tr._dev.table.copy_to_host(), good)


@pytest.mark.parametrize("miner", ["khop", "similarity"])
def test_builtin_miners_take_the_device_table(graph, miner, monkeypatch):
    from fastgnn import mining

    cls = mining.GraphHardNegativeMiner if miner == "khop" else mining.HardNegativeMiner
    real, inputs = cls.mine, []

    def recording(self, *args, **kw):
        inputs.append([is_device_array(a) for a in args if a is not None and not isinstance(a, Graph)])
        return real(self, *args, **kw)

    monkeypatch.setattr(cls, "mine", recording)
    kw = dict(miner=miner, hard_ratio=0.5, num_negatives=2)
    hd = trainer("cuda", **kw).fit(graph, epochs=1)
    assert len(inputs) == 1 and all(any(flags) for flags in inputs)  # embeddings passed as device arrays
    hc = trainer("cpu", **kw).fit(graph, epochs=1)
    assert_histories_close(hd, hc, rtol=1e-9)


def test_user_miner_gets_host_arrays(graph):
    seen = []

    class Recorder:
        num_negatives = 2

        def mine(self, anchors, positives, pool, exclude=None):
            seen.append(type(pool) is np.ndarray and type(anchors) is np.ndarray)
            return np.zeros((len(anchors), 2), np.int64) + (np.asarray(exclude)[:, :1] + 1) % 11

    tr = trainer("cuda", miner=Recorder(), hard_ratio=1.0)
    h = tr.fit(graph, epochs=1)
    assert seen == [True] and np.isfinite(h["loss"]).all()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_kernels_match_the_host_code(rng, dtype):
    """gather_rows = Z[idx], difficulty_filter = trainer._apply_difficulty."""
    from fastgnn.kernels.cuda import arrays as ka
    from fastgnn.kernels.cuda import trainer as kt
    from fastgnn.trainer._parts import _apply_difficulty

    N, D, B, K = 7, 3, 5, 4
    Z = rng.standard_normal((N, D)).astype(dtype)
    Z[6] = 0  # a zero row: cosine clamped
    anchors = np.array([0, 2, 3, 5, 6])
    pos = np.array([2, 2, 6, 0, 2])  # repeats, and rows that are also anchors
    dZ = ka.upload(Z)
    keys = ka.upload(np.concatenate([anchors, pos]))
    np.testing.assert_array_equal(kt.gather_rows(dZ, keys).copy_to_host(), Z[np.concatenate([anchors, pos])])

    ids = rng.integers(-1, N, (B, K))
    ids[4] = -1  # a row of padding only
    ids[1, 2] = ids[1, 0]
    for threshold in (0.0, 0.3, 0.6, 1.0):
        got = kt.difficulty_filter(dZ, ka.upload(anchors), ka.upload(ids), threshold).copy_to_host()
        np.testing.assert_array_equal(got, _apply_difficulty(Z, anchors, ids, threshold))


def test_uniform_negatives_are_drawn_on_the_device(graph):
    """The device draws (CUDA ``noise_draws``) are the host's, id for id; an edgeless graph gives all -1."""
    from fastgnn.trainer._parts import _uniform_negatives

    anchors = np.array([0, 3, 3, 9, 1, 2, 5])
    got = _uniform_negatives(graph, anchors, 6, np.random.default_rng(4), device=True)
    assert is_device_array(got) and got.shape == (7, 6)
    host = _uniform_negatives(graph, anchors, 6, np.random.default_rng(4))
    np.testing.assert_array_equal(got.copy_to_host(), host)
    assert (host == -1).any() and not (host == 10).any()  # the anchor itself; never the isolated node
    empty = Graph.from_edges(np.array([], np.int64), np.array([], np.int64), num_nodes=3)
    none = _uniform_negatives(empty, np.arange(3), 2, np.random.default_rng(0), device=True)
    np.testing.assert_array_equal(none.copy_to_host(), np.full((3, 2), -1))
    assert _uniform_negatives(graph, anchors[:0], 2, np.random.default_rng(0), device=True).shape == (0, 2)


@pytest.mark.parametrize("miner", ["uniform", None])
def test_infonce_table_gradient_matches_the_host_scatter(graph, miner):
    """The device scatter of the anchors' and positives' gradients (repeated positives) = the host's np.add.at."""
    dev, cpu = trainer("cuda", miner=miner, batch_size=8), trainer("cpu", miner=miner, batch_size=8)
    for t in (dev, cpu):
        t._build(graph.num_nodes, 0)
    s = cpu._settings(0)
    loss_c, g_c = cpu._neighbour_infonce(graph, cpu.model.weight.data, s, np.random.default_rng(5))
    loss_d, g_d = dev._neighbour_infonce(graph, dev._dev.table, s, np.random.default_rng(5))
    assert is_device_array(g_d)
    assert loss_d == pytest.approx(loss_c, rel=1e-12)
    np.testing.assert_allclose(g_d.copy_to_host(), g_c, rtol=1e-12, atol=1e-15)


def test_backend_from_the_environment_or_context(graph, monkeypatch):
    """FASTGNN_BACKEND=cuda (or use_backend) makes backend=None device-resident; "auto" never picks the simulator."""
    monkeypatch.setenv("FASTGNN_BACKEND", "cuda")
    tr = Trainer("table", positives="neighbors", dim=4, seed=0)
    tr._build(graph.num_nodes, 0)
    assert tr._dev is not None and tr.optimizer.params[0] is tr._dev.table
    monkeypatch.setenv("FASTGNN_BACKEND", "cpu")
    with fb.use_backend("cuda"):
        tr = Trainer("table", positives="neighbors", dim=4, seed=0)
        tr._build(graph.num_nodes, 0)
    assert tr._dev is not None
    tr = Trainer("table", positives="neighbors", dim=4, seed=0)
    tr._build(graph.num_nodes, 0)
    assert tr._dev is None and type(tr.optimizer.params[0]) is np.ndarray


def test_anchors_cross_once_an_epoch(graph, monkeypatch):
    """The epoch's anchors are copied to the device once, and the negatives, InfoNCE and the curriculum's
    difficulty filter all read that copy."""
    from fastgnn.kernels.cuda import arrays as ka
    from fastgnn.trainer import _device

    sizes = []
    real = ka.upload

    def counting_upload(x):
        sizes.append(np.asarray(x).shape)
        return real(x)

    monkeypatch.setattr(_device._arrays(), "upload", counting_upload)
    tr = trainer("cuda", ("infonce",), curriculum=curriculum(), batch_size=7)
    tr.fit(graph, epochs=2)
    assert sizes.count((7,)) == 4  # per epoch: the anchors once, the positives once
    assert (7, 2) not in sizes and (7, 1) not in sizes, sizes  # no [B, K] negatives drawn on the host


def test_an_epoch_waits_for_the_device_four_times(graph, host_waits):
    """Neighbour InfoNCE on the device table: per epoch the host waits for the device at four points, each reading a
    few numbers (InfoNCE's input checks, its status and its loss in one transfer, the summed gradient's finiteness flag, the
    stepped table's); the table crosses once, when fit returns. One more wait an epoch is a regression."""
    tr = trainer("cuda")
    tr.fit(graph, epochs=1)  # first epoch: set-up reads (the graph's checks, the status words' first reset)
    host_waits.clear()
    tr.fit(graph, epochs=4)
    epochs, pull = host_waits[:-1], host_waits[-1]
    assert pull == ("copy", 11 * 4)  # the one pull, at the end of fit
    assert len(epochs) == 3 * 4 and all(n <= 8 for _, n in epochs), epochs
