"""A small reverse-mode automatic differentiation over NumPy arrays.

Each operation returns a :class:`Tensor` that remembers its inputs and a closure computing their
gradients; :meth:`Tensor.backward` walks the recorded graph in reverse topological order. It exists to
train the GNN encoders in :mod:`fastgnn.nn`: the heavy products go through the compiled sparse kernel
(:func:`spmm`), the rest are vectorised NumPy. Every operation is checked against finite differences in
``tests/test_autograd.py``.

Loss kernels that already return exact gradients enter the graph through :func:`from_gradients`.
"""
from __future__ import annotations

import numpy as np

from . import _autograd_device as _ad
from . import _check, backend
from .graph import Graph, _check_graph, spmm_scaled

__all__ = [
    "Tensor", "RowSparseGrad", "SparseMatrix", "tensor", "no_grad_value",
    "add", "sub", "mul", "matmul", "neg", "relu", "leaky_relu", "elu", "softmax", "log_softmax", "dropout",
    "l2_normalize", "concat", "mean", "sum", "reshape", "spmm", "gcn_propagate", "gat_aggregate", "embedding",
    "from_gradients",
]


class RowSparseGrad:
    """A gradient that touches only some rows: ``dense[rows] += values`` (rows may repeat)."""

    __slots__ = ("rows", "values", "shape")
    __array_ufunc__ = None  # ndarray + RowSparseGrad defers to __radd__

    def __init__(self, rows, values, shape):
        self.rows = np.asarray(rows, np.int64)
        self.values = np.asarray(values)
        self.shape = tuple(shape)

    def to_dense(self, dtype=None):
        out = np.zeros(self.shape, dtype or self.values.dtype)
        np.add.at(out, self.rows, self.values)
        return out

    def coalesce(self):
        """``(unique_rows, summed_values)``."""
        uniq, inv = np.unique(self.rows, return_inverse=True)
        vals = np.zeros((uniq.size,) + self.shape[1:], self.values.dtype)
        np.add.at(vals, inv.ravel(), self.values)
        return uniq, vals

    def __add__(self, other):
        if isinstance(other, RowSparseGrad):
            return RowSparseGrad(np.concatenate([self.rows, other.rows]),
                                 np.concatenate([self.values, other.values]), self.shape)
        out = np.array(other, copy=True)
        np.add.at(out, self.rows, self.values)
        return out

    __radd__ = __add__


class SparseMatrix:
    """A constant sparse operand of :func:`matmul` (sparse node features): ``M diag(col_scale)``.

    ``M`` is held as CSR arrays and products run through the compiled CSR kernel; ``col_scale`` (None: ones)
    is how a feature mask is applied without copying ``M``. The transpose, needed by the backward
    ``dB = diag(col_scale) Mᵀ G``, is built on first use and shared by the copies of :meth:`scale_columns`.
    """

    __slots__ = ("indptr", "indices", "data", "shape", "col_scale", "_shared", "_device_scale")

    def __init__(self, matrix):
        csr = matrix.tocsr()
        self.shape = tuple(csr.shape)
        self.indptr = np.ascontiguousarray(csr.indptr, dtype=np.int64)
        self.indices = np.ascontiguousarray(csr.indices, dtype=np.int32 if self.shape[1] < 2**31 - 1 else np.int64)
        self.data = np.ascontiguousarray(csr.data)
        self.col_scale = None
        self._shared = {}
        self._device_scale = None

    @property
    def nnz(self):
        return int(self.data.size)

    def scale_columns(self, scale) -> "SparseMatrix":
        """``M diag(scale)`` sharing ``M``'s arrays (and its transpose)."""
        out = object.__new__(SparseMatrix)
        for name in ("indptr", "indices", "data", "shape", "_shared"):
            setattr(out, name, getattr(self, name))
        out.col_scale = np.ascontiguousarray(scale)
        out._device_scale = None
        return out

    def tocsr(self):
        """The scaled matrix as a scipy CSR matrix (a copy)."""
        import scipy.sparse as sp

        data = self.data if self.col_scale is None else self.data * self.col_scale[self.indices]
        return sp.csr_matrix((data, self.indices.copy(), self.indptr.copy()), shape=self.shape)

    def _transpose(self):
        if "T" not in self._shared:
            import scipy.sparse as sp

            t = sp.csr_matrix((self.data, self.indices, self.indptr), shape=self.shape).T.tocsr()
            self._shared["T"] = (np.ascontiguousarray(t.indptr, dtype=np.int64),
                                 np.ascontiguousarray(t.indices, dtype=self.indices.dtype), t.data)
        return self._shared["T"]

    def _product(self, X, transpose=False):
        """``(M diag(s)) X``, or ``diag(s) Mᵀ X`` with ``transpose``, for a C-contiguous 2-d ``X``."""
        indptr, indices, data = self._transpose() if transpose else (self.indptr, self.indices, self.data)
        n = indptr.size - 1
        out = np.empty((n, X.shape[1]), X.dtype)
        data = data.astype(X.dtype, copy=False)
        if self.col_scale is None:
            mode, r, c = 0, np.ones(0, X.dtype), np.ones(0, X.dtype)
        else:
            s = self.col_scale.astype(X.dtype, copy=False)
            mode, r, c = 1, (s if transpose else np.ones(n, X.dtype)), (np.ones(X.shape[0], X.dtype) if transpose else s)
        backend.kernels("sparse", "cpu").spmm_csr(indptr, indices, data, True, mode, r, c, r, False, X, out)
        return out


