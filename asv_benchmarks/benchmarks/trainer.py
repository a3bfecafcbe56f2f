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


def torch_grace(torch, graph, X, hidden, dim, device="cpu"):
    """The peer of ``Trainer("gcn", positives="views")`` in PyTorch: returns ``epoch()``, one step of a 2-layer
    GCN (hidden → dim, ReLU) on two views (feature masks 0.3 / 0.4, edge drops 0.2 / 0.4, drawn each epoch with
    Â rebuilt), the projection head (Linear → ELU → Linear), symmetric in-batch InfoNCE (τ 0.4) and Adam
    (lr 5e-4, coupled weight decay 1e-5). ``X``: a scipy sparse matrix (a sparse first layer) or a dense array."""
    import scipy.sparse as sp

    F = torch.nn.functional
    torch.manual_seed(0)
    n = graph.num_nodes
    src, dst, _ = graph.edges()
    src, dst = (torch.as_tensor(a.astype(np.int64), device=device) for a in (src, dst))
    if sp.issparse(X):
        Xc = X.tocoo()
        x = torch.sparse_coo_tensor(np.vstack([Xc.row, Xc.col]), Xc.data, Xc.shape).coalesce().to(device)
    else:
        x = torch.as_tensor(np.asarray(X, np.float32), device=device)
    W1 = torch.nn.Linear(X.shape[1], hidden, bias=False).to(device)
    b1 = torch.nn.Parameter(torch.zeros(hidden, device=device))
    W2 = torch.nn.Linear(hidden, dim, bias=False).to(device)
    b2 = torch.nn.Parameter(torch.zeros(dim, device=device))
    p1, p2 = torch.nn.Linear(dim, dim).to(device), torch.nn.Linear(dim, dim).to(device)
    params = [*W1.parameters(), b1, *W2.parameters(), b2, *p1.parameters(), *p2.parameters()]
    opt = torch.optim.Adam(params, lr=5e-4, weight_decay=1e-5)
    nodes = torch.arange(n, device=device)

    def adj(p):
        keep = torch.rand(src.numel(), device=device) >= p
        s, t = src[keep], dst[keep]
        rows, cols = torch.cat([s, t, nodes]), torch.cat([t, s, nodes])
        r = torch.bincount(rows, minlength=n).float().pow(-0.5)
        vals = r[rows] * r[cols]
        return torch.sparse_coo_tensor(torch.stack([rows, cols]), vals, (n, n)).coalesce().to_sparse_csr()

    def encode(A, pm):
        keep = (torch.rand(x.shape[1], device=device) >= pm).float()
        w = W1.weight.t() * keep[:, None]
        h = torch.relu(A @ (torch.sparse.mm(x, w) if x.is_sparse else x @ w) + b1)
        z = A @ W2(h) + b2
        return p2(F.elu(p1(z)))

    def epoch():
        opt.zero_grad()
        h1 = F.normalize(encode(adj(0.2), 0.3), dim=1)
        h2 = F.normalize(encode(adj(0.4), 0.4), dim=1)
        logits = h1 @ h2.t() / 0.4
        target = torch.arange(n, device=device)
        loss = (F.cross_entropy(logits, target) + F.cross_entropy(logits.t(), target)) / 2
        loss.backward()
        opt.step()
        return loss

    return epoch


class GraceEpochTorch:
    """Peer: the same model, augmentations and loss in PyTorch (CPU), one epoch (:func:`torch_grace`)."""

    params = [WIDTHS]
    param_names = ["widths"]
    timeout = 600

    def setup(self, widths):
        torch = require("torch")
        graph, X = _data()
        self.epoch = torch_grace(torch, graph, X, *_widths(widths))
        self.epoch()

    def time_epoch(self, widths):
        self.epoch()
