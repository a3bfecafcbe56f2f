"""The CSR graph and the sparse-dense product every encoder is built on.

A :class:`Graph` stores the adjacency in compressed sparse row form: ``indptr`` (int64, length
``num_nodes + 1``), ``indices`` (int32, or int64 when ids need it) and optional float32 ``weights``
(``None`` means every edge weighs 1). Arrays are read-only once built: a graph is immutable, which
lets it cache derived data (degrees, normalisation scales, device copies).

An undirected graph stores each edge in both directions; ``num_edges`` counts it once, while
``num_arcs`` counts stored entries.
"""
from __future__ import annotations

import os

import numpy as np

from . import _check
from . import backend as _backend

__all__ = ["Graph", "spmm"]

_NPZ_FORMAT = 1


def _readonly(a):
    if a is not None:
        a.flags.writeable = False
    return a


class Graph:
    """A graph in CSR form.

    Parameters
    ----------
    indptr : int array [num_nodes + 1]
        Row pointers; row ``i``'s neighbours are ``indices[indptr[i]:indptr[i+1]]``.
    indices : int array [num_arcs]
        Column ids, each in ``[0, num_nodes)``.
    weights : float array [num_arcs], optional
        Finite, non-negative edge weights (stored as float32). ``None``: all ones.
    directed : bool
        False when the arcs are symmetric (each undirected edge stored both ways).

    Raises
    ------
    ValueError
        inconsistent CSR arrays (``indptr`` not starting at 0, decreasing, not ending at
        ``len(indices)``; ids out of range; negative or non-finite weights).

    Examples
    --------
    >>> g = Graph.from_edges([0, 1], [1, 2])
    >>> g.num_nodes, g.num_edges, list(g.neighbors(1))
    (3, 2, [0, 2])
    """

    __slots__ = ("indptr", "indices", "weights", "directed", "_cache", "__weakref__")

    def __init__(self, indptr, indices, weights=None, *, directed: bool = False):
        indptr = np.asarray(indptr)
        if indptr.dtype.kind not in "iu":
            raise TypeError(f"indptr: expected integers, got dtype {indptr.dtype}")
        if indptr.ndim != 1 or indptr.size < 1:
            raise ValueError(f"indptr: expected a 1-d array of length num_nodes + 1, got shape {indptr.shape}")
        indptr = np.ascontiguousarray(indptr, dtype=np.int64)
        n = indptr.size - 1
        indices = _check.index_array(indices, "indices", upper=max(n, 0), what=f"a graph with {n} nodes",
                                     dtype=np.int32 if n < 2**31 - 1 else np.int64)
        if indptr[0] != 0:
            raise ValueError(f"indptr: must start at 0, got {indptr[0]}")
        if n and np.any(np.diff(indptr) < 0):
            raise ValueError("indptr: must be non-decreasing")
        if indptr[-1] != indices.size:
            raise ValueError(f"indptr: last value {indptr[-1]} must equal len(indices) = {indices.size}")
        if weights is not None:
            weights = _check.float_array(weights, "weights", ndim=1, shape=(indices.size,), dtype=np.float32)
            if weights.size and weights.min() < 0:
                raise ValueError(f"weights: must be non-negative, got {weights.min()}")
        self.indptr = _readonly(indptr)
        self.indices = _readonly(indices)
        self.weights = _readonly(weights)
        self.directed = bool(directed)
        self._cache = {}

    # ------------------------------------------------------------------ basic facts
    @property
    def num_nodes(self) -> int:
        return self.indptr.size - 1

    @property
    def num_arcs(self) -> int:
        """Stored (directed) entries: twice the edges of an undirected graph."""
        return int(self.indices.size)

    @property
    def num_edges(self) -> int:
        """Edges: arcs for a directed graph, arcs / 2 for an undirected one."""
        return self.num_arcs if self.directed else self.num_arcs // 2

    @property
    def dtype(self):
        return np.float32

    def __repr__(self) -> str:
        kind = "directed" if self.directed else "undirected"
        w = ", weighted" if self.weights is not None else ""
        return f"Graph(num_nodes={self.num_nodes}, num_edges={self.num_edges}, {kind}{w})"

    def neighbors(self, i) -> np.ndarray:
        """Neighbour ids of node ``i`` (a read-only view)."""
        i = _check.integer(i, "i", minimum=0)
        if i >= self.num_nodes:
            raise ValueError(f"i: node {i} out of range for a graph with {self.num_nodes} nodes")
        return self.indices[self.indptr[i]:self.indptr[i + 1]]

    def edge_weights(self, i) -> np.ndarray:
        """Weights of node ``i``'s edges, aligned with :meth:`neighbors` (ones when unweighted)."""
        nb = self.neighbors(i)
        if self.weights is None:
            return np.ones(nb.size, np.float32)
        return self.weights[self.indptr[i]:self.indptr[i + 1]]

    def degrees(self, weighted: bool = False) -> np.ndarray:
        """Out-degree of every node: neighbour counts (int64), or weight sums (float64) if ``weighted``."""
        key = ("degrees", bool(weighted))
        if key not in self._cache:
            counts = np.diff(self.indptr)
            if weighted and self.weights is not None:
                rows = np.repeat(np.arange(self.num_nodes), counts)
                deg = np.bincount(rows, weights=self.weights, minlength=self.num_nodes)
            elif weighted:
                deg = counts.astype(np.float64)
            else:
                deg = counts
            self._cache[key] = _readonly(deg)
        return self._cache[key]

    def arcs(self):
        """``(src, dst, weights)`` of every stored arc (weights are ones when unweighted)."""
        src = np.repeat(np.arange(self.num_nodes, dtype=self.indices.dtype), np.diff(self.indptr))
        w = self.weights if self.weights is not None else np.ones(self.num_arcs, np.float32)
        return src, np.asarray(self.indices), np.asarray(w)

    def edges(self):
        """``(src, dst, weights)`` with each undirected edge once (``src < dst``); all arcs if directed."""
        src, dst, w = self.arcs()
        if self.directed:
            return src, dst, w
        keep = src < dst
        return src[keep], dst[keep], w[keep]

    # ------------------------------------------------------------------ builders
    @classmethod
    def from_edges(cls, src, dst, num_nodes=None, weights=None, symmetrize: bool = True) -> "Graph":
        """Build a graph from edge lists.

        Self-loops are dropped. Duplicate edges are merged into one, their weights summed; with
        ``symmetrize=True`` the edge ``(u, v)`` is stored both ways, so listing both ``(u, v)`` and
        ``(v, u)`` counts as a duplicate (weights summed). An empty edge list is valid.

        Parameters
        ----------
        src, dst : int arrays [E]
            Endpoints, non-negative integers.
        num_nodes : int, optional
            Defaults to ``max(src, dst) + 1`` (0 for no edges).
        weights : float array [E], optional
            Finite, non-negative.
        symmetrize : bool
            Store each edge in both directions (an undirected graph).

        Raises
        ------
        TypeError
            non-integer ids.
        ValueError
            negative ids, ids >= ``num_nodes``, mismatched lengths, NaN or negative weights.
        """
        src = _check.index_array(src, "src", dtype=np.int64)
        dst = _check.index_array(dst, "dst", dtype=np.int64)
        if src.size != dst.size:
            raise ValueError(f"src and dst: lengths differ ({src.size} != {dst.size})")
        top = int(max(src.max(initial=-1), dst.max(initial=-1))) + 1
        if num_nodes is None:
            num_nodes = top
        num_nodes = _check.integer(num_nodes, "num_nodes", minimum=0)
        if top > num_nodes:
            bad = "src" if src.size and src.max() >= num_nodes else "dst"
            arr = src if bad == "src" else dst
            raise ValueError(f"{bad}: index {int(arr.max())} out of range for num_nodes={num_nodes}")
        if weights is not None:
            weights = _check.float_array(weights, "weights", ndim=1, dtype=np.float64)
            if weights.size != src.size:
                raise ValueError(f"weights: length {weights.size} differs from the number of edges {src.size}")
            if weights.size and weights.min() < 0:
                raise ValueError(f"weights: must be non-negative, got {weights.min()}")
        keep = src != dst
        src, dst = src[keep], dst[keep]
        if weights is not None:
            weights = weights[keep]
        if symmetrize:
            src, dst = np.concatenate([src, dst]), np.concatenate([dst, src])
            if weights is not None:
                weights = np.concatenate([weights, weights])
        return cls._from_coo(src, dst, weights, num_nodes, directed=not symmetrize)

    @classmethod
    def _from_coo(cls, src, dst, weights, num_nodes, directed):
        # Sort once and merge runs of equal (row, col) keys (np.unique hashes first, which is far slower).
        key = src.astype(np.int64) * max(num_nodes, 1) + dst
        if weights is None:
            key = np.sort(key)
            first = np.ones(key.size, bool)
            np.not_equal(key[1:], key[:-1], out=first[1:])
            key = key[first]
            w = None
        else:
            order = np.argsort(key, kind="stable")
            key = key[order]
            first = np.ones(key.size, bool)
            np.not_equal(key[1:], key[:-1], out=first[1:])
            starts = np.flatnonzero(first)
            w = np.add.reduceat(weights[order], starts).astype(np.float32) if key.size else np.zeros(0, np.float32)
            key = key[starts]
        rows = key // max(num_nodes, 1)
        cols = key - rows * max(num_nodes, 1)
        indptr = np.zeros(num_nodes + 1, np.int64)
        np.cumsum(np.bincount(rows, minlength=num_nodes), out=indptr[1:])
        idx_dtype = np.int32 if num_nodes < 2**31 - 1 else np.int64
        return cls(indptr, cols.astype(idx_dtype), w, directed=directed)

    @classmethod
    def from_scipy(cls, matrix, directed=None) -> "Graph":
        """Build from any square scipy sparse matrix (entries are weights; the diagonal is dropped).

        ``directed`` defaults to whether the matrix is asymmetric. All-ones data gives an unweighted graph.
        """
        import scipy.sparse as sp

        if not sp.issparse(matrix):
            raise TypeError(f"matrix: expected a scipy sparse matrix, got {type(matrix).__name__}")
        if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
            raise ValueError(f"matrix: expected a square matrix, got shape {matrix.shape}")
        coo = sp.coo_matrix(matrix)
        data = _check.float_array(coo.data, "matrix data", dtype=np.float64)
        if data.size and data.min() < 0:
            raise ValueError(f"matrix: edge weights must be non-negative, got {data.min()}")
        row, col = coo.row.astype(np.int64), coo.col.astype(np.int64)
        keep = row != col
        row, col, data = row[keep], col[keep], data[keep]
        if directed is None:
            m = sp.csr_matrix((data, (row, col)), shape=matrix.shape)
            directed = bool((abs(m - m.T) > 0).nnz)
        w = None if (data.size == 0 or np.all(data == 1.0)) and not _has_duplicates(row, col, matrix.shape[0]) else data
        return cls._from_coo(row, col, w, matrix.shape[0], directed=bool(directed))

    @classmethod
    def from_networkx(cls, G, weight: str | None = "weight") -> "Graph":
        """Build from a networkx graph; node ``k`` is the ``k``-th node of ``list(G.nodes)``.

        Edge attribute ``weight`` is used when every edge has it (``None`` ignores weights).
        """
        import networkx as nx  # only here: networkx is optional

        if not isinstance(G, nx.Graph):
            raise TypeError(f"G: expected a networkx graph, got {type(G).__name__}")
        nodes = list(G.nodes)
        pos = {v: k for k, v in enumerate(nodes)}
        edges = list(G.edges(data=True))
        src = np.fromiter((pos[u] for u, _, _ in edges), np.int64, len(edges))
        dst = np.fromiter((pos[v] for _, v, _ in edges), np.int64, len(edges))
        w = None
        if weight is not None and edges and all(weight in d for _, _, d in edges):
            w = np.array([d[weight] for _, _, d in edges], np.float64)
        if G.is_directed():
            return cls.from_edges(src, dst, num_nodes=len(nodes), weights=w, symmetrize=False)
        return cls.from_edges(src, dst, num_nodes=len(nodes), weights=w, symmetrize=True)

    @classmethod
    def read_edgelist(cls, path, *, num_nodes=None, symmetrize: bool = True, comments: str = "#",
                      delimiter: str | None = None) -> "Graph":
        """Read ``u v`` or ``u v w`` lines (whitespace- or ``delimiter``-separated; ``comments`` start comments).

        Raises
        ------
        FileNotFoundError
            no such file.
        ValueError
            a malformed line; the message gives the line number and its text.
        """
        path = os.fspath(path)
        if not os.path.exists(path):
            raise FileNotFoundError(f"path: no such edge-list file: {path!r}")
        src, dst, wts = [], [], []
        ncols = None
        with open(path, "r", encoding="utf-8") as fh:
            for lineno, line in enumerate(fh, 1):
                text = line.split(comments, 1)[0].strip() if comments else line.strip()
                if not text:
                    continue
                parts = text.split(delimiter)
                if len(parts) not in (2, 3):
                    raise ValueError(f"{path}, line {lineno}: expected 'u v' or 'u v weight', got {line.strip()!r}")
                if ncols is None:
                    ncols = len(parts)
                elif len(parts) != ncols:
                    raise ValueError(f"{path}, line {lineno}: expected {ncols} columns like the first line, got {line.strip()!r}")
                try:
                    u, v = int(parts[0]), int(parts[1])
                    w = float(parts[2]) if ncols == 3 else 1.0
                except ValueError:
                    raise ValueError(f"{path}, line {lineno}: node ids must be integers and weights numbers, got {line.strip()!r}") from None
                if u < 0 or v < 0:
                    raise ValueError(f"{path}, line {lineno}: negative node id in {line.strip()!r}")
                if not np.isfinite(w) or w < 0:
                    raise ValueError(f"{path}, line {lineno}: weight must be finite and non-negative, got {line.strip()!r}")
                src.append(u)
                dst.append(v)
                wts.append(w)
        return cls.from_edges(np.array(src, np.int64), np.array(dst, np.int64), num_nodes=num_nodes,
                              weights=np.array(wts) if ncols == 3 else None, symmetrize=symmetrize)

    # ------------------------------------------------------------------ I/O and conversion
    def save(self, path) -> None:
        """Write the graph to an ``.npz`` file."""
        arrays = dict(indptr=self.indptr, indices=self.indices, directed=np.array(self.directed),
                      format=np.array(_NPZ_FORMAT))
        if self.weights is not None:
            arrays["weights"] = self.weights
        np.savez(path, **arrays)

    @classmethod
    def load(cls, path) -> "Graph":
        """Read a graph written by :meth:`save` (its CSR arrays are validated again)."""
        path = os.fspath(path)
        if not os.path.exists(path):
            raise FileNotFoundError(f"path: no such file: {path!r}")
        with np.load(path, allow_pickle=False) as f:
            missing = {"indptr", "indices", "directed"} - set(f.files)
            if missing:
                raise ValueError(f"path: {path!r} is not a fastgnn graph file (missing {sorted(missing)})")
            return cls(f["indptr"], f["indices"], f["weights"] if "weights" in f.files else None,
                       directed=bool(f["directed"]))

    def to_scipy(self):
        """The adjacency as a ``scipy.sparse.csr_matrix`` (float32; ones when unweighted)."""
        import scipy.sparse as sp

        data = self.weights if self.weights is not None else np.ones(self.num_arcs, np.float32)
        return sp.csr_matrix((np.array(data), np.array(self.indices), np.array(self.indptr)),
                             shape=(self.num_nodes, self.num_nodes))

    # ------------------------------------------------------------------ derived data
    def norm_scales(self, norm, dtype=np.float32):
        """``(row_scale, col_scale)`` of ``dtype`` such that the normalised ``A[i, j] = r[i] * A[i, j] * c[j]``.

        ``"sym"``: ``r = c = d^-1/2``; ``"rw"``: ``r = 1/d``, ``c = 1``; isolated nodes get 0, never inf.
        Degrees are weighted (row sums).
        """
        dtype = np.dtype(dtype)
        key = ("scales", norm, dtype.str)
        if key not in self._cache:
            deg = self.degrees(weighted=True).astype(np.float64)
            inv = np.zeros_like(deg)
            pos = deg > 0
            if norm == "sym":
                inv[pos] = 1.0 / np.sqrt(deg[pos])  # correctly rounded, as on the device
                r = c = inv.astype(dtype)
            elif norm == "rw":
                inv[pos] = 1.0 / deg[pos]
                r, c = inv.astype(dtype), np.ones(self.num_nodes, dtype)
            else:
                raise ValueError(f"norm: expected one of (None, 'sym', 'rw'), got {norm!r}")
            self._cache[key] = (_readonly(r), _readonly(c))
        return self._cache[key]

    def transpose(self) -> "Graph":
        """The graph with every arc reversed (itself for an undirected graph); cached."""
        if not self.directed:
            return self
        if "transpose" not in self._cache:
            src, dst, w = self.arcs()
            self._cache["transpose"] = Graph._from_coo(dst.astype(np.int64), src.astype(np.int64),
                                                       None if self.weights is None else w.astype(np.float64),
                                                       self.num_nodes, directed=True)
        return self._cache["transpose"]

    def with_self_loops(self):
        """``(indptr, indices)`` of the arcs plus one self-loop per node (row-sorted), for attention layers; cached.

        Returned as plain arrays: a :class:`Graph` never stores self-loops.
        """
        if "self_loops" not in self._cache:
            n = self.num_nodes
            src, dst, _ = self.arcs()
            rows = np.concatenate([src.astype(np.int64), np.arange(n)])
            cols = np.concatenate([dst.astype(np.int64), np.arange(n)])
            order = np.lexsort((cols, rows))
            indptr = np.zeros(n + 1, np.int64)
            np.cumsum(np.bincount(rows, minlength=n), out=indptr[1:])
            self._cache["self_loops"] = (_readonly(indptr), _readonly(cols[order].astype(self.indices.dtype)))
        return self._cache["self_loops"]

    def _edge_plan(self):
        """``(arc_edge, edge_arc)``: the edge (numbered as :meth:`edges` lists them) of every arc, and the arc
        that lists each edge; cached. None when rows are not strictly increasing, a self-loop is stored or an
        undirected graph misses a reverse arc (then :meth:`_keep_edges` does not apply)."""
        if "edge_plan" not in self._cache:
            k = _backend.kernels("graph", "cpu")
            arc_edge = np.empty(self.num_arcs, np.int64)
            edge_arc = np.empty(self.num_arcs, np.int64)
            m = k.edge_plan(self.indptr, self.indices, self.directed, arc_edge, edge_arc)
            self._cache["edge_plan"] = None if m < 0 else (_readonly(arc_edge), _readonly(edge_arc[:m]))
        return self._cache["edge_plan"]

    def _keep_edges(self, keep) -> "Graph":
        """The graph of the edges with ``keep[e]`` (bool, aligned with :meth:`edges`), both arcs of an undirected
        edge carrying the weight :meth:`edges` lists: what ``from_edges`` builds from the kept edges, without
        sorting or validating again. Needs :meth:`_edge_plan`."""
        arc_edge, edge_arc = self._edge_plan()
        has_w = self.weights is not None
        indptr = np.empty(self.num_nodes + 1, np.int64)
        indices = np.empty(self.num_arcs, self.indices.dtype)
        weights = np.empty(self.num_arcs if has_w else 1, np.float32)
        k = _backend.kernels("graph", "cpu")
        q = k.keep_arcs(self.indptr, self.indices, self.weights if has_w else weights, has_w, arc_edge, edge_arc,
                        keep, indptr, indices, weights)
        out = object.__new__(Graph)
        out.indptr, out.indices = _readonly(indptr), _readonly(indices[:q])
        out.weights = _readonly(weights[:q]) if has_w else None
        out.directed = self.directed
        out._cache = {}
        return out

    def _drop_edges(self, p, seed, device=False) -> "Graph":
        """The graph without the edges that ``uniform(seed, e, 0) < p`` drops (edges numbered as :meth:`edges`
        lists them). With ``device`` and an edge plan the copy is built on the CUDA device (a
        :class:`_DeviceGraph`: the same arcs in the same order, nothing copied either way)."""
        plan = self._edge_plan()
        if plan is not None and device:
            from numba import cuda

            if "device_edge_plan" not in self._cache:
                self._cache["device_edge_plan"] = tuple(cuda.to_device(np.ascontiguousarray(a)) for a in plan)
            out = _backend.kernels("graph", "cuda").drop_edges(*self.device_arrays(), self._weighted,
                                                                *self._cache["device_edge_plan"], seed, p)
            return _DeviceGraph(*out, self._weighted, self.directed)
        src, dst, w = self.edges() if plan is None else (None, None, None)
        keep = np.empty(plan[1].size if plan is not None else src.size, np.bool_)
        _backend.kernels("graph", "cpu").edge_keeps(np.uint64(seed), float(p), keep)
        if plan is not None:  # sorted rows, no self-loops, symmetric arcs: filter the CSR arrays directly
            return self._keep_edges(keep)
        return Graph.from_edges(src[keep], dst[keep], num_nodes=self.num_nodes,
                                weights=None if self.weights is None else w[keep], symmetrize=not self.directed)

    def device_arrays(self):
        """``(indptr, indices, weights)`` on the current CUDA device, copied once and cached."""
        if "device" not in self._cache:
            from numba import cuda

            w = self.weights if self.weights is not None else np.ones(1, np.float32)
            self._cache["device"] = (cuda.to_device(np.array(self.indptr)), cuda.to_device(np.array(self.indices)),
                                     cuda.to_device(np.array(w)))
        return self._cache["device"]

    @property
    def _weighted(self) -> bool:
        return self.weights is not None

    def gcn_scale(self, dtype=np.float32):
        """Kipf & Welling's ``(d + 1)^-1/2`` per node (weighted degrees, the self-loop added), of ``dtype``; cached."""
        key = ("gcn_scale", np.dtype(dtype).str)
        if key not in self._cache:
            deg = self.degrees(weighted=True).astype(np.float64) + 1.0
            self._cache[key] = _readonly((1.0 / np.sqrt(deg)).astype(dtype))  # correctly rounded, as on the device
        return self._cache[key]

    def _device_scales(self, norm, dtype):
        """``(row, col)`` device vectors of ``dtype`` for the normalised products on the device: ``norm`` None gives
        ones, "sym" ``(d^-1/2, d^-1/2)``, "rw" ``(1/d, ones)``, "gcn" ``((d+1)^-1/2, (d+1)^-1)`` (the second scales
        the self-loop). Copied from the host vectors once per graph and dtype."""
        key = ("device_norm", norm, np.dtype(dtype).str)
        if key not in self._cache:
            from numba import cuda

            if norm == "gcn":
                r = self.gcn_scale(dtype)
                pair = (r, r * r)
            elif norm is None:
                pair = (np.ones(self.num_nodes, dtype),) * 2
            else:
                pair = self.norm_scales(norm, dtype)
            self._cache[key] = tuple(cuda.to_device(np.ascontiguousarray(v)) for v in pair)
        return self._cache[key]

    def _device_self_loops(self):
        """``[indptr, cols, None]`` of :meth:`with_self_loops` on the device, copied once; GAT's backward keeps the
        arcs grouped by column in the last slot."""
        if "device_self_loops" not in self._cache:
            from numba import cuda

            self._cache["device_self_loops"] = [cuda.to_device(np.array(a)) for a in self.with_self_loops()] + [None]
        return self._cache["device_self_loops"]


