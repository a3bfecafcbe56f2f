"""SGD, Adam and AdamW: torch.optim's update rules as one fused kernel per step."""
from __future__ import annotations

import numpy as np

from .. import _check
from .. import backend as _backend
from ._base import Optimizer, check_lr, dyn_chunk, run_cpu


def _flag(value, name) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name}: expected True or False, got {type(value).__name__} {value!r}")
    return bool(value)


def _betas(value):
    if isinstance(value, (str, bytes)) or not hasattr(value, "__len__") or len(value) != 2:
        raise ValueError(f"betas: expected a pair (beta1, beta2), got {value!r}")
    b1 = _check.real(value[0], "betas[0]", minimum=0.0, maximum=1.0, strict_max=True)
    b2 = _check.real(value[1], "betas[1]", minimum=0.0, maximum=1.0, strict_max=True)
    return (b1, b2)


def _rows_chunk(nu, width):
    # the row kernels' loop runs over groups of _ROWS_PER_ITEM distinct rows
    per = 16
    return dyn_chunk(-(-nu // per), nu * width)


class SGD(Optimizer):
    """Stochastic gradient descent with momentum, dampening, Nesterov and weight decay (``torch.optim.SGD``).

    ``g ← ±g + wd·p;  b ← g (first step) else μ·b + (1−τ)·g;  p ← p − lr·(g + μ·b if nesterov else b)``
    (with ``μ = 0`` simply ``p ← p − lr·g``). One fused pass over all parameters per step.

    Parameters
    ----------
    params : list of ndarray
        float32 or float64 arrays (one dtype), C-contiguous and writeable, updated in place.
    lr : float
        Learning rate, ``>= 0``.
    momentum : float, default 0
        ``μ >= 0``; the buffer starts as the first gradient, like torch.
    dampening : float, default 0
        ``τ`` in ``[0, 1]``.
    nesterov : bool, default False
        Nesterov momentum; needs ``momentum > 0`` and ``dampening == 0``.
    weight_decay : float, default 0
        Coupled L2 penalty ``wd >= 0`` added to the gradient.
    maximize : bool, default False
        Ascend instead of descend.
    nonfinite : {"raise", "skip", "propagate"}, default "raise"
        See :class:`fastgnn.optim.Optimizer`.

    Raises
    ------
    TypeError, ValueError
        bad parameter list or hyper-parameter (the message names it).

    Examples
    --------
    >>> import numpy as np
    >>> from fastgnn.optim import SGD
    >>> w = np.ones(3, dtype=np.float32)
    >>> opt = SGD([w], lr=0.1, momentum=0.9)
    >>> opt.step([np.ones(3, dtype=np.float32)])
    True
    >>> w
    array([0.9, 0.9, 0.9], dtype=float32)
    """

    _hyper_names = ("momentum", "dampening", "nesterov", "weight_decay", "maximize")

    def __init__(self, params, lr, momentum=0.0, dampening=0.0, nesterov=False, weight_decay=0.0, maximize=False,
                 *, nonfinite="raise"):
        self.momentum = self._validate(lr, momentum, dampening, nesterov, weight_decay, maximize)[1]
        super().__init__(params, lr, nonfinite=nonfinite)
        self._set_hyper(lr=lr, momentum=momentum, dampening=dampening, nesterov=nesterov,
                        weight_decay=weight_decay, maximize=maximize)

    @staticmethod
    def _validate(lr, momentum, dampening, nesterov, weight_decay, maximize):
        lr = check_lr(lr)
        momentum = _check.real(momentum, "momentum", minimum=0.0)
        dampening = _check.real(dampening, "dampening", minimum=0.0, maximum=1.0)
        nesterov = _flag(nesterov, "nesterov")
        weight_decay = _check.real(weight_decay, "weight_decay", minimum=0.0)
        maximize = _flag(maximize, "maximize")
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("nesterov: Nesterov momentum requires momentum > 0 and dampening == 0")
        return lr, momentum, dampening, nesterov, weight_decay, maximize

    def _set_hyper(self, lr, momentum, dampening, nesterov, weight_decay, maximize):
        (self._lr, self.momentum, self.dampening, self.nesterov, self.weight_decay,
         self.maximize) = self._validate(lr, momentum, dampening, nesterov, weight_decay, maximize)
        self._alloc_buffers()

    def _buffers(self):
        return ("momentum_buffer",) if self.momentum != 0 else ()

    def _scalars(self):
        dt = self.dtype.type
        return (dt(-self._lr), dt(self.momentum), dt(1 - self.dampening), dt(self.weight_decay), self.nesterov,
                self.maximize)

    def _buf(self):
        return self._state.get("momentum_buffer", self._state_like())

    def _update(self, grads, g_addr, check):
        sc = self._scalars()
        first = self._steps == 0  # this is a parameter's first step: the buffer is set from the gradient
        if self._device:
            ck = _backend.kernels("optim", "cuda")
            buf = self._state.get("momentum_buffer")
            for i, (p, g) in enumerate(zip(self.params, grads)):
                o, s = int(self._offsets[i]), int(self._sizes[i])
                b = buf[o:o + s] if buf is not None else self._empty_device()
                ck.launch_sgd(p.reshape(s), g.reshape(s), b, bool(first[i]), *sc, flag=check)
            return -1
        return self._run_multi("sgd_multi", self._p_addr, g_addr, self._ctens, self._clo, self._chi, self._offsets,
                               self._buf(), first, *sc, check=check)

    def _update_rows(self, i, nrows, width, rows, row_grads, ufirst, nxt, nu):
        sc = self._scalars()
        first = bool(self._steps[i] == 1)
        use_mom = self.momentum != 0
        if self._device:
            ck = _backend.kernels("optim", "cuda")
            if use_mom:
                buf = self._state2d("momentum_buffer", i, nrows, width)
            else:
                buf = self._empty_device().reshape(0, width)
            ck.launch_sgd_rows(self._param2d(i, nrows, width), rows, row_grads, ufirst, nxt, nu, buf, first, *sc)
            return
        buf = self._state2d("momentum_buffer", i, nrows, width) if use_mom else np.empty((0, width), self.dtype)
        run_cpu("sgd_rows", self._param2d(i, nrows, width), rows, row_grads, ufirst, nxt, nu, buf, first, *sc,
                chunk=_rows_chunk(nu, width), work=nu * width)


class Adam(Optimizer):
    """Adam (``torch.optim.Adam``): coupled L2 weight decay, ε added after bias correction, optional AMSGrad.

    ``g ← g + wd·p;  m ← β1·m + (1−β1)·g;  v ← β2·v + (1−β2)·g²;  p ← p − lr/(1−β1ᵗ) · m / (√v/√(1−β2ᵗ) + ε)``
    (AMSGrad uses ``v̂ = max(v̂, v)`` in place of ``v``). One fused pass over all parameters per step.

    Parameters
    ----------
    params : list of ndarray
        float32 or float64 arrays (one dtype), C-contiguous and writeable, updated in place.
    lr : float, default 1e-3
        Learning rate, ``>= 0``.
    betas : (float, float), default (0.9, 0.999)
        Both in ``[0, 1)``.
    eps : float, default 1e-8
        ``> 0``.
    weight_decay : float, default 0
        ``>= 0``; coupled (added to the gradient).
    amsgrad : bool, default False
        Keep the running maximum of ``v``.
    nonfinite : {"raise", "skip", "propagate"}, default "raise"
        See :class:`fastgnn.optim.Optimizer`.

    Raises
    ------
    TypeError, ValueError
        bad parameter list or hyper-parameter (the message names it).

    Examples
    --------
    >>> import numpy as np
    >>> from fastgnn.optim import Adam
    >>> w = np.zeros(2, dtype=np.float32)
    >>> opt = Adam([w], lr=0.1)
    >>> opt.step([np.array([1.0, -1.0], dtype=np.float32)])
    True
    >>> w.round(4)
    array([-0.1,  0.1], dtype=float32)
    """

    _hyper_names = ("betas", "eps", "weight_decay", "amsgrad")
    _decoupled = False

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, amsgrad=False, *,
                 nonfinite="raise"):
        self._validate(lr, betas, eps, weight_decay, amsgrad)
        self.amsgrad = bool(amsgrad)
        super().__init__(params, lr, nonfinite=nonfinite)
        self._set_hyper(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad)

    @staticmethod
    def _validate(lr, betas, eps, weight_decay, amsgrad):
        lr = check_lr(lr)
        betas = _betas(betas)
        eps = _check.real(eps, "eps", minimum=0.0, strict_min=True)
        weight_decay = _check.real(weight_decay, "weight_decay", minimum=0.0)
        amsgrad = _flag(amsgrad, "amsgrad")
        return lr, betas, eps, weight_decay, amsgrad

    def _set_hyper(self, lr, betas, eps, weight_decay, amsgrad):
        self._lr, self.betas, self.eps, self.weight_decay, amsgrad = self._validate(lr, betas, eps, weight_decay,
                                                                                   amsgrad)
        self.amsgrad = amsgrad
        self._alloc_buffers()

    def _buffers(self):
        return ("exp_avg", "exp_avg_sq") + (("max_exp_avg_sq",) if self.amsgrad else ())

    def _bias(self, steps):
        """Per-parameter ``-lr / bc1`` and ``√bc2`` in float64, as torch computes them, then cast."""
        b1, b2 = self.betas
        lr = self._lr
        if steps.size and steps[0] == steps.min() == steps.max():  # the usual case: every tensor at one step
            s = int(steps[0])
            return (np.full(steps.size, -(lr / (1 - b1 ** s)), dtype=self.dtype),
                    np.full(steps.size, (1 - b2 ** s) ** 0.5, dtype=self.dtype))
        uniq, inv = np.unique(steps, return_inverse=True)
        neg = np.array([-(lr / (1 - b1 ** int(s))) for s in uniq], dtype=np.float64)
        bc2 = np.array([(1 - b2 ** int(s)) ** 0.5 for s in uniq], dtype=np.float64)
        return neg[inv].astype(self.dtype), bc2[inv].astype(self.dtype)

    def _scalars(self):
        dt = self.dtype.type
        b1, b2 = self.betas
        if self._decoupled:
            wd, decay = 0.0, 1 - self._lr * self.weight_decay
        else:
            wd, decay = self.weight_decay, 1.0
        w = dt(1 - b1)  # torch.lerp's weight; its complement is taken in the tensor dtype
        return w, dt(1) - w, dt(b2), dt(1 - b2), dt(self.eps), dt(wd), dt(decay), self.amsgrad

    def _vmax(self):
        return self._state.get("max_exp_avg_sq", self._state_like())

    def _update(self, grads, g_addr, check):
        neg_step, bc2 = self._bias(self._steps + 1)
        sc = self._scalars()
        st = self._state
        if self._device:
            ck = _backend.kernels("optim", "cuda")
            vmax = st.get("max_exp_avg_sq")
            for i, (p, g) in enumerate(zip(self.params, grads)):
                o, s = int(self._offsets[i]), int(self._sizes[i])
                vm = vmax[o:o + s] if vmax is not None else self._empty_device()
                ck.launch_adam(p.reshape(s), g.reshape(s), st["exp_avg"][o:o + s], st["exp_avg_sq"][o:o + s], vm,
                               neg_step[i], bc2[i], *sc, flag=check)
            return -1
        return self._run_multi("adam_multi", self._p_addr, g_addr, self._ctens, self._clo, self._chi, self._offsets,
                               st["exp_avg"], st["exp_avg_sq"], self._vmax(), neg_step, bc2, *sc, check=check)

    def _update_rows(self, i, nrows, width, rows, row_grads, ufirst, nxt, nu):
        neg_step, bc2 = self._bias(self._steps[i:i + 1])
        sc = self._scalars()
        m = self._state2d("exp_avg", i, nrows, width)
        v = self._state2d("exp_avg_sq", i, nrows, width)
        if self.amsgrad:
            vmax = self._state2d("max_exp_avg_sq", i, nrows, width)
        elif self._device:
            vmax = self._empty_device().reshape(0, width)
        else:
            vmax = np.empty((0, width), dtype=self.dtype)
        p = self._param2d(i, nrows, width)
        if self._device:
            ck = _backend.kernels("optim", "cuda")
            ck.launch_adam_rows(p, rows, row_grads, ufirst, nxt, nu, m, v, vmax, neg_step[0], bc2[0], *sc)
            return
        run_cpu("adam_rows", p, rows, row_grads, ufirst, nxt, nu, m, v, vmax, neg_step[0], bc2[0], *sc,
                chunk=_rows_chunk(nu, width), work=nu * width)


class AdamW(Adam):
    """AdamW (``torch.optim.AdamW``): Adam with decoupled weight decay, applied first as ``p ← p·(1 − lr·wd)``.

    ``p ← p·(1−lr·wd);  m ← β1·m + (1−β1)·g;  v ← β2·v + (1−β2)·g²;  p ← p − lr/(1−β1ᵗ) · m / (√v/√(1−β2ᵗ) + ε)``

    Parameters
    ----------
    params : list of ndarray
        float32 or float64 arrays (one dtype), C-contiguous and writeable, updated in place.
    lr : float, default 1e-3
        Learning rate, ``>= 0``.
    betas : (float, float), default (0.9, 0.999)
        Both in ``[0, 1)``.
    eps : float, default 1e-8
        ``> 0``.
    weight_decay : float, default 1e-2
        ``>= 0``; decoupled.
    amsgrad : bool, default False
        Keep the running maximum of ``v``.
    nonfinite : {"raise", "skip", "propagate"}, default "raise"
        See :class:`fastgnn.optim.Optimizer`.

    Raises
    ------
    TypeError, ValueError
        bad parameter list or hyper-parameter (the message names it).

    Examples
    --------
    >>> import numpy as np
    >>> from fastgnn.optim import AdamW
    >>> w = np.ones(2, dtype=np.float32)
    >>> opt = AdamW([w], lr=0.1, weight_decay=0.5)
    >>> opt.step([np.zeros(2, dtype=np.float32)])
    True
    >>> w
    array([0.95, 0.95], dtype=float32)
    """

    _decoupled = True

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, amsgrad=False, *,
                 nonfinite="raise"):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad,
                         nonfinite=nonfinite)

