"""The CUDA paths of :mod:`fastgnn.autograd`: the same operations on numba device arrays.

A :class:`~fastgnn.autograd.Tensor` whose ``data`` is a device array keeps its forward values, its
backward closures' saved arrays and its gradients on the device; the encoders of :mod:`fastgnn.nn`
(GCN, GraphSAGE, GAT, Linear, ReLU/ELU, the GRACE projection head) then train without a host copy per
step. The operations run the kernels of ``kernels/cuda/autograd.py`` (GEMM, elementwise including
``leaky_relu``, row normalisation for ``l2_normalize``, column sums, ``sum``/``mean``/``softmax``/
``log_softmax`` along one axis and ``concat``), ``kernels/cuda/sparse.py`` (CSR products, with the graph's
arrays and scales on the device once per graph, or made there for a view built on the device) and
``kernels/cuda/gat.py`` (attention); ``embedding`` gathers rows on the device and its backward gives a dense
device gradient (the host gives a :class:`~fastgnn.autograd.RowSparseGrad`, which a device parameter
densifies anyway). The operations without a device kernel of their own (``sum``/``mean`` over several axes
at once; ``l2_normalize`` of a 0-d tensor) run through :func:`via_host`: their inputs are copied to the host,
the host operation runs, and its result and, on backward, its gradients are copied back — correct, but one
round trip each, which the built-in encoders never take.

Mixed operands: a host array meeting a device tensor is uploaded (a constant, such as node features);
gradients reach a host tensor as host arrays (see ``Tensor.backward``).
"""
from __future__ import annotations

import numpy as np

from . import _check, backend


def kernels():
    return backend.kernels("autograd", "cuda")


def _arrays():
    return backend.kernels("arrays", "cuda")


def on_device(x) -> bool:
    return _check.is_device_array(x)


def flat(x):
    return x.reshape(x.size)


def empty(shape, dtype):
    from numba import cuda

    return cuda.device_array((shape,) if isinstance(shape, (int, np.integer)) else tuple(shape), dtype=dtype)


def empty_like(x):
    return empty(x.shape, x.dtype)


def zeros(shape, dtype):
    out = empty(shape, dtype)
    if out.size:
        _arrays().fill(flat(out), 0)
    return out


def ones_like(x):
    out = empty_like(x)
    if out.size:
        _arrays().fill(flat(out), 1)
    return out


def upload(x, dtype=None):
    return _arrays().upload(np.asarray(x) if dtype is None else np.asarray(x, dtype))


def to_host(x):
    return x.copy_to_host() if on_device(x) else np.asarray(x)


def copy(x):
    """A device copy of ``x`` (device to device)."""
    out = empty_like(x)
    if x.size:
        out.copy_to_device(x)
    return out


def as_device(x, dtype=None):
    """``x`` itself when on the device (checked to be C-contiguous), else uploaded."""
    if on_device(x):
        arr = _check.device_array(x, "x", dtypes=None)
        if dtype is not None and np.dtype(arr.dtype) != np.dtype(dtype):
            raise TypeError(f"x: expected a device array of {np.dtype(dtype)}, got {arr.dtype}")
        if not arr.is_c_contiguous():
            raise TypeError("x: device tensors must be C-contiguous")
        return arr
    return upload(x, dtype)


# ---------------------------------------------------------------------------- elementwise
def plus(a, b):
    """``a + b`` of one shape, a new array."""
    out = empty_like(a)
    if a.size:
        kernels().add(flat(a), flat(b), flat(out))
    return out


def add_into(acc, g):
    """``acc += g`` in place."""
    if acc.size:
        kernels().axpy(1.0, flat(g), flat(acc))
    return acc


def scaled(x, alpha):
    out = empty_like(x)
    if x.size:
        kernels().scale(flat(x), float(alpha), flat(out))
    return out


def product(a, b):
    out = empty_like(a)
    if a.size:
        kernels().mul(flat(a), flat(b), flat(out))
    return out


def _row_broadcast(big, small):
    """``small`` broadcasts over ``big``'s rows: shapes ``[N, F]`` and ``[1, F]`` (or ``[F]``)."""
    return big.ndim == 2 and small.shape in ((1, big.shape[1]), (big.shape[1],))


def broadcast_add(a, b, sign=1.0):
    """``a + sign * b`` for equal shapes or a row vector broadcast over a matrix (either side)."""
    if a.shape == b.shape:
        if sign == 1.0:
            return plus(a, b)
        out = copy(a)
        if out.size:
            kernels().axpy(sign, flat(b), flat(out))
        return out
    if _row_broadcast(a, b):
        row = b.reshape(1, a.shape[1])
        out = empty_like(a)
        if a.size:
            kernels().add_row(a, row if sign == 1.0 else scaled(row, sign), out)
        return out
    if _row_broadcast(b, a):
        out = empty_like(b) if sign == 1.0 else scaled(b, sign)
        if b.size:
            kernels().add_row(b if sign == 1.0 else out, a.reshape(1, b.shape[1]), out)
        return out
    raise ValueError(f"add: device tensors of shapes {a.shape} and {b.shape}: the device path broadcasts only "
                     "a [1, F] row over an [N, F] matrix")


