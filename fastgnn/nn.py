"""Encoders built on :mod:`fastgnn.autograd`: Embedding, Linear, GCNConv, SAGEConv, GATConv, Sequential.

Modules hold :class:`~fastgnn.autograd.Tensor` parameters (float32 unless ``dtype`` says otherwise),
initialised from a ``seed`` (Glorot-uniform weights, zero biases, like PyTorch Geometric).
``parameters()`` lists them in a fixed order for the optimizers; ``state_dict()`` /
``load_state_dict()`` round-trip them by name. Graph layers take ``(graph, x)``.
"""
from __future__ import annotations

import numpy as np

from . import _check
from . import autograd as ag
from .autograd import Tensor

__all__ = ["Module", "Embedding", "Linear", "GCNConv", "SAGEConv", "GATConv", "Sequential", "ReLU", "ELU",
           "Dropout"]


def _glorot(rng, fan_in, fan_out, shape, dtype):
    bound = np.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-bound, bound, size=shape).astype(dtype)


def _dtype(dtype):
    dt = np.dtype(dtype)
    if dt not in (np.float32, np.float64):
        raise TypeError(f"dtype: expected float32 or float64, got {dt}")
    return dt


class Module:
    """Base class: parameters are Tensor attributes; sub-modules are Module attributes (or in ``_children``)."""

    training = True

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    def forward(self, *args, **kwargs):  # pragma: no cover - every subclass defines it
        raise TypeError(f"{type(self).__name__} defines no forward pass")

    def named_parameters(self, prefix=""):
        for name, value in vars(self).items():
            if isinstance(value, Tensor) and value.requires_grad:
                yield prefix + name, value
            elif isinstance(value, Module):
                yield from value.named_parameters(prefix + name + ".")
            elif name == "_children":
                for i, child in enumerate(value):
                    yield from child.named_parameters(f"{prefix}{i}.")

    def parameters(self):
        """The parameter Tensors in a fixed order."""
        return [p for _, p in self.named_parameters()]

    def zero_grad(self):
        for p in self.parameters():
            p.grad = None

    def to(self, device: str) -> "Module":
        """Move the parameters to ``"cuda"`` (device arrays: forward and backward then run on the GPU, see
        :mod:`fastgnn._autograd_device`) or back to ``"cpu"`` (host arrays), in place; gradients are cleared."""
        from . import _autograd_device as _ad

        device = _check.choice(device, "device", ("cpu", "cuda"))
        for p in self.parameters():
            if device == "cuda" and not p.on_device:
                p.data = _ad.upload(p.data)
            elif device == "cpu" and p.on_device:
                p.data = p.data.copy_to_host()
            p.grad = None
        return self

    def train(self, mode: bool = True):
        self.training = bool(mode)
        for value in vars(self).values():
            if isinstance(value, Module):
                value.train(mode)
        for child in getattr(self, "_children", ()):
            child.train(mode)
        return self

    def eval(self):
        return self.train(False)

    def state_dict(self) -> dict:
        """``{name: array copy}`` of every parameter (host arrays, copied from the device for device tensors)."""
        return {name: p.data.copy_to_host() if p.on_device else p.data.copy() for name, p in self.named_parameters()}

    def load_state_dict(self, state: dict) -> None:
        """Copy arrays into the parameters; names, shapes and dtypes must match exactly."""
        params = dict(self.named_parameters())
        missing = sorted(set(params) - set(state))
        extra = sorted(set(state) - set(params))
        if missing or extra:
            raise ValueError(f"state: does not match this {type(self).__name__} (missing {missing}, unexpected {extra})")
        for name, p in params.items():
            arr = np.asarray(state[name])
            if arr.shape != p.shape:
                raise ValueError(f"state: {name} has shape {arr.shape}, expected {p.shape}")
            if p.on_device:
                p.data.copy_to_device(np.ascontiguousarray(arr, p.dtype))
            else:
                p.data[...] = arr.astype(p.dtype, copy=False)


