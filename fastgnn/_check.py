"""Boundary validation shared by every public function.

Everything here runs before compiled code: numba does not bounds-check, so a kernel must never see an
index out of range, a wrong dtype, a non-contiguous array or a NaN it was not built for. Every error
names the argument and what was expected, e.g.
``ValueError: negatives: index 100000 out of range for table with 100000 rows``.
"""
from __future__ import annotations

import numbers

import numpy as np

__all__ = [
    "is_device_array",
    "device_array",
    "DeviceChecks",
    "DeviceInputs",
    "device_call",
    "float_array",
    "index_array",
    "inplace_array",
    "finite",
    "integer",
    "real",
    "choice",
    "seed_value",
]


def is_device_array(x) -> bool:
    """True for numba device arrays (also the simulator's) and anything exposing ``__cuda_array_interface__``."""
    if isinstance(x, np.ndarray):
        return False
    return hasattr(x, "__cuda_array_interface__") or hasattr(x, "copy_to_host")


def device_array(x, name: str, *, ndim: int | None = None, shape=None, dtypes=(np.float32, np.float64),
                 contiguous: bool = False):
    """View a device input as a numba device array without copying (CuPy, PyTorch CUDA tensors, ...).

    Checks rank, shape, dtype and (with ``contiguous``) C-contiguity; values are not inspected here (see
    :class:`DeviceChecks` for the checks that run on the device).
    """
    from numba import cuda

    if hasattr(x, "copy_to_host"):
        arr = x
    elif _simulated():
        arr = _simulated_view(x)
    else:
        arr = cuda.as_cuda_array(x)
    if dtypes is not None and np.dtype(arr.dtype) not in [np.dtype(d) for d in dtypes]:
        want = " or ".join(str(np.dtype(d)) for d in dtypes)
        raise TypeError(f"{name}: expected {want}, got {arr.dtype}")
    _check_shape(arr, name, ndim, shape)
    if contiguous and not arr.is_c_contiguous():
        raise TypeError(f"{name}: the device array must be C-contiguous (device inputs are never copied)")
    return arr


def _simulated() -> bool:
    from . import backend

    return backend.simulator_enabled()


class _HostView:
    """Exposes a ``__cuda_array_interface__`` as a NumPy ``__array_interface__`` (the simulator's device memory
    is host memory), keeping the foreign owner alive."""

    def __init__(self, owner, desc):
        self._owner = owner
        self.__array_interface__ = {"shape": tuple(desc["shape"]), "typestr": desc["typestr"],
                                    "data": tuple(desc["data"]), "strides": desc.get("strides"), "version": 3}


def _simulated_view(x):
    """The simulator has no ``cuda.as_cuda_array``: wrap the described memory, without copying, as the
    simulator's device array type (writes through the view reach the caller's object)."""
    from numba import cuda

    desc = x.__cuda_array_interface__
    if desc.get("mask") is not None:
        raise TypeError("masked arrays are not supported")
    host = np.asarray(_HostView(x, desc))
    fake = type(cuda.device_array(1, dtype=np.uint8))
    return fake(host)


