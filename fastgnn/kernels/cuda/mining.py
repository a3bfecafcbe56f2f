"""CUDA twins of ``kernels/cpu/mining.py``: one warp per k-hop source, one warp (top-K) or thread per anchor, the
same selection rules.

k-hop: the CPU kernels own one visit bitmap per chunk of sources; here warp ``s`` (32 lanes) runs the BFS of
source ``s`` of a batch in row ``s`` of a ``seen`` bitmap matrix (uint64 words) and of a ``queue`` matrix
passed in by the launcher (sources are processed in batches so that scratch stays bounded). A level is
expanded in groups of up to 32 frontier nodes: one lane per node loads its row bounds, a warp scan of the
degrees gives each row's offset in the group's edge list, and the lanes publish starts and offsets in a
64-entry shared table per warp. The group's edges -- its rows concatenated in queue order -- are then read 32
consecutive ones at a time: each lane finds its row by a binary search of the table and sets the neighbour's
bit with an atomic or (lanes share bitmap words); the warp appends the nodes so claimed in edge order (a
ballot and a lane-prefix popcount give each one its queue slot; ``match_any`` makes a repeated id count at
its first lane). The queue thus equals the CPU kernel's entry for entry, and so do the rings (by distance,
then discovery order). At the end the lanes clear the bitmap words they set, striding over the queue. The
votes are ``kernels/cuda/warp.py``'s, emulated with shared memory and block barriers under the simulator,
where the kernels run with one warp per block by default.

The miner computes each block of similarities S = unit @ pool[block]ᵀ with the register-tiled GEMM of
``kernels/cuda/autograd.py`` in the inputs' dtype, as the CPU path's BLAS call does (float32 S for float32
inputs: half the bytes of a float64 S and single-precision multiply-adds; the cosine is then taken in float64,
``float64(S) * inv_norm``, on both backends), and offers it to per-anchor heaps kept in global memory.

The ``launch_*`` helpers take device arrays and leave their results on the device; the only host copy is
the one int64 that sizes k-hop's ``nodes`` (an output whose length depends on the data).
"""
import math

import numpy as np
from numba import cuda, float64, int64, uint64

from . import arrays
from .autograd import matmul
from .rng import hash3
from .warp import SIM, scratch_size, warp_append_claimed, warp_ballot, warp_scan_share, warp_sync

HARDEST = 0
SEMIHARD = 1
WEIGHTED = 2
MIXED = 3

_TWO53 = 1.0 / 9007199254740992.0
_THREADS = 64
_SCRATCH_BYTES = 1 << 30


def _blocks(n, threads):
    return max(1, math.ceil(n / threads))


# --------------------------------------------------------------------------------------------- k-hop
KHOP_BLOCK = 32 if SIM else 128  # default threads per block of the k-hop kernels (one source per warp)
_KHOP_MAX_BLOCK = 256
_KHOP_TABLES = 2 * _KHOP_MAX_BLOCK  # each warp's group table: 32 row starts, 32 edge offsets
_KHOP_SCRATCH = scratch_size(_KHOP_MAX_BLOCK)  # the votes' scratch for any block size (1 element on a GPU)


