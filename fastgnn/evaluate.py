"""Embedding evaluation: node classification, link prediction, word analogies, word-pair correlation.

Node classification and link prediction use scikit-learn (the ``eval`` extra:
``pip install 'fastgnn[eval]'``); the word benchmarks need only NumPy and SciPy.
"""
from __future__ import annotations

import os
import warnings

import numpy as np

from . import _check
from .graph import Graph

__all__ = ["node_classification", "split_edges", "link_prediction", "word_analogies", "word_pairs"]


def _sklearn():
    try:
        import sklearn  # noqa: F401
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise ImportError("fastgnn.evaluate needs scikit-learn: pip install 'fastgnn[eval]'") from exc


def _labelled(labels, n):
    if labels is None:
        raise TypeError("labels: expected an int array [N] or a 0/1 array [N, C], got None")
    labels = np.asarray(labels)
    if labels.dtype.kind not in "iub":
        raise TypeError(f"labels: expected integer class ids (or a 0/1 matrix), got dtype {labels.dtype}")
    if labels.ndim not in (1, 2) or labels.shape[0] != n:
        raise ValueError(f"labels: expected shape [{n}] or [{n}, C] (one row per embedding), got {labels.shape}")
    if labels.ndim == 1:
        if labels.size and labels.min() < -1:
            raise ValueError(f"labels: class ids must be >= 0 (-1 = unlabelled), got {int(labels.min())}")
        return labels.astype(np.int64), np.flatnonzero(labels >= 0)
    if labels.size and (labels.min() < 0 or labels.max() > 1):
        raise ValueError("labels: a multi-label matrix must hold only 0 and 1")
    return labels.astype(np.int8), np.flatnonzero(labels.sum(axis=1) > 0)


