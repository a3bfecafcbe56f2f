"""The :class:`Trainer` class: configuration, fit loop, embeddings, checkpoints (see the package notes)."""
from __future__ import annotations

import math
import os
import pickle
import sys
import tempfile
import time

import numpy as np

from .. import _check
from .. import autograd as ag
from .. import nn
from ..graph import Graph
from ._epoch import EpochMixin
from ._parts import (_CKPT_FORMAT, MINERS, MODELS, OBJECTIVES, POSITIVES, EarlyStopping, History, TrainingDiverged,
                     _all_finite, _Diverged, _make_encoder, _pair, _Projection, _progress,
                     propagation_cached)


class Trainer(EpochMixin):
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
        device). Per epoch only scalars and small index arrays cross: the anchors and positives drawn on the host
        with the CPU path's random calls, and ``local``'s random pairs; the uniform negatives are drawn on the
        device by the twin of the CPU path's counter-based kernel (so a seed gives the CPU run's indices and, to
        rounding, its history); the graph's arrays are uploaded once. The host
        table (``model.weight.data``) is refreshed when it is read — :meth:`embed`, checkpoints, ``eval_fn`` —
        and when :meth:`fit` returns or raises; inside a callback read :meth:`embed`. The built-in miners get
        the device table; a user miner object gets a host copy of it, made each epoch for mining only.
        GNN encoders ("gcn", "sage", "gat", a user module; either ``positives``) train **device-resident** too:
        their parameters (and the projection head's), Adam's state and the node features stay on the GPU for the
        whole of :meth:`fit`, and the encoder's forward and backward run there (:mod:`fastgnn.autograd` on device
        tensors); a view's column mask is drawn on the host with the CPU path's random call and uploaded (``F``
        floats), and its dropped-edge graph is built on the device from one seed (the CPU path's edges: the keep
        test is a counter-based hash of the seed and the edge). The parameter tensors hold device
        arrays inside :meth:`fit` and the user's host arrays, refreshed in place, outside it.
    """

    def __init__(self, model="gcn", objectives=("infonce",), *, positives="views", dim=128, hidden=256, layers=2,
                 heads=4, lr=1e-3, weight_decay=1e-5, temperature=0.5, loss_weights=None, curriculum=None,
                 miner="uniform", hard_ratio=1 / 16, num_negatives=16, combine="fixed", feature_mask=(0.3, 0.4),
                 edge_drop=(0.2, 0.4),
                 projection=True, spectral_normalization="sym", margin=1.0, batch_size=None, seed=0,
                 dtype=np.float32, backend=None):
        from .. import schedules

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
        self._dev = None  # the device-resident table (see trainer/_device.py), or None
        self.epoch = 0
        self.history = History()

    # ------------------------------------------------------------------ set-up
    def _build(self, num_nodes, in_features):
        from .. import losses, optim

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
        mode = self._device_mode()
        if mode is not None:
            from ._device import DeviceModel, DeviceTable

            # the parameters and Adam's state live on the device (see trainer/_device.py): the table, or the
            # encoder's (and head's) parameters; each holder says how the optimizer treats a non-finite gradient
            self._dev = DeviceTable(self.model.weight) if mode == "table" else DeviceModel(self._parameters())
            self.optimizer = optim.Adam(self._dev.arrays, lr=self.lr, weight_decay=self.weight_decay,
                                        nonfinite=self._dev.nonfinite)
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

    def _device_mode(self):
        """On the CUDA backend: "table" (the table model with neighbour positives: a device-resident table) or
        "model" (an encoder: device-resident parameters); None on the CPU backend."""
        from .. import backend as _backend

        if _backend.resolve(self.backend) != "cuda":
            return None
        if isinstance(self.model, nn.Embedding) and self.positives == "neighbors" and self.head is None:
            return "table"
        return "model"

    def _device_model(self):
        """The :class:`~fastgnn.trainer._device.DeviceModel` of an encoder on the device, else None."""
        from ._device import DeviceModel

        return self._dev if isinstance(self._dev, DeviceModel) else None

    def _param_arrays(self):
        """The arrays the optimizer updates: the device table or parameters, or the parameters' host arrays."""
        if self._dev is not None:
            return self._dev.arrays
        return [p.data for p in self._parameters()]

    def _sync_host(self):
        """Refresh the host parameters from the device ones (a no-op on the host path, or when they are current)."""
        if self._dev is not None:
            self._dev.pull()

    def _push_host(self):
        """Upload the host parameters to the device-resident ones (the host ones are the newer)."""
        if self._dev is not None:
            self._dev.push()

    def _miner(self, k):
        from .. import mining

        spec = self.miner_spec
        if spec is None:
            return None
        if not isinstance(spec, str):
            return spec
        if spec == "khop":
            return mining.GraphHardNegativeMiner(hops=2, num_negatives=k, seed=self.seed, backend=self.backend)
        return mining.HardNegativeMiner("hardest", num_negatives=k, seed=self.seed, backend=self.backend)

    # ------------------------------------------------------------------ one epoch

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
        from ..datasets import Dataset

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
        dev = self._dev
        try:
            if dev is not None:
                dev.activate()  # an encoder's parameter tensors hold the device arrays until fit returns or raises
            with propagation_cached(self.model):  # the graph and X stay as they are until fit returns
                self._fit_epochs(graph, X, epochs, early_stopping, callbacks, eval_fn, eval_every, checkpoint,
                                 checkpoint_every, progress, verbose)
        finally:
            if dev is not None:
                dev.deactivate()  # the one copy back per fit (none when nothing changed); host arrays again
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
            if not _all_finite(*self._param_arrays()):
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
        dm = self._device_model()
        entered = dm is not None and not dm.active
        if entered:  # outside fit: the host parameters are the current ones
            dm.push()
            dm.activate()
        try:
            self.model.eval()
            out = self.model(graph, X if dm is None else dm.features(X))
            Z = out.numpy() if out.on_device else out.data.copy()  # numpy() of a device tensor is a fresh copy
        finally:
            self.model.train()
            if entered:
                dm.deactivate()
        return Z

    def _features(self, graph, features):
        if isinstance(self.model_spec, str) and self.model_spec == "table":
            return None
        if features is None:
            return np.eye(graph.num_nodes, dtype=self.dtype)  # featureless graphs: one-hot node ids
        if _check.device_call(self.backend, features=features):  # CuPy / torch CUDA / numba: used in place
            inp = _check.DeviceInputs()
            X = inp.floats(features, "features", ndim=2, shape=(graph.num_nodes, None), dtype=self.dtype)
            inp.checks.run()  # NaN/inf scan on the device
            return X
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
            return self._dev.snapshot(reuse)
        if reuse is None:
            return [p.data.copy() for p in self._parameters()]
        for dst, p in zip(reuse, self._parameters()):
            np.copyto(dst, p.data)
        return reuse

    def _restore(self, snap):
        if self._dev is not None:
            self._dev.restore(snap)
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
        if self.head is not None:
            self.head.load_state_dict(state["head"])
        self._push_host()
        self.optimizer.load_state_dict(state["optimizer"])
        if self._dev is not None:
            self.optimizer.nonfinite = self._dev.nonfinite  # the device holder's policy (see _build)
        self.mol.load_state_dict(state["mol"])
        if self._mol_opt is not None and state["mol_opt"] is not None:
            self._mol_opt.load_state_dict(state["mol_opt"])
        self.epoch = int(state["epoch"])
        self.history = state["history"]