class Tensor:
    """An array with an optional gradient and the record of how it was computed.

    Parameters
    ----------
    data : array-like
        Stored as a float32 (default) or float64 ndarray.
    requires_grad : bool
        Leaf tensors with ``requires_grad`` receive ``.grad`` from :meth:`backward`.
    """

    __slots__ = ("data", "grad", "requires_grad", "_parents", "_backward", "name")
    __array_priority__ = 100

    def __init__(self, data, requires_grad: bool = False, name: str | None = None, _parents=(), _backward=None):
        if _ad.on_device(data):  # a CUDA device array stays on the device (see fastgnn/_autograd_device.py)
            arr = _check.device_array(data, "data")
        else:
            arr = np.asarray(data)
            if arr.dtype not in (np.float32, np.float64):
                arr = arr.astype(np.float32)
        self.data = arr
        self.grad = None
        self.requires_grad = bool(requires_grad or any(p.requires_grad for p in _parents))
        self._parents = tuple(_parents) if self.requires_grad else ()
        self._backward = _backward if self.requires_grad else None
        self.name = name

    @property
    def shape(self):
        return self.data.shape

    @property
    def dtype(self):
        return self.data.dtype

    @property
    def ndim(self):
        return self.data.ndim

    @property
    def on_device(self) -> bool:
        """Whether ``data`` is a CUDA device array."""
        return _ad.on_device(self.data)

    def numpy(self) -> np.ndarray:
        """The values as a host array (a copy from the device for a device tensor)."""
        return _ad.to_host(self.data)

    def item(self) -> float:
        return float(_ad.to_host(self.data).reshape(()))

    def __repr__(self):
        return f"Tensor(shape={self.shape}, dtype={self.dtype}, requires_grad={self.requires_grad})"

    def zero_grad(self):
        self.grad = None

    def _accumulate(self, g):
        if not self.requires_grad:
            return
        if _ad.on_device(g):  # the gradient is this tensor's own copy, then summed into in place
            self.grad = _ad.copy(g) if self.grad is None else _ad.add_into(self.grad, g)
        elif self.grad is None:
            self.grad = g if isinstance(g, RowSparseGrad) else np.array(g, dtype=self.dtype, copy=True)
        elif isinstance(self.grad, RowSparseGrad) and not isinstance(g, RowSparseGrad):
            self.grad = self.grad + np.asarray(g, self.dtype)
        else:
            self.grad = self.grad + g

    def backward(self, grad=None):
        """Accumulate d(self)/d(leaf) into every leaf's ``.grad``.

        ``grad`` defaults to 1 for a scalar; a non-scalar needs it explicitly.
        """
        if not self.requires_grad:
            raise ValueError("backward: this tensor does not require a gradient (no input had requires_grad=True)")
        if grad is None:
            if self.data.size != 1:
                raise ValueError(f"grad: backward of a non-scalar tensor of shape {self.shape} needs an explicit grad")
            grad = np.ones(self.shape, self.dtype)
        grad = _ad.as_device(grad, self.dtype) if self.on_device else np.asarray(_ad.to_host(grad), self.dtype)
        if grad.shape != self.shape:
            raise ValueError(f"grad: expected shape {self.shape}, got {grad.shape}")
        order = _topological(self)
        grads = {id(self): grad}
        for node in order:
            g = grads.pop(id(node), None)
            if g is None:
                continue
            if node._backward is None:  # a leaf
                node._accumulate(g)
                continue
            if isinstance(g, RowSparseGrad):  # only leaves keep row-sparse gradients
                g = g.to_dense(node.dtype)
            for parent, pg in zip(node._parents, node._backward(g)):
                if pg is None or not parent.requires_grad:
                    continue
                pg = _same_side(pg, parent)
                key = id(parent)
                if key in grads:
                    grads[key] = _ad.plus(grads[key], pg) if _ad.on_device(pg) else grads[key] + pg
                else:
                    grads[key] = pg

    # operators
    def __add__(self, other):
        return add(self, other)

    def __radd__(self, other):
        return add(other, self)

    def __sub__(self, other):
        return sub(self, other)

    def __rsub__(self, other):
        return sub(other, self)

    def __mul__(self, other):
        return mul(self, other)

    def __rmul__(self, other):
        return mul(other, self)

    def __matmul__(self, other):
        return matmul(self, other)

    def __neg__(self):
        return neg(self)


