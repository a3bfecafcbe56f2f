"""Device kernels of the autograd (fastgnn/kernels/cuda/autograd.py) against NumPy, run under
NUMBA_ENABLE_CUDASIM=1 (make test-cuda) or on a real GPU.

Small blocks (the ``small`` fixture) make the tiny inputs span several blocks; the GEMM also runs once with
its real tile. Exact ops are compared bit for bit with NumPy in the same dtype.
"""
import numpy as np
import pytest
from numba import cuda

from fastgnn import backend

cuda_ok, why = backend.cuda_status()
pytestmark = pytest.mark.skipif(not cuda_ok, reason=f"CUDA backend not usable: {why}")

DTYPES = [np.float32, np.float64]


@pytest.fixture
def ka():
    from fastgnn.kernels.cuda import autograd

    return autograd


@pytest.fixture
def small(ka, monkeypatch, rejit):
    """Blocks small enough that the test inputs span several of them (the GEMM: 4 x 4 threads of 4 x 4 outputs,
    16 x 16 tiles, K slices of 4). The kernels read the GEMM and column-sum constants, so on a GPU they are
    compiled afresh."""
    monkeypatch.setattr(ka, "THREADS", 8)
    monkeypatch.setattr(ka, "TILE", (4, 2))
    for name, value in ka.gemm_constants(4, 4, 4, 4).items():
        monkeypatch.setattr(ka, name, value)
    monkeypatch.setattr(ka, "CS_TX", 4)
    monkeypatch.setattr(ka, "CS_TY", 4)
    monkeypatch.setattr(ka, "CS_MIN_ROWS", 4)
    rejit(ka)
    return ka


def _dev(x):
    return cuda.to_device(np.ascontiguousarray(x))


def _garbage(shape, dtype):
    """A device array full of NaN (so that an element the kernel forgets to write shows)."""
    return _dev(np.full(shape, np.nan, dtype))


def _gemm_tol(dtype, k):
    return dict(rtol=1e-5 * max(1, k) ** 0.5, atol=1e-5 * max(1, k) ** 0.5) if dtype == np.float32 \
        else dict(rtol=1e-12, atol=1e-12)


def _stored(rng, shape, trans, dtype):
    """A random matrix with op(stored) of ``shape``."""
    return rng.standard_normal(shape[::-1] if trans else shape).astype(dtype)


def _op(x, trans):
    return x.T if trans else x


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("trans_a", [False, True])
@pytest.mark.parametrize("trans_b", [False, True])
def test_matmul_small_tiles(rng, small, dtype, trans_a, trans_b):
    M, K, N = 37, 19, 45  # 3 x 3 tiles of 16 x 16, 5 K slices of 4, none of them whole at the edges
    A = _stored(rng, (M, K), trans_a, dtype)
    B = _stored(rng, (K, N), trans_b, dtype)
    out = _garbage((M, N), dtype)
    small.matmul(_dev(A), _dev(B), out, trans_a=trans_a, trans_b=trans_b)
    got = out.copy_to_host()
    assert got.dtype == dtype
    want = _op(A, trans_a).astype(np.float64) @ _op(B, trans_b).astype(np.float64)
    np.testing.assert_allclose(got, want, **_gemm_tol(dtype, K))


@pytest.mark.parametrize("dtype,trans_a,trans_b,K,parts", [
    (np.float32, False, False, 21, 1), (np.float64, True, False, 21, 1), (np.float32, False, True, 21, 1),
    (np.float64, True, True, 21, 1),
    (np.float32, True, False, 50, 2), (np.float64, True, False, 50, 2)])  # Aᵀ G, the weight-gradient shape
def test_matmul_real_tile(rng, ka, monkeypatch, dtype, trans_a, trans_b, K, parts):
    """2 x 2 tiles of 128 x 128, the second ones partial; K = 21: K slices of 8, 8 and 5; K = 50: split in 2 ranges
    of 32 (MM_SPLIT_MIN_K is read on the host only, so the compiled kernels stay valid)."""
    monkeypatch.setattr(ka, "MM_SPLIT_MIN_K", 24)
    M, N = 140, 131
    assert ka._split_k(M, N, K) == ((1, K) if parts == 1 else (parts, 32))
    A = _stored(rng, (M, K), trans_a, dtype)
    B = _stored(rng, (K, N), trans_b, dtype)
    out = _garbage((M, N), dtype)
    ka.matmul(_dev(A), _dev(B), out, trans_a=trans_a, trans_b=trans_b)
    want = _op(A, trans_a).astype(np.float64) @ _op(B, trans_b).astype(np.float64)
    np.testing.assert_allclose(out.copy_to_host(), want, **_gemm_tol(dtype, K))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("trans_a", [False, True])
