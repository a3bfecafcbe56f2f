"""Warp sums (``kernels/cuda/warp.py``) against NumPy: several warps per block, several blocks, float32 and
float64 inputs; every lane must get the warp's total."""
import numpy as np
import pytest

from fastgnn import backend as fb

if not fb.cuda_available():
    pytest.skip(fb.cuda_status()[1], allow_module_level=True)

from numba import cuda, float64  # noqa: E402

from fastgnn.kernels.cuda.warp import scratch_size, warp_max, warp_sum, warp_sum2  # noqa: E402

BLOCK = 64
_SCRATCH = scratch_size(BLOCK)


@cuda.jit
def _sums(x, y, out1, out2x, out2y):
    scratch = cuda.shared.array(_SCRATCH, float64)
    g = cuda.grid(1)
    lane = cuda.threadIdx.x % 32
    w = cuda.threadIdx.x // 32
    out1[g] = warp_sum(x[g], scratch, lane, w)
    a, b = warp_sum2(x[g], y[g], scratch, lane, w)
    out2x[g] = a
    out2y[g] = b


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_warp_sums_match_numpy_on_every_lane(dtype):
    rng = np.random.default_rng(3)
    n = 3 * BLOCK
    x = rng.standard_normal(n).astype(dtype)
    y = (rng.standard_normal(n) * 100).astype(dtype)
    outs = [np.zeros(n) for _ in range(3)]
    _sums[n // BLOCK, BLOCK](x, y, *outs)
    want_x = np.repeat(x.astype(np.float64).reshape(-1, 32).sum(axis=1), 32)
    want_y = np.repeat(y.astype(np.float64).reshape(-1, 32).sum(axis=1), 32)
    tol = dict(rtol=1e-5, atol=1e-5) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(outs[0], want_x, **tol)
    np.testing.assert_allclose(outs[1], want_x, **tol)
    np.testing.assert_allclose(outs[2], want_y, **tol)
    for o in outs:  # the same value on all 32 lanes of a warp, bit for bit
        assert np.all(o.reshape(-1, 32) == o.reshape(-1, 32)[:, :1])


@cuda.jit
def _many_sums(x, rounds, out):
    # back-to-back reductions with no other barrier between them, lanes of different speed (lane-dependent
    # busy work): a reused scratch half would mix up consecutive sums
    scratch = cuda.shared.array(_SCRATCH, float64)
    g = cuda.grid(1)
    lane = cuda.threadIdx.x % 32
    w = cuda.threadIdx.x // 32
    acc = 0.0
    for r in range(rounds):
        busy = 0.0
        for q in range(lane * (r % 3)):
            busy += q
        acc += warp_sum(x[g] * (r + 1) + 0.0 * busy, scratch, lane, w)
    out[g] = acc


@cuda.jit
def _maxima(x, out):
    scratch = cuda.shared.array(_SCRATCH, float64)
    g = cuda.grid(1)
    out[g] = warp_max(x[g], scratch, cuda.threadIdx.x % 32, cuda.threadIdx.x // 32)


def test_warp_max_on_every_lane():
    """The warp's largest value on all its lanes; -inf lanes, a warp of equal values, a NaN on one lane."""
    rng = np.random.default_rng(5)
    n = 3 * BLOCK
    x = rng.standard_normal(n)
    x[:32] = -np.inf
    x[40] = np.inf
    x[64:96] = 2.5
    x[100] = np.nan
    out = np.zeros(n)
    _maxima[n // BLOCK, BLOCK](x, out)
    w = x.reshape(-1, 32)
    want = np.where(np.isnan(w).any(axis=1), np.nan, np.nanmax(w, axis=1))
    np.testing.assert_array_equal(out, np.repeat(want, 32))


def test_back_to_back_warp_sums():
    rng = np.random.default_rng(4)
    n = 2 * BLOCK
    x = rng.standard_normal(n)
    out = np.zeros(n)
    _many_sums[n // BLOCK, BLOCK](x, 7, out)
    want = np.repeat(x.reshape(-1, 32).sum(axis=1), 32) * sum(r + 1 for r in range(7))
    np.testing.assert_allclose(out, want, rtol=1e-12, atol=1e-12)


def test_scratch_size_needs_whole_warps():
    from fastgnn.kernels.cuda.warp import SIM

    assert scratch_size(128) == (4 * 128 if SIM else 1)
    with pytest.raises(ValueError, match="block: 48 threads"):
        scratch_size(48)
