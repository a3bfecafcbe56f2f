"""The Trainer's device-resident embedding table (``model="table"``, ``positives="neighbors"``, backend "cuda").

:class:`DeviceTable` holds the table on the device for the whole of :meth:`Trainer.fit`; Adam's state is on the
device too (the optimizer is built over :attr:`DeviceTable.table`). An epoch runs the loss functions' device paths
on that table, sums their weighted gradients on the device (:func:`fastgnn.losses.combine_gradients`) and steps the
device table. What crosses per epoch, besides kernel arguments:

* **to the device**: index arrays drawn on the host with the CPU path's RNG calls (so both backends draw the same
  indices): the anchors and their positives (two int64 arrays ``[B]``, each copied once: the anchors serve the
  uniform negatives, which the device draws itself with the twin of the CPU path's counter-based kernel, InfoNCE,
  a built-in miner and a curriculum's difficulty filter), InfoNCE's negative ids ``[B, K]`` only when a miner
  supplies some of them, ``local``'s random pairs ``[m', 2]``; and the small status vectors of the device value
  scans;
* **to the host**: each loss value, the scans' status (NaN/inf in the table, id ranges), the two counts of
  InfoNCE's table-gradient grouping, the finiteness flags of the summed gradient and of the stepped table, with
  GradNorm each gradient's block partial norms, with a built-in miner its mined ids ``[B, k_hard]``; with a user
  miner object, a copy of the table (for mining only);
* **kept on the device per graph** (``graph._cache``): the CSR and degree tables the loss functions cache, and
  ``local``'s edge pairs.

The host table (``model.weight.data``) is refreshed only when it is read — :meth:`Trainer.embed`, checkpoints,
``eval_fn`` calls — and once when :meth:`Trainer.fit` returns or raises. Snapshots (the last good
state kept against divergence, early stopping's best state) are device-to-device copies.
"""
from __future__ import annotations

import math

import numpy as np
from numba import cuda

from .. import _check
from .. import backend as _backend


def _arrays():
    return _backend.kernels("arrays", "cuda")


def _kernels():
    return _backend.kernels("trainer", "cuda")


def _flat(x):
    return x.reshape(x.size)


def is_finite(*xs) -> bool:
    """No NaN/inf in the device arrays ``xs`` (one flag read back for all of them)."""
    return not _backend.kernels("optim", "cuda").has_nonfinite(*[_flat(x) for x in xs])


