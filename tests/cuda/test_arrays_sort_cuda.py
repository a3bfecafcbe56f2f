"""The device radix sort and grouping (``kernels/cuda/arrays.py``) against NumPy references.

Small chunk/block constants so that tiny inputs span several radix chunks, scan tiles and scan levels; under
NUMBA_ENABLE_CUDASIM=1 every thread is a Python thread, so sizes stay small.
"""
import numpy as np
import pytest
from numba import cuda

from fastgnn import backend as fb

pytestmark = [
    pytest.mark.skipif(not fb.cuda_available(), reason=fb.cuda_status()[1]),
    pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning"),
]

MAXKEY = np.iinfo(np.int64).max


def _small(monkeypatch, scan_threads, scan_per):
    from fastgnn.kernels.cuda import arrays

    if not _simulated():
        return arrays  # compiled kernels: the shared/local array sizes are fixed at compile time
    monkeypatch.setattr(arrays, "THREADS", 4)
    monkeypatch.setattr(arrays, "_SCAN_T", scan_threads)
    monkeypatch.setattr(arrays, "_SCAN_PER", scan_per)
    monkeypatch.setattr(arrays, "_CHUNK_ROUNDS", 1)
    monkeypatch.setattr(arrays, "_MAX_CHUNKS", 3)
    monkeypatch.setattr(arrays, "_RED", 4)
    monkeypatch.setattr(arrays, "_PARTS", 3)
    return arrays


@pytest.fixture
def ka(monkeypatch):
    """Sorting and grouping: warp chunks of one round of 32 keys, at most 3 chunks, so 100 keys make 2 chunks of
    2 rounds (the second chunk's last round partial); scan tiles of 64 items (the simulator runs each launch's
    threads as Python threads: an unbounded int64 sort is 8 passes of launches, and smaller tiles made this
    file take 6 minutes)."""
    return _small(monkeypatch, 8, 8)


@pytest.fixture
def ka_scan(monkeypatch):
    """The scan on its own: tiles of 8 items, so 150 entries scan on 3 levels."""
    return _small(monkeypatch, 4, 2)


def _simulated():
    from numba import config

    return bool(config.ENABLE_CUDASIM)


def dev(x):
    return cuda.to_device(np.ascontiguousarray(x)) if np.asarray(x).size else cuda.device_array(0, x.dtype)


def ref_sort(x, bound=None):
    x = np.asarray(x, np.int64)
    pad = (x < 0) if bound is None else ((x < 0) | (x >= bound))
    k = np.where(pad, MAXKEY, x)
    pos = np.argsort(k, kind="stable")
    return k[pos], pos


def inputs(rng, n, dtype, hi):
    x = rng.integers(-3, hi, n).astype(dtype)  # repeats and negative padding
    return x


SIZES = (0, 1, 29, 100)


@pytest.mark.parametrize("dtype", [np.int32, np.int64])
@pytest.mark.parametrize("n", SIZES)
def test_sort_keys_matches_numpy(ka, rng, n, dtype):
    # without a bound an int64 sort runs all 8 passes (those past the top digit return at once): slow in the
    # simulator, so one such case per size. Keys below 300 take 2 passes of 8 bits, below 70,000 three (a middle
    # pass between the two scratch buffers).
    for hi, bound in ((1, None), (5, 5), (300, None if dtype is np.int32 or n < 10 else 300), (300, 1300),
                      (70_000, 70_000)):
        x = inputs(rng, n, dtype, hi)
        want_k, want_p = ref_sort(x)
        k, p = ka.sort_keys(dev(x), bound)
        assert k.dtype == np.int64 and p.dtype == np.int64 and k.shape == (n,) and p.shape == (n,)
        np.testing.assert_array_equal(k.copy_to_host(), want_k)
        np.testing.assert_array_equal(p.copy_to_host(), want_p)


def test_sort_keys_chunk_rounds(ka, rng, monkeypatch):
    # the tuning knob: chunks of 1, 2 and 4 rounds of 32 keys (4, 2 and 1 chunks of 100 keys; at most 5 chunks),
    # the same stable order each time; below one round is an error
    monkeypatch.setattr(ka, "_MAX_CHUNKS", 5)
    x = inputs(rng, 100, np.int64, 600)
    want_k, want_p = ref_sort(x, 600)
    for rounds in (1, 2, 4):
        assert ka._radix_chunk(100, rounds) == 32 * rounds
        k, p = ka.sort_keys(dev(x), 600, rounds=rounds)
        np.testing.assert_array_equal(k.copy_to_host(), want_k)
        np.testing.assert_array_equal(p.copy_to_host(), want_p)
    assert ka._radix_chunk(1000, 1) == 32 * 7  # at most 5 chunks: 1000 keys need rounds of 7
    with pytest.raises(ValueError, match="rounds: expected at least 1, got 0"):
        ka.sort_keys(dev(x), 600, rounds=0)


def test_sort_keys_passes_are_set_by_the_bound(ka, rng, monkeypatch):
    # 8-bit digits: ceil(bits(bound) / 8) scatter launches, each doing work (a pass past the top digit returns at
    # once on the device, so only the launch count shows a wasted pass)
    launches = []

    class Counting:
        def __init__(self, kernel):
            self.kernel = kernel

        def __getitem__(self, config):
            launches.append(config)
            return self.kernel[config]

    monkeypatch.setattr(ka, "_radix_scatter", Counting(ka._radix_scatter))
    x = rng.integers(0, 1000, 40)
    for bound, passes in ((1, 1), (255, 1), (256, 2), (65_535, 2), (65_536, 3), (10 ** 7, 3)):
        launches.clear()
        k, p = ka.sort_keys(dev(x), bound)
        assert len(launches) == passes, bound
        want_k, want_p = ref_sort(x, bound)
        np.testing.assert_array_equal(k.copy_to_host(), want_k)
        np.testing.assert_array_equal(p.copy_to_host(), want_p)


