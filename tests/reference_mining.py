"""Plain NumPy references for mining: BFS rings and the four miner strategies (no numba, no scipy)."""
import math
from collections import deque

import numpy as np

from tests.reference_walks import hash3


def k_hop_ref(indptr, indices, sources, k, min_hops):
    """``(offsets, nodes)``: BFS rings in the kernels' order (by distance, then discovery order)."""
    offsets = [0]
    nodes = []
    n = len(indptr) - 1
    for s in sources:
        s = int(s)
        dist = {s: 0}
        order = [s]
        frontier = deque([s])
        while frontier:
            v = frontier.popleft()
            if dist[v] >= k:
                continue
            for x in indices[int(indptr[v]):int(indptr[v + 1])]:
                x = int(x)
                if x not in dist:
                    dist[x] = dist[v] + 1
                    order.append(x)
                    frontier.append(x)
        nodes.extend(x for x in order if min_hops <= dist[x] <= k)
        offsets.append(len(nodes))
    return np.array(offsets, np.int64), np.array(nodes, np.int64)


def k_hop_dist(indptr, indices, source):
    """Dict node -> BFS distance from ``source`` (unbounded)."""
    dist = {int(source): 0}
    frontier = deque([int(source)])
    while frontier:
        v = frontier.popleft()
        for x in indices[int(indptr[v]):int(indptr[v + 1])]:
            x = int(x)
            if x not in dist:
                dist[x] = dist[v] + 1
                frontier.append(x)
    return dist


def cosine(A, B):
    A = np.asarray(A, np.float64)
    B = np.asarray(B, np.float64)
    na = np.linalg.norm(A, axis=1)
    nb = np.linalg.norm(B, axis=1)
    ia = np.where(na > 0, 1.0 / np.where(na > 0, na, 1.0), 0.0)
    ib = np.where(nb > 0, 1.0 / np.where(nb > 0, nb, 1.0), 0.0)
    return (A * ia[:, None]) @ (B * ib[:, None]).T


def _gumbel(seed, b, j):
    u = ((hash3(seed, b, j) >> 11) + 0.5) * (1.0 / 9007199254740992.0)
    return -math.log(-math.log(u))


def _random_key(seed, b, j):
    return (hash3(seed, b, j) >> 11) * (1.0 / 9007199254740992.0)


def _top(cands, key, k):
    """The k best of ``cands`` by key descending, ties by lower id."""
    return sorted(cands, key=lambda j: (-key(j), j))[:k]


def select_ref(sims_row, cands, strategy, K, alpha, hard_ratio, seed, b, pos_sim=None):
    """Selection for one anchor given its similarities to the pool and its valid candidate ids."""
    sim = lambda j: sims_row[j]  # noqa: E731
    if strategy == "hardest":
        sel = _top(cands, sim, K)
    elif strategy == "semihard":
        semi = [j for j in cands if sims_row[j] < pos_sim]
        rest = [j for j in cands if not sims_row[j] < pos_sim]
        sel = _top(semi, sim, K)
        sel += _top(rest, sim, K - len(sel))
    elif strategy == "weighted":
        sel = _top(cands, lambda j: alpha * sims_row[j] + _gumbel(seed, b, j), K)
    elif strategy == "mixed":
        h = min(K, math.ceil(hard_ratio * K))
        hard = _top(cands, sim, h)
        others = [j for j in cands if j not in set(hard)]
        sel = hard + _top(others, lambda j: _random_key(seed, b, j), K - len(hard))
    else:
        raise ValueError(strategy)
    return sel + [-1] * (K - len(sel))


def hard_negatives_ref(anchors, positives, pool, strategy, K, alpha=1.0, hard_ratio=0.5, seed=0,
                       anchor_labels=None, pool_labels=None, exclude=None):
    """[B, K] pool ids selected per anchor (float64 cosine; -1 padding)."""
    S = cosine(anchors, pool)
    B, P = S.shape
    pos = None
    if positives is not None:
        pos = np.array([cosine(anchors[b:b + 1], positives[b:b + 1])[0, 0] for b in range(B)])
    out = np.full((B, K), -1, np.int64)
    for b in range(B):
        bad = set()
        if exclude is not None:
            ex = np.asarray(exclude)
            bad = set(int(x) for x in (ex[b] if ex.ndim == 2 else ex) if x >= 0)
        cands = [j for j in range(P) if j not in bad
                 and (anchor_labels is None or pool_labels[j] != anchor_labels[b])]
        out[b] = select_ref(S[b], cands, strategy, K, alpha, hard_ratio, seed, b,
                            None if pos is None else pos[b])
    return out


def graph_hard_negatives_ref(E, indptr, indices, anchors, hops, min_hops, strategy, K, alpha=1.0,
                             hard_ratio=0.5, seed=0):
    """[B, K] node ids: the selection among each anchor's k-hop ring."""
    offsets, nodes = k_hop_ref(indptr, indices, anchors, hops, min_hops)
    out = np.full((len(anchors), K), -1, np.int64)
    for b, a in enumerate(anchors):
        ring = [int(x) for x in nodes[offsets[b]:offsets[b + 1]]]
        sims = np.zeros(E.shape[0])
        if ring:
            sims[ring] = cosine(np.asarray(E)[[int(a)]], np.asarray(E)[ring])[0]
        out[b] = select_ref(sims, ring, strategy, K, alpha, hard_ratio, seed, b)
    return out
