"""2-d launches of any height: CUDA limits ``gridDim.y`` (and ``.z``) to 65,535 blocks, so a (columns, rows)
grid of 32 x 4 blocks would stop at 262,140 rows. :func:`shape2` folds the row blocks over ``y`` and ``z``
and :func:`grid2` (called in the kernel instead of ``cuda.grid(2)``) unfolds them; the kernels' own bounds
checks drop the few threads past the last row."""
import math

from numba import cuda

MAX_GRID_Y = 65535


def shape2(cols, rows, block):
    """Launch grid for ``cols`` x ``rows`` threads in blocks of ``block = (bx, by)``: ``(gx, gy, gz)``."""
    gx = max(1, math.ceil(cols / block[0]))
    ry = max(1, math.ceil(rows / block[1]))
    gy = min(ry, MAX_GRID_Y)
    return gx, gy, math.ceil(ry / gy)


def shape1(n, threads):
    """``(blocks, threads per block)`` of a 1-d launch over ``n`` items (no more threads per block than items)."""
    t = max(1, min(threads, n))
    return (n + t - 1) // t, t


def launch2(kernel, cols, rows, block, *args):
    """Launch a :func:`grid2` kernel over ``cols`` x ``rows`` threads in blocks of ``block`` (nothing when empty)."""
    if cols and rows:
        kernel[shape2(cols, rows, block), block](*args)


@cuda.jit(device=True, inline=True)
def grid2():
    """``(column, row)`` of this thread in a :func:`shape2` launch (``cuda.grid(2)`` for any height)."""
    t = cuda.blockIdx.x * cuda.blockDim.x + cuda.threadIdx.x
    r = (cuda.blockIdx.z * cuda.gridDim.y + cuda.blockIdx.y) * cuda.blockDim.y + cuda.threadIdx.y
    return t, r
