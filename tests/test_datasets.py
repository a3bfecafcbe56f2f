import numpy as np
import pytest

from fastgnn import datasets
from fastgnn.datasets import Dataset


def test_planted_partition_statistics():
    ds = datasets.planted_partition(2000, 5, 12.0, 0.8, seed=3)
    g = ds.graph
    assert isinstance(ds, Dataset)
    assert g.num_nodes == 2000 and g.num_edges == 12000
    assert ds.labels.shape == (2000,) and ds.num_classes == 5
    assert np.bincount(ds.labels).tolist() == [400] * 5
    s, d, _ = g.edges()
    share = (ds.labels[s] == ds.labels[d]).mean()
    assert abs(share - 0.8) < 1e-3  # exact up to rounding of the edge count
    assert ds.features is None and ds.split is None


def test_planted_partition_is_seeded():
    a = datasets.planted_partition(300, 3, 6.0, 0.7, seed=11)
    b = datasets.planted_partition(300, 3, 6.0, 0.7, seed=11)
    c = datasets.planted_partition(300, 3, 6.0, 0.7, seed=12)
    np.testing.assert_array_equal(a.graph.indices, b.graph.indices)
    np.testing.assert_array_equal(a.labels, b.labels)
    assert not np.array_equal(a.graph.indices, c.graph.indices) or not np.array_equal(a.labels, c.labels)


@pytest.mark.parametrize("p_in", [0.0, 1.0])
def test_planted_partition_extremes(p_in):
    ds = datasets.planted_partition(100, 4, 4.0, p_in, seed=0)
    s, d, _ = ds.graph.edges()
    same = ds.labels[s] == ds.labels[d]
    assert same.all() if p_in == 1.0 else not same.any()


@pytest.mark.parametrize("kwargs,exc,match", [
    (dict(num_nodes=0), ValueError, "num_nodes"),
    (dict(num_nodes=10, num_communities=11), ValueError, "num_communities"),
    (dict(p_in=1.5), ValueError, "p_in"),
    (dict(avg_degree=-1.0), ValueError, "avg_degree"),
    (dict(num_nodes=10, num_communities=5, avg_degree=8.0, p_in=1.0), ValueError, "avg_degree/p_in"),
    (dict(seed=-3), ValueError, "seed"),
    (dict(seed=1.5), TypeError, "seed"),
])
def test_planted_partition_bad_input(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        datasets.planted_partition(**kwargs)


def test_karate_club():
    ds = datasets.karate_club()
    assert (ds.graph.num_nodes, ds.graph.num_edges) == (34, 78)
    assert ds.num_classes == 2 and (ds.labels >= 0).all()
    assert np.bincount(ds.labels).tolist() == [17, 17]
    nx = pytest.importorskip("networkx")
    G = nx.karate_club_graph()
    want = sorted((min(u, v), max(u, v)) for u, v in G.edges())
    s, d, _ = ds.graph.edges()
    assert sorted(zip(s.tolist(), d.tolist())) == want


def write_folder(tmp_path, edges="0\t1\n1\t2\n", labels=None, split=None):
    tmp_path.mkdir(exist_ok=True)
    if edges is not None:
        (tmp_path / "edges.tsv").write_text(edges)
    if labels is not None:
        (tmp_path / "labels.tsv").write_text(labels)
    if split is not None:
        (tmp_path / "split_planetoid.tsv").write_text(split)
    return tmp_path


def test_load_folder_format(tmp_path):
    import scipy.sparse as sp

    d = write_folder(tmp_path / "d", labels="0\t1\n1\t0\n4\t2\n", split="0\ttrain\n1\tval\n4\ttest\n")
    sp.save_npz(d / "features.npz", sp.csr_matrix(np.eye(3, 2)))
    ds = datasets.load(d)
    assert ds.num_nodes == 5  # label of node 4 extends N past the edges
    assert ds.labels.tolist() == [1, 0, -1, -1, 2]
    assert ds.features.shape == (5, 2)  # padded with zero rows
    assert {k: v.tolist() for k, v in ds.split.items()} == {"train": [0], "val": [1], "test": [4]}


def test_load_multilabel(tmp_path):
    d = write_folder(tmp_path / "m", labels="0\t0\n0\t2\n1\t1\n2\t0\n")
    ds = datasets.load(d)
    assert ds.multilabel and ds.labels.shape == (3, 3)
    assert ds.labels.tolist() == [[1, 0, 1], [0, 1, 0], [1, 0, 0]]


def test_load_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such data-set folder"):
        datasets.load(tmp_path / "absent")
    d = write_folder(tmp_path / "noedges", edges=None)
    with pytest.raises(FileNotFoundError, match="edges.tsv"):
        datasets.load(d)
    d = write_folder(tmp_path / "bad", edges="0\t1\n1\tx\n")
    with pytest.raises(ValueError, match="line 2"):
        datasets.load(d)
    d = write_folder(tmp_path / "badsplit", split="0\ttrain\n1\tholdout\n")
    with pytest.raises(ValueError, match="line 2"):
        datasets.load(d)


@pytest.mark.parametrize("name,n,e,classes", [
    ("cora", 2708, 5278, 7), ("citeseer", 3327, 4552, 6), ("pubmed", 19717, 44324, 3),
    ("blogcatalog", 10312, 333983, 39), ("wiki", 2405, 11596, 17), ("airports_brazil", 131, 1003, 4),
])
def test_shared_datasets_counts(shared_datasets, name, n, e, classes):
    path = shared_datasets / name
    if not path.is_dir():
        pytest.skip(f"{name} not in ../shared/datasets")
    ds = datasets.load(path)
    assert (ds.num_nodes, ds.graph.num_edges, ds.num_classes) == (n, e, classes)
    if name == "cora":
        assert ds.features.shape == (2708, 1433)
        assert {k: len(v) for k, v in ds.split.items()} == {"train": 140, "val": 500, "test": 1000}
        assert np.bincount(ds.labels[ds.split["train"]]).tolist() == [20] * 7
