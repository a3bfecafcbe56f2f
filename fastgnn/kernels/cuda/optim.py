"""CUDA twins of ``kernels/cpu/optim.py``: the dense fused updates on flat arrays, row-sparse updates,
and the clipping helpers. One thread per element (rows: one block row per distinct table row, threads
over columns); the arithmetic is the CPU kernels' in the same order.

The ``*_flat`` and ``*_rows`` kernels have the CPU kernels' argument order; the ``launch_*`` helpers take
device arrays (rows, chains and gradients of the row kernels may be host arrays: they are copied over).
:func:`row_chains` builds the row kernels' chains from device row ids on the device (a stable sort), so device
rows need no host round trip; its ``ufirst`` has one entry per id, ``-1`` where an id does not start a group
(the row kernels skip those).

Guarded steps (``nonfinite="raise"``/``"skip"``): :class:`StepGuard` holds a reusable device status word. The
gradients are scanned into it (:meth:`StepGuard.scan`; the scan's last block stores the word into mapped host
memory), an event is queued behind the scans, the ``*_flat_guarded`` updates behind it on the same stream (they
return at once when the word is set: parameters and state keep the last good values), and the host waits for the
event only, so the updates overlap the host's return and its next launches: one wait per step, no host round trip
and no copy between the scan and the update, no idle device between steps.
"""
import math
import threading

import numpy as np
from numba import cuda, float32, float64, uint64

from . import arrays
from .arrays import block_tree
from .grid import grid2, shape2
from .warp import SIM

_THREADS = 256
_ROW_TX = 32  # threads over a row's columns
_ROW_TY = 8  # distinct rows per block


@cuda.jit(device=True, inline=True)
def _sgd_elem(p, g, buf, i, bi, neg_lr, momentum, one_m_damp, wd, nesterov, maximize, first, flag, guarded):
    # p[i] is loaded before the store to buf: the compiler cannot prove that p and buf do not alias, so a load
    # of p[i] written after ``buf[bi] = b`` waits for that store and costs a second, serial trip to memory per
    # thread (half the loads in flight of a kernel that is bound by memory latency x bandwidth). For the same
    # reason a guarded update reads its status word after its data, just before the first store: a word read
    # first would hold every data load back by one trip to L2.
    pi = p[i]
    bo = buf[bi] if momentum != 0 and not first else 0.0
    if guarded and flag[0] != 0:
        return
    gi = -g if maximize else g
    if wd != 0:
        gi = gi + wd * pi
    if momentum != 0:
        if first:
            b = gi
        else:
            b = bo * momentum + one_m_damp * gi
        buf[bi] = b
        if nesterov:
            gi = gi + momentum * b
        else:
            gi = b
    p[i] = pi + neg_lr * gi


@cuda.jit(device=True, inline=True)
def _adam_elem(p, g, m, v, vmax, i, neg_step, bc2_sqrt, w, one_m_w, beta2, one_m_b2, eps, wd, decay, amsgrad, flag,
               guarded):
    # every load before the first store, the status word last (see _sgd_elem)
    pi = p[i]
    mi = m[i]
    vi = v[i]
    mx = vmax[i] if amsgrad else mi
    if guarded and flag[0] != 0:
        return
    if decay != 1:
        pi = pi * decay
    gi = g
    if wd != 0:
        gi = gi + wd * pi
    if w < 0.5:
        mi = mi + w * (gi - mi)
    else:
        mi = gi - (gi - mi) * one_m_w
    vi = vi * beta2 + (one_m_b2 * gi) * gi
    m[i] = mi
    v[i] = vi
    if amsgrad:
        if mx > vi or mx != mx:
            vi = mx
        vmax[i] = vi
    denom = math.sqrt(vi) / bc2_sqrt + eps
    p[i] = pi + neg_step * (mi / denom)


@cuda.jit(cache=True)
def sgd_flat(p, g, buf, first, neg_lr, momentum, one_m_damp, wd, nesterov, maximize):
    i = cuda.grid(1)
    if i < p.size:
        _sgd_elem(p, g[i], buf, i, i, neg_lr, momentum, one_m_damp, wd, nesterov, maximize, first, p, False)


