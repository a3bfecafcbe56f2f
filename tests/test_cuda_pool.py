"""The stream-ordered device memory pool (``fastgnn._cuda_pool``), driven through a recording fake of the
CUDA driver API: which calls it makes, on which stream, in which order, and what it falls back to.

The real driver is exercised by ``tests/cuda/test_cuda_pool_gpu.py`` on a GPU. The plugin cannot run under the
simulator (the simulator has no device memory), so these tests run in the CPU process.
"""
import gc
import os

import pytest

from fastgnn import backend as fb

pytest.importorskip("numba_cuda")
if fb.simulator_enabled():  # pragma: no cover - the CPU suite runs without the simulator
    pytest.skip("the memory plugin needs numba's real driver module", allow_module_level=True)

from numba.cuda.cudadrv import driver as drv  # noqa: E402

from fastgnn import _cuda_pool as cp  # noqa: E402

OOM = drv.binding.CUresult.CUDA_ERROR_OUT_OF_MEMORY
LEGACY = int(drv.binding.CU_STREAM_LEGACY)


class FakeDriver:
    """Records every call as ``(name, args)``; hands out increasing pointers."""

    def __init__(self, pools=True, fail=None, oom=0):
        self.calls = []
        self.pools = pools
        self.fail = fail or {}
        self.oom = oom  # cuMemAllocAsync answers out-of-memory this many times
        self.next_ptr = 0x1000

    def _record(self, name, *args):
        self.calls.append((name, args))
        if name in self.fail:
            raise drv.CudaAPIError(self.fail[name], f"fake {name} failure")

    def _ptr(self, size):
        ptr = drv.binding.CUdeviceptr(self.next_ptr)
        self.next_ptr += max(size, 1) + 256
        return ptr

    def cuDeviceGetAttribute(self, attr, dev):
        self._record("cuDeviceGetAttribute", attr, dev)
        return 1 if self.pools else 0

    def cuDeviceGetDefaultMemPool(self, dev):
        self._record("cuDeviceGetDefaultMemPool", dev)
        return "pool0"

    def cuMemPoolSetAttribute(self, pool, attr, value):
        self._record("cuMemPoolSetAttribute", pool, attr, int(value))

    def cuMemPoolGetAttribute(self, pool, attr):
        self._record("cuMemPoolGetAttribute", pool, attr)
        return drv.binding.cuuint64_t(1000 + int(attr))

    def cuMemAllocAsync(self, size, stream):
        self._record("cuMemAllocAsync", size, int(stream))
        if self.oom:
            self.oom -= 1
            raise drv.CudaAPIError(OOM, "fake out of memory")
        return self._ptr(size)

    def cuMemFreeAsync(self, ptr, stream):
        self._record("cuMemFreeAsync", int(ptr), int(stream))

    def cuMemAlloc(self, size):
        self._record("cuMemAlloc", size)
        return self._ptr(size)

    def cuMemFree(self, ptr):
        self._record("cuMemFree", int(ptr))

    def cuCtxSynchronize(self):
        self._record("cuCtxSynchronize")

    def cuMemPoolTrimTo(self, pool, keep):
        self._record("cuMemPoolTrimTo", pool, keep)

    def cuMemGetInfo(self):
        self._record("cuMemGetInfo")
        return 3 << 30, 4 << 30

    def named(self, name):
        return [args for n, args in self.calls if n == name]


class FakeDevice:
    id = 0


class FakeContext:
    device = FakeDevice()


@pytest.fixture
def fake(monkeypatch):
    def make(**kw):
        d = FakeDriver(**kw)
        monkeypatch.setattr(drv, "driver", d)  # numba's driver object, which the plugin and numba's own code call
        # numba makes the logger its pending-free queue writes to when the real driver initialises
        monkeypatch.setattr(drv, "_logger", drv.make_logger(), raising=False)
        return d

    return make


def manager(ctx=None):
    mm = cp.StreamOrderedPool(context=ctx or FakeContext())
    mm.initialize()
    return mm


def test_pool_set_up_keeps_its_reserve(fake):
    d = fake()
    mm = manager()
    assert mm.pool == "pool0"
    assert "stream-ordered pool" in mm.reason
    (pool, attr, value), = d.named("cuMemPoolSetAttribute")
    assert (pool, attr, value) == ("pool0", drv.binding.CUmemPool_attribute.CU_MEMPOOL_ATTR_RELEASE_THRESHOLD,
                                   2**64 - 1)
    mm.initialize()  # numba calls it on every activation: the pool is set up once
    assert len(d.named("cuDeviceGetDefaultMemPool")) == 1
    assert mm.deallocations.memory_capacity == 4 << 30


