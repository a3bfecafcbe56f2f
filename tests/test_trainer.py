import numpy as np
import pytest

from fastgnn import datasets, losses
from fastgnn.cli import main
from fastgnn.schedules import CurriculumScheduler, CurriculumStage, LossWeightScheduler, TemperatureScheduler
from fastgnn.trainer import EarlyStopping, Trainer, TrainingDiverged, drop_edges, mask_features


@pytest.fixture(scope="module")
def pp():
    return datasets.planted_partition(300, 3, 8.0, 0.9, seed=1)


def probe(Z, labels):
    from fastgnn import evaluate

    return evaluate.node_classification(Z, labels, train_ratio=0.5, seed=0)["accuracy"]


def test_table_model_full_pipeline_learns_communities(pp):
    tr = Trainer("table", ("infonce", "local", "spectral", "reconstruction"), positives="neighbors", dim=16,
                 lr=0.05, weight_decay=0.0, curriculum="default", seed=0)
    h = tr.fit(pp)
    assert len(h) == 60
    assert [r["stage"] for r in h.epochs[9:11]] == ["easy", "medium"]
    assert h[0]["temperature"] == 0.5 and h[59]["temperature"] == 0.1
    assert h[59]["num_negatives"] == 20
    assert h["infonce"][-1] < h["infonce"][0]
    assert set(h[0]["losses"]) == {"infonce", "local", "spectral", "reconstruction"}
    Z = tr.embed()
    assert Z.shape == (300, 16) and np.isfinite(Z).all()
    assert probe(Z, pp.labels) > 0.9


@pytest.mark.parametrize("model", ["gcn", "sage", "gat"])
def test_gnn_views_run_and_reduce_loss(model):
    ds = datasets.karate_club()
    tr = Trainer(model, ("infonce", "spectral"), positives="views", dim=8, hidden=16, heads=2, lr=0.01, seed=0)
    h = tr.fit(ds, epochs=15)
    assert np.mean(h["infonce"][-3:]) < h["infonce"][0]
    Z = tr.embed(ds.graph)
    assert Z.shape == (34, 8) and np.isfinite(Z).all()


def test_schedulers_drive_temperature_and_weights(pp):
    tr = Trainer("table", ("infonce", "spectral"), positives="neighbors", dim=8, lr=0.05,
                 temperature=TemperatureScheduler(1.0, 0.1, 10, "linear"),
                 loss_weights=LossWeightScheduler({"infonce": 1.0, "spectral": 0.0},
                                                  {"infonce": 1.0, "spectral": 1.0}, 4), seed=0)
    h = tr.fit(pp, epochs=6)
    assert h[5]["temperature"] == pytest.approx(0.55)
    assert h[0]["weights"]["spectral"] == 0.0 and h[4]["weights"]["spectral"] == 1.0


@pytest.mark.parametrize("combine", ["uncertainty", "gradnorm"])
def test_multi_objective_modes_move_their_weights(pp, combine):
    tr = Trainer("table", ("infonce", "reconstruction"), positives="neighbors", dim=8, lr=0.05, combine=combine, seed=0)
    tr.fit(pp, epochs=5)
    if combine == "uncertainty":
        assert np.any(tr.mol.log_vars != 0)
    else:
        assert not np.allclose(tr.mol.weights, 1.0) and np.isclose(tr.mol.weights.sum(), 2.0)


@pytest.mark.parametrize("miner", ["khop", "similarity", None])
def test_miners_plug_in(pp, miner):
    tr = Trainer("table", ("infonce",), positives="neighbors", dim=8, lr=0.05, miner=miner, num_negatives=4, seed=0)
    h = tr.fit(pp, epochs=3)
    assert np.isfinite(h["loss"]).all()


@pytest.mark.parametrize("ratio, hard", [(0.0, 0), (0.25, 1), (0.5, 2), (1.0, 4)])
def test_hard_ratio_mixes_mined_and_uniform_negatives(pp, ratio, hard):
    """ceil(hard_ratio·K) columns come from the miner, the rest are degree^0.75 draws."""
    calls = []

    class Recorder:
        num_negatives = 4

        def mine(self, anchors, positives, pool, exclude=None):
            calls.append(len(anchors))
            return np.full((len(anchors), 4), -1, np.int64)  # all padding: easy to find in the output

    tr = Trainer("table", ("infonce",), positives="neighbors", dim=8, lr=0.05, miner=Recorder(), hard_ratio=ratio,
                 num_negatives=4, seed=0)
    tr.fit(pp, epochs=1)
    Zd = tr.embed()
    anchors = np.arange(pp.graph.num_nodes)
    ids = tr._negatives(pp.graph, Zd, anchors, tr._settings(0), np.random.default_rng(0))
    assert ids.shape == (anchors.size, 4)
    assert (ids[:, :hard] == -1).all()
    assert hard == 4 or (ids[:, hard:] >= 0).mean() > 0.9  # uniform draws (−1 only where a draw hit the anchor)
    assert bool(calls) == (hard > 0)


