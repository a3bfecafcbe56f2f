import os
import pickle
from pathlib import Path

import numpy as np
import pytest


def pytest_collection_modifyitems(config, items):
    # Under NUMBA_ENABLE_CUDASIM the device code runs on NumPy scalars, which warn on the 64-bit
    # wrap-around the counter-based hash relies on; on a GPU the same code wraps silently.
    mark = pytest.mark.filterwarnings("ignore:overflow encountered in scalar:RuntimeWarning")
    for item in items:
        if "tests/cuda/" in str(item.fspath).replace("\\", "/"):
            item.add_marker(mark)


_FRESH = {}  # rejit's kernel copies: (module, name, constants) -> dispatcher


@pytest.fixture
def rejit(monkeypatch):
    """``rejit(module)``: fresh, uncached copies of ``module``'s CUDA kernels and device functions, for a test that
    patches constants the kernels read (tile sizes, shared-array shapes), not only the launch geometry.

    On a GPU a kernel freezes the module globals it reads when it compiles, and keeps that code in memory and in
    the on-disk cache: patching ``MM_TX`` after ``_matmul`` compiled leaves a 16 x 16-thread kernel launched
    with 4 x 4 threads (an H100 gave NaN rows, then an illegal address). The copies compile on their first
    launch, with the patched values; ``monkeypatch`` puts the originals back afterwards. Device functions are
    replaced too, so that the new kernels inline new device functions. Copies are kept for the session, per
    module and values of its upper-case constants, so each variant compiles once. Under the simulator kernels
    run as Python and read the globals at every call: nothing to do."""
    from numba import config

    def rejit_module(module):
        if config.ENABLE_CUDASIM:
            return
        from numba import cuda
        from numba.cuda.dispatcher import CUDADispatcher

        consts = tuple(sorted((k, repr(v)) for k, v in vars(module).items() if k.isupper()))
        for name, obj in list(vars(module).items()):
            if isinstance(obj, CUDADispatcher) and obj.py_func.__module__ == module.__name__:
                key = (module.__name__, name, consts)
                if key not in _FRESH:
                    o = obj.targetoptions
                    _FRESH[key] = cuda.jit(device=o["device"], inline=o["inline"], fastmath=o["fastmath"])(obj.py_func)
                monkeypatch.setattr(module, name, _FRESH[key])

    return rejit_module


@pytest.fixture
def small_blocks(monkeypatch):
    """Small blocks in the device-input tests, so that their tiny inputs still span several blocks."""
    from fastgnn.kernels.cuda import arrays as ka
    from fastgnn.kernels.cuda import losses as kl
    from fastgnn.kernels.cuda import mining as km
    from fastgnn.kernels.cuda import optim as ko
    from fastgnn.kernels.cuda import walks as kw

    monkeypatch.setattr(kl, "THREADS", 4)
    monkeypatch.setattr(kl, "TILE", (4, 2))
    monkeypatch.setattr(ka, "THREADS", 4)
    monkeypatch.setattr(kw, "_THREADS", 4)
    monkeypatch.setattr(km, "_THREADS", 2)
    monkeypatch.setattr(ko, "_ROW_TY", 2)  # rows per block of the row-sparse optimizer kernels


@pytest.fixture
def host_waits(monkeypatch):
    """A list of the points where the host waits for the device, in order: ``("copy", size)`` for each copy of a
    device array to the host (``copy_to_host``), ``("flag", 1)`` for each status word a
    :class:`~fastgnn.kernels.cuda.optim.StepGuard` reads (its scans publish it into mapped host memory). Copies
    made by indexing a device array element (``x[0]``) are not seen; fastgnn's device paths make none."""
    from numba import cuda

    from fastgnn.kernels.cuda import optim as ko

    log = []
    cls = type(cuda.device_array(1))  # DeviceNDArray on a GPU, FakeCUDAArray in the simulator
    real_copy, real_finish = cls.copy_to_host, ko.StepGuard.finish

    def copy_to_host(self, *args, **kwargs):
        log.append(("copy", int(self.size)))
        return real_copy(self, *args, **kwargs)

    def finish(self):
        log.append(("flag", 1))
        return real_finish(self)

    monkeypatch.setattr(cls, "copy_to_host", copy_to_host)
    monkeypatch.setattr(ko.StepGuard, "finish", finish)
    return log


# --------------------------------------------------------------------------- kernel signature recording
# With FASTGNN_RECORD_KERNEL_SIGNATURES=<dir> under the simulator, every launch of a fastgnn kernel records
# (module, qualname, argument types), the types typed as numba-cuda's dispatcher would type the same
# arguments on a GPU; pytest_sessionfinish writes the set to <dir>/signatures-<pid>.pkl, which
# tests/test_cuda_ptx.py compiles to PTX in a normal process (`make test`).
_RECORD_DIR = os.environ.get("FASTGNN_RECORD_KERNEL_SIGNATURES")
_recorded = set()


