"""Device kernels of the Trainer's device-resident table path (``fastgnn/trainer/_device.py``).

The host path does the same with NumPy, and those lines are the oracles the tests compare with: ``Z[idx]``
(:func:`gather_rows`) and ``trainer._apply_difficulty`` (:func:`difficulty_filter`). (The scatter of InfoNCE's
anchor and positive gradients into the table gradient reuses ``losses``' grouped ``_scatter_gather``.)
Every output element is written by one thread (no atomics), so results do not depend on the launch shape;
the launches use ``kernels/cuda/losses.py``'s :func:`launch1` / :func:`launch2` (and its block sizes).
"""
import math

import numpy as np
from numba import cuda, float64

from .grid import grid2
from .losses import EPS, launch1, launch2


@cuda.jit
def _gather_rows(table, idx, out):
    t, r = grid2()
    if r < out.shape[0] and t < out.shape[1]:
        out[r, t] = table[idx[r], t]


def gather_rows(table, idx):
    """``table[idx]`` for a 2-d device table and 1-d device ids (a new device array)."""
    out = cuda.device_array((idx.shape[0], table.shape[1]), dtype=table.dtype)
    launch2(_gather_rows, idx.shape[0], table.shape[1], table, idx, out)
    return out


@cuda.jit
def _difficulty(table, anchors, ids, threshold, diff, out):
    i = cuda.grid(1)
    if i >= ids.shape[0]:
        return
    D = table.shape[1]
    a = anchors[i]
    na2 = 0.0
    for t in range(D):
        v = float64(table[a, t])
        na2 += v * v
    na = math.sqrt(na2)
    best = 0
    best_v = math.inf
    for k in range(ids.shape[1]):
        j = ids[i, k]
        d = math.inf
        if j >= 0:
            dot = 0.0
            nn2 = 0.0
            for t in range(D):
                u = float64(table[j, t])
                dot += float64(table[a, t]) * u
                nn2 += u * u
            d = (1.0 + dot / max(na * math.sqrt(nn2), EPS)) / 2.0
        diff[i, k] = d
        if d < best_v:  # the first minimum, like np.argmin
            best_v = d
            best = k
    for k in range(ids.shape[1]):
        j = ids[i, k]
        out[i, k] = j if j >= 0 and (diff[i, k] <= threshold or k == best) else -1


def difficulty_filter(table, anchors, ids, threshold):
    """Device twin of ``trainer._apply_difficulty``: ids [B, K] (-1 padding) with every negative of difficulty
    ``(1 + cos(anchor, negative)) / 2`` above ``threshold`` replaced by -1, except each row's easiest one.
    All device arrays; returns a new int64 device array [B, K]."""
    B, K = ids.shape
    out = cuda.device_array((B, K), dtype=np.int64)
    diff = cuda.device_array((B, K), dtype=np.float64)
    launch1(_difficulty, B, table, anchors, ids, float64(threshold), diff, out)
    return out

