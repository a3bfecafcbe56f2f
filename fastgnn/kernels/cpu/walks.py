"""Random walks over CSR arrays: uniform / weighted first-order and node2vec second-order.

One walk per ``prange`` iteration; walk ``w`` writes only row ``w`` of ``out`` and draws its random
numbers from ``hash3(seed, w, counter)``, so the result does not depend on the thread count.
Neighbour lists must be sorted (the node2vec "is x a neighbour of t" test is a binary search).
"""
import numpy as np
from numba import njit, prange

from .rng import uniform, randbelow

_GROUP = 16  # first-order walks advanced together by one thread


@njit(parallel=True, cache=True)
def row_cumsum(indptr, weights, cum):
    """cum[p] = sum of weights[indptr[i] .. p] over row i (float64 running sums, one row per iteration)."""
    n = indptr.size - 1
    for i in prange(n):
        acc = 0.0
        for p in range(indptr[i], indptr[i + 1]):
            acc += weights[p]
            cum[p] = acc


@njit(inline="always")
def _lower_bound(indices, lo, hi, x):
    # first p in [lo, hi) with indices[p] >= x
    while lo < hi:
        mid = (lo + hi) >> 1
        if indices[mid] < x:
            lo = mid + 1
        else:
            hi = mid
    return lo


@njit(inline="always")
def _first_order(indptr, indices, cum, weighted, v, seed, w, counter):
    """A neighbour of v drawn with probability weight / total (uniform when not weighted); -1 = dead end."""
    lo = indptr[v]
    hi = indptr[v + 1]
    if hi == lo:
        return -1
    if not weighted:
        return indices[lo + randbelow(seed, w, counter, hi - lo)]
    total = cum[hi - 1]
    if not total > 0.0:
        return -1
    target = uniform(seed, w, counter) * total
    # first p with cum[p] > target: zero-weight arcs are never chosen
    a = lo
    b = hi - 1
    while a < b:
        mid = (a + b) >> 1
        if cum[mid] > target:
            b = mid
        else:
            a = mid + 1
    return indices[a]


@njit(inline="always")
def _arc_weight_to(indptr, indices, cum, weighted, v, t):
    """Total weight of the arcs v -> t (0 when absent; duplicates summed)."""
    lo = indptr[v]
    hi = indptr[v + 1]
    p = _lower_bound(indices, lo, hi, t)
    s = 0.0
    while p < hi and indices[p] == t:
        if weighted:
            s += cum[p] - (cum[p - 1] if p > lo else 0.0)
        else:
            s += 1.0
        p += 1
    return s


@njit(inline="always")
def _is_neighbor(indptr, indices, t, x):
    lo = indptr[t]
    hi = indptr[t + 1]
    p = _lower_bound(indices, lo, hi, x)
    return p < hi and indices[p] == x


@njit(inline="always")
def _walk(indptr, indices, cum, weighted, second_order, inv_p, inv_q, start, seed, w, out):
    """Fill out[w] with one walk from ``start``; -1 after a dead end."""
    length = out.shape[1]
    out[w, 0] = start
    counter = np.uint64(0)
    prev = -1
    cur = start
    bound = max(1.0, inv_q)  # envelope for every x != prev
    for step in range(1, length):
        nxt = -1
        if not second_order or prev < 0:
            nxt = _first_order(indptr, indices, cum, weighted, cur, seed, w, counter)
            counter += np.uint64(1)
        else:
            lo = indptr[cur]
            hi = indptr[cur + 1]
            if hi > lo:
                total = cum[hi - 1] if weighted else np.float64(hi - lo)
                if total > 0.0:
                    # Envelope: weight * inv_p for the way back, weight * bound for the rest.
                    # The way back is accepted outright; others with alpha / bound.
                    w_back = _arc_weight_to(indptr, indices, cum, weighted, cur, prev)
                    mass_back = w_back * inv_p
                    mass_rest = (total - w_back) * bound
                    mass = mass_back + mass_rest
                    while True:
                        u = uniform(seed, w, counter)
                        counter += np.uint64(1)
                        if u * mass < mass_back:
                            nxt = prev
                            break
                        # x from the first-order law restricted to x != prev (redraw x only)
                        x = prev
                        while x == prev:
                            x = _first_order(indptr, indices, cum, weighted, cur, seed, w, counter)
                            counter += np.uint64(1)
                        alpha = 1.0 if _is_neighbor(indptr, indices, prev, x) else inv_q
                        if alpha >= bound:
                            nxt = x
                            break
                        u2 = uniform(seed, w, counter)
                        counter += np.uint64(1)
                        if u2 * bound < alpha:
                            nxt = x
                            break
        if nxt < 0:
            for s in range(step, length):
                out[w, s] = -1
            return
        out[w, step] = nxt
        prev = cur
        cur = nxt


@njit(parallel=True, cache=True)
def random_walks(indptr, indices, cum, weighted, second_order, inv_p, inv_q, starts, seed, out):
    """out[r * S + s] = walk r from starts[s] (walk-major order), rows of -1 padding after a dead end.

    ``cum`` holds per-row cumulative weights (ignored, may be length 1, when not ``weighted``).
    Second order (node2vec): next x from cur given prev t has probability proportional to
    weight(cur, x) * alpha, alpha = inv_p if x == t, 1 if x ~ t, inv_q otherwise.
    """
    nwalks = out.shape[0]
    ns = starts.size
    if second_order:
        for w in prange(nwalks):
            _walk(indptr, indices, cum, weighted, second_order, inv_p, inv_q, starts[w % ns], seed, w, out)
        return
    # First order: a group of walks advances in lockstep, so the cache misses of independent walks
    # overlap instead of being waited for one by one. Draw ``step - 1`` of walk w is the same as in
    # ``_walk``, so the walks are identical.
    length = out.shape[1]
    ngroups = (nwalks + _GROUP - 1) // _GROUP
    for g in prange(ngroups):
        lo = g * _GROUP
        hi = min(nwalks, lo + _GROUP)
        cur = np.empty(_GROUP, np.int64)
        for w in range(lo, hi):
            out[w, 0] = starts[w % ns]
            cur[w - lo] = starts[w % ns]
        for step in range(1, length):
            for w in range(lo, hi):
                c = cur[w - lo]
                nxt = -1
                if c >= 0:
                    nxt = _first_order(indptr, indices, cum, weighted, c, seed, w, np.uint64(step - 1))
                out[w, step] = nxt
                cur[w - lo] = nxt
