"""Hard-negative mining kernels: multi-source k-hop BFS and blocked partial top-K selection.

Scores are kept in per-anchor bounded min-heaps (worst candidate at the root). Order between
candidates: higher score first, and for equal scores the lower pool id first, so results do not depend
on block sizes or thread counts. Random keys come from ``hash3(seed, anchor, pool id)``.
"""
import math

import numpy as np
from numba import njit, prange

from .prefetch import prefetch1 as prefetch
from .rng import hash3

# modes (a registry in fastgnn/mining.py maps strategy names to these)
HARDEST = 0
SEMIHARD = 1
WEIGHTED = 2
MIXED = 3

_TWO53 = 1.0 / 9007199254740992.0
# similarities per bound check in the top-K scan: a chunk with a hit is then walked one entry at a time
_SCAN_CHUNK = 64


# --------------------------------------------------------------------------------------------- k-hop
# The k-hop kernels take *unsigned* views of the graph's arrays (the wrapper passes ``view(uint32)`` of
# int32 arrays, ``view(uint64)`` of int64 ones, and of the output buffers), and index with uint64: Numba
# then drops the negative-index wrap-around from every access, about 20% of the time of a search.
# Queue positions ahead of the node being expanded at which its row pointer / its row are prefetched:
# a BFS on a large graph waits on one cache miss per row otherwise.
_PF_PTR = np.uint64(8)
_PF_ROW = np.uint64(4)
_U1 = np.uint64(1)
_U6 = np.uint64(6)
_U63 = np.uint64(63)


@njit(inline="always")
def _bfs(indptr, indices, src, k, min_hops, seen, queue):
    """BFS from ``src`` up to depth k; returns (begin, end): queue[begin:end] = nodes at distance min_hops..k.

    ``seen`` is a bitmap (N/8 bytes, cache resident where a stamp array is not). It is cleared after
    each source through the queue of visited nodes: O(visited), never an O(N) reset.
    """
    u = np.uint64(src)
    queue[0] = src
    seen[u >> _U6] |= _U1 << (u & _U63)
    head = np.uint64(0)
    tail = _U1
    ring = np.uint64(0)
    found = min_hops == 0
    d = 1
    while d <= k:
        if d == min_hops:
            ring = tail
            found = True
        level_end = tail
        if head == level_end:
            break
        # rows worth prefetching: the rest of this level, and when the nodes found now are expanded later
        # (d < k) those too, so the first rows of the next level are already on their way
        ahead = d < k
        while head < level_end:
            lim = tail if ahead else level_end
            if head + _PF_PTR < lim:
                prefetch(indptr, queue[head + _PF_PTR])
            if head + _PF_ROW < lim:
                r = indptr[queue[head + _PF_ROW]]
                prefetch(indices, r)
                prefetch(indices, r + 16)
            v = np.uint64(queue[head])
            head += _U1
            for p in range(np.uint64(indptr[v]), np.uint64(indptr[v + _U1])):
                j = indices[p]
                w = np.uint64(j) >> _U6
                bit = _U1 << (np.uint64(j) & _U63)
                word = seen[w]
                if not (word & bit):
                    seen[w] = word | bit
                    queue[tail] = j
                    tail += _U1
        d += 1
    if not found:
        ring = tail
    return ring, tail


@njit(inline="always")
def _prefetch_source(indptr, indices, sources, s, hi):
    """Ask for the rows of the next sources early: their first row is otherwise a plain cache miss."""
    if s + 2 < hi:
        prefetch(indptr, sources[s + 2])
    if s + 1 < hi:
        prefetch(indices, indptr[sources[s + 1]])


@njit(inline="always")
def _clear(seen, queue, tail):
    for t in range(tail):
        seen[np.uint64(queue[t]) >> _U6] = 0