class DeviceChecks:
    """Value checks of device arrays, run as small device scans with one int64 status copy for all of them.

    Queue checks with :meth:`finite` and :meth:`index`, then :meth:`run`: it launches one scan per check,
    copies the status vector (two int64 per check) to the host and raises the first failure, with the
    message the host checks give (``negatives: index 7 out of range for table with 7 rows``). The arrays
    themselves never leave the device.
    """

    def __init__(self):
        self._jobs = []

    def __bool__(self):
        return bool(self._jobs)

    def finite(self, arr, name: str, *, raise_error: bool = True):
        """No NaN/inf in the float device array ``arr`` (C-contiguous).

        With ``raise_error=False`` a failure does not raise: :meth:`run` returns ``name`` among the failed
        checks instead (for callers that skip rather than fail, e.g. ``nonfinite="skip"``).
        """
        if arr.size:
            self._jobs.append(("finite", arr, name, raise_error))

    def index(self, arr, name: str, *, upper: int | None = None, allow_pad: bool = False, what: str = ""):
        """Every value of the integer device array ``arr`` in ``[0, upper)`` (``-1`` too with ``allow_pad``)."""
        if arr.size:
            self._jobs.append(("index", arr, name, (upper, allow_pad, what)))

    def run(self) -> list:
        """Run the queued checks; raise the first failure, else return the names of the failed checks queued
        with ``raise_error=False`` (empty when all passed)."""
        if not self._jobs:
            return []
        from numba import cuda

        from .kernels.cuda import arrays as kc

        jobs, self._jobs = self._jobs, []
        init = np.empty(2 * len(jobs), np.int64)
        for q, (kind, arr, name, extra) in enumerate(jobs):
            if kind == "finite":
                init[2 * q:2 * q + 2] = kc.MAXKEY
            else:
                upper, allow_pad, _ = extra
                init[2 * q] = -1 if allow_pad else 0
                init[2 * q + 1] = (kc.MAXKEY if upper is None else upper) - 1
        status = cuda.to_device(init)
        for q, (kind, arr, name, extra) in enumerate(jobs):
            flat = arr.reshape(arr.size)
            if kind == "finite":
                kc.launch_nonfinite_scan(flat, status, 2 * q)
            else:
                kc.launch_range_scan(flat, init[2 * q], init[2 * q + 1] + 1, status, 2 * q)
        got = status.copy_to_host()
        failed = []
        for q, (kind, arr, name, extra) in enumerate(jobs):
            lo, hi = int(got[2 * q]), int(got[2 * q + 1])
            if kind == "finite":
                if lo == kc.MAXKEY:
                    continue
                if not extra:
                    failed.append(name)
                    continue
                value = float(arr.reshape(arr.size)[lo:lo + 1].copy_to_host()[0])
                idx = np.unravel_index(lo, arr.shape)
                where = idx[0] if len(idx) == 1 else tuple(int(i) for i in idx)
                raise ValueError(f"{name}: non-finite value {value!r} at index {where}")
            upper, allow_pad, what = extra
            if lo < init[2 * q]:
                pad = " (only -1 is allowed, as padding)" if allow_pad else ""
                raise ValueError(f"{name}: negative id {lo}{pad}")
            if hi > init[2 * q + 1]:
                target = what or f"{upper} items"
                raise ValueError(f"{name}: index {hi} out of range for {target}")
        return failed


FLOAT_DTYPES = (np.float32, np.float64)
INT_DTYPES = (np.int32, np.int64)


class DeviceInputs:
    """Turns each argument of a device call into a device array: device ones viewed without copying
    (:func:`device_array`) and their values queued for :attr:`checks` (run them with ``checks.run()``), host
    ones validated on the host and uploaded. Only float32/float64 and int32/int64 device arrays are accepted
    (converting one would be a copy)."""

    def __init__(self):
        self.checks = DeviceChecks()

    def floats(self, x, name, *, ndim, shape=None, dtype=None, check_finite=True, allow_empty=True):
        """A float device array; ``dtype`` (optional) is required of a device input and converted to for a
        host one."""
        if x is None:
            raise TypeError(f"{name}: expected an array, got None")
        if is_device_array(x):
            d = device_array(x, name, ndim=ndim, shape=shape, dtypes=FLOAT_DTYPES if dtype is None else (dtype,),
                             contiguous=True)
            if not allow_empty and d.size == 0:
                raise ValueError(f"{name}: must not be empty (shape {tuple(d.shape)})")
            if check_finite:
                self.checks.finite(d, name)
            return d
        h = float_array(x, name, ndim=ndim, shape=shape, dtype=dtype, check_finite=check_finite,
                        allow_empty=allow_empty)
        return _upload(h)

    def ids(self, x, name, *, upper, ndim, shape=None, allow_pad=False, what=""):
        """An int32/int64 device array with values in ``[0, upper)`` (``-1`` too with ``allow_pad``); host ones
        become int64."""
        if is_device_array(x):
            d = device_array(x, name, ndim=ndim, shape=shape, dtypes=INT_DTYPES, contiguous=True)
            self.checks.index(d, name, upper=upper, allow_pad=allow_pad, what=what)
            return d
        h = index_array(x, name, upper=upper, ndim=ndim, shape=shape, allow_pad=allow_pad, dtype=np.int64, what=what)
        return _upload(h)