class _DeviceGraph(Graph):
    """A :class:`Graph` whose CSR arrays were built on the CUDA device (GRACE's dropped-edge views).

    The device products read :meth:`device_arrays`, :meth:`_device_scales`, :meth:`_device_self_loops` and
    :meth:`transpose`, all made on the device. ``indptr``, ``indices`` and ``weights`` are copied to the host
    only when something reads them (once); ``num_arcs`` reads back one integer. ``indices`` on the device has
    the parent's capacity: entries past ``indptr[N]`` are -1 (padding that the radix sort drops)."""

    __slots__ = ("_dev", "_n", "_has_w", "_host")

    def __init__(self, indptr, indices, weights, has_weights, directed):
        self._dev = (indptr, indices, weights)
        self._n = int(indptr.shape[0]) - 1
        self._has_w = bool(has_weights)
        self._host = None
        self.directed = bool(directed)
        self._cache = {}

    def _host_arrays(self):
        if self._host is None:
            indptr = self._dev[0].copy_to_host()
            q = int(indptr[-1])
            indices = self._dev[1][:q].copy_to_host()
            weights = self._dev[2][:q].copy_to_host() if self._has_w else None
            self._host = (_readonly(indptr), _readonly(indices), _readonly(weights))
        return self._host

    indptr = property(lambda self: self._host_arrays()[0])
    indices = property(lambda self: self._host_arrays()[1])
    weights = property(lambda self: self._host_arrays()[2])

    @property
    def num_nodes(self) -> int:
        return self._n

    @property
    def num_arcs(self) -> int:
        if self._host is None and "num_arcs" not in self._cache:
            self._cache["num_arcs"] = int(self._dev[0][self._n:].copy_to_host()[0])
        return int(self._host[1].size) if self._host is not None else self._cache["num_arcs"]

    @property
    def _weighted(self) -> bool:
        return self._has_w

    def device_arrays(self):
        return self._dev

    def _device_scales(self, norm, dtype):
        key = ("device_norm", norm, np.dtype(dtype).str)
        if key not in self._cache:
            arrays = _backend.kernels("arrays", "cuda")
            ones = arrays.full(self._n, 1, np.dtype(dtype)) if norm in (None, "rw") else None
            if norm is None:
                pair = (ones, ones)
            else:
                r, r2 = _backend.kernels("graph", "cuda").degree_scales(self._dev[0], self._dev[2], self._has_w,
                                                                        norm, np.dtype(dtype))
                pair = (r, r2) if norm == "gcn" else (r, r) if norm == "sym" else (r, ones)
            self._cache[key] = pair
        return self._cache[key]

    def _device_self_loops(self):
        if "device_self_loops" not in self._cache:
            self._cache["device_self_loops"] = [*_backend.kernels("graph", "cuda").self_loops(*self._dev[:2]), None]
        return self._cache["device_self_loops"]

    def transpose(self) -> "Graph":
        """Itself when undirected; else the reversed arcs, grouped on the device (a stable radix sort)."""
        if not self.directed:
            return self
        if "transpose" not in self._cache:
            indptr, indices, w = self._dev
            arrays = _backend.kernels("arrays", "cuda")
            tindptr, tarcs, rows = _backend.kernels("graph", "cuda").arcs_by_column(indptr, indices)
            tw = arrays.take(w, tarcs) if self._has_w else w
            self._cache["transpose"] = _DeviceGraph(tindptr, arrays.take(rows, tarcs, indices.dtype), tw,
                                                    self._has_w, True)
        return self._cache["transpose"]