@cuda.jit(cache=True)
def adam_flat(p, g, m, v, vmax, neg_step, bc2_sqrt, w, one_m_w, beta2, one_m_b2, eps, wd, decay, amsgrad):
    i = cuda.grid(1)
    if i < p.size:
        _adam_elem(p, g[i], m, v, vmax, i, neg_step, bc2_sqrt, w, one_m_w, beta2, one_m_b2, eps, wd, decay, amsgrad,
                   p, False)


@cuda.jit(cache=True)
def sgd_flat_guarded(p, g, buf, first, neg_lr, momentum, one_m_damp, wd, nesterov, maximize, flag):
    """:func:`sgd_flat` that writes nothing when ``flag[0] != 0`` (a non-finite gradient was found)."""
    i = cuda.grid(1)
    if i < p.size:
        _sgd_elem(p, g[i], buf, i, i, neg_lr, momentum, one_m_damp, wd, nesterov, maximize, first, flag, True)


@cuda.jit(cache=True)
def adam_flat_guarded(p, g, m, v, vmax, neg_step, bc2_sqrt, w, one_m_w, beta2, one_m_b2, eps, wd, decay, amsgrad,
                      flag):
    """:func:`adam_flat` that writes nothing when ``flag[0] != 0`` (a non-finite gradient was found)."""
    i = cuda.grid(1)
    if i < p.size:
        _adam_elem(p, g[i], m, v, vmax, i, neg_step, bc2_sqrt, w, one_m_w, beta2, one_m_b2, eps, wd, decay, amsgrad,
                   flag, True)


_SCAN = 8  # loads a thread of the non-finite scan keeps in flight (one grid apart, each coalesced across the warp)
_SCAN_BLOCKS_PER_SM = 8  # the scan's grid: this many blocks of _THREADS per multiprocessor (2048 threads, a full SM)


@cuda.jit(cache=True)
def _nonfinite_code(x, flag, code, done, host):
    # flag[0] ends as the largest ``code`` of the arrays scanned that hold a NaN/inf (0: none). A grid-stride loop
    # over a grid that fills the device once: each pass a thread loads _SCAN elements one grid apart, all before
    # any is tested. ``y - y`` is 0 for a finite y and NaN for a NaN or an infinity, so one add an element (and no
    # branch) tells whether any was non-finite. The array is read from its end to its start: the guarded update
    # that follows reads it from the start, part of which is then still in L2 (about 2.5 us of a 0.73 ms Adam step
    # over 64M elements on an H100, GPU_RESULTS.md, Run 7).
    # The plain read of the flag keeps an all-NaN array from queueing thousands of atomics on one word.
    # The last block to finish stores the word in ``host`` (mapped host memory; empty: none): the host reads it
    # after an event queued behind the scans, with no copy between the scans and the update in the stream.
    # Unsigned indices: no negative-index wrap-around code in the loop.
    n = uint64(x.size)
    step = uint64(cuda.gridsize(1))
    span = step * uint64(_SCAN)
    last = n - uint64(1)
    acc = float32(0.0)
    j = uint64(cuda.grid(1))
    while j + span <= n:  # every load in range
        for r in range(_SCAN):
            y = x[last - (j + uint64(r) * step)]
            acc += y - y
        j += span
    for r in range(_SCAN):  # the partial last pass
        k = j + uint64(r) * step
        if k < n:
            y = x[last - k]
            acc += y - y
    if acc != acc and flag[0] < code:
        cuda.atomic.max(flag, 0, code)
    if host.size:
        cuda.threadfence()  # this thread's atomic before the block's arrival below
        cuda.syncthreads()
        if cuda.threadIdx.x == 0 and cuda.atomic.add(done, 0, 1) == cuda.gridDim.x - 1:
            host[0] = cuda.atomic.max(flag, 0, 0)  # every block has arrived: the word is final
            done[0] = 0  # ready for the next scan


