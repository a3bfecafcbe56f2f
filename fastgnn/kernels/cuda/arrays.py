"""Small device-array primitives the public functions need to keep device inputs on the device.

* value checks without copying the data to the host: :func:`launch_nonfinite_scan` and
  :func:`launch_range_scan` write into a small int64 ``status`` array that is copied back once for all checks;
* a deterministic sum (fixed grid, fixed tree: the same bits on every run): :func:`sum_into`;
* fill / iota / gather / scatter / cast-copy helpers, and CSR offsets from counts (:func:`offsets_from_counts`);
* a stable grouping of integer keys (the device twin of ``kernels/cpu/losses.py:group_by_row``): a bitonic
  sort of ``(key, position)`` pairs, then either a compaction (:func:`group_by_row`) or per-key starts found by
  binary search (:func:`key_starts`). Ties are ordered by position, so the grouped order — and every sum taken
  in it — is the CPU's and does not depend on scheduling.

Every launch helper takes device arrays and returns device arrays; none copies data to the host except
:func:`group_by_row`, which reads back the two counts that size its outputs.
"""
import math

import numpy as np
from numba import cuda, float64, int64

THREADS = 128  # threads per block of the 1-d launches (tests lower it so tiny inputs span several blocks)
_RED = 64  # threads of the single-block reductions (shared memory is sized at compile time)
_PARTS = 256  # blocks of the first pass of a sum (a fixed grid keeps the summation order fixed)
MAXKEY = np.iinfo(np.int64).max


def _grid(n):
    t = max(1, min(THREADS, n))
    return (n + t - 1) // t, t


def empty(shape, dtype):
    """An uninitialised device array."""
    return cuda.device_array(shape, dtype=dtype)


def upload(x):
    """A host array on the device (size-0 arrays are allocated, not copied)."""
    x = np.ascontiguousarray(x)
    if x.size == 0:
        return cuda.device_array(x.shape, dtype=x.dtype)
    return cuda.to_device(x)


# --------------------------------------------------------------------------- value checks
@cuda.jit
def _nonfinite_scan(x, status, slot):
    i = cuda.grid(1)
    if i < x.shape[0] and not math.isfinite(x[i]):
        cuda.atomic.min(status, slot, i)  # the first bad position; contention only when values are bad


@cuda.jit
def _range_scan(x, lo, hi, status, slot):
    i = cuda.grid(1)
    if i < x.shape[0]:
        v = int64(x[i])
        if v < lo:
            cuda.atomic.min(status, slot, v)
        elif v >= hi:
            cuda.atomic.max(status, slot + 1, v)


def launch_nonfinite_scan(flat, status, slot):
    """``status[slot] = min(status[slot], first position of a NaN/inf in flat)``."""
    if flat.shape[0]:
        _nonfinite_scan[_grid(flat.shape[0])](flat, status, slot)


def launch_range_scan(flat, lo, hi, status, slot):
    """Lowest value below ``lo`` into ``status[slot]`` and highest value ``>= hi`` into ``status[slot + 1]``
    (atomics run only on offending values; initialise the slots to ``lo`` and ``hi - 1``)."""
    if flat.shape[0]:
        _range_scan[_grid(flat.shape[0])](flat, int64(lo), int64(hi), status, slot)


# --------------------------------------------------------------------------- deterministic sums
@cuda.jit(device=True, inline=True)
def block_tree(buf, tid, n):
    """Sum ``buf[:n]`` (n a power of two, one entry per thread of the block) into ``buf[0]`` in a fixed
    tree order: deterministic, unlike atomics."""
    step = n // 2
    while step > 0:
        if tid < step:
            buf[tid] += buf[tid + step]
        cuda.syncthreads()
        step //= 2


@cuda.jit
def _partial_sums(x, parts):
    """Block b sums x[b*_RED + t + k*G*_RED] over t, k (G = number of blocks) into parts[b]."""
    tid = cuda.threadIdx.x
    b = cuda.blockIdx.x
    stride = cuda.gridDim.x * _RED
    buf = cuda.shared.array(_RED, float64)
    acc = 0.0
    for i in range(b * _RED + tid, x.shape[0], stride):
        acc += x[i]
    buf[tid] = acc
    cuda.syncthreads()
    block_tree(buf, tid, _RED)
    if tid == 0:
        parts[b] = buf[0]


