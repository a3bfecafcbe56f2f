"""Weighting several objectives: MultiObjectiveLoss and combine_gradients."""
from __future__ import annotations

import numbers

import numpy as np

from .. import _check
from ._common import device_call, kernels

__all__ = ["MultiObjectiveLoss", "combine_gradients"]

MODES = ("fixed", "uncertainty", "gradnorm")


class MultiObjectiveLoss:
    """Combine task losses ``L_1..L_T`` into one objective.

    * ``"fixed"``: ``L = Σ w_i L_i`` with constant weights.
    * ``"uncertainty"`` (Kendall, Gal & Cipolla 2018): ``L = Σ exp(−s_i) L_i + s_i`` with learnable
      log-variances ``s_i`` (:attr:`log_vars`, updated in place by any optimizer from ``grads["log_vars"]``).
    * ``"gradnorm"`` (Chen et al. 2018): ``L = Σ w_i L_i``; :meth:`gradnorm_step` moves the weights so the
      weighted gradient norms ``G_i = w_i ‖∇_W L_i‖`` approach ``mean(G) · r_i^α`` (``r_i`` the relative
      inverse training rate ``(L_i/L_i(0)) / mean_j(L_j/L_j(0))``), then renormalises them to sum to ``T``.

    Parameters
    ----------
    num_tasks : int >= 1, optional
        Number of losses (or give ``names``).
    names : sequence of str, optional
        Task names; then :meth:`__call__` also accepts a dict of losses keyed by name.
    mode : "fixed" | "uncertainty" | "gradnorm"
    weights : sequence of float, optional
        Initial weights ``w_i`` (default ones; for "gradnorm" renormalised to sum to ``T``). Unused in
        "uncertainty" mode.
    alpha : float >= 0
        GradNorm's restoring force α.
    lr : float > 0
        GradNorm's step size for the weights.
    log_vars : sequence of float, optional
        Initial ``s_i`` (default zeros) in "uncertainty" mode.

    Attributes
    ----------
    weights : float64 array [T]
    log_vars : float64 array [T]
        Learnable parameters in "uncertainty" mode (see :meth:`parameters`).

    Raises
    ------
    TypeError, ValueError
        unknown mode, wrong counts, non-finite or negative weights, ``alpha < 0``, ``lr <= 0``.

    Examples
    --------
    >>> mol = MultiObjectiveLoss(2, mode="uncertainty")
    >>> total, grads = mol([1.0, 3.0])
    >>> total, grads["losses"].tolist(), grads["log_vars"].tolist()
    (4.0, [1.0, 1.0], [0.0, -2.0])
    """

    def __init__(self, num_tasks=None, *, names=None, mode="fixed", weights=None, alpha=1.5, lr=0.025,
                 log_vars=None):
        self.mode = _check.choice(mode, "mode", MODES)
        if names is not None:
            names = [str(n) for n in names]
            if len(set(names)) != len(names):
                raise ValueError(f"names: must be distinct, got {names}")
            if num_tasks is not None and _check.integer(num_tasks, "num_tasks", minimum=1) != len(names):
                raise ValueError(f"num_tasks: {num_tasks} differs from len(names) = {len(names)}")
            num_tasks = len(names)
        if num_tasks is None:
            raise ValueError("num_tasks: give the number of tasks or their names")
        T = _check.integer(num_tasks, "num_tasks", minimum=1)
        self.names = names
        self.num_tasks = T
        self.alpha = _check.real(alpha, "alpha", minimum=0.0)
        self.lr = _check.real(lr, "lr", minimum=0.0, strict_min=True)
        if weights is None:
            w = np.ones(T)
        else:
            w = _check.float_array(weights, "weights", ndim=1, shape=(T,), dtype=np.float64).copy()
            if w.min() < 0:
                raise ValueError(f"weights: must be non-negative, got {w.min()}")
        if self.mode == "gradnorm":
            if w.sum() <= 0:
                raise ValueError("weights: must not all be zero in 'gradnorm' mode")
            w *= T / w.sum()
        self.weights = w
        if log_vars is None:
            self.log_vars = np.zeros(T)
        else:
            self.log_vars = _check.float_array(log_vars, "log_vars", ndim=1, shape=(T,), dtype=np.float64).copy()
        self.initial_losses = None

    def _losses(self, losses, name="losses"):
        if isinstance(losses, dict):
            if self.names is None:
                raise TypeError(f"{name}: a dict needs task names (MultiObjectiveLoss(names=...))")
            missing = [n for n in self.names if n not in losses]
            extra = [n for n in losses if n not in self.names]
            if missing or extra:
                raise ValueError(f"{name}: keys must be {self.names} (missing {missing}, unknown {extra})")
            losses = [losses[n] for n in self.names]
        return _check.float_array(_host_scalars(losses, name), name, ndim=1, shape=(self.num_tasks,),
                                  dtype=np.float64)

    def __call__(self, losses):
        """Combine the task losses.

        ``L = Σ w_i L_i`` ("fixed", "gradnorm") or ``Σ exp(−s_i) L_i + s_i`` ("uncertainty").

        Parameters
        ----------
        losses : sequence of float [T] (or a dict by name)
            The losses the loss functions return are Python floats for device inputs too; a device array of
            the ``T`` losses is also accepted (its ``T`` values are read back: the weighting is host bookkeeping).

        Returns
        -------
        total : float
        grads : dict
            ``"losses"``: ``∂L/∂L_i`` [T] (the factor each task's gradient is scaled by, for
            :func:`combine_gradients`); ``"log_vars"``: ``∂L/∂s_i = 1 − exp(−s_i) L_i`` in "uncertainty" mode.

        Raises
        ------
        ValueError
            wrong number of losses or non-finite values.
        """
        L = self._losses(losses)
        if self.mode == "uncertainty":
            prec = np.exp(-self.log_vars)
            total = float(np.sum(prec * L + self.log_vars))
            return total, {"losses": prec, "log_vars": 1.0 - prec * L}
        return float(np.dot(self.weights, L)), {"losses": self.weights.copy()}

    def gradnorm_step(self, losses, grad_norms):
        """One GradNorm update of :attr:`weights` ("gradnorm" mode).

        ``L_grad = Σ |G_i − mean(G)·r_i^α|``, ``G_i = w_i ‖∇_W L_i‖``; the target is held constant,
        ``w ← w − lr · sign(G_i − target_i) ‖∇_W L_i‖``, then clipped at 1e-6 and renormalised to sum to ``T``.
        The first call records ``L_i(0)``.

        Parameters
        ----------
        losses : sequence of float [T]
            Current (unweighted) task losses, all > 0.
        grad_norms : sequence of float [T]
            ``‖∇_W L_i‖`` of the *unweighted* task losses with respect to the shared weights ``W``. ``losses``
            and ``grad_norms`` may be device arrays (their ``T`` values are read back).

        Returns
        -------
        float
            ``L_grad`` before the update.

        Raises
        ------
        RuntimeError
            not in "gradnorm" mode.
        ValueError
            wrong lengths, non-finite values, non-positive losses, negative norms.
        """
        if self.mode != "gradnorm":
            raise RuntimeError(f"gradnorm_step: only in mode 'gradnorm' (this loss uses {self.mode!r})")
        L = self._losses(losses)
        if L.min() <= 0:
            raise ValueError(f"losses: must be > 0 for GradNorm's training rates, got {L.min()}")
        gn = _check.float_array(_host_scalars(grad_norms, "grad_norms"), "grad_norms", ndim=1,
                                shape=(self.num_tasks,), dtype=np.float64)
        if gn.min() < 0:
            raise ValueError(f"grad_norms: must be non-negative, got {gn.min()}")
        if self.initial_losses is None:
            self.initial_losses = L.copy()
        ratio = L / self.initial_losses
        r = ratio / ratio.mean()
        G = self.weights * gn
        target = G.mean() * r ** self.alpha
        value = float(np.abs(G - target).sum())
        self.weights = np.maximum(self.weights - self.lr * np.sign(G - target) * gn, 1e-6)
        self.weights *= self.num_tasks / self.weights.sum()
        return value

    def parameters(self):
        """Learnable arrays (updated in place by an optimizer): ``{"log_vars": ...}`` in "uncertainty" mode."""
        return {"log_vars": self.log_vars} if self.mode == "uncertainty" else {}

    def state_dict(self):
        """A dict of copies that :meth:`load_state_dict` restores."""
        return {"mode": self.mode, "weights": self.weights.copy(), "log_vars": self.log_vars.copy(),
                "initial_losses": None if self.initial_losses is None else self.initial_losses.copy(),
                "alpha": self.alpha, "lr": self.lr}

    def load_state_dict(self, state):
        """Restore a :meth:`state_dict` (the mode and task count must match)."""
        if state.get("mode") != self.mode:
            raise ValueError(f"state: mode {state.get('mode')!r} differs from {self.mode!r}")
        T = self.num_tasks
        self.weights = _check.float_array(state["weights"], "weights", ndim=1, shape=(T,), dtype=np.float64).copy()
        self.log_vars[...] = _check.float_array(state["log_vars"], "log_vars", ndim=1, shape=(T,), dtype=np.float64)
        init = state.get("initial_losses")
        self.initial_losses = None if init is None else _check.float_array(
            init, "initial_losses", ndim=1, shape=(T,), dtype=np.float64).copy()
        self.alpha = _check.real(state["alpha"], "alpha", minimum=0.0)
        self.lr = _check.real(state["lr"], "lr", minimum=0.0, strict_min=True)