@pytest.mark.parametrize("trans_b", [False, True])
def test_matmul_split_k_small_tiles(rng, small, monkeypatch, dtype, trans_a, trans_b):
    """Few output tiles and a long K: the product runs as K ranges added in order, the last one partial."""
    monkeypatch.setattr(small, "MM_SPLIT_BLOCKS", 16)
    monkeypatch.setattr(small, "MM_SPLIT_MIN_K", 8)
    M, K, N = 20, 61, 9  # 2 tiles of 16 x 16; K in 6 ranges of 12 (the last holds one k)
    assert small._split_k(M, N, K) == (6, 12)
    A = _stored(rng, (M, K), trans_a, dtype)
    B = _stored(rng, (K, N), trans_b, dtype)
    out = _garbage((M, N), dtype)
    small.matmul(_dev(A), _dev(B), out, trans_a=trans_a, trans_b=trans_b)
    want = _op(A, trans_a).astype(np.float64) @ _op(B, trans_b).astype(np.float64)
    np.testing.assert_allclose(out.copy_to_host(), want, **_gemm_tol(dtype, K))
    again = _garbage((M, N), dtype)
    small.matmul(_dev(A), _dev(B), again, trans_a=trans_a, trans_b=trans_b)
    np.testing.assert_array_equal(again.copy_to_host(), out.copy_to_host())  # fixed order: the same bits


def test_gemm_constants(ka):
    assert ka.gemm_constants(ka.MM_TX, ka.MM_TY, ka.MM_R, ka.MM_BK) == {
        name: getattr(ka, name) for name in ka.gemm_constants(4, 4, 4, 4)}
    assert ka.gemm_constants(4, 4, 4, 4)["MM_A_SHARED"] == (4, 20)
    with pytest.raises(ValueError, match="GEMM layout"):
        ka.gemm_constants(4, 4, 8, 4)  # 16 threads cannot stage 32 rows
    with pytest.raises(ValueError, match="whole runs of 4"):
        ka.gemm_constants(6, 6, 6, 4)  # columns are read from shared memory 4 at a time