def _same_side(g, parent):
    """A gradient on the side (host or device) of the tensor it is for."""
    if parent.on_device:
        if isinstance(g, RowSparseGrad):
            g = g.to_dense(parent.dtype)
        return g if _ad.on_device(g) else _ad.upload(g, parent.dtype)
    return _ad.to_host(g) if _ad.on_device(g) else g


def _device_pair(a, b, op):
    """Both operands' arrays on the device, of the device operand's dtype (a host operand is uploaded)."""
    if a.on_device and b.on_device and a.dtype != b.dtype:
        raise TypeError(f"{op}: device operands of different dtypes ({a.dtype} and {b.dtype})")
    dtype = a.dtype if a.on_device else b.dtype
    return _ad.as_device(a.data, dtype), _ad.as_device(b.data, dtype)


def _topological(root):
    order, seen = [], set()
    stack = [(root, False)]
    while stack:
        node, done = stack.pop()
        if done:
            order.append(node)
            continue
        if id(node) in seen:
            continue
        seen.add(id(node))
        stack.append((node, True))
        for p in node._parents:
            if id(p) not in seen:
                stack.append((p, False))
    return order[::-1]


def tensor(x, requires_grad=False, name=None) -> Tensor:
    """Wrap ``x`` (a Tensor is returned as is)."""
    return x if isinstance(x, Tensor) else Tensor(x, requires_grad=requires_grad, name=name)


def no_grad_value(x):
    """The array behind a Tensor (or ``x`` itself; a device array stays one)."""
    if isinstance(x, Tensor):
        return x.data
    return x if _ad.on_device(x) else np.asarray(x)


def _operands(a, b):
    """Both operands as Tensors; a Python number takes the other operand's dtype (as in PyTorch: a float32
    tensor times 2.5 stays float32)."""
    if isinstance(b, Tensor) and isinstance(a, (int, float)):
        return Tensor(np.asarray(a, b.dtype)), b
    if isinstance(a, Tensor) and isinstance(b, (int, float)):
        return a, Tensor(np.asarray(b, a.dtype))
    return tensor(a), tensor(b)


def _unbroadcast(g, shape):
    """Sum ``g`` down to ``shape`` (the reverse of NumPy broadcasting)."""
    if g.shape == shape:
        return g
    while g.ndim > len(shape):
        g = g.sum(axis=0)
    for axis, size in enumerate(shape):
        if size == 1 and g.shape[axis] != 1:
            g = g.sum(axis=axis, keepdims=True)
    return g


def _wrap(value, parents, backward):
    return Tensor(value, _parents=parents, _backward=backward)


def _kernels():
    return backend.kernels("autograd", "cpu")


# ---------------------------------------------------------------------------- elementwise
def add(a, b) -> Tensor:
    """``a + b`` with NumPy broadcasting (a bias row broadcasts over rows)."""
    a, b = _operands(a, b)
    if a.on_device or b.on_device:
        A, B = _device_pair(a, b, "add")
        return _wrap(_ad.broadcast_add(A, B), (a, b),
                     lambda g: (_ad.unbroadcast(g, a.shape), _ad.unbroadcast(g, b.shape)))
    return _wrap(a.data + b.data, (a, b), lambda g: (_unbroadcast(g, a.shape), _unbroadcast(g, b.shape)))


def sub(a, b) -> Tensor:
    a, b = _operands(a, b)
    if a.on_device or b.on_device:
        A, B = _device_pair(a, b, "sub")
        return _wrap(_ad.broadcast_add(A, B, -1.0), (a, b),
                     lambda g: (_ad.unbroadcast(g, a.shape), _ad.scaled(_ad.unbroadcast(g, b.shape), -1.0)))
    return _wrap(a.data - b.data, (a, b), lambda g: (_unbroadcast(g, a.shape), -_unbroadcast(g, b.shape)))


def mul(a, b) -> Tensor:
    """Elementwise ``a * b`` with broadcasting."""
    a, b = _operands(a, b)
    if a.on_device or b.on_device:
        return _mul_device(a, b)
    return _wrap(a.data * b.data, (a, b),
                 lambda g: (_unbroadcast(g * b.data, a.shape), _unbroadcast(g * a.data, b.shape)))


