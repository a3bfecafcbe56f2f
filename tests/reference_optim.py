"""NumPy oracles for fastgnn.optim: a plain transcription of torch.optim's single-tensor SGD/Adam/AdamW.

Scalars are derived in Python floats (as torch does) and cast to the array dtype before use; each array
expression follows torch's operation order, so a float32 run is reproduced element for element.
"""
import math

import numpy as np

__all__ = [
    "SGDRef",
    "AdamRef",
    "coalesce_rows_ref",
    "clip_grad_norm_ref",
    "clip_grad_value_ref",
]


def _lerp(a, b, w, one_m_w):
    """torch.lerp with a scalar weight: the two-sided formula."""
    if w < 0.5:
        return a + w * (b - a)
    return b - (b - a) * one_m_w


class SGDRef:
    """torch.optim.SGD (single-tensor path); ``rows`` steps update only the listed rows (lazy)."""

    def __init__(self, params, lr, momentum=0.0, dampening=0.0, nesterov=False, weight_decay=0.0, maximize=False):
        self.params = params
        self.lr, self.momentum, self.dampening = lr, momentum, dampening
        self.nesterov, self.weight_decay, self.maximize = nesterov, weight_decay, maximize
        self.bufs = [np.zeros_like(p) for p in params]
        self.steps = [0] * len(params)

    def _apply(self, p, g, buf, first):
        dt = p.dtype.type
        g = -g if self.maximize else g.copy()
        if self.weight_decay != 0:
            g = g + dt(self.weight_decay) * p
        if self.momentum != 0:
            if first:
                b = g.copy()
            else:
                b = buf * dt(self.momentum) + dt(1 - self.dampening) * g
            buf[...] = b
            g = g + dt(self.momentum) * b if self.nesterov else b
        return p + dt(-self.lr) * g

    def step(self, grads):
        for i, (p, g) in enumerate(zip(self.params, grads)):
            self.steps[i] += 1
            p[...] = self._apply(p, g, self.bufs[i], self.steps[i] == 1)

    def step_rows(self, i, rows, row_grads):
        self.steps[i] += 1
        p = self.params[i]
        u, g = coalesce_rows_ref(rows, row_grads.reshape(len(rows), p.size // p.shape[0]))
        if not len(u):
            return
        p2 = p.reshape(p.shape[0], -1)
        b2 = self.bufs[i].reshape(p2.shape)
        b = b2[u]
        p2[u] = self._apply(p2[u], g, b, self.steps[i] == 1)
        b2[u] = b


class AdamRef:
    """torch.optim.Adam / AdamW (``decoupled=True``), with AMSGrad; lazy ``step_rows``."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, amsgrad=False,
                 decoupled=False):
        self.params = params
        self.lr, self.betas, self.eps = lr, betas, eps
        self.weight_decay, self.amsgrad, self.decoupled = weight_decay, amsgrad, decoupled
        self.m = [np.zeros_like(p) for p in params]
        self.v = [np.zeros_like(p) for p in params]
        self.vmax = [np.zeros_like(p) for p in params]
        self.steps = [0] * len(params)

    def _apply(self, p, g, m, v, vmax, step):
        dt = p.dtype.type
        b1, b2 = self.betas
        if self.decoupled:
            p = p * dt(1 - self.lr * self.weight_decay)
        elif self.weight_decay != 0:
            g = g + dt(self.weight_decay) * p
        w = dt(1 - b1)
        m[...] = _lerp(m, g, w, dt(1) - w)
        v[...] = v * dt(b2) + (dt(1 - b2) * g) * g
        if self.amsgrad:
            vmax[...] = np.maximum(vmax, v)
            vv = vmax
        else:
            vv = v
        denom = np.sqrt(vv) / dt((1 - b2 ** step) ** 0.5) + dt(self.eps)
        return p + dt(-(self.lr / (1 - b1 ** step))) * (m / denom)

    def step(self, grads):
        for i, (p, g) in enumerate(zip(self.params, grads)):
            self.steps[i] += 1
            p[...] = self._apply(p, g, self.m[i], self.v[i], self.vmax[i], self.steps[i])

    def step_rows(self, i, rows, row_grads):
        self.steps[i] += 1
        p = self.params[i]
        u, g = coalesce_rows_ref(rows, row_grads.reshape(len(rows), p.size // p.shape[0]))
        if not len(u):
            return
        shape2 = (p.shape[0], -1)
        p2, m2, v2, x2 = (a.reshape(shape2) for a in (p, self.m[i], self.v[i], self.vmax[i]))
        m, v, x = m2[u], v2[u], x2[u]
        p2[u] = self._apply(p2[u], g, m, v, x, self.steps[i])
        m2[u], v2[u], x2[u] = m, v, x


def coalesce_rows_ref(rows, row_grads):
    """Distinct rows in order of first appearance and their gradients summed in order of occurrence."""
    order, sums = [], {}
    for k, r in enumerate(np.asarray(rows).tolist()):
        if r in sums:
            sums[r] = sums[r] + row_grads[k]
        else:
            order.append(r)
            sums[r] = row_grads[k].copy()
    if not order:
        return np.zeros(0, dtype=np.int64), row_grads[:0]
    return np.array(order, dtype=np.int64), np.stack([sums[r] for r in order])


def clip_grad_norm_ref(grads, max_norm):
    """torch.nn.utils.clip_grad_norm_ (L2): returns the norm, scales ``grads`` in place."""
    total = math.sqrt(sum(float(np.sum(g.astype(np.float64) ** 2)) for g in grads))
    coef = min(max_norm / (total + 1e-6), 1.0)
    for g in grads:
        g[...] = g * g.dtype.type(coef)
    return total


def clip_grad_value_ref(grads, value):
    for g in grads:
        np.clip(g, -value, value, out=g)
