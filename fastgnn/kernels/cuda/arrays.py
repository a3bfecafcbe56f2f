"""Small device-array primitives the public functions need to keep device inputs on the device.

* value checks without copying the data to the host: :func:`launch_nonfinite_scan` and
  :func:`launch_range_scan` write into a small int64 ``status`` array that is copied back once for all checks;
* a deterministic sum (fixed grid, fixed tree: the same bits on every run): :func:`sum_into`;
* fill / iota / gather / scatter / cast-copy helpers, and CSR offsets from counts (:func:`offsets_from_counts`);
* integer prefix sums over many blocks (:func:`exclusive_scan`);
* a stable grouping of integer keys (the device twin of ``kernels/cpu/losses.py:group_by_row``): an LSD
  radix sort of ``(key, position)`` pairs (:func:`sort_keys`), then either a compaction (:func:`group_by_row`)
  or per-key starts found by binary search (:func:`key_starts`). Ties are ordered by position, so the grouped
  order — and every sum taken in it — is the CPU's and does not depend on scheduling.

Every launch helper takes device arrays and returns device arrays; none copies data to the host except
:func:`group_by_row`, which reads back the two counts that size its outputs.
"""
import math

import numpy as np
from numba import cuda, float64, int64

from .warp import SIM, lanes_below, scratch_size, warp_match_any, warp_sync

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
    """A host array on the device, C-contiguous and of the same shape (0-d stays 0-d; size-0 arrays are
    allocated, not copied)."""
    x = np.asarray(x, order="C")
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
    """``dst[offset:offset + len(src)] = src`` (1-d, casting to ``dst``'s dtype). Between contiguous arrays of one
    dtype this is the driver's device-to-device copy (queued like a kernel, no host wait; at the card's copy
    bandwidth, where the one-load-a-thread kernel moved about a quarter of it in the GCN epoch of Run 6); the
    kernel casts, and takes strided arrays, which the driver's copy refuses."""
    n = src.shape[0]
    if not n:
        return
    if src.dtype == dst.dtype and src.is_c_contiguous() and dst.is_c_contiguous():
        dst[offset:offset + n].copy_to_device(src)
    else:
        _copy_into[_grid(n)](src, dst, int64(offset))


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


# --------------------------------------------------------------------------- prefix sums
_SCAN_T = 1024  # most threads of a scan block (the shared buffer's size; launches may use fewer)
_SCAN_PER = 8  # items per thread of a scan tile (each thread scans a contiguous run)


@cuda.jit(device=True, inline=True)
def _block_scan(buf, tid, nt, s):
    """Inclusive prefix sum over the block of one value per thread (Hillis-Steele in shared memory)."""
    buf[tid] = s
    cuda.syncthreads()
    off = 1
    while off < nt:
        v = buf[tid - off] if tid >= off else int64(0)
        cuda.syncthreads()
        buf[tid] += v
        cuda.syncthreads()
        off *= 2
    return buf[tid]


@cuda.jit(device=True, inline=True)
def _run_sum(x, per, g):
    """Bounds ``lo:hi`` of thread ``g``'s run of ``per`` items of ``x`` and their sum."""
    n = x.shape[0]
    lo = min(g * per, n)
    hi = min(lo + per, n)
    s = int64(0)
    for i in range(lo, hi):
        s += x[i]
    return lo, hi, s


@cuda.jit
def _tile_sums(x, per, sums):
    """sums[b] = Σ of tile b (blockDim.x * per items, thread t summing the run t*per:(t+1)*per)."""
    tid = cuda.threadIdx.x
    nt = cuda.blockDim.x
    b = cuda.blockIdx.x
    lo, hi, s = _run_sum(x, per, b * nt + tid)
    buf = cuda.shared.array(_SCAN_T, int64)
    incl = _block_scan(buf, tid, nt, s)
    if tid == nt - 1:
        sums[b] = incl


@cuda.jit
def _scan_tiles(x, out, base, per, total, slot):
    """out = exclusive prefix sums of x, tile b starting from base[b] (x and out may be the same array);
    total[slot] = the grand total (written by the last thread of the last tile)."""
    tid = cuda.threadIdx.x
    nt = cuda.blockDim.x
    b = cuda.blockIdx.x
    lo, hi, s = _run_sum(x, per, b * nt + tid)
    buf = cuda.shared.array(_SCAN_T, int64)
    acc = base[b] + _block_scan(buf, tid, nt, s) - s
    for i in range(lo, hi):
        v = x[i]
        out[i] = acc
        acc += v
    if b == cuda.gridDim.x - 1 and tid == nt - 1:
        total[slot] = acc