def _mul_device(a, b):
    """``a * b`` with a device operand: equal shapes, or a host scalar times a device tensor."""
    if a.on_device and b.on_device or a.shape == b.shape:
        A, B = _device_pair(a, b, "mul")
        if A.shape != B.shape:
            raise ValueError(f"mul: device tensors of shapes {a.shape} and {b.shape}: the device path multiplies "
                             "equal shapes or by a scalar")
        return _wrap(_ad.product(A, B), (a, b), lambda g: (_ad.product(g, B), _ad.product(g, A)))
    big, small = (a, b) if a.on_device else (b, a)
    if small.data.size != 1:
        raise ValueError(f"mul: device tensors of shapes {a.shape} and {b.shape}: the device path multiplies "
                         "equal shapes or by a scalar")
    s = float(np.asarray(small.data).reshape(()))
    X = big.data

    def back(g):
        dbig = _ad.scaled(g, s)
        dsmall = None
        if small.requires_grad:  # a scalar's gradient Σ g·x, on the host
            dsmall = np.asarray((_ad.to_host(g).astype(np.float64) * _ad.to_host(X)).sum(),
                                small.dtype).reshape(small.shape)
        return (dbig, dsmall) if big is a else (dsmall, dbig)

    return _wrap(_ad.scaled(X, s), (a, b), back)


def neg(a) -> Tensor:
    a = tensor(a)
    if a.on_device:
        return _wrap(_ad.scaled(a.data, -1.0), (a,), lambda g: (_ad.scaled(g, -1.0),))
    return _wrap(-a.data, (a,), lambda g: (-g,))


def _is_sparse(x):
    return isinstance(x, SparseMatrix) or (hasattr(x, "tocsr") and hasattr(x, "nnz"))


def matmul(a, b) -> Tensor:
    """``a @ b`` for 2-d operands: ``dA = G Bᵀ``, ``dB = Aᵀ G`` (each only when needed).

    ``a`` may be a constant sparse matrix (sparse node features: scipy or :class:`SparseMatrix`): then
    ``dB = Aᵀ G`` is a sparse product too.
    """
    if _is_sparse(a):
        b = tensor(b)
        if b.ndim != 2:
            raise ValueError(f"matmul: expected a 2-d right operand for a sparse left one, got shape {b.shape}")
        if a.shape[1] != b.shape[0]:
            raise ValueError(f"matmul: inner dimensions differ ({a.shape} @ {b.shape})")
        a = a if isinstance(a, SparseMatrix) else SparseMatrix(a)
        if b.on_device:
            B = _ad.as_device(b.data)
            return _wrap(_ad.sparse_product(a, B), (b,), lambda g: (_ad.sparse_product(a, g, transpose=True),))
        out = a._product(np.ascontiguousarray(b.data))
        return _wrap(out, (b,), lambda g: (a._product(np.ascontiguousarray(g, dtype=b.dtype), transpose=True),))
    a, b = tensor(a), tensor(b)
    if a.ndim != 2 or b.ndim != 2:
        raise ValueError(f"matmul: expected 2-d operands, got shapes {a.shape} and {b.shape}")
    if a.shape[1] != b.shape[0]:
        raise ValueError(f"matmul: inner dimensions differ ({a.shape} @ {b.shape})")
    if a.on_device or b.on_device:
        A, B = _device_pair(a, b, "matmul")
        return _wrap(_ad.matmul(A, B), (a, b), lambda g: (_ad.matmul(g, B, trans_b=True) if a.requires_grad else None,
                                                          _ad.matmul(A, g, trans_a=True) if b.requires_grad else None))
    return _wrap(a.data @ b.data, (a, b), lambda g: (g @ b.data.T if a.requires_grad else None,
                                                     a.data.T @ g if b.requires_grad else None))


def relu(x) -> Tensor:
    """``max(x, 0)``; the gradient is 1 where ``x > 0`` and 0 elsewhere."""
    x = tensor(x)
    if x.on_device:
        out, back = _ad.relu(_ad.as_device(x.data))
        return _wrap(out, (x,), lambda g: (back(g),))
    k = _kernels()
    xd = np.ascontiguousarray(x.data)
    out = np.empty_like(xd)
    k.relu_forward(xd.reshape(-1), out.reshape(-1))

    def back(g):
        g = np.ascontiguousarray(g, dtype=x.dtype)
        dx = np.empty_like(out)
        k.relu_backward(g.reshape(-1), out.reshape(-1), dx.reshape(-1))
        return (dx,)

    return _wrap(out, (x,), back)