@cuda.jit(device=True)
def _warp_bfs(indptr, indices, src, k, min_hops, seen, queue, r, grp, scratch, lane, w):
    """BFS from ``src`` up to depth k by the 32 lanes of one warp, in rows ``r`` of ``seen`` / ``queue``; returns
    ``(begin, end)`` (the same on every lane): ``queue[r, begin:end]`` = nodes at distance min_hops..k.

    The queue is the CPU kernel's, entry for entry. A level is expanded in groups of up to 32 frontier nodes
    (one per lane): the lanes load their node's row bounds and publish each row's start and offset in the
    group's edge list in ``grp[64 w:64 w + 64]`` (shared; :func:`warp_scan_share`, which also orders lane 0's
    setup before the other lanes' reads). The group's edges, its rows concatenated in queue order, are then
    read 32 at a time: lane ``l`` takes edge ``c + l``, finds its row by a binary search of the offsets, and
    sets the neighbour's bit with an atomic or (lanes share bitmap words); a bit found clear claims the node,
    and :func:`warp_append_claimed` appends each claimed node once, in edge order (rows may repeat an id: its
    first lane appends it). A ``warp_sync`` ends each group, so the entries a level expands are visible to
    every lane and the next group may rewrite ``grp``; on return every entry and bit is visible.
    """
    if lane == 0:  # the first group's table orders these before the lanes' reads
        queue[r, 0] = src
        seen[r, src >> 6] |= uint64(1) << uint64(src & 63)
    gs = 64 * w  # this warp's row starts; its edge offsets at gs + 32
    head = 0
    tail = 1
    ring = 0 if min_hops == 0 else -1
    d = 1
    while d <= k:
        if d == min_hops:
            ring = tail
        level_end = tail
        if head == level_end:
            break
        while head < level_end:
            size = min(32, level_end - head)
            start = int64(0)
            deg = int64(0)
            if lane < size:
                v = queue[r, head + lane]
                start = int64(indptr[v])
                deg = int64(indptr[v + 1]) - start
            # lanes past size: degree 0, offset = edges
            edges = warp_scan_share(start, deg, grp, gs, scratch, lane, w)
            for c in range(0, edges, 32):
                e = c + lane
                j = int64(-1)
                claimed = False
                if e < edges:
                    q = 0  # the last row whose offset is <= e (rows of degree 0 share their successor's offset)
                    step = 16
                    while step > 0:
                        if grp[gs + 32 + q + step] <= e:
                            q += step
                        step >>= 1
                    j = int64(indices[grp[gs + q] + e - grp[gs + 32 + q]])
                    bit = uint64(1) << uint64(j & 63)
                    claimed = (cuda.atomic.or_(seen, (r, j >> 6), bit) & bit) == 0
                lower, count, mine = warp_append_claimed(claimed, j, scratch, lane, w)
                if mine:
                    queue[r, tail + lower] = j
                tail += count
            warp_sync()
            head += size
        d += 1
    if ring < 0:
        ring = tail
    return ring, tail


@cuda.jit(device=True)
def _warp_clear(seen, queue, r, tail, lane):
    """Clear the words of row ``r`` of ``seen`` that the BFS touched (lanes stride over the queue), leaving the
    bitmap clear for the next launch."""
    for t in range(lane, tail, 32):
        seen[r, queue[r, t] >> 6] = 0


@cuda.jit(cache=True)
def k_hop_count(indptr, indices, sources, k, min_hops, seen, queue, counts, begins):
    """counts[s] = ring size of sources[s], begins[s] = where the ring starts in row s of ``queue`` (which keeps
    it until the next launch); warp s (threads 32 s .. 32 s + 31 of the grid) uses row s of ``seen`` /
    ``queue``."""
    grp = cuda.shared.array(_KHOP_TABLES, int64)
    scratch = cuda.shared.array(_KHOP_SCRATCH, int64)
    s = cuda.grid(1) // 32
    if s >= sources.shape[0]:
        return  # the whole warp
    lane = cuda.threadIdx.x % 32
    w = cuda.threadIdx.x // 32
    b, e = _warp_bfs(indptr, indices, sources[s], k, min_hops, seen, queue, s, grp, scratch, lane, w)
    if lane == 0:
        counts[s] = e - b
        begins[s] = b
    _warp_clear(seen, queue, s, e, lane)


