"""Parameter lists, the flat state layout and the :class:`Optimizer` base class."""
from __future__ import annotations

import abc
import numbers
import operator

import numpy as np

from .. import _check
from .. import backend as _backend

NONFINITE = ("raise", "skip", "propagate")


def _cpu_kernels():
    return _backend.kernels("optim", "cpu")


# Below this many elements a step runs on the calling thread only: waking the worker threads costs more
# than the update (and where another process holds a core, a wake-up can wait a scheduler slice: 20 tensors
# of 64 elements measured 15 ms per step with 2 threads on a busy 2-core machine, 90 us with one).
SERIAL_BELOW = 1 << 15


def run_cpu(name, *args, chunk=1, work=None):
    """Call CPU kernel ``name`` with a dynamic schedule handing out ``chunk`` loop iterations at a time;
    on one thread when ``work`` (elements touched) is below :data:`SERIAL_BELOW`."""
    import numba

    kernel = getattr(_cpu_kernels(), name)
    old = numba.set_parallel_chunksize(chunk)
    threads = numba.get_num_threads()
    serial = work is not None and work < SERIAL_BELOW and threads > 1
    if serial:
        numba.set_num_threads(1)
    try:
        return kernel(*args)
    finally:
        numba.set_parallel_chunksize(old)
        if serial:
            numba.set_num_threads(threads)