def node_classification(emb, labels, train_idx=None, test_idx=None, train_ratio=0.5, seed=None, C=1.0,
                        max_iter=1000):
    """Logistic-regression node classification on embeddings: micro/macro F1 and accuracy.

    Single-label: one multinomial logistic regression. Multi-label (``labels`` a 0/1 matrix):
    one-vs-rest logistic regressions, and each test node is given its true number of labels ``k``, the
    ``k`` most probable ones (the DeepWalk protocol). ``F1_micro = 2·ΣTP / (2·ΣTP + ΣFP + ΣFN)``,
    ``F1_macro = mean_c F1_c``.

    Parameters
    ----------
    emb : float array [N, D]
    labels : int array [N] (-1 = unlabelled) or 0/1 array [N, C] (rows of zeros = unlabelled)
    train_idx, test_idx : int arrays, optional
        Node ids; by default the labelled nodes are split at random (``train_ratio``, ``seed``). With
        only ``train_idx`` given, the test set is every other labelled node.
    train_ratio : float in (0, 1)
    seed : int, optional
        Seeds the split and the classifier.
    C : float > 0
        Inverse regularisation strength of the logistic regression.
    max_iter : int

    Returns
    -------
    dict with ``micro_f1``, ``macro_f1``, ``accuracy`` (exact-match ratio for multi-label),
    ``num_train``, ``num_test``.

    Raises
    ------
    TypeError, ValueError
        Shapes, dtypes, ids out of range, overlapping or empty train/test sets, non-finite embeddings.

    Examples
    --------
    >>> emb = np.array([[0.0], [0.1], [1.0], [1.1]] * 5)
    >>> node_classification(emb, np.array([0, 0, 1, 1] * 5), seed=0)["accuracy"]
    1.0
    """
    _sklearn()
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, f1_score
    from sklearn.multiclass import OneVsRestClassifier

    emb = _check.float_array(emb, "emb", ndim=2, allow_empty=False)
    n = emb.shape[0]
    labels, labelled = _labelled(labels, n)
    multi = labels.ndim == 2
    train_ratio = _check.real(train_ratio, "train_ratio", minimum=0.0, maximum=1.0, strict_min=True,
                              strict_max=True)
    C = _check.real(C, "C", minimum=0.0, strict_min=True)
    max_iter = _check.integer(max_iter, "max_iter", minimum=1)
    seed = _check.seed_value(seed)
    rng = np.random.default_rng(seed)
    if test_idx is not None and train_idx is None:
        raise ValueError("train_idx: give train_idx when test_idx is given")
    if train_idx is None:
        perm = rng.permutation(labelled)
        cut = int(round(train_ratio * perm.size))
        train, test = np.sort(perm[:cut]), np.sort(perm[cut:])
    else:
        train = _check.index_array(train_idx, "train_idx", upper=n, what=f"{n} embeddings")
        test = (np.setdiff1d(labelled, train) if test_idx is None
                else _check.index_array(test_idx, "test_idx", upper=n, what=f"{n} embeddings"))
        if np.intersect1d(train, test).size:
            raise ValueError("test_idx: overlaps train_idx")
        for name, ids in (("train_idx", train), ("test_idx", test)):
            unl = np.setdiff1d(ids, labelled)
            if unl.size:
                raise ValueError(f"{name}: node {int(unl[0])} has no label")
    if train.size == 0 or test.size == 0:
        raise ValueError(f"train_ratio: the split leaves {train.size} training and {test.size} test nodes; "
                         "both must be non-empty")
    rs = int(seed % (2**32))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if not multi:
            y_tr = labels[train]
            if np.unique(y_tr).size < 2:
                pred = np.full(test.size, y_tr[0])
            else:
                clf = LogisticRegression(C=C, max_iter=max_iter, random_state=rs).fit(emb[train], y_tr)
                pred = clf.predict(emb[test])
            y_te = labels[test]
        else:
            clf = OneVsRestClassifier(LogisticRegression(C=C, max_iter=max_iter, random_state=rs))
            clf.fit(emb[train], labels[train])
            proba = clf.predict_proba(emb[test])
            y_te = labels[test]
            k = y_te.sum(axis=1)
            order = np.argsort(-proba, axis=1, kind="stable")
            pred = np.zeros_like(y_te)
            for r in range(test.size):
                pred[r, order[r, : k[r]]] = 1
        return {
            "micro_f1": float(f1_score(y_te, pred, average="micro", zero_division=0)),
            "macro_f1": float(f1_score(y_te, pred, average="macro", zero_division=0)),
            "accuracy": float(accuracy_score(y_te, pred)),
            "num_train": int(train.size),
            "num_test": int(test.size),
        }


def split_edges(graph, test_frac=0.1, seed=None):
    """Hold out a random fraction of the undirected edges for link prediction.

    Parameters
    ----------
    graph : Graph
        Undirected (each edge stored both ways).
    test_frac : float in (0, 1)
    seed : int, optional

    Returns
    -------
    train_graph : Graph
        Same nodes, the remaining edges (weights kept).
    test_edges : int64 array [E_test, 2]
        Held-out edges ``(u, v)``, ``u < v``.

    Raises
    ------
    TypeError
        ``graph`` is not a Graph.
    ValueError
        Directed graph, ``test_frac`` outside (0, 1), or a split with no test or no training edge.

    Examples
    --------
    >>> g = Graph.from_edges([0, 1, 2, 3], [1, 2, 3, 0])
    >>> train, test = split_edges(g, 0.25, seed=0)
    >>> test.shape, train.num_edges
    ((1, 2), 3)
    """
    if not isinstance(graph, Graph):
        raise TypeError(f"graph: expected a fastgnn.Graph, got {type(graph).__name__}")
    if graph.directed:
        raise ValueError("graph: split_edges expects an undirected graph")
    test_frac = _check.real(test_frac, "test_frac", minimum=0.0, maximum=1.0, strict_min=True, strict_max=True)
    src, dst, w = graph.edges()
    m = src.size
    ntest = int(round(test_frac * m))
    if ntest == 0 or ntest == m:
        raise ValueError(f"test_frac: {test_frac} of {m} edges leaves {ntest} test and {m - ntest} training edges")
    perm = np.random.default_rng(_check.seed_value(seed)).permutation(m)
    te, tr = np.sort(perm[:ntest]), np.sort(perm[ntest:])
    weights = None if graph.weights is None else w[tr]
    train = Graph.from_edges(src[tr].astype(np.int64), dst[tr].astype(np.int64), num_nodes=graph.num_nodes,
                             weights=weights)
    test = np.stack([src[te], dst[te]], axis=1).astype(np.int64)
    return train, test


