"""fastgnn.evaluate: node classification, edge splits, link prediction, analogies, word pairs."""
import numpy as np
import pytest

pytest.importorskip("sklearn")

from fastgnn import Graph, KeyedVectors  # noqa: E402
from fastgnn.evaluate import (link_prediction, node_classification, split_edges, word_analogies,  # noqa: E402
                              word_pairs)


# ---------------------------------------------------------------------------- node classification
def test_single_label_separable(rng):
    labels = np.repeat(np.arange(3), 20)
    emb = np.eye(3)[labels] * 5 + rng.normal(0, 0.1, (60, 3))
    res = node_classification(emb, labels, seed=0)
    assert res["accuracy"] == res["micro_f1"] == res["macro_f1"] == 1.0
    assert res["num_train"] == 30 and res["num_test"] == 30


def test_single_label_matches_sklearn(rng):
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import f1_score

    emb = rng.standard_normal((80, 4))
    labels = (emb[:, 0] + rng.normal(0, 1, 80) > 0).astype(int)
    labels[:5] = -1  # unlabelled nodes never enter the split
    train, test = np.arange(5, 45), np.arange(45, 80)
    res = node_classification(emb, labels, train_idx=train, test_idx=test, seed=0)
    pred = LogisticRegression(max_iter=1000).fit(emb[train], labels[train]).predict(emb[test])
    assert res["micro_f1"] == pytest.approx(f1_score(labels[test], pred, average="micro"))
    assert res["macro_f1"] == pytest.approx(f1_score(labels[test], pred, average="macro"))
    only_train = node_classification(emb, labels, train_idx=train, seed=0)
    assert only_train["num_test"] == 35


def test_multilabel_predicts_true_number_of_labels(rng):
    from sklearn.linear_model import LogisticRegression
    from sklearn.multiclass import OneVsRestClassifier

    n, c = 90, 4
    emb = rng.standard_normal((n, 5))
    Y = (emb[:, :c] + rng.normal(0, 0.5, (n, c)) > 0.3).astype(np.int8)
    Y[Y.sum(1) == 0, 0] = 1
    train, test = np.arange(0, 50), np.arange(50, n)
    res = node_classification(emb, Y, train_idx=train, test_idx=test, seed=0)
    proba = OneVsRestClassifier(LogisticRegression(max_iter=1000)).fit(emb[train], Y[train]).predict_proba(emb[test])
    pred = np.zeros_like(Y[test])
    for r, k in enumerate(Y[test].sum(1)):
        pred[r, np.argsort(-proba[r], kind="stable")[:k]] = 1
    tp = (pred & Y[test]).sum()
    assert pred.sum() == Y[test].sum()  # exactly k labels each
    assert res["micro_f1"] == pytest.approx(2 * tp / (pred.sum() + Y[test].sum()))


def test_node_classification_bad_inputs(rng):
    emb = rng.standard_normal((10, 2))
    lab = np.array([0, 1] * 5)
    with pytest.raises(ValueError, match="labels"):
        node_classification(emb, lab[:9])
    with pytest.raises(TypeError, match="labels"):
        node_classification(emb, lab.astype(float))
    with pytest.raises(ValueError, match="train_ratio"):
        node_classification(emb, lab, train_ratio=1.0)
    with pytest.raises(ValueError, match="test_idx"):
        node_classification(emb, lab, train_idx=[0, 1], test_idx=[1, 2])
    with pytest.raises(ValueError, match="train_idx"):
        node_classification(emb, lab, train_idx=[0, 99])
    with pytest.raises(ValueError, match="emb"):
        node_classification(np.full((10, 2), np.nan), lab)
    with pytest.raises(ValueError, match="no label"):
        node_classification(emb, np.where(np.arange(10) < 2, -1, lab), train_idx=[0, 3])
    with pytest.raises(ValueError, match="train_ratio"):
        node_classification(emb[:1], lab[:1])
    with pytest.raises(ValueError, match="labels"):
        node_classification(emb, np.full((10, 2), 2))


# ---------------------------------------------------------------------------- edges
def _ring(n):
    return Graph.from_edges(np.arange(n), (np.arange(n) + 1) % n)


