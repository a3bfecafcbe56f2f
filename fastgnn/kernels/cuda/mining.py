"""CUDA twins of ``kernels/cpu/mining.py``: one thread per source / anchor, the same selection rules.

The CPU k-hop kernels own one visit bitmap per chunk of sources; here each thread owns one row of a
``seen`` bitmap matrix and of a ``queue`` matrix passed in by the launcher (sources are processed in
batches so that scratch stays bounded). The miner computes each block of similarities with
``block_dot`` and offers it to per-anchor heaps kept in global memory.
"""
import math

import numpy as np
from numba import cuda, float64, uint64

from .rng import hash3

HARDEST = 0
SEMIHARD = 1
WEIGHTED = 2
MIXED = 3

_TWO53 = 1.0 / 9007199254740992.0
_THREADS = 64
_SCRATCH_BYTES = 1 << 30


# --------------------------------------------------------------------------------------------- k-hop
@cuda.jit(device=True)
def _bfs(indptr, indices, src, k, min_hops, seen, queue, r):
    queue[r, 0] = src
    seen[r, src >> 6] |= uint64(1) << uint64(src & 63)
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
            v = queue[r, head]
            head += 1
            for p in range(indptr[v], indptr[v + 1]):
                j = indices[p]
                bit = uint64(1) << uint64(j & 63)
                word = seen[r, j >> 6]
                if not (word & bit):
                    seen[r, j >> 6] = word | bit
                    queue[r, tail] = j
                    tail += 1
        d += 1
    if ring < 0:
        ring = tail
    for t in range(tail):  # leave the bitmap clear for the next launch
        seen[r, queue[r, t] >> 6] = 0
    return ring, tail


@cuda.jit(cache=True)
def k_hop_count(indptr, indices, sources, k, min_hops, seen, queue, counts):
    """counts[s] = ring size of sources[s]; thread s uses row s of ``seen`` / ``queue``."""
    s = cuda.grid(1)
    if s >= sources.shape[0]:
        return
    b, e = _bfs(indptr, indices, sources[s], k, min_hops, seen, queue, s)
    counts[s] = e - b


@cuda.jit(cache=True)
def k_hop_fill(indptr, indices, sources, k, min_hops, seen, queue, offsets, nodes):
    """nodes[offsets[s]:offsets[s + 1]] = ring of sources[s] (offsets relative to this batch)."""
    s = cuda.grid(1)
    if s >= sources.shape[0]:
        return
    b, e = _bfs(indptr, indices, sources[s], k, min_hops, seen, queue, s)
    o = offsets[s]
    for t in range(b, e):
        nodes[o + t - b] = queue[s, t]