def test_alloc_and_free_are_stream_ordered_on_the_legacy_stream(fake):
    d = fake()
    mm = manager()
    ctx = mm.context
    owned = [mm.memalloc(100 + i) for i in range(12)]
    ptrs = [int(o.device_ctypes_pointer.value) for o in owned]
    assert [a for a in d.named("cuMemAllocAsync")] == [(100 + i, LEGACY) for i in range(12)]
    assert len(set(ptrs)) == 12 and not d.named("cuMemAlloc")
    assert mm.pool_allocations == 12 and mm.driver_allocations == 0
    assert len(mm.allocations) == 12
    del owned, ctx
    gc.collect()
    # numba's queue: the 11th pending free flushes the queue (NUMBA_CUDA_MAX_PENDING_DEALLOCS_COUNT = 10)
    freed = d.named("cuMemFreeAsync")
    assert len(freed) == 11 and {s for _, s in freed} == {LEGACY}
    assert len(mm.allocations) == 0 and len(mm.deallocations) == 1
    mm.deallocations.clear()
    freed = d.named("cuMemFreeAsync")
    assert sorted(p for p, _ in freed) == sorted(ptrs)  # each block freed once, the one it was given
    assert not d.named("cuMemFree") and not d.named("cuCtxSynchronize")  # nothing waits for the device


def queue_frees(mm, n, size):
    """Allocate ``n`` blocks and drop them inside ``defer_cleanup()``: their frees wait in the queue."""
    with mm.defer_cleanup():
        owned = [mm.memalloc(size) for _ in range(n)]
        del owned
        gc.collect()


def test_defer_cleanup_holds_the_frees(fake):
    d = fake()
    mm = manager()
    queue_frees(mm, 15, 64)
    assert not d.named("cuMemFreeAsync")  # 15 > the flush count, yet nothing freed while deferred
    assert len(mm.deallocations) == 15
    mm.deallocations.clear()
    assert len(d.named("cuMemFreeAsync")) == 15


def test_out_of_memory_flushes_syncs_trims_and_retries_once(fake):
    d = fake()
    mm = manager()
    held = mm.memalloc(8)
    d.oom = 1
    del held
    gc.collect()
    assert len(mm.deallocations) == 1  # queued, not yet freed
    mark = len(d.calls)
    mem = mm.memalloc(1 << 20)
    names = [n for n, _ in d.calls[mark:]]
    assert names == ["cuMemAllocAsync", "cuMemFreeAsync", "cuCtxSynchronize", "cuMemPoolTrimTo", "cuMemAllocAsync"]
    assert d.named("cuMemPoolTrimTo") == [("pool0", 0)]
    assert mem is not None
    d.oom = 2
    with pytest.raises(drv.CudaAPIError) as err:
        mm.memalloc(1 << 40)
    assert err.value.code == OOM


def test_other_driver_errors_are_not_retried(fake):
    d = fake(fail={"cuMemAllocAsync": drv.binding.CUresult.CUDA_ERROR_INVALID_VALUE})
    mm = manager()
    with pytest.raises(drv.CudaAPIError):
        mm.memalloc(10)
    assert len(d.named("cuMemAllocAsync")) == 1 and not d.named("cuCtxSynchronize")


@pytest.mark.parametrize("kw, why", [
    ({"pools": False}, "no memory-pool support"),
    ({"fail": {"cuMemPoolSetAttribute": drv.binding.CUresult.CUDA_ERROR_NOT_SUPPORTED}},
     "setting up the memory pool failed"),
])
def test_falls_back_to_cumemalloc(fake, kw, why):
    d = fake(**kw)
    mm = manager()
    assert mm.pool is None and why in mm.reason
    owned = [mm.memalloc(32) for _ in range(11)]
    ptrs = [int(o.device_ctypes_pointer.value) for o in owned]
    assert d.named("cuMemAlloc") == [(32,)] * 11 and not d.named("cuMemAllocAsync")
    assert mm.driver_allocations == 11 and mm.pool_allocations == 0
    del owned
    gc.collect()
    assert sorted(d.named("cuMemFree")) == [(p,) for p in sorted(ptrs)] and not d.named("cuMemFreeAsync")
    assert mm.stats() == {"pool_allocations": 0, "driver_allocations": 11}