@cuda.jit(cache=True)
def _zero_flag(flag, done):
    if cuda.grid(1) == 0:
        flag[0] = 0
        done[0] = 0


@cuda.jit(cache=True)
def _sumsq_blocks(x, out):
    # one float64 partial per block, reduced in a fixed tree order (deterministic)
    tmp = cuda.shared.array(_THREADS, dtype=np.float64)
    t = cuda.threadIdx.x
    acc = 0.0
    i = cuda.blockIdx.x * _THREADS + t
    stride = cuda.gridDim.x * _THREADS
    while i < x.size:
        y = float64(x[i])
        acc += y * y
        i += stride
    tmp[t] = acc
    cuda.syncthreads()
    block_tree(tmp, t, _THREADS)
    if t == 0:
        out[cuda.blockIdx.x] = tmp[0]


@cuda.jit(cache=True)
def _scale(x, coef):
    i = cuda.grid(1)
    if i < x.size:
        x[i] = x[i] * coef


@cuda.jit(cache=True)
def _clamp(x, lo, hi):
    i = cuda.grid(1)
    if i < x.size:
        y = x[i]
        if y < lo:
            x[i] = lo
        elif y > hi:
            x[i] = hi


@cuda.jit(cache=True)
def sgd_rows(p, rows, grads, ufirst, nxt, nu, buf, first, neg_lr, momentum, one_m_damp, wd, nesterov, maximize):
    k, u = grid2()
    if u >= nu or k >= p.shape[1]:
        return
    i = ufirst[u]
    if i < 0:  # not the first occurrence of its row (device-built chains)
        return
    r = rows[i]
    acc = grads[i, k]
    j = nxt[i]
    while j >= 0:
        acc += grads[j, k]
        j = nxt[j]
    prow = p[r]
    brow = buf[r] if momentum != 0 else prow  # untouched without momentum
    _sgd_elem(prow, acc, brow, k, k, neg_lr, momentum, one_m_damp, wd, nesterov, maximize, first, prow, False)


@cuda.jit(cache=True)
def adam_rows(p, rows, grads, ufirst, nxt, nu, m, v, vmax, neg_step, bc2_sqrt, w, one_m_w, beta2, one_m_b2, eps, wd, decay,
              amsgrad):
    k, u = grid2()
    if u >= nu or k >= p.shape[1]:
        return
    i = ufirst[u]
    if i < 0:  # not the first occurrence of its row (device-built chains)
        return
    r = rows[i]
    acc = grads[i, k]
    j = nxt[i]
    while j >= 0:
        acc += grads[j, k]
        j = nxt[j]
    vrow = vmax[r] if amsgrad else m[r]
    _adam_elem(p[r], acc, m[r], v[r], vrow, k, neg_step, bc2_sqrt, w, one_m_w, beta2, one_m_b2, eps, wd, decay, amsgrad,
               vrow, False)


# ------------------------------------------------------------------------------------------ launchers
def _blocks(n):
    return max(1, math.ceil(n / _THREADS))


def launch_sgd(p, g, buf, first, neg_lr, momentum, one_m_damp, wd, nesterov, maximize, flag=None):
    """SGD on flat device arrays (``buf`` may be empty when ``momentum == 0``); with a device status word ``flag``
    (a :class:`StepGuard`'s) the update is skipped on the device when the word is set."""
    if not p.size:
        return
    if flag is None:
        sgd_flat[_blocks(p.size), _THREADS](p, g, buf, first, neg_lr, momentum, one_m_damp, wd, nesterov, maximize)
    else:
        sgd_flat_guarded[_blocks(p.size), _THREADS](p, g, buf, first, neg_lr, momentum, one_m_damp, wd, nesterov,
                                                    maximize, flag)