def _upload(h):
    from .kernels.cuda.arrays import upload

    return upload(h)


def device_call(backend, **arrays) -> bool:
    """True when any of ``arrays`` is a device array: the call then runs on CUDA with device outputs.

    Device inputs imply the CUDA backend: ``backend=None``, ``"auto"`` or ``"cuda"`` run it there (any
    :func:`~fastgnn.backend.use_backend` default is for host inputs), an explicit ``"cpu"`` is a ``ValueError``
    naming the first device argument, and ``"cuda"`` being unusable raises ``BackendUnavailableError``.
    """
    names = [name for name, x in arrays.items() if x is not None and is_device_array(x)]
    if not names:
        return False
    from . import backend as _backend

    if backend is not None and _backend._validate_name(backend) == "cpu":
        raise ValueError(f"{names[0]}: a CUDA device array needs backend 'cuda' (or None / 'auto'), got 'cpu'")
    _backend.resolve("cuda")
    return True


def _shape_text(shape) -> str:
    return "[" + ", ".join("?" if s is None else str(s) for s in shape) + "]"


def _check_shape(arr, name, ndim, shape):
    if ndim is not None and arr.ndim != ndim:
        want = _shape_text(shape) if shape is not None else f"{ndim}-d"
        raise ValueError(f"{name}: expected a {ndim}-d array {want}, got shape {arr.shape}")
    if shape is not None:
        for axis, (got, want) in enumerate(zip(arr.shape, shape)):
            if want is not None and got != want:
                raise ValueError(
                    f"{name}: expected shape {_shape_text(shape)}, got {arr.shape} (axis {axis} is {got}, expected {want})"
                )


def finite(arr: np.ndarray, name: str) -> np.ndarray:
    """Raise ``ValueError`` if ``arr`` holds NaN or infinity."""
    if arr.size and not np.isfinite(arr).all():
        bad = np.flatnonzero(~np.isfinite(arr.ravel()))[0]
        idx = np.unravel_index(bad, arr.shape)
        where = idx[0] if len(idx) == 1 else tuple(int(i) for i in idx)
        raise ValueError(f"{name}: non-finite value {arr.ravel()[bad]!r} at index {where}")
    return arr


def float_array(
    x,
    name: str,
    *,
    ndim: int | None = None,
    shape=None,
    dtype=None,
    check_finite: bool = True,
    allow_empty: bool = True,
) -> np.ndarray:
    """Return ``x`` as a C-contiguous float32 or float64 array (read-only inputs; may copy).

    float64 stays float64, every other real dtype becomes float32 unless ``dtype`` is given.
    Booleans, complex numbers, strings and objects raise ``TypeError``.
    """
    if x is None:
        raise TypeError(f"{name}: expected an array, got None")
    arr = np.asarray(x)
    if arr.dtype.kind not in "fiu":
        raise TypeError(f"{name}: expected a real numeric array, got dtype {arr.dtype}")
    if dtype is None:
        dtype = np.float64 if arr.dtype == np.float64 else np.float32
    arr = np.ascontiguousarray(arr, dtype=dtype)
    _check_shape(arr, name, ndim, shape)
    if not allow_empty and arr.size == 0:
        raise ValueError(f"{name}: must not be empty (shape {arr.shape})")
    if check_finite:
        finite(arr, name)
    return arr