def leaky_relu(x, negative_slope: float = 0.01) -> Tensor:
    """``x`` if ``x > 0`` else ``negative_slope * x``."""
    x = tensor(x)
    slope = _check.real(negative_slope, "negative_slope")
    if x.on_device:
        out, back = _ad.leaky_relu(_ad.as_device(x.data), slope)
        return _wrap(out, (x,), lambda g: (back(g),))
    factor = np.where(x.data > 0, 1.0, slope).astype(x.dtype)
    return _wrap(x.data * factor, (x,), lambda g: (g * factor,))


def elu(x, alpha: float = 1.0) -> Tensor:
    """``x`` if ``x > 0`` else ``alpha * (exp(x) - 1)``."""
    x = tensor(x)
    alpha = _check.real(alpha, "alpha", minimum=0.0)
    if x.on_device:
        out, back = _ad.elu(_ad.as_device(x.data), alpha)
        return _wrap(out, (x,), lambda g: (back(g),))
    xd = np.ascontiguousarray(x.data)
    out, deriv = np.empty_like(xd), np.empty_like(xd)
    rows = (1, -1) if xd.ndim == 0 else (xd.shape[0], -1)
    _kernels().elu_rows(xd.reshape(rows), alpha, xd.dtype == np.float32, out.reshape(rows), deriv.reshape(rows))
    return _wrap(out, (x,), lambda g: (g * deriv,))


def _device_axis(axis, ndim):
    """``axis`` as an index in ``range(ndim)`` (negative counts from the end), for the device kernels."""
    if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
        raise TypeError(f"axis: expected an integer, got {type(axis).__name__}")
    if not -ndim <= axis < ndim:
        raise ValueError(f"axis: {axis} is out of range for a tensor of {ndim} dimensions")
    return int(axis) % ndim


def softmax(x, axis: int = -1) -> Tensor:
    """Row softmax (max-shifted): ``dX = Y ⊙ (G − Σ G⊙Y)``."""
    x = tensor(x)
    if x.on_device:
        y, back = _ad.softmax(_ad.as_device(x.data), _device_axis(axis, x.ndim), log=False)
        return _wrap(y, (x,), lambda g: (back(g),))
    z = x.data - x.data.max(axis=axis, keepdims=True)
    e = np.exp(z)
    y = e / e.sum(axis=axis, keepdims=True)
    return _wrap(y, (x,), lambda g: (y * (g - (g * y).sum(axis=axis, keepdims=True)),))


def log_softmax(x, axis: int = -1) -> Tensor:
    """``x − logsumexp(x)`` per row: ``dX = G − softmax(x) Σ G``."""
    x = tensor(x)
    if x.on_device:
        y, back = _ad.softmax(_ad.as_device(x.data), _device_axis(axis, x.ndim), log=True)
        return _wrap(y, (x,), lambda g: (back(g),))
    z = x.data - x.data.max(axis=axis, keepdims=True)
    lse = np.log(np.exp(z).sum(axis=axis, keepdims=True))
    out = z - lse
    p = np.exp(out)
    return _wrap(out, (x,), lambda g: (g - p * g.sum(axis=axis, keepdims=True),))


def dropout(x, p: float, rng: np.random.Generator, training: bool = True) -> Tensor:
    """Inverted dropout: zero each entry with probability ``p`` (drawn from ``rng``), scale the rest by 1/(1−p)."""
    x = tensor(x)
    p = _check.real(p, "p", minimum=0.0, maximum=1.0, strict_max=True)
    if not training or p == 0.0:
        return x
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng: expected a numpy.random.Generator (seeded), got {type(rng).__name__}")
    keep = (rng.random(x.shape) >= p).astype(x.dtype) / x.dtype.type(1.0 - p)
    if x.on_device:  # the host draw (so both backends drop the same entries), uploaded
        K = _ad.upload(keep)
        return _wrap(_ad.product(_ad.as_device(x.data), K), (x,), lambda g: (_ad.product(g, K),))
    return _wrap(x.data * keep, (x,), lambda g: (g * keep,))


def l2_normalize(x, eps: float = 1e-12) -> Tensor:
    """Rows scaled to unit norm: ``y = x / max(‖x‖, eps)``; ``dX = (G − y (y·G)) / max(‖x‖, eps)``."""
    x = tensor(x)
    if x.on_device and x.ndim >= 1:
        out, back = _ad.l2_normalize(_ad.as_device(x.data), eps)
        return _wrap(out, (x,), lambda g: (back(g),))
    if x.on_device:
        return _ad.via_host(l2_normalize, [x], eps)
    norm = np.sqrt((x.data.astype(np.float64) ** 2).sum(axis=-1, keepdims=True))
    denom = np.maximum(norm, eps).astype(x.dtype)
    y = x.data / denom
    small = norm < eps

    def back(g):
        proj = np.where(small, 0.0, (g * y).sum(axis=-1, keepdims=True)).astype(x.dtype)
        return ((g - y * proj) / denom,)

    return _wrap(y, (x,), back)