def dyn_chunk(nitems, total, per_task=65536):
    """Loop iterations per dynamic task: about ``per_task`` elements each, but at least 4 tasks per thread.

    Handing out one work item at a time costs ~0.3 µs per item, which dominates when the items are tiny
    (1,000 bias vectors); a few large tasks per thread keep both the overhead and the imbalance small.
    """
    import numba

    if nitems <= 0:
        return 1
    avg = max(1, total // nitems)
    return int(max(1, min(nitems // (4 * numba.get_num_threads()), -(-per_task // avg))))


def _address(a) -> int:
    return a.__array_interface__["data"][0]


def check_params(params, name="params"):
    """Validate a list of parameter arrays: returns ``(list, dtype, on_device)``."""
    if isinstance(params, np.ndarray) or _check.is_device_array(params) or not isinstance(params, (list, tuple)):
        raise TypeError(f"{name}: expected a list of arrays updated in place, got {type(params).__name__}")
    params = list(params)
    if not params:
        raise ValueError(f"{name}: the optimizer got an empty parameter list")
    on_device = [_check.is_device_array(p) for p in params]
    if any(on_device) and not all(on_device):
        raise TypeError(f"{name}: mix of host (numpy) and device arrays; keep all parameters on one backend")
    dtype = None
    for i, p in enumerate(params):
        label = f"{name}[{i}]"
        if on_device[0]:
            # numba device arrays as they are; CuPy arrays, torch CUDA tensors ... viewed without a copy, so
            # the updates land in the caller's memory
            p = params[i] = _check.device_array(p, label, contiguous=True)
        else:
            _check.inplace_array(p, label)
            if not p.flags.aligned:
                raise TypeError(f"{label}: data is not aligned to its dtype (it is updated in place, so it is not copied)")
        if dtype is None:
            dtype = p.dtype
        elif p.dtype != dtype:
            raise TypeError(f"{label}: dtype {p.dtype} differs from {name}[0]'s {dtype}; use one dtype for all parameters")
    if not on_device[0]:
        spans = sorted((_address(p), _address(p) + p.nbytes, i) for i, p in enumerate(params) if p.size)
        for (a0, a1, i), (b0, b1, j) in zip(spans, spans[1:]):
            if b0 < a1:
                raise ValueError(f"{name}: parameters {min(i, j)} and {max(i, j)} share memory (each array must be distinct)")
    return params, np.dtype(dtype), on_device[0]


def check_lr(lr, name="lr") -> float:
    if isinstance(lr, bool) or not isinstance(lr, numbers.Real):
        raise TypeError(f"{name}: expected a real number, got {type(lr).__name__} {lr!r}")
    return _check.real(lr, name, minimum=0.0)


class Optimizer(abc.ABC):
    """Base class: a list of live parameter arrays, per-parameter step counts and flat state buffers.

    Subclasses name their state buffers in ``_buffers()`` and implement ``_set_hyper``, ``_update`` (dense,
    all parameters) and ``_update_rows`` (one parameter, coalesced rows). State buffers are one contiguous array per kind (``exp_avg``,
    ``momentum_buffer`` ...) with parameter ``i`` at ``offsets[i]``; :meth:`state_of` gives views.

    Parameters
    ----------
    params : list of ndarray
        float32 (or float64) C-contiguous, writeable arrays, all of one dtype; updated in place.
    lr : float
        Learning rate, ``>= 0``; readable and writeable as ``opt.lr``.
    nonfinite : {"raise", "skip", "propagate"}
        What a NaN or infinite gradient does: raise ``ValueError`` naming the parameter (default), skip the
        whole step leaving parameters and state untouched (``step`` returns False, ``skipped_steps``
        counts them), or propagate it like torch does (no check, no cost).

    Raises
    ------
    TypeError, ValueError
        an empty or mixed list, an array that cannot be updated in place, arrays sharing memory, ``lr < 0``.

    Examples
    --------
    >>> import numpy as np
    >>> from fastgnn.optim import SGD, Optimizer
    >>> opt = SGD([np.zeros((4, 2), np.float32), np.zeros(3, np.float32)], lr=0.1, momentum=0.9)
    >>> isinstance(opt, Optimizer), opt.state_of(1)["momentum_buffer"].shape
    (True, (3,))
    >>> opt.step_rows(0, [2, 2], np.ones((2, 2), np.float32))
    True
    >>> opt.params[0][2]
    array([-0.2, -0.2], dtype=float32)
    """

    def __init__(self, params, lr, *, nonfinite="raise"):
        self.params, self.dtype, self._device = check_params(params)
        self._lr = check_lr(lr)
        self.nonfinite = _check.choice(nonfinite, "nonfinite", NONFINITE)
        self.initial_lr = None  # set by the first LR schedule built on this optimizer (torch's "initial_lr")
        self.skipped_steps = 0
        n = len(self.params)
        self._shapes = [tuple(p.shape) for p in self.params]
        sizes = np.array([int(np.prod(s, dtype=np.int64)) for s in self._shapes], dtype=np.int64)
        self._sizes = sizes
        self._offsets = np.zeros(n, dtype=np.int64)
        np.cumsum(sizes[:-1], out=self._offsets[1:])
        self._total = int(sizes.sum())
        self._steps = np.zeros(n, dtype=np.int64)
        self._scratch = {}
        self._gcache = None  # (grads, [(shape, strides)], addresses) of the last step, see _grads_and_addresses
        self._guard = None  # device status word of guarded dense steps (kernels/cuda/optim.py:StepGuard)
        self._dempty = None
        if self._device:
            self._backend = _backend.resolve("cuda")
        else:
            self._backend = "cpu"
            chunk = _chunk_size()
            counts = (sizes + chunk - 1) // chunk
            self._ctens = np.repeat(np.arange(n, dtype=np.int64), counts)
            starts = np.cumsum(counts) - counts
            within = np.arange(self._ctens.size, dtype=np.int64) - np.repeat(starts, counts)
            self._clo = within * chunk
            self._chi = np.minimum(self._clo + chunk, sizes[self._ctens])
            self._p_addr = np.array([_address(p) for p in self.params], dtype=np.int64)
        self._state = {}
        self._alloc_buffers()

    # -------------------------------------------------------------------------------- hyper-parameters
    @property
    def lr(self) -> float:
        """The learning rate (a float >= 0); schedules write it."""
        return self._lr

    @lr.setter
    def lr(self, value):
        self._lr = check_lr(value)

    @property
    def steps(self) -> np.ndarray:
        """Steps taken by each parameter (dense steps count for all, ``step_rows`` for one)."""
        return self._steps.copy()

    def hyper(self) -> dict:
        """The hyper-parameters as a dict (``lr`` included)."""
        return {"lr": self._lr, **{k: getattr(self, k) for k in self._hyper_names}}

    _hyper_names: tuple = ()

    def _buffers(self) -> tuple:
        return ()

    def _alloc_buffers(self):
        for k, name in enumerate(self._buffers()):
            if name not in self._state:
                self._state[name] = self._zeros(self._total, stagger=k + 1)

    def _zeros(self, n, stagger=0):
        if self._device:
            from numba import cuda

            return cuda.device_array(n, dtype=self.dtype) if n == 0 else cuda.to_device(np.zeros(n, dtype=self.dtype))
        if not stagger:
            return np.zeros(n, dtype=self.dtype)
        # Large arrays all start at the same offset within a 4 KiB page, so p, g, m and v would alias in
        # the load/store unit (loads wait on unrelated stores: "4K aliasing"). Each state buffer starts
        # 768·k bytes past the first parameter's page offset instead (still cache-line aligned).
        item = self.dtype.itemsize
        raw = np.zeros(n + 4096 // item, dtype=self.dtype)
        want = (_address(self.params[0]) + 768 * stagger) % 4096
        start = ((want - _address(raw)) % 4096) // item
        return raw[start:start + n]

    def state_of(self, index) -> dict:
        """Views of parameter ``index``'s state, shaped like the parameter (``step`` as an int)."""
        i = _check.integer(index, "index", minimum=0, maximum=len(self.params) - 1)
        o, s = int(self._offsets[i]), int(self._sizes[i])
        out = {"step": int(self._steps[i])}
        for name, flat in self._state.items():
            out[name] = flat[o:o + s].reshape(self._shapes[i])
        return out

    # --------------------------------------------------------------------------------------- stepping
    def _grads_and_addresses(self, grads):
        """Validated gradients and (on the CPU) their data addresses.

        Training loops usually pass the same gradient arrays every step. An array object's data pointer
        cannot move while this optimizer holds a reference to it, so for the very same objects as last
        step only shape, strides and dtype (which can be reset in place) are re-checked and the addresses
        reused: for 1,000 tensors that saves a few milliseconds of Python per step.
        """
        cache = self._gcache
        if (cache is not None and type(grads) in (list, tuple) and len(grads) == len(cache[0])
                and all(map(operator.is_, grads, cache[0]))
                and [(g.shape, g.strides, g.dtype) for g in grads] == cache[1]):
            return cache[0], cache[2]
        checked = self._check_grads(grads)
        if self._device:
            return checked, None
        addr = np.array([_address(g) for g in checked], dtype=np.int64)
        if all(map(operator.is_, checked, grads)):  # nothing was converted: safe to remember
            self._gcache = (tuple(checked), [(g.shape, g.strides, g.dtype) for g in checked], addr)
        else:
            self._gcache = None
        return checked, addr

    def _check_grads(self, grads):
        n = len(self.params)
        if isinstance(grads, np.ndarray) or _check.is_device_array(grads) or not isinstance(grads, (list, tuple)):
            raise TypeError(f"grads: expected a list of {n} arrays (one per parameter), got {type(grads).__name__}")
        if len(grads) != n:
            raise ValueError(f"grads: expected {n} arrays (one per parameter), got {len(grads)}")
        out = list(grads)
        dt = self.dtype
        for i, g in enumerate(out):
            shape = self._shapes[i]
            if self._device:
                if not _check.is_device_array(g):
                    raise TypeError(f"grads[{i}]: parameters are on the GPU, so gradients must be device arrays")
                if not hasattr(g, "copy_to_host"):  # CuPy, torch CUDA tensors ...: a numba view, no copy
                    g = out[i] = _check.device_array(g, f"grads[{i}]", dtypes=None)
                if g.shape != shape:
                    raise ValueError(f"grads[{i}]: shape {g.shape} does not match parameter {i}'s {shape}")
                if g.dtype != dt or not g.is_c_contiguous():
                    raise TypeError(f"grads[{i}]: expected a C-contiguous {dt} device array, got {g.dtype}")
                continue
            if type(g) is np.ndarray and g.dtype == dt and g.shape == shape and g.flags.c_contiguous:
                continue
            arr = _check.float_array(g, f"grads[{i}]", dtype=dt, check_finite=False)
            if arr.shape != shape:
                raise ValueError(f"grads[{i}]: shape {arr.shape} does not match parameter {i}'s {shape}")
            out[i] = arr
        return out

    def _step_device(self, grads, check):
        """Dense device step; returns the first parameter whose gradient is not finite (nothing written), or -1.

        With ``check`` the gradients are scanned into a reusable device status word (gradient ``i`` raises it to
        ``n - i``, so the first bad one wins; the scan's last block stores it into mapped host memory), an event is
        queued behind the scans, the guarded updates behind it (they return at once on the device when the word is
        set), and the host then waits for the event only: the updates still run when this returns, and the next
        step's launches queue behind them, so the device does not idle between steps. One wait per step, no round
        trip and no copy between the scan and the update.
        """
        if not check:
            self._update(grads, None, None)
            return -1
        guard = self._guard
        if guard is None:
            guard = self._guard = _backend.kernels("optim", "cuda").StepGuard()
        n = len(grads)
        guard.begin()
        for i, g in enumerate(grads):
            guard.scan(g.reshape(g.size), n - i)
        guard.read()
        self._update(grads, None, guard.flag)
        code = guard.finish()
        return n - code if code else -1

    def _empty_device(self):
        """A zero-size device array of the parameter dtype (the kernels' stand-in for an absent buffer)."""
        if self._dempty is None:
            self._dempty = self._zeros(0)
        return self._dempty

    def _run_multi(self, name, *args, check):
        """Run a fused multi-tensor CPU update; returns the first parameter with a non-finite gradient, or -1."""
        bad = np.zeros(self._ctens.size if check else 0, dtype=np.bool_)
        hit = run_cpu(name, *args, check, bad, chunk=self._dyn(), work=self._total)
        return -1 if hit < 0 else int(self._ctens[hit])

    def _dyn(self):
        return dyn_chunk(self._ctens.size, self._total)

    def _state_like(self):
        # a zero-size array of the parameter dtype: tells pointer kernels which dtype they read
        return np.empty(0, dtype=self.dtype)

    def _nonfinite(self, label, i, values):
        if self.nonfinite == "skip":
            self.skipped_steps += 1
            return False
        arr = np.asarray(values.copy_to_host() if _check.is_device_array(values) else values)
        flat = arr.reshape(-1)
        k = int(np.flatnonzero(~np.isfinite(flat))[0])
        where = np.unravel_index(k, arr.shape)
        where = int(where[0]) if len(where) == 1 else tuple(int(x) for x in where)
        raise ValueError(
            f"{label}: non-finite value {float(flat[k])} at index {where} (parameter {i}, shape {self._shapes[i]}); "
            "pass nonfinite='skip' to skip such steps"
        )

    def step(self, grads) -> bool:
        """Apply one update to every parameter from ``grads`` (a list matching ``params``).

        Returns
        -------
        bool
            True when the update was applied, False when it was skipped (``nonfinite="skip"``).

        Raises
        ------
        TypeError, ValueError
            wrong count, shape or dtype of ``grads``; a non-finite gradient (``nonfinite="raise"``).
        """
        grads, g_addr = self._grads_and_addresses(grads)
        check = self.nonfinite != "propagate"
        if self._device:
            bad = self._step_device(grads, check)
        else:
            # the CPU kernels test every gradient first and write nothing if one is not finite
            bad = self._update(grads, g_addr, check)
        if bad >= 0:
            return self._nonfinite(f"grads[{bad}]", bad, grads[bad])
        self._steps += 1
        return True

    def step_rows(self, index, rows, row_grads) -> bool:
        """Row-sparse update of ``params[index]``: ``params[index][rows[k]]`` gets ``row_grads[k]``.

        Repeated row ids are summed first (in order of occurrence). Only the rows named change, and so
        does only their state (lazy, like ``torch.optim.SparseAdam``); weight decay also applies to those
        rows only. The parameter's step count advances by one. With every row named once this equals
        :meth:`step` with the dense gradient.

        Parameters
        ----------
        index : int
            Which parameter (position in ``params``); it must have at least one dimension.
        rows : array of int, shape [m]
            Row ids in ``[0, params[index].shape[0])``; repeats allowed. A device array with device parameters
            (see Notes).
        row_grads : array, shape [m, *params[index].shape[1:]]
            Gradient of each listed row. A device array with device parameters (see Notes).

        Returns
        -------
        bool
            True when applied, False when skipped for a non-finite gradient (``nonfinite="skip"``).

        Raises
        ------
        TypeError
            non-integer ``rows``, non-numeric ``row_grads``; a device ``rows`` / ``row_grads`` with host
            parameters; a device ``rows`` that is not int32/int64, a device ``row_grads`` not of the parameters'
            dtype, or either not C-contiguous.
        ValueError
            ``index`` out of range or naming a scalar; ``rows`` not 1-d or out of range; ``row_grads`` of the
            wrong shape; a non-finite ``row_grads`` (``nonfinite="raise"``).

        Notes
        -----
        With device parameters, ``rows`` and ``row_grads`` may be numba device arrays or any objects exposing
        ``__cuda_array_interface__`` (CuPy, PyTorch CUDA tensors): they are used without a copy (a host one
        beside a device one is checked on the host and copied over). The id range and, unless
        ``nonfinite="propagate"``, the finiteness of ``row_grads`` are checked by device scans that copy back
        one small status vector, the call's only host round trip; repeated ids are grouped by a stable sort on
        the device, so the sums, and the result, are those of host inputs.
        """
        n = len(self.params)
        i = _check.integer(index, "index", minimum=0, maximum=n - 1)
        shape = self._shapes[i]
        if len(shape) == 0:
            raise ValueError(f"index: parameter {i} is a scalar; row updates need at least one dimension")
        nrows = shape[0]
        width = int(self._sizes[i]) // nrows if nrows else 0
        on_device = [name for name, x in (("rows", rows), ("row_grads", row_grads)) if _check.is_device_array(x)]
        if on_device:
            if not self._device:
                raise TypeError(f"{on_device[0]}: the parameters are host (numpy) arrays, so rows and row_grads "
                                f"must be host arrays too, got a device array")
            return self._step_rows_device(i, nrows, width, rows, row_grads)
        rows = _check.index_array(rows, "rows", upper=nrows, what=f"parameter {i} with {nrows} rows")
        row_grads = _check.float_array(row_grads, "row_grads", ndim=len(shape), shape=(rows.size, *shape[1:]),
                                       dtype=self.dtype, check_finite=False)
        if self.nonfinite != "propagate" and run_cpu("nonfinite_flat", row_grads.reshape(-1), chunk=_chunk_size(),
                                                        work=row_grads.size):
            return self._nonfinite("row_grads", i, row_grads)
        self._steps[i] += 1
        if rows.size == 0:
            return True
        slot = self._scratch.get(i)
        if slot is None:
            slot = self._scratch[i] = np.full(nrows, -1, dtype=np.int32)
        ufirst = np.empty(rows.size, dtype=np.int64)
        nxt = np.empty(rows.size, dtype=np.int64)
        nu = _cpu_kernels().coalesce_rows(rows, slot, ufirst, nxt)
        self._update_rows(i, nrows, width, rows, row_grads.reshape(rows.size, width), ufirst, nxt, nu)
        return True

    def _step_rows_device(self, i, nrows, width, rows, row_grads):
        """:meth:`step_rows` with device ``rows`` or ``row_grads`` (device parameters): checked by device scans,
        grouped on the device."""
        shape = self._shapes[i]
        inp = _check.DeviceInputs()
        rows = inp.ids(rows, "rows", upper=nrows, ndim=1, what=f"parameter {i} with {nrows} rows")
        m = rows.shape[0]
        row_grads = inp.floats(row_grads, "row_grads", ndim=len(shape), shape=(m, *shape[1:]), dtype=self.dtype,
                               check_finite=False)
        if self.nonfinite != "propagate":
            inp.checks.finite(row_grads, "row_grads", raise_error=False)
        if inp.checks.run():
            return self._nonfinite("row_grads", i, row_grads)
        self._steps[i] += 1
        if m == 0:
            return True
        ufirst, nxt = _backend.kernels("optim", "cuda").row_chains(rows, bound=nrows)
        self._update_rows(i, nrows, width, rows, row_grads.reshape(m, width), ufirst, nxt, m)
        return True

    def _param2d(self, i, nrows, width):
        return self.params[i].reshape(nrows, width)

    def _state2d(self, name, i, nrows, width):
        o = int(self._offsets[i])
        return self._state[name][o:o + nrows * width].reshape(nrows, width)

    # ------------------------------------------------------------------------------------------ state
    def state_dict(self) -> dict:
        """A snapshot to resume from: hyper-parameters, step counts and copies of the state buffers.

        Loading it into an optimizer over the same parameter shapes with :meth:`load_state_dict` makes the
        following steps bit-identical to an uninterrupted run (parameters are the caller's to restore).
        """
        state = {}
        for name in self._buffers():
            flat = self._state[name]
            state[name] = flat.copy_to_host() if self._device else flat.copy()
        return {
            "optimizer": type(self).__name__,
            "hyper": self.hyper(),
            "nonfinite": self.nonfinite,
            "initial_lr": self.initial_lr,
            "steps": self._steps.copy(),
            "skipped_steps": self.skipped_steps,
            "shapes": [list(s) for s in self._shapes],
            "dtype": str(self.dtype),
            "state": state,
        }

    def load_state_dict(self, state_dict) -> None:
        """Restore a :meth:`state_dict` taken from the same optimizer class over parameters of the same shapes.

        Raises
        ------
        ValueError
            a state dict from another optimizer class, other shapes, dtype or buffers.
        """
        if not isinstance(state_dict, dict):
            raise TypeError(f"state_dict: expected a dict, got {type(state_dict).__name__}")
        missing = {"optimizer", "hyper", "steps", "shapes", "dtype", "state"} - set(state_dict)
        if missing:
            raise ValueError(f"state_dict: missing keys {sorted(missing)}")
        kind = state_dict["optimizer"]
        if kind != type(self).__name__:
            raise ValueError(f"state_dict: saved by optimizer {kind!r}, cannot load into {type(self).__name__}")
        shapes = [tuple(s) for s in state_dict["shapes"]]
        if shapes != self._shapes:
            raise ValueError(f"state_dict: parameter shapes {shapes} do not match this optimizer's {self._shapes}")
        if np.dtype(state_dict["dtype"]) != self.dtype:
            raise ValueError(f"state_dict: dtype {state_dict['dtype']} does not match this optimizer's {self.dtype}")
        bufs = state_dict["state"]
        if not isinstance(bufs, dict):
            raise ValueError("state_dict: 'state' must be a dict of buffers")
        steps = np.asarray(state_dict["steps"])
        if steps.shape != self._steps.shape or steps.dtype.kind not in "iu" or (steps.size and steps.min() < 0):
            raise ValueError(f"state_dict: steps must be {len(self.params)} non-negative integers")
        for name, arr in bufs.items():
            arr = np.asarray(arr)
            if arr.shape != (self._total,) or arr.dtype != self.dtype:
                raise ValueError(f"state_dict: buffer {name!r} has shape {arr.shape} and dtype {arr.dtype}, "
                                 f"expected ({self._total},) {self.dtype}")
        old = self.hyper()
        try:
            self._set_hyper(**dict(state_dict["hyper"]))  # validates like the constructor
        except TypeError as exc:
            self._set_hyper(**old)
            raise ValueError(f"state_dict: hyper-parameters do not fit {type(self).__name__}: {exc}") from None
        if set(bufs) != set(self._buffers()):
            want = sorted(self._buffers())
            self._set_hyper(**old)
            raise ValueError(f"state_dict: state buffers {sorted(bufs)} do not match {want}")
        self.nonfinite = _check.choice(state_dict.get("nonfinite", self.nonfinite), "nonfinite", NONFINITE)
        self.initial_lr = state_dict.get("initial_lr")
        self.skipped_steps = int(state_dict.get("skipped_steps", 0))
        self._steps[:] = steps
        for name, arr in bufs.items():
            if self._device:
                self._state[name].copy_to_device(np.ascontiguousarray(arr))
            else:
                np.copyto(self._state[name], arr)

    @abc.abstractmethod
    def _set_hyper(self, **kw):
        """Validate and set hyper-parameters (``lr`` and the class's own)."""

    @abc.abstractmethod
    def _update(self, grads, g_addr, check):
        """Dense update of every parameter as step ``steps + 1``; on the CPU with ``check``, returns the first
        parameter whose gradient is not finite (nothing written) or -1. On the device ``check`` is the status
        word the guarded kernels test (None: unguarded) and the return value is not used."""

    @abc.abstractmethod
    def _update_rows(self, i, nrows, width, rows, row_grads, ufirst, nxt, nu):
        """Row-sparse update of parameter ``i`` (its step count already advanced)."""

    def __repr__(self):
        hp = ", ".join(f"{k}={v!r}" for k, v in self.hyper().items())
        return f"{type(self).__name__}({len(self.params)} params of {self._total} {self.dtype} values, {hp})"


def _chunk_size():
    return _cpu_kernels().CHUNK
