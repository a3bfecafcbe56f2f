"""Plain-Python / NumPy references for random walks (no numba, no scipy).

``random_walks_ref`` replays the kernels' algorithm draw for draw with a pure-Python copy of the
counter-based generator, so its walks must equal the kernels' exactly; ``transition_probs`` and
``node2vec_probs`` give the distributions the walks must follow (checked by chi-square tests).
"""

import numpy as np

from tests.reference_rng import hash3, mix64, randbelow, uniform  # noqa: F401 (re-exported)


def _rows(indptr, indices, weights):
    """Per node: sorted neighbour list and its weights (float64; ones when unweighted)."""
    n = len(indptr) - 1
    rows = []
    for v in range(n):
        lo, hi = int(indptr[v]), int(indptr[v + 1])
        nb = [int(x) for x in indices[lo:hi]]
        w = [1.0] * len(nb) if weights is None else [float(x) for x in weights[lo:hi]]
        order = sorted(range(len(nb)), key=lambda i: nb[i])
        rows.append(([nb[i] for i in order], [w[i] for i in order]))
    return rows


def _first_order(row, weighted, seed, w, counter):
    nb, wt = row
    if not nb:
        return -1
    if not weighted:
        return nb[randbelow(seed, w, counter, len(nb))]
    cum = []
    acc = 0.0
    for x in wt:
        acc += float(np.float32(x))
        cum.append(acc)
    total = cum[-1]
    if not total > 0.0:
        return -1
    target = uniform(seed, w, counter) * total
    for i, c in enumerate(cum):
        if c > target:
            return nb[i]
    return nb[-1]


def random_walks_ref(indptr, indices, weights, walk_length, walks_per_node, p, q, seed, starts=None):
    """The walks the kernels must produce (walk-major rows, -1 after a dead end)."""
    n = len(indptr) - 1
    starts = list(range(n)) if starts is None else [int(s) for s in starts]
    rows = _rows(indptr, indices, weights)
    weighted = weights is not None
    second = not (p == 1.0 and q == 1.0)
    inv_p, inv_q = 1.0 / p, 1.0 / q
    bound = max(1.0, inv_q)
    out = np.full((walks_per_node * len(starts), walk_length), -1, np.int64)
    for w in range(out.shape[0]):
        cur = starts[w % len(starts)]
        out[w, 0] = cur
        prev = -1
        counter = 0
        for step in range(1, walk_length):
            nxt = -1
            if not second or prev < 0:
                nxt = _first_order(rows[cur], weighted, seed, w, counter)
                counter += 1
            else:
                nb, wt = rows[cur]
                cum = []
                acc = 0.0
                for x in wt:
                    acc += float(np.float32(x))
                    cum.append(acc)
                total = (cum[-1] if weighted else float(len(nb))) if nb else 0.0
                if nb and total > 0.0:
                    w_back = 0.0
                    for i, x in enumerate(nb):
                        if x == prev:
                            w_back += (cum[i] - (cum[i - 1] if i > 0 else 0.0)) if weighted else 1.0
                    mass_back = w_back * inv_p
                    mass = mass_back + (total - w_back) * bound
                    prev_nb = set(rows[prev][0])
                    while True:
                        u = uniform(seed, w, counter)
                        counter += 1
                        if u * mass < mass_back:
                            nxt = prev
                            break
                        x = prev
                        while x == prev:
                            x = _first_order(rows[cur], weighted, seed, w, counter)
                            counter += 1
                        alpha = 1.0 if x in prev_nb else inv_q
                        if alpha >= bound:
                            nxt = x
                            break
                        u2 = uniform(seed, w, counter)
                        counter += 1
                        if u2 * bound < alpha:
                            nxt = x
                            break
            if nxt < 0:
                break
            out[w, step] = nxt
            prev, cur = cur, nxt
    return out


def dense_weights(indptr, indices, weights, n):
    """Dense [n, n] arc-weight matrix (duplicates summed)."""
    A = np.zeros((n, n))
    for v in range(n):
        for i in range(int(indptr[v]), int(indptr[v + 1])):
            A[v, int(indices[i])] += 1.0 if weights is None else float(weights[i])
    return A


def transition_probs(A, v):
    """First-order step from v: P(x) = A[v, x] / sum_y A[v, y]."""
    return A[v] / A[v].sum()


def node2vec_probs(A, t, v, p, q):
    """Second-order step from v having come from t: P(x) ∝ A[v, x] * alpha(t, x)."""
    n = A.shape[0]
    alpha = np.where(A[t] > 0, 1.0, 1.0 / q)
    alpha[t] = 1.0 / p
    w = A[v] * alpha
    return w / w.sum()
