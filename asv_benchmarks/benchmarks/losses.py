"""Loss + gradient throughput of fastgnn.losses, each beside its peer (PyTorch, SciPy, NumPy).

Every ``time_*`` is a full forward + backward (loss and all input gradients). Data come from a fixed seed;
``setup`` runs the operation once so JIT compilation is not timed. Peers are skipped when not installed.
"""
import functools
import warnings

import numpy as np

from ._common import require, size

TAU = 0.07


# ----------------------------------------------------------------------------- data
@functools.lru_cache(maxsize=None)
def _nce_data(B, K, D, N):
    r = np.random.default_rng(0)
    A = r.standard_normal((B, D)).astype(np.float32)
    P = (A + 0.5 * r.standard_normal((B, D))).astype(np.float32)
    T = r.standard_normal((N, D)).astype(np.float32)
    ids = r.integers(0, N, (B, K))
    return A, P, T, ids


def _nce_sizes():
    return size((4096, 64, 128, 100_000), (32, 4, 8, 200))


def _inbatch_sizes():
    return size((4096, 128), (32, 8))


@functools.lru_cache(maxsize=None)
def _graph(N, E):
    from fastgnn import Graph

    r = np.random.default_rng(1)
    return Graph.from_edges(r.integers(0, N, E), r.integers(0, N, E), num_nodes=N)


def _graph_sizes():
    return size((200_000, 2_000_000, 64), (300, 1500, 8))


@functools.lru_cache(maxsize=None)
def _embedding(N, D, scale=1.0):
    return (scale * np.random.default_rng(2).standard_normal((N, D))).astype(np.float32)


# ----------------------------------------------------------------------------- info_nce, index negatives
class InfoNCEIndex:
    """B=4096 anchors, K=64 negative ids into a [100000, 128] table; table gradient row-sparse or into a buffer."""

    params = [["sparse", "buffer"]]
    param_names = ["table_grad"]

    def setup(self, mode):
        from fastgnn.losses import info_nce

        self.f = info_nce
        self.A, self.P, self.T, self.ids = _nce_data(*_nce_sizes())
        self.buf = np.zeros_like(self.T) if mode == "buffer" else None
        self.time_forward_backward(mode)

    def time_forward_backward(self, mode):
        self.f(self.A, self.P, self.ids, table=self.T, temperature=TAU, table_grad=self.buf)

    def peakmem_forward_backward(self, mode):
        self.f(self.A, self.P, self.ids, table=self.T, temperature=TAU, table_grad=self.buf)


class InfoNCEIndexTorch:
    """PyTorch recipe: gather, normalise, bmm, cross-entropy, backward (dense table gradient)."""

    params = [["dense"]]
    param_names = ["table_grad"]

    def setup(self, mode):
        torch = require("torch")
        self.torch = torch
        A, P, T, ids = _nce_data(*_nce_sizes())
        self.a = torch.tensor(A, requires_grad=True)
        self.p = torch.tensor(P, requires_grad=True)
        self.t = torch.tensor(T, requires_grad=True)
        self.ids = torch.tensor(ids)
        self.target = torch.zeros(A.shape[0], dtype=torch.long)
        self.time_forward_backward(mode)

    def time_forward_backward(self, mode):
        F = self.torch.nn.functional
        self.a.grad = self.p.grad = self.t.grad = None
        an = F.normalize(self.a, dim=1)
        pn = F.normalize(self.p, dim=1)
        nn_ = F.normalize(self.t[self.ids], dim=2)
        logits = self.torch.cat([(an * pn).sum(1, keepdim=True), self.torch.bmm(nn_, an.unsqueeze(2)).squeeze(2)], 1)
        F.cross_entropy(logits / TAU, self.target).backward()

    def peakmem_forward_backward(self, mode):
        self.time_forward_backward(mode)


# ----------------------------------------------------------------------------- info_nce, in-batch negatives
class InfoNCEInBatch:
    """B=4096, D=128, cosine, the other positives as negatives (plain and symmetric NT-Xent)."""

    params = [[False, True]]
    param_names = ["symmetric"]

    def setup(self, symmetric):
        from fastgnn.losses import info_nce

        self.f = info_nce
        B, D = _inbatch_sizes()
        self.A, self.P, _, _ = _nce_data(B, 1, D, 1)
        self.time_forward_backward(symmetric)

    def time_forward_backward(self, symmetric):
        self.f(self.A, self.P, temperature=TAU, symmetric=symmetric)

    def peakmem_forward_backward(self, symmetric):
        self.f(self.A, self.P, temperature=TAU, symmetric=symmetric)


