"""The warp-cooperative CUDA k-hop (``kernels/cuda/mining.py``) and the warp votes it is built on
(``kernels/cuda/warp.py``).

Rings must equal the CPU path's entry for entry (by distance, then discovery order): rows longer than a 32-lane
chunk, frontiers longer than a 32-node group, unsorted rows with repeated ids and self-loops, ids sharing bitmap
words, several warps (sources) of different lengths per block, repeated sources, several batches, int32 and int64
ids. Under NUMBA_ENABLE_CUDASIM=1 every vote is a block barrier (milliseconds), so the graphs stay small.
"""
import numpy as np
import pytest

from fastgnn import Graph
from fastgnn import backend as fb
from fastgnn.mining import k_hop
from tests import reference_mining as ref

if not fb.cuda_available():
    pytest.skip(fb.cuda_status()[1], allow_module_level=True)

from numba import cuda, int64  # noqa: E402

from fastgnn.kernels.cuda import mining as kc  # noqa: E402
from fastgnn.kernels.cuda.warp import (lanes_below, scratch_size, warp_append_claimed, warp_ballot,  # noqa: E402
                                       warp_match_any, warp_prefix_count, warp_scan, warp_scan_share)


# --------------------------------------------------------------------------- warp votes
_BLOCK = 64
_SCRATCH = scratch_size(_BLOCK)
_TABLE = 2 * _BLOCK  # a shared array's shape must be a constant: an expression inside the kernel types as int64


@cuda.jit
def _votes(pred, x, claimed, out):
    scratch = cuda.shared.array(_SCRATCH, int64)
    table = cuda.shared.array(_TABLE, int64)
    g = cuda.grid(1)
    lane = cuda.threadIdx.x % 32
    w = cuda.threadIdx.x // 32
    out[g, 0] = warp_ballot(pred[g] != 0, scratch, lane, w)
    out[g, 1] = warp_match_any(x[g], scratch, lane, w)
    out[g, 2], out[g, 3] = warp_prefix_count(pred[g] != 0, scratch, lane, w)
    out[g, 4], out[g, 5] = warp_scan(x[g], scratch, lane, w)
    lower, total, mine = warp_append_claimed(claimed[g] != 0, x[g], scratch, lane, w)
    out[g, 6] = lower
    out[g, 7] = total
    out[g, 8] = 1 if mine else 0
    out[g, 9] = warp_scan_share(x[g] * 10, x[g], table, 64 * w, scratch, lane, w)
    out[g, 10] = table[64 * w + (31 - lane)]  # another lane's entries: the table is visible to the warp
    out[g, 11] = table[64 * w + 32 + (31 - lane)]
    out[g, 12] = lanes_below(lane)