def concat(tensors, axis: int = -1) -> Tensor:
    """Concatenate along ``axis``; the gradient is split back."""
    ts = [tensor(t) for t in tensors]
    if not ts:
        raise ValueError("tensors: need at least one tensor to concatenate")
    if any(t.on_device for t in ts):
        dev = next(t for t in ts if t.on_device)
        if any(t.ndim != dev.ndim or (t.on_device and t.dtype != dev.dtype) for t in ts):
            raise ValueError(f"tensors: expected tensors of one rank (and one dtype on the device), got shapes "
                             f"{[t.shape for t in ts]} and dtypes {[str(t.dtype) for t in ts]}")
        ax = _device_axis(axis, dev.ndim)
        if any(t.shape[:ax] + t.shape[ax + 1:] != dev.shape[:ax] + dev.shape[ax + 1:] for t in ts):
            raise ValueError(f"tensors: shapes {[t.shape for t in ts]} differ off axis {axis}")
        out, back = _ad.concat([_ad.as_device(t.data, dev.dtype) for t in ts], ax)
        return _wrap(out, tuple(ts), back)
    sizes = np.cumsum([t.shape[axis] for t in ts])[:-1]
    return _wrap(np.concatenate([t.data for t in ts], axis=axis), tuple(ts),
                 lambda g: tuple(np.split(g, sizes, axis=axis)))


def mean(x, axis=None) -> Tensor:
    """Mean over ``axis`` (all entries when None)."""
    x = tensor(x)
    if x.on_device:
        if x.ndim == 3 and axis in (1, -2):  # GAT's mean over heads
            out, back = _ad.mean_heads(_ad.as_device(x.data))
            return _wrap(out, (x,), lambda g: (back(g),))
        if axis is not None and not isinstance(axis, (int, np.integer)):  # several axes: through the host
            return _ad.via_host(mean, [x], axis)
        out, back = _ad.reduce_axis(_ad.as_device(x.data), None if axis is None else _device_axis(axis, x.ndim),
                                    mean=True)
        return _wrap(out, (x,), lambda g: (back(g),))
    out = x.data.mean(axis=axis)
    count = x.data.size if axis is None else x.shape[axis]

    def back(g):
        g = np.asarray(g, x.dtype)
        if axis is not None:
            g = np.expand_dims(g, axis)
        return (np.broadcast_to(g / x.dtype.type(count), x.shape).copy(),)

    return _wrap(np.asarray(out, x.dtype), (x,), back)


def sum(x, axis=None) -> Tensor:  # noqa: A001 - mirrors numpy
    x = tensor(x)
    if x.on_device:
        if axis is not None and not isinstance(axis, (int, np.integer)):  # several axes: through the host
            return _ad.via_host(sum, [x], axis)
        out, back = _ad.reduce_axis(_ad.as_device(x.data), None if axis is None else _device_axis(axis, x.ndim),
                                    mean=False)
        return _wrap(out, (x,), lambda g: (back(g),))

    def back(g):
        g = np.asarray(g, x.dtype)
        if axis is not None:
            g = np.expand_dims(g, axis)
        return (np.broadcast_to(g, x.shape).copy(),)

    return _wrap(np.asarray(x.data.sum(axis=axis), x.dtype), (x,), back)


def reshape(x, shape) -> Tensor:
    x = tensor(x)
    if x.on_device:
        shape = _full_shape(shape, x.data.size)
        return _wrap(x.data.reshape(shape), (x,), lambda g: (g.reshape(x.shape),))
    return _wrap(x.data.reshape(shape), (x,), lambda g: (g.reshape(x.shape),))


