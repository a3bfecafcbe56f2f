"""A stream-ordered device memory pool for the CUDA backend (on by default; ``FASTGNN_CUDA_POOL=0`` turns it
off).

Numba allocates every device array with ``cuMemAlloc`` and frees it with ``cuMemFree``, ten at a time
(``NUMBA_CUDA_MAX_PENDING_DEALLOCS_COUNT``). ``cuMemFree`` waits for the whole device, so a training step
that makes a few dozen temporaries stalls the host several times, and the host can no longer queue kernels
ahead of the GPU. PyTorch and CuPy avoid this with caching allocators.

:class:`StreamOrderedPool` is a Numba EMM plugin (``numba.cuda.set_memory_manager``) that takes device
memory from the device's default memory pool with ``cuMemAllocAsync`` and gives it back with
``cuMemFreeAsync``, both on the legacy default stream. Neither call waits for the device; a block freed by
one step is reused by the next in stream order, and the pool keeps the memory it has reserved (release
threshold set to the maximum) instead of returning it to the driver at every synchronisation.

Why this is safe for fastgnn: every fastgnn kernel and copy runs on the default stream, and the legacy
default stream is ordered with every blocking stream, so a free runs after all work queued before it.
User code that keeps Numba device arrays in use on *non-blocking* streams must hold them alive (or use
``numba.cuda.defer_cleanup()``, which this plugin honours) until that work is done, exactly as with any
stream-ordered allocator.

The pool must be chosen before the process creates its CUDA context: :func:`fastgnn.backend.cuda_status`
installs it just before its first GPU probe unless ``FASTGNN_CUDA_POOL=0``. If a context already
exists (made by other code), the pool stays off and :func:`info` says why. A device without memory-pool
support, or a driver call that fails while the pool is set up, leaves the plugin allocating with
``cuMemAlloc``/``cuMemFree`` as Numba does.
"""
from __future__ import annotations

import weakref

from numba.cuda.cudadrv import driver as _drv

from fastgnn.backend import POOL_ENV_VAR as ENV_VAR, cuda_pool_requested as requested

__all__ = ["ENV_VAR", "StreamOrderedPool", "requested", "install", "info"]


_binding = _drv.binding
_STREAM = _binding.CUstream(_binding.CU_STREAM_LEGACY)
_OOM = _binding.CUresult.CUDA_ERROR_OUT_OF_MEMORY
_GONE = (_binding.CUresult.CUDA_ERROR_DEINITIALIZED, _binding.CUresult.CUDA_ERROR_CONTEXT_IS_DESTROYED)
_ATTR = _binding.CUmemPool_attribute
_KEEP_ALL = 2**64 - 1

_install_note = "not requested"


def _free(ptr):
    """The pending-free queue's destructor of a pool block (``driver`` looked up per call: tests swap it)."""
    try:
        _drv.driver.cuMemFreeAsync(ptr, _STREAM)
    except _drv.CudaAPIError as exc:
        if exc.code not in _GONE:  # at interpreter exit the context may already be gone: nothing to free
            raise


def _finalizer(manager, ptr, alloc_key, size):
    allocations = manager.allocations
    deallocations = manager.deallocations

    def core():
        if allocations:
            allocations.pop(alloc_key, None)
        deallocations.add_item(_free, ptr, size)  # the same queue as Numba's, so defer_cleanup() holds frees

    return core