def _has_duplicates(row, col, n) -> bool:
    key = np.sort(row * max(n, 1) + col)
    return bool(np.any(key[1:] == key[:-1]))


def _check_graph(graph, name="graph") -> Graph:
    if not isinstance(graph, Graph):
        raise TypeError(f"{name}: expected a fastgnn.Graph, got {type(graph).__name__}")
    return graph


_NORMS = (None, "sym", "rw")


def spmm(graph: Graph, X, norm: str | None = None, *, out=None, backend: str | None = None):
    """Sparse-dense product ``Y = Â X`` over the graph's edge weights.

    ``Â = A`` (``norm=None``), ``D^-1/2 A D^-1/2`` (``"sym"``) or ``D^-1 A`` (``"rw"``, the mean of the
    neighbours), with ``D`` the weighted degrees. Isolated nodes give zero rows, never NaN.

    Parameters
    ----------
    graph : Graph
    X : float array [num_nodes, D] or [num_nodes]
        float32 (default) or float64; finite. A CUDA device array keeps the computation on the GPU.
    norm : None | "sym" | "rw"
    out : array [num_nodes, D], optional
        Preallocated output of X's dtype (C-contiguous, writeable).
    backend : "cpu" | "cuda" | "auto", optional

    Returns
    -------
    Y : array like ``X`` (a device array for device input)

    Raises
    ------
    TypeError, ValueError
        wrong types, shapes or dtypes, non-finite ``X``, unknown ``norm``.

    Examples
    --------
    >>> g = Graph.from_edges([0], [1])
    >>> spmm(g, np.eye(2, dtype=np.float32)).tolist()
    [[0.0, 1.0], [1.0, 0.0]]
    """
    graph = _check_graph(graph)
    _check.choice(norm, "norm", _NORMS)
    n = graph.num_nodes
    on_device = _check.is_device_array(X)
    if on_device:
        name = _backend.resolve(backend if backend is not None else "cuda")
        if name != "cuda":
            raise ValueError("X: a CUDA device array needs backend 'cuda' (or None), got 'cpu'")
        return _spmm_cuda(graph, X, norm, out)
    X = _check.float_array(X, "X")
    if X.ndim not in (1, 2):
        raise ValueError(f"X: expected a 2-d array [num_nodes, D] (or 1-d [num_nodes]), got shape {X.shape}")
    if X.shape[0] != n:
        raise ValueError(f"X: expected {n} rows (graph.num_nodes), got {X.shape[0]}")

    X2 = X.reshape(n, -1)
    if out is not None:
        out = _check.inplace_array(out, "out", dtype=X.dtype, shape=X.shape)
        out2 = out.reshape(n, -1)
    else:
        out2 = np.empty_like(X2)
    name = _backend.resolve(backend)
    if name == "cuda":
        res = _spmm_cuda(graph, X2, norm, None).copy_to_host()
        out2[...] = res
    else:
        _spmm_cpu(graph, X2, norm, out2)
    return out2.reshape(X.shape) if out is None else out