def unbroadcast(g, shape):
    """The device twin of ``autograd._unbroadcast`` for the broadcasts :func:`broadcast_add` makes."""
    shape = tuple(shape)
    if tuple(g.shape) == shape:
        return g
    if g.ndim == 2 and shape in ((1, g.shape[1]), (g.shape[1],)):
        out = empty((1, g.shape[1]), g.dtype)
        kernels().column_sums(g, out)  # zeros for no rows
        return out.reshape(shape)
    raise ValueError(f"unbroadcast: cannot reduce a device gradient of shape {g.shape} to {shape}")


def relu(x):
    k = kernels()
    out = empty_like(x)
    if x.size:
        k.relu_forward(flat(x), flat(out))

    def back(g):
        dx = empty_like(out)
        if out.size:
            k.relu_backward(flat(g), flat(out), flat(dx))
        return dx

    return out, back


def elu(x, alpha):
    out, deriv = empty_like(x), empty_like(x)
    if x.size:
        kernels().elu_forward(flat(x), float(alpha), flat(out), flat(deriv))
    return out, (lambda g: product(g, deriv))


def leaky_relu(x, slope):
    out, deriv = empty_like(x), empty_like(x)
    if x.size:
        kernels().leaky_forward(flat(x), float(slope), flat(out), flat(deriv))
    return out, (lambda g: product(g, deriv))