class Embedding(Module):
    """A trainable table ``[num, dim]``; ``forward(ids)`` gathers rows (row-sparse gradient)."""

    def __init__(self, num: int, dim: int, *, seed: int = 0, dtype=np.float32, scale: float | None = None):
        num = _check.integer(num, "num", minimum=1)
        dim = _check.integer(dim, "dim", minimum=1)
        rng = np.random.default_rng(_check.seed_value(seed))
        std = (1.0 / np.sqrt(dim)) if scale is None else _check.real(scale, "scale", minimum=0.0)
        self.weight = Tensor(rng.normal(0.0, std, size=(num, dim)).astype(_dtype(dtype)), requires_grad=True)

    def forward(self, ids=None):
        """All rows when ``ids`` is None (dense gradient), else the rows ``ids``."""
        if ids is None:
            return self.weight
        return ag.embedding(self.weight, ids)


class Linear(Module):
    """``y = x W + b`` with ``W`` [in, out]."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True, *, seed: int = 0, dtype=np.float32):
        fi = _check.integer(in_features, "in_features", minimum=1)
        fo = _check.integer(out_features, "out_features", minimum=1)
        rng = np.random.default_rng(_check.seed_value(seed))
        dt = _dtype(dtype)
        self.weight = Tensor(_glorot(rng, fi, fo, (fi, fo), dt), requires_grad=True)
        self.bias = Tensor(np.zeros((1, fo), dt), requires_grad=True) if bias else None

    def forward(self, x):
        if not ag._is_sparse(x):  # a scipy sparse feature matrix stays sparse
            x = ag.tensor(x)
        if len(x.shape) != 2 or x.shape[1] != self.weight.shape[0]:
            raise ValueError(f"x: expected shape [N, {self.weight.shape[0]}], got {x.shape}")
        y = ag.matmul(x, self.weight)
        return y if self.bias is None else ag.add(y, self.bias)


def _aggregate_first(x, lin):
    """Whether a layer ``Â X W`` should propagate before it multiplies: when ``X`` is dense and has no more
    columns than ``X W``. ``(Â X) W`` then gathers the narrower rows (DGL's ``GraphConv`` chooses the same
    way), and for a constant ``X`` (input features) its backward needs no sparse product at all:
    ``dW = (Â X)ᵀ G``. Both orders give the same product up to rounding."""
    return not ag._is_sparse(x) and lin.weight.shape[0] <= lin.weight.shape[1]


class GCNConv(Module):
    """Kipf & Welling: ``H' = D̃^-1/2 (A + I) D̃^-1/2 X W + b``.

    The sparse product runs on the narrower side: ``(Â X) W`` when the layer widens or keeps the width,
    ``Â (X W)`` when it narrows (or ``X`` is sparse).

    ``cached=True`` (transductive training: one graph, fixed features) keeps ``Â X`` of a constant input (one
    that needs no gradient) and reuses it while the same graph and the same input array come back, so a
    first layer that propagates first runs its sparse product once. The key is the objects' identity, not
    their values: call :meth:`clear_cache` after changing the input array in place. The
    :class:`~fastgnn.trainer.Trainer` turns it on for the length of each ``fit``.
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, *, seed: int = 0, dtype=np.float32,
                 cached: bool = False):
        self.lin = Linear(in_features, out_features, bias=False, seed=seed, dtype=dtype)
        self.bias = Tensor(np.zeros((1, out_features), _dtype(dtype)), requires_grad=True) if bias else None
        self.cached = bool(cached)
        self._cache = None  # (graph, input array, Â X)

    def clear_cache(self):
        """Forget the cached ``Â X`` (see ``cached``)."""
        self._cache = None

    def _propagate(self, graph, x):
        if not self.cached or (isinstance(x, Tensor) and x.requires_grad):
            return ag.gcn_propagate(graph, x)
        data = ag.no_grad_value(x)
        hit = self._cache
        if hit is not None and hit[0] is graph and hit[1] is data:
            return hit[2]
        out = ag.gcn_propagate(graph, x)
        self._cache = (graph, data, out)
        return out

    def forward(self, graph, x):
        if _aggregate_first(x, self.lin):
            h = self.lin(self._propagate(graph, x))
        else:
            h = ag.gcn_propagate(graph, self.lin(x))
        return h if self.bias is None else ag.add(h, self.bias)