def spmm_scaled(graph: Graph, X: np.ndarray, row_scale, col_scale, out=None, self_scale=None) -> np.ndarray:
    """``diag(row_scale) A diag(col_scale) X`` on the CPU for validated, C-contiguous 2-d ``X`` (internal), plus
    ``diag(self_scale) X`` where given (a GCN's self-loops, in the same pass).

    Lets autograd run a product and its transpose with one kernel: ``(R A C)^T = C A^T R``.
    """
    if out is None:
        out = np.empty_like(X)
    k = _backend.kernels("sparse", "cpu")
    has_w = graph.weights is not None
    w = graph.weights if has_w else np.ones(1, np.float32)
    n = graph.num_nodes
    r = np.ones(n, X.dtype) if row_scale is None else np.ascontiguousarray(row_scale, X.dtype)
    c = np.ones(n, X.dtype) if col_scale is None else np.ascontiguousarray(col_scale, X.dtype)
    s = r if self_scale is None else np.ascontiguousarray(self_scale, X.dtype)
    k.spmm_csr(graph.indptr, graph.indices, w, has_w, 1, r, c, s, self_scale is not None, X, out)
    return out


def _kernel_args(graph, norm, dtype):
    has_w = graph.weights is not None
    if norm is None:
        r = c = np.ones(0, np.float32)
        mode = 0
    else:
        r, c = graph.norm_scales(norm, dtype)
        mode = 1 if norm == "sym" else 2
    return has_w, mode, r, c


