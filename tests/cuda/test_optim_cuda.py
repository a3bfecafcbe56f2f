"""CUDA twins of the optimizer kernels (run under NUMBA_ENABLE_CUDASIM=1, or on a GPU).

Tiny sizes; the flat kernels use 256 threads per block, so sizes above 256 span several blocks. The
simulator evaluates ``math.sqrt`` in float64, so float32 results are compared to 1e-6, not bit for bit.
"""
import numpy as np
import pytest

from fastgnn import backend
from fastgnn.optim import SGD, Adam, AdamW, clip_grad_norm, clip_grad_value
from tests import reference_optim as ref

pytestmark = pytest.mark.skipif(not backend.cuda_available(), reason="CUDA backend not usable here")


@pytest.fixture
def cuda():
    from numba import cuda as _cuda

    return _cuda


SHAPES = [(300,), (3, 5), (1,), (0, 2)]


def _host(rng, dtype):
    return [rng.standard_normal(s).astype(dtype) for s in SHAPES]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kind", ["sgd", "nesterov", "adam", "adamw_ams"])
def test_dense_twins_match_reference(kind, dtype, rng, cuda):
    host = _host(rng, dtype)
    mirror = [h.copy() for h in host]
    dev = [cuda.to_device(h) for h in host]
    if kind == "sgd":
        cfg = dict(lr=0.1, momentum=0.9, dampening=0.2, weight_decay=0.01, maximize=True)
        opt, oracle = SGD(dev, **cfg), ref.SGDRef(mirror, **cfg)
    elif kind == "nesterov":
        cfg = dict(lr=0.1, momentum=0.9, nesterov=True)
        opt, oracle = SGD(dev, **cfg), ref.SGDRef(mirror, **cfg)
    elif kind == "adam":
        cfg = dict(lr=0.01, weight_decay=0.1, betas=(0.3, 0.9))
        opt, oracle = Adam(dev, **cfg), ref.AdamRef(mirror, **cfg)
    else:
        cfg = dict(lr=0.01, weight_decay=0.1, amsgrad=True)
        opt, oracle = AdamW(dev, **cfg), ref.AdamRef(mirror, decoupled=True, **cfg)
    for _ in range(4):
        g = [rng.standard_normal(h.shape).astype(dtype) for h in host]
        assert opt.step([cuda.to_device(x) for x in g]) is True
        oracle.step(g)
    for d, m in zip(dev, mirror):
        got = d.copy_to_host()
        assert got.dtype == dtype
        np.testing.assert_allclose(got, m, rtol=1e-6, atol=1e-7)