class SAGEConv(Module):
    """GraphSAGE with mean aggregation: ``h'_i = W_self x_i + W_neigh mean_{j∈N(i)} x_j + b``.

    The mean runs on the narrower side, as in :class:`GCNConv`: over ``x`` when the layer widens or keeps
    the width, over ``x W_neigh`` when it narrows."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True, *, seed: int = 0, dtype=np.float32):
        self.lin_self = Linear(in_features, out_features, bias=bias, seed=seed, dtype=dtype)
        self.lin_neigh = Linear(in_features, out_features, bias=False, seed=seed + 1, dtype=dtype)

    def forward(self, graph, x):
        x = ag.tensor(x)
        if _aggregate_first(x, self.lin_neigh):
            neigh = self.lin_neigh(ag.spmm(graph, x, norm="rw"))
        else:
            neigh = ag.spmm(graph, self.lin_neigh(x), norm="rw")
        return ag.add(self.lin_self(x), neigh)


class GATConv(Module):
    """Graph attention (Veličković et al. 2018) with ``heads`` heads of ``out_features`` each.

    Heads are concatenated (``concat=True``, output ``heads * out_features``) or averaged.
    """

    def __init__(self, in_features: int, out_features: int, heads: int = 1, concat: bool = True,
                 negative_slope: float = 0.2, bias: bool = True, *, seed: int = 0, dtype=np.float32):
        self.heads = _check.integer(heads, "heads", minimum=1)
        self.out_features = _check.integer(out_features, "out_features", minimum=1)
        self.concat = bool(concat)
        self.negative_slope = _check.real(negative_slope, "negative_slope")
        dt = _dtype(dtype)
        rng = np.random.default_rng(_check.seed_value(seed) + 7)
        self.lin = Linear(in_features, self.heads * self.out_features, bias=False, seed=seed, dtype=dtype)
        self.att_src = Tensor(_glorot(rng, self.out_features, 1, (self.heads, self.out_features), dt), requires_grad=True)
        self.att_dst = Tensor(_glorot(rng, self.out_features, 1, (self.heads, self.out_features), dt), requires_grad=True)
        width = self.heads * self.out_features if self.concat else self.out_features
        self.bias = Tensor(np.zeros((1, width), dt), requires_grad=True) if bias else None

    def forward(self, graph, x):
        h = ag.reshape(self.lin(x), (graph.num_nodes, self.heads, self.out_features))
        out = ag.gat_aggregate(graph, h, self.att_src, self.att_dst, self.negative_slope)
        if self.concat:
            out = ag.reshape(out, (graph.num_nodes, self.heads * self.out_features))
        else:
            out = ag.mean(out, axis=1)
        return out if self.bias is None else ag.add(out, self.bias)


class ReLU(Module):
    def forward(self, x):
        return ag.relu(x)


class ELU(Module):
    def __init__(self, alpha: float = 1.0):
        self.alpha = alpha

    def forward(self, x):
        return ag.elu(x, self.alpha)


class Dropout(Module):
    """Inverted dropout in training mode, identity in eval mode; draws from its own seeded generator."""

    def __init__(self, p: float = 0.5, *, seed: int = 0):
        self.p = _check.real(p, "p", minimum=0.0, maximum=1.0, strict_max=True)
        self.rng = np.random.default_rng(_check.seed_value(seed))

    def forward(self, x):
        return ag.dropout(x, self.p, self.rng, training=self.training)


class Sequential(Module):
    """Apply layers in order; graph layers (GCNConv, SAGEConv, GATConv) receive ``(graph, x)``, others ``x``."""

    _GRAPH_LAYERS = (GCNConv, SAGEConv, GATConv)

    def __init__(self, *layers):
        for i, layer in enumerate(layers):
            if not isinstance(layer, Module):
                raise TypeError(f"layers[{i}]: expected a fastgnn.nn.Module, got {type(layer).__name__}")
        self._children = list(layers)

    def __len__(self):
        return len(self._children)

    def __getitem__(self, i):
        return self._children[i]

    def forward(self, graph, x):
        for layer in self._children:
            x = layer(graph, x) if isinstance(layer, self._GRAPH_LAYERS) else layer(x)
        return x
