"""One training epoch of the GCN / GRACE-style setup (two augmented views, projection head, symmetric
in-batch InfoNCE, Adam) in fastgnn and the same model and loss in PyTorch on the CPU.

Data: Cora from ../shared/datasets when present (2,708 nodes, 1,433 sparse features), else a planted
partition graph of the same size with random sparse features.
"""
import os

import numpy as np

from ._common import require, size

_SHARED = os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "datasets", "cora")


def _data():
    import scipy.sparse as sp

    from fastgnn import datasets

    if os.path.isdir(_SHARED) and not size(False, True):
        ds = datasets.load(_SHARED)
        X = ds.features.astype(np.float32)
    else:
        n = size(2708, 200)
        ds = datasets.planted_partition(n, 7, 3.9, 0.8, seed=0)
        X = sp.random(n, size(1433, 50), density=0.0127, random_state=0, format="csr", dtype=np.float32)
        X.data[:] = 1.0
    rs = np.asarray(X.sum(1)).ravel()
    X = (sp.diags((1.0 / np.maximum(rs, 1)).astype(np.float32)) @ X).tocsr().astype(np.float32)
    return ds.graph, X


WIDTHS = ["256-128", "512-512"]  # hidden-output widths: GRACE's Cora set-up, and quality_trainer.py's


def _widths(widths):
    h, d = (int(v) for v in widths.split("-"))
    return size(h, 32), size(d, 16)


class GraceEpochFastgnn:
    """fastgnn Trainer, one epoch (GCN 2 layers, hidden → output widths, τ 0.4)."""

    params = [WIDTHS]
    param_names = ["widths"]
    timeout = 600

    def setup(self, widths):
        from fastgnn.trainer import Trainer

        h, d = _widths(widths)
        self.graph, self.X = _data()
        self.tr = Trainer("gcn", ("infonce",), positives="views", dim=d, hidden=h,
                          lr=5e-4, weight_decay=1e-5, temperature=0.4, seed=0)
        self.tr.fit(self.graph, epochs=1, features=self.X)  # builds the model and compiles kernels
        self.epochs = 1

    def time_epoch(self, widths):
        self.epochs += 1
        self.tr.fit(self.graph, epochs=self.epochs, features=self.X)


class GraceEpochTorch:
    """Peer: the same model, augmentations and loss in PyTorch (CPU), one epoch."""

    params = [WIDTHS]
    param_names = ["widths"]
    timeout = 600

    def setup(self, widths):
        torch = require("torch")
        self.torch = torch
        graph, X = _data()
        torch.manual_seed(0)
        self.n = graph.num_nodes
        src, dst, _ = graph.edges()
        self.src, self.dst = torch.from_numpy(src.astype(np.int64)), torch.from_numpy(dst.astype(np.int64))
        Xc = X.tocoo()
        self.X = torch.sparse_coo_tensor(np.vstack([Xc.row, Xc.col]), Xc.data, Xc.shape).coalesce()
        h, d = _widths(widths)
        fin = X.shape[1]
        self.W1 = torch.nn.Linear(fin, h, bias=False)
        self.b1 = torch.nn.Parameter(torch.zeros(h))
        self.W2 = torch.nn.Linear(h, d, bias=False)
        self.b2 = torch.nn.Parameter(torch.zeros(d))
        self.p1 = torch.nn.Linear(d, d)
        self.p2 = torch.nn.Linear(d, d)
        params = [*self.W1.parameters(), self.b1, *self.W2.parameters(), self.b2, *self.p1.parameters(),
                  *self.p2.parameters()]
        self.opt = torch.optim.Adam(params, lr=5e-4, weight_decay=1e-5)
        self.time_epoch(widths)

    def _adj(self, p):
        torch = self.torch
        keep = torch.rand(self.src.numel()) >= p
        s, t = self.src[keep], self.dst[keep]
        rows = torch.cat([s, t, torch.arange(self.n)])
        cols = torch.cat([t, s, torch.arange(self.n)])
        deg = torch.bincount(rows, minlength=self.n).float()
        r = deg.pow(-0.5)
        vals = r[rows] * r[cols]
        return torch.sparse_coo_tensor(torch.stack([rows, cols]), vals, (self.n, self.n)).coalesce().to_sparse_csr()

    def _encode(self, A, pm):
        torch = self.torch
        keep = (torch.rand(self.X.shape[1]) >= pm).float()
        h = torch.sparse.mm(self.X, self.W1.weight.t() * keep[:, None])
        h = torch.relu(A @ h + self.b1)
        z = A @ self.W2(h) + self.b2
        return self.p2(torch.nn.functional.elu(self.p1(z)))

    def time_epoch(self, widths):
        torch = self.torch
        F = torch.nn.functional
        self.opt.zero_grad()
        h1 = F.normalize(self._encode(self._adj(0.2), 0.3), dim=1)
        h2 = F.normalize(self._encode(self._adj(0.4), 0.4), dim=1)
        logits = h1 @ h2.t() / 0.4
        target = torch.arange(self.n)
        loss = (F.cross_entropy(logits, target) + F.cross_entropy(logits.t(), target)) / 2
        loss.backward()
        self.opt.step()
