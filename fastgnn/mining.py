"""Hard-negative mining: similarity miners over an embedding pool, k-hop rings, a graph miner.

Miners return **index arrays** into the pool (pytorch-metric-learning's contract): row ``b`` of the
result lists pool row ids chosen as negatives for anchor ``b``, ``-1`` where fewer valid candidates
exist (never duplicates). Similarities are cosine: ``sim(a, x) = <a, x> / (||a|| ||x||)`` (0 for a
zero vector).
"""
from __future__ import annotations

import contextlib
import math

import numpy as np

from . import _check
from . import backend as _backend
from .graph import Graph

__all__ = ["HardNegativeMiner", "GraphHardNegativeMiner", "k_hop"]

# strategy name -> kernel mode (kernels/cpu/mining.py: HARDEST, SEMIHARD, WEIGHTED, MIXED)
STRATEGIES = {"hardest": 0, "semihard": 1, "weighted": 2, "mixed": 3}

_MASK64 = (1 << 64) - 1


def _call_seed(seed: int, call: int) -> int:
    """Seed of a miner's ``call``-th ``mine`` (SplitMix64 of both), so successive calls draw afresh."""
    z = (seed + 0x9E3779B97F4A7C15 * (call + 1)) & _MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    return (z ^ (z >> 31)) & ((1 << 63) - 1)


def _check_graph(graph):
    if not isinstance(graph, Graph):
        raise TypeError(f"graph: expected a fastgnn.Graph, got {type(graph).__name__}")
    return graph


@contextlib.contextmanager
def _dynamic_chunks():
    """prange iterations handed out one at a time (shared machines preempt threads), restored on exit."""
    import numba

    old = numba.set_parallel_chunksize(1)
    try:
        yield
    finally:
        numba.set_parallel_chunksize(old)


