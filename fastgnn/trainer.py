"""The Trainer: learns a graph's latent space by composing encoders, losses, optimizer, schedules and miners.

One epoch is one full-graph step:

1. the curriculum stage (if any) sets τ, the number of negatives, the loss weights and the difficulty
   threshold; otherwise the temperature and loss-weight schedulers do;
2. the encoder (GCN / SAGE / GAT on :mod:`fastgnn.autograd`, or a plain embedding table) produces ``Z``;
3. each objective returns its loss and exact gradient with respect to ``Z`` (or to the projected views):
   ``infonce`` (graph neighbours as positives with mined negatives, or two augmented views GRACE-style),
   ``spectral`` (Laplacian smoothness), ``local`` (margin contrastive on edges and negatives),
   ``reconstruction`` (edges vs degree^0.75 negatives);
4. :class:`~fastgnn.losses.MultiObjectiveLoss` combines them (fixed, uncertainty or GradNorm weights) and the
   combined gradient is back-propagated to every parameter, then the optimizer steps.

All randomness of epoch ``e`` is drawn from ``(seed, e)``, so a run resumed from a checkpoint continues
bit-identically on one thread. On the CUDA backend the table model trains on a device-resident table (see the
``backend`` parameter of :class:`Trainer` and :mod:`fastgnn._trainer_device`). A non-finite loss raises :class:`TrainingDiverged` naming the epoch, step
and component, after restoring the last good parameters.
"""
from __future__ import annotations

import json
import logging
import math
import os
import pickle
import sys
import tempfile
import time
from dataclasses import dataclass, field

import numpy as np

from . import _check
from . import autograd as ag
from . import nn
from .graph import Graph

__all__ = ["Trainer", "History", "TrainingDiverged", "EarlyStopping", "drop_edges", "mask_features"]

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
    if isinstance(X, ag.SparseMatrix):  # a column scale: no copy of X
        return X.scale_columns(keep.astype(X.data.dtype))
    if ag._is_sparse(X):
        return X.multiply(keep.astype(X.dtype)[None, :]).tocsr()
    return X * keep.astype(X.dtype)[None, :]


def drop_edges(graph: Graph, p: float, rng: np.random.Generator) -> Graph:
    """A copy of ``graph`` with each (undirected) edge removed with probability ``p``."""
    if p <= 0 or graph.num_edges == 0:
        return graph
    plan = graph._edge_plan()
    if plan is not None:  # sorted rows, no self-loops, symmetric arcs: filter the CSR arrays directly
        return graph._keep_edges(rng.random(plan[1].size) >= p)
    src, dst, w = graph.edges()
    keep = rng.random(src.size) >= p
    return Graph.from_edges(src[keep], dst[keep], num_nodes=graph.num_nodes,
                            weights=None if graph.weights is None else w[keep], symmetrize=not graph.directed)


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


