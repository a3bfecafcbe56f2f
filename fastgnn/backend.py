"""Backend selection: ``"cpu"``, ``"cuda"`` or ``"auto"``.

The backend used by a call is decided, first match wins, by

1. the ``backend=`` argument of the call,
2. the innermost :func:`use_backend` context,
3. the process-wide value set with :func:`set_backend`,
4. the environment variable ``FASTGNN_BACKEND``,
5. ``"auto"``.

``"auto"`` resolves to ``"cuda"`` only when numba-cuda is installed and a real GPU is usable (the
Numba CUDA simulator is a testing tool and never chosen automatically); otherwise to ``"cpu"``.
Asking for ``"cuda"`` where it is not usable raises :class:`BackendUnavailableError` saying why;
there is never a silent fallback.

Nothing here imports numba at module import time: probing CUDA costs about half a second, so it
happens on the first call that needs it and the answer is cached.
"""
from __future__ import annotations

import contextlib
import importlib
import importlib.util
import os
import sys
import threading

__all__ = [
    "BACKENDS",
    "BackendUnavailableError",
    "resolve",
    "set_backend",
    "get_backend",
    "use_backend",
    "cuda_status",
    "cuda_available",
    "available_backends",
    "kernels",
    "cuda_pool_info",
    "cuda_pool_requested",
]

BACKENDS = ("cpu", "cuda", "auto")
ENV_VAR = "FASTGNN_BACKEND"
POOL_ENV_VAR = "FASTGNN_CUDA_POOL"
_POOL_ON = ("", "1", "true", "yes", "on")  # unset: on (asv_benchmarks/GPU_RESULTS.md, Runs 4 and 5)
_POOL_OFF = ("0", "false", "no", "off")

_global_choice: str | None = None


class _Local(threading.local):
    def __init__(self):
        self.stack = []  # use_backend contexts of this thread (an attribute that always exists: no miss)


_local = _Local()
_cuda_status_cache: tuple[bool, str] | None = None


class BackendUnavailableError(RuntimeError):
    """Raised when a backend is asked for but cannot be used here (the message says why)."""


# Dispatch runs on every kernel-backed call, so its answers are memoised: spellings already validated,
# and what "auto" resolved to (cleared by ``cuda_status(refresh=True)``; the simulator switch is read by
# numba once, when numba.cuda is imported).
# Measured: resolve() + kernels() about 1 us per call (asv ``backend.Dispatch``).
_KNOWN_NAMES: dict[str, str] = {}
_auto_cache: dict[str, str] = {}


def _validate_name(name, argname="backend") -> str:
    key = _KNOWN_NAMES.get(name) if isinstance(name, str) else None
    if key is not None:
        return key
    if not isinstance(name, str):
        raise TypeError(f"{argname}: expected one of {BACKENDS}, got {type(name).__name__} {name!r}")
    key = name.strip().lower()
    if key not in BACKENDS:
        raise ValueError(f"{argname}: unknown backend {name!r}; expected one of {BACKENDS}")
    if len(_KNOWN_NAMES) < 64:
        _KNOWN_NAMES[name] = key
    return key


def simulator_enabled() -> bool:
    """True when ``NUMBA_ENABLE_CUDASIM=1`` (the CUDA simulator replaces the GPU)."""
    return os.environ.get("NUMBA_ENABLE_CUDASIM", "0") not in ("", "0")


def cuda_status(refresh: bool = False) -> tuple[bool, str]:
    """Return ``(usable, reason)`` for the CUDA backend.

    ``reason`` is a human-readable sentence: which GPU (or "simulator") is used, or why none is
    usable (numba-cuda not installed, no driver, no device).
    """
    global _cuda_status_cache
    if _cuda_status_cache is not None and not refresh:
        return _cuda_status_cache
    _auto_cache.clear()
    if importlib.util.find_spec("numba_cuda") is None:
        status = (False, "numba-cuda is not installed (pip install 'fastgnn[cuda]')")
    else:
        try:
            from numba import cuda
        except Exception as exc:  # pragma: no cover - broken installs only
            status = (False, f"numba.cuda failed to import: {exc}")
        else:
            if simulator_enabled():
                status = (True, "Numba CUDA simulator (NUMBA_ENABLE_CUDASIM=1)")
            else:
                status = _probe_gpu(cuda)
    _cuda_status_cache = status
    return status