def _spmm_cpu(graph, X, norm, out):
    k = _backend.kernels("sparse", "cpu")
    has_w, mode, r, c = _kernel_args(graph, norm, X.dtype)
    w = graph.weights if has_w else np.ones(1, np.float32)
    k.spmm_csr(graph.indptr, graph.indices, w, has_w, mode, r, c, r, False, X, out)


def _spmm_cuda(graph, X, norm, out):
    from numba import cuda

    k = _backend.kernels("sparse", "cuda")
    n = graph.num_nodes
    if _check.is_device_array(X):
        dX = _check.device_array(X, "X")
        if dX.ndim != 2 or dX.shape[0] != n:
            raise ValueError(f"X: expected a 2-d device array with {n} rows, got shape {dX.shape}")
    else:
        dX = cuda.to_device(X)
    mode = 0 if norm is None else 1 if norm == "sym" else 2  # _kernel_args's modes
    indptr, indices, w = graph.device_arrays()
    dr, dc = graph._device_scales(norm, dX.dtype)
    if out is not None:
        dout = _check.device_array(out, "out")
        if tuple(dout.shape) != tuple(dX.shape) or dout.dtype != dX.dtype:
            raise ValueError(f"out: expected a device array of shape {tuple(dX.shape)} and dtype {dX.dtype}")
    else:
        dout = cuda.device_array(dX.shape, dtype=dX.dtype)
    k.launch_spmm(indptr, indices, w, graph._weighted, mode, dr, dc, dr, False, dX, dout)
    return dout