def _num_chunks(ns: int) -> int:
    """Work items of the k-hop kernels: enough that a dynamic schedule evens out a preempted thread."""
    import numba

    return max(1, min(ns // 16, 16 * numba.get_num_threads()))


# ------------------------------------------------------------------------------------------------ k-hop
def k_hop(graph, sources, k, min_hops=2, *, backend=None):
    """Nodes at shortest-path distance ``min_hops .. k`` from each source, as CSR ``(offsets, nodes)``.

    ``ring(s) = {v : min_hops <= dist(s, v) <= k}`` with distances in hops along stored arcs; by default
    neither the source (distance 0) nor its direct neighbours (distance 1) are included. A parallel
    multi-source BFS: each work item keeps one visited bitmap and clears only the bits it set, so no
    O(N) reset is paid per source.

    Parameters
    ----------
    graph : Graph
    sources : int array [S]
        Node ids (repeats allowed); may be a CUDA device array (see Notes).
    k : int >= 1
        Largest distance kept.
    min_hops : int, 0 <= min_hops <= k
        Smallest distance kept.
    backend : "cpu" | "cuda" | "auto", optional

    Returns
    -------
    offsets : int64 array [S + 1]
    nodes : int array [offsets[-1]] (the graph's index dtype)
        ``nodes[offsets[i]:offsets[i + 1]]`` is the ring of ``sources[i]``, ordered by distance, then
        by BFS discovery order (neighbour-list order).

    Raises
    ------
    TypeError
        ``graph`` not a Graph; non-integer ``sources``, ``k`` or ``min_hops``; a device ``sources`` that is
        not int32/int64 or not C-contiguous.
    ValueError
        ``k < 1``, ``min_hops < 0``, ``min_hops > k``, ``sources`` out of range or not 1-d, a device
        ``sources`` with ``backend="cpu"``.

    Notes
    -----
    ``sources`` may be a numba device array or any object exposing ``__cuda_array_interface__`` (CuPy,
    PyTorch CUDA tensors), int32/int64 and C-contiguous. It is used without a copy and its range is checked
    by a device scan; the search runs on CUDA and ``(offsets, nodes)`` come back as device arrays. The
    graph's CSR is copied to the device once and cached on the (immutable) graph. One int64 (the total ring
    size, which sizes ``nodes``) is read back besides the range check's status. With host ``sources`` and
    ``backend="cuda"`` the same device search runs and the result is copied back to the host.

    Examples
    --------
    >>> g = Graph.from_edges([0, 1, 2], [1, 2, 3])
    >>> offsets, nodes = k_hop(g, [0], k=2)
    >>> nodes.tolist()
    [2]
    """
    graph = _check_graph(graph)
    k = _check.integer(k, "k", minimum=1)
    min_hops = _check.integer(min_hops, "min_hops", minimum=0)
    if min_hops > k:
        raise ValueError(f"min_hops: must be <= k = {k}, got {min_hops}")
    n = graph.num_nodes
    if _check.device_call(backend, sources=sources):
        inp = _check.DeviceInputs()
        sources = inp.ids(sources, "sources", upper=n, ndim=1, what=f"a graph with {n} nodes")
        inp.checks.run()
        return _device().k_hop(graph, sources, k, min_hops)
    sources = _check.index_array(sources, "sources", upper=n, what=f"a graph with {n} nodes",
                                 dtype=graph.indices.dtype)
    k = min(k, max(n, 1))  # no shortest path is longer than n - 1 hops
    name = _backend.resolve(backend)
    ns = sources.size
    offsets = np.zeros(ns + 1, np.int64)
    if ns == 0:
        return offsets, np.zeros(0, graph.indices.dtype)
    if name == "cuda":
        offsets, nodes = _device().k_hop(graph, _device().arrays().upload(sources), k, min_hops)
        return offsets.copy_to_host(), nodes.copy_to_host()
    kern = _backend.kernels("mining", "cpu")
    # int32 row pointers when they fit: half the cache footprint of the rows' random lookups
    indptr = graph.indptr.astype(np.int32) if graph.indptr[-1] <= np.iinfo(np.int32).max else graph.indptr
    # the kernels read unsigned views (ids are >= 0): no negative-index wrap-around on every access
    indptr, indices, sources = _unsigned(indptr), _unsigned(graph.indices), _unsigned(sources)
    nchunks = _num_chunks(ns)
    counts = np.empty(ns, np.int64)
    # One BFS per source: rings go to per-chunk scratch regions sized from a sample of the sources
    # (the few sources that do not fit are searched again by k_hop_rest). Pages of the scratch that
    # are never written cost no memory, so the regions are sized generously.
    sample = sources[np.linspace(0, ns - 1, min(ns, 32)).astype(np.int64)]
    sample_counts = np.empty(sample.size, np.int64)
    kern.k_hop_first(indptr, indices, sample, k, min_hops, 1, sample_counts, np.empty(0, indices.dtype),
                     np.zeros(1, np.int64))
    per_chunk = int(1.5 * sample_counts.mean() * math.ceil(ns / nchunks)) + 1024
    scratch = np.empty(per_chunk * nchunks, indices.dtype)
    written = np.zeros(nchunks, np.int64)
    with _dynamic_chunks():
        kern.k_hop_first(indptr, indices, sources, k, min_hops, nchunks, counts, scratch, written)
        np.cumsum(counts, out=offsets[1:])
        nodes = np.empty(int(offsets[-1]), indices.dtype)
        kern.k_hop_rest(indptr, indices, sources, k, min_hops, nchunks, scratch, written, offsets, nodes)
    return offsets, nodes.view(graph.indices.dtype)


def _device():
    """The device paths (:mod:`fastgnn._mining_device`), loaded on first use."""
    from . import _mining_device

    return _mining_device


def _unsigned(a):
    """The same memory as the unsigned integer type of the same width."""
    return a.view(np.dtype(a.dtype.str.replace("i", "u")))


# ------------------------------------------------------------------------------------------------ helpers
def _labels(x, name, length):
    arr = np.asarray(x)
    if arr.dtype.kind not in "iu":
        raise TypeError(f"{name}: expected integer labels, got dtype {arr.dtype}")
    if arr.ndim != 1 or arr.size != length:
        raise ValueError(f"{name}: expected {length} labels (shape [{length}]), got shape {arr.shape}")
    return np.ascontiguousarray(arr, dtype=np.int64)


def _embedding_rows(E, n):
    if E.shape[0] != n:
        raise ValueError(f"embeddings: expected {n} rows (graph.num_nodes), got {E.shape[0]}")
    return E


def _pool_and_anchors(floats, pool, anchors, K):
    """``(pool, anchors)`` validated by ``floats``: ``_check.float_array`` on the host, ``DeviceInputs.floats`` in
    a device call (the same keywords); anchors take the pool's dtype."""
    pool = floats(pool, "pool", ndim=2, check_finite=False)
    P, D = pool.shape
    if P == 0:
        raise ValueError("pool: must not be empty")
    if K > P:
        raise ValueError(f"num_negatives: {K} is larger than the pool ({P} rows)")
    return pool, floats(anchors, "anchors", ndim=2, shape=(None, D), dtype=pool.dtype)


def _uses_positives(positives, mode):
    """Whether positives are read (given, or needed by "semihard": then missing ones raise)."""
    if positives is None and mode == STRATEGIES["semihard"]:
        raise ValueError("positives: the 'semihard' strategy needs each anchor's positive [B, D]")
    return positives is not None


def _uses_labels(anchor_labels, pool_labels):
    if (anchor_labels is None) != (pool_labels is None):
        missing = "pool_labels" if pool_labels is None else "anchor_labels"
        raise ValueError(f"{missing}: anchor_labels and pool_labels must be given together")
    return anchor_labels is not None


def _inv_norms(X, name, kern):
    """1/||row|| in float64 (0 for zero rows); also the finiteness check of ``X`` (no [N, D] temporary)."""
    inv = np.empty(X.shape[0], np.float64)
    kern.row_inv_norms(X, inv)
    if not np.isfinite(inv).all():
        _check.finite(X, name)  # raises, naming the first bad entry
        # finite, but the squares overflowed (|x| > 1e154 in float64): rescale those rows
        bad = ~np.isfinite(inv)
        inv[bad] = 1.0 / np.linalg.norm(X[bad], axis=1)
    return inv


def _heaps(nb, cap1, cap2):
    """Two bounded heaps per anchor; the kernels read each capacity from the width, which may be 0
    (``"mixed"`` with ``hard_ratio=0`` has no hardest part)."""
    return (np.empty((nb, cap1), np.float64), np.empty((nb, cap1), np.int64), np.zeros(nb, np.int64),
            np.empty((nb, cap2), np.float64), np.empty((nb, cap2), np.int64), np.zeros(nb, np.int64))


# Fused similarity + selection (kernels/cpu/mining.py: topk_tiles): anchors per work item, pool rows per
# BLAS product (a [group, tile] float32 block is 1 MiB, read back from cache by the scan),
# and pool bytes per parallel call (the span is re-read by every work item, so it should sit in L3).
_GROUP = 256
_TILE = 1024
_SPAN_BYTES = 8 << 20


def _single_threaded_blas():
    """A context manager keeping BLAS single-threaded (threadpoolctl), or None when that is not available.

    The fused kernel calls BLAS from every worker thread; a multi-threaded BLAS would then oversubscribe
    the cores (about 4x slower on 2 cores).
    """
    try:
        from threadpoolctl import threadpool_limits
        import scipy.linalg.cython_blas  # noqa: F401 - the BLAS behind np.dot in kernels: load it so it is limited
    except ImportError:
        return None
    return threadpool_limits(limits=1, user_api="blas")


def _strategy_caps(mode, K, hard_ratio):
    """Heap capacities: (first heap, second heap)."""
    if mode == STRATEGIES["semihard"]:
        return K, K
    if mode == STRATEGIES["mixed"]:
        return min(K, math.ceil(hard_ratio * K)), K
    return K, 0


# ------------------------------------------------------------------------------------------------ similarity miner
class HardNegativeMiner:
    """Mine hard negatives for each anchor from a pool of embeddings (cosine similarity).

    Strategies, for the valid candidates ``C(b)`` of anchor ``b`` (pool rows whose label differs
    from the anchor's, when labels are given, and that are not in ``exclude``):

    - ``"hardest"``: the K most similar, ``argtopK_{x in C} sim(a, x)``;
    - ``"semihard"``: candidates less similar than the positive, ``sim(a, x) < sim(a, p)``, most
      similar first; when fewer than K exist the rest of the row is filled with the most similar of
      the remaining candidates (falling back to hardest);
    - ``"weighted"``: K drawn without replacement with ``P(x) ∝ exp(alpha · sim(a, x))`` (Gumbel-top-k:
      ``argtopK alpha·sim + G``, ``G ~ Gumbel(0, 1)``);
    - ``"mixed"``: the ``ceil(hard_ratio · K)`` hardest, then the rest drawn uniformly without
      replacement from the remaining candidates.

    The pool is processed in blocks of ``block_size`` rows (one BLAS product per block and a parallel
    partial top-K into per-anchor heaps), so memory never grows with the pool: with ``threadpoolctl``
    each worker multiplies 256 anchors by a 1024-row tile into a 1 MiB buffer and scans it at once
    (4,096 x 1,000,000 x 128 float32, K = 64: 16-19 MiB peak beyond the inputs, measured); without it, one
    multi-threaded product per block of ``O(B · block_size)`` similarities.

    Parameters
    ----------
    strategy : "hardest" | "semihard" | "weighted" | "mixed"
    num_negatives : int >= 1
        K, the negatives per anchor (at most the pool size).
    alpha : float
        Inverse temperature of ``"weighted"`` (0: uniform sampling).
    hard_ratio : float in [0, 1]
        Fraction of hardest negatives in ``"mixed"``.
    seed : int, optional
        The ``i``-th call to :meth:`mine` of a miner built with seed ``s`` always gives the same
        result (calls draw afresh, so a training loop sees new samples each step); the result does
        not depend on the thread count. ``None``: a fresh seed.
    block_size : int, optional
        Pool rows per BLAS product (default: 1024-row tiles with ``threadpoolctl``, else about 16M
        similarities, 64 MiB of float32, per block). Another size can round a similarity differently
        in its last bit (BLAS sums other shapes in another order), so two candidates that tie to
        within that rounding may trade places.
    backend : "cpu" | "cuda" | "auto", optional
        Backend for host inputs; device inputs always run on CUDA (see :meth:`mine`).

    Raises
    ------
    ValueError, TypeError
        unknown strategy, ``num_negatives < 1``, ``hard_ratio`` outside [0, 1], non-finite ``alpha``.

    Examples
    --------
    >>> import numpy as np
    >>> pool = np.eye(4, dtype=np.float32)
    >>> miner = HardNegativeMiner("hardest", num_negatives=2, seed=0)
    >>> miner.mine(pool[:1] + 0.5 * pool[1:2], None, pool, exclude=[[0]]).tolist()
    [[1, 2]]
    """

    def __init__(self, strategy="hardest", num_negatives=16, alpha=1.0, hard_ratio=0.5, seed=None, *,
                 block_size=None, backend=None):
        self.strategy = _check.choice(strategy, "strategy", tuple(STRATEGIES))
        self.num_negatives = _check.integer(num_negatives, "num_negatives", minimum=1)
        self.alpha = _check.real(alpha, "alpha")
        self.hard_ratio = _check.real(hard_ratio, "hard_ratio", minimum=0.0, maximum=1.0)
        self.seed = _check.seed_value(seed)
        self.block_size = None if block_size is None else _check.integer(block_size, "block_size", minimum=1)
        if backend is not None:
            _backend._validate_name(backend)
        self.backend = backend
        self.calls = 0

    def __repr__(self):
        return (f"HardNegativeMiner(strategy={self.strategy!r}, num_negatives={self.num_negatives}, "
                f"alpha={self.alpha}, hard_ratio={self.hard_ratio}, seed={self.seed})")

    def _block(self, B, P):
        """Pool rows per similarity block of the blocked paths: ~16M similarities (64 MiB in float32), so
        memory stays bounded by ``B * block``."""
        return min(P, self.block_size or max(256, min(65536, (1 << 24) // max(B, 1))))

    def mine(self, anchors, positives, pool, anchor_labels=None, pool_labels=None, exclude=None):
        """Return ``[B, K]`` pool row ids for each anchor, ``-1`` padded.

        Parameters
        ----------
        anchors : float array [B, D]
        positives : float array [B, D] or None
            Each anchor's positive; needed by ``"semihard"`` only.
        pool : float array [P, D]
            Candidate negatives (float32, or float64 to compute in float64). Finite.
        anchor_labels : int array [B], optional
        pool_labels : int array [P], optional
            Given together; candidates sharing the anchor's label are skipped.
        exclude : int array [E] or [B, E], optional
            Pool ids never returned: for every anchor (1-d), or per anchor (2-d, ``-1`` padding).

        Returns
        -------
        ids : int64 array [B, K]
            Best first (hardest first; sampling order for random picks); ``-1`` pads rows with fewer
            than K valid candidates. A device array when any input is one.

        Raises
        ------
        TypeError
            non-numeric arrays, non-integer labels or ids; for device inputs also: a float array that is not
            float32/float64, ``anchors`` of another dtype than ``pool``, labels or ids that are not
            int32/int64, an array that is not C-contiguous.
        ValueError
            wrong shapes, ``num_negatives`` larger than the pool, label arrays of the wrong length,
            only one of the two label arrays, ``exclude`` ids out of range, non-finite values, a device
            input to a miner built with ``backend="cpu"``.

        Notes
        -----
        Every array argument may be a numba device array or any object exposing
        ``__cuda_array_interface__`` (CuPy, PyTorch CUDA tensors). Then the call runs on CUDA, whatever the
        default backend, and returns a device array: device inputs are used without a copy (so they are
        not converted: floats must be float32/float64, ``anchors`` in the pool's dtype, ids and labels
        int32/int64, all C-contiguous); host arrays given beside them are checked on the host and copied
        over. Shapes and dtypes are checked from the arrays' metadata; finiteness of ``anchors``,
        ``positives`` and ``pool`` and the range of ``exclude`` are checked by device scans whose one small
        int64 status vector is the call's only host round trip. Label values need no check (any integers
        compare). Norms, unit anchors, the positives' similarities and the sorting of a 2-d ``exclude``
        run on the device too; a positive's similarity is summed in another order than on the host, so a
        ``"semihard"`` candidate within one rounding of the positive's similarity may fall on the other
        side of it.
        """
        mode = STRATEGIES[self.strategy]
        K = self.num_negatives
        if _check.device_call(self.backend, anchors=anchors, positives=positives, pool=pool,
                              anchor_labels=anchor_labels, pool_labels=pool_labels, exclude=exclude):
            return _device().mine(self, anchors, positives, pool, anchor_labels, pool_labels, exclude)
        pool, anchors = _pool_and_anchors(_check.float_array, pool, anchors, K)
        (P, D), B, dtype = pool.shape, anchors.shape[0], pool.dtype
        pos_sim = np.empty(0, np.float64)  # read by "semihard" only, which requires positives
        if _uses_positives(positives, mode):
            positives = _check.float_array(positives, "positives", ndim=2, shape=(B, D), dtype=np.float64)
        use_labels = _uses_labels(anchor_labels, pool_labels)
        if use_labels:
            a_lab = _labels(anchor_labels, "anchor_labels", B)
            p_lab = _labels(pool_labels, "pool_labels", P)
        else:
            a_lab = p_lab = np.zeros(1, np.int64)
        use_mask = False
        pool_mask = np.ones(1, np.bool_)
        excl = np.full((B, 0), -1, np.int64)
        if exclude is not None:
            ex = np.asarray(exclude)
            if ex.ndim == 2:
                excl = _check.index_array(ex, "exclude", upper=P, ndim=2, shape=(B, None), allow_pad=True,
                                          dtype=np.int64, what=f"a pool with {P} rows")
                excl = np.sort(excl, axis=1)
            else:
                ids = _check.index_array(ex, "exclude", upper=P, ndim=1, dtype=np.int64,
                                         what=f"a pool with {P} rows")
                pool_mask = np.ones(P, np.bool_)
                pool_mask[ids] = False
                use_mask = True
        seed = _call_seed(self.seed, self.calls)
        self.calls += 1
        out = np.empty((B, K), np.int64)
        if B == 0:
            return out
        kern = _backend.kernels("mining", "cpu")
        inv_pool = _inv_norms(pool, "pool", kern)
        inv_anchor = _inv_norms(anchors, "anchors", kern)
        unit = (anchors * inv_anchor[:, None]).astype(dtype)
        if positives is not None:
            inv_posv = _inv_norms(positives, "positives", kern)
            pos_sim = np.einsum("bd,bd->b", unit.astype(np.float64), positives) * inv_posv
        cap1, cap2 = _strategy_caps(mode, K, self.hard_ratio)
        args = (mode, self.alpha, np.uint64(seed), pos_sim, a_lab, p_lab, use_labels, pool_mask, use_mask, excl)
        if _backend.resolve(self.backend) == "cuda":
            up = _device().arrays().upload
            d_args = args[:3] + tuple(up(x) if isinstance(x, np.ndarray) else x for x in args[3:])
            _device().run_mine(self, up(unit), up(pool), up(inv_pool), d_args).copy_to_host(out)
            return out
        heaps = _heaps(B, cap1, cap2)
        excl_ptr = np.zeros(B, np.int64)
        limit = None if D == 0 else _single_threaded_blas()
        if limit is None:
            # no control over the BLAS threads: a multi-threaded product per block, then the parallel scan
            block = self._block(B, P)
            S = np.empty((B, block), dtype)
            for start in range(0, P, block):
                stop = min(P, start + block)
                buf = S if stop - start == block else np.empty((B, stop - start), dtype)
                np.matmul(unit, pool[start:stop].T, out=buf)
                kern.topk_block(buf, start, inv_pool, *args[:-1], excl, excl_ptr, *heaps)
        else:
            tile = min(P, self.block_size or _TILE)
            group = min(_GROUP, max(16, -(-B // 8)))  # a few work items per span even for small batches
            span = tile * max(1, _SPAN_BYTES // (tile * D * pool.itemsize))
            with _dynamic_chunks(), limit:
                for start in range(0, P, span):
                    kern.topk_tiles(unit, pool, start, min(P, start + span), group, tile, inv_pool, *args[:-1],
                                    excl, excl_ptr, *heaps)
        kern.finalize(mode, *heaps, out)
        return out


# ------------------------------------------------------------------------------------------------ graph miner
class GraphHardNegativeMiner:
    """Hard negatives from the graph: the most similar nodes inside each anchor's k-hop ring.

    Candidates of anchor ``a`` are ``ring(a) = {v : min_hops <= dist(a, v) <= hops}`` (see
    :func:`k_hop`; by default distance exactly 2: neither the anchor nor its neighbours), scored by
    cosine similarity of ``embeddings`` rows. ``"hardest"`` keeps the K most similar; ``"weighted"``
    samples K without replacement with ``P(v) ∝ exp(alpha · sim)``; ``"mixed"`` keeps
    ``ceil(hard_ratio · K)`` hardest and samples the rest uniformly from the remaining ring.

    Parameters
    ----------
    hops : int >= 1
        Largest distance of a candidate.
    num_negatives : int >= 1
    seed : int, optional
        Drives "weighted" and "mixed" (the ``i``-th call of a miner is reproducible, as in
        :class:`HardNegativeMiner`).
    min_hops : int, 0 <= min_hops <= hops
        Smallest distance of a candidate (default 2, but at most ``hops``).
    strategy : "hardest" | "weighted" | "mixed"
    alpha, hard_ratio : float
        As in :class:`HardNegativeMiner`.
    backend : "cpu" | "cuda" | "auto", optional
        Backend of the k-hop search and the scoring for host inputs (host ids out); device inputs always
        run on CUDA (see :meth:`mine`).

    Raises
    ------
    TypeError, ValueError
        ``hops < 1``, ``num_negatives < 1``, ``min_hops < 0``, unknown strategy, ``hard_ratio``
        outside [0, 1], non-finite ``alpha``.

    Examples
    --------
    >>> import numpy as np
    >>> g = Graph.from_edges([0, 1, 1], [1, 2, 3])
    >>> E = np.array([[1, 0], [0, 1], [1, 0.1], [0, 1]], np.float32)
    >>> GraphHardNegativeMiner(hops=2, num_negatives=2, seed=0).mine(E, g, [0]).tolist()
    [[2, 3]]
    """

    def __init__(self, hops=2, num_negatives=16, seed=None, *, min_hops=2, strategy="hardest", alpha=1.0,
                 hard_ratio=0.5, backend=None):
        self.hops = _check.integer(hops, "hops", minimum=1)
        self.min_hops = _check.integer(min_hops, "min_hops", minimum=0)
        self.min_hops = min(self.min_hops, self.hops)
        self.num_negatives = _check.integer(num_negatives, "num_negatives", minimum=1)
        self.seed = _check.seed_value(seed)
        self.strategy = _check.choice(strategy, "strategy", ("hardest", "weighted", "mixed"))
        self.alpha = _check.real(alpha, "alpha")
        self.hard_ratio = _check.real(hard_ratio, "hard_ratio", minimum=0.0, maximum=1.0)
        if backend is not None:
            _backend._validate_name(backend)
        self.backend = backend
        self.calls = 0

    def __repr__(self):
        return (f"GraphHardNegativeMiner(hops={self.hops}, num_negatives={self.num_negatives}, "
                f"min_hops={self.min_hops}, strategy={self.strategy!r}, seed={self.seed})")

    def mine(self, embeddings, graph, anchors):
        """Return ``[B, K]`` node ids for each anchor (best first, ``-1`` padded).

        Parameters
        ----------
        embeddings : float array [num_nodes, D]
            Finite; float32 or float64. May be a device array (see Notes).
        graph : Graph
        anchors : int array [B]
            Node ids. May be a device array (see Notes).

        Returns
        -------
        ids : int64 array [B, K]
            A device array when ``embeddings`` or ``anchors`` is one.

        Raises
        ------
        TypeError
            ``graph`` not a Graph, non-integer anchors; a device ``embeddings`` that is not float32/float64,
            device ``anchors`` that are not int32/int64, a device array that is not C-contiguous.
        ValueError
            ``embeddings`` rows differ from ``graph.num_nodes``, non-finite embeddings, anchors out of range,
            a device input to a miner built with ``backend="cpu"``.

        Notes
        -----
        ``embeddings`` and ``anchors`` may be numba device arrays or any objects exposing
        ``__cuda_array_interface__`` (CuPy, PyTorch CUDA tensors); the call then runs on CUDA and returns
        a device array. Device inputs are used without a copy (a host one beside is checked on the host and
        copied over); shapes and dtypes are checked from metadata, the anchors' range and the embeddings'
        finiteness by device scans (one small int64 status vector read back). The k-hop rings are built on
        the device from the graph's CSR, copied there once and cached on the (immutable) graph; their total
        size (one int64) is the call's second and last host round trip.
        """
        graph = _check_graph(graph)
        if _check.device_call(self.backend, embeddings=embeddings, anchors=anchors):
            return _device().graph_mine(self, embeddings, graph, anchors)
        n = graph.num_nodes
        E = _embedding_rows(_check.float_array(embeddings, "embeddings", ndim=2, check_finite=False), n)
        anchors = _check.index_array(anchors, "anchors", upper=n, what=f"a graph with {n} nodes",
                                     dtype=np.int64)
        kern = _backend.kernels("mining", "cpu")
        inv = _inv_norms(E, "embeddings", kern)
        K = self.num_negatives
        seed = _call_seed(self.seed, self.calls)
        self.calls += 1
        B = anchors.size
        out = np.empty((B, K), np.int64)
        if B == 0:
            return out
        if _backend.resolve(self.backend) == "cuda":
            up = _device().arrays().upload
            _device().run_graph_mine(self, graph, up(E), up(inv), up(anchors), seed).copy_to_host(out)
            return out
        offsets, nodes = k_hop(graph, anchors, self.hops, self.min_hops, backend=self.backend)
        mode = STRATEGIES[self.strategy]
        cap1, cap2 = _strategy_caps(mode, K, self.hard_ratio)
        heaps = _heaps(B, cap1, cap2)
        kern.ring_topk(E, inv, anchors, offsets, nodes, mode, self.alpha, np.uint64(seed), *heaps)
        kern.finalize(mode, *heaps, out)
        return out