def l2_normalize(x, eps):
    """Rows over the last axis of ``x`` (at least 1-d) to unit norm, and the backward."""
    k = kernels()
    last = tuple(x.shape)[-1]  # the simulator's shapes take no negative index
    rows = (x.size // last if last else 0, last)
    out = empty_like(x)
    denom, proj_on = empty(rows[0], x.dtype), empty(rows[0], x.dtype)
    if x.size:
        k.l2_rows_forward(x.reshape(rows), eps, out.reshape(rows), denom, proj_on)

    def back(g):
        dx = empty_like(out)
        if dx.size:
            k.l2_rows_backward(g.reshape(rows), out.reshape(rows), denom, proj_on, dx.reshape(rows))
        return dx

    return out, back


def mean_heads(x):
    """``x.mean(axis=1)`` of an ``[N, H, F]`` device array, and its backward."""
    n, h, f = x.shape
    out = empty((n, f), x.dtype)
    if out.size:
        kernels().mean_axis1(x, out)

    def back(g):
        dx = empty((n, h, f), x.dtype)
        if dx.size:
            kernels().broadcast_axis1(g, h, dx)
        return dx

    return out, back


def _pq(shape, axis):
    """``(P, L, Q)``: the sizes before, along and after ``axis`` (an int already in range)."""
    P = int(np.prod(shape[:axis], dtype=np.int64))
    return P, int(shape[axis]), int(np.prod(shape[axis + 1:], dtype=np.int64))


def reduce_axis(x, axis, mean):
    """``x.sum(axis)`` or ``x.mean(axis)`` of a device array (float64 sums in axis order; ``axis`` None: all
    entries), and its backward."""
    shape = tuple(x.shape)
    P, L, Q = (1, x.size, 1) if axis is None else _pq(shape, axis)
    out_shape = () if axis is None else shape[:axis] + shape[axis + 1:]
    div = float(L) if mean else 1.0
    out = empty(out_shape, x.dtype)
    if P * Q:
        if L:
            kernels().axis_reduce(x.reshape(P, L, Q), div, out.reshape(P, Q))
        else:  # NumPy: an empty sum is 0, an empty mean NaN
            _arrays().fill(out.reshape(-1), np.nan if mean else 0)

    def back(g):
        dx = empty(shape, x.dtype)
        if dx.size:
            kernels().axis_spread(g.reshape(P, Q), div, dx.reshape(P, L, Q))
        return dx

    return out, back


def softmax(x, axis, log):
    """(Log-)softmax of a device array along ``axis`` (in range), and its backward."""
    P, L, Q = _pq(tuple(x.shape), axis)
    y = empty_like(x)
    if y.size:
        kernels().axis_softmax(x.reshape(P, L, Q), log, y.reshape(P, L, Q))

    def back(g):
        dx = empty_like(y)
        if dx.size:
            kernels().axis_softmax_back(g.reshape(P, L, Q), y.reshape(P, L, Q), log, dx.reshape(P, L, Q))
        return dx

    return y, back


def concat(xs, axis):
    """``np.concatenate(xs, axis)`` of device arrays of one dtype and rank (``axis`` in range), and its backward
    (the gradient split back)."""
    shape = list(xs[0].shape)
    sizes = [int(a.shape[axis]) for a in xs]
    shape[axis] = sum(sizes)
    out = empty(tuple(shape), xs[0].dtype)
    P, T, Q = _pq(tuple(shape), axis)
    offs = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
    k = kernels()
    for a, L, off in zip(xs, sizes, offs):
        if a.size:
            k.copy_block(a.reshape(P, L, Q), out.reshape(P, T, Q), off, True)

    def back(g):
        parts = []
        for a, L, off in zip(xs, sizes, offs):
            d = empty(tuple(a.shape), a.dtype)
            if d.size:
                k.copy_block(d.reshape(P, L, Q), g.reshape(P, T, Q), off, False)
            parts.append(d)
        return tuple(parts)

    return out, back


def embedding(table, ids):
    """``table[ids]`` of a device table [N, ...] and device int ids (any shape, checked in range), and its
    backward: the dense table gradient, each row the sum of its ids' gradient rows in order of occurrence
    (grouped by a stable radix sort: ``np.add.at``'s sums, bit for bit, with no atomics)."""
    N = table.shape[0]
    W = table.size // max(N, 1)
    flat_ids = ids.reshape(ids.size)
    B = flat_ids.shape[0]
    out = backend.kernels("trainer", "cuda").gather_rows(table.reshape(N, W), flat_ids)
    out = out.reshape(tuple(ids.shape) + tuple(table.shape[1:]))

    def back(g):
        dense = empty(tuple(table.shape), table.dtype)
        if dense.size:
            a = _arrays()
            keys, pos = a.sort_keys(flat_ids, bound=N)
            kernels().grouped_row_sums(g.reshape(B, W), pos, a.key_starts(keys, N), dense.reshape(N, W))
        return dense

    return out, back


def matmul(A, B, trans_a=False, trans_b=False):
    m = A.shape[1] if trans_a else A.shape[0]
    n = B.shape[0] if trans_b else B.shape[1]
    out = empty((m, n), A.dtype)
    kernels().matmul(A, B, out, trans_a=trans_a, trans_b=trans_b)  # an empty product writes zeros
    return out


def scale_columns(X, s):
    out = empty_like(X)
    if X.size:
        kernels().scale_columns(X, s, out)
    return out


# ---------------------------------------------------------------------------- sparse products
def spmm_scaled(graph, X, r, c, self_scale=None):
    """``diag(r) A diag(c) X`` on the device for ``[N, D]`` device ``X`` (``r``, ``c`` device vectors), plus
    ``diag(self_scale) X`` where given (a GCN's self-loops, in the same pass)."""
    indptr, indices, w = graph.device_arrays()
    out = empty_like(X)
    s = r if self_scale is None else self_scale
    backend.kernels("sparse", "cuda").launch_spmm(indptr, indices, w, graph._weighted, 1, r, c, s,
                                                  self_scale is not None, X, out)
    return out


def sparse_product(M, X, transpose=False):
    """``(M diag(s)) X`` or ``diag(s) Mᵀ X`` of a :class:`~fastgnn.autograd.SparseMatrix` and device ``X``:
    the CSR arrays (and the transpose's) are uploaded once and shared by the column-scaled copies."""
    key = ("device", bool(transpose), np.dtype(X.dtype).str)
    if key not in M._shared:
        indptr, indices, data = M._transpose() if transpose else (M.indptr, M.indices, M.data)
        M._shared[key] = (upload(indptr), upload(indices), upload(data, X.dtype))
    indptr, indices, data = M._shared[key]
    n = indptr.shape[0] - 1
    out = empty((n, X.shape[1]), X.dtype)
    if M.col_scale is None:  # mode 0 reads no scales: any cached vector stands in
        mode = 0
        r = c = _ones(M, 1, X.dtype)
    else:  # the column scale of this copy (a feature mask), uploaded once per copy
        if M._device_scale is None or np.dtype(M._device_scale.dtype) != np.dtype(X.dtype):
            M._device_scale = upload(M.col_scale, X.dtype)
        mode, s = 1, M._device_scale
        r, c = (s, _ones(M, X.shape[0], X.dtype)) if transpose else (_ones(M, n, X.dtype), s)
    backend.kernels("sparse", "cuda").launch_spmm(indptr, indices, data, True, mode, r, c, r, False, X, out)
    return out


def _ones(M, n, dtype):
    key = ("ones", n, np.dtype(dtype).str)
    if key not in M._shared:
        M._shared[key] = ones_like(empty(n, dtype))
    return M._shared[key]


# ---------------------------------------------------------------------------- host fallback
def via_host(op, tensors, *args, **kwargs):
    """Run the host operation ``op(*host copies of tensors, *args)`` for device tensors: the result is
    uploaded, and on backward the gradient goes to the host and the inputs' gradients come back."""
    from .autograd import Tensor, _wrap

    hosts = [Tensor(to_host(t.data), requires_grad=t.requires_grad) for t in tensors]
    res = op(*hosts, *args, **kwargs)
    for t, h in zip(tensors, hosts):
        if res is h:
            return t
    value = upload(res.data)
    if res._backward is None:
        return Tensor(value)

    def back(g):
        grads = res._backward(to_host(g))
        by_parent = {id(p): pg for p, pg in zip(res._parents, grads)}
        out = []
        for t, h in zip(tensors, hosts):
            pg = by_parent.get(id(h))
            if pg is not None and hasattr(pg, "to_dense"):  # a row-sparse gradient (embedding)
                pg = pg.to_dense(h.dtype)
            out.append(None if pg is None else upload(pg, t.dtype))
        return tuple(out)

    return _wrap(value, tuple(tensors), back)
