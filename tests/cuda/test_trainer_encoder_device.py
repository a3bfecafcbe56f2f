"""The Trainer's device-resident GNN encoders (``model="gcn" | "sage" | "gat"`` or a module, ``backend="cuda"``).

The parameters, Adam's state, the node features and the encoder's forward and backward stay on the device for the
whole of ``fit``; the feature masks are drawn on the host with the CPU path's RNG calls, and the dropped-edge views
and the negatives on the device by the twins of the CPU path's kernels, so a seed gives the CPU run's history to
rounding. Tiny graph and widths: under NUMBA_ENABLE_CUDASIM=1 every GPU thread is a Python thread.
"""
import numpy as np
import pytest
import scipy.sparse as sp

from fastgnn import Graph
from fastgnn import backend as fb
from fastgnn import nn
from fastgnn._check import is_device_array
from fastgnn.trainer import EarlyStopping, Trainer, TrainingDiverged

pytestmark = [
    pytest.mark.skipif(not fb.cuda_available(), reason=fb.cuda_status()[1]),
    pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning"),
    pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning"),
]


@pytest.fixture(scope="module")
def graph():
    src = [0, 1, 2, 3, 4, 5, 6, 7, 8, 0, 2, 5]
    dst = [1, 2, 3, 4, 5, 6, 7, 8, 0, 4, 7, 9]
    return Graph.from_edges(src, dst, num_nodes=11)  # node 10 is isolated


@pytest.fixture(scope="module")
def features():
    return np.random.default_rng(3).standard_normal((11, 6))


def trainer(backend, model="gcn", objectives=("infonce",), **kw):
    opts = dict(positives="views", dim=4, hidden=5, lr=0.02, num_negatives=2, seed=0, dtype=np.float64)
    opts.update(kw)
    return Trainer(model, objectives, backend=backend, **opts)


def assert_close(hd, hc, rtol):
    assert len(hd) == len(hc)
    for rd, rc in zip(hd.epochs, hc.epochs):
        np.testing.assert_allclose([rd["loss"], *rd["losses"].values()], [rc["loss"], *rc["losses"].values()],
                                   rtol=rtol, atol=1e-12)


SPARSE = sp.random(11, 40, density=0.05, random_state=2, format="csr")  # stays sparse: a sparse first layer


@pytest.mark.parametrize("model, objectives, extra", [
    ("gcn", ("infonce",), {}),  # GRACE: two views, projection head, symmetric in-batch InfoNCE
    ("sage", ("infonce", "local"), {"positives": "neighbors", "dtype": np.float32}),
    ("gat", ("infonce", "spectral"), {"features": SPARSE, "combine": "gradnorm", "heads": 2}),
    ("gcn", ("infonce", "reconstruction"), {"positives": "neighbors", "miner": "similarity", "hard_ratio": 0.5,
                                            "layers": 1}),
], ids=["grace-gcn", "sage-neighbors-float32", "gat-sparse-gradnorm", "gcn-mined"])
def test_device_history_matches_cpu(graph, features, model, objectives, extra):
    extra = dict(extra)
    X = extra.pop("features", features)
    rtol = 1e-4 if extra.get("dtype") == np.float32 else 1e-9
    hc = (cpu := trainer("cpu", model, objectives, **extra)).fit(graph, epochs=2, features=X)
    hd = (dev := trainer("cuda", model, objectives, **extra)).fit(graph, epochs=2, features=X)
    assert dev._device_model() is not None and cpu._dev is None
    assert_close(hd, hc, rtol)
    np.testing.assert_allclose(dev.embed(graph, X), cpu.embed(graph, X), rtol=100 * rtol, atol=1e-6)


def test_parameters_and_state_stay_on_the_device(graph, features, monkeypatch):
    from fastgnn.trainer._device import DeviceModel

    pulls = []
    real_pull = DeviceModel.pull
    monkeypatch.setattr(DeviceModel, "pull", lambda self: pulls.append(self.stale) or real_pull(self))
    tr = trainer("cuda")
    tr._build(11, 6)
    before = [p.data for p in tr._parameters()]
    seen = []

    def inspect(t, rec):
        dm = t._dev
        seen.append((all(is_device_array(p.data) for p in t._parameters()),
                     all(a is b for a, b in zip(t.optimizer.params, dm.arrays)),
                     all(is_device_array(v) for i in range(len(dm.arrays))
                         for k, v in t.optimizer.state_of(i).items() if k != "step"),
                     dm.stale))

    tr.fit(graph, epochs=2, features=features, callbacks=[inspect])
    assert seen == [(True, True, True, True)] * 2
    assert sum(pulls) == 1  # one copy back, when fit returns
    after = [p.data for p in tr._parameters()]
    assert all(a is b and type(a) is np.ndarray for a, b in zip(after, before))  # refreshed in place
    for h, d in zip(after, tr._dev.arrays):
        np.testing.assert_array_equal(h, d.copy_to_host())
    Z = tr.embed(graph, features)  # on the device, from the host parameters
    assert type(Z) is np.ndarray and Z.shape == (11, 4)
    assert all(type(p.data) is np.ndarray for p in tr._parameters())