@cuda.jit(cache=True)
def k_hop_fill(indptr, indices, sources, k, min_hops, seen, queue, offsets, nodes):
    """nodes[offsets[s]:offsets[s + 1]] = ring of sources[s] (offsets relative to this batch); one warp per
    source, as in :func:`k_hop_count`."""
    grp = cuda.shared.array(_KHOP_TABLES, int64)
    scratch = cuda.shared.array(_KHOP_SCRATCH, int64)
    s = cuda.grid(1) // 32
    if s >= sources.shape[0]:
        return  # the whole warp
    lane = cuda.threadIdx.x % 32
    w = cuda.threadIdx.x // 32
    b, e = _warp_bfs(indptr, indices, sources[s], k, min_hops, seen, queue, s, grp, scratch, lane, w)
    o = offsets[s] - b
    for t in range(b + lane, e, 32):
        nodes[o + t] = queue[s, t]
    _warp_clear(seen, queue, s, e, lane)


@cuda.jit(cache=True)
def k_hop_copy(queue, begins, offsets, nodes):
    """nodes[offsets[s]:offsets[s + 1]] = queue[s, begins[s]:...], the rings :func:`k_hop_count` left in the
    queue (offsets relative to this batch); one warp per source, lanes over the ring."""
    s = cuda.grid(1) // 32
    if s >= begins.shape[0]:
        return
    lane = cuda.threadIdx.x % 32
    b = begins[s]
    o = offsets[s] - b
    for t in range(b + lane, b + offsets[s + 1] - offsets[s], 32):
        nodes[o + t] = queue[s, t]