def test_hard_ratio_is_validated():
    with pytest.raises(ValueError, match="hard_ratio"):
        Trainer("table", ("infonce",), positives="neighbors", hard_ratio=1.5)


def test_early_stopping_and_callbacks(pp):
    tr = Trainer("table", ("infonce",), positives="neighbors", dim=8, lr=0.05, seed=0)
    h = tr.fit(pp, epochs=50, early_stopping=EarlyStopping(patience=2, min_delta=1e9))
    assert h.stopped_early and len(h) == 3 and h.best_epoch == 0
    tr2 = Trainer("table", ("infonce",), positives="neighbors", dim=8, lr=0.05, seed=0)
    seen = []
    h2 = tr2.fit(pp, epochs=50, callbacks=[lambda t, rec: seen.append(rec["epoch"]) or rec["epoch"] == 4])
    assert len(h2) == 5 and seen == [0, 1, 2, 3, 4]
    tr3 = Trainer("table", ("infonce",), positives="neighbors", dim=8, lr=0.05, seed=0)
    h3 = tr3.fit(pp, epochs=4, eval_fn=lambda Z: {"acc": probe(Z, pp.labels)}, eval_every=2)
    assert h3["acc"][0] is None and h3["acc"][1] is not None


def test_checkpoint_resume_is_bit_identical(pp, tmp_path, one_thread):
    kw = dict(positives="neighbors", dim=8, lr=0.05, curriculum="default", seed=3)
    objs = ("infonce", "local", "reconstruction")
    full = Trainer("table", objs, **kw)
    full.fit(pp, epochs=12)
    ck = tmp_path / "ck.pkl"
    part = Trainer("table", objs, **kw)
    part.fit(pp, epochs=7, checkpoint=ck)
    assert ck.exists() and not list(tmp_path.glob(".ckpt-*"))
    resumed = Trainer("table", objs, **kw)
    h = resumed.fit(pp, epochs=12, resume=ck)
    assert len(h) == 12
    np.testing.assert_array_equal(resumed.embed(), full.embed())
    other = Trainer("table", ("infonce",), positives="neighbors", dim=4, seed=3)
    with pytest.raises(ValueError, match="another model or configuration"):
        other.fit(pp, epochs=2, resume=ck)
    with pytest.raises(FileNotFoundError, match="resume"):
        Trainer("table", objs, **kw).fit(pp, epochs=2, resume=tmp_path / "none.pkl")


def test_divergence_restores_last_good_state(pp, monkeypatch):
    tr = Trainer("table", ("infonce", "spectral"), positives="neighbors", dim=8, lr=0.05, seed=0)
    tr.fit(pp, epochs=2)
    good = tr.embed()
    real = losses.spectral

    def broken(Z, graph, **kw):
        loss, g = real(Z, graph, **kw)
        return float("nan"), g

    monkeypatch.setattr(losses, "spectral", broken)
    with pytest.raises(TrainingDiverged, match=r"epoch 2, step 0: loss component 'spectral' is nan"):
        tr.fit(pp, epochs=5)
    np.testing.assert_array_equal(tr.embed(), good)


def test_augmentations_are_seeded():
    ds = datasets.karate_club()
    X = np.ones((34, 10), np.float32)
    a = mask_features(X, 0.5, np.random.default_rng(1))
    b = mask_features(X, 0.5, np.random.default_rng(1))
    np.testing.assert_array_equal(a, b)
    assert 0 < (a[0] == 0).sum() < 10 and np.all(a == a[0])  # whole columns masked
    g = drop_edges(ds.graph, 0.5, np.random.default_rng(2))
    assert 0 < g.num_edges < ds.graph.num_edges and g.num_nodes == 34


def test_bad_input(pp):
    with pytest.raises(ValueError, match="model"):
        Trainer("mlp")
    with pytest.raises(ValueError, match="objectives"):
        Trainer("gcn", ("infonce", "triplet"))
    with pytest.raises(ValueError, match="positives"):
        Trainer("table", positives="views")
    with pytest.raises(ValueError, match="epochs"):
        CurriculumScheduler([CurriculumStage("x", 0, 0.5, 5, {"infonce": 1.0}, 0.5)])
    with pytest.raises(ValueError, match="features: expected 300 rows"):
        Trainer("gcn", dim=4).fit(pp, epochs=1, features=np.ones((299, 3), np.float32))
    with pytest.raises(ValueError, match="epochs"):
        Trainer("table", positives="neighbors").fit(pp, epochs=0)
    with pytest.raises(TypeError, match="data"):
        Trainer("table", positives="neighbors").fit("cora")
    with pytest.raises(ValueError, match="features: non-finite"):
        Trainer("gcn", dim=4).fit(pp, epochs=1, features=np.full((300, 3), np.nan, np.float32))