def link_prediction(emb, test_edges, seed=None, graph=None, score="dot"):
    """ROC AUC of edge scores: held-out edges against as many sampled non-edges.

    ``s(u, v) = e_u·e_v`` (``score="dot"``) or ``cos(e_u, e_v)`` (``"cosine"``); AUC =
    P(s(positive) > s(negative)), ties counting one half.

    Parameters
    ----------
    emb : float array [N, D]
    test_edges : int array [E, 2]
    seed : int, optional
        Seeds the negative sampling.
    graph : Graph, optional
        The full graph: sampled non-edges avoid its edges too (otherwise only ``test_edges`` and self-pairs).
    score : "dot" | "cosine"

    Returns
    -------
    float : ROC AUC.

    Raises
    ------
    ValueError
        Bad shapes or ids, empty ``test_edges``, a graph too dense to sample non-edges.

    Examples
    --------
    >>> emb = np.array([[1.0, 0], [1.0, 0], [0, 1.0], [0, 1.0]])
    >>> link_prediction(emb, np.array([[0, 1], [2, 3]]), seed=0)
    1.0
    """
    _sklearn()
    from sklearn.metrics import roc_auc_score

    emb = _check.float_array(emb, "emb", ndim=2, allow_empty=False)
    n = emb.shape[0]
    pos = _check.index_array(test_edges, "test_edges", ndim=2, shape=(None, 2), upper=n,
                             what=f"{n} embeddings", dtype=np.int64)
    if pos.shape[0] == 0:
        raise ValueError("test_edges: must not be empty")
    score = _check.choice(score, "score", ("dot", "cosine"))
    if graph is not None and not isinstance(graph, Graph):
        raise TypeError(f"graph: expected a fastgnn.Graph or None, got {type(graph).__name__}")
    if graph is not None and graph.num_nodes != n:
        raise ValueError(f"graph: has {graph.num_nodes} nodes, emb has {n} rows")
    known = set((np.minimum(pos[:, 0], pos[:, 1]) * n + np.maximum(pos[:, 0], pos[:, 1])).tolist())
    if graph is not None:
        s, d, _ = graph.arcs()
        s, d = s.astype(np.int64), d.astype(np.int64)
        known.update((np.minimum(s, d) * n + np.maximum(s, d)).tolist())
    possible = n * (n - 1) // 2
    need = pos.shape[0]
    if possible - len(known) < need:
        raise ValueError(f"test_edges: only {possible - len(known)} non-edges exist, {need} are needed")
    rng = np.random.default_rng(_check.seed_value(seed))
    neg = []
    taken = set()
    while len(neg) < need:
        u = rng.integers(0, n, 2 * need)
        v = rng.integers(0, n, 2 * need)
        for a, b in zip(u.tolist(), v.tolist()):
            if a == b:
                continue
            key = min(a, b) * n + max(a, b)
            if key in known or key in taken:
                continue
            taken.add(key)
            neg.append((a, b))
            if len(neg) == need:
                break
    neg = np.asarray(neg, np.int64)
    x = emb.astype(np.float64)
    if score == "cosine":
        nrm = np.linalg.norm(x, axis=1, keepdims=True)
        x = x / np.where(nrm > 0, nrm, 1.0)
    sp = np.einsum("ij,ij->i", x[pos[:, 0]], x[pos[:, 1]])
    sn = np.einsum("ij,ij->i", x[neg[:, 0]], x[neg[:, 1]])
    y = np.concatenate([np.ones(need), np.zeros(need)])
    return float(roc_auc_score(y, np.concatenate([sp, sn])))