def _host_scalars(x, name):
    """A device vector of per-task scalars is read back (T values: the weighting is host bookkeeping)."""
    if _check.is_device_array(x):
        return _check.device_array(x, name, ndim=1).copy_to_host()
    return x


def _is_sparse(g):
    return isinstance(g, tuple) and len(g) == 2


def combine_gradients(grads, weights, *, out=None, backend=None):
    """Weighted sum of gradient buffers in one fused pass: ``G = Σ_m w_m g_m``.

    Parameters
    ----------
    grads : sequence of arrays or ``(rows, values)`` pairs
        Dense gradients of one shape and dtype, and/or row-sparse ones (int ``rows`` [R_m], float
        ``values`` [R_m, D]; rows may repeat and are summed). Any of them may be CUDA device arrays (numba, or
        any object exposing ``__cuda_array_interface__``: CuPy, PyTorch CUDA tensors; float32/float64 values,
        int32/int64 rows, C-contiguous): the sum then runs on CUDA without copying them, host arrays given
        beside them are validated on the host and uploaded, and the result is on the device. Row ranges of
        device ``rows`` are checked by a device scan; the row-sparse grouping is a stable sort on the device.
    weights : sequence of float
        One finite weight per gradient (e.g. ``grads["losses"]`` of :class:`MultiObjectiveLoss`); a device
        array of them is read back (one float per gradient).
    out : array, optional
        Dense output buffer (dtype and shape of the dense gradients, C-contiguous); overwritten. With device
        gradients it must be a device array.
    backend : "cpu" | "cuda" | "auto", optional
        Device inputs imply ``"cuda"``; an explicit ``"cpu"`` with them is a ``ValueError``.

    Returns
    -------
    array, or ``(rows, values)``
        Dense when any input is dense (sparse inputs are added into their rows), else row-sparse with
        sorted distinct int64 ``rows``. Numba device arrays when any input is a device array.

    Raises
    ------
    TypeError
        mixed dtypes, non-float values, non-integer rows, a bad ``out`` (a host ``out`` for device inputs).
    ValueError
        empty ``grads``, count mismatch, shape mismatches, non-finite weights, rows out of range of the
        dense gradients, device inputs with ``backend="cpu"``. (Gradient values are not scanned for NaN/inf:
        they propagate, as in torch.)

    Examples
    --------
    >>> import numpy as np
    >>> combine_gradients([np.ones(3), np.arange(3.0)], [2.0, 1.0]).tolist()
    [2.0, 3.0, 4.0]
    >>> rows, vals = combine_gradients([(np.array([2, 0]), np.ones((2, 1))), (np.array([2]), np.ones((1, 1)))], [1.0, 0.5])
    >>> rows.tolist(), vals.ravel().tolist()
    ([0, 2], [1.0, 1.5])
    """
    if isinstance(grads, np.ndarray) or not isinstance(grads, (list, tuple)):
        raise TypeError(f"grads: expected a list of gradients, got {type(grads).__name__}")
    grads = list(grads)
    if not grads:
        raise ValueError("grads: must not be empty")
    if isinstance(weights, numbers.Real):
        raise TypeError("weights: expected a sequence with one weight per gradient")
    if _check.is_device_array(weights):  # one float per gradient: read back (T scalars), used as kernel arguments
        weights = _check.device_array(weights, "weights", ndim=1).copy_to_host()
    w = _check.float_array(weights, "weights", ndim=1, shape=(len(grads),), dtype=np.float64)
    arrays = {}
    for m, g in enumerate(grads):
        if _is_sparse(g):
            arrays[f"grads[{m}] rows"], arrays[f"grads[{m}] values"] = g
        else:
            arrays[f"grads[{m}]"] = g
    arrays["out"] = out
    if device_call(backend, **arrays):
        from . import _device

        return _device.combine_gradients(grads, w, out, _is_sparse)
    dense, dense_w, sparse, sparse_w = [], [], [], []
    for m, g in enumerate(grads):
        if _is_sparse(g):
            sparse.append(g)
            sparse_w.append(w[m])
        else:
            # gradients are not scanned for NaN/inf: that would double the cost of this memory-bound pass,
            # and a non-finite gradient is a training symptom to propagate, not a malformed input
            dense.append(_check.float_array(g, f"grads[{m}]", check_finite=False))
            dense_w.append(w[m])
    sparse = [(r, _check.float_array(v, "grads values", ndim=2, check_finite=False)) for r, v in sparse]
    dtype, shape, width, srows, svals = gradient_layout(dense, sparse, lambda r, upper, n: _check.index_array(
        r, "grads rows", upper=upper, ndim=1, shape=(n,), dtype=np.int64, what=f"dense gradients with {upper} rows"))
    name, k = kernels(backend)
    if dense:
        if out is None:
            out = np.empty(shape, dtype)
        else:
            out = _check.inplace_array(out, "out", dtype=dtype, shape=shape)
        k.weighted_sum(tuple(g.ravel() for g in dense), np.asarray(dense_w), out.reshape(-1))
        if sparse:
            rows, vals = _sparse_sum(k, srows, svals, sparse_w, dtype, width)
            out[rows] += vals  # rows are distinct
        return out
    if out is not None:
        raise ValueError("out: only used when some gradient is dense (row-sparse inputs give a row-sparse result)")
    return _sparse_sum(k, srows, svals, sparse_w, dtype, width)


