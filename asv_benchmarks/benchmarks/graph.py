"""spmm (A·X over CSR) against scipy's ``A @ X`` on a random undirected graph."""
import numpy as np

from ._common import size


def _graph_and_x(n, e, d, seed=0):
    from fastgnn import Graph

    rng = np.random.default_rng(seed)
    g = Graph.from_edges(rng.integers(0, n, e), rng.integers(0, n, e), num_nodes=n)
    X = rng.standard_normal((n, d)).astype(np.float32)
    return g, X


class SpmmFastgnn:
    """fastgnn.graph.spmm; throughput in arcs (stored entries) times D per second."""

    params = ([None, "sym"],)
    param_names = ["norm"]
    timeout = 300

    def setup(self, norm):
        from fastgnn.graph import spmm

        self.n, self.e, self.d = size(200_000, 500), size(2_000_000, 2_000), size(64, 8)
        self.g, self.X = _graph_and_x(self.n, self.e, self.d)
        self.out = np.empty_like(self.X)
        self.spmm = spmm
        self.spmm(self.g, self.X, norm=norm, out=self.out)  # compile / load the JIT cache outside the timing

    def time_spmm(self, norm):
        self.spmm(self.g, self.X, norm=norm, out=self.out)

    def peakmem_spmm(self, norm):
        self.spmm(self.g, self.X, norm=norm, out=self.out)


class SpmmScipy:
    """Peer: scipy.sparse CSR ``A @ X`` (with the normalisation folded into A beforehand)."""

    params = ([None, "sym"],)
    param_names = ["norm"]
    timeout = 300

    def setup(self, norm):
        import scipy.sparse as sp

        n, e, d = size(200_000, 500), size(2_000_000, 2_000), size(64, 8)
        g, self.X = _graph_and_x(n, e, d)
        A = g.to_scipy()
        if norm == "sym":
            r, _ = g.norm_scales("sym")
            D = sp.diags(r)
            A = (D @ A @ D).tocsr().astype(np.float32)
        self.A = A
        self.A @ self.X

    def time_spmm(self, norm):
        self.A @ self.X

    def peakmem_spmm(self, norm):
        self.A @ self.X


class GraphBuild:
    """Building the CSR graph from 2M random edge pairs (sort-and-merge in NumPy)."""

    timeout = 300

    def setup(self):
        rng = np.random.default_rng(0)
        n, e = size(200_000, 500), size(2_000_000, 2_000)
        self.n = n
        self.src, self.dst = rng.integers(0, n, e), rng.integers(0, n, e)

    def time_from_edges(self):
        from fastgnn import Graph

        Graph.from_edges(self.src, self.dst, num_nodes=self.n)


def timeraw_import_fastgnn():
    """Cold ``import fastgnn`` in a fresh interpreter (nothing may compile at import)."""
    return "import fastgnn"
