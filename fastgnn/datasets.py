"""Built-in data sets and the loader for the shared folder format.

* :func:`planted_partition` — a stochastic block model generated from a seed.
* :func:`karate_club` — Zachary's karate club, shipped inside the package.
* :func:`load` — a folder with ``edges.tsv`` (+ ``labels.tsv``, ``features.npz``, ``split_planetoid.tsv``).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from importlib import resources

import numpy as np

from . import _check
from .graph import Graph

__all__ = ["Dataset", "planted_partition", "karate_club", "load"]


@dataclass
class Dataset:
    """A graph with optional node labels, features and a train/val/test split.

    Attributes
    ----------
    graph : Graph
    labels : int64 array [N] (-1 = unlabelled) or, for multi-label data, a 0/1 int8 array [N, C]; or None
    features : scipy.sparse.csr_matrix or float32 array [N, F], or None
    split : dict ``{"train": ids, "val": ids, "test": ids}`` of int64 node ids, or None
    name : str
    """

    graph: Graph
    labels: np.ndarray | None = None
    features: object = None
    split: dict | None = None
    name: str = ""
    info: dict = field(default_factory=dict)

    @property
    def num_nodes(self) -> int:
        return self.graph.num_nodes

    @property
    def multilabel(self) -> bool:
        return self.labels is not None and self.labels.ndim == 2

    @property
    def num_classes(self) -> int:
        if self.labels is None:
            return 0
        if self.multilabel:
            return int(self.labels.shape[1])
        return int(self.labels.max(initial=-1)) + 1

    def summary(self) -> dict:
        """Counts for printing: nodes, edges, degree statistics, classes, features, split sizes."""
        deg = self.graph.degrees()
        out = {
            "name": self.name or "(unnamed)",
            "nodes": self.graph.num_nodes,
            "edges": self.graph.num_edges,
            "directed": self.graph.directed,
            "mean degree": float(deg.mean()) if deg.size else 0.0,
            "max degree": int(deg.max(initial=0)),
            "isolated nodes": int((deg == 0).sum()),
            "classes": self.num_classes,
            "multi-label": self.multilabel,
            "features": None if self.features is None else tuple(self.features.shape),
        }
        if self.labels is not None and not self.multilabel and self.graph.num_edges:
            s, d, _ = self.graph.edges()
            lab = self.labels
            ok = (lab[s] >= 0) & (lab[d] >= 0)
            if ok.any():
                out["edge homophily"] = float((lab[s][ok] == lab[d][ok]).mean())
        if self.split is not None:
            out["split"] = {k: int(len(v)) for k, v in self.split.items()}
        return out


def planted_partition(num_nodes: int = 1000, num_communities: int = 10, avg_degree: float = 10.0,
                      p_in: float = 0.8, seed: int | None = 0) -> Dataset:
    """A stochastic block model with ``p_in`` = the share of edges inside communities.

    Nodes get communities ``0..num_communities-1`` in near-equal sizes (shuffled by ``seed``). Exactly
    ``round(num_nodes * avg_degree / 2)`` distinct undirected edges are drawn: a share ``p_in`` between two
    members of one community (communities picked in proportion to their number of pairs), the rest between
    nodes of different communities. Raises ``ValueError`` when that many distinct edges cannot exist.

    Examples
    --------
    >>> ds = planted_partition(200, 4, 8.0, 0.9, seed=1)
    >>> ds.graph.num_edges, ds.num_classes
    (800, 4)
    """
    n = _check.integer(num_nodes, "num_nodes", minimum=1)
    k = _check.integer(num_communities, "num_communities", minimum=1, maximum=n)
    avg_degree = _check.real(avg_degree, "avg_degree", minimum=0.0)
    p_in = _check.real(p_in, "p_in", minimum=0.0, maximum=1.0)
    seed = _check.seed_value(seed)
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.arange(n, dtype=np.int64) % k)
    members = [np.flatnonzero(labels == c) for c in range(k)]
    sizes = np.array([m.size for m in members], np.int64)
    pairs_in = int((sizes * (sizes - 1) // 2).sum())
    pairs_out = n * (n - 1) // 2 - pairs_in
    m = int(round(n * avg_degree / 2))
    m_in = int(round(p_in * m))
    m_out = m - m_in
    if m_in > pairs_in:
        raise ValueError(f"avg_degree/p_in: {m_in} edges inside communities requested, only {pairs_in} node pairs exist")
    if m_out > pairs_out:
        raise ValueError(f"avg_degree/p_in: {m_out} edges between communities requested, only {pairs_out} node pairs exist")
    weights = sizes * (sizes - 1) / 2.0
    in_keys = _draw_edges(rng, m_in, lambda cnt: _draw_inside(rng, members, weights, cnt), n)
    out_keys = _draw_edges(rng, m_out, lambda cnt: _draw_across(rng, labels, cnt), n)
    keys = np.concatenate([in_keys, out_keys])
    g = Graph.from_edges(keys // n, keys % n, num_nodes=n)
    return Dataset(graph=g, labels=labels, name=f"planted_partition(n={n}, k={k}, deg={avg_degree:g}, p_in={p_in:g})",
                   info={"seed": seed})


def _draw_inside(rng, members, weights, cnt):
    if cnt == 0 or weights.sum() == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    comm = rng.choice(len(members), size=cnt, p=weights / weights.sum())
    sizes = np.array([m.size for m in members])[comm]
    a = (rng.random(cnt) * sizes).astype(np.int64)
    b = (rng.random(cnt) * (sizes - 1)).astype(np.int64)
    b = b + (b >= a)  # a distinct second member
    offsets = np.concatenate([[0], np.cumsum([m.size for m in members])])
    flat = np.concatenate(members)
    return flat[offsets[comm] + a], flat[offsets[comm] + b]


def _draw_across(rng, labels, cnt):
    n = labels.size
    u = rng.integers(0, n, cnt)
    v = rng.integers(0, n, cnt)
    keep = labels[u] != labels[v]
    return u[keep], v[keep]


def _draw_edges(rng, m, draw, n):
    """Draw until ``m`` distinct undirected pairs exist (encoded as ``min * n + max``)."""
    keys = np.zeros(0, np.int64)
    for _ in range(1000):
        need = m - keys.size
        if need <= 0:
            break
        u, v = draw(int(need * 1.2) + 16)
        lo, hi = np.minimum(u, v), np.maximum(u, v)
        new = lo * n + hi
        new = new[lo != hi]
        # keep the order of first appearance so that the result depends on the seed only
        allk = np.concatenate([keys, new])
        _, first = np.unique(allk, return_index=True)
        keys = allk[np.sort(first)]
    if keys.size < m:  # pragma: no cover - only when nearly every pair is requested
        raise ValueError(f"avg_degree: could not draw {m} distinct edges; lower avg_degree")
    return keys[:m]


def karate_club() -> Dataset:
    """Zachary's karate club: 34 members, 78 undirected ties, labels = faction after the split (0 Mr. Hi, 1 Officer)."""
    pkg = resources.files("fastgnn") / "data"
    edges = np.loadtxt(str(pkg / "karate_club_edges.tsv"), dtype=np.int64, comments="#")
    lab = np.loadtxt(str(pkg / "karate_club_labels.tsv"), dtype=np.int64, comments="#")
    g = Graph.from_edges(edges[:, 0], edges[:, 1], num_nodes=34)
    labels = np.full(34, -1, np.int64)
    labels[lab[:, 0]] = lab[:, 1]
    return Dataset(graph=g, labels=labels, name="karate_club")


