"""One training epoch of :class:`~fastgnn.trainer.Trainer`: settings, objectives, negatives, the step.

A mixin of the Trainer: the methods use the attributes :class:`Trainer` sets up.
"""
from __future__ import annotations

import math

import numpy as np

from .. import _check
from .. import autograd as ag
from .. import nn
from ._parts import (_PARALLEL_KERNELS_FROM, _all_finite, _apply_difficulty, _dense_grad, _Diverged, _dropouts,
                     _mines_on_device, _only_grad, _uniform_negatives, drop_edges, mask_features)


def _norms(grads):
    """``[‖g‖ for g in grads]`` in float64 (on the device for device arrays)."""
    if _check.is_device_array(grads[0]):
        from ._device import DeviceTable

        return DeviceTable.norms(grads)
    return [float(np.sqrt((np.asarray(g, np.float64) ** 2).sum())) for g in grads]


class EpochMixin:
    """The per-epoch methods of :class:`~fastgnn.trainer.Trainer`."""

    def _settings(self, epoch):
        from .. import schedules

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
        dm = self._device_model()
        if self._dev is not None and dm is None:
            return self._device_epoch_step(graph, s, rng, epoch)
        if dm is not None:
            X = dm.features(X)  # uploaded once per feature array
        from .. import losses

        ops, values, gnorms = {}, {}, {}
        Z = None
        if "infonce" in self.objectives and self.positives == "views":
            Xv = X
            if ag._is_sparse(X) and not isinstance(X, ag.SparseMatrix):  # CSR arrays (and their transpose) kept
                cached = getattr(self, "_sparse_features", None)
                if cached is None or cached[0] is not X:
                    cached = self._sparse_features = (X, ag.SparseMatrix(X))
                Xv = cached[1]
            X1, X2 = mask_features(Xv, self.feature_mask[0], rng), mask_features(Xv, self.feature_mask[1], rng)
            on = dm is not None  # the views' graphs are built on the device there
            G1, G2 = (drop_edges(graph, self.edge_drop[0], rng, device=on),
                      drop_edges(graph, self.edge_drop[1], rng, device=on))
            Z1, Z2 = self._forward(G1, X1), self._forward(G2, X2)
            H1, H2 = (self.head(Z1), self.head(Z2)) if self.head is not None else (Z1, Z2)
            loss, g = losses.info_nce(H1.data, H2.data, None, temperature=s["temperature"], symmetric=True,
                                      backend=self.backend)
            ops["infonce"] = ag.from_gradients(loss, [H1, H2], [g["anchors"], g["positives"]])
            values["infonce"] = float(loss)
            if self.combine == "gradnorm":
                gnorms["infonce"] = math.hypot(*_norms([g["anchors"], g["positives"]]))
            Z = Z1
        need_z = [o for o in self.objectives if o not in ops]
        if need_z and Z is None:
            Z = self._forward(graph, X)
        Zd = None if Z is None else Z.data if Z.on_device else np.ascontiguousarray(Z.data)
        for o in need_z:
            values[o], dZ = self._objective(o, graph, Zd, s, rng)
            ops[o] = ag.from_gradients(values[o], [Z], [dZ])
            if self.combine == "gradnorm":
                gnorms[o] = _norms([dZ])[0]
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
        :mod:`fastgnn.trainer._device`)."""
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

    def _work(self, Zd):
        """The device bookkeeping of the objectives over ``Zd``: the device table, or the encoder output's."""
        dm = self._device_model()
        return self._dev if dm is None else dm.work(Zd)

    def _objective(self, o, graph, Zd, s, rng):
        """``(loss, dL/dZ)`` of objective ``o`` at ``Zd`` (a host array, or the device table: device gradient)."""
        from .. import losses

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
        if self._device_model() is not None:
            # the device step scans the gradients and skips itself when one is not finite (one flag read back)
            if not self.optimizer.step(grads):
                raise _Diverged(epoch, "gradient", float("nan"))
            self._dev.stale = True
            return
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
            device = _check.is_device_array(Zd)
            ids = _uniform_negatives(graph, self._work(Zd).anchors(anchors) if device else anchors, k, rng,
                                     device=device)
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
                ids = self._work(Zd).difficulty(anchors, ids, s["threshold"])
            else:
                ids = _apply_difficulty(Zd, anchors, ids, s["threshold"])
        return ids

    def _mine(self, miner, graph, Zd, anchors):
        """The miner's hard negatives of ``anchors`` as host int64 ids.

        With the device table, miners that take host arrays only (user miners) get a host copy of the table,
        for mining only: the one copy back per epoch such a run makes; the built-in miners run on the device.
        """
        from .. import mining

        if _check.is_device_array(Zd) and not _mines_on_device(miner):
            Zd = Zd.copy_to_host()
        if isinstance(miner, mining.GraphHardNegativeMiner):
            hard = miner.mine(Zd, graph, anchors)
        elif _check.is_device_array(Zd):
            rows = self._work(Zd).rows(self._work(Zd).anchors(anchors))
            hard = miner.mine(rows, rows, Zd, exclude=np.column_stack([anchors]))
        else:
            hard = miner.mine(Zd[anchors], Zd[anchors], Zd, exclude=np.column_stack([anchors]))
        if _check.is_device_array(hard):
            hard = hard.copy_to_host()  # B x k_hard ids, joined with the host-drawn uniform ones
        return np.asarray(hard, np.int64)

    def _neighbour_infonce(self, graph, Zd, s, rng):
        from .. import losses

        anchors, pos = self._anchors(graph, rng)
        device = _check.is_device_array(Zd)
        if anchors.size == 0:
            return 0.0, (self._work(Zd).zeros("infonce") if device else np.zeros_like(Zd))
        ids = self._negatives(graph, Zd, anchors, s, rng)
        if device:
            return self._work(Zd).neighbour_infonce(anchors, pos, ids, s["temperature"], self.backend)
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
        from .. import losses

        if _check.is_device_array(Zd):
            got = self._work(Zd).local_pairs(graph, rng)
            if got is None:
                return 0.0, self._work(Zd).zeros("local")
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
