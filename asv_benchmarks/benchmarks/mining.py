"""Mining benchmarks: k_hop against scipy / networkx, HardNegativeMiner against a torch recipe.

Graph for k_hop: 200,000 nodes, 2,000,000 undirected random edges, 10,000 random sources.
Miner: 4,096 anchors against a 1,000,000 x 128 float32 pool, K = 64, cosine, "hardest".
"""
import numpy as np

from ._common import require, size


def _graph():
    from fastgnn import Graph

    rng = np.random.default_rng(0)
    n, m = size(200_000, 300), size(2_000_000, 1_200)
    g = Graph.from_edges(rng.integers(0, n, m), rng.integers(0, n, m), num_nodes=n)
    sources = rng.choice(n, size(10_000, 20), replace=False)
    return g, sources


class KHopFastgnn:
    """fastgnn.k_hop(graph, sources, k, min_hops=1): the nodes within k hops (source excluded)."""

    params = ([2, 3],)
    param_names = ["k"]
    timeout = 300

    def setup(self, k):
        from fastgnn.mining import k_hop

        self.g, self.sources = _graph()
        self.k_hop = k_hop
        self.k_hop(self.g, self.sources[:100], k, 1)  # JIT / cache load outside the timing

    def time_k_hop(self, k):
        self.k_hop(self.g, self.sources, k, 1)

    def peakmem_k_hop(self, k):
        self.k_hop(self.g, self.sources, k, 1)


class KHopScipy:
    """Peer: sparse products S·A, S·A·A, ... (S = one-hot rows of the sources); nonzeros = reachable nodes."""

    params = ([2, 3],)
    param_names = ["k"]
    timeout = 600

    def setup(self, k):
        sp = require("scipy.sparse")
        g, sources = _graph()
        self.A = g.to_scipy()
        self.S = sp.csr_matrix((np.ones(sources.size, np.float32), (np.arange(sources.size), sources)),
                               shape=(sources.size, g.num_nodes))

    def time_k_hop(self, k):
        R = self.S
        for _ in range(k):
            R = R @ self.A
        R.indptr, R.indices  # noqa: B018 - the CSR structure is the answer


class KHopNetworkx:
    """Peer: networkx single_source_shortest_path_length(cutoff=k) from every source (k = 2 only)."""

    params = ([2],)
    param_names = ["k"]
    timeout = 600

    def setup(self, k):
        nx = require("networkx")
        g, self.sources = _graph()
        self.G = nx.Graph()
        self.G.add_nodes_from(range(g.num_nodes))
        src, dst, _ = g.edges()
        self.G.add_edges_from(zip(src.tolist(), dst.tolist()))
        self.sp = nx.single_source_shortest_path_length

    def time_k_hop(self, k):
        for s in self.sources.tolist():
            self.sp(self.G, s, cutoff=k)


def _miner_data():
    rng = np.random.default_rng(0)
    B, P, D = size(4096, 64), size(1_000_000, 2_000), size(128, 16)
    anchors = rng.standard_normal((B, D), dtype=np.float32)
    pool = rng.standard_normal((P, D), dtype=np.float32)
    return anchors, pool, size(64, 8)


class MinerFastgnn:
    """HardNegativeMiner("hardest").mine(anchors, None, pool); rate = B * P similarities per second."""

    timeout = 600

    def setup(self):
        from fastgnn.mining import HardNegativeMiner

        self.anchors, self.pool, K = _miner_data()
        self.miner = HardNegativeMiner("hardest", num_negatives=K, seed=0)
        self.miner.mine(self.anchors[:8], None, self.pool[:1000])  # JIT / cache load outside the timing

    def time_mine(self):
        self.miner.mine(self.anchors, None, self.pool)

    def peakmem_mine(self):
        self.miner.mine(self.anchors, None, self.pool)


class MinerTorch:
    """Peer: normalise, then per pool block ``torch.mm`` + ``torch.topk`` merged with the running top-K."""

    timeout = 600

    def setup(self):
        self.torch = require("torch")
        anchors, pool, self.K = _miner_data()
        self.anchors = self.torch.from_numpy(anchors)
        self.pool = self.torch.from_numpy(pool)
        self.block = size(65536, 500)
        self.mine()

    def mine(self):
        torch = self.torch
        with torch.no_grad():
            a = torch.nn.functional.normalize(self.anchors, dim=1)
            best_v = best_i = None
            for start in range(0, self.pool.shape[0], self.block):
                blk = torch.nn.functional.normalize(self.pool[start:start + self.block], dim=1)
                v, i = torch.topk(a @ blk.T, self.K, dim=1)
                i += start
                if best_v is not None:
                    v, j = torch.topk(torch.cat([best_v, v], 1), self.K, dim=1)
                    i = torch.gather(torch.cat([best_i, i], 1), 1, j)
                best_v, best_i = v, i
            return best_i

    def time_mine(self):
        self.mine()

    def peakmem_mine(self):
        self.mine()