class InfoNCEInBatchTorch:
    """PyTorch: normalise, A@Pᵀ/τ, cross-entropy (both directions when symmetric), backward."""

    params = [[False, True]]
    param_names = ["symmetric"]

    def setup(self, symmetric):
        torch = require("torch")
        self.torch = torch
        B, D = _inbatch_sizes()
        A, P, _, _ = _nce_data(B, 1, D, 1)
        self.a = torch.tensor(A, requires_grad=True)
        self.p = torch.tensor(P, requires_grad=True)
        self.target = torch.arange(B)
        self.time_forward_backward(symmetric)

    def time_forward_backward(self, symmetric):
        F = self.torch.nn.functional
        self.a.grad = self.p.grad = None
        S = F.normalize(self.a, dim=1) @ F.normalize(self.p, dim=1).T / TAU
        loss = F.cross_entropy(S, self.target)
        if symmetric:
            loss = 0.5 * (loss + F.cross_entropy(S.T, self.target))
        loss.backward()

    def peakmem_forward_backward(self, symmetric):
        self.time_forward_backward(symmetric)


# ----------------------------------------------------------------------------- spectral
class Spectral:
    """λ tr(ZᵀLZ) and 2λLZ on a random graph with N=200000 nodes, E=2000000 edges, D=64."""

    params = [["none", "sym"]]
    param_names = ["normalization"]

    def setup(self, normalization):
        from fastgnn.losses import spectral

        self.f = spectral
        N, E, D = _graph_sizes()
        self.g = _graph(N, E)
        self.Z = _embedding(N, D)
        self.time_loss_and_grad(normalization)

    def time_loss_and_grad(self, normalization):
        self.f(self.Z, self.g, normalization=normalization)

    def track_edges_per_second(self, normalization):
        import time

        t = time.perf_counter()
        self.f(self.Z, self.g, normalization=normalization)
        return self.g.num_edges / (time.perf_counter() - t)

    track_edges_per_second.unit = "edges/s"


class SpectralScipy:
    """SciPy: LZ = L @ Z (csgraph Laplacian, CSR), loss = sum(Z * LZ), grad = 2 LZ."""

    params = [["none", "sym"]]
    param_names = ["normalization"]

    def setup(self, normalization):
        csgraph = require("scipy.sparse.csgraph")
        N, E, D = _graph_sizes()
        g = _graph(N, E)
        self.L = csgraph.laplacian(g.to_scipy(), normed=normalization == "sym").tocsr().astype(np.float32)
        self.Z = _embedding(N, D)
        self.time_loss_and_grad(normalization)

    def time_loss_and_grad(self, normalization):
        LZ = self.L @ self.Z
        float(np.sum(self.Z * LZ))
        2.0 * LZ


class SpectralTorch:
    """PyTorch: sparse CSR Laplacian @ Z, loss = sum(Z * LZ), grad = 2 LZ."""

    params = [["none", "sym"]]
    param_names = ["normalization"]

    def setup(self, normalization):
        torch = require("torch")
        csgraph = require("scipy.sparse.csgraph")
        self.torch = torch
        N, E, D = _graph_sizes()
        g = _graph(N, E)
        L = csgraph.laplacian(g.to_scipy(), normed=normalization == "sym").tocsr().astype(np.float32)
        with warnings.catch_warnings():  # "sparse CSR support is in beta"
            warnings.simplefilter("ignore")
            self.L = torch.sparse_csr_tensor(torch.tensor(L.indptr, dtype=torch.int64),
                                             torch.tensor(L.indices, dtype=torch.int64), torch.tensor(L.data),
                                             size=L.shape)
        self.Z = torch.tensor(_embedding(N, D))
        self.time_loss_and_grad(normalization)

    def time_loss_and_grad(self, normalization):
        LZ = self.L @ self.Z
        float((self.Z * LZ).sum())
        2.0 * LZ


# ----------------------------------------------------------------------------- local contrastive
class LocalContrastive:
    """Same graph as Spectral: all edges similar (Graph input), or the edges as pairs with 30% dissimilar."""

    params = [["graph", "pairs"]]
    param_names = ["input"]

    def setup(self, kind):
        from fastgnn.losses import local_contrastive

        self.f = local_contrastive
        N, E, D = _graph_sizes()
        g = _graph(N, E)
        self.Z = _embedding(N, D)
        if kind == "graph":
            self.args = (g,)
        else:
            src, dst, _ = g.edges()
            pairs = np.stack([src, dst], 1)
            similar = np.random.default_rng(3).random(len(pairs)) >= 0.3
            self.args = (pairs, similar)
        self.time_loss_and_grad(kind)

    def time_loss_and_grad(self, kind):
        self.f(self.Z, *self.args, margin=1.0)


