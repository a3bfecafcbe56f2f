"""The Trainer's building blocks: constants, errors, augmentations, history, early stopping, helpers."""
from __future__ import annotations

import contextlib
import json
import logging
import sys
from dataclasses import dataclass, field

import numpy as np

from .. import _check
from .. import autograd as ag
from .. import nn
from ..graph import Graph


log = logging.getLogger("fastgnn")

MODELS = ("gcn", "sage", "gat", "table")
OBJECTIVES = ("infonce", "local", "spectral", "reconstruction")
POSITIVES = ("neighbors", "views")
MINERS = ("uniform", "khop", "similarity", None)
_CKPT_FORMAT = 1
# nodes x widest layer from which an epoch's compiled kernels run in parallel (see Trainer._epoch)
_PARALLEL_KERNELS_FROM = 1 << 21


class TrainingDiverged(FloatingPointError):
    """A loss became NaN or infinite; the parameters were restored to the last good epoch."""


# ------------------------------------------------------------------------------------------ augmentations
def mask_features(X: np.ndarray, p: float, rng: np.random.Generator) -> np.ndarray:
    """Zero each feature column with probability ``p`` (the same columns for every node, as in GRACE).

    A :class:`~fastgnn.autograd.SparseMatrix` gets the mask as a column scale (no copy of its arrays)."""
    if p <= 0:
        return X
    keep = rng.random(X.shape[1]) >= p
    if _check.is_device_array(X):  # the host draw (both backends mask the same columns), applied on the device
        from .. import _autograd_device as _ad

        return _ad.scale_columns(X, _ad.upload(keep, X.dtype))
    if isinstance(X, ag.SparseMatrix):  # a column scale: no copy of X
        return X.scale_columns(keep.astype(X.data.dtype))
    if ag._is_sparse(X):
        return X.multiply(keep.astype(X.dtype)[None, :]).tocsr()
    return X * keep.astype(X.dtype)[None, :]


def drop_edges(graph: Graph, p: float, rng: np.random.Generator, *, device: bool = False) -> Graph:
    """A copy of ``graph`` with each (undirected) edge removed with probability ``p``.

    One seed is taken from ``rng``; edge ``e`` (numbered as :meth:`Graph.edges` lists them) is kept where the
    counter-based draw ``uniform(seed, e, 0) >= p``. With ``device=True`` the copy is built on the CUDA device
    from the graph's device arrays (the same arcs; nothing crosses the bus) when the graph's rows are sorted and
    its arcs symmetric (always so for ``from_edges`` graphs), else on the host."""
    if p <= 0 or graph.num_edges == 0:
        return graph
    return graph._drop_edges(p, int(rng.integers(0, 2**62)), device=device)


# ------------------------------------------------------------------------------------------ history
@dataclass
class History:
    """Per-epoch records: ``epochs[k]`` is a dict with ``epoch``, ``loss`` (combined), ``losses`` (per
    component), ``weights``, ``temperature``, ``lr``, ``stage``, ``metrics`` and ``seconds``."""

    epochs: list = field(default_factory=list)
    stopped_early: bool = False
    best_epoch: int | None = None

    def __len__(self):
        return len(self.epochs)

    def __getitem__(self, key):
        """``history["loss"]`` → list over epochs; ``history["infonce"]`` → that component's losses."""
        if isinstance(key, int):
            return self.epochs[key]
        out = []
        for rec in self.epochs:
            if key in rec:
                out.append(rec[key])
            elif key in rec.get("losses", {}):
                out.append(rec["losses"][key])
            elif key in rec.get("metrics", {}):
                out.append(rec["metrics"][key])
            else:
                out.append(None)
        return out

    def to_json(self) -> str:
        return json.dumps({"epochs": self.epochs, "stopped_early": self.stopped_early,
                           "best_epoch": self.best_epoch}, default=float)