def _scan_threads(m):
    """Threads of a one-tile scan of m items: a power of two, at most _SCAN_T."""
    need = max(1, -(-m // _SCAN_PER))
    return min(_SCAN_T, 1 << (need - 1).bit_length())


def _scan_scratch(m):
    """Device scratch for :func:`exclusive_scan` of m items (allocated once, reused by repeated scans)."""
    levels = []
    tile = _SCAN_T * _SCAN_PER
    while m > tile:
        nb = -(-m // tile)
        levels.append((cuda.device_array(nb, np.int64), cuda.device_array(nb, np.int64)))
        m = nb
    levels.append(full(1, 0, np.int64))
    return levels


def exclusive_scan(x, out, total, slot, scratch=None, level=0):
    """``out = exclusive prefix sums of x`` and ``total[slot] = Σ x`` (1-d int64 device arrays; ``out`` may be
    ``x``). Tiles of ``_SCAN_T * _SCAN_PER`` items, one block each: the tile sums are scanned the same way
    (recursively), then each tile is scanned from its offset. Integer sums: exact, the same on every run."""
    if scratch is None:
        scratch = _scan_scratch(x.shape[0])
    head = scratch[level]
    per = int64(_SCAN_PER)
    if level == len(scratch) - 1:
        _scan_tiles[1, _scan_threads(x.shape[0])](x, out, head, per, total, int64(slot))
        return
    sums, base = head
    nb = sums.shape[0]
    _tile_sums[nb, _SCAN_T](x, per, sums)
    exclusive_scan(sums, base, total, slot, scratch, level + 1)
    _scan_tiles[nb, _SCAN_T](x, out, base, per, total, int64(slot))


def offsets_from_counts(counts):
    """int64 CSR offsets ``[0, c0, c0 + c1, ..., Σ c]`` [n + 1] of a 1-d int64 device array of counts (integer
    prefix sums: the same on every run)."""
    n = counts.shape[0]
    offsets = cuda.device_array(n + 1, dtype=np.int64)
    exclusive_scan(counts, offsets[:n], offsets, n)
    return offsets


# --------------------------------------------------------------------------- stable grouping by key
_DIGIT = 8  # bits per radix pass: node ids below 2^24 sort in 3 passes
_RADIX = 1 << _DIGIT
_CHUNK_ROUNDS = 16  # fewest rounds of 32 keys per warp chunk of the radix passes (512 keys)
_MAX_CHUNKS = 1 << 13  # most warp chunks of a pass (bounds the histogram: _RADIX entries per chunk)
RADIX_BLOCK = 32 if SIM else 128  # threads per block of the radix passes (a chunk per warp)
_RADIX_WARPS = RADIX_BLOCK // 32
_RADIX_SCRATCH = scratch_size(RADIX_BLOCK)


@cuda.jit
def _max_key(x, out):
    """out[0] = max(out[0], max of x) (fixed grid-stride reads, a tree per block, one atomic per block)."""
    tid = cuda.threadIdx.x
    b = cuda.blockIdx.x
    stride = cuda.gridDim.x * _RED
    buf = cuda.shared.array(_RED, int64)
    m = int64(-1)
    for i in range(b * _RED + tid, x.shape[0], stride):
        v = int64(x[i])
        if v > m:
            m = v
    buf[tid] = m
    cuda.syncthreads()
    step = _RED // 2
    while step > 0:
        if tid < step and buf[tid + step] > buf[tid]:
            buf[tid] = buf[tid + step]
        cuda.syncthreads()
        step //= 2
    if tid == 0:
        cuda.atomic.max(out, 0, buf[0])


@cuda.jit
def _top_from_max(top):
    """top[0] = the padding key: (largest key) + 1, 0 when there is no key."""
    m = top[0]
    top[0] = MAXKEY if m == MAXKEY else m + 1


@cuda.jit(device=True, inline=True)
def _radix_key(v, top):
    """The sort key of an input value: itself, or ``top`` for padding (negative, or not below ``top``)."""
    k = int64(v)
    if k < 0 or k >= top:
        k = top
    return k


@cuda.jit
def _radix_count(src, topd, shift, chunk, hist):
    """hist[d * C + c] = number of keys of chunk c (src[c*chunk:(c+1)*chunk]) with digit d; C chunks, one warp
    each, reading 32 consecutive keys a round (coalesced) into the warp's counters in shared memory (atomics:
    counts do not depend on their order). A pass past the highest digit of ``top`` (read on the device) does
    nothing."""
    cnt = cuda.shared.array((_RADIX_WARPS, _RADIX), int64)
    lane = cuda.threadIdx.x % 32
    w = cuda.threadIdx.x // 32
    c = cuda.blockIdx.x * _RADIX_WARPS + w
    nchunks = hist.shape[0] // _RADIX
    top = topd[0]
    if shift > 0 and (top >> shift) == 0:
        return
    for d in range(lane, _RADIX, 32):
        cnt[w, d] = 0
    cuda.syncthreads()
    if c < nchunks:
        lo = c * chunk
        hi = min(lo + chunk, src.shape[0])
        for i in range(lo + lane, hi, 32):
            cuda.atomic.add(cnt, (w, (_radix_key(src[i], top) >> shift) & (_RADIX - 1)), 1)
    cuda.syncthreads()
    if c < nchunks:
        for d in range(lane, _RADIX, 32):
            hist[d * nchunks + c] = cnt[w, d]


@cuda.jit
def _radix_scatter(src, pos, first, topd, shift, chunk, offs, keys_tmp, pos_tmp, keys_fin, pos_fin):
    """Each warp re-reads its chunk 32 consecutive keys a round and writes each key to its digit's next slot
    (``offs``: the exclusive scan of the digit-major histogram, kept per warp in shared memory): a key goes
    after the keys of its digit in earlier rounds and in lower lanes of its round (``match_any`` and a
    popcount), so equal digits keep their order: a stable pass. The first pass takes positions from the index;
    the pass of the highest digit of ``top`` writes into ``*_fin`` with ``top`` as ``MAXKEY``, the others into
    ``*_tmp``; later passes do nothing (the device decides: no host round trip)."""
    scratch = cuda.shared.array(_RADIX_SCRATCH, int64)
    nxt = cuda.shared.array((_RADIX_WARPS, _RADIX), int64)
    lane = cuda.threadIdx.x % 32
    w = cuda.threadIdx.x // 32
    c = cuda.blockIdx.x * _RADIX_WARPS + w
    nchunks = offs.shape[0] // _RADIX
    top = topd[0]
    if c >= nchunks or (shift > 0 and (top >> shift) == 0):
        return  # the warp's 32 lanes together
    last = shift + _DIGIT >= 63 or (top >> (shift + _DIGIT)) == 0
    for d in range(lane, _RADIX, 32):
        nxt[w, d] = offs[d * nchunks + c]
    warp_sync()
    lo = c * chunk
    hi = min(lo + chunk, src.shape[0])
    below = lanes_below(lane)
    for base in range(lo, hi, 32):  # the same rounds on every lane
        i = base + lane
        live = i < hi
        k = _radix_key(src[i], top) if live else top
        d = (k >> shift) & (_RADIX - 1) if live else _RADIX  # idle lanes match only each other
        peers = warp_match_any(d, scratch, lane, w)
        if live:
            j = nxt[w, d] + cuda.popc(peers & below)
            p = i if first else pos[i]
            if last:
                keys_fin[j] = MAXKEY if k == top else k
                pos_fin[j] = p
            else:
                keys_tmp[j] = k
                pos_tmp[j] = p
        warp_sync()  # every lane has read its slot before the digit's lowest lane moves it on
        if live and (peers & below) == 0:
            nxt[w, d] += cuda.popc(peers)
        warp_sync()


def _radix_chunk(n, rounds=None):
    """Keys per warp chunk: whole rounds of 32, at least ``rounds`` (default ``_CHUNK_ROUNDS``) of them, at most
    ``_MAX_CHUNKS`` chunks."""
    rounds = max(_CHUNK_ROUNDS if rounds is None else int(rounds), -(-n // (32 * _MAX_CHUNKS)))
    return 32 * rounds


def sort_keys(flat, bound=None, rounds=None):
    """Stable sort of a 1-d device array of integer keys; negative keys (padding) are dropped to the end.

    Returns ``(keys, pos)``: int64 device arrays of length ``len(flat)``; ``keys`` ascending (padding as
    ``MAXKEY``), ``pos`` the original positions, ascending within equal keys. ``bound``, if given, is an exclusive
    upper bound on the keys (keys ``>= bound`` are treated as padding) and sets the number of passes; without it
    the largest key is found on the device and passes past its highest digit return at once (no host copy).

    An LSD radix sort of 8-bit digits over the keys ``0..top`` (``top = bound`` or max key + 1 standing for the
    padding): ``ceil(bits(top) / 8)`` passes, each a per-chunk digit count, a prefix sum of the digit-major
    histogram and a stable scatter, one warp per chunk of consecutive keys reading 32 of them a round. Atomics
    only count; every key's slot is fixed by the keys before it, so the result is the same on every run.

    ``rounds`` (a tuning knob; default ``_CHUNK_ROUNDS``): the fewest rounds of 32 keys a warp's chunk takes.
    Larger chunks mean fewer warps, a smaller histogram (256 int64 entries a chunk) to scan, and longer runs of
    consecutive slots per digit in the scatter. ``gpu_bench.py infonce`` times the sort at several values.
    """
    if rounds is not None and int(rounds) < 1:
        raise ValueError(f"rounds: expected at least 1, got {rounds}")
    n = flat.shape[0]
    if n == 0:
        return cuda.device_array(0, np.int64), cuda.device_array(0, np.int64)
    if bound is None:
        topd = full(1, -1, np.int64)
        _max_key[min(_PARTS, -(-n // _RED)), _RED](flat, topd)
        _top_from_max[1, 1](topd)
        bits = int(np.iinfo(flat.dtype).max).bit_length()  # passes past top's highest digit do nothing
    else:
        top = min(max(0, int(bound)), MAXKEY)
        topd = full(1, top, np.int64)
        bits = top.bit_length()
    passes = max(1, -(-bits // _DIGIT))
    chunk = _radix_chunk(n, rounds)
    nchunks = -(-n // chunk)
    hist = cuda.device_array(_RADIX * nchunks, np.int64)
    scratch = _scan_scratch(hist.shape[0])
    total = cuda.device_array(1, np.int64)
    fin = (cuda.device_array(n, np.int64), cuda.device_array(n, np.int64))
    tmp = [(cuda.device_array(n, np.int64), cuda.device_array(n, np.int64)) for _ in range(min(passes - 1, 2))]
    tmp = tmp or [fin]
    grid = (-(-nchunks // _RADIX_WARPS), RADIX_BLOCK)
    src, pos = flat, fin[1]  # pos is not read by the first pass
    chunk64 = int64(chunk)
    for p in range(passes):
        keys_tmp, pos_tmp = tmp[p % len(tmp)]
        shift = int64(p * _DIGIT)
        _radix_count[grid](src, topd, shift, chunk64, hist)
        exclusive_scan(hist, hist, total, 0, scratch)
        _radix_scatter[grid](src, pos, p == 0, topd, shift, chunk64, hist, keys_tmp, pos_tmp, fin[0], fin[1])
        src, pos = keys_tmp, pos_tmp
    return fin


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


def group_by_row(flat, ncols=1, bound=None):
    """Device twin of the CPU ``group_by_row``: group the non-negative entries of ``flat`` by value, stably.

    Returns device arrays ``rows`` (sorted distinct values) [R], ``starts`` [R + 1], ``order`` (positions in
    ``flat``, grouped) [V] and ``major`` (``order // ncols``) [V]. Reads back the counts ``R`` and ``V`` (two
    int64 scalars: the output shapes depend on them). ``bound``: as in :func:`sort_keys`.
    """
    keys, pos = sort_keys(flat, bound)
    L = keys.shape[0]
    if L == 0:
        return (cuda.device_array(0, np.int64), full(1, 0, np.int64), cuda.device_array(0, np.int64),
                cuda.device_array(0, np.int64))
    flags = cuda.device_array(L, dtype=np.int64)
    counts = cuda.device_array(2, dtype=np.int64)
    _segment_flags[_grid(L)](keys, flags, counts)
    slot = cuda.device_array(L, dtype=np.int64)
    exclusive_scan(flags, slot, counts, 1)
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