def _argument_typer():
    """``typeof(value)`` as the real dispatcher types a kernel argument, with simulator arrays typed like
    ``DeviceNDArray`` (its layout rules, not ``FakeCUDAArray._numba_type_``'s) and a cache for arrays
    and scalars."""
    import importlib.util

    import numba.cuda
    from numba.cuda import types
    from numba.cuda.np import numpy_support
    from numba.cuda.simulator.args import ArgHint
    from numba.cuda.simulator.cudadrv.devicearray import FakeCUDAArray
    from numba.cuda.typing.typeof import Purpose, typeof

    # DeviceNDArray's contiguity flags come from cudadrv/dummyarray.py, which the simulator replaces by a stub:
    # load the real file (plain Python, no driver) under a private name.
    path = Path(numba.cuda.__file__).parent / "cudadrv" / "dummyarray.py"
    spec = importlib.util.spec_from_file_location("_fastgnn_cuda_dummyarray", path)
    dummyarray = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(dummyarray)
    cache = {}

    def device_array_type(ary):  # DeviceNDArray._numba_type_ for the same shape and strides
        key = (ary.dtype, ary.shape, ary.strides)
        ty = cache.get(key)
        if ty is None:
            flags = dummyarray.Array.from_desc(0, ary.shape, ary.strides, ary.dtype.itemsize).flags
            broadcast = 0 in ary.strides and ary.size != 0
            if flags["C_CONTIGUOUS"] and not broadcast:
                layout = "C"
            elif flags["F_CONTIGUOUS"] and not broadcast:
                layout = "F"
            else:
                layout = "A"
            ty = cache[key] = types.Array(numpy_support.from_dtype(ary.dtype), ary.ndim, layout)
        return ty

    def typeof_arg(val):
        cls = type(val)
        if isinstance(val, FakeCUDAArray):
            ary = val._ary
            return numpy_support.from_dtype(ary.dtype) if isinstance(ary, np.void) else device_array_type(ary)
        if cls is int:
            if not -(1 << 63) <= val < (1 << 63):  # uint64 or an error, as the dispatcher decides
                return typeof(val, Purpose.argument)
            key = int
        elif cls is float or cls is bool or cls is complex:
            key = cls
        elif isinstance(val, np.generic):
            key = (cls, val.dtype)
        elif isinstance(val, np.ndarray):
            key = (cls, val.dtype, val.shape, val.strides, val.flags.writeable, val.flags.aligned)
        elif isinstance(val, tuple):  # numba's tuple typing, elements typed as here
            return types.BaseTuple.from_types([typeof_arg(v) for v in val], cls)
        elif isinstance(val, ArgHint):  # cuda.In/Out/InOut: typed as the wrapped array
            return typeof_arg(val.value)
        else:  # __cuda_array_interface__ objects and the rest: the dispatcher's own typeof
            return typeof(val, Purpose.argument)
        ty = cache.get(key)
        if ty is None:
            ty = cache[key] = typeof(val, Purpose.argument)
        return ty

    return typeof_arg


def _install_recorder():
    from numba.cuda.simulator import kernel as sim_kernel

    typeof_arg = _argument_typer()
    base = sim_kernel.FakeCUDAKernel

    class RecordingKernel(base):
        def __call__(self, *args):
            # a launch (not a call from inside a kernel) of a fastgnn kernel (not one defined in a test)
            if sim_kernel._kernel_context is None and self.fn.__module__.startswith("fastgnn."):
                fn = self.fn
                _recorded.add((fn.__module__, fn.__qualname__, tuple(typeof_arg(a) for a in args)))
            return base.__call__(self, *args)

    configure = base.__getitem__

    def configure_and_record(self, configuration):
        # Only launches configure a kernel (kernel[grid, block]): switching such a kernel's class leaves the
        # device-function calls, far more numerous, on the simulator's own __call__.
        if not self._device:
            self.__class__ = RecordingKernel
        return configure(self, configuration)

    base.__getitem__ = configure_and_record


def pytest_sessionfinish(session, exitstatus):
    if not (_RECORD_DIR and _recorded):
        return
    out = Path(_RECORD_DIR)
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / f".signatures-{os.getpid()}.tmp"
    tmp.write_bytes(pickle.dumps(sorted(_recorded, key=repr), protocol=pickle.HIGHEST_PROTOCOL))
    tmp.replace(out / f"signatures-{os.getpid()}.pkl")


if _RECORD_DIR:
    from numba import config

    if config.ENABLE_CUDASIM:
        _install_recorder()
