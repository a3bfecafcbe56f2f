"""Sums (and maxima: :func:`warp_max`) over the 32 lanes of a warp, for kernels that give one row (an anchor, a
word) to 32 threads.

On a GPU the sum is a fixed tree of ``shfl_down_sync`` steps whose root (lane 0) is broadcast back with
``shfl_sync``: no shared memory, no block barrier, and the same order of additions on every run, so results
are deterministic and equal on every lane.

The Numba CUDA simulator has no shuffles. There the lanes' values go through the shared ``scratch`` buffer
and, after one block barrier, every lane adds the warp's values itself (the same way on every lane). Hence,
under the simulator, **every thread of the block must call these functions equally often** (threads that
have returned no longer count): a kernel whose warps take different paths (one warp per chunk of text) is
launched with one warp per block under the simulator (:data:`SIM`). On a GPU only the 32
lanes of the calling warp must take part (all of them: the mask is full), so a kernel must not let some lanes
of a warp return before its last reduction.

:func:`warp_sync` is a barrier with a memory fence for the lanes of one warp (``__syncwarp``; a block barrier
under the simulator, with the same rule).

Callers declare ``scratch = cuda.shared.array(scratch_size(BLOCK), float64)`` with their block size
``BLOCK`` (a multiple of 32) and pass it, their lane (``threadIdx.x % 32``) and warp (``threadIdx.x // 32``)
in the block. On a GPU the buffer is not touched.

Votes and scans, for kernels whose lanes build one list together in lane order (one warp per BFS):

* :func:`warp_ballot` -- the mask of the lanes whose predicate holds (``ballot_sync``);
* :func:`warp_match_any` -- the mask of the lanes holding the same integer (``match_any_sync``);
* :func:`warp_prefix_count` -- how many lanes below this one, and how many in all, hold a predicate: the slot
  of each appending lane, in lane order;
* :func:`warp_append_claimed` -- the same for values claimed by some lane (an atomic that found a bit clear),
  each value appended once, by the lowest lane holding it, whichever lane won it;
* :func:`warp_scan` -- inclusive prefix sum of an integer and the warp's total (``shfl_up_sync`` steps);
* :func:`warp_scan_share` -- a 32-entry table of one value per lane and the exclusive prefix sums of
  another, in shared memory, for every lane to search (one barrier under the simulator);
* :func:`lanes_below` -- the mask of the lanes below ``lane``.

They take the same ``scratch`` (``scratch_size(BLOCK)`` elements, used only under the simulator), whose dtype
must hold the values exactly: int64 for ids and sums. Masks are non-negative ints below ``2**32``. Results
are the same on every lane. On a GPU they are register shuffles and votes; under the simulator each costs one
block barrier and follows the rule above. (Each warp's lanes write and read only their warp's part of
``scratch``, so a barrier orders the warp's own calls whatever the block's other warps are doing: warps of a
block may make different numbers of these calls, and may return early, provided each warp's 32 lanes make
the same calls and return together.)
"""
from numba import config, cuda, int32, int64, uint32

SIM = bool(config.ENABLE_CUDASIM)
FULL_MASK = 0xFFFFFFFF