class DeviceTable:
    """An ``[N, D]`` table on the device with lazy copies back to a host array.

    It shares :class:`DeviceModel`'s interface (``arrays``, ``nonfinite``, ``push``/``pull``, ``activate``/
    ``deactivate``, ``snapshot``/``restore``), which is all the Trainer calls outside an epoch.

    Parameters
    ----------
    param : Tensor [N, D]
        The table parameter (``nn.Embedding.weight``), uploaded now; :meth:`pull` refreshes its host array in
        place.
    """

    nonfinite = "propagate"  # the optimizer's policy: the trainer scans the summed gradient itself (one flag)

    def __init__(self, param):
        self.param = param
        self.table = _arrays().upload(param.data)
        self.stale = False  # True while the device table is newer than the host one
        self._buffers = {}
        self._nodes = None  # iota(N) on the device, the row list of the gradient scatter
        self._anchors = None  # (the epoch's host anchors, their device copy)

    @classmethod
    def over(cls, table):
        """The objectives' bookkeeping over a device array ``[N, D]`` that is not a parameter: a GNN
        encoder's output (see :class:`DeviceModel`)."""
        out = cls.__new__(cls)
        out.param, out.table, out.stale, out._buffers, out._nodes, out._anchors = None, table, False, {}, None, None
        return out

    def anchors(self, anchors):
        """The epoch's host anchor ids on the device: uploaded once, however many steps of the epoch use them
        (negatives, InfoNCE, the difficulty filter, a miner)."""
        if self._anchors is None or self._anchors[0] is not anchors:
            self._anchors = (anchors, _arrays().upload(np.ascontiguousarray(anchors, np.int64)))
        return self._anchors[1]

    # ------------------------------------------------------------------ host <-> device
    @property
    def arrays(self):
        """The device arrays the optimizer updates."""
        return [self.table]

    def push(self):
        """Upload the host table in place (it is the newer one: set by the user or loaded from a checkpoint)."""
        self.table.copy_to_device(self.param.data)
        self.stale = False

    def pull(self):
        """Bring the host table up to date in place: one copy, only when the device table changed since the last."""
        if self.stale:
            self.table.copy_to_host(self.param.data)
            self.stale = False

    def activate(self):
        """Nothing to swap: the table's host tensor keeps its host array (the device table is separate)."""

    def deactivate(self):
        self.pull()

    def snapshot(self, reuse=None):
        """``[device copy of the table]`` (into ``reuse``, a previous snapshot, when given)."""
        out = cuda.device_array_like(self.table) if reuse is None else reuse[0]
        out.copy_to_device(self.table)
        return [out]

    def restore(self, snap):
        self.table.copy_to_device(snap[0])
        self.stale = True

    # ------------------------------------------------------------------ buffers
    def zeros(self, name):
        """A zeroed gradient buffer shaped like the table, kept (and re-zeroed) across epochs."""
        buf = self._buffers.get(name)
        if buf is None:
            buf = self._buffers[name] = cuda.device_array_like(self.table)
        _arrays().fill(_flat(buf), 0)
        return buf

    def combine(self, grads, factors):
        """``Σ factors[m] · grads[m]`` into a kept buffer (zero factors skipped, as on the host)."""
        from ..losses import combine_gradients

        pairs = [(g, f) for g, f in zip(grads, factors) if f != 0.0]
        if not pairs:
            return self.zeros("combined")
        out = self._buffers.get("combined")
        if out is None:
            out = self._buffers["combined"] = cuda.device_array_like(self.table)
        return combine_gradients([g for g, _ in pairs], [f for _, f in pairs], out=out)

    @staticmethod
    def norms(grads):
        """``[‖g‖ for g in grads]`` of device gradients, summed on the device in float64 (one small read back
        each: the partial sums of its blocks)."""
        ko = _backend.kernels("optim", "cuda")
        return [math.sqrt(ko.sum_squares(_flat(g))) for g in grads]

    # ------------------------------------------------------------------ objectives' index bookkeeping
    def rows(self, ids):
        """``table[ids]`` for host ids (uploaded) or device ids."""
        if not _check.is_device_array(ids):
            ids = _arrays().upload(np.ascontiguousarray(ids, np.int64))
        return _kernels().gather_rows(self.table, ids)

    def neighbour_infonce(self, anchors, pos, ids, temperature, backend):
        """InfoNCE of ``table[anchors]`` against ``table[pos]`` (negatives ``ids`` of the table, or in-batch when
        None) and its gradient with respect to the whole table (a kept buffer)."""
        from .. import losses

        a = _arrays()
        B = anchors.size
        keys = cuda.device_array(2 * B, np.int64)
        a.copy_into(self.anchors(anchors), keys, 0)
        a.copy_into(a.upload(np.ascontiguousarray(pos, np.int64)), keys, B)
        A = _kernels().gather_rows(self.table, keys[:B])
        P = _kernels().gather_rows(self.table, keys[B:])
        dZ = self.zeros("infonce")
        if ids is None:
            loss, g = losses.info_nce(A, P, None, temperature=temperature, backend=backend)
        else:
            loss, g = losses.info_nce(A, P, ids, table=self.table, temperature=temperature, table_grad=dZ,
                                      backend=backend)
        # np.add.at(dZ, anchors, gA); np.add.at(dZ, pos, gP) as a grouped add: the 2B rows [gA; gP] sorted by
        # target node (stable), each row of dZ owned by one warp that adds its rows in that order (in dZ's dtype,
        # as np.add.at does): deterministic, no atomics
        N, D = self.table.shape
        rows = cuda.device_array((2 * B, D), dtype=self.table.dtype)
        a.copy_into(_flat(g["anchors"]), _flat(rows), 0)
        a.copy_into(_flat(g["positives"]), _flat(rows), B * D)
        skeys, spos = a.sort_keys(keys, bound=N)  # node ids: ceil(bits(N) / 8) radix passes, not 8
        if self._nodes is None:
            self._nodes = a.iota(N)
        kl = _backend.kernels("losses", "cuda")
        kl.launch_scatter_gather(rows, spos, a.full(spos.shape[0], 1.0), self._nodes, a.key_starts(skeys, N), dZ)
        return float(loss), dZ

    def difficulty(self, anchors, ids, threshold):
        """Device twin of ``trainer._apply_difficulty`` (host or device ``ids``; returns device ids)."""
        a = _arrays()
        if not _check.is_device_array(ids):
            ids = a.upload(np.ascontiguousarray(ids, np.int64))
        return _kernels().difficulty_filter(self.table, self.anchors(anchors), ids, threshold)

    def local_pairs(self, graph, rng):
        """The ``local`` objective's pairs and ``similar`` flags on the device, or None for a graph without edges.

        The edges (each once, self-loops dropped) are uploaded once per graph; each epoch draws one random
        partner per edge with the host path's RNG call and uploads the ``(source, partner)`` pairs that are not
        self-pairs. Order as on the host: the edges (similar), then the random pairs (dissimilar).
        """
        a = _arrays()
        key = "trainer_device_local_pairs"
        if key not in graph._cache:
            src, dst, _ = graph.edges()
            src, dst = np.asarray(src, np.int64), np.asarray(dst, np.int64)
            keep = src != dst
            graph._cache[key] = (src, a.upload(np.stack([src[keep], dst[keep]], axis=1)))
        src, edges = graph._cache[key]
        if src.size == 0:
            return None
        neg_dst = rng.integers(0, graph.num_nodes, src.size)
        sel = src != neg_dst
        m1 = edges.shape[0]
        E = m1 + int(sel.sum())
        pairs = cuda.device_array((E, 2), dtype=np.int64)
        a.copy_into(_flat(edges), _flat(pairs), 0)
        a.copy_into(a.upload(np.stack([src[sel], neg_dst[sel]], axis=1).reshape(-1)), _flat(pairs), 2 * m1)
        similar = a.full(E, False, np.bool_)
        a.fill(similar[:m1], True)
        return pairs, similar