def test_stats_read_the_pool(fake):
    fake()
    mm = manager()
    keep = mm.memalloc(10)
    a = drv.binding.CUmemPool_attribute
    assert mm.stats() == {"pool_allocations": 1, "driver_allocations": 0,
                          "reserved_bytes": 1000 + int(a.CU_MEMPOOL_ATTR_RESERVED_MEM_CURRENT),
                          "used_bytes": 1000 + int(a.CU_MEMPOOL_ATTR_USED_MEM_CURRENT),
                          "used_high_bytes": 1000 + int(a.CU_MEMPOOL_ATTR_USED_MEM_HIGH)}
    with pytest.raises(RuntimeError, match="FASTGNN_CUDA_POOL"):
        mm.get_ipc_handle(keep)


def test_reset_frees_everything_then_trims(fake):
    d = fake()
    mm = manager()
    queue_frees(mm, 3, 16)
    mark = len(d.calls)
    mm.reset()
    assert [n for n, _ in d.calls[mark:]] == ["cuMemFreeAsync"] * 3 + ["cuCtxSynchronize", "cuMemPoolTrimTo"]


def test_a_free_after_the_context_is_gone_is_dropped(fake):
    d = fake(fail={"cuMemFreeAsync": drv.binding.CUresult.CUDA_ERROR_DEINITIALIZED})
    cp._free(drv.binding.CUdeviceptr(0x10))  # at interpreter exit: nothing left to free
    d.fail = {"cuMemFreeAsync": drv.binding.CUresult.CUDA_ERROR_INVALID_VALUE}
    with pytest.raises(drv.CudaAPIError):
        cp._free(drv.binding.CUdeviceptr(0x10))


def test_the_environment_switch(monkeypatch):
    for raw, want in [("1", True), (" ON ", True), ("yes", True), ("0", False), ("off", False), ("", True)]:
        monkeypatch.setenv("FASTGNN_CUDA_POOL", raw)
        assert fb.cuda_pool_requested() is want
    monkeypatch.delenv("FASTGNN_CUDA_POOL")
    assert fb.cuda_pool_requested() is True  # on by default
    monkeypatch.setenv("FASTGNN_CUDA_POOL", "sometimes")
    with pytest.raises(ValueError, match="FASTGNN_CUDA_POOL"):
        fb.cuda_pool_requested()


def test_install_sets_numbas_memory_manager_only_before_a_context(monkeypatch):
    monkeypatch.setattr(drv, "_memory_manager", None)
    monkeypatch.setenv("FASTGNN_CUDA_POOL", "0")
    assert cp.install() is False and drv._memory_manager is None
    assert "not requested" in cp.info()["reason"] or "no CUDA driver" in cp.info()["reason"]

    monkeypatch.setenv("FASTGNN_CUDA_POOL", "1")
    monkeypatch.setattr(cp, "_open_context", lambda: object())  # some other code opened the GPU first
    assert cp.install() is False and drv._memory_manager is None
    monkeypatch.setattr(cp, "_open_context", lambda: None)
    assert cp.install() is True
    assert drv._memory_manager is cp.StreamOrderedPool
    assert cp.install() is True  # idempotent


def test_numbas_own_switch_finds_the_plugin():
    # NUMBA_CUDA_MEMORY_MANAGER=fastgnn._cuda_pool makes numba import the module and use this attribute
    assert cp._numba_memory_manager is cp.StreamOrderedPool
    assert cp.StreamOrderedPool(context=None).interface_version == drv._SUPPORTED_EMM_INTERFACE_VERSION


def test_pool_info_without_a_gpu_reports_why():
    out = fb.cuda_pool_info()
    assert set(out) >= {"requested", "active", "reason"}
    if not fb.cuda_status()[0]:
        assert out["active"] is False


def test_env_is_read_per_call(monkeypatch):
    monkeypatch.setenv("FASTGNN_CUDA_POOL", "1")
    assert fb.cuda_pool_info()["requested"] is True
    monkeypatch.setenv("FASTGNN_CUDA_POOL", "0")
    assert fb.cuda_pool_info()["requested"] is False
    assert os.environ["FASTGNN_CUDA_POOL"] == "0"
