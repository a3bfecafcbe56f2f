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


def test_flat_kernel_twins_share_the_cpu_signature(rng, cuda):
    from fastgnn.kernels.cpu import optim as cpu
    from fastgnn.kernels.cuda import optim as gpu

    n = 700
    p, g = rng.standard_normal(n).astype(np.float32), rng.standard_normal(n).astype(np.float32)
    m, v = np.abs(rng.standard_normal((2, n))).astype(np.float32)
    vmax = v + 0.1
    f = np.float32
    args = (f(-0.01), f(0.7), f(0.1), f(0.9), f(0.001), f(0.999), f(1e-8), f(0.05), f(1.0), True)
    host = [a.copy() for a in (p, g, m, v, vmax)]
    cpu.adam_flat(*host, *args)
    dev = [cuda.to_device(a) for a in (p, g, m, v, vmax)]
    gpu.adam_flat[(n + 127) // 128, 128](*dev, *args)
    for h, d in zip(host, dev):
        np.testing.assert_allclose(d.copy_to_host(), h, rtol=1e-6)
    buf = rng.standard_normal(n).astype(np.float32)
    sargs = (False, f(-0.1), f(0.9), f(1.0), f(0.01), True, False)
    hb, hp = buf.copy(), p.copy()
    cpu.sgd_flat(hp, g, hb, *sargs)
    dp, db = cuda.to_device(p), cuda.to_device(buf)
    gpu.sgd_flat[(n + 127) // 128, 128](dp, cuda.to_device(g), db, *sargs)
    np.testing.assert_allclose(dp.copy_to_host(), hp, rtol=1e-6)
    np.testing.assert_allclose(db.copy_to_host(), hb, rtol=1e-6)


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