class DeviceModel:
    """The parameters of a GNN encoder (and of GRACE's projection head) on the device for the whole of
    :meth:`Trainer.fit`.

    While active (inside ``fit``) the parameter tensors' ``data`` are the device arrays, so the encoder's
    forward and backward run on the device (:mod:`fastgnn._autograd_device`) and Adam steps its state there;
    outside ``fit`` they are the user's host arrays again, refreshed in place when the device ones changed.
    Node features are uploaded once per feature array (sparse ones as a :class:`~fastgnn.autograd.SparseMatrix`,
    whose CSR arrays go up on first use). What crosses per epoch: the GRACE views' column masks (``F`` floats
    each; the dropped-edge views are built on the device, see :func:`~fastgnn.trainer.drop_edges`), the loss
    values, one finiteness flag for the gradients and one for the stepped parameters, and, with
    ``positives="neighbors"``, what :class:`DeviceTable` lists for the objectives over the encoder output.
    """

    nonfinite = "skip"  # the optimizer's policy: a non-finite gradient skips the step on the device (one flag)

    def __init__(self, tensors):
        self.tensors = list(tensors)
        self.host = [t.data for t in self.tensors]
        self.arrays = [_arrays().upload(h) for h in self.host]
        self.active = False
        self.stale = False  # True while the device parameters are newer than the host ones
        self._work = None
        self._features = (None, None)

    def push(self):
        """Upload the host parameters (the newer ones: set by the user or loaded from a checkpoint)."""
        if not self.active:
            self.host = [t.data for t in self.tensors]
        for h, d in zip(self.host, self.arrays):
            d.copy_to_device(np.ascontiguousarray(h))
        self.stale = False

    def pull(self):
        """Bring the host parameters up to date in place (only when the device ones changed)."""
        if self.stale:
            for h, d in zip(self.host, self.arrays):
                d.copy_to_host(h)
            self.stale = False

    def activate(self):
        for t, d in zip(self.tensors, self.arrays):
            t.data = d
            t.grad = None
        self.active = True

    def deactivate(self):
        self.pull()
        for t, h in zip(self.tensors, self.host):
            t.data = h
            t.grad = None
        self.active = False

    def snapshot(self, reuse=None):
        """Device copies of the parameters (into ``reuse``, an earlier snapshot, when given)."""
        out = [cuda.device_array_like(d) for d in self.arrays] if reuse is None else reuse
        for o, d in zip(out, self.arrays):
            o.copy_to_device(d)
        return out

    def restore(self, snap):
        for d, s in zip(self.arrays, snap):
            d.copy_to_device(s)
        self.stale = True

    def work(self, Z):
        """The objectives' device bookkeeping (:class:`DeviceTable`) over the encoder output ``Z``; its
        gradient buffers are kept across epochs."""
        if self._work is None or tuple(self._work.table.shape) != tuple(Z.shape) or self._work.table.dtype != Z.dtype:
            self._work = DeviceTable.over(Z)
        self._work.table = Z
        return self._work

    def features(self, X):
        """``X`` on the device: a dense array uploaded once, a sparse one as a SparseMatrix (CSR uploaded on
        first use); None stays None."""
        from .. import autograd as ag

        if X is None or _check.is_device_array(X) or isinstance(X, ag.SparseMatrix):
            return X
        if self._features[0] is not X:
            self._features = (X, ag.SparseMatrix(X) if ag._is_sparse(X) else _arrays().upload(X))
        return self._features[1]