def _probe_gpu(cuda) -> tuple[bool, str]:
    try:
        ok = cuda.is_available()
    except Exception as exc:  # pragma: no cover - depends on the machine
        return False, f"the CUDA driver could not be initialised: {exc}"
    if ok:
        from fastgnn import _cuda_pool

        _cuda_pool.install()  # before the context opens: its memory manager is fixed then
        try:
            dev = cuda.get_current_device()
            name = dev.name.decode() if isinstance(dev.name, bytes) else str(dev.name)
            if _cuda_pool.requested():
                state = _cuda_pool.info()
                return True, f"GPU {name}; memory pool {'on' if state['active'] else 'off'}: {state['reason']}"
            return True, f"GPU {name}"
        except Exception as exc:  # pragma: no cover - depends on the machine
            return False, f"a CUDA device was reported but could not be opened: {exc}"
    # Ask the driver directly to tell "no driver" from "no device".
    try:
        from numba.cuda.cudadrv.driver import driver

        count = driver.get_device_count()
    except Exception as exc:
        text = " ".join(str(exc).split())
        if "driver" in text.lower():
            return False, "no CUDA driver was found (is an NVIDIA driver installed?)"
        return False, f"the CUDA driver could not be initialised: {text}"
    if count == 0:
        return False, "the CUDA driver found no GPU device"
    return False, "no usable CUDA device (numba.cuda.is_available() is False)"  # pragma: no cover


def cuda_pool_requested() -> bool:
    """Whether ``FASTGNN_CUDA_POOL`` asks for the device memory pool: yes when unset or ``1/true/yes/on`` (the
    default), no for ``0/false/no/off``; anything else is a ``ValueError``."""
    raw = os.environ.get(POOL_ENV_VAR, "")
    key = raw.strip().lower()
    if key in _POOL_ON:
        return True
    if key in _POOL_OFF:
        return False
    raise ValueError(f"{POOL_ENV_VAR}: expected one of 1/true/yes/on or 0/false/no/off, got {raw!r}")


def cuda_pool_info() -> dict:
    """State of the stream-ordered device memory pool (on by default; ``FASTGNN_CUDA_POOL=0`` turns it off).

    ``{"requested", "active", "reason"}``, plus, once a CUDA context uses the pool, the allocation counters
    and the pool's reserved / in-use / peak bytes. Creates no CUDA context. See ``fastgnn._cuda_pool``.
    """
    if importlib.util.find_spec("numba_cuda") is None:
        return {"requested": cuda_pool_requested(), "active": False, "reason": "numba-cuda is not installed"}
    if simulator_enabled():
        return {"requested": cuda_pool_requested(), "active": False,
                "reason": "the CUDA simulator has no device memory to pool"}
    from fastgnn import _cuda_pool

    return _cuda_pool.info()


def cuda_available() -> bool:
    """True when the CUDA backend (a GPU or the simulator) can run kernels."""
    return cuda_status()[0]


def available_backends() -> dict[str, tuple[bool, str]]:
    """``{"cpu": (True, ...), "cuda": (usable, reason)}``."""
    import numba

    return {
        "cpu": (True, f"numba {numba.__version__}, {numba.get_num_threads()} threads"),
        "cuda": cuda_status(),
    }


def set_backend(name: str | None) -> None:
    """Set the process-wide default backend (``None`` clears it)."""
    global _global_choice
    _global_choice = None if name is None else _validate_name(name)


def get_backend() -> str:
    """The backend name in force before resolution (may be ``"auto"``)."""
    stack = _local.stack
    if stack:
        return stack[-1]
    if _global_choice is not None:
        return _global_choice
    env = os.environ.get(ENV_VAR)
    if env:
        return _validate_name(env, argname=ENV_VAR)
    return "auto"


@contextlib.contextmanager
def use_backend(name: str):
    """Context manager: calls inside use ``name`` unless they pass ``backend=`` themselves.

    Examples
    --------
    >>> with use_backend("cpu"):
    ...     pass
    """
    key = _validate_name(name)
    stack = _local.stack
    stack.append(key)
    try:
        yield key
    finally:
        stack.pop()


def resolve(backend: str | None = None) -> str:
    """Resolve to a concrete backend, ``"cpu"`` or ``"cuda"``.

    Raises
    ------
    ValueError
        unknown name.
    BackendUnavailableError
        ``"cuda"`` asked for but not usable; the message says why.
    """
    name = get_backend() if backend is None else _validate_name(backend)
    if name == "cpu":
        return "cpu"
    if name == "cuda":
        ok, why = cuda_status()
        if not ok:
            raise BackendUnavailableError(f"backend 'cuda' is not usable: {why}")
        return "cuda"
    # auto: a real GPU only; the simulator is never picked implicitly.
    got = _auto_cache.get("auto")
    if got is None:
        if importlib.util.find_spec("numba_cuda") is None or simulator_enabled():
            got = "cpu"
        else:
            got = "cuda" if cuda_status()[0] else "cpu"
        _auto_cache["auto"] = got
    return got


def kernels(topic: str, backend: str):
    """Import ``fastgnn.kernels.<backend>.<topic>`` (lazily, so CUDA modules load only when used)."""
    name = f"fastgnn.kernels.{backend}.{topic}"
    mod = sys.modules.get(name)
    return mod if mod is not None else importlib.import_module(name)