class StreamOrderedPool(_drv.NumbaCUDAMemoryManager):
    """Numba EMM plugin: device memory from the default memory pool, allocated and freed stream-ordered.

    Attributes
    ----------
    pool
        The device's default ``CUmemoryPool``, or ``None`` when the plugin fell back to ``cuMemAlloc``.
    reason
        One sentence: what the plugin allocates with, and why.
    pool_allocations, driver_allocations
        How many allocations each path has served (for benchmarks and tests).

    Without a pool every call is Numba's own (``NumbaCUDAMemoryManager``: ``cuMemAlloc`` / ``cuMemFree``).
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.pool = None
        self.reason = "not initialised yet (no CUDA context)"
        self.pool_allocations = 0
        self.driver_allocations = 0
        self._ready = False

    def initialize(self):
        super().initialize()  # the pending-free queue's capacity
        if self._ready:
            return
        self._ready = True
        api = _drv.driver
        dev = self.context.device.id
        try:
            supported = api.cuDeviceGetAttribute(
                _binding.CUdevice_attribute.CU_DEVICE_ATTRIBUTE_MEMORY_POOLS_SUPPORTED, dev)
            if not supported:
                self.reason = f"device {dev} has no memory-pool support: cuMemAlloc/cuMemFree as Numba does"
                return
            pool = api.cuDeviceGetDefaultMemPool(dev)
            api.cuMemPoolSetAttribute(pool, _ATTR.CU_MEMPOOL_ATTR_RELEASE_THRESHOLD, _binding.cuuint64_t(_KEEP_ALL))
        except _drv.CudaAPIError as exc:
            self.reason = f"setting up the memory pool failed ({exc}): cuMemAlloc/cuMemFree as Numba does"
            return
        self.pool = pool
        self.reason = f"stream-ordered pool of device {dev} (cuMemAllocAsync/cuMemFreeAsync, legacy stream)"

    def memalloc(self, size):
        if self.pool is None:
            self.driver_allocations += 1
            return super().memalloc(size)
        ptr = self._alloc_async(size)
        self.pool_allocations += 1
        alloc_key = int(ptr)
        ctx = weakref.proxy(self.context)
        mem = _drv.AutoFreePointer(ctx, ptr, size, finalizer=_finalizer(self, ptr, alloc_key, size))
        self.allocations[alloc_key] = mem
        return mem.own()

    def _alloc_async(self, size):
        api = _drv.driver
        try:
            return api.cuMemAllocAsync(size, _STREAM)
        except _drv.CudaAPIError as exc:
            if exc.code != _OOM:
                raise
        # Out of memory: queue the pending frees, let every queued free run, hand the pool's unused
        # reserve back to the driver (a large block may not fit the pieces it holds), and try once more.
        self.deallocations.clear()
        api.cuCtxSynchronize()
        api.cuMemPoolTrimTo(self.pool, 0)
        return api.cuMemAllocAsync(size, _STREAM)

    def get_ipc_handle(self, memory):
        if self.pool is not None:  # cuIpcGetMemHandle refuses memory of the default pool (not exportable)
            raise RuntimeError(
                "device memory from fastgnn's stream-ordered pool cannot be shared with another process "
                f"(the driver exports no IPC handle for it); set {ENV_VAR}=0 before the GPU is opened to share device "
                "arrays")
        return super().get_ipc_handle(memory)

    def reset(self):
        super().reset()  # drops the registry and flushes the queued frees
        if self.pool is not None:
            try:
                api = _drv.driver
                api.cuCtxSynchronize()
                api.cuMemPoolTrimTo(self.pool, 0)
            except _drv.CudaAPIError as exc:
                if exc.code not in _GONE:
                    raise

    def stats(self) -> dict:
        """Counters, and the pool's reserved / in-use / peak bytes when the pool is on."""
        out = {"pool_allocations": self.pool_allocations, "driver_allocations": self.driver_allocations}
        if self.pool is not None:
            api = _drv.driver
            for key, attr in (("reserved_bytes", _ATTR.CU_MEMPOOL_ATTR_RESERVED_MEM_CURRENT),
                              ("used_bytes", _ATTR.CU_MEMPOOL_ATTR_USED_MEM_CURRENT),
                              ("used_high_bytes", _ATTR.CU_MEMPOOL_ATTR_USED_MEM_HIGH)):
                out[key] = int(api.cuMemPoolGetAttribute(self.pool, attr))
        return out


# ``NUMBA_CUDA_MEMORY_MANAGER=fastgnn._cuda_pool`` selects the plugin through Numba's own switch as well.
_numba_memory_manager = StreamOrderedPool


def _open_context():
    """The first device's Numba context already created in this process, else ``None`` (creates none)."""
    from numba.cuda.cudadrv import devices

    return next((g.primary_context for g in devices.gpus if g.primary_context is not None), None)


def install() -> bool:
    """Make :class:`StreamOrderedPool` Numba's memory manager unless ``FASTGNN_CUDA_POOL`` turns it off.

    Called by :func:`fastgnn.backend.cuda_status` before it opens the GPU. Returns whether the plugin was
    set; when not, :func:`info` says why.
    """
    global _install_note
    if not requested():
        _install_note = f"not requested ({ENV_VAR} is off)"
        return False
    if _drv._memory_manager is StreamOrderedPool:
        _install_note = "installed"
        return True
    try:
        opened = _open_context()
    except (_drv.CudaDriverError, _drv.CudaSupportError):
        opened = None  # no driver: nothing was opened, and the probe that follows says why
    if opened is not None:
        _install_note = "a CUDA context existed before fastgnn opened the GPU; its memory manager stays"
        return False
    from numba import cuda

    cuda.set_memory_manager(StreamOrderedPool)
    _install_note = "installed"
    return True


def info() -> dict:
    """``{"requested", "active", "reason", ...counters}`` for the current CUDA context (does not create one)."""
    out = {"requested": requested(), "active": False, "reason": _install_note}
    try:
        ctx = _open_context()
    except (_drv.CudaDriverError, _drv.CudaSupportError) as exc:
        out["reason"] = "no CUDA driver: " + " ".join(str(exc).split())
        return out
    if ctx is None:
        return out
    mm = ctx.memory_manager
    if isinstance(mm, StreamOrderedPool):
        out["active"] = mm.pool is not None
        out["reason"] = mm.reason
        out.update(mm.stats())
    else:
        out["reason"] = f"the CUDA context uses {type(mm).__name__}: {_install_note}"
    return out