# ---------------------------------------------------------------------------- graph operations
def _full_shape(shape, size):
    """``shape`` with its one ``-1`` (if any) resolved, as NumPy's reshape does."""
    shape = (shape,) if isinstance(shape, (int, np.integer)) else tuple(int(v) for v in shape)
    if -1 in shape:
        known = int(np.prod([v for v in shape if v != -1]))
        shape = tuple(size // max(known, 1) if v == -1 else v for v in shape)
    if int(np.prod(shape)) != size:
        raise ValueError(f"shape: cannot reshape {size} entries into {shape}")
    return shape


def _as_2d(a):
    if _ad.on_device(a):
        return a.reshape(a.shape[0], a.size // max(a.shape[0], 1))
    return np.ascontiguousarray(a.reshape(a.shape[0], -1))


def spmm(graph: Graph, x, norm: str | None = None) -> Tensor:
    """``Â X`` through the compiled kernel; backward ``Âᵀ G`` with ``(R A C)ᵀ = C Aᵀ R``."""
    graph = _check_graph(graph)
    x = tensor(x)
    _check.choice(norm, "norm", (None, "sym", "rw"))
    if x.shape[0] != graph.num_nodes:
        raise ValueError(f"x: expected {graph.num_nodes} rows (graph.num_nodes), got {x.shape[0]}")
    gt = graph.transpose()
    if x.on_device:
        dr, dc = graph._device_scales(norm, x.dtype)
        xd = _as_2d(_ad.as_device(x.data))
        out = _ad.spmm_scaled(graph, xd, dr, dc).reshape(x.shape)
        return _wrap(out, (x,), lambda g: (_ad.spmm_scaled(gt, _as_2d(g), dc, dr).reshape(x.shape),))
    if norm is None:
        r = c = None
    else:
        r, c = graph.norm_scales(norm, x.dtype)
        if norm == "rw":
            c = None
    xd = _as_2d(x.data)
    out = spmm_scaled(graph, xd, r, c).reshape(x.shape)

    def back(g):
        return (spmm_scaled(gt, _as_2d(np.asarray(g, x.dtype)), c, r).reshape(x.shape),)

    return _wrap(out, (x,), back)


def gcn_propagate(graph: Graph, x) -> Tensor:
    """Kipf & Welling's ``D̃^-1/2 (A + I) D̃^-1/2 X`` with ``D̃ = D + I``, as one op over the compiled kernel."""
    graph = _check_graph(graph)
    x = tensor(x)
    if x.shape[0] != graph.num_nodes:
        raise ValueError(f"x: expected {graph.num_nodes} rows (graph.num_nodes), got {x.shape[0]}")
    if x.on_device:
        dr, dr2 = graph._device_scales("gcn", x.dtype)
        gt = graph.transpose()
        xd = _as_2d(_ad.as_device(x.data))
        out = _ad.spmm_scaled(graph, xd, dr, dr, dr2)

        def back_device(g):
            return (_ad.spmm_scaled(gt, _as_2d(g), dr, dr, dr2).reshape(x.shape),)

        return _wrap(out.reshape(x.shape), (x,), back_device)
    r = graph.gcn_scale(x.dtype)
    r2 = r * r
    xd = _as_2d(x.data)
    out = spmm_scaled(graph, xd, r, r, self_scale=r2)
    gt = graph.transpose()

    def back(g):
        return (spmm_scaled(gt, _as_2d(np.asarray(g, x.dtype)), r, r, self_scale=r2).reshape(x.shape),)

    return _wrap(out.reshape(x.shape), (x,), back)


def gat_aggregate(graph: Graph, h, att_src, att_dst, negative_slope: float = 0.2) -> Tensor:
    """Graph-attention aggregation (Veličković et al. 2018) over arcs plus self-loops.

    For every head: ``e_ij = LeakyReLU(a_src·h_j + a_dst·h_i)``, ``α_ij = softmax_j∈N(i)∪{i}(e_ij)``,
    ``out_i = Σ_j α_ij h_j``.

    Parameters
    ----------
    h : Tensor [N, H, F]
    att_src, att_dst : Tensor [H, F]

    Returns
    -------
    Tensor [N, H, F]
    """
    graph = _check_graph(graph)
    h, att_src, att_dst = tensor(h), tensor(att_src), tensor(att_dst)
    n = graph.num_nodes
    if h.ndim != 3 or h.shape[0] != n:
        raise ValueError(f"h: expected shape [{n}, heads, features], got {h.shape}")
    H, F = h.shape[1], h.shape[2]
    for name, a in (("att_src", att_src), ("att_dst", att_dst)):
        if a.shape != (H, F):
            raise ValueError(f"{name}: expected shape [{H}, {F}], got {a.shape}")
    slope = _check.real(negative_slope, "negative_slope")
    if h.on_device or att_src.on_device or att_dst.on_device:
        return _gat_device(graph, h, att_src, att_dst, slope)
    indptr, cols = graph.with_self_loops()
    rows = np.repeat(np.arange(n), np.diff(indptr))
    hd = h.data
    s = np.einsum("nhf,hf->nh", hd, att_src.data)  # source scores [N, H]
    t = np.einsum("nhf,hf->nh", hd, att_dst.data)  # target scores [N, H]
    z = s[cols] + t[rows]  # [E', H]
    act = np.where(z > 0, 1.0, slope).astype(hd.dtype)
    e = z * act
    starts = indptr[:-1]
    emax = np.maximum.reduceat(e, starts, axis=0) if n else e
    ex = np.exp(e - emax[rows])
    denom = np.add.reduceat(ex, starts, axis=0) if n else ex
    alpha = ex / denom[rows]  # [E', H]
    hj = hd[cols]  # [E', H, F]
    # rows are sorted and every row has its self-loop, so per-row sums are contiguous segments
    out = np.add.reduceat(alpha[:, :, None] * hj, starts, axis=0) if n else np.zeros_like(hd)

    def back(g):
        g = np.asarray(g, hd.dtype)
        gi = g[rows]  # [E', H, F]
        dalpha = (gi * hj).sum(-1)  # [E', H]
        dh = np.zeros_like(hd)
        np.add.at(dh, cols, alpha[:, :, None] * gi)
        weighted = np.add.reduceat(alpha * dalpha, starts, axis=0)  # Σ_k α_ik dα_ik per row
        de = alpha * (dalpha - weighted[rows])
        dz = de * act
        ds = np.zeros((n, H), hd.dtype)
        dt = np.zeros((n, H), hd.dtype)
        np.add.at(ds, cols, dz)
        np.add.at(dt, rows, dz)
        dh += ds[:, :, None] * att_src.data[None] + dt[:, :, None] * att_dst.data[None]
        da_src = np.einsum("nh,nhf->hf", ds, hd)
        da_dst = np.einsum("nh,nhf->hf", dt, hd)
        return dh, da_src, da_dst

    return _wrap(out, (h, att_src, att_dst), back)


def _gat_device(graph, h, att_src, att_dst, slope):
    """:func:`gat_aggregate` on the device (``kernels/cuda/gat.py``); the self-loop CSR is made on the device once
    per graph (:meth:`Graph._device_self_loops`)."""
    k = backend.kernels("gat", "cuda")
    cached = graph._device_self_loops()
    indptr, cols = cached[0], cached[1]
    dtype = h.dtype if h.on_device else att_src.dtype if att_src.on_device else att_dst.dtype
    H, As, Ad = (_ad.as_device(t.data, dtype) for t in (h, att_src, att_dst))
    out, saved = k.gat_forward(indptr, cols, H, As, Ad, slope)

    def back(g):
        if cached[2] is None:  # the arcs grouped by column, sorted on the device once per graph
            cached[2] = k.gat_transpose(indptr, cols)
        return k.gat_backward(indptr, cols, H, As, Ad, saved, g, transpose=cached[2])

    return _wrap(out, (h, att_src, att_dst), back)


def embedding(table, ids) -> Tensor:
    """Rows ``table[ids]``; the table's gradient is row-sparse (:class:`RowSparseGrad`)."""
    table = tensor(table)
    if table.on_device:  # gathered on the device; the gradient is dense there (see fastgnn/_autograd_device.py)
        inp = _check.DeviceInputs()
        d = inp.ids(ids, "ids", upper=table.shape[0], ndim=None, what=f"table with {table.shape[0]} rows")
        inp.checks.run()
        out, back = _ad.embedding(_ad.as_device(table.data), d)
        return _wrap(out, (table,), lambda g: (back(g),))
    ids = _check.index_array(ids, "ids", upper=table.shape[0], ndim=None, what=f"table with {table.shape[0]} rows")
    shape = table.shape

    def back(g):
        g = np.asarray(g, table.dtype)
        return (RowSparseGrad(ids.ravel(), g.reshape(-1, *shape[1:]), shape),)

    return _wrap(table.data[ids], (table,), back)


def from_gradients(value, inputs, grads) -> Tensor:
    """Enter a loss kernel's result ``(value, grads)`` into the graph as a scalar op.

    ``grads[k]`` is d(value)/d(inputs[k]) (an array, a :class:`RowSparseGrad`, or None); on backward
    each is scaled by the incoming scalar gradient.
    """
    inputs = tuple(tensor(t) for t in inputs)
    if len(inputs) != len(grads):
        raise ValueError(f"grads: expected {len(inputs)} gradients (one per input), got {len(grads)}")
    for t, gr in zip(inputs, grads):
        if gr is not None and not isinstance(gr, RowSparseGrad) and np.shape(gr) != t.shape:
            raise ValueError(f"grads: gradient of shape {np.shape(gr)} does not match input of shape {t.shape}")
    dtype = inputs[0].dtype if inputs else np.float64

    def back(g):
        scale = float(np.asarray(g))
        out = []
        for gr in grads:
            if gr is None:
                out.append(None)
            elif isinstance(gr, RowSparseGrad):
                out.append(RowSparseGrad(gr.rows, gr.values * scale, gr.shape))
            elif _ad.on_device(gr):
                out.append(gr if scale == 1.0 else _ad.scaled(gr, scale))
            else:
                out.append(np.asarray(gr) * scale)
        return tuple(out)

    return _wrap(np.asarray(value, dtype), inputs, back)