def test_split_k_parts_cover_k(ka):
    assert ka._split_k(200_000, 256, 128) == (1, 128)  # many tiles: one pass
    assert ka._split_k(128, 256, 1500) == (1, 1500)  # K too short for two ranges
    for M, N, K in [(128, 256, 200_000), (256, 128, 200_000), (64, 64, 2048), (300, 300, 10**6)]:
        parts, kchunk = ka._split_k(M, N, K)
        tiles = -(-M // ka.MM_BM) * -(-N // ka.MM_BN)
        assert parts >= 2 and kchunk % ka.MM_BK == 0 and (parts - 1) * kchunk < K <= parts * kchunk
        assert parts * tiles <= ka.MM_SPLIT_BLOCKS and kchunk >= ka.MM_SPLIT_MIN_K
    assert ka._split_k(128, 256, 200_000) == (194, 1032)  # 2 tiles of 128 x 128


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
def test_matmul_propagates_nonfinite(small):
    A = np.ones((5, 3))
    A[2, 1] = np.inf
    B = np.ones((3, 18))
    B[0, 17] = np.nan
    out = _garbage((5, 18), np.float64)
    small.matmul(_dev(A), _dev(B), out)
    np.testing.assert_array_equal(out.copy_to_host(), A @ B)


@pytest.mark.parametrize("shape", [(0, 4, 5), (4, 3, 0), (0, 0, 0)])
def test_matmul_empty_output_launches_nothing(small, monkeypatch, shape):
    M, K, N = shape
    monkeypatch.setattr(small, "_matmul", None)  # any launch would fail
    small.matmul(_dev(np.ones((M, K))), _dev(np.ones((K, N))), cuda.device_array((M, N)))


def test_matmul_zero_inner_dimension_writes_zeros(small):
    out = _garbage((5, 18), np.float32)
    small.matmul(_dev(np.ones((0, 5), np.float32)), _dev(np.ones((0, 18), np.float32)), out, trans_a=True)
    np.testing.assert_array_equal(out.copy_to_host(), np.zeros((5, 18), np.float32))


def test_matmul_rejects_mismatched_shapes(ka):
    with pytest.raises(ValueError, match="matmul"):
        ka.matmul(_dev(np.ones((3, 4))), _dev(np.ones((5, 2))), cuda.device_array((3, 2)))
    with pytest.raises(ValueError, match="matmul"):
        ka.matmul(_dev(np.ones((3, 4))), _dev(np.ones((4, 2))), cuda.device_array((2, 3)))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("in_place", [False, True])
def test_add_row(rng, small, dtype, in_place):
    X = rng.standard_normal((9, 11)).astype(dtype)
    b = rng.standard_normal((1, 11)).astype(dtype)
    dX = _dev(X)
    out = dX if in_place else _garbage(X.shape, dtype)
    small.add_row(dX, _dev(b), out)
    np.testing.assert_array_equal(out.copy_to_host(), X + b)


@pytest.mark.parametrize("dtype", DTYPES)
def test_scale_columns(rng, small, dtype):
    X = rng.standard_normal((9, 11)).astype(dtype)
    s = rng.standard_normal(11).astype(dtype)
    out = _garbage(X.shape, dtype)
    small.scale_columns(_dev(X), _dev(s), out)
    np.testing.assert_array_equal(out.copy_to_host(), X * s[None, :])


@pytest.mark.parametrize("dtype", DTYPES)
def test_add_scaled_rows_rounds_like_numpy(rng, small, dtype):
    X = rng.standard_normal((9, 11)).astype(dtype)
    o = rng.standard_normal((9, 11)).astype(dtype)
    s = rng.random(9).astype(dtype)
    out = _dev(o)
    small.add_scaled_rows(out, _dev(s), _dev(X))
    np.testing.assert_array_equal(out.copy_to_host(), o + s[:, None] * X)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("alias", [False, True])
def test_add_and_mul(rng, small, dtype, alias):
    a = rng.standard_normal(29).astype(dtype)
    b = rng.standard_normal(29).astype(dtype)
    for fn, want in ((small.add, a + b), (small.mul, a * b)):
        da = _dev(a)
        out = da if alias else _garbage(29, dtype)
        fn(da, _dev(b), out)
        np.testing.assert_array_equal(out.copy_to_host(), want)


@pytest.mark.parametrize("dtype", DTYPES)
def test_axpy_and_scale(rng, small, dtype):
    x = rng.standard_normal(29).astype(dtype)
    y = rng.standard_normal(29).astype(dtype)
    dy = _dev(y)
    small.axpy(-0.3, _dev(x), dy)
    tol = dict(rtol=1e-6, atol=1e-7) if dtype == np.float32 else dict(rtol=1e-15, atol=1e-16)
    np.testing.assert_allclose(dy.copy_to_host(), y + dtype(-0.3) * x, **tol)
    out = _garbage(29, dtype)
    small.scale(_dev(x), 0.7, out)
    np.testing.assert_array_equal(out.copy_to_host(), dtype(0.7) * x)


def _special(rng, n, dtype):
    x = rng.standard_normal(n).astype(dtype)
    x[:5] = [0.0, -0.0, np.nan, np.inf, -np.inf]
    return x


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
@pytest.mark.parametrize("dtype", DTYPES)
def test_relu_matches_cpu_twin(rng, small, dtype):
    from fastgnn.kernels.cpu import autograd as cpu

    x = _special(rng, 29, dtype)
    g = rng.standard_normal(29).astype(dtype)
    g[5:8] = [np.inf, np.nan, -np.inf]
    x[5:8] = 1.0  # a non-finite gradient where the unit is on stays non-finite
    x[8] = -1.0
    g[8] = np.inf  # ... and inf * 0 = NaN where it is off, as the CPU's product gives
    y = np.empty_like(x)
    cpu.relu_forward(x, y)
    out = _garbage(29, dtype)
    small.relu_forward(_dev(x), out)
    got_y = out.copy_to_host()
    np.testing.assert_array_equal(got_y, y)
    np.testing.assert_array_equal(got_y, np.where(x > 0, x, 0))
    gx = np.empty_like(x)
    cpu.relu_backward(g, y, gx)
    out = _garbage(29, dtype)
    small.relu_backward(_dev(g), _dev(y), out)
    np.testing.assert_array_equal(out.copy_to_host(), gx)


@pytest.mark.parametrize("dtype", DTYPES)
def test_elu_forward(rng, small, dtype):
    x = _special(rng, 29, dtype) * dtype(3)
    alpha = 0.8
    out, deriv = _garbage(29, dtype), _garbage(29, dtype)
    small.elu_forward(_dev(x), alpha, out, deriv)
    x64 = x.astype(np.float64)
    with np.errstate(invalid="ignore"):
        neg = alpha * np.expm1(x64)
    tol = dict(rtol=2e-6, atol=1e-7) if dtype == np.float32 else dict(rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(out.copy_to_host(), np.where(x64 > 0, x64, neg), **tol)
    np.testing.assert_allclose(deriv.copy_to_host(), np.where(x64 > 0, 1.0, neg + alpha), **tol)
    assert np.isnan(out.copy_to_host()[2]) and np.isnan(deriv.copy_to_host()[2])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", [1, 3, 30])
def test_column_sums(rng, small, dtype, n):
    G = (rng.standard_normal((n, 11)) * 10).astype(dtype)
    out = _garbage((1, 11), dtype)
    small.column_sums(_dev(G), out)
    want = G.astype(np.float64).sum(axis=0, keepdims=True)
    tol = dict(rtol=1e-6, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-13, atol=1e-13)
    got = out.copy_to_host()
    np.testing.assert_allclose(got, want, **tol)
    assert small.column_parts(n) == min(small.CS_PARTS, -(-n // 4))
    scratch = cuda.device_array(small.column_parts(n) * 11 + 3)  # a reused, larger scratch: the same bits
    out2 = _garbage((1, 11), dtype)
    small.column_sums(_dev(G), out2, scratch=scratch)
    np.testing.assert_array_equal(out2.copy_to_host(), got)


def test_column_sums_no_rows_writes_zeros(small):
    out = _garbage((1, 7), np.float32)
    small.column_sums(_dev(np.ones((0, 7), np.float32)), out)
    np.testing.assert_array_equal(out.copy_to_host(), np.zeros((1, 7), np.float32))


@pytest.mark.parametrize("dtype", DTYPES)
def test_mean_axis1_and_broadcast(rng, small, dtype):
    N, H, F = 5, 3, 9
    x = rng.standard_normal((N, H, F)).astype(dtype)
    out = _garbage((N, F), dtype)
    small.mean_axis1(_dev(x), out)
    tol = dict(rtol=1e-6, atol=1e-7) if dtype == np.float32 else dict(rtol=1e-15, atol=1e-16)
    np.testing.assert_allclose(out.copy_to_host(), x.mean(axis=1), **tol)
    g = rng.standard_normal((N, F)).astype(dtype)
    gx = _garbage((N, H, F), dtype)
    small.broadcast_axis1(_dev(g), H, gx)
    np.testing.assert_array_equal(gx.copy_to_host(), np.broadcast_to(g[:, None, :] / H, (N, H, F)))


def test_empty_inputs_launch_nothing(small, monkeypatch):
    for name in ("_add_row", "_scale_columns", "_add_scaled_rows", "_mean_axis1", "_broadcast_axis1", "_add",
                 "_mul", "_axpy", "_scale", "_relu_forward", "_relu_backward", "_elu_forward", "_column_partials",
                 "_column_finish"):
        monkeypatch.setattr(small, name, None)  # any launch would fail
    e = cuda.device_array(0)
    z = cuda.device_array((0, 4))
    small.add_row(z, cuda.device_array((1, 4)), z)
    small.add_row(cuda.device_array((3, 0)), cuda.device_array((1, 0)), cuda.device_array((3, 0)))
    small.scale_columns(z, cuda.device_array(4), z)
    small.add_scaled_rows(z, e, z)
    small.mean_axis1(cuda.device_array((0, 2, 4)), z)
    small.mean_axis1(cuda.device_array((3, 2, 0)), cuda.device_array((3, 0)))
    small.broadcast_axis1(z, 2, cuda.device_array((0, 2, 4)))
    small.broadcast_axis1(cuda.device_array((3, 4)), 0, cuda.device_array((3, 0, 4)))
    for fn in (small.add, small.mul):
        fn(e, e, e)
    small.axpy(2.0, e, e)
    small.scale(e, 2.0, e)
    small.relu_forward(e, e)
    small.relu_backward(e, e, e)
    small.elu_forward(e, 1.0, e, e)
    small.column_sums(cuda.device_array((5, 0)), cuda.device_array((1, 0)))