def scratch_size(block):
    """Shared float64 elements :func:`warp_sum2` needs for blocks of ``block`` threads (a multiple of 32):
    128 per warp under the simulator, 1 on a GPU (where the buffer is not used)."""
    if block % 32:
        raise ValueError(f"block: {block} threads is not a whole number of warps")
    return 128 * (block // 32) if SIM else 1


if SIM:
    import threading

    import numpy as np

    def _warp_values(x, y, scratch, lane, w):
        """Simulator only: the warp's 32 values of ``x`` and of ``y`` (copies, index = lane) after one block
        barrier, through the warp's part of ``scratch`` as in :func:`warp_sum2`. A plain function (a simulated
        device-function call costs a lock round trip per lane): called only from this module's device
        functions, while the simulator has swapped this module's ``cuda`` for the launch's."""
        me = threading.current_thread()
        phase = getattr(me, "_fastgnn_warp_phase", 0)
        me._fastgnn_warp_phase = phase ^ 1
        base = w * 128 + phase * 64
        scratch[base + lane] = x
        scratch[base + 32 + lane] = y
        cuda.syncthreads()
        return scratch[base:base + 32].copy(), scratch[base + 32:base + 64].copy()

    @cuda.jit(device=True)
    def warp_sum2(x, y, scratch, lane, w):
        """``(sum of x, sum of y)`` over the warp's 32 lanes, the same on every lane (one block barrier).

        Simulator only (plain Python): the lanes write to one of two halves of the warp's part of ``scratch``,
        alternating per call (each simulated thread counts its calls), wait at one barrier, and each lane sums
        the 32 values itself (:func:`_warp_values`). A lane cannot get two calls ahead of another (it would pass
        a barrier the other has not reached), so the half it writes next is never still being read.
        """
        xs, ys = _warp_values(x, y, scratch, lane, w)
        return float(xs.sum()), float(ys.sum())

    @cuda.jit(device=True)
    def warp_sum(x, scratch, lane, w):
        """Sum of ``x`` over the warp's 32 lanes, the same on every lane."""
        s, _ = warp_sum2(x, 0.0, scratch, lane, w)
        return s

    @cuda.jit(device=True)
    def warp_max(x, scratch, lane, w):
        """Largest ``x`` over the warp's 32 lanes (a NaN anywhere gives NaN), the same on every lane."""
        xs, _ = _warp_values(x, 0.0, scratch, lane, w)
        return float(xs.max())

    @cuda.jit(device=True)
    def warp_sync():
        """Barrier and memory fence for the lanes of a warp (the whole block under the simulator)."""
        cuda.syncthreads()

    _BITS = np.int64(1) << np.arange(32, dtype=np.int64)
    _BELOW = np.tri(32, k=-1, dtype=bool)  # row q: the lanes below q

    def _mask(flags):
        """Simulator only: the mask (a non-negative int) of the non-zero entries of 32 flags."""
        return int(_BITS[np.asarray(flags) != 0].sum())

    @cuda.jit(device=True)
    def warp_ballot(pred, scratch, lane, w):
        """Mask of the warp's lanes whose ``pred`` is true (bit q: lane q)."""
        vals, _ = _warp_values(1 if pred else 0, 0, scratch, lane, w)
        return _mask(vals)

    @cuda.jit(device=True)
    def warp_match_any(x, scratch, lane, w):
        """Mask of the warp's lanes whose integer ``x`` equals this lane's (this lane included)."""
        vals, _ = _warp_values(x, 0, scratch, lane, w)
        return _mask(vals == x)

    @cuda.jit(device=True)
    def warp_scan(x, scratch, lane, w):
        """``(inclusive prefix sum of x up to this lane, sum over the warp)`` of an integer ``x``."""
        vals, _ = _warp_values(x, 0, scratch, lane, w)
        return int(vals[:lane + 1].sum()), int(vals.sum())

    @cuda.jit(device=True)
    def warp_scan_share(a, x, out, at, scratch, lane, w):
        """Sum of ``x`` over the warp, with ``out`` filled as the GPU version does. One barrier: every lane
        gets all 32 ``(a, x)`` and writes the 64 entries itself (the same values on every lane), so they are
        visible to each lane without a second barrier."""
        avals, xs = _warp_values(a, x, scratch, lane, w)
        out[at:at + 32] = avals
        out[at + 32:at + 64] = np.cumsum(xs) - xs
        return int(xs.sum())

    @cuda.jit(device=True)
    def warp_append_claimed(claimed, x, scratch, lane, w):
        """``(lower, total, mine)``: see the GPU version. One barrier: every lane gets all 32 ``(x, claimed)``
        and evaluates the GPU version's masks for each lane itself."""
        xs, cs = _warp_values(x, 1 if claimed else 0, scratch, lane, w)
        peers = xs[:, None] == xs[None, :]  # row q: lane q's match_any mask
        mine = ~(peers & _BELOW).any(axis=1) & (peers & (cs != 0)[None, :]).any(axis=1)
        return int(mine[:lane].sum()), int(mine.sum()), bool(mine[lane])
else:
    @cuda.jit(device=True, inline=True)
    def warp_sum(x, scratch, lane, w):
        """Sum of ``x`` over the warp's 32 lanes, the same on every lane (a fixed shuffle tree)."""
        x += cuda.shfl_down_sync(FULL_MASK, x, 16)
        x += cuda.shfl_down_sync(FULL_MASK, x, 8)
        x += cuda.shfl_down_sync(FULL_MASK, x, 4)
        x += cuda.shfl_down_sync(FULL_MASK, x, 2)
        x += cuda.shfl_down_sync(FULL_MASK, x, 1)
        return cuda.shfl_sync(FULL_MASK, x, 0)

    @cuda.jit(device=True, inline=True)
    def _max_nan(a, b):
        return a if a > b or a != a else b

    @cuda.jit(device=True, inline=True)
    def warp_max(x, scratch, lane, w):
        """Largest ``x`` over the warp's 32 lanes (a NaN anywhere gives NaN), the same on every lane."""
        x = _max_nan(x, cuda.shfl_down_sync(FULL_MASK, x, 16))
        x = _max_nan(x, cuda.shfl_down_sync(FULL_MASK, x, 8))
        x = _max_nan(x, cuda.shfl_down_sync(FULL_MASK, x, 4))
        x = _max_nan(x, cuda.shfl_down_sync(FULL_MASK, x, 2))
        x = _max_nan(x, cuda.shfl_down_sync(FULL_MASK, x, 1))
        return cuda.shfl_sync(FULL_MASK, x, 0)

    @cuda.jit(device=True, inline=True)
    def warp_sum2(x, y, scratch, lane, w):
        """``(sum of x, sum of y)`` over the warp's 32 lanes, the same on every lane."""
        return warp_sum(x, scratch, lane, w), warp_sum(y, scratch, lane, w)

    @cuda.jit(device=True, inline=True)
    def warp_sync():
        """Barrier and memory fence for the lanes of a warp (``__syncwarp``)."""
        cuda.syncwarp(FULL_MASK)

    @cuda.jit(device=True, inline=True)
    def warp_ballot(pred, scratch, lane, w):
        """Mask of the warp's lanes whose ``pred`` is true (bit q: lane q; ``ballot_sync``)."""
        return int64(uint32(cuda.ballot_sync(FULL_MASK, pred)))

    @cuda.jit(device=True, inline=True)
    def warp_match_any(x, scratch, lane, w):
        """Mask of the warp's lanes whose integer ``x`` equals this lane's (``match_any_sync`` on 64 bits)."""
        return int64(uint32(cuda.match_any_sync(int32(-1), int64(x))))  # int32(-1): all 32 lanes

    @cuda.jit(device=True, inline=True)
    def warp_scan(x, scratch, lane, w):
        """``(inclusive prefix sum of x up to this lane, sum over the warp)`` of an integer ``x``, as int64: a
        Hillis-Steele scan of five ``shfl_up_sync`` steps, the total broadcast from lane 31."""
        x = int64(x)
        for off in (1, 2, 4, 8, 16):
            y = cuda.shfl_up_sync(FULL_MASK, x, off)
            if lane >= off:
                x += y
        return x, cuda.shfl_sync(FULL_MASK, x, 31)

    @cuda.jit(device=True, inline=True)
    def warp_scan_share(a, x, out, at, scratch, lane, w):
        """Publish a table for the warp: ``out[at + lane] = a`` and ``out[at + 32 + lane]`` = the exclusive
        prefix sum of the integer ``x`` (the sum over the lanes below ``lane``), for all 32 lanes; returns the
        sum of ``x`` over the warp. ``out`` is shared memory; the table is visible to every lane of the warp on
        return (a :func:`warp_scan`, then a :func:`warp_sync`), and so is whatever each lane wrote to memory
        before the call. Put a :func:`warp_sync` between the lanes' last reads of a table and the call that
        rewrites it."""
        incl, total = warp_scan(x, scratch, lane, w)
        out[at + lane] = a
        out[at + 32 + lane] = incl - x
        warp_sync()
        return total

    @cuda.jit(device=True, inline=True)
    def warp_append_claimed(claimed, x, scratch, lane, w):
        """``(lower, total, mine)`` for lanes that append values ``x`` some of which they claimed.

        ``claimed``: this lane won ``x`` (e.g. an atomic or found its bit clear; at most one lane per value
        wins). Every claimed value is appended once, by the lowest lane holding it (``mine``), at
        ``n + lower``; every lane moves ``n`` on by ``total``. Values thus land in lane order even when
        another lane holding the same value won it."""
        peers = warp_match_any(x, scratch, lane, w)
        won = warp_ballot(claimed, scratch, lane, w)
        mine = (peers & lanes_below(lane)) == 0 and (peers & won) != 0
        lower, total = warp_prefix_count(mine, scratch, lane, w)
        return lower, total, mine


@cuda.jit(device=True, inline=True)
def lanes_below(lane):
    """Mask of the lanes ``0 .. lane - 1`` of a warp (``%lanemask_lt``)."""
    return (int64(1) << int64(lane)) - int64(1)


@cuda.jit(device=True, inline=True)
def warp_prefix_count(pred, scratch, lane, w):
    """``(lower, total)``: how many lanes below ``lane``, and how many lanes of the warp in all, have ``pred``
    true (one :func:`warp_ballot`). Lanes that append their items to a list of length ``n`` write them at
    ``n + lower``, in lane order, and every lane moves ``n`` on by ``total``."""
    mask = warp_ballot(pred, scratch, lane, w)
    return int64(cuda.popc(mask & lanes_below(lane))), int64(cuda.popc(mask))