@dataclass
class EarlyStopping:
    """Stop when ``monitor`` ("loss" or a metric name) has not improved by ``min_delta`` for ``patience`` epochs.

    ``mode`` "min" for losses, "max" for metrics (default: "min" for "loss", "max" otherwise). With
    ``restore_best`` the parameters of the best epoch are restored at the end.
    """

    patience: int = 10
    min_delta: float = 0.0
    monitor: str = "loss"
    mode: str | None = None
    restore_best: bool = True

    def __post_init__(self):
        self.patience = _check.integer(self.patience, "patience", minimum=1)
        self.min_delta = _check.real(self.min_delta, "min_delta", minimum=0.0)
        if self.mode is None:
            self.mode = "min" if self.monitor == "loss" else "max"
        _check.choice(self.mode, "mode", ("min", "max"))


# ------------------------------------------------------------------------------------------ the trainer
class _Projection(nn.Module):
    """GRACE's projection head: Linear → ELU → Linear."""

    def __init__(self, dim, hidden, seed, dtype):
        self.fc1 = nn.Linear(dim, hidden, seed=seed, dtype=dtype)
        self.fc2 = nn.Linear(hidden, dim, seed=seed + 1, dtype=dtype)

    def forward(self, z):
        return self.fc2(ag.elu(self.fc1(z)))


class _Diverged(Exception):
    def __init__(self, epoch, component, value):
        super().__init__(component)
        self.epoch, self.component, self.value = epoch, component, value


def _pair(v, name):
    if isinstance(v, (int, float)):
        return (v, v)
    v = tuple(v)
    if len(v) != 2:
        raise ValueError(f"{name}: expected a number or a pair (view 1, view 2), got {v}")
    return v


