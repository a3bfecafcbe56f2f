"""CUDA twin of ``kernels/cpu/walks.py``: one thread per walk, the same draws (same bits) as the CPU."""
import math

import numpy as np
from numba import cuda, float64, int64, uint64

from .rng import uniform, randbelow

_THREADS = 128


@cuda.jit(device=True, inline=True)
def _lower_bound(indices, lo, hi, x):
    while lo < hi:
        mid = (lo + hi) >> 1
        if indices[mid] < x:
            lo = mid + 1
        else:
            hi = mid
    return lo


@cuda.jit(device=True)
def _first_order(indptr, indices, cum, weighted, v, seed, w, counter):
    lo = indptr[v]
    hi = indptr[v + 1]
    if hi == lo:
        return int64(-1)
    if not weighted:
        return int64(indices[lo + randbelow(seed, w, counter, hi - lo)])
    total = cum[hi - 1]
    if not total > 0.0:
        return int64(-1)
    target = uniform(seed, w, counter) * total
    a = lo
    b = hi - 1
    while a < b:
        mid = (a + b) >> 1
        if cum[mid] > target:
            b = mid
        else:
            a = mid + 1
    return int64(indices[a])


@cuda.jit(device=True)
def _arc_weight_to(indptr, indices, cum, weighted, v, t):
    lo = indptr[v]
    hi = indptr[v + 1]
    p = _lower_bound(indices, lo, hi, t)
    s = float64(0.0)
    while p < hi and indices[p] == t:
        if weighted:
            s += cum[p] - (cum[p - 1] if p > lo else 0.0)
        else:
            s += 1.0
        p += 1
    return s


@cuda.jit(device=True)
def _is_neighbor(indptr, indices, t, x):
    lo = indptr[t]
    hi = indptr[t + 1]
    p = _lower_bound(indices, lo, hi, x)
    return p < hi and indices[p] == x


@cuda.jit(cache=True)
def random_walks(indptr, indices, cum, weighted, second_order, inv_p, inv_q, starts, seed, out):
    """Same contract as the CPU kernel; thread ``w`` writes row ``w``."""
    w = cuda.grid(1)
    nwalks = out.shape[0]
    if w >= nwalks:
        return
    length = out.shape[1]
    start = starts[w % starts.shape[0]]
    out[w, 0] = start
    counter = uint64(0)
    prev = int64(-1)
    cur = int64(start)
    bound = max(1.0, inv_q)
    for step in range(1, length):
        nxt = int64(-1)
        if not second_order or prev < 0:
            nxt = _first_order(indptr, indices, cum, weighted, cur, seed, w, counter)
            counter += uint64(1)
        else:
            lo = indptr[cur]
            hi = indptr[cur + 1]
            if hi > lo:
                total = cum[hi - 1] if weighted else float64(hi - lo)
                if total > 0.0:
                    w_back = _arc_weight_to(indptr, indices, cum, weighted, cur, prev)
                    mass_back = w_back * inv_p
                    mass = mass_back + (total - w_back) * bound
                    while True:
                        u = uniform(seed, w, counter)
                        counter += uint64(1)
                        if u * mass < mass_back:
                            nxt = prev
                            break
                        # x from the first-order law restricted to x != prev (redraw x only)
                        x = prev
                        while x == prev:
                            x = _first_order(indptr, indices, cum, weighted, cur, seed, w, counter)
                            counter += uint64(1)
                        alpha = 1.0 if _is_neighbor(indptr, indices, prev, x) else inv_q
                        if alpha >= bound:
                            nxt = x
                            break
                        u2 = uniform(seed, w, counter)
                        counter += uint64(1)
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


def _dev(a):
    if hasattr(a, "copy_to_host") or hasattr(a, "__cuda_array_interface__"):
        return a
    return cuda.to_device(np.ascontiguousarray(a))


def launch_random_walks(indptr, indices, cum, weighted, second_order, inv_p, inv_q, starts, seed, out,
                        threads=_THREADS):
    """Launch one thread per walk. Host inputs are copied to the device, device arrays used as they are;
    a host ``out`` receives a copy of the walks, a device ``out`` is written in place (no copy back)."""
    nwalks = out.shape[0]
    if nwalks == 0:
        return out
    host_out = isinstance(out, np.ndarray)
    d_out = cuda.device_array(out.shape, dtype=np.int32) if host_out else out
    blocks = math.ceil(nwalks / threads)
    random_walks[blocks, threads](_dev(indptr), _dev(indices), _dev(cum), bool(weighted), bool(second_order),
                                  float(inv_p), float(inv_q), _dev(starts), np.uint64(seed), d_out)
    if host_out:
        d_out.copy_to_host(out)
    return out