@njit(parallel=True, cache=True)
def k_hop_first(indptr, indices, sources, k, min_hops, nchunks, counts, scratch, written):
    """One BFS per source: counts[s] = ring size; rings written chunk by chunk into ``scratch``.

    Chunk c owns scratch[c * cap:(c + 1) * cap] (cap = scratch.size // nchunks) and writes its rings
    there back to back while they fit; written[c] = the number of its sources (in order) whose rings
    were stored. Later sources only count (``k_hop_rest`` redoes them).
    """
    n = indptr.size - 1
    ns = sources.size
    cap = scratch.size // nchunks
    for c in prange(nchunks):
        lo = c * ns // nchunks
        hi = (c + 1) * ns // nchunks
        written[c] = 0
        if hi == lo:
            continue
        seen = np.zeros((n >> 6) + 1, np.uint64)
        queue = np.empty(n, indices.dtype)
        pos = np.uint64(c * cap)
        stop = pos + np.uint64(cap)
        full = False
        for s in range(lo, hi):
            _prefetch_source(indptr, indices, sources, s, hi)
            b, e = _bfs(indptr, indices, sources[s], k, min_hops, seen, queue)
            counts[s] = e - b
            if not full and pos + (e - b) <= stop:
                for t in range(b, e):
                    scratch[pos + t - b] = queue[t]
                pos += e - b
                written[c] += 1
            else:
                full = True
            _clear(seen, queue, e)


@njit(parallel=True, cache=True)
def k_hop_rest(indptr, indices, sources, k, min_hops, nchunks, scratch, written, offsets, nodes):
    """Copy the stored rings from ``scratch`` to ``nodes`` and run the BFS again for the others."""
    n = indptr.size - 1
    ns = sources.size
    cap = scratch.size // nchunks
    for c in prange(nchunks):
        lo = c * ns // nchunks
        hi = (c + 1) * ns // nchunks
        if hi == lo:
            continue
        mid = lo + written[c]
        base = c * cap
        for t in range(offsets[mid] - offsets[lo]):
            nodes[offsets[lo] + t] = scratch[base + t]
        if mid < hi:
            seen = np.zeros((n >> 6) + 1, np.uint64)
            queue = np.empty(n, indices.dtype)
            for s in range(mid, hi):
                _prefetch_source(indptr, indices, sources, s, hi)
                b, e = _bfs(indptr, indices, sources[s], k, min_hops, seen, queue)
                o = np.uint64(offsets[s])
                for t in range(b, e):
                    nodes[o + t - b] = queue[t]
                _clear(seen, queue, e)


# --------------------------------------------------------------------------------------------- heaps
@njit(inline="always")
def _better(s1, i1, s2, i2):
    return s1 > s2 or (s1 == s2 and i1 < i2)


@njit(inline="always")
def _sift_down(hs, hi, b, pos, size):
    s = hs[b, pos]
    i = hi[b, pos]
    while True:
        c = 2 * pos + 1
        if c >= size:
            break
        # pick the worse child
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


@njit(inline="always")
def _push(hs, hi, cnt, b, cap, s, i):
    """Offer (score s, id i) to row b's heap of capacity cap; keeps the cap best."""
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


@njit(inline="always")
def _heap_sort(hs, hi, b, size):
    """Sort row b's heap in place: best first."""
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


@njit(inline="always")
def _gumbel(seed, b, j):
    u = (np.float64(hash3(seed, b, j) >> np.uint64(11)) + 0.5) * _TWO53
    return -math.log(-math.log(u))


@njit(inline="always")
def _random_key(seed, b, j):
    return np.float64(hash3(seed, b, j) >> np.uint64(11)) * _TWO53


@njit(inline="always")
def _offer(mode, alpha, seed, b, j, sim, pos_sim, h1s, h1i, n1, cap1, h2s, h2i, n2, cap2):
    if mode == HARDEST:
        _push(h1s, h1i, n1, b, cap1, sim, j)
    elif mode == SEMIHARD:
        if sim < pos_sim[b]:
            _push(h1s, h1i, n1, b, cap1, sim, j)
        else:
            _push(h2s, h2i, n2, b, cap2, sim, j)
    elif mode == WEIGHTED:
        _push(h1s, h1i, n1, b, cap1, alpha * sim + _gumbel(seed, b, j), j)
    else:
        _push(h1s, h1i, n1, b, cap1, sim, j)
        _push(h2s, h2i, n2, b, cap2, _random_key(seed, b, j), j)