def _assert_twin_close(got, want, before, dtype):
    """GPU twin ``got`` vs CPU kernel ``want`` (the same update of ``before``).

    The GPU compiler contracts ``a + b * c`` into one fused multiply-add, the CPU kernel rounds the product
    first: the results may differ by one rounding of the product, at most half an ulp of ``b * c``. Where
    ``a`` and ``b * c`` nearly cancel (p ~ 3e-3 after an update of ~0.3) that half ulp is a large relative
    error of the small result (measured on an H200: 4 of 700 float32 elements off by 2.2e-6 relative, 8e-9
    absolute). The products here are no larger than the operands or the change they make, so ``atol`` is one
    ulp of the largest of those; the rest is held to ``rtol``. float64 stays tight (1e-13 relative, an ulp of
    float64 absolute); the simulator has no FMA and agrees to the bit.
    """
    eps = np.finfo(dtype).eps
    scale = max(np.abs(before).max(), np.abs(want).max(), np.abs(want - before).max())
    np.testing.assert_allclose(got, want, rtol=1e-6 if dtype == np.float32 else 1e-13, atol=eps * scale)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_flat_kernel_twins_share_the_cpu_signature(rng, cuda, dtype):
    from fastgnn.kernels.cpu import optim as cpu
    from fastgnn.kernels.cuda import optim as gpu

    n = 700
    p, g = rng.standard_normal(n).astype(dtype), rng.standard_normal(n).astype(dtype)
    m, v = np.abs(rng.standard_normal((2, n))).astype(dtype)
    vmax = v + 0.1
    f = np.dtype(dtype).type
    args = (f(-0.01), f(0.7), f(0.1), f(0.9), f(0.001), f(0.999), f(1e-8), f(0.05), f(1.0), True)
    before = [a.copy() for a in (p, g, m, v, vmax)]
    host = [a.copy() for a in (p, g, m, v, vmax)]
    cpu.adam_flat(*host, *args)
    dev = [cuda.to_device(a) for a in (p, g, m, v, vmax)]
    gpu.adam_flat[(n + 127) // 128, 128](*dev, *args)
    for h, d, b in zip(host, dev, before):
        _assert_twin_close(d.copy_to_host(), h, b, dtype)
    buf = rng.standard_normal(n).astype(dtype)
    sargs = (False, f(-0.1), f(0.9), f(1.0), f(0.01), True, False)
    hb, hp = buf.copy(), p.copy()
    cpu.sgd_flat(hp, g, hb, *sargs)
    dp, db = cuda.to_device(p), cuda.to_device(buf)
    gpu.sgd_flat[(n + 127) // 128, 128](dp, cuda.to_device(g), db, *sargs)
    _assert_twin_close(dp.copy_to_host(), hp, p, dtype)
    _assert_twin_close(db.copy_to_host(), hb, buf, dtype)


def test_guarded_kernels_write_nothing_when_flagged(rng, cuda):
    from fastgnn.kernels.cuda import optim as gpu

    n = 300
    p, g, m = rng.standard_normal((3, n)).astype(np.float32)
    v, vmax = np.abs(rng.standard_normal((2, n))).astype(np.float32)
    f = np.float32
    args = (f(-0.01), f(0.7), f(0.1), f(0.9), f(0.001), f(0.999), f(1e-8), f(0.05), f(1.0), True)
    sargs = (False, f(-0.1), f(0.9), f(1.0), f(0.01), True, False)
    for code in (1, 0):
        flag = cuda.to_device(np.array([code], np.int32))
        dev = [cuda.to_device(a) for a in (p, g, m, v, vmax)]
        gpu.launch_adam(*dev, *args, flag=flag)
        changed = [not np.array_equal(d.copy_to_host(), a) for d, a in zip(dev, (p, g, m, v, vmax))]
        assert changed == ([False] * 5 if code else [True, False, True, True, True])
        dp, db = cuda.to_device(p), cuda.to_device(m)
        gpu.launch_sgd(dp, cuda.to_device(g), db, *sargs, flag=flag)
        assert np.array_equal(dp.copy_to_host(), p) == bool(code)
        assert np.array_equal(db.copy_to_host(), m) == bool(code)


def _snapshot(opt, dev):
    return [d.copy_to_host() for d in dev], {k: v.copy_to_host() for k, v in opt._state.items()}, opt.steps


def _assert_same(a, b):
    for x, y in zip(a[0], b[0]):
        np.testing.assert_array_equal(x, y)
    assert a[1].keys() == b[1].keys()
    for k in a[1]:
        np.testing.assert_array_equal(a[1][k], b[1][k])
    np.testing.assert_array_equal(a[2], b[2])


@pytest.mark.parametrize("kind", ["nesterov", "adam_ams"])
def test_nonfinite_raise_on_device_keeps_the_last_good_state(kind, rng, cuda):
    host = _host(rng, np.float32)
    dev = [cuda.to_device(h) for h in host]
    if kind == "nesterov":
        opt = SGD(dev, lr=0.1, momentum=0.9, nesterov=True)
    else:
        opt = Adam(dev, lr=0.01, amsgrad=True)
    for _ in range(2):
        assert opt.step([cuda.to_device(rng.standard_normal(h.shape).astype(np.float32)) for h in host]) is True
    before = _snapshot(opt, dev)
    g = [rng.standard_normal(h.shape).astype(np.float32) for h in host]
    g[1][2, 3] = np.inf
    msg = r"grads\[1\]: non-finite value inf at index \(2, 3\) \(parameter 1, shape \(3, 5\)\)"
    with pytest.raises(ValueError, match=msg):
        opt.step([cuda.to_device(x) for x in g])
    _assert_same(_snapshot(opt, dev), before)  # bit for bit: the update wrote nothing
    assert opt.skipped_steps == 0 and opt.steps.tolist() == [2] * len(host)
    # the status word was reset: the next good step goes through and matches a run that never saw the bad one
    g[1][2, 3] = 0.5
    twin_dev = [cuda.to_device(x) for x in before[0]]
    twin = type(opt)(twin_dev, **opt.hyper())
    twin.load_state_dict(opt.state_dict())
    assert opt.step([cuda.to_device(x) for x in g]) is True
    assert twin.step([cuda.to_device(x) for x in g]) is True
    _assert_same(_snapshot(opt, dev), _snapshot(twin, twin_dev))
    assert opt.steps.tolist() == [3] * len(host)


@pytest.mark.parametrize("kind", ["sgd", "adam"])
def test_nonfinite_skip_on_device_does_not_advance(kind, rng, cuda):
    host = _host(rng, np.float32)
    mirror = [h.copy() for h in host]
    dev = [cuda.to_device(h) for h in host]
    if kind == "sgd":
        cfg = dict(lr=0.1, momentum=0.9, dampening=0.1)
        opt, oracle = SGD(dev, nonfinite="skip", **cfg), ref.SGDRef(mirror, **cfg)
    else:
        cfg = dict(lr=0.01, betas=(0.5, 0.9))
        opt, oracle = Adam(dev, nonfinite="skip", **cfg), ref.AdamRef(mirror, **cfg)
    for step in range(5):
        g = [rng.standard_normal(h.shape).astype(np.float32) for h in host]
        bad = step in (0, 2, 3)  # the very first step too: SGD's buffer then starts from the next good gradient
        if bad:
            g[0][7] = np.nan
            before = _snapshot(opt, dev)
        assert opt.step([cuda.to_device(x) for x in g]) is (not bad)
        if bad:
            _assert_same(_snapshot(opt, dev), before)
        else:
            oracle.step(g)
    assert opt.skipped_steps == 3 and opt.steps.tolist() == [2] * len(host)
    for d, m in zip(dev, mirror):
        np.testing.assert_allclose(d.copy_to_host(), m, rtol=1e-6, atol=1e-7)


def test_nonfinite_on_device_names_the_first_bad_of_many(rng, cuda):
    shapes = [(300,), (0,), (7,), (3, 4), (260,), (5,), (1,), (2, 2)]
    dev = [cuda.to_device(rng.standard_normal(s).astype(np.float32)) for s in shapes]
    opt = Adam(dev, lr=0.01)
    for _ in range(2):
        assert opt.step([cuda.to_device(rng.standard_normal(s).astype(np.float32)) for s in shapes]) is True
    before = _snapshot(opt, dev)
    for bad in ([4, 6], [7], [4], [0, 7]):
        g = [rng.standard_normal(s).astype(np.float32) for s in shapes]
        for j in bad:
            g[j].reshape(-1)[-1] = -np.inf
        j = bad[0]
        with pytest.raises(ValueError, match=rf"grads\[{j}\]: non-finite value -inf .*\(parameter {j}, "):
            opt.step([cuda.to_device(x) for x in g])
        _assert_same(_snapshot(opt, dev), before)
    skip = Adam(dev, lr=0.01, nonfinite="skip")
    g[0][:] = np.nan  # a whole tensor of NaN as well as a later bad one
    assert skip.step([cuda.to_device(x) for x in g]) is False and skip.skipped_steps == 1
    assert skip.steps.tolist() == [0] * len(shapes)
    for d, b in zip(dev, before[0]):
        np.testing.assert_array_equal(d.copy_to_host(), b)


def test_guarded_device_step_host_traffic(rng, cuda, monkeypatch):
    """A dense step copies nothing back and nothing up, guarded or not: the guarded step's status word reaches the
    host through mapped memory, stored there by the scan's last block."""
    dev = [cuda.to_device(rng.standard_normal(s).astype(np.float32)) for s in [(300,), (3, 5)]]
    grads = [cuda.to_device(np.ones(d.shape, np.float32)) for d in dev]
    opts = {mode: SGD(dev, lr=0.1, momentum=0.9, nonfinite=mode) for mode in ("raise", "skip", "propagate")}
    for opt in opts.values():
        opt.step(grads)  # allocations of the first step (status word) are not counted
    moved = []
    fake = type(cuda.device_array(1))
    to_host, to_device = fake.copy_to_host, cuda.to_device

    def counting_to_host(self, *a, **kw):
        moved.append(("down", self.dtype, self.size))
        return to_host(self, *a, **kw)

    def counting_to_device(x, *a, **kw):
        moved.append(("up", np.asarray(x).dtype, np.asarray(x).size))
        return to_device(x, *a, **kw)

    monkeypatch.setattr(fake, "copy_to_host", counting_to_host)
    monkeypatch.setattr(cuda, "to_device", counting_to_device)
    for mode, opt in opts.items():
        moved.clear()
        assert opt.step(grads) is True
        assert moved == [], (mode, moved)
    monkeypatch.undo()
    grads[1].copy_to_device(np.full((3, 5), np.nan, np.float32))
    assert opts["skip"].step(grads) is False  # and the word read through mapped memory does say so


@pytest.mark.parametrize("bad", [False, True])
def test_guarded_step_waits_for_the_word_not_for_the_update(rng, cuda, monkeypatch, bad):
    """An event is queued after the scans and before the guarded updates, and the step waits on that event only:
    the updates may still run when step() returns. A non-finite gradient still gives False ("skip") and leaves the
    parameters as they were."""
    from fastgnn.kernels.cuda import optim as ko

    dev = [cuda.to_device(rng.standard_normal(s).astype(np.float32)) for s in [(70,), (3, 5)]]
    grads = [np.ones(d.shape, np.float32) for d in dev]
    if bad:
        grads[1][2, 3] = np.nan
    grads = [cuda.to_device(g) for g in grads]
    before = [d.copy_to_host() for d in dev]
    opt = Adam(dev, lr=0.1, nonfinite="skip")
    log = []
    guard_type = ko.StepGuard

    def logged(name, fn):
        def call(*a, **kw):
            log.append((name, kw.get("flag") is not None))
            return fn(*a, **kw)
        return call

    monkeypatch.setattr(guard_type, "scan", logged("scan", guard_type.scan))
    monkeypatch.setattr(guard_type, "read", logged("event", guard_type.read))
    monkeypatch.setattr(ko, "launch_adam", logged("update", ko.launch_adam))
    waits = []
    sync = guard_type.finish

    def finish(self):
        waits.append(self._pending)
        return sync(self)

    monkeypatch.setattr(guard_type, "finish", finish)
    assert opt.step(grads) is (not bad)
    # both scans, the event behind them, then both guarded updates
    assert log == [("scan", False), ("scan", False), ("event", False), ("update", True), ("update", True)]
    assert waits == [True]  # finish() waited on the event queued before the updates
    monkeypatch.undo()
    after = [d.copy_to_host() for d in dev]
    for a, b in zip(after, before):
        assert np.array_equal(a, b) is bad
    assert opt.skipped_steps == int(bad)


@pytest.mark.parametrize("kind", ["sgd", "adam"])
def test_row_twins_match_reference(kind, rng, cuda):
    table = rng.standard_normal((40, 37)).astype(np.float32)  # 37 columns: two blocks across
    mirror = [table.copy()]
    dev = cuda.to_device(table)
    if kind == "sgd":
        cfg = dict(lr=0.1, momentum=0.9, weight_decay=0.01)
        opt, oracle = SGD([dev], **cfg), ref.SGDRef(mirror, **cfg)
    else:
        cfg = dict(lr=0.01, amsgrad=True, weight_decay=0.1)
        opt, oracle = Adam([dev], **cfg), ref.AdamRef(mirror, **cfg)
    for _ in range(3):
        rows = rng.integers(0, 25, size=30)  # repeats; rows 25.. never touched
        rg = rng.standard_normal((30, 37)).astype(np.float32)
        assert opt.step_rows(0, rows, rg) is True
        oracle.step_rows(0, rows, rg)
    np.testing.assert_allclose(dev.copy_to_host(), mirror[0], rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(dev.copy_to_host()[25:], table[25:])


def test_nonfinite_on_device(rng, cuda):
    dev = [cuda.to_device(np.zeros(300, np.float32))]
    g = np.zeros(300, np.float32)
    g[290] = np.nan
    with pytest.raises(ValueError, match=r"grads\[0\]: non-finite value nan at index 290"):
        Adam(dev).step([cuda.to_device(g)])
    opt = Adam(dev, nonfinite="skip")
    assert opt.step([cuda.to_device(g)]) is False and opt.skipped_steps == 1
    with pytest.raises(TypeError, match=r"grads\[0\]: parameters are on the GPU"):
        Adam(dev).step([g])


def test_state_dict_round_trip_on_device(rng, cuda):
    host = _host(rng, np.float32)
    grads = [[rng.standard_normal(h.shape).astype(np.float32) for h in host] for _ in range(4)]
    a_dev = [cuda.to_device(h) for h in host]
    a = Adam(a_dev, lr=0.01, amsgrad=True)
    for g in grads[:2]:
        a.step([cuda.to_device(x) for x in g])
    sd = a.state_dict()
    snap = [d.copy_to_host() for d in a_dev]
    b_dev = [cuda.to_device(s) for s in snap]
    b = Adam(b_dev, lr=0.01, amsgrad=True)
    b.load_state_dict(sd)
    for g in grads[2:]:
        a.step([cuda.to_device(x) for x in g])
        b.step([cuda.to_device(x) for x in g])
    for x, y in zip(a_dev, b_dev):
        np.testing.assert_array_equal(x.copy_to_host(), y.copy_to_host())


def test_clipping_on_device(rng, cuda):
    host = [rng.standard_normal(s).astype(np.float32) for s in [(600,), (3, 4)]]
    mirror = [h.copy() for h in host]
    dev = [cuda.to_device(h) for h in host]
    norm = clip_grad_norm(dev, 1.0)
    assert norm == pytest.approx(ref.clip_grad_norm_ref(mirror, 1.0), rel=1e-12)
    for d, m in zip(dev, mirror):
        np.testing.assert_allclose(d.copy_to_host(), m, rtol=1e-6)
    clip_grad_value(dev, 0.01)
    ref.clip_grad_value_ref(mirror, 0.01)
    for d, m in zip(dev, mirror):
        np.testing.assert_allclose(d.copy_to_host(), m, rtol=1e-6)


def test_mixed_host_and_device_params_rejected(cuda):
    with pytest.raises(TypeError, match="params: mix of host"):
        SGD([np.zeros(2, np.float32), cuda.to_device(np.zeros(2, np.float32))], lr=0.1)


def test_has_nonfinite_reuses_its_status_word(cuda):
    # the Trainer's per-step divergence check: one status word per thread and device, reset between calls
    from fastgnn.kernels.cuda import optim as ko

    x = np.arange(600, dtype=np.float32)
    assert not ko.has_nonfinite(cuda.to_device(x))
    for bad in (np.nan, np.inf, -np.inf):
        y = x.copy()
        y[517] = bad
        assert ko.has_nonfinite(cuda.to_device(y))
        assert not ko.has_nonfinite(cuda.to_device(x))  # a clean call after a bad one reads clean
    assert not ko.has_nonfinite(cuda.device_array(0, np.float32))
    assert len(ko._guards.by_device) == 1


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_has_nonfinite_finds_every_position(cuda, dtype):
    # the scan's grid: 2 blocks of 256 threads here, elements 512 apart per thread, 8 of them a pass: 2100 elements
    # are all in the partial last pass (the first and last slot of the grid, one past the first grid width, the
    # array's last element)
    from fastgnn.kernels.cuda import optim as ko

    n = 2100
    x = np.linspace(-1, 1, n).astype(dtype)
    assert not ko.has_nonfinite(cuda.to_device(x))
    for at in (0, 511, 512, 1536, 2047, n - 1):
        y = x.copy()
        y[at] = np.nan if at % 2 else -np.inf
        assert ko.has_nonfinite(cuda.to_device(y)), at


@pytest.mark.parametrize("blocks", [1, 3])
def test_step_guard_scans_full_passes_and_publishes_the_largest_code(cuda, blocks):
    """A grid smaller than the array (as on a GPU, where it is 8 blocks a multiprocessor) walks it in full passes of
    8 loads a thread, then a partial one, from the end of the array to its start; every position is seen. The last
    block of each scan stores the word (the largest code of a bad array) into the mapped host word, and its arrival
    counter is ready for the next scan: several scans a step, several steps a guard."""
    from fastgnn.kernels.cuda import optim as ko

    guard = ko.StepGuard()
    guard._max_blocks = blocks
    n = 5000  # one block: 2 full passes of 2048 and a partial one; three blocks: no full pass of 6144
    x = np.linspace(-1, 1, n).astype(np.float32)
    clean = cuda.to_device(x)
    small = cuda.to_device(x[:7])

    def step(*arrays):
        guard.begin()
        for code, a in enumerate(arrays, 1):
            guard.scan(a, code)
        guard.read()
        return guard.finish()

    assert step(clean, small) == 0
    for at in (0, 1, 255, 256, 2047, 2048, 4095, 4096, n - 904, n - 1):
        y = x.copy()
        y[at] = (np.nan, np.inf, -np.inf)[at % 3]
        bad = cuda.to_device(y)
        assert step(bad, clean, small) == 1, at
        assert step(clean, bad) == 2, at
        assert step(bad, clean, bad) == 3, at
        assert step(clean, small, clean) == 0, at  # reset after a bad step
        assert step() == 0  # nothing scanned: the host word still reads clean
    y = np.full(n, np.nan, np.float32)
    assert step(cuda.to_device(y), clean) == 1  # every element bad
    assert step(small) == 0
    guard.begin()
    guard.scan(cuda.to_device(y), 5)  # a step that never finishes (an exception between scan and finish) ...
    assert step() == 0  # ... leaves nothing behind for the next one
    assert step(small, clean) == 0