def sum_into(flat, out, slot):
    """``out[slot] = Σ flat`` (float64) with a fixed grid and tree: deterministic, no host copy."""
    n = flat.shape[0]
    blocks = max(1, min(_PARTS, (n + _RED - 1) // _RED))
    if blocks == 1:
        _partial_sums[1, _RED](flat, out[slot:slot + 1])
        return
    parts = cuda.device_array(blocks, np.float64)
    _partial_sums[blocks, _RED](flat, parts)
    _partial_sums[1, _RED](parts, out[slot:slot + 1])


# --------------------------------------------------------------------------- fill, iota, gather, copy
@cuda.jit
def _fill(out, value):
    i = cuda.grid(1)
    if i < out.shape[0]:
        out[i] = value


@cuda.jit
def _iota(out):
    i = cuda.grid(1)
    if i < out.shape[0]:
        out[i] = i


@cuda.jit
def _take(src, idx, out):
    i = cuda.grid(1)
    if i < out.shape[0]:
        out[i] = src[idx[i]]


@cuda.jit
def _copy_into(src, dst, offset):
    i = cuda.grid(1)
    if i < src.shape[0]:
        dst[offset + i] = src[i]


@cuda.jit
def _scatter(out, idx, value):
    i = cuda.grid(1)
    if i < idx.shape[0]:
        out[idx[i]] = value  # repeated ids write the same value: no race on the result


@cuda.jit
def _average(a, b, out):
    i = cuda.grid(1)
    if i < out.shape[0]:
        out[i] = 0.5 * (a[i] + b[i])


def full(n, value, dtype=np.float64):
    out = cuda.device_array(n, dtype=dtype)
    if n:
        _fill[_grid(n)](out, value)
    return out


def fill(out, value):
    """``out[:] = value`` on a 1-d device array."""
    if out.shape[0]:
        _fill[_grid(out.shape[0])](out, value)
    return out


def iota(n):
    """int64 ``[0, 1, ..., n-1]`` on the device."""
    out = cuda.device_array(n, dtype=np.int64)
    if n:
        _iota[_grid(n)](out)
    return out


def take(src, idx, dtype=None):
    """``src[idx]`` for 1-d device arrays."""
    out = cuda.device_array(idx.shape[0], dtype=src.dtype if dtype is None else dtype)
    if idx.shape[0]:
        _take[_grid(idx.shape[0])](src, idx, out)
    return out


def copy_into(src, dst, offset):
    """``dst[offset:offset + len(src)] = src`` (1-d, casting to ``dst``'s dtype)."""
    if src.shape[0]:
        _copy_into[_grid(src.shape[0])](src, dst, int64(offset))


def scatter_fill(out, idx, value):
    """``out[idx] = value`` (1-d; ``idx`` in range, repeats allowed)."""
    if idx.shape[0]:
        _scatter[_grid(idx.shape[0])](out, idx, value)
    return out


def average(a, b, out):
    """``out = (a + b) / 2`` elementwise (1-d)."""
    if out.shape[0]:
        _average[_grid(out.shape[0])](a, b, out)
    return out


# --------------------------------------------------------------------------- stable grouping by key
@cuda.jit
def _pad_keys(src, keys, pos):
    """keys[i] = src[i] (negative keys and the padding up to a power of two sort last), pos[i] = i."""
    i = cuda.grid(1)
    if i < keys.shape[0]:
        k = MAXKEY
        if i < src.shape[0]:
            v = int64(src[i])
            if v >= 0:
                k = v
        keys[i] = k
        pos[i] = i


@cuda.jit
def _bitonic_step(keys, pos, j, k):
    """One compare-exchange stage of a bitonic sort of (keys, pos) pairs in lexicographic order."""
    i = cuda.grid(1)
    if i >= keys.shape[0]:
        return
    p = i ^ j
    if p <= i:
        return
    a = keys[i]
    b = keys[p]
    greater = a > b or (a == b and pos[i] > pos[p])
    if (i & k) == 0:
        swap = greater
    else:
        swap = not greater
    if swap:
        keys[i] = b
        keys[p] = a
        t = pos[i]
        pos[i] = pos[p]
        pos[p] = t


def sort_keys(flat):
    """Stable sort of a 1-d device array of integer keys; negative keys (padding) are dropped to the end.

    Returns ``(keys, pos)``: int64 device arrays of a power-of-two length ``L >= len(flat)``; ``keys`` ascending
    (padding as ``MAXKEY``), ``pos`` the original positions, ascending within equal keys. A bitonic network:
    ``log2(L)·(log2(L)+1)/2`` launches of ``L`` threads, no data-dependent branching, no atomics.
    """
    n = flat.shape[0]
    L = 1 << (max(n, 1) - 1).bit_length()
    keys = cuda.device_array(L, dtype=np.int64)
    pos = cuda.device_array(L, dtype=np.int64)
    grid = _grid(L)
    _pad_keys[grid](flat, keys, pos)
    k = 2
    while k <= L:
        j = k // 2
        while j > 0:
            _bitonic_step[grid](keys, pos, int64(j), int64(k))
            j //= 2
        k *= 2
    return keys, pos


@cuda.jit
def _segment_flags(keys, flags, counts):
    """flags[i] = 1 where a new key starts; counts[0] = number of real (non-padding) keys."""
    i = cuda.grid(1)
    L = keys.shape[0]
    if i >= L:
        return
    k = keys[i]
    real = k != MAXKEY
    flags[i] = 1 if real and (i == 0 or keys[i - 1] != k) else 0
    if real and (i + 1 == L or keys[i + 1] == MAXKEY):
        counts[0] = i + 1
    if i == 0 and not real:
        counts[0] = 0


@cuda.jit
def _exclusive_scan(flags, out, counts):
    """One block: out = exclusive prefix sums of flags; counts[1] = total. Each thread scans a contiguous chunk."""
    tid = cuda.threadIdx.x
    n = flags.shape[0]
    chunk = (n + _RED - 1) // _RED
    lo = min(tid * chunk, n)
    hi = min(lo + chunk, n)
    buf = cuda.shared.array(_RED, int64)
    s = int64(0)
    for i in range(lo, hi):
        s += flags[i]
    buf[tid] = s
    cuda.syncthreads()
    if tid == 0:
        acc = int64(0)
        for t in range(_RED):
            v = buf[t]
            buf[t] = acc
            acc += v
        counts[1] = acc
    cuda.syncthreads()
    acc = buf[tid]
    for i in range(lo, hi):
        out[i] = acc
        acc += flags[i]


def offsets_from_counts(counts):
    """int64 CSR offsets ``[0, c0, c0 + c1, ..., Σ c]`` [n + 1] of a 1-d int64 device array of counts (a one-block
    scan: the same sums on every run)."""
    n = counts.shape[0]
    offsets = cuda.device_array(n + 1, dtype=np.int64)
    total = cuda.device_array(2, dtype=np.int64)
    _exclusive_scan[1, _RED](counts, offsets[:n], total)
    copy_into(total[1:], offsets, n)
    return offsets


@cuda.jit
def _compact(keys, pos, flags, slot, nvalid, ncols, rows, starts, order, major):
    i = cuda.grid(1)
    if i >= nvalid:
        return
    e = pos[i]
    order[i] = e
    major[i] = e // ncols
    if flags[i]:
        rows[slot[i]] = keys[i]
        starts[slot[i]] = i
    if i == nvalid - 1:
        starts[slot[i] + flags[i]] = nvalid


def group_by_row(flat, ncols=1):
    """Device twin of the CPU ``group_by_row``: group the non-negative entries of ``flat`` by value, stably.

    Returns device arrays ``rows`` (sorted distinct values) [R], ``starts`` [R + 1], ``order`` (positions in
    ``flat``, grouped) [V] and ``major`` (``order // ncols``) [V]. Reads back the counts ``R`` and ``V`` (two
    int64 scalars: the output shapes depend on them).
    """
    keys, pos = sort_keys(flat)
    L = keys.shape[0]
    flags = cuda.device_array(L, dtype=np.int64)
    counts = cuda.device_array(2, dtype=np.int64)
    _segment_flags[_grid(L)](keys, flags, counts)
    slot = cuda.device_array(L, dtype=np.int64)
    _exclusive_scan[1, _RED](flags, slot, counts)
    V, R = (int(c) for c in counts.copy_to_host())
    rows = cuda.device_array(R, dtype=np.int64)
    starts = cuda.device_array(R + 1, dtype=np.int64)
    order = cuda.device_array(V, dtype=np.int64)
    major = cuda.device_array(V, dtype=np.int64)
    if V:
        _compact[_grid(V)](keys, pos, flags, slot, int64(V), int64(ncols), rows, starts, order, major)
    else:
        fill(starts, 0)
    return rows, starts, order, major


@cuda.jit
def _lower_bounds(keys, starts):
    """starts[x] = first i with keys[i] >= x (keys sorted ascending)."""
    x = cuda.grid(1)
    if x >= starts.shape[0]:
        return
    lo = 0
    hi = keys.shape[0]
    while lo < hi:
        mid = (lo + hi) // 2
        if keys[mid] < x:
            lo = mid + 1
        else:
            hi = mid
    starts[x] = lo


def key_starts(keys, num_keys):
    """For sorted ``keys`` (from :func:`sort_keys`, all real keys ``< num_keys``): int64 ``starts`` [num_keys + 1]
    with key ``x``'s entries at ``starts[x]:starts[x + 1]`` (a CSR over every key, empty ones included)."""
    starts = cuda.device_array(num_keys + 1, dtype=np.int64)
    _lower_bounds[_grid(num_keys + 1)](keys, starts)
    return starts