def index_array(
    x,
    name: str,
    *,
    upper: int | None = None,
    ndim: int | None = 1,
    shape=None,
    allow_pad: bool = False,
    dtype=None,
    what: str = "",
) -> np.ndarray:
    """Return ``x`` as a C-contiguous integer array with every value in ``[0, upper)``.

    With ``allow_pad`` the value ``-1`` is accepted as padding. ``dtype`` defaults to int64 unless the
    input is already int32. Floats (even integral ones), booleans and objects raise ``TypeError``.
    ``what`` names the thing indexed in the message ("table with 10 rows").
    """
    if x is None:
        raise TypeError(f"{name}: expected an integer array, got None")
    arr = np.asarray(x)
    if arr.size == 0 and arr.dtype.kind == "f":
        arr = arr.astype(np.int64)  # np.asarray([]) is float64; an empty list is a valid empty index
    if arr.dtype.kind not in "iu":
        raise TypeError(f"{name}: expected integer ids, got dtype {arr.dtype}")
    if dtype is None:
        dtype = np.int32 if arr.dtype == np.int32 else np.int64
    _check_shape(arr, name, ndim, shape)
    if arr.size:
        lo = int(arr.min())
        hi = int(arr.max())
        floor = -1 if allow_pad else 0
        if lo < floor:
            bad = arr.ravel()[np.flatnonzero(arr.ravel() < floor)[0]]
            pad = " (only -1 is allowed, as padding)" if allow_pad else ""
            raise ValueError(f"{name}: negative id {int(bad)}{pad}")
        if upper is not None and hi >= upper:
            target = what or f"{upper} items"
            raise ValueError(f"{name}: index {hi} out of range for {target}")
        if np.iinfo(dtype).max < hi:
            dtype = np.int64
    return np.ascontiguousarray(arr, dtype=dtype)


def inplace_array(x, name: str, *, dtype=None, ndim: int | None = None, shape=None) -> np.ndarray:
    """Check an array that a kernel will write into: an ndarray, C-contiguous, writeable, float.

    No conversion is made (a converted copy would be updated instead of the caller's array):
    anything else raises ``TypeError``.
    """
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{name}: expected a numpy.ndarray updated in place, got {type(x).__name__}")
    if dtype is not None and x.dtype != np.dtype(dtype):
        raise TypeError(f"{name}: expected dtype {np.dtype(dtype)}, got {x.dtype} (it is updated in place, so it is not converted)")
    if dtype is None and x.dtype not in (np.float32, np.float64):
        raise TypeError(f"{name}: expected float32 or float64, got {x.dtype} (it is updated in place, so it is not converted)")
    if not x.flags.c_contiguous:
        raise TypeError(f"{name}: must be C-contiguous (it is updated in place, so it is not copied)")
    if not x.flags.writeable:
        raise TypeError(f"{name}: array is read-only")
    _check_shape(x, name, ndim, shape)
    return x


def integer(value, name: str, *, minimum: int | None = None, maximum: int | None = None) -> int:
    """A Python int within bounds (bools and floats raise ``TypeError``)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name}: expected an integer, got {type(value).__name__} {value!r}")
    value = int(value)
    if minimum is not None and value < minimum:
        raise ValueError(f"{name}: must be >= {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name}: must be <= {maximum}, got {value}")
    return value


def real(
    value,
    name: str,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
    strict_min: bool = False,
    strict_max: bool = False,
) -> float:
    """A finite Python float within bounds (``strict_*`` excludes the bound itself)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name}: expected a real number, got {type(value).__name__} {value!r}")
    value = float(value)
    if not np.isfinite(value):
        raise ValueError(f"{name}: must be finite, got {value}")
    if minimum is not None and (value < minimum or (strict_min and value == minimum)):
        op = ">" if strict_min else ">="
        raise ValueError(f"{name}: must be {op} {minimum}, got {value}")
    if maximum is not None and (value > maximum or (strict_max and value == maximum)):
        op = "<" if strict_max else "<="
        raise ValueError(f"{name}: must be {op} {maximum}, got {value}")
    return value


def choice(value, name: str, options) -> str:
    """One of ``options`` (strings; ``None`` allowed only if listed)."""
    if value is None and None in options:
        return None
    if not isinstance(value, str) or value not in options:
        raise ValueError(f"{name}: expected one of {tuple(options)}, got {value!r}")
    return value


def seed_value(seed, name: str = "seed") -> int:
    """A seed as a non-negative 64-bit int; ``None`` draws one from the OS (documented as non-reproducible)."""
    if seed is None:
        return int(np.random.SeedSequence().entropy % (2**63))
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise TypeError(f"{name}: expected an integer or None, got {type(seed).__name__} {seed!r}")
    seed = int(seed)
    if seed < 0:
        raise ValueError(f"{name}: must be >= 0, got {seed}")
    return seed % (2**63)