class LocalContrastiveTorch:
    """PyTorch: index the endpoints, squared distances, hinge for dissimilar pairs, backward (index_add)."""

    params = [["graph", "pairs"]]
    param_names = ["input"]

    def setup(self, kind):
        torch = require("torch")
        self.torch = torch
        N, E, D = _graph_sizes()
        g = _graph(N, E)
        src, dst, _ = g.edges()
        self.u = torch.tensor(np.asarray(src, np.int64))
        self.v = torch.tensor(np.asarray(dst, np.int64))
        sim = np.ones(len(src), bool) if kind == "graph" else np.random.default_rng(3).random(len(src)) >= 0.3
        self.sim = torch.tensor(sim)
        self.z = torch.tensor(_embedding(N, D), requires_grad=True)
        self.time_loss_and_grad(kind)

    def time_loss_and_grad(self, kind):
        torch = self.torch
        self.z.grad = None
        d2 = ((self.z[self.u] - self.z[self.v]) ** 2).sum(1)
        hinge = torch.clamp(1.0 - torch.sqrt(d2 + 1e-12), min=0.0) ** 2
        torch.where(self.sim, d2, hinge).mean().backward()


# ----------------------------------------------------------------------------- reconstruction
def _recon_sizes():
    return size((50_000, 250_000, 64), (200, 800, 8))


class Reconstruction:
    """Edge reconstruction with 5 negatives per arc (∝ degree^0.75), N=50000, E=250000, D=64."""

    def setup(self):
        from fastgnn.losses import reconstruction

        self.f = reconstruction
        N, E, D = _recon_sizes()
        self.g = _graph(N, E)
        self.Z = _embedding(N, D, 0.1)
        self.time_loss_and_grad()

    def time_loss_and_grad(self):
        self.f(self.Z, self.g, num_negatives=5, seed=7)


class ReconstructionTorch:
    """PyTorch: multinomial negatives, gathered dot products, logsigmoid, backward."""

    def setup(self):
        torch = require("torch")
        self.torch = torch
        N, E, D = _recon_sizes()
        g = _graph(N, E)
        src, dst, _ = g.arcs()
        self.src = torch.tensor(np.asarray(src, np.int64))
        self.dst = torch.tensor(np.asarray(dst, np.int64))
        self.probs = torch.tensor(np.asarray(g.degrees(), np.float64) ** 0.75)
        self.z = torch.tensor(_embedding(N, D, 0.1), requires_grad=True)
        self.gen = torch.Generator().manual_seed(7)
        self.time_loss_and_grad()

    def time_loss_and_grad(self):
        torch = self.torch
        F = torch.nn.functional
        self.z.grad = None
        n = self.src.numel()
        neg = torch.multinomial(self.probs, n * 5, replacement=True, generator=self.gen).view(n, 5)
        zi = self.z[self.src]
        pos = (zi * self.z[self.dst]).sum(1)
        negs = torch.einsum("ed,ekd->ek", zi, self.z[neg])
        (-(F.logsigmoid(pos) + F.logsigmoid(-negs).sum(1))).mean().backward()


# ----------------------------------------------------------------------------- combine_gradients
def _combine_data():
    shape = size((100_000, 128), (100, 8))
    r = np.random.default_rng(4)
    return [r.standard_normal(shape).astype(np.float32) for _ in range(3)], [0.5, 1.0, 2.0]


class CombineGradients:
    """Weighted sum of three dense [100000, 128] float32 gradient buffers into a preallocated output."""

    def setup(self):
        from fastgnn.losses import combine_gradients

        self.f = combine_gradients
        self.grads, self.w = _combine_data()
        self.out = np.empty_like(self.grads[0])
        self.time_weighted_sum()

    def time_weighted_sum(self):
        self.f(self.grads, self.w, out=self.out)


class CombineGradientsNumpy:
    """NumPy: in-place multiply-adds into a preallocated output (one pass per buffer)."""

    def setup(self):
        self.grads, self.w = _combine_data()
        self.out = np.empty_like(self.grads[0])
        self.tmp = np.empty_like(self.out)

    def time_weighted_sum(self):
        np.multiply(self.grads[0], self.w[0], out=self.out)
        for g, w in zip(self.grads[1:], self.w[1:]):
            np.multiply(g, w, out=self.tmp)
            self.out += self.tmp


# ----------------------------------------------------------------------------- laplacian_eigenvalues
def _eig_sizes():
    return size((20_000, 100_000), (600, 2400))


class LaplacianEigenvalues:
    """The 8 smallest eigenvalues of L_sym of a random graph (N=20000, E=100000)."""

    def setup(self):
        from fastgnn.losses import laplacian_eigenvalues

        self.f = laplacian_eigenvalues
        self.g = _graph(*_eig_sizes())
        self.f(self.g, 2)

    def time_smallest(self):
        self.f(self.g, 8)


class LaplacianEigenvaluesScipy:
    """SciPy: eigsh(L_sym, k=8, which='SA') on csgraph's normalised Laplacian."""

    def setup(self):
        csgraph = require("scipy.sparse.csgraph")
        self.eigsh = require("scipy.sparse.linalg").eigsh
        g = _graph(*_eig_sizes())
        self.L = csgraph.laplacian(g.to_scipy().astype(np.float64), normed=True).tocsr()

    def time_smallest(self):
        self.eigsh(self.L, k=8, which="SA", v0=np.ones(self.L.shape[0]))