def launch_k_hop(indptr, indices, sources, k, min_hops, threads=_THREADS, scratch_bytes=_SCRATCH_BYTES):
    """Host helper: ``(offsets, nodes)`` like the CPU path, sources in batches of bounded scratch."""
    n = indptr.shape[0] - 1
    ns = sources.shape[0]
    words = (n >> 6) + 1
    per_source = words * 8 + max(n, 1) * indices.dtype.itemsize
    batch = int(max(1, min(ns, scratch_bytes // per_source)))
    d_indptr = cuda.to_device(np.ascontiguousarray(indptr))
    d_indices = cuda.to_device(np.ascontiguousarray(indices))
    seen = cuda.to_device(np.zeros((batch, words), np.uint64))
    queue = cuda.device_array((batch, max(n, 1)), indices.dtype)
    counts = np.empty(ns, np.int64)
    parts = []
    for lo in range(0, ns, batch):
        hi = min(ns, lo + batch)
        d_src = cuda.to_device(np.ascontiguousarray(sources[lo:hi]))
        d_counts = cuda.device_array(hi - lo, np.int64)
        blocks = math.ceil((hi - lo) / threads)
        k_hop_count[blocks, threads](d_indptr, d_indices, d_src, k, min_hops, seen, queue, d_counts)
        c = d_counts.copy_to_host()
        counts[lo:hi] = c
        off = np.zeros(hi - lo + 1, np.int64)
        np.cumsum(c, out=off[1:])
        d_nodes = cuda.device_array(max(int(off[-1]), 1), indices.dtype)
        k_hop_fill[blocks, threads](d_indptr, d_indices, d_src, k, min_hops, seen, queue, cuda.to_device(off),
                                    d_nodes)
        parts.append(d_nodes.copy_to_host()[:off[-1]])
    offsets = np.zeros(ns + 1, np.int64)
    np.cumsum(counts, out=offsets[1:])
    return offsets, np.concatenate(parts).astype(indices.dtype, copy=False)


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
@cuda.jit(cache=True)
def block_dot(unit, pool, start, S):
    """S[b, j] = <unit[b], pool[start + j]> (one thread per entry, accumulated in float64)."""
    j, b = cuda.grid(2)
    if b >= S.shape[0] or j >= S.shape[1]:
        return
    acc = float64(0.0)
    for t in range(unit.shape[1]):
        acc += float64(unit[b, t]) * float64(pool[start + j, t])
    S[b, j] = acc


@cuda.jit(cache=True)
def topk_block(S, start, inv_norm, mode, alpha, seed, pos_sim, anchor_labels, pool_labels, use_labels,
               pool_mask, use_mask, exclude, excl_ptr, h1s, h1i, n1, h2s, h2i, n2):
    """Same contract as the CPU kernel; thread b owns anchor b's heaps and exclude pointer."""
    b = cuda.grid(1)
    if b >= S.shape[0]:
        return
    m = S.shape[1]
    end = start + m
    cap1 = h1s.shape[1]
    cap2 = h2s.shape[1] if mode == SEMIHARD or mode == MIXED else 0
    ne = exclude.shape[1]
    ptr = excl_ptr[b]
    while ptr < ne and exclude[b, ptr] < end:
        e = exclude[b, ptr]
        if e >= start:
            S[b, e - start] = math.nan
        ptr += 1
    excl_ptr[b] = ptr
    lab = anchor_labels[b] if use_labels else 0
    for jj in range(m):
        v = S[b, jj]
        if v != v:
            continue
        j = start + jj
        if use_mask and not pool_mask[j]:
            continue
        if use_labels and pool_labels[j] == lab:
            continue
        _offer(mode, alpha, seed, b, j, float64(v) * inv_norm[j], pos_sim, h1s, h1i, n1, cap1, h2s, h2i, n2, cap2)


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


def launch_mine(unit, pool, inv_pool, block, args, heaps, out, threads=_THREADS):
    """Host helper: blocked similarity + top-K on the device; the ids are copied into ``out``."""
    mode, alpha, seed, pos_sim, a_lab, p_lab, use_labels, pool_mask, use_mask, excl = args
    B = unit.shape[0]
    P = pool.shape[0]
    d_unit = cuda.to_device(np.ascontiguousarray(unit))
    d_pool = cuda.to_device(np.ascontiguousarray(pool))
    d_inv = cuda.to_device(np.ascontiguousarray(inv_pool))
    dev = [cuda.to_device(np.ascontiguousarray(a)) for a in (pos_sim, a_lab, p_lab, pool_mask, excl)]
    d_pos, d_al, d_pl, d_mask, d_excl = dev
    d_ptr = cuda.to_device(np.zeros(B, np.int64))
    d_heaps = [cuda.to_device(h) for h in heaps]
    d_S = cuda.device_array((B, block), np.float64)
    b1 = math.ceil(B / threads)
    for start in range(0, P, block):
        m = min(block, P - start)
        S = d_S if m == block else cuda.device_array((B, m), np.float64)
        grid = (math.ceil(m / 16), math.ceil(B / 4))
        block_dot[grid, (16, 4)](d_unit, d_pool, start, S)
        topk_block[b1, threads](S, start, d_inv, mode, float(alpha), seed, d_pos, d_al, d_pl, bool(use_labels),
                                d_mask, bool(use_mask), d_excl, d_ptr, *d_heaps)
    d_out = cuda.device_array(out.shape, np.int64)
    finalize[b1, threads](mode, *d_heaps, d_out)
    d_out.copy_to_host(out)
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


def launch_graph_mine(E, inv, anchors, offsets, nodes, mode, alpha, seed, heaps, out, threads=_THREADS):
    """Host helper for :func:`ring_topk` + :func:`finalize`; ids copied into ``out``."""
    B = anchors.shape[0]
    d_heaps = [cuda.to_device(h) for h in heaps]
    b1 = math.ceil(B / threads)
    ring_topk[b1, threads](cuda.to_device(np.ascontiguousarray(E)), cuda.to_device(inv), cuda.to_device(anchors),
                           cuda.to_device(offsets), cuda.to_device(nodes if nodes.size else np.zeros(1, nodes.dtype)),
                           mode, float(alpha), seed, *d_heaps)
    d_out = cuda.device_array(out.shape, np.int64)
    finalize[b1, threads](mode, *d_heaps, d_out)
    d_out.copy_to_host(out)
    return out