def test_an_epoch_waits_for_the_device_four_times(graph, features, host_waits):
    """A GCN encoder with neighbour InfoNCE: per epoch the host waits for the device at four points, each reading a
    few numbers (InfoNCE's input checks, its status and its loss in one transfer, the guarded Adam step's flag, the stepped
    parameters' flag); the parameters cross once each, when fit returns. One more wait an epoch is a regression."""
    tr = trainer("cuda", positives="neighbors")
    tr.fit(graph, epochs=1, features=features)
    host_waits.clear()
    tr.fit(graph, epochs=4, features=features)
    sizes = [p.data.size for p in tr._parameters()]
    epochs, pulls = host_waits[:-len(sizes)], host_waits[-len(sizes):]
    assert sorted(pulls) == sorted(("copy", s) for s in sizes)  # the one pull of each, at the end of fit
    assert len(epochs) == 3 * 4 and all(n <= 8 for _, n in epochs), epochs


def test_user_module_on_the_device(graph, features):
    def make():
        f64 = dict(dtype=np.float64)
        return nn.Sequential(nn.GCNConv(6, 5, seed=4, **f64), nn.ELU(), nn.Dropout(0.3, seed=1),
                             nn.GCNConv(5, 4, seed=5, **f64))

    kw = dict(positives="neighbors", dim=4, num_negatives=2, seed=0, dtype=np.float64, lr=0.02)
    hc = Trainer(make(), ("infonce",), backend="cpu", **kw).fit(graph, epochs=2, features=features)
    hd = Trainer(make(), ("infonce",), backend="cuda", **kw).fit(graph, epochs=2, features=features)
    assert_close(hd, hc, 1e-9)


def test_checkpoint_resume_and_early_stopping(graph, features, tmp_path):
    full = trainer("cuda")
    full.fit(graph, epochs=2, features=features)
    ck = tmp_path / "ck.pkl"
    trainer("cuda").fit(graph, epochs=1, features=features, checkpoint=ck)
    resumed = trainer("cuda")
    resumed.fit(graph, epochs=2, features=features, resume=ck)
    np.testing.assert_array_equal(resumed.embed(graph, features), full.embed(graph, features))
    on_cpu = trainer("cpu")
    on_cpu.fit(graph, epochs=2, features=features, resume=ck)
    np.testing.assert_allclose(on_cpu.embed(graph, features), full.embed(graph, features), rtol=1e-8, atol=1e-10)
    es = trainer("cuda")
    h = es.fit(graph, epochs=5, features=features, early_stopping=EarlyStopping(patience=1, min_delta=1e9))
    assert h.stopped_early and len(h) == 2
    one = trainer("cpu")
    one.fit(graph, epochs=1, features=features)
    np.testing.assert_allclose(es.embed(graph, features), one.embed(graph, features), rtol=1e-8, atol=1e-10)


def test_divergence_restores_last_good_state(graph, features, monkeypatch):
    from fastgnn import losses

    tr = trainer("cuda", dtype=np.float32)
    tr.fit(graph, epochs=1, features=features)
    good = [p.data.copy() for p in tr._parameters()]
    real = losses.info_nce

    def nan_grads(*args, **kw):
        loss, g = real(*args, **kw)
        from fastgnn._autograd_device import scaled

        return loss, {k: scaled(v, float("nan")) for k, v in g.items()}

    with monkeypatch.context() as m:
        m.setattr(losses, "info_nce", nan_grads)
        with pytest.raises(TrainingDiverged, match=r"epoch 1, step 0: loss component 'gradient' is nan"):
            tr.fit(graph, epochs=3, features=features)
    for p, g in zip(tr._parameters(), good):
        np.testing.assert_array_equal(p.data, g)
    tr.optimizer.lr = 1e38  # the next step overflows float32
    with pytest.raises(TrainingDiverged, match="parameters became non-finite after the optimizer step"):
        tr.fit(graph, epochs=3, features=features)
    for p, d, g in zip(tr._parameters(), tr._dev.arrays, good):
        np.testing.assert_array_equal(p.data, g)
        np.testing.assert_array_equal(d.copy_to_host(), g)


def test_device_features_are_used_in_place(graph, features):
    from numba import cuda

    dX = cuda.to_device(features)
    h = trainer("cuda", layers=1).fit(graph, epochs=1, features=dX)
    hc = trainer("cpu", layers=1).fit(graph, epochs=1, features=features)
    assert_close(h, hc, 1e-9)
    bad = features.copy()
    bad[3, 2] = np.nan
    with pytest.raises(ValueError, match="features"):
        trainer("cuda").fit(graph, epochs=1, features=cuda.to_device(bad))
    with pytest.raises(TypeError, match="features: expected float64"):
        trainer("cuda").fit(graph, epochs=1, features=cuda.to_device(features.astype(np.float32)))
    with pytest.raises(ValueError, match="features: a CUDA device array needs backend 'cuda'"):
        trainer("cpu").fit(graph, epochs=1, features=dX)