# --------------------------------------------------------------------------------------------- similarity miner
@njit(parallel=True, cache=True)
def row_inv_norms(X, out):
    """out[i] = 1 / ||X[i]|| (0 for a zero row, NaN for a non-finite sum of squares)."""
    for i in prange(X.shape[0]):
        acc = 0.0
        for k in range(X.shape[1]):
            acc += np.float64(X[i, k]) * np.float64(X[i, k])
        if acc > 0.0 and acc < np.inf:
            out[i] = 1.0 / math.sqrt(acc)
        elif acc == 0.0:
            out[i] = 0.0
        else:
            out[i] = np.nan  # a NaN/inf entry, or squares that overflow: the caller checks


@njit(inline="always")
def _threshold(mode, b, h1s, n1, cap1, h2s, n2, cap2):
    """A score a candidate must exceed to enter any heap of anchor b; -inf where there is no such bound.

    Valid because pool ids only grow along the scan of an anchor: a candidate that merely ties a heap's
    worst entry has the larger id and loses the tie.
    """
    if mode == HARDEST:
        if n1[b] == cap1:
            return h1s[b, 0]
    elif mode == SEMIHARD:
        # below the positive it competes in heap 1, else in heap 2: it must beat the worse of both roots
        if n1[b] == cap1 and n2[b] == cap2:
            return min(h1s[b, 0], h2s[b, 0])
    return -np.inf


@njit(inline="always")
def _scan_row(S, r, b, start, inv_norm, mode, alpha, seed, pos_sim, anchor_labels, pool_labels, use_labels,
              pool_mask, use_mask, exclude, excl_ptr, h1s, h1i, n1, cap1, h2s, h2i, n2, cap2):
    """Offer pool rows start .. start + S.shape[1] to anchor b, whose raw similarities are row r of ``S``."""
    m = S.shape[1]
    end = start + m
    ne = exclude.shape[1]
    ptr = excl_ptr[b]
    while ptr < ne and exclude[b, ptr] < end:
        e = exclude[b, ptr]
        if e >= start:
            S[r, e - start] = np.nan
        ptr += 1
    excl_ptr[b] = ptr
    thr = _threshold(mode, b, h1s, n1, cap1, h2s, n2, cap2)
    lab = anchor_labels[b] if use_labels else 0
    for c0 in range(0, m, _SCAN_CHUNK):
        c1 = min(m, c0 + _SCAN_CHUNK)
        if thr > -np.inf:
            # once the heaps are full almost every chunk holds no candidate above the bound: a branch-free
            # count (it vectorises) rejects it; NaN (excluded) entries never count
            hits = 0
            for jj in range(c0, c1):
                hits += np.float64(S[r, jj]) * inv_norm[start + jj] > thr
            if hits == 0:
                continue
        for jj in range(c0, c1):
            v = S[r, jj]
            if v != v:
                continue
            j = start + jj
            if use_mask and not pool_mask[j]:
                continue
            if use_labels and pool_labels[j] == lab:
                continue
            sim = np.float64(v) * inv_norm[j]
            if not sim > thr:  # the bound only rises while candidates enter
                continue
            _offer(mode, alpha, seed, b, j, sim, pos_sim, h1s, h1i, n1, cap1, h2s, h2i, n2, cap2)
            thr = _threshold(mode, b, h1s, n1, cap1, h2s, n2, cap2)


@njit(inline="always")
def _caps(mode, h1s, h2s):
    return h1s.shape[1], (h2s.shape[1] if mode == SEMIHARD or mode == MIXED else 0)