# ---------------------------------------------------------------------------- word benchmarks
def _check_kv(kv):
    from .word2vec import KeyedVectors

    if not isinstance(kv, KeyedVectors):
        raise TypeError(f"kv: expected a fastgnn.KeyedVectors, got {type(kv).__name__}")
    if len(kv) == 0:
        raise ValueError("kv: has no vectors")


def _read_lines(path):
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"path: no such file: {path}")
    with open(path, encoding="utf-8", errors="replace") as fh:
        return fh.read().splitlines()


def _vocab_map(kv, restrict_vocab, case_insensitive):
    limit = min(len(kv), _check.integer(restrict_vocab, "restrict_vocab", minimum=1))
    keys = kv.index_to_key[:limit]
    if case_insensitive:
        # the most frequent spelling wins (rows are in descending frequency)
        return {str(k).upper(): i for i, k in reversed(list(enumerate(keys)))}, limit
    return {k: i for i, k in enumerate(keys)}, limit


def word_analogies(kv, path, restrict_vocab=300000, case_insensitive=True, method="add", batch_size=1024):
    """Accuracy on analogy questions ``a b c d`` (questions-words format, ``: section`` headers).

    The answer to ``a : b :: c : ?`` is ``argmax_x cos(x, b̂ - â + ĉ)`` (``method="add"``) or 3CosMul
    (``"mul"``) over the first ``restrict_vocab`` keys, ``a``, ``b``, ``c`` excluded; a question with
    a word outside those keys is skipped (as gensim).

    Parameters
    ----------
    kv : KeyedVectors
    path : str or os.PathLike
    restrict_vocab : int
    case_insensitive : bool
        Compare upper-cased words.
    method : "add" | "mul"
    batch_size : int
        Questions scored per matrix product.

    Returns
    -------
    (float, list of dict)
        Overall accuracy (correct / answered; 0.0 when nothing was answered) and per section
        ``{"section", "correct", "incorrect", "skipped"}`` (counts), the last one ``"Total accuracy"``.

    Raises
    ------
    FileNotFoundError, TypeError, ValueError

    Examples
    --------
    >>> import tempfile, os
    >>> p = os.path.join(tempfile.mkdtemp(), "q.txt")
    >>> _ = open(p, "w").write(": s\\nman king woman queen\\n")
    >>> v = np.array([[1, 0, 0, 0], [1, 1, 0, 0], [0, 0, 1, 0], [0, 1, 1, 0]], np.float32)
    >>> from fastgnn import KeyedVectors
    >>> word_analogies(KeyedVectors(["man", "king", "woman", "queen"], v), p)[0]
    1.0
    """
    _check_kv(kv)
    method = _check.choice(method, "method", ("add", "mul"))
    batch_size = _check.integer(batch_size, "batch_size", minimum=1)
    vocab, limit = _vocab_map(kv, restrict_vocab, case_insensitive)
    normed = kv.get_normed_vectors()[:limit].astype(np.float32)
    # canonical row of every candidate: case variants of one word count as that word (as gensim)
    canon = np.array([vocab[str(k).upper()] if case_insensitive else i
                      for i, k in enumerate(kv.index_to_key[:limit])], np.int64)
    sections = []
    current = None
    for line in _read_lines(path):
        if not line.strip():
            continue
        if line.startswith(":"):
            current = {"section": line.lstrip(": ").strip(), "questions": [], "skipped": 0}
            sections.append(current)
            continue
        if current is None:
            current = {"section": "", "questions": [], "skipped": 0}
            sections.append(current)
        words = line.split()
        if len(words) != 4:
            raise ValueError(f"path: analogy line {line!r} does not have 4 words")
        if case_insensitive:
            words = [w.upper() for w in words]
        ids = [vocab.get(w) for w in words]
        if any(i is None for i in ids):
            current["skipped"] += 1
        else:
            current["questions"].append(ids)
    out = []
    tot_c = tot_i = tot_s = 0
    for sec in sections:
        q = np.asarray(sec["questions"], np.int64).reshape(-1, 4)
        correct = 0
        for s in range(0, q.shape[0], batch_size):
            b = q[s:s + batch_size]
            a_, b_, c_ = normed[b[:, 0]], normed[b[:, 1]], normed[b[:, 2]]
            if method == "add":
                sims = (b_ - a_ + c_) @ normed.T
            else:
                sa, sb, sc = ((1 + x @ normed.T) / 2 for x in (a_, b_, c_))
                sims = sb * sc / (sa + 1e-6)
            for col in range(3):
                sims[canon[None, :] == b[:, col, None]] = -np.inf
            correct += int((canon[sims.argmax(axis=1)] == b[:, 3]).sum())
        incorrect = q.shape[0] - correct
        out.append({"section": sec["section"], "correct": correct, "incorrect": incorrect,
                    "skipped": sec["skipped"]})
        tot_c += correct
        tot_i += incorrect
        tot_s += sec["skipped"]
    out.append({"section": "Total accuracy", "correct": tot_c, "incorrect": tot_i, "skipped": tot_s})
    score = tot_c / (tot_c + tot_i) if tot_c + tot_i else 0.0
    return float(score), out