def test_split_edges_partition():
    g = _ring(20)
    train, test = split_edges(g, 0.25, seed=1)
    assert test.shape == (5, 2) and train.num_edges == 15 and train.num_nodes == 20
    s, d, _ = train.edges()
    all_edges = {tuple(e) for e in zip(*g.edges()[:2])}
    got = {tuple(e) for e in zip(s.tolist(), d.tolist())} | {tuple(e) for e in test.tolist()}
    assert got == {(int(a), int(b)) for a, b in all_edges}
    assert {tuple(e) for e in test.tolist()}.isdisjoint(set(zip(s.tolist(), d.tolist())))
    np.testing.assert_array_equal(split_edges(g, 0.25, seed=1)[1], test)


def test_split_edges_bad_inputs():
    with pytest.raises(TypeError, match="graph"):
        split_edges(np.eye(3), 0.1)
    with pytest.raises(ValueError, match="test_frac"):
        split_edges(_ring(5), 0.0)
    with pytest.raises(ValueError, match="test_frac"):
        split_edges(_ring(5), 0.01)
    with pytest.raises(ValueError, match="undirected"):
        split_edges(Graph.from_edges([0, 1], [1, 2], symmetrize=False), 0.5)


def test_link_prediction_perfect_and_manual(rng):
    emb = np.repeat(np.eye(4), 5, axis=0)  # 4 clusters of 5 nodes
    pos = np.array([[0, 1], [5, 6], [10, 11], [15, 19]])
    src, dst = np.triu_indices(20, 1)
    same = src // 5 == dst // 5
    clusters = Graph.from_edges(src[same], dst[same], num_nodes=20)
    assert link_prediction(emb, pos, seed=0, graph=clusters) == 1.0  # negatives are cross-cluster
    # complete graph minus 3 pairs: the only non-edges must be the sampled negatives
    n = 6
    src, dst = np.triu_indices(n, 1)
    missing = {(0, 1), (2, 3), (4, 5)}
    keep = [(a, b) not in missing for a, b in zip(src, dst)]
    g = Graph.from_edges(src[keep], dst[keep], num_nodes=n)
    x = rng.standard_normal((n, 3))
    test = np.array([[0, 2], [1, 3], [3, 5]])
    auc = link_prediction(x, test, seed=0, graph=g)
    sp = [x[a] @ x[b] for a, b in test]
    sn = [x[a] @ x[b] for a, b in missing]
    manual = np.mean([(p > q) + 0.5 * (p == q) for p in sp for q in sn])
    assert auc == pytest.approx(manual)


def test_link_prediction_bad_inputs(rng):
    emb = rng.standard_normal((4, 2))
    with pytest.raises(ValueError, match="test_edges"):
        link_prediction(emb, np.array([[0, 9]]))
    with pytest.raises(ValueError, match="test_edges"):
        link_prediction(emb, np.zeros((0, 2), int))
    with pytest.raises(ValueError, match="test_edges"):
        link_prediction(emb, np.array([0, 1]))
    with pytest.raises(ValueError, match="score"):
        link_prediction(emb, np.array([[0, 1]]), score="l2")
    with pytest.raises(ValueError, match="non-edges"):
        link_prediction(emb[:2], np.array([[0, 1]]))
    with pytest.raises(ValueError, match="graph"):
        link_prediction(emb, np.array([[0, 1]]), graph=_ring(5))


# ---------------------------------------------------------------------------- words
@pytest.fixture
def toy_kv():
    v = np.array([[1, 0, 0, 0], [1, 1, 0, 0], [0, 0, 1, 0], [0, 1, 1, 0], [0, 0, 0, 1], [-1, 1, 0, 0]], np.float32)
    return KeyedVectors(["man", "king", "woman", "queen", "Other", "odd"], v)


