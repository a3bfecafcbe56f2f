"""Sums over the 32 lanes of a warp, for kernels that give one row (an anchor, a word) to 32 threads.

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
"""
from numba import config, cuda

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

    @cuda.jit(device=True)
    def warp_sum2(x, y, scratch, lane, w):
        """``(sum of x, sum of y)`` over the warp's 32 lanes, the same on every lane (one block barrier).

        Simulator only (plain Python): the lanes write to one of two halves of the warp's part of ``scratch``,
        alternating per call (each simulated thread counts its calls), wait at one barrier, and each lane sums
        the 32 values itself. A lane cannot get two calls ahead of another (it would pass a barrier the other
        has not reached), so the half it writes next is never still being read.
        """
        me = threading.current_thread()
        phase = getattr(me, "_fastgnn_warp_phase", 0)
        me._fastgnn_warp_phase = phase ^ 1
        base = w * 128 + phase * 64
        scratch[base + lane] = x
        scratch[base + 32 + lane] = y
        cuda.syncthreads()
        return float(scratch[base:base + 32].sum()), float(scratch[base + 32:base + 64].sum())

    @cuda.jit(device=True)
    def warp_sum(x, scratch, lane, w):
        """Sum of ``x`` over the warp's 32 lanes, the same on every lane."""
        s, _ = warp_sum2(x, 0.0, scratch, lane, w)
        return s

    @cuda.jit(device=True)
    def warp_sync():
        """Barrier and memory fence for the lanes of a warp (the whole block under the simulator)."""
        cuda.syncthreads()
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
    def warp_sum2(x, y, scratch, lane, w):
        """``(sum of x, sum of y)`` over the warp's 32 lanes, the same on every lane."""
        return warp_sum(x, scratch, lane, w), warp_sum(y, scratch, lane, w)

    @cuda.jit(device=True, inline=True)
    def warp_sync():
        """Barrier and memory fence for the lanes of a warp (``__syncwarp``)."""
        cuda.syncwarp(FULL_MASK)