def launch_adam(p, g, m, v, vmax, neg_step, bc2_sqrt, w, one_m_w, beta2, one_m_b2, eps, wd, decay, amsgrad,
                flag=None):
    """Adam/AdamW/AMSGrad on flat device arrays (``vmax`` may be empty without AMSGrad); ``flag`` as in
    :func:`launch_sgd`."""
    if not p.size:
        return
    if flag is None:
        adam_flat[_blocks(p.size), _THREADS](p, g, m, v, vmax, neg_step, bc2_sqrt, w, one_m_w, beta2, one_m_b2, eps, wd,
                                            decay, amsgrad)
    else:
        adam_flat_guarded[_blocks(p.size), _THREADS](p, g, m, v, vmax, neg_step, bc2_sqrt, w, one_m_w, beta2, one_m_b2,
                                                     eps, wd, decay, amsgrad, flag)


class StepGuard:
    """A reusable device status word for guarded steps, and the mapped host word the scans publish it to.

    Per step: :meth:`begin`, :meth:`scan` each gradient with its code, :meth:`read` (queues an event behind the
    scans), queue the ``*_flat_guarded`` updates with :attr:`flag`, then :meth:`finish` waits for that event --
    not for the updates, which keep the device busy while the host prepares the next step -- and returns the
    largest code of a non-finite gradient, or 0. The last block of each scan stores the word into mapped
    (zero-copy) host memory, so nothing but the event sits between the scans and the updates in the stream.
    Without :meth:`read`, :meth:`finish` records the event itself and waits for everything queued. The word is
    zeroed on the device only when it may be set: a clean step leaves it 0, so the usual step launches no reset.
    """

    def __init__(self):
        self.flag = cuda.device_array(1, np.int32)
        self._done = cuda.device_array(1, np.int32)  # blocks of the running scan that have finished
        self._host = cuda.mapped_array(1, np.int32)
        self._stream = cuda.default_stream()  # the stream kernels launched without one run on
        self._scanned = cuda.event() if SIM else cuda.event(timing=False)  # the simulator's takes no argument
        self._pending = False
        self._dirty = True  # unknown contents: zero before the next scan
        sms = getattr(cuda.get_current_device(), "MULTIPROCESSOR_COUNT", None)  # None in the simulator
        self._max_blocks = _SCAN_BLOCKS_PER_SM * (sms or 2)

    def begin(self):
        if self._dirty:  # first use, or a step that did not finish: a scan of it may still be running
            _zero_flag[1, 1](self.flag, self._done)
            self._scanned.record(self._stream)
            self._scanned.synchronize()
            self._host[0] = 0  # read as is by a step of empty gradients, which scans nothing
        self._dirty = True  # until finish() has seen it clean (an exception in between leaves it for a reset)

    def scan(self, x, code):
        """Raise the word to ``code`` (a positive int32) if the flat device array ``x`` holds a NaN/inf."""
        if x.size:
            blocks = min(self._max_blocks, _blocks(math.ceil(x.size / _SCAN)))
            _nonfinite_code[blocks, _THREADS](x, self.flag, code, self._done, self._host)

    def read(self):
        """Queue an event behind the scans on the default stream; :meth:`finish` waits for it."""
        self._scanned.record(self._stream)
        self._pending = True

    def finish(self) -> int:
        if not self._pending:
            self.read()
        self._pending = False
        self._scanned.synchronize()
        code = int(self._host[0])
        if code:
            _zero_flag[1, 1](self.flag, self._done)
            self._host[0] = 0  # the scans are done: nothing else writes it
        self._dirty = False
        return code


_guards = threading.local()  # {device id: StepGuard} per thread, for has_nonfinite


def has_nonfinite(x, *more) -> bool:
    """True when one of the flat device arrays ``x, *more`` holds a NaN or an infinity (one read back for all).
    Called once per training step (the Trainer's divergence check): the status words (one per thread and device)
    are allocated once, not per call."""
    dev = getattr(cuda.get_current_device(), "id", 0)  # the simulator's device has no id
    per_device = getattr(_guards, "by_device", None)
    if per_device is None:
        per_device = _guards.by_device = {}
    guard = per_device.get(dev)
    if guard is None:
        guard = per_device[dev] = StepGuard()
    guard.begin()
    for a in (x,) + more:
        guard.scan(a, 1)
    return guard.finish() != 0