@njit(parallel=True, cache=True)
def topk_block(S, start, inv_norm, mode, alpha, seed, pos_sim, anchor_labels, pool_labels, use_labels,
               pool_mask, use_mask, exclude, excl_ptr, h1s, h1i, n1, h2s, h2i, n2):
    """Offer pool rows start .. start + S.shape[1] to every anchor's heaps.

    ``S[b, j]`` = <unit anchor b, pool row start + j>; cosine = S * inv_norm. ``exclude`` rows are
    sorted ids (-1 padding first); ``excl_ptr[b]`` walks them as blocks advance (blocks come in
    increasing order), so an excluded id costs O(1) in total. Excluded entries are overwritten with NaN
    in ``S`` (a scratch buffer). Each anchor owns its heap rows.
    """
    cap1, cap2 = _caps(mode, h1s, h2s)
    for b in prange(S.shape[0]):
        _scan_row(S, b, b, start, inv_norm, mode, alpha, seed, pos_sim, anchor_labels, pool_labels, use_labels,
                  pool_mask, use_mask, exclude, excl_ptr, h1s, h1i, n1, cap1, h2s, h2i, n2, cap2)


@njit(parallel=True, cache=True)
def topk_tiles(unit, pool, start, stop, group, tile, inv_norm, mode, alpha, seed, pos_sim, anchor_labels,
               pool_labels, use_labels, pool_mask, use_mask, exclude, excl_ptr, h1s, h1i, n1, h2s, h2i, n2):
    """``topk_block`` fused with the similarity product, for pool rows start .. stop.

    Work item g owns anchors g * group .. (g + 1) * group: for each ``tile`` pool rows in increasing
    order it computes their similarities with one BLAS call (``np.dot`` into a cache-sized buffer) and
    scans them while they are still in cache. No [B, block] matrix goes through memory and the BLAS
    and scan work share the same threads, so the caller must keep BLAS single-threaded during the call.
    Tile bounds are start + multiples of ``tile``, whatever the thread count.
    """
    nb = unit.shape[0]
    cap1, cap2 = _caps(mode, h1s, h2s)
    for g in prange((nb + group - 1) // group):
        a0 = g * group
        a1 = min(nb, a0 + group)
        A = unit[a0:a1]
        S = np.empty((a1 - a0, tile), unit.dtype)
        for p0 in range(start, stop, tile):
            p1 = min(stop, p0 + tile)
            buf = S if p1 - p0 == tile else np.empty((a1 - a0, p1 - p0), unit.dtype)
            np.dot(A, pool[p0:p1].T, buf)
            for r in range(a1 - a0):
                _scan_row(buf, r, a0 + r, p0, inv_norm, mode, alpha, seed, pos_sim, anchor_labels, pool_labels,
                          use_labels, pool_mask, use_mask, exclude, excl_ptr, h1s, h1i, n1, cap1, h2s, h2i, n2,
                          cap2)


@njit(parallel=True, cache=True)
def finalize(mode, h1s, h1i, n1, h2s, h2i, n2, out):
    """Write each anchor's selection into out[b] (pool ids, -1 padding)."""
    nb = out.shape[0]
    K = out.shape[1]
    for b in prange(nb):
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


# --------------------------------------------------------------------------------------------- graph miner
@njit(parallel=True, cache=True)
def ring_topk(E, inv_norm, anchors, offsets, nodes, mode, alpha, seed, h1s, h1i, n1, h2s, h2i, n2):
    """Offer every node of anchor b's ring nodes[offsets[b]:offsets[b+1]] scored by cosine(E[a], E[j])."""
    nb = anchors.size
    d = E.shape[1]
    cap1 = h1s.shape[1]
    cap2 = h2s.shape[1] if mode == MIXED else 0
    # the ring miner has no positives ("semihard" is not offered), so _offer never reads this array
    no_positive_sims = np.zeros(1, np.float64)
    for b in prange(nb):
        a = anchors[b]
        for p in range(offsets[b], offsets[b + 1]):
            j = nodes[p]
            acc = 0.0
            for t in range(d):
                acc += np.float64(E[a, t]) * np.float64(E[j, t])
            sim = acc * inv_norm[a] * inv_norm[j]
            _offer(mode, alpha, seed, b, j, sim, no_positive_sims, h1s, h1i, n1, cap1, h2s, h2i, n2, cap2)