def test_cli_train(tmp_path, capsys):
    edges = tmp_path / "e.txt"
    ds = datasets.planted_partition(120, 3, 6.0, 0.9, seed=0)
    s, d, _ = ds.graph.edges()
    edges.write_text("".join(f"{u} {v}\n" for u, v in zip(s, d)))
    out = tmp_path / "emb.npy"
    assert main(["train", "--edges", str(edges), "--model", "table", "--objective", "infonce,spectral",
                 "--epochs", "5", "--dim", "8", "--lr", "0.05", "-o", str(out)]) == 0
    assert np.load(out).shape == (120, 8)
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "edges.tsv").write_text(edges.read_text().replace(" ", "\t"))
    (folder / "labels.tsv").write_text("".join(f"{i}\t{c}\n" for i, c in enumerate(ds.labels)))
    assert main(["train", "--data", str(folder), "--model", "gcn", "--epochs", "3", "--dim", "8", "--hidden", "8",
                 "-o", str(tmp_path / "g.npy"), "--eval"]) == 0
    assert "linear probe" in capsys.readouterr().out
    bad = tmp_path / "bad"
    bad.mkdir()
    assert main(["train", "--data", str(bad), "-o", str(tmp_path / "x.npy")]) == 2
    assert "edges.tsv" in capsys.readouterr().err
    assert not (tmp_path / "x.npy").exists()
    assert main(["train", "--edges", str(edges), "--objective", "magic", "-o", str(tmp_path / "y.npy")]) == 2
    assert main(["train", "--edges", str(edges), "--model", "mlp", "-o", str(tmp_path / "y.npy")]) == 2
    assert main(["train", "--edges", str(edges), "--features", str(tmp_path / "nofile.npy"),
                 "-o", str(tmp_path / "y.npy")]) == 2


def test_uniform_negatives_follow_degree_to_the_075():
    """The Trainer's negatives: nodes ∝ degree^0.75 (alias table), never an isolated node, −1 where a draw hits
    the anchor, the same draws for the same seed, and all −1 on a graph without edges."""
    from fastgnn import Graph
    from fastgnn.trainer._parts import _uniform_negatives

    g = Graph.from_edges(np.array([0, 0, 0, 0, 1, 2, 6]), np.array([1, 2, 3, 4, 2, 3, 0]), num_nodes=8)  # 5, 7 isolated
    w = g.degrees().astype(np.float64) ** 0.75
    p = w / w.sum()
    n = 400_000
    ids = _uniform_negatives(g, np.full(n // 4, 7), 4, np.random.default_rng(3))
    assert ids.shape == (n // 4, 4) and ids.dtype == np.int64
    freq = np.bincount(ids.ravel(), minlength=8) / n
    np.testing.assert_allclose(freq, p, atol=4 * np.sqrt(p.max() / n))  # 4 sigma
    assert freq[5] == 0 and freq[7] == 0
    hits = _uniform_negatives(g, np.zeros(n // 4, np.int64), 4, np.random.default_rng(3))
    np.testing.assert_array_equal(hits == -1, ids == 0)  # same draws; the anchor's own id becomes -1
    np.testing.assert_array_equal(_uniform_negatives(g, np.arange(8), 3, np.random.default_rng(9)),
                                  _uniform_negatives(g, np.arange(8), 3, np.random.default_rng(9)))
    empty = Graph.from_edges(np.array([], np.int64), np.array([], np.int64), num_nodes=4)
    np.testing.assert_array_equal(_uniform_negatives(empty, np.arange(4), 2, np.random.default_rng(0)),
                                  np.full((4, 2), -1))


def test_fit_propagates_constant_features_once(pp, monkeypatch):
    """During ``fit`` the first GCN layer (it widens: ``(Â X) W``) propagates the fixed features once, and the
    losses are the same bits as without the cache; afterwards the layers forget it."""
    from fastgnn import autograd as ag
    from fastgnn import nn
    from fastgnn.trainer import _trainer

    X = np.random.default_rng(0).standard_normal((pp.graph.num_nodes, 6)).astype(np.float32)
    kw = dict(positives="neighbors", dim=8, hidden=16, lr=0.01, seed=0)
    calls = []
    real = ag.gcn_propagate
    monkeypatch.setattr(ag, "gcn_propagate", lambda g, x: calls.append(ag.tensor(x).requires_grad) or real(g, x))
    tr = Trainer("gcn", ("infonce",), **kw)
    h = tr.fit(pp, epochs=4, features=X)
    assert calls.count(False) == 1 and calls.count(True) == 4  # the second layer's input needs its gradient
    layers = [m for m in tr.model._children if isinstance(m, nn.GCNConv)]
    assert all(not m.cached and m._cache is None for m in layers)
    calls.clear()
    import contextlib

    monkeypatch.setattr(_trainer, "propagation_cached", lambda model: contextlib.nullcontext())
    h2 = Trainer("gcn", ("infonce",), **kw).fit(pp, epochs=4, features=X)
    assert calls.count(False) == 4
    assert h["loss"] == h2["loss"]