def word_pairs(kv, path, delimiter="\t", restrict_vocab=300000, case_insensitive=True):
    """Correlation of cosine similarities with human scores (WordSim-353 format: ``w1<TAB>w2<TAB>score``).

    Lines starting with ``#`` are comments; pairs with a word outside the first ``restrict_vocab`` keys
    are skipped and counted as out of vocabulary. ``ρ = Spearman(cos(w1, w2), score)``.

    Parameters
    ----------
    kv : KeyedVectors
    path : str or os.PathLike
    delimiter : str
    restrict_vocab : int
    case_insensitive : bool

    Returns
    -------
    ((pearson_r, p_value), (spearman_rho, p_value), oov_percent)
        NaN correlations when fewer than two pairs are in the vocabulary.

    Raises
    ------
    FileNotFoundError, TypeError, ValueError (a malformed line)

    Examples
    --------
    >>> import tempfile, os
    >>> p = os.path.join(tempfile.mkdtemp(), "ws.tsv")
    >>> _ = open(p, "w").write("a\\tb\\t9\\na\\tc\\t1\\nb\\tc\\t2\\n")
    >>> from fastgnn import KeyedVectors
    >>> kv = KeyedVectors(["a", "b", "c"], np.array([[1, 0], [1, 0.1], [0, 1]], np.float32))
    >>> round(word_pairs(kv, p)[1][0], 3)
    1.0
    """
    from scipy import stats

    _check_kv(kv)
    vocab, limit = _vocab_map(kv, restrict_vocab, case_insensitive)
    normed = kv.get_normed_vectors()
    gold, pred = [], []
    oov = 0
    for line in _read_lines(path):
        if not line.strip() or line.startswith("#"):
            continue
        parts = line.split(delimiter)
        if len(parts) != 3:
            raise ValueError(f"path: word-pair line {line!r} is not 'word{delimiter}word{delimiter}score'")
        a, b = parts[0].strip(), parts[1].strip()
        try:
            sim = float(parts[2])
        except ValueError:
            raise ValueError(f"path: word-pair line {line!r} has a non-numeric score") from None
        if case_insensitive:
            a, b = a.upper(), b.upper()
        ia, ib = vocab.get(a), vocab.get(b)
        if ia is None or ib is None:
            oov += 1
            continue
        gold.append(sim)
        pred.append(float(normed[ia] @ normed[ib]))
    total = len(gold) + oov
    oov_ratio = 100.0 * oov / total if total else 0.0
    if len(gold) < 2:
        return (float("nan"), float("nan")), (float("nan"), float("nan")), oov_ratio
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pr = stats.pearsonr(gold, pred)
        sr = stats.spearmanr(gold, pred)
    return (float(pr[0]), float(pr[1])), (float(sr[0]), float(sr[1])), oov_ratio