def sum_squares(x) -> float:
    """Σ x² of a flat device array, accumulated in float64."""
    if x.size == 0:
        return 0.0
    nb = min(_blocks(x.size), 1024)
    out = cuda.device_array(nb, dtype=np.float64)
    _sumsq_blocks[nb, _THREADS](x, out)
    return float(out.copy_to_host().sum())


def launch_scale(x, coef):
    """x ← x·coef on a flat device array."""
    if x.size:
        _scale[_blocks(x.size), _THREADS](x, coef)


def launch_clamp(x, lo, hi):
    """x ← min(max(x, lo), hi) on a flat device array."""
    if x.size:
        _clamp[_blocks(x.size), _THREADS](x, lo, hi)


def _row_grid(nu, d):
    return shape2(d, nu, (_ROW_TX, _ROW_TY)), (_ROW_TX, _ROW_TY)


def _dev(a):
    """A device array as it is (the simulator's have no ``__cuda_array_interface__``); a host one copied over."""
    return a if hasattr(a, "copy_to_host") else arrays.upload(a)


@cuda.jit(cache=True)
def _chains(keys, pos, n, ufirst, nxt):
    """From row ids sorted stably (``keys``, original positions ``pos``): ``ufirst[t] = pos[t]`` where a run of
    equal ids starts (else -1), ``nxt[pos[t]] = pos[t + 1]`` inside a run (else -1)."""
    t = cuda.grid(1)
    if t >= n:
        return
    key = keys[t]
    e = pos[t]
    ufirst[t] = e if t == 0 or keys[t - 1] != key else -1
    nxt[e] = pos[t + 1] if t + 1 < n and keys[t + 1] == key else -1


def row_chains(rows, bound=None):
    """``(ufirst, nxt)`` for the row kernels from non-negative device row ids, with ``nu = len(rows)``; ``bound``
    (the parameter's row count, which every id is below) sets the sort's passes (:func:`.arrays.sort_keys`).

    Each distinct row's chain runs through its occurrences in order (the sort is stable), so its gradients are
    summed in the CPU's order (``kernels/cpu/optim.py:coalesce_rows``); groups come in id order rather than
    order of first appearance, which changes nothing (each distinct row is updated alone). No host copy.
    """
    n = rows.shape[0]
    keys, pos = arrays.sort_keys(rows, bound)
    ufirst = cuda.device_array(n, np.int64)
    nxt = cuda.device_array(n, np.int64)
    _chains[_blocks(n), _THREADS](keys, pos, n, ufirst, nxt)
    return ufirst, nxt


def launch_sgd_rows(p, rows, grads, ufirst, nxt, nu, buf, first, neg_lr, momentum, one_m_damp, wd, nesterov,
                    maximize):
    """Row-sparse SGD on a 2-d device table; ``rows``/``grads``/``ufirst``/``nxt`` may be host arrays."""
    if nu == 0 or p.shape[1] == 0:
        return
    grid, block = _row_grid(nu, p.shape[1])
    sgd_rows[grid, block](p, _dev(rows), _dev(grads), _dev(ufirst), _dev(nxt), nu, buf, first, neg_lr, momentum,
                          one_m_damp, wd, nesterov, maximize)


def launch_adam_rows(p, rows, grads, ufirst, nxt, nu, m, v, vmax, neg_step, bc2_sqrt, w, one_m_w, beta2, one_m_b2, eps, wd,
                     decay, amsgrad):
    """Lazy row-sparse Adam on a 2-d device table; index/gradient arrays may be host arrays."""
    if nu == 0 or p.shape[1] == 0:
        return
    grid, block = _row_grid(nu, p.shape[1])
    adam_rows[grid, block](p, _dev(rows), _dev(grads), _dev(ufirst), _dev(nxt), nu, m, v, vmax, neg_step, bc2_sqrt,
                           w, one_m_w, beta2, one_m_b2, eps, wd, decay, amsgrad)