def test_word_analogies_sections(toy_kv, tmp_path):
    p = tmp_path / "q.txt"
    p.write_text(": royal\nman king woman queen\nMAN KING WOMAN QUEEN\nman king woman odd\n"
                 ": unknown\nman king woman zebra\n")
    score, sections = word_analogies(toy_kv, p)
    assert [s["section"] for s in sections] == ["royal", "unknown", "Total accuracy"]
    assert sections[0]["correct"] == 2 and sections[0]["incorrect"] == 1
    assert sections[1]["skipped"] == 1 and score == pytest.approx(2 / 3)
    want = sum(toy_kv.analogy("man", "king", "woman", method="mul")[0][0] == d for d in ("queen", "queen", "odd"))
    assert toy_kv.evaluate_word_analogies(p, method="mul")[1][0]["correct"] == want
    # case-sensitive: upper-case words are unknown
    assert word_analogies(toy_kv, p, case_insensitive=False)[1][0]["skipped"] == 1


def test_word_analogies_match_most_similar(rng, tmp_path):
    keys = [f"w{i}" for i in range(40)]
    kv = KeyedVectors(keys, rng.standard_normal((40, 5)).astype(np.float32))
    qs = rng.integers(0, 40, (60, 4))
    qs = qs[[len(set(q)) == 4 for q in qs]]
    p = tmp_path / "q.txt"
    p.write_text(": s\n" + "\n".join(" ".join(keys[i] for i in q) for q in qs) + "\n")
    want = sum(kv.most_similar(positive=[keys[b], keys[c]], negative=[keys[a]], topn=1)[0][0] == keys[d]
               for a, b, c, d in qs)
    assert word_analogies(kv, p, batch_size=7)[1][-1]["correct"] == want


def test_word_pairs_spearman(toy_kv, tmp_path):
    from scipy import stats

    p = tmp_path / "ws.tsv"
    p.write_text("# comment\nman\tking\t8\nwoman\tqueen\t7\nman\twoman\t3\nking\tOther\t1\nman\tzebra\t5\n")
    pearson, spearman, oov = word_pairs(toy_kv, p)
    cos = [toy_kv.similarity(a, b) for a, b in [("man", "king"), ("woman", "queen"), ("man", "woman"),
                                                  ("king", "Other")]]
    assert spearman[0] == pytest.approx(stats.spearmanr([8, 7, 3, 1], cos)[0])
    assert pearson[0] == pytest.approx(stats.pearsonr([8, 7, 3, 1], cos)[0])
    assert oov == pytest.approx(20.0)
    assert toy_kv.evaluate_word_pairs(p)[2] == pytest.approx(20.0)


def test_word_benchmarks_bad_inputs(toy_kv, tmp_path):
    with pytest.raises(FileNotFoundError, match="path"):
        word_pairs(toy_kv, tmp_path / "missing")
    bad = tmp_path / "bad.txt"
    bad.write_text("a b c\n")
    with pytest.raises(ValueError, match="4 words"):
        word_analogies(toy_kv, bad)
    with pytest.raises(ValueError, match="path"):
        word_pairs(toy_kv, bad)
    with pytest.raises(TypeError, match="kv"):
        word_pairs(np.eye(2), bad)
    with pytest.raises(ValueError, match="method"):
        word_analogies(toy_kv, bad, method="x")


def test_agrees_with_gensim_evaluation(shared_datasets, tmp_path):
    gensim = pytest.importorskip("gensim.models")
    text = shared_datasets / "text"
    sents = [line.split() for line in open(text / "lee_background.cor")]
    g = gensim.Word2Vec(sents, vector_size=16, min_count=3, seed=0, workers=1, epochs=2)
    kv = KeyedVectors(list(g.wv.index_to_key), g.wv.vectors.copy())
    ours = word_analogies(kv, text / "questions-words.txt")
    theirs = g.wv.evaluate_word_analogies(str(text / "questions-words.txt"))
    assert ours[0] == pytest.approx(theirs[0])
    assert ours[1][-1]["correct"] == len(theirs[1][-1]["correct"])
    p, s, oov = word_pairs(kv, text / "wordsim353.tsv")
    gp, gs, goov = g.wv.evaluate_word_pairs(str(text / "wordsim353.tsv"))
    assert s[0] == pytest.approx(gs[0], abs=1e-6) and p[0] == pytest.approx(gp[0], abs=1e-5)
    assert oov == pytest.approx(goov)