def launch_k_hop(indptr, indices, sources, k, min_hops, threads=None, scratch_bytes=_SCRATCH_BYTES):
    """``(offsets, nodes)`` like the CPU path, as device arrays, from device ``indptr``, ``indices`` and (non-empty)
    ``sources``.

    One warp per source, ``threads`` (a multiple of 32, at most 256; default :data:`KHOP_BLOCK`) threads per
    block. Sources run in batches of bounded scratch: each batch counts its rings, a device scan turns all counts
    into offsets, the total (one int64) is read back to size ``nodes``; the last batch's rings, still in the
    queue, are copied to ``nodes`` first, then each other batch searches again to write them (a single batch
    searches once).
    """
    threads = threads or KHOP_BLOCK
    if threads % 32 or not 32 <= threads <= _KHOP_MAX_BLOCK:
        raise ValueError(f"threads: must be a multiple of 32 in [32, {_KHOP_MAX_BLOCK}], got {threads}")
    warps = threads // 32  # sources per block
    n = indptr.shape[0] - 1
    ns = sources.shape[0]
    words = (n >> 6) + 1
    per_source = words * 8 + max(n, 1) * indices.dtype.itemsize
    batch = int(max(1, min(ns, scratch_bytes // per_source)))
    seen = arrays.full(batch * words, 0, np.uint64).reshape(batch, words)
    queue = cuda.device_array((batch, max(n, 1)), indices.dtype)
    counts = cuda.device_array(ns, np.int64)
    begins = cuda.device_array(batch, np.int64)
    spans = [(lo, min(ns, lo + batch)) for lo in range(0, ns, batch)]
    for lo, hi in spans:
        k_hop_count[_blocks(hi - lo, warps), threads](indptr, indices, sources[lo:hi], k, min_hops, seen, queue,
                                                      counts[lo:hi], begins[:hi - lo])
    offsets = arrays.offsets_from_counts(counts)
    nodes = cuda.device_array(int(offsets[ns:].copy_to_host()[0]), indices.dtype)
    if nodes.shape[0]:
        # offsets are absolute: the slice gives a batch's, nodes is written in place
        lo, hi = spans[-1]  # its rings are still in the queue: copy them before the other batches reuse it
        k_hop_copy[_blocks(hi - lo, warps), threads](queue, begins[:hi - lo], offsets[lo:hi + 1], nodes)
        for lo, hi in spans[:-1]:
            k_hop_fill[_blocks(hi - lo, warps), threads](indptr, indices, sources[lo:hi], k, min_hops, seen, queue,
                                                         offsets[lo:hi + 1], nodes)
    return offsets, nodes


# --------------------------------------------------------------------------------------------- heaps
@cuda.jit(device=True, inline=True)
def _better(s1, i1, s2, i2):
    return s1 > s2 or (s1 == s2 and i1 < i2)


@cuda.jit(device=True)
def _sift_down(hs, hi, b, pos, size):
    s = hs[b, pos]
    i = hi[b, pos]
    while True:
        c = 2 * pos + 1
        if c >= size:
            break
        if c + 1 < size and _better(hs[b, c], hi[b, c], hs[b, c + 1], hi[b, c + 1]):
            c += 1
        if _better(s, i, hs[b, c], hi[b, c]):
            hs[b, pos] = hs[b, c]
            hi[b, pos] = hi[b, c]
            pos = c
        else:
            break
    hs[b, pos] = s
    hi[b, pos] = i


@cuda.jit(device=True)
def _push(hs, hi, cnt, b, cap, s, i):
    size = cnt[b]
    if size < cap:
        pos = size
        while pos > 0:
            parent = (pos - 1) >> 1
            if _better(hs[b, parent], hi[b, parent], s, i):
                hs[b, pos] = hs[b, parent]
                hi[b, pos] = hi[b, parent]
                pos = parent
            else:
                break
        hs[b, pos] = s
        hi[b, pos] = i
        cnt[b] = size + 1
    elif cap > 0 and _better(s, i, hs[b, 0], hi[b, 0]):
        hs[b, 0] = s
        hi[b, 0] = i
        _sift_down(hs, hi, b, 0, cap)


@cuda.jit(device=True)
def _heap_sort(hs, hi, b, size):
    end = size - 1
    while end > 0:
        s = hs[b, 0]
        i = hi[b, 0]
        hs[b, 0] = hs[b, end]
        hi[b, 0] = hi[b, end]
        hs[b, end] = s
        hi[b, end] = i
        _sift_down(hs, hi, b, 0, end)
        end -= 1


@cuda.jit(device=True)
def _offer(mode, alpha, seed, b, j, sim, pos_sim, h1s, h1i, n1, cap1, h2s, h2i, n2, cap2):
    if mode == HARDEST:
        _push(h1s, h1i, n1, b, cap1, sim, j)
    elif mode == SEMIHARD:
        if sim < pos_sim[b]:
            _push(h1s, h1i, n1, b, cap1, sim, j)
        else:
            _push(h2s, h2i, n2, b, cap2, sim, j)
    elif mode == WEIGHTED:
        u = (float64(hash3(seed, b, j) >> uint64(11)) + 0.5) * _TWO53
        _push(h1s, h1i, n1, b, cap1, alpha * sim - math.log(-math.log(u)), j)
    else:
        _push(h1s, h1i, n1, b, cap1, sim, j)
        _push(h2s, h2i, n2, b, cap2, float64(hash3(seed, b, j) >> uint64(11)) * _TWO53, j)


# --------------------------------------------------------------------------------------------- similarity miner
@cuda.jit(device=True, inline=True)
def _admits(hs, hi, cnt, b, cap, s, i):
    """Whether a push of ``(s, i)`` could change the heap (it may not, once the heap has moved on: the push
    decides). Cheap and conservative under concurrent pushes: counts and the root only grow."""
    return cnt[b] < cap or (cap > 0 and _better(s, i, hs[b, 0], hi[b, 0]))


@cuda.jit(device=True)
def _wanted(mode, alpha, seed, b, j, sim, pos_sim, h1s, h1i, n1, cap1, h2s, h2i, n2, cap2):
    """Whether :func:`_offer` of this candidate could enter a heap (the same keys, without the pushes)."""
    if mode == HARDEST:
        return _admits(h1s, h1i, n1, b, cap1, sim, j)
    if mode == SEMIHARD:
        if sim < pos_sim[b]:
            return _admits(h1s, h1i, n1, b, cap1, sim, j)
        return _admits(h2s, h2i, n2, b, cap2, sim, j)
    if mode == WEIGHTED:
        u = (float64(hash3(seed, b, j) >> uint64(11)) + 0.5) * _TWO53
        return _admits(h1s, h1i, n1, b, cap1, alpha * sim - math.log(-math.log(u)), j)
    return (_admits(h1s, h1i, n1, b, cap1, sim, j)
            or _admits(h2s, h2i, n2, b, cap2, float64(hash3(seed, b, j) >> uint64(11)) * _TWO53, j))


TOPK_BLOCK = 32 if SIM else 128  # threads per block of topk_block: one warp per block under the simulator
_TOPK_WARPS = TOPK_BLOCK // 32
_TOPK_SCRATCH = scratch_size(TOPK_BLOCK)


@cuda.jit(cache=True)
def topk_block(S, start, inv_norm, mode, alpha, seed, pos_sim, anchor_labels, pool_labels, use_labels,
               pool_mask, use_mask, exclude, excl_ptr, h1s, h1i, n1, h2s, h2i, n2):
    """Same contract as the CPU kernel; one warp per anchor (launch ``32 * B`` threads in blocks of
    :data:`TOPK_BLOCK`). Lane 0 marks the anchor's excluded entries and owns its heaps. The 32 lanes read 32
    consecutive similarities at a time and test each against the heaps' current bounds (:func:`_wanted`);
    only when some lane has a candidate (a ballot) do they hand their candidates to lane 0 through shared memory,
    which pushes them in column order. The heaps keep the best entries of a total order, so the result does not
    depend on the order of the pushes: it equals the CPU kernel's."""
    scratch = cuda.shared.array(_TOPK_SCRATCH, float64)
    cs = cuda.shared.array(TOPK_BLOCK, float64)
    b = cuda.grid(1) // 32
    lane = cuda.threadIdx.x % 32
    w = cuda.threadIdx.x // 32
    active = b < S.shape[0]
    bb = b if active else 0
    m = S.shape[1]
    end = start + m
    cap1 = h1s.shape[1]
    cap2 = h2s.shape[1] if mode == SEMIHARD or mode == MIXED else 0
    if active and lane == 0:
        ne = exclude.shape[1]
        ptr = excl_ptr[b]
        while ptr < ne and exclude[b, ptr] < end:
            e = exclude[b, ptr]
            if e >= start:
                S[b, e - start] = math.nan
            ptr += 1
        excl_ptr[b] = ptr
    warp_sync()  # the marks are visible to every lane
    lab = anchor_labels[bb] if use_labels else 0
    slot = w * 32 + lane
    for base in range(0, m, 32):
        jj = base + lane
        sim = 0.0
        ok = 0
        if active and jj < m:
            v = S[b, jj]
            j = start + jj
            if v == v and not (use_mask and not pool_mask[j]) and not (use_labels and pool_labels[j] == lab):
                sim = float64(v) * inv_norm[j]
                if _wanted(mode, alpha, seed, b, j, sim, pos_sim, h1s, h1i, n1, cap1, h2s, h2i, n2, cap2):
                    ok = 1
        wanted = warp_ballot(ok != 0, scratch, lane, w)  # one vote on a GPU
        if wanted != 0:
            cs[slot] = sim
            warp_sync()
            if lane == 0:
                for q in range(32):
                    if (wanted >> q) & 1:
                        _offer(mode, alpha, seed, b, start + base + q, cs[w * 32 + q], pos_sim, h1s, h1i, n1, cap1,
                               h2s, h2i, n2, cap2)
            warp_sync()  # the pushes are visible before the next bounds test; the slots may be reused


@cuda.jit(cache=True)
def finalize(mode, h1s, h1i, n1, h2s, h2i, n2, out):
    b = cuda.grid(1)
    if b >= out.shape[0]:
        return
    K = out.shape[1]
    _heap_sort(h1s, h1i, b, n1[b])
    c = 0
    for t in range(min(n1[b], K)):
        out[b, c] = h1i[b, t]
        c += 1
    if mode == SEMIHARD or mode == MIXED:
        _heap_sort(h2s, h2i, b, n2[b])
        for t in range(n2[b]):
            if c >= K:
                break
            j = h2i[b, t]
            dup = False
            if mode == MIXED:
                for u in range(n1[b]):
                    if h1i[b, u] == j:
                        dup = True
                        break
            if not dup:
                out[b, c] = j
                c += 1
    for t in range(c, K):
        out[b, t] = -1


def new_heaps(nb, cap1, cap2):
    """The two bounded heaps per anchor of the CPU path (``mining._heaps``), allocated on the device."""
    return (cuda.device_array((nb, cap1), np.float64), cuda.device_array((nb, cap1), np.int64),
            arrays.full(nb, 0, np.int64), cuda.device_array((nb, cap2), np.float64),
            cuda.device_array((nb, cap2), np.int64), arrays.full(nb, 0, np.int64))


def launch_mine(unit, pool, inv_pool, block, args, caps, out, threads=None):
    """Blocked similarity + top-K: every array (``unit``, ``pool``, ``inv_pool``, those in ``args`` -- the CPU
    kernel's arguments -- and ``out``) is a device array; heaps of capacities ``caps`` are allocated here and the
    ids land in ``out``."""
    threads = threads or _THREADS
    mode, alpha, seed, pos_sim, a_lab, p_lab, use_labels, pool_mask, use_mask, excl = args
    B = unit.shape[0]
    P = pool.shape[0]
    heaps = new_heaps(B, *caps)
    ptr = arrays.full(B, 0, np.int64)
    d_S = cuda.device_array((B, block), unit.dtype)  # the CPU path's S: the inputs' dtype
    b1 = _blocks(B, threads)
    bw = _blocks(32 * B, TOPK_BLOCK)
    for start in range(0, P, block):
        m = min(block, P - start)
        S = d_S if m == block else cuda.device_array((B, m), unit.dtype)
        matmul(unit, pool[start:start + m], S, trans_b=True)
        topk_block[bw, TOPK_BLOCK](S, start, inv_pool, mode, float(alpha), seed, pos_sim, a_lab, p_lab,
                                   bool(use_labels), pool_mask, bool(use_mask), excl, ptr, *heaps)
    finalize[b1, threads](mode, *heaps, out)
    return out


# --------------------------------------------------------------------------------------------- device inputs
@cuda.jit(device=True)
def _inv_norm(X, i):
    """1/||X[i]|| in float64; 0 for a zero row and for one whose squares overflow (the host's fallback,
    ``1 / np.linalg.norm``, gives 0 there too). Rows holding NaN/inf are rejected by a device scan first."""
    acc = float64(0.0)
    for t in range(X.shape[1]):
        x = float64(X[i, t])
        acc += x * x
    if acc > 0.0 and acc < math.inf:
        return 1.0 / math.sqrt(acc)
    return 0.0


@cuda.jit(cache=True)
def _inv_norms(X, out):
    i = cuda.grid(1)
    if i < X.shape[0]:
        out[i] = _inv_norm(X, i)


@cuda.jit(cache=True)
def _anchor_prep(anchors, positives, use_pos, unit, pos_sim):
    """unit[b] = anchors[b] / ||anchors[b]|| (unit's dtype); with use_pos, pos_sim[b] = <unit[b], p[b]> / ||p[b]||."""
    b = cuda.grid(1)
    if b >= anchors.shape[0]:
        return
    inv = _inv_norm(anchors, b)
    for t in range(anchors.shape[1]):
        unit[b, t] = anchors[b, t] * inv
    if use_pos:
        acc = float64(0.0)
        for t in range(anchors.shape[1]):
            acc += float64(unit[b, t]) * float64(positives[b, t])
        pos_sim[b] = acc * _inv_norm(positives, b)


@cuda.jit(cache=True)
def _exclude_keys(excl, width, keys):
    i = cuda.grid(1)
    if i < keys.shape[0]:
        b = i // excl.shape[1]
        keys[i] = b * width + int64(excl[b, i - b * excl.shape[1]]) + 1  # -1 padding sorts first in its row


@cuda.jit(cache=True)
def _exclude_values(keys, width, out):
    i = cuda.grid(1)
    if i < out.shape[0]:
        out[i] = keys[i] % width - 1


def launch_inv_norms(X, threads=None):
    """float64 ``1/||X[i]||`` per row of a finite 2-d device array (see :func:`_inv_norm`)."""
    threads = threads or _THREADS
    out = cuda.device_array(X.shape[0], np.float64)
    if X.shape[0]:
        _inv_norms[_blocks(X.shape[0], threads), threads](X, out)
    return out


def launch_anchor_prep(anchors, positives, unit_dtype, threads=None):
    """``(unit, pos_sim)`` of the miner from device ``anchors`` [B, D] (B > 0) and ``positives`` [B, D] or None
    (then ``pos_sim`` is empty: only "semihard" reads it, and it requires positives)."""
    threads = threads or _THREADS
    B = anchors.shape[0]
    unit = cuda.device_array(anchors.shape, unit_dtype)
    use_pos = positives is not None
    pos_sim = cuda.device_array(B if use_pos else 0, np.float64)
    _anchor_prep[_blocks(B, threads), threads](anchors, positives if use_pos else anchors, use_pos, unit, pos_sim)
    return unit, pos_sim


def launch_sort_exclude(excl, num_pool):
    """Each row of the [B, E] device id matrix ``excl`` (``-1`` padded, ids < ``num_pool``) sorted ascending, as
    int64: one stable device sort of the keys ``row * (num_pool + 1) + id + 1`` (each row keeps its E slots)."""
    B, E = excl.shape
    out = cuda.device_array((B, E), np.int64)
    n = B * E
    if n == 0:
        return out
    width = int64(num_pool + 1)
    keys = cuda.device_array(n, np.int64)
    grid = arrays._grid(n)
    _exclude_keys[grid](excl, width, keys)
    skeys, _ = arrays.sort_keys(keys)
    _exclude_values[grid](skeys, width, out.reshape(n))
    return out


# --------------------------------------------------------------------------------------------- graph miner
@cuda.jit(cache=True)
def ring_topk(E, inv_norm, anchors, offsets, nodes, mode, alpha, seed, h1s, h1i, n1, h2s, h2i, n2):
    b = cuda.grid(1)
    if b >= anchors.shape[0]:
        return
    a = anchors[b]
    cap1 = h1s.shape[1]
    cap2 = h2s.shape[1] if mode == MIXED else 0
    for p in range(offsets[b], offsets[b + 1]):
        j = nodes[p]
        acc = float64(0.0)
        for t in range(E.shape[1]):
            acc += float64(E[a, t]) * float64(E[j, t])
        _offer(mode, alpha, seed, b, j, acc * inv_norm[a] * inv_norm[j], inv_norm, h1s, h1i, n1, cap1, h2s, h2i,
               n2, cap2)


def launch_graph_mine(E, inv, anchors, offsets, nodes, mode, alpha, seed, caps, out, threads=None):
    """:func:`ring_topk` + :func:`finalize` on device arrays; heaps of capacities ``caps`` are allocated here and
    the ids land in the device array ``out``."""
    threads = threads or _THREADS
    B = anchors.shape[0]
    heaps = new_heaps(B, *caps)
    b1 = _blocks(B, threads)
    ring_topk[b1, threads](E, inv, anchors, offsets, nodes, mode, float(alpha), seed, *heaps)
    finalize[b1, threads](mode, *heaps, out)
    return out