def _make_encoder(kind, fin, hidden, dim, layers, heads, seed, dtype):
    if fin < 1:
        raise ValueError("features: a GNN encoder needs node features (or use model='table')")
    mods = []
    widths = [fin] + [hidden] * (layers - 1) + [dim]
    for k in range(layers):
        a, b = widths[k], widths[k + 1]
        if kind == "gcn":
            mods.append(nn.GCNConv(a, b, seed=seed + 17 * k, dtype=dtype))
        elif kind == "sage":
            mods.append(nn.SAGEConv(a, b, seed=seed + 17 * k, dtype=dtype))
        else:
            last = k == layers - 1
            per = b if last else max(1, b // heads)
            mods.append(nn.GATConv(a, per, heads=1 if last else heads, concat=not last, seed=seed + 17 * k, dtype=dtype))
            b = per if last else per * heads
            widths[k + 1] = b
        if k < layers - 1:
            mods.append(nn.ReLU())
    return nn.Sequential(*mods)


def _submodules(module, kind):
    """The modules of type ``kind`` inside ``module`` (attributes and ``Sequential`` children), in order."""
    out = []
    for v in vars(module).values():
        if isinstance(v, kind):
            out.append(v)
        elif isinstance(v, nn.Module):
            out.extend(_submodules(v, kind))
    for c in getattr(module, "_children", ()):
        out.extend([c] if isinstance(c, kind) else _submodules(c, kind))
    return out


def _dropouts(module):
    return _submodules(module, nn.Dropout)


@contextlib.contextmanager
def propagation_cached(model):
    """For the length of one ``fit`` (its graph and features fixed): the model's GCN layers keep ``Â X`` of
    their constant input (:class:`~fastgnn.nn.GCNConv`'s ``cached``); afterwards they forget it and get
    their own setting back."""
    layers = [m for m in _submodules(model, nn.GCNConv) if not m.cached] if model is not None else []
    for m in layers:
        m.cached = True
    try:
        yield
    finally:
        for m in layers:
            m.cached = False
            m.clear_cache()


def _only_grad(g):
    if isinstance(g, dict):
        if len(g) != 1:
            raise RuntimeError(f"expected one gradient, got {sorted(g)}")
        return next(iter(g.values()))
    return g


def _all_finite(*xs) -> bool:
    """No NaN/inf in the arrays ``xs`` (device arrays: one flag read back for all of them)."""
    dev = [x for x in xs if _check.is_device_array(x)]
    if dev:
        from ._device import is_finite

        if not is_finite(*dev):
            return False
    return all(bool(np.isfinite(x).all()) for x in xs if not _check.is_device_array(x))


def _mines_on_device(miner) -> bool:
    """Whether ``miner`` takes device embeddings (the built-in miners); others get a host copy of the table."""
    from .. import mining

    return isinstance(miner, (mining.HardNegativeMiner, mining.GraphHardNegativeMiner))


def _dense_grad(p):
    g = p.grad
    if p.on_device:
        from .. import _autograd_device as _ad

        return _ad.zeros(p.shape, p.dtype) if g is None else g
    if g is None:
        return np.zeros_like(p.data)
    if isinstance(g, ag.RowSparseGrad):
        return g.to_dense(p.dtype)
    return np.ascontiguousarray(g, dtype=p.dtype)


def _uniform_negatives(graph, anchors, k, rng, device=False):
    """``[B, k]`` int64 nodes drawn ∝ degree^0.75 (−1 where a draw hits the anchor itself); a device array with
    ``device`` (drawn there: nothing of size ``B x k`` crosses the bus).

    A Walker alias table (the word2vec noise table, built once per graph and cached, with its device copy), one
    counter-based hash per draw (``hash3(seed, b, j)``, ``seed`` taken from ``rng``): the CPU and CUDA kernels
    ``noise_draws`` give the same ids, so both backends train on the same negatives. A binary search of the CDF
    per draw took 0.6 s for 200k anchors x 16 on the GPU machine's host, 40 times the whole epoch of the PyTorch
    CUDA peer; the alias draws on that host still took 70 ms an epoch plus the copy."""
    from .. import backend

    seed = int(rng.integers(0, 2**62))
    key = "noise_alias"
    if key not in graph._cache:
        deg = graph.degrees()
        if deg.size and deg.sum() > 0:
            from ..word2vec._corpus import noise_table

            graph._cache[key] = noise_table(deg, 0.75, backend.kernels("word2vec", "cpu"))
        else:
            graph._cache[key] = None
    table = graph._cache[key]
    if not _check.is_device_array(anchors):
        anchors = np.ascontiguousarray(anchors, np.int64)
    if not device:
        if table is None:
            return np.full((anchors.size, k), -1, np.int64)
        out = np.empty((anchors.size, k), np.int64)  # every entry is drawn
        if out.size:
            backend.kernels("word2vec", "cpu").noise_draws(*table, anchors, seed, out)
        return out
    arrays = backend.kernels("arrays", "cuda")
    if table is None:
        return arrays.full(anchors.size * k, -1, np.int64).reshape(anchors.size, k)
    out = arrays.empty((anchors.size, k), np.int64)
    if out.size:
        dkey = "noise_alias_device"
        if dkey not in graph._cache:
            graph._cache[dkey] = tuple(arrays.upload(t) for t in table)
        if not _check.is_device_array(anchors):
            anchors = arrays.upload(anchors)
        backend.kernels("word2vec", "cuda").noise_draws(*graph._cache[dkey], anchors, seed, out)
    return out


def _apply_difficulty(Zd, anchors, ids, threshold):
    """Drop (−1) mined negatives whose difficulty (1 + cos)/2 exceeds ``threshold``; keep each row's easiest."""
    valid = ids >= 0
    safe = np.where(valid, ids, 0)
    A = Zd[anchors].astype(np.float64)
    N = Zd[safe].astype(np.float64)
    cos = np.einsum("bd,bkd->bk", A, N) / np.maximum(
        np.linalg.norm(A, axis=1)[:, None] * np.linalg.norm(N, axis=2), 1e-8)
    diff = (1.0 + cos) / 2.0
    diff[~valid] = np.inf
    keep = diff <= threshold
    easiest = np.argmin(diff, axis=1)
    rows = np.arange(ids.shape[0])
    keep[rows, easiest] |= valid[rows, easiest]
    return np.where(keep & valid, ids, -1)


def _progress(done, total, rec):
    width = 30
    filled = int(width * done / total)
    comps = " ".join(f"{k}={v:.4g}" for k, v in rec["losses"].items())
    sys.stderr.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total} loss={rec['loss']:.4g} {comps} ")
    sys.stderr.flush()