def test_warp_votes_match_numpy():
    rng = np.random.default_rng(5)
    n = 2 * _BLOCK  # two blocks of two warps
    pred = rng.integers(0, 2, n)
    x = rng.integers(0, 6, n)  # many repeats per warp
    x[40] = 2**40 + 3  # a value beyond 32 bits, twice in warp 1
    x[63] = 2**40 + 3
    claimed = np.zeros(n, np.int64)
    for wi in range(n // 32):  # one winner per value, often not its first lane (as an atomic race may pick)
        xs = x[32 * wi:32 * wi + 32]
        for v in np.unique(xs):
            lanes = np.flatnonzero(xs == v)
            if rng.random() < 0.8:
                claimed[32 * wi + lanes[-1 if rng.random() < 0.5 else 0]] = 1
    out = np.zeros((n, 13), np.int64)
    _votes[n // _BLOCK, _BLOCK](pred, x, claimed, out)
    bits = np.int64(1) << np.arange(32, dtype=np.int64)
    for wi in range(n // 32):
        sl = slice(32 * wi, 32 * wi + 32)
        p, xs, c, o = pred[sl], x[sl], claimed[sl], out[sl]
        assert np.all(o[:, 0] == bits[p != 0].sum())
        assert [int(m) for m in o[:, 1]] == [int(bits[xs == v].sum()) for v in xs]
        np.testing.assert_array_equal(o[:, 2], np.cumsum(p != 0) - (p != 0))
        assert np.all(o[:, 3] == np.count_nonzero(p))
        np.testing.assert_array_equal(o[:, 4], np.cumsum(xs))
        assert np.all(o[:, 5] == xs.sum())
        won = {int(v) for v in xs[c != 0]}
        first = np.array([q == int(np.flatnonzero(xs == xs[q])[0]) for q in range(32)])
        mine = first & np.isin(xs, list(won))
        np.testing.assert_array_equal(o[:, 8], mine.astype(np.int64))
        np.testing.assert_array_equal(o[:, 6], np.cumsum(mine) - mine)
        assert np.all(o[:, 7] == len(won))
        assert np.all(o[:, 9] == xs.sum())
        np.testing.assert_array_equal(o[:, 10], (xs * 10)[::-1])
        np.testing.assert_array_equal(o[:, 11], (np.cumsum(xs) - xs)[::-1])
        np.testing.assert_array_equal(o[:, 12], bits.cumsum() - bits)


# --------------------------------------------------------------------------- k-hop against the CPU path
def _launch(g, sources, k, min_hops, index_dtype=None, **kw):
    indices = g.indices if index_dtype is None else g.indices.astype(index_dtype)
    src = np.asarray(sources, indices.dtype)
    off, nodes = kc.launch_k_hop(cuda.to_device(g.indptr), cuda.to_device(indices), cuda.to_device(src), k,
                                 min_hops, **kw)
    return off.copy_to_host(), nodes.copy_to_host()


def _assert_same(g, sources, k, min_hops, got, index_dtype=None):
    want_off, want_nodes = k_hop(g, sources, k, min_hops, backend="cpu")
    off, nodes = got
    np.testing.assert_array_equal(off, want_off)
    np.testing.assert_array_equal(nodes, want_nodes)  # the same order, not just the same sets
    assert nodes.dtype == (g.indices.dtype if index_dtype is None else index_dtype)


_N_STAR = 130


def _star_and_chain():
    """Hub 40 with 80 leaves (a row of three 32-lane chunks; from a leaf, a frontier of three 32-node groups);
    every third leaf also links to an outer node 90..129 (a level the hub's BFS discovers through those groups,
    rows of one and two entries); leaf 80 starts a chain 80-81-82-83-84; nodes 85..89 are isolated. Ids span
    three bitmap words, and every row is shuffled: a frontier's ids are not in order, nor are its rows
    consecutive in ``indices``."""
    leaves = np.r_[0:40, 41:81]
    outer = leaves[::3]
    src = np.r_[np.full(80, 40), [80, 81, 82, 83], outer]
    dst = np.r_[leaves, [81, 82, 83, 84], 90 + (outer * 7) % 40]
    g = Graph.from_edges(src, dst, num_nodes=_N_STAR)
    indices = g.indices.copy()
    shuffle = np.random.default_rng(7).permutation
    for v in range(_N_STAR):
        indices[g.indptr[v]:g.indptr[v + 1]] = shuffle(indices[g.indptr[v]:g.indptr[v + 1]])
    return Graph(g.indptr, indices)


def test_k_hop_star_and_chain_several_warps_per_block():
    g = _star_and_chain()
    assert np.diff(g.indptr)[40] == 80
    sources = [3, 40, 84, 3, 87]  # a leaf, the hub, the chain's end, a repeat, an isolated node
    per = ((_N_STAR >> 6) + 1) * 8 + _N_STAR * g.indices.dtype.itemsize
    for k, min_hops in [(1, 0), (2, 1), (2, 2), (3, 0), (3, 2)]:
        # 2 warps per block (3 blocks, warps of very different lengths side by side), batches of 3 sources
        got = _launch(g, sources, k, min_hops, threads=64, scratch_bytes=3 * per)
        _assert_same(g, sources, k, min_hops, got)
    ro, rn = ref.k_hop_ref(g.indptr, g.indices, sources, 3, 2)
    np.testing.assert_array_equal(got[0], ro)
    np.testing.assert_array_equal(got[1], rn)


def _messy_graph(rng, n=70, max_deg=45):
    """Directed CSR built by hand: unsorted rows, repeated ids (also inside one 32-lane chunk), self-loops,
    rows of 0..max_deg entries over ``n`` ids (two bitmap words shared by every row)."""
    degs = rng.integers(0, max_deg + 1, n)
    degs[[0, 1]] = [max_deg, 0]
    rows = [rng.integers(0, n, d) for d in degs]
    rows[0][:4] = [5, 9, 5, 0]  # a repeat in the first chunk and a self-loop of the source below
    indptr = np.r_[0, np.cumsum(degs)]
    return Graph(indptr, np.concatenate(rows), directed=True)


@pytest.mark.parametrize("index_dtype", [np.int32, np.int64])
def test_k_hop_unsorted_rows_repeats_and_shared_words(rng, index_dtype):
    g = _messy_graph(rng)
    row = g.indices[g.indptr[0]:g.indptr[1]]
    assert np.any(np.diff(row) < 0) and len(np.unique(row[:32])) < 32
    sources = [0, 1, 0, 33]  # 1 has no arcs
    per = ((70 >> 6) + 1) * 8 + 70 * np.dtype(index_dtype).itemsize
    for k, min_hops in [(1, 0), (2, 1)]:
        # blocks of 4 warps; k = 2: batches of 3 sources, the first searched again, the second copied
        got = _launch(g, sources, k, min_hops, index_dtype=index_dtype, threads=128,
                      scratch_bytes=(3 if k == 2 else 4) * per)
        _assert_same(g, sources, k, min_hops, got, index_dtype)


def test_k_hop_through_the_public_api_matches_cpu():
    g = _star_and_chain()
    sources = np.array([40, 0, 81], np.int64)
    off, nodes = k_hop(g, sources, 2, 1, backend="cuda")  # default block: one warp per block under the simulator
    _assert_same(g, sources, 2, 1, (off, nodes))


def test_k_hop_threads_must_be_whole_warps():
    g = _star_and_chain()
    for threads in (48, 16, 512):
        with pytest.raises(ValueError, match="threads: must be a multiple of 32"):
            _launch(g, [0], 2, 1, threads=threads)