class Trainer:
    """Train node embeddings with a GNN encoder or an embedding table.

    Parameters
    ----------
    model : "gcn" | "sage" | "gat" | "table", or a :class:`fastgnn.nn.Module` taking ``(graph, x)``
    objectives : sequence of "infonce" | "local" | "spectral" | "reconstruction"
    positives : "neighbors" | "views"
        InfoNCE positives: a random graph neighbour of each anchor (negatives mined, see ``miner``), or the
        same node in a second augmented view (GRACE: feature masking + edge dropping; in-batch negatives).
    dim, hidden, layers, heads : int
        Output width, hidden width, number of graph layers, GAT heads.
    lr, weight_decay : float
        Adam's (coupled L2, as in GRACE) settings.
    temperature : float or TemperatureScheduler
        τ when no curriculum is given.
    loss_weights : dict or LossWeightScheduler
        Weight per objective when no curriculum is given (default 1 for infonce, 0.1 for the others).
    curriculum : None, "default" or CurriculumScheduler
        Its stage sets τ, the number of negatives, the loss weights and the difficulty threshold; a mined
        negative of difficulty ``(1 + cos(anchor, negative)) / 2`` above the threshold is dropped (the easiest
        one of each anchor is always kept).
    miner : "uniform" | "khop" | "similarity" | None | a miner object
        Negatives for ``positives="neighbors"``: nodes drawn ∝ degree^0.75 (word2vec / LINE style), k-hop ring
        hard negatives (:class:`GraphHardNegativeMiner`), similarity hard negatives over all nodes
        (:class:`HardNegativeMiner`), or in-batch (None). On homophilous graphs the hardest k-hop or
        similarity negatives are mostly members of the anchor's own community (false negatives): measured on a
        planted partition they destroy the community structure unless mixed with easier ones.
    hard_ratio : float in [0, 1]
        With a mining ``miner``, the share of each anchor's K negatives that are mined (``ceil(hard_ratio·K)``);
        the rest are drawn ∝ degree^0.75 as with "uniform"; 1 uses mined negatives only. Default 1/16 (one of
        16): measured on Cora with the table model (linear probe, seed 0), k-hop negatives alone stay near
        chance (18%; the 2-hop ring is mostly the anchor's own class), a quarter of them gives 56%, one in 16
        71.6%, and uniform negatives alone 72.3%.
    num_negatives : int
        K when no curriculum is given.
    combine : "fixed" | "uncertainty" | "gradnorm"
        How :class:`MultiObjectiveLoss` weighs the objectives (on top of the scheduled weights).
    feature_mask, edge_drop : (float, float)
        Augmentation rates of the two views.
    batch_size : int, optional
        Anchors per epoch for ``positives="neighbors"`` (default: every node with a neighbour).
    seed : int
    backend : "cpu" | "cuda" | "auto", optional
        Backend of the loss and mining kernels (default: ``use_backend`` / ``FASTGNN_BACKEND``, else "auto").
        When it resolves to "cuda", ``model="table"`` with ``positives="neighbors"`` trains **device-resident**:
        the table and Adam's state stay on the GPU for the whole of :meth:`fit`; each objective runs its device
        path on the table, the weighted gradients are summed and the table stepped there (the MultiObjectiveLoss
        weighting runs on the host from the scalar losses and, for GradNorm, gradient norms computed on the
        device). Per epoch only scalars and small index arrays cross: the anchors, positives and negative ids
        drawn on the host with the CPU path's random calls (so a seed gives the CPU run's indices and, to
        rounding, its history), and ``local``'s random pairs; the graph's arrays are uploaded once. The host
        table (``model.weight.data``) is refreshed when it is read — :meth:`embed`, checkpoints, ``eval_fn`` —
        and when :meth:`fit` returns or raises; inside a callback read :meth:`embed`. The built-in miners get
        the device table; a user miner object gets a host copy of it, made each epoch for mining only.
        GNN encoders ("gcn", "sage", "gat", a user module) and ``positives="views"`` train on the host
        (:mod:`fastgnn.autograd` is host-only): there only the loss and mining kernels run on the GPU, each call
        copying its inputs to the device and its results back.
    """

    def __init__(self, model="gcn", objectives=("infonce",), *, positives="views", dim=128, hidden=256, layers=2,
                 heads=4, lr=1e-3, weight_decay=1e-5, temperature=0.5, loss_weights=None, curriculum=None,
                 miner="uniform", hard_ratio=1 / 16, num_negatives=16, combine="fixed", feature_mask=(0.3, 0.4),
                 edge_drop=(0.2, 0.4),
                 projection=True, spectral_normalization="sym", margin=1.0, batch_size=None, seed=0,
                 dtype=np.float32, backend=None):
        from . import schedules

        if isinstance(model, str):
            _check.choice(model, "model", MODELS)
        elif not isinstance(model, nn.Module):
            raise TypeError(f"model: expected one of {MODELS} or a fastgnn.nn.Module, got {type(model).__name__}")
        self.model_spec = model
        if isinstance(objectives, str):
            objectives = (objectives,)
        objectives = tuple(objectives)
        if not objectives:
            raise ValueError("objectives: give at least one objective")
        for o in objectives:
            _check.choice(o, "objectives", OBJECTIVES)
        if len(set(objectives)) != len(objectives):
            raise ValueError(f"objectives: repeated names in {objectives}")
        self.objectives = objectives
        self.positives = _check.choice(positives, "positives", POSITIVES)
        if model == "table" and positives == "views":
            raise ValueError("positives: 'views' needs an encoder of features; the table model uses 'neighbors'")
        self.dim = _check.integer(dim, "dim", minimum=1)
        self.hidden = _check.integer(hidden, "hidden", minimum=1)
        self.layers = _check.integer(layers, "layers", minimum=1)
        self.heads = _check.integer(heads, "heads", minimum=1)
        self.lr = _check.real(lr, "lr", minimum=0.0, strict_min=True)
        self.weight_decay = _check.real(weight_decay, "weight_decay", minimum=0.0)
        if isinstance(temperature, schedules.TemperatureScheduler):
            self.temperature = temperature
        else:
            self.temperature = _check.real(temperature, "temperature", minimum=0.0, strict_min=True)
        if loss_weights is None:
            loss_weights = {o: (1.0 if o == "infonce" else 0.1) for o in objectives}
        if isinstance(loss_weights, schedules.LossWeightScheduler):
            self.loss_weights = loss_weights
        else:
            if not isinstance(loss_weights, dict):
                raise TypeError(f"loss_weights: expected a dict or a LossWeightScheduler, got {type(loss_weights).__name__}")
            self.loss_weights = {k: _check.real(v, f"loss_weights[{k!r}]", minimum=0.0) for k, v in loss_weights.items()}
        if curriculum == "default":
            curriculum = schedules.CurriculumScheduler.default()
        if curriculum is not None and not isinstance(curriculum, schedules.CurriculumScheduler):
            raise TypeError(f"curriculum: expected None, 'default' or a CurriculumScheduler, got {type(curriculum).__name__}")
        self.curriculum = curriculum
        if isinstance(miner, str) or miner is None:
            _check.choice(miner, "miner", MINERS)
        elif not hasattr(miner, "mine"):
            raise TypeError(f"miner: expected one of {MINERS} or an object with .mine(), got {type(miner).__name__}")
        self.miner_spec = miner
        self.hard_ratio = _check.real(hard_ratio, "hard_ratio", minimum=0.0, maximum=1.0)
        self.num_negatives = _check.integer(num_negatives, "num_negatives", minimum=1)
        self.combine = _check.choice(combine, "combine", ("fixed", "uncertainty", "gradnorm"))
        self.feature_mask = tuple(_check.real(v, "feature_mask", minimum=0.0, maximum=1.0, strict_max=True)
                                  for v in _pair(feature_mask, "feature_mask"))
        self.edge_drop = tuple(_check.real(v, "edge_drop", minimum=0.0, maximum=1.0, strict_max=True)
                               for v in _pair(edge_drop, "edge_drop"))
        self.projection = bool(projection)
        self.spectral_normalization = _check.choice(spectral_normalization, "spectral_normalization",
                                                    ("none", "sym", "edge"))
        self.margin = _check.real(margin, "margin", minimum=0.0)
        self.batch_size = None if batch_size is None else _check.integer(batch_size, "batch_size", minimum=1)
        self.seed = _check.seed_value(seed)
        self.dtype = np.dtype(dtype)
        if self.dtype not in (np.float32, np.float64):
            raise TypeError(f"dtype: expected float32 or float64, got {self.dtype}")
        self.backend = backend
        self.model = None
        self.head = None
        self.optimizer = None
        self._dev = None  # the device-resident table (see _trainer_device.py), or None
        self.epoch = 0
        self.history = History()

    # ------------------------------------------------------------------ set-up
    def _build(self, num_nodes, in_features):
        from . import losses, optim

        spec = self.model_spec
        if isinstance(spec, nn.Module):
            self.model = spec
        elif spec == "table":
            self.model = nn.Embedding(num_nodes, self.dim, seed=self.seed, dtype=self.dtype)
        else:
            self.model = _make_encoder(spec, in_features, self.hidden, self.dim, self.layers, self.heads,
                                       self.seed, self.dtype)
        if self.positives == "views" and self.projection and "infonce" in self.objectives:
            self.head = _Projection(self.dim, self.dim, self.seed + 101, self.dtype)
        self._dev = None
        if self._device_resident():
            from ._trainer_device import DeviceTable

            # the table and Adam's state live on the device; the trainer checks gradients itself (one scan)
            self._dev = DeviceTable(self.model.weight.data)
            self.optimizer = optim.Adam([self._dev.table], lr=self.lr, weight_decay=self.weight_decay,
                                        nonfinite="propagate")
        else:
            self.optimizer = optim.Adam([p.data for p in self._parameters()], lr=self.lr,
                                        weight_decay=self.weight_decay)
        self.mol = losses.MultiObjectiveLoss(names=list(self.objectives), mode=self.combine)
        self._mol_opt = None
        if self.combine == "uncertainty":
            self._mol_opt = optim.Adam([self.mol.log_vars], lr=self.lr)

    def _parameters(self):
        ps = self.model.parameters()
        if self.head is not None:
            ps = ps + self.head.parameters()
        return ps

    def _device_resident(self):
        """The table model with neighbour positives on the CUDA backend trains on a device-resident table."""
        if not isinstance(self.model, nn.Embedding) or self.positives != "neighbors" or self.head is not None:
            return False
        from . import backend as _backend

        return _backend.resolve(self.backend) == "cuda"

    def _param_arrays(self):
        """The arrays the optimizer updates: the device table, or the parameters' host arrays."""
        if self._dev is not None:
            return [self._dev.table]
        return [p.data for p in self._parameters()]

    def _sync_host(self):
        """Refresh the host table from the device table (a no-op on the host path, or when it is current)."""
        if self._dev is not None:
            self._dev.pull(self.model.weight.data)

    def _push_host(self):
        """Upload the host table to the device-resident one (the host table is the newer one)."""
        if self._dev is not None:
            self._dev.push(self.model.weight.data)

    def _miner(self, k):
        from . import mining

        spec = self.miner_spec
        if spec is None:
            return None
        if not isinstance(spec, str):
            return spec
        if spec == "khop":
            return mining.GraphHardNegativeMiner(hops=2, num_negatives=k, seed=self.seed, backend=self.backend)
        return mining.HardNegativeMiner("hardest", num_negatives=k, seed=self.seed, backend=self.backend)

    # ------------------------------------------------------------------ one epoch
    def _settings(self, epoch):
        from . import schedules

        if self.curriculum is not None:
            st = self.curriculum.stage_at(epoch)
            return dict(stage=st.name, temperature=st.temperature, num_negatives=st.num_negatives,
                        weights={o: float(st.loss_weights.get(o, 0.0)) for o in self.objectives},
                        threshold=st.difficulty_threshold)
        tau = self.temperature.value(epoch) if isinstance(self.temperature, schedules.TemperatureScheduler) \
            else self.temperature
        if isinstance(self.loss_weights, schedules.LossWeightScheduler):
            w = self.loss_weights.weights(epoch)
        else:
            w = self.loss_weights
        return dict(stage=None, temperature=float(tau), num_negatives=self.num_negatives,
                    weights={o: float(w.get(o, 0.0)) for o in self.objectives}, threshold=None)

    def _forward(self, graph, X):
        if isinstance(self.model, nn.Embedding):
            return self.model()
        return self.model(graph, X)

    def _epoch(self, graph, X, epoch):
        # On a small graph each compiled kernel of an epoch runs in about a millisecond: a parallel region gains
        # little there, and its workers, spinning after it, take the cores from the BLAS threads of the GEMMs
        # that follow (GCN/GRACE on Cora, 2 busy cores: epochs twice as slow). The kernels then run on this
        # thread only (BLAS keeps its threads); results do not depend on the thread count.
        if graph.num_nodes * max(self.hidden, self.dim) >= _PARALLEL_KERNELS_FROM:
            return self._epoch_step(graph, X, epoch)
        import numba

        before = numba.get_num_threads()
        numba.set_num_threads(1)
        try:
            return self._epoch_step(graph, X, epoch)
        finally:
            numba.set_num_threads(before)

    def _epoch_step(self, graph, X, epoch):
        s = self._settings(epoch)
        rng = np.random.default_rng([self.seed, epoch])
        for k, m in enumerate(_dropouts(self.model)):
            m.rng = np.random.default_rng([self.seed, epoch, 1000 + k])
        self.model.train()
        for p in self._parameters():
            p.grad = None
        if self._dev is not None:
            return self._device_epoch_step(graph, s, rng, epoch)
        from . import losses

        ops, values, gnorms = {}, {}, {}
        Z = None
        if "infonce" in self.objectives and self.positives == "views":
            Xv = X
            if ag._is_sparse(X):  # CSR arrays (and their transpose) kept for the views' column masks
                cached = getattr(self, "_sparse_features", None)
                if cached is None or cached[0] is not X:
                    cached = self._sparse_features = (X, ag.SparseMatrix(X))
                Xv = cached[1]
            X1, X2 = mask_features(Xv, self.feature_mask[0], rng), mask_features(Xv, self.feature_mask[1], rng)
            G1, G2 = drop_edges(graph, self.edge_drop[0], rng), drop_edges(graph, self.edge_drop[1], rng)
            Z1, Z2 = self._forward(G1, X1), self._forward(G2, X2)
            H1, H2 = (self.head(Z1), self.head(Z2)) if self.head is not None else (Z1, Z2)
            loss, g = losses.info_nce(H1.data, H2.data, None, temperature=s["temperature"], symmetric=True,
                                      backend=self.backend)
            ops["infonce"] = ag.from_gradients(loss, [H1, H2], [g["anchors"], g["positives"]])
            values["infonce"] = float(loss)
            if self.combine == "gradnorm":
                gnorms["infonce"] = float(np.sqrt((g["anchors"].astype(np.float64) ** 2).sum()
                                                  + (g["positives"].astype(np.float64) ** 2).sum()))
            Z = Z1
        need_z = [o for o in self.objectives if o not in ops]
        if need_z and Z is None:
            Z = self._forward(graph, X)
        Zd = None if Z is None else np.ascontiguousarray(Z.data)
        for o in need_z:
            values[o], dZ = self._objective(o, graph, Zd, s, rng)
            ops[o] = ag.from_gradients(values[o], [Z], [dZ])
            if self.combine == "gradnorm":
                gnorms[o] = float(np.sqrt((np.asarray(dZ, np.float64) ** 2).sum()))
        total, mg, factors = self._weigh(values, s, epoch)
        combined = None
        for o in self.objectives:
            if factors[o] == 0.0:
                continue
            term = ag.mul(ops[o], factors[o])
            combined = term if combined is None else ag.add(combined, term)
        if combined is not None:
            combined.backward()
        self._step([_dense_grad(p) for p in self._parameters()], epoch)
        self._after_step(values, gnorms, mg)
        return s, values, float(total)

    def _device_epoch_step(self, graph, s, rng, epoch):
        """One epoch on the device-resident table: the objectives' device paths, their weighted gradient summed
        on the device, one Adam step of the device table. Only scalars and index arrays cross (see
        :mod:`fastgnn._trainer_device`)."""
        Z = self._dev.table
        values, grads, gnorms = {}, {}, {}
        for o in self.objectives:  # the host path's order: the same RNG calls, so the same indices
            values[o], grads[o] = self._objective(o, graph, Z, s, rng)
        if self.combine == "gradnorm":
            gnorms = dict(zip(self.objectives, self._dev.norms([grads[o] for o in self.objectives])))
        total, mg, factors = self._weigh(values, s, epoch)
        self._step([self._dev.combine([grads[o] for o in self.objectives], [factors[o] for o in self.objectives])],
                   epoch)
        self._dev.stale = True
        self._after_step(values, gnorms, mg)
        return s, values, float(total)

    def _objective(self, o, graph, Zd, s, rng):
        """``(loss, dL/dZ)`` of objective ``o`` at ``Zd`` (a host array, or the device table: device gradient)."""
        from . import losses

        if o == "infonce":
            return self._neighbour_infonce(graph, Zd, s, rng)
        if o == "local":
            return self._local(graph, Zd, s, rng)
        if o == "spectral":
            loss, g = losses.spectral(Zd, graph, lam=1.0 / max(graph.num_nodes, 1),
                                      normalization=self.spectral_normalization, backend=self.backend)
        else:
            loss, g = losses.reconstruction(Zd, graph, num_negatives=s["num_negatives"],
                                            seed=int(rng.integers(0, 2**62)), backend=self.backend)
        return float(loss), _only_grad(g)

    def _weigh(self, values, s, epoch):
        """``(total, MultiObjectiveLoss grads, factor per objective)`` from the scalar losses (host bookkeeping)."""
        for name in self.objectives:
            if not math.isfinite(values[name]):
                raise _Diverged(epoch, name, values[name])
        total, mg = self.mol({o: s["weights"][o] * values[o] for o in self.objectives})
        factors = {o: s["weights"][o] * float(f) for o, f in zip(self.objectives, mg["losses"])}
        return total, mg, factors

    def _step(self, grads, epoch):
        for gr in grads:
            if not _all_finite(gr):
                raise _Diverged(epoch, "gradient", float("nan"))
        self.optimizer.step(grads)

    def _after_step(self, values, gnorms, mg):
        if self._mol_opt is not None:
            self._mol_opt.step([np.asarray(mg["log_vars"], np.float64)])
        if self.combine == "gradnorm" and min(values.values()) > 0:
            # GradNorm on the gradient norms at the encoder output (the layer every objective shares)
            self.mol.gradnorm_step([values[o] for o in self.objectives], [gnorms[o] for o in self.objectives])

    def _anchors(self, graph, rng):
        deg = graph.degrees()
        cand = np.flatnonzero(deg > 0)
        if self.batch_size is not None and self.batch_size < cand.size:
            cand = np.sort(rng.choice(cand, self.batch_size, replace=False))
        # one uniformly random neighbour of each anchor
        off = (rng.random(cand.size) * deg[cand]).astype(np.int64)
        pos = np.asarray(graph.indices)[graph.indptr[cand] + off].astype(np.int64)
        return cand, pos

    def _negatives(self, graph, Zd, anchors, s, rng):
        """Negative ids [B, K] (-1 padding) or None (in-batch); ``Zd`` is a host array or the device table."""
        k = s["num_negatives"]
        if self.miner_spec == "uniform":
            ids = _uniform_negatives(graph, anchors, k, rng)
        else:
            k_hard = min(k, math.ceil(self.hard_ratio * k))
            miner = self._miner(max(k_hard, 1))
            if miner is None:
                return None
            miner.seed = int(rng.integers(0, 2**62))
            parts = []
            if k_hard:
                parts.append(self._mine(miner, graph, Zd, anchors)[:, :k_hard])
            if k - k_hard:
                parts.append(_uniform_negatives(graph, anchors, k - k_hard, rng))
            ids = np.ascontiguousarray(np.concatenate(parts, axis=1)) if len(parts) > 1 else parts[0]
        if s["threshold"] is not None and ids.size:
            if _check.is_device_array(Zd):
                ids = self._dev.difficulty(anchors, ids, s["threshold"])
            else:
                ids = _apply_difficulty(Zd, anchors, ids, s["threshold"])
        return ids

    def _mine(self, miner, graph, Zd, anchors):
        """The miner's hard negatives of ``anchors`` as host int64 ids.

        With the device table, miners that take host arrays only (user miners) get a host copy of the table,
        for mining only: the one copy back per epoch such a run makes; the built-in miners run on the device.
        """
        from . import mining

        if _check.is_device_array(Zd) and not _mines_on_device(miner):
            self._sync_host()
            Zd = self.model.weight.data
        if isinstance(miner, mining.GraphHardNegativeMiner):
            hard = miner.mine(Zd, graph, anchors)
        elif _check.is_device_array(Zd):
            rows = self._dev.rows(anchors)
            hard = miner.mine(rows, rows, Zd, exclude=np.column_stack([anchors]))
        else:
            hard = miner.mine(Zd[anchors], Zd[anchors], Zd, exclude=np.column_stack([anchors]))
        if _check.is_device_array(hard):
            hard = hard.copy_to_host()  # B x k_hard ids, joined with the host-drawn uniform ones
        return np.asarray(hard, np.int64)

    def _neighbour_infonce(self, graph, Zd, s, rng):
        from . import losses

        anchors, pos = self._anchors(graph, rng)
        device = _check.is_device_array(Zd)
        if anchors.size == 0:
            return 0.0, (self._dev.zeros("infonce") if device else np.zeros_like(Zd))
        ids = self._negatives(graph, Zd, anchors, s, rng)
        if device:
            return self._dev.neighbour_infonce(anchors, pos, ids, s["temperature"], self.backend)
        dZ = np.zeros_like(Zd)
        if ids is None:
            loss, g = losses.info_nce(Zd[anchors], Zd[pos], None, temperature=s["temperature"], backend=self.backend)
        else:
            loss, g = losses.info_nce(Zd[anchors], Zd[pos], ids, table=Zd, temperature=s["temperature"],
                                      table_grad=dZ, backend=self.backend)
        np.add.at(dZ, anchors, g["anchors"])
        np.add.at(dZ, pos, g["positives"])
        return float(loss), dZ

    def _local(self, graph, Zd, s, rng):
        from . import losses

        if _check.is_device_array(Zd):
            got = self._dev.local_pairs(graph, rng)
            if got is None:
                return 0.0, self._dev.zeros("local")
            pairs, similar = got
        else:
            src, dst, _ = graph.edges()
            m = src.size
            if m == 0:
                return 0.0, np.zeros_like(Zd)
            neg_dst = rng.integers(0, graph.num_nodes, m)
            pairs = np.concatenate([np.column_stack([src, dst]), np.column_stack([src, neg_dst])]).astype(np.int64)
            similar = np.concatenate([np.ones(m, bool), np.zeros(m, bool)])
            keep = pairs[:, 0] != pairs[:, 1]
            pairs, similar = pairs[keep], similar[keep]
        loss, g = losses.local_contrastive(Zd, pairs, similar, margin=self.margin, backend=self.backend)
        return float(loss), _only_grad(g)

    # ------------------------------------------------------------------ public API
    def fit(self, data, epochs=None, *, features=None, early_stopping=None, callbacks=(), eval_fn=None,
            eval_every=1, checkpoint=None, checkpoint_every=1, resume=None, progress=None, verbose=False) -> History:
        """Train; returns the :class:`History` (also ``self.history``).

        Parameters
        ----------
        data : Dataset or Graph
        epochs : int, optional
            Default: the curriculum's total epochs, else 100.
        features : array [N, F] or scipy sparse, optional
            Node features (default: the data set's, else none → the table model, or an identity for GNNs).
        early_stopping : EarlyStopping, optional
        callbacks : sequence of callables ``f(trainer, record) -> bool | None``; returning True stops training
        eval_fn : callable ``f(embeddings) -> dict`` of metrics, run every ``eval_every`` epochs
        checkpoint : path, optional
            Written atomically (temp file + rename) every ``checkpoint_every`` epochs and at the end.
        resume : path, optional
            Continue from a checkpoint written by this configuration.
        progress : bool, optional
            A progress bar on stderr (default: only when stderr is a terminal).
        """
        from .datasets import Dataset

        if isinstance(data, Dataset):
            graph = data.graph
            if features is None:
                features = data.features
        elif isinstance(data, Graph):
            graph = data
        else:
            raise TypeError(f"data: expected a fastgnn Dataset or Graph, got {type(data).__name__}")
        X = self._features(graph, features)
        if epochs is None:
            epochs = self.curriculum.total_epochs if self.curriculum is not None else 100
        epochs = _check.integer(epochs, "epochs", minimum=1)
        if early_stopping is not None and not isinstance(early_stopping, EarlyStopping):
            raise TypeError(f"early_stopping: expected an EarlyStopping, got {type(early_stopping).__name__}")
        eval_every = _check.integer(eval_every, "eval_every", minimum=1)
        checkpoint_every = _check.integer(checkpoint_every, "checkpoint_every", minimum=1)
        if self.model is None:
            self._build(graph.num_nodes, 0 if X is None else X.shape[1])
        if resume is not None:
            self.load_checkpoint(resume)
        else:
            self._push_host()  # between fits the host table is the current one (the user may have set it)
        try:
            self._fit_epochs(graph, X, epochs, early_stopping, callbacks, eval_fn, eval_every, checkpoint,
                             checkpoint_every, progress, verbose)
        finally:
            self._sync_host()  # the device table's one copy back per fit (none when nothing changed)
        return self.history

    def _fit_epochs(self, graph, X, epochs, early_stopping, callbacks, eval_fn, eval_every, checkpoint,
                    checkpoint_every, progress, verbose):
        show = sys.stderr.isatty() if progress is None else bool(progress)
        best, best_state, wait = None, None, 0
        last_good = self._snapshot()
        stage_name = None
        start_epoch = self.epoch
        for epoch in range(start_epoch, epochs):
            t0 = time.perf_counter()
            try:
                s, values, total = self._epoch(graph, X, epoch)
            except _Diverged as d:
                self._restore(last_good)
                raise TrainingDiverged(f"training diverged at epoch {d.epoch}, step 0: loss component "
                                       f"'{d.component}' is {d.value}; parameters restored to the last good epoch") from None
            if not math.isfinite(total):
                self._restore(last_good)
                raise TrainingDiverged(f"training diverged at epoch {epoch}, step 0: combined loss is {total}; "
                                       "parameters restored to the last good epoch")
            if not all(_all_finite(p) for p in self._param_arrays()):
                self._restore(last_good)
                raise TrainingDiverged(f"training diverged at epoch {epoch}, step 0: parameters became non-finite "
                                       "after the optimizer step; restored to the last good epoch")
            last_good = self._snapshot(reuse=last_good)
            self.epoch = epoch + 1
            rec = {"epoch": epoch, "loss": total, "losses": values, "weights": s["weights"],
                   "temperature": s["temperature"], "lr": self.optimizer.lr, "stage": s["stage"],
                   "num_negatives": s["num_negatives"], "metrics": {}, "seconds": time.perf_counter() - t0}
            if s["stage"] != stage_name:
                if verbose or show:
                    print(f"epoch {epoch}: curriculum stage '{s['stage']}' (τ={s['temperature']}, "
                          f"{s['num_negatives']} negatives, weights {s['weights']})", file=sys.stderr)
                stage_name = s["stage"]
            if eval_fn is not None and ((epoch + 1) % eval_every == 0 or epoch + 1 == epochs):
                rec["metrics"] = {k: float(v) for k, v in dict(eval_fn(self.embed(graph, X))).items()}
            self.history.epochs.append(rec)
            if show:
                _progress(epoch + 1, epochs, rec)
            stop = False
            for cb in callbacks:
                if cb(self, rec):
                    stop = True
            if early_stopping is not None:
                val = rec["loss"] if early_stopping.monitor == "loss" else rec["metrics"].get(early_stopping.monitor)
                if val is not None:
                    better = best is None or (val < best - early_stopping.min_delta if early_stopping.mode == "min"
                                              else val > best + early_stopping.min_delta)
                    if better:
                        best, wait = val, 0
                        self.history.best_epoch = epoch
                        if early_stopping.restore_best:
                            best_state = self._snapshot(reuse=best_state)
                    else:
                        wait += 1
                        if wait >= early_stopping.patience:
                            stop = True
                            self.history.stopped_early = True
            if checkpoint is not None and (self.epoch % checkpoint_every == 0 or stop or self.epoch == epochs):
                self.save_checkpoint(checkpoint)
            if stop:
                break
        if show:
            print(file=sys.stderr)
        if best_state is not None:
            self._restore(best_state)

    def embed(self, graph=None, features=None) -> np.ndarray:
        """Embeddings [N, dim] of the trained encoder in eval mode (no dropout, no augmentation): a host (NumPy)
        array, for a device-resident table copied from the device when it changed since the last copy."""
        if self.model is None:
            raise RuntimeError("embed: the trainer has not been fitted")
        if isinstance(self.model, nn.Embedding):
            self._sync_host()
            return self.model.weight.data.copy()
        if graph is None:
            raise ValueError("graph: needed to embed with a GNN encoder")
        X = self._features(graph, features)
        self.model.eval()
        Z = self.model(graph, X).data.copy()
        self.model.train()
        return Z

    def _features(self, graph, features):
        if isinstance(self.model_spec, str) and self.model_spec == "table":
            return None
        if features is None:
            return np.eye(graph.num_nodes, dtype=self.dtype)  # featureless graphs: one-hot node ids
        if ag._is_sparse(features):
            X = features.tocsr().astype(self.dtype)
            if X.shape[0] != graph.num_nodes:
                raise ValueError(f"features: expected {graph.num_nodes} rows (one per node), got {X.shape[0]}")
            _check.finite(X.data, "features")
            if X.nnz <= 0.1 * X.shape[0] * X.shape[1]:
                return X  # sparse features stay sparse: the first layer is then a sparse product
            features = X.toarray()
        X = _check.float_array(features, "features", ndim=2, dtype=self.dtype)
        if X.shape[0] != graph.num_nodes:
            raise ValueError(f"features: expected {graph.num_nodes} rows (one per node), got {X.shape[0]}")
        return X

    # ------------------------------------------------------------------ state
    def _snapshot(self, reuse=None):
        """Copies of the parameters (into ``reuse``, an earlier snapshot, when given); device copies of the
        device-resident table (no host traffic)."""
        if self._dev is not None:
            return [self._dev.snapshot(None if reuse is None else reuse[0])]
        if reuse is None:
            return [p.data.copy() for p in self._parameters()]
        for dst, p in zip(reuse, self._parameters()):
            np.copyto(dst, p.data)
        return reuse

    def _restore(self, snap):
        if self._dev is not None:
            self._dev.restore(snap[0])
            return
        for p, arr in zip(self._parameters(), snap):
            p.data[...] = arr

    def _signature(self):
        return {"model": self.model_spec if isinstance(self.model_spec, str) else type(self.model_spec).__name__,
                "params": [(n, list(p.shape)) for n, p in self.model.named_parameters()],
                "head": None if self.head is None else [list(p.shape) for p in self.head.parameters()],
                "objectives": list(self.objectives)}

    def save_checkpoint(self, path) -> None:
        """Write model, head, optimizer, multi-objective state, epoch and history atomically (temp + rename).

        The file is a pickle: load only checkpoints you wrote yourself.
        """
        self._sync_host()
        state = {"format": _CKPT_FORMAT, "signature": self._signature(), "epoch": self.epoch,
                 "model": self.model.state_dict(), "head": None if self.head is None else self.head.state_dict(),
                 "optimizer": self.optimizer.state_dict(),
                 "mol": self.mol.state_dict(), "mol_opt": None if self._mol_opt is None else self._mol_opt.state_dict(),
                 "history": self.history}
        path = os.fspath(path)
        folder = os.path.dirname(os.path.abspath(path))
        fd, tmp = tempfile.mkstemp(prefix=".ckpt-", dir=folder)
        try:
            with os.fdopen(fd, "wb") as fh:
                pickle.dump(state, fh, protocol=pickle.HIGHEST_PROTOCOL)
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise

    def load_checkpoint(self, path) -> None:
        """Restore a checkpoint written by :meth:`save_checkpoint` of the same configuration."""
        path = os.fspath(path)
        if not os.path.exists(path):
            raise FileNotFoundError(f"resume: no such checkpoint: {path!r}")
        with open(path, "rb") as fh:
            try:
                state = pickle.load(fh)
            except Exception as exc:
                raise ValueError(f"resume: {path!r} is not a fastgnn checkpoint ({exc})") from None
        if not isinstance(state, dict) or state.get("format") != _CKPT_FORMAT:
            raise ValueError(f"resume: {path!r} is not a fastgnn checkpoint")
        if state["signature"] != self._signature():
            raise ValueError(f"resume: checkpoint {path!r} was written by another model or configuration "
                             f"({state['signature']['model']}, objectives {state['signature']['objectives']})")
        self.model.load_state_dict(state["model"])
        self._push_host()
        if self.head is not None:
            self.head.load_state_dict(state["head"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self._dev is not None:
            self.optimizer.nonfinite = "propagate"  # the trainer scans the device gradient itself (see _build)
        self.mol.load_state_dict(state["mol"])
        if self._mol_opt is not None and state["mol_opt"] is not None:
            self._mol_opt.load_state_dict(state["mol_opt"])
        self.epoch = int(state["epoch"])
        self.history = state["history"]


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


def _dropouts(module):
    out = []
    for v in vars(module).values():
        if isinstance(v, nn.Dropout):
            out.append(v)
        elif isinstance(v, nn.Module):
            out.extend(_dropouts(v))
    for c in getattr(module, "_children", ()):
        out.extend([c] if isinstance(c, nn.Dropout) else _dropouts(c))
    return out


def _only_grad(g):
    if isinstance(g, dict):
        if len(g) != 1:
            raise RuntimeError(f"expected one gradient, got {sorted(g)}")
        return next(iter(g.values()))
    return g


def _all_finite(x) -> bool:
    if _check.is_device_array(x):
        from ._trainer_device import is_finite

        return is_finite(x)
    return bool(np.isfinite(x).all())


def _mines_on_device(miner) -> bool:
    """Whether ``miner`` takes device embeddings (the built-in miners); others get a host copy of the table."""
    from . import mining

    return isinstance(miner, (mining.HardNegativeMiner, mining.GraphHardNegativeMiner))


def _dense_grad(p):
    g = p.grad
    if g is None:
        return np.zeros_like(p.data)
    if isinstance(g, ag.RowSparseGrad):
        return g.to_dense(p.dtype)
    return np.ascontiguousarray(g, dtype=p.dtype)


def _uniform_negatives(graph, anchors, k, rng):
    """``[B, k]`` nodes drawn ∝ degree^0.75 (−1 where a draw hits the anchor itself)."""
    key = "noise_cdf"
    if key not in graph._cache:
        w = graph.degrees().astype(np.float64) ** 0.75
        cdf = np.cumsum(w)
        graph._cache[key] = cdf / cdf[-1] if cdf.size and cdf[-1] > 0 else None
    cdf = graph._cache[key]
    if cdf is None:
        return np.full((anchors.size, k), -1, np.int64)
    ids = np.searchsorted(cdf, rng.random((anchors.size, k)), side="right").astype(np.int64)
    np.minimum(ids, graph.num_nodes - 1, out=ids)
    ids[ids == anchors[:, None]] = -1
    return ids


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