def _sparse_sum(k, srows, svals, sweights, dtype, width):
    from ..kernels.cpu.losses import group_by_row

    rows_all = np.concatenate(srows)
    vals = np.concatenate(svals) if svals else np.zeros((0, width), dtype)
    entry_w = np.repeat(np.asarray(sweights, np.float64), [r.size for r in srows])
    n = int(rows_all.max()) + 1 if rows_all.size else 0
    rows, starts, order, _ = group_by_row(rows_all, n, 1)
    out = np.empty((rows.size, width), dtype)
    k.sparse_weighted_sum(vals, entry_w, starts, order, out)
    return rows, out


def gradient_layout(dense, sparse, ids):
    """The checks :func:`combine_gradients` makes of its inputs on either backend.

    Dense gradients share one dtype and shape; row-sparse ``(rows, values)`` share the dtype and a width
    (the dense gradients' second axis, whose length bounds the rows). ``ids(rows, upper, n)`` validates one
    rows array. Returns ``(dtype, shape, width, rows list, values list)``.
    """
    dtype = shape = None
    for g in dense:
        gshape = tuple(g.shape)
        if dtype is None:
            dtype, shape = g.dtype, gshape
        elif g.dtype != dtype:
            raise TypeError(f"grads: dtypes differ ({dtype} and {g.dtype}); pass one dtype")
        elif gshape != shape:
            raise ValueError(f"grads: shapes differ ({shape} and {gshape})")
    srows, svals = [], []
    width = None
    for r, v in sparse:
        if dtype is not None and v.dtype != dtype:
            raise TypeError(f"grads: dtypes differ ({dtype} and {v.dtype}); pass one dtype")
        dtype = dtype or v.dtype
        if width is None:
            width = v.shape[1]
        elif v.shape[1] != width:
            raise ValueError(f"grads: row-sparse values have different widths ({width} and {v.shape[1]})")
        upper = None
        if dense:
            if len(shape) != 2 or shape[1] != width:
                raise ValueError(f"grads: row-sparse values [*, {width}] do not match dense gradients of shape {shape}")
            upper = shape[0]
        srows.append(ids(r, upper, v.shape[0]))
        svals.append(v)
    return dtype, shape, width, srows, svals