def _read_int_table(path, ncols, what):
    """Read a TSV of integers, reporting the first malformed line by number."""
    rows = []
    with open(path, "r", encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            text = line.strip()
            if not text or text.startswith("#"):
                continue
            parts = text.split()
            if len(parts) != ncols:
                raise ValueError(f"{path}, line {lineno}: expected {ncols} columns ({what}), got {text!r}")
            try:
                vals = [int(p) for p in parts]
            except ValueError:
                raise ValueError(f"{path}, line {lineno}: expected integers ({what}), got {text!r}") from None
            if min(vals) < 0:
                raise ValueError(f"{path}, line {lineno}: negative id in {text!r}")
            rows.append(vals)
    return np.array(rows, np.int64).reshape(-1, ncols)


def load(path) -> Dataset:
    """Load a data-set folder in the shared format.

    ``edges.tsv`` (required): ``u<TAB>v`` undirected edges. ``labels.tsv`` (optional): ``node<TAB>class``; a node
    listed twice makes the data set multi-label (labels become a 0/1 matrix [N, C]). ``features.npz``
    (optional): a scipy sparse matrix. ``split_planetoid.tsv`` (optional): ``node<TAB>train|val|test``.
    N is one more than the largest id in any of these files (features rows included).

    Raises
    ------
    FileNotFoundError
        the folder or its ``edges.tsv`` is missing.
    ValueError
        a malformed line (with its number), or a split naming an unknown part.
    """
    path = os.fspath(path)
    if not os.path.isdir(path):
        raise FileNotFoundError(f"path: no such data-set folder: {path!r}")
    edges_path = os.path.join(path, "edges.tsv")
    if not os.path.exists(edges_path):
        raise FileNotFoundError(f"path: {path!r} has no edges.tsv")
    edges = _read_int_table(edges_path, 2, "u, v")
    n = int(edges.max(initial=-1)) + 1
    lab_rows = None
    lab_path = os.path.join(path, "labels.tsv")
    if os.path.exists(lab_path):
        lab_rows = _read_int_table(lab_path, 2, "node, class")
        n = max(n, int(lab_rows[:, 0].max(initial=-1)) + 1)
    features = None
    feat_path = os.path.join(path, "features.npz")
    if os.path.exists(feat_path):
        import scipy.sparse as sp

        features = sp.load_npz(feat_path).tocsr().astype(np.float32)
        n = max(n, features.shape[0])
    split = None
    split_path = os.path.join(path, "split_planetoid.tsv")
    if os.path.exists(split_path):
        split = _read_split(split_path)
        for ids in split.values():
            n = max(n, int(ids.max(initial=-1)) + 1)
    if features is not None and features.shape[0] < n:
        import scipy.sparse as sp

        features = sp.vstack([features, sp.csr_matrix((n - features.shape[0], features.shape[1]), dtype=np.float32)]).tocsr()
    g = Graph.from_edges(edges[:, 0], edges[:, 1], num_nodes=n)
    labels = None
    if lab_rows is not None:
        nodes, classes = lab_rows[:, 0], lab_rows[:, 1]
        if np.unique(nodes).size != nodes.size:
            labels = np.zeros((n, int(classes.max()) + 1), np.int8)
            labels[nodes, classes] = 1
        else:
            labels = np.full(n, -1, np.int64)
            labels[nodes] = classes
    return Dataset(graph=g, labels=labels, features=features, split=split,
                   name=os.path.basename(os.path.normpath(path)))


def _read_split(path):
    parts = {"train": [], "val": [], "test": []}
    with open(path, "r", encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            text = line.strip()
            if not text or text.startswith("#"):
                continue
            cols = text.split()
            if len(cols) != 2 or cols[1] not in parts:
                raise ValueError(f"{path}, line {lineno}: expected 'node<TAB>train|val|test', got {text!r}")
            try:
                node = int(cols[0])
            except ValueError:
                raise ValueError(f"{path}, line {lineno}: node id must be an integer, got {text!r}") from None
            if node < 0:
                raise ValueError(f"{path}, line {lineno}: negative node id in {text!r}")
            parts[cols[1]].append(node)
    return {k: np.array(v, np.int64) for k, v in parts.items()}