def test_sort_keys_bound_treats_larger_keys_as_padding(ka, rng):
    x = rng.integers(-2, 40, 50)
    k, p = ka.sort_keys(dev(x), 20)
    want_k, want_p = ref_sort(x, 20)
    np.testing.assert_array_equal(k.copy_to_host(), want_k)
    np.testing.assert_array_equal(p.copy_to_host(), want_p)


def test_sort_keys_edge_cases(ka, rng):
    for x in (np.full(9, -1), np.zeros(9, np.int64), np.array([2 ** 40, 3, 2 ** 40, -5, 0]),
              np.array([MAXKEY - 1, 0, -1, MAXKEY - 1]), np.arange(30)[::-1].copy()):
        want_k, want_p = ref_sort(x)
        k, p = ka.sort_keys(dev(x))
        np.testing.assert_array_equal(k.copy_to_host(), want_k)
        np.testing.assert_array_equal(p.copy_to_host(), want_p)
    k, p = ka.sort_keys(dev(np.array([4, -1, 2])), 0)  # an empty key range: everything is padding
    np.testing.assert_array_equal(k.copy_to_host(), [MAXKEY] * 3)
    np.testing.assert_array_equal(p.copy_to_host(), [0, 1, 2])


def ref_group(x, ncols):
    x = np.asarray(x, np.int64)
    valid = np.flatnonzero(x >= 0)
    order = valid[np.argsort(x[valid], kind="stable")]
    rows, counts = np.unique(x[valid], return_counts=True)
    starts = np.concatenate([[0], np.cumsum(counts)])
    return rows, starts, order, order // ncols


@pytest.mark.parametrize("dtype", [np.int32, np.int64])
@pytest.mark.parametrize("n", SIZES)
def test_group_by_row_matches_numpy(ka, rng, n, dtype):
    for hi, ncols, bound in ((1, 1, None), (6, 3, 6), (300, 4, None if dtype is np.int32 else 300)):
        x = inputs(rng, n, dtype, hi)
        want = ref_group(x, ncols)
        got = ka.group_by_row(dev(x), ncols, bound=bound)
        for w, g in zip(want, got):
            assert g.dtype == np.int64
            np.testing.assert_array_equal(g.copy_to_host(), w)


@pytest.mark.parametrize("n", SIZES)
def test_key_starts_after_sort(ka, rng, n):
    x = rng.integers(-2, 9, n)
    k, _ = ka.sort_keys(dev(x))
    starts = ka.key_starts(k, 9).copy_to_host()
    np.testing.assert_array_equal(starts, np.searchsorted(np.sort(x[x >= 0]), np.arange(10)))


@pytest.mark.parametrize("n", (0, 1, 8, 9, 65, 150))
def test_exclusive_scan_and_offsets(ka_scan, rng, n):
    ka = ka_scan
    c = rng.integers(0, 5, n).astype(np.int64)
    off = ka.offsets_from_counts(dev(c)).copy_to_host()
    np.testing.assert_array_equal(off, np.concatenate([[0], np.cumsum(c)]))
    x = dev(c) if n else cuda.device_array(0, np.int64)
    total = dev(np.zeros(3, np.int64))
    ka.exclusive_scan(x, x, total, 2)  # in place
    np.testing.assert_array_equal(x.copy_to_host(), np.concatenate([[0], np.cumsum(c)])[:n])
    np.testing.assert_array_equal(total.copy_to_host(), [0, 0, c.sum()])


@pytest.mark.parametrize("src_dtype,dst_dtype", [(np.float32, np.float32), (np.int64, np.int64),
                                                 (np.float32, np.float64), (np.int32, np.int64)])
def test_copy_into_places_and_casts(ka, rng, monkeypatch, src_dtype, dst_dtype):
    """``copy_into`` writes ``src`` at the offset of a flat view of a 2-d buffer, casting where the dtypes differ,
    and leaves the rest alone; one dtype takes the driver's copy (the cast kernel is not launched), except from a
    strided source, which the driver's copy refuses."""
    src = rng.integers(-50, 50, 13).astype(src_dtype)
    base = np.arange(40, dtype=dst_dtype).reshape(8, 5)
    dst = cuda.to_device(base)
    calls = []
    real = ka._copy_into

    class Counting:
        def __getitem__(self, config):
            calls.append(config)
            return real[config]

    monkeypatch.setattr(ka, "_copy_into", Counting())
    ka.copy_into(dev(src), dst.reshape(40), 7)
    ka.copy_into(cuda.device_array(0, src_dtype), dst.reshape(40), 40)  # empty: nothing, even at the end
    want = base.reshape(40).copy()
    want[7:20] = src
    np.testing.assert_array_equal(dst.copy_to_host().reshape(40), want)
    cast = src_dtype != dst_dtype
    assert len(calls) == cast
    ka.copy_into(dev(np.repeat(src, 2))[::2], dst.reshape(40), 25)  # a strided source: the kernel, any dtype
    want[25:38] = src
    np.testing.assert_array_equal(dst.copy_to_host().reshape(40), want)
    assert len(calls) == cast + 1
