"""Optimizer steps: fastgnn's fused kernels beside torch.optim (fused=True) and torch.optim.SparseAdam.

Throughput = parameters (or touched row elements) updated per second; read the ratio of a fastgnn class
to its Torch* neighbour from one run. ``setup`` runs one step so JIT compilation is not timed.
"""
import numpy as np

from ._common import require, size

KINDS = ["adam", "adamw", "amsgrad", "sgd_nesterov"]
# "raise" (the default) reads every gradient once more to check it is finite before anything changes;
# "propagate" skips that check, as torch does -- the like-for-like comparison with torch.
CHECKS = ["raise", "propagate"]
DENSE_N = size(16_000_000, 4_096)
MANY = size((1000, 16_000), (20, 64))
ROWS = size((1_000_000, 128, 4096 * 65), (1_000, 8, 256))


def _ours(kind, params, nonfinite="raise"):
    from fastgnn.optim import SGD, Adam, AdamW

    if kind == "adam":
        return Adam(params, lr=1e-3, nonfinite=nonfinite)
    if kind == "adamw":
        return AdamW(params, lr=1e-3, nonfinite=nonfinite)
    if kind == "amsgrad":
        return Adam(params, lr=1e-3, amsgrad=True, nonfinite=nonfinite)
    return SGD(params, lr=1e-3, momentum=0.9, nesterov=True, nonfinite=nonfinite)


def _torch(kind, params):
    torch = require("torch")
    opt = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW, "amsgrad": torch.optim.Adam,
           "sgd_nesterov": torch.optim.SGD}[kind]
    kw = {"amsgrad": True} if kind == "amsgrad" else {}
    if kind == "sgd_nesterov":
        kw = {"momentum": 0.9, "nesterov": True}
    try:
        return opt(params, lr=1e-3, fused=True, **kw)
    except (RuntimeError, TypeError, ValueError) as exc:  # no fused CPU kernel in this torch build
        raise NotImplementedError(f"torch {opt.__name__}(fused=True) unavailable on CPU: {exc}") from exc


class OptimDense:
    """One step over a single float32 tensor of ``DENSE_N`` elements."""

    params = [KINDS, CHECKS]
    param_names = ["kind", "nonfinite"]
    timeout = 300

    def setup(self, kind, nonfinite):
        rng = np.random.default_rng(0)
        self.p = rng.standard_normal(DENSE_N, dtype=np.float32)
        self.g = [rng.standard_normal(DENSE_N, dtype=np.float32)]
        self.opt = _ours(kind, [self.p], nonfinite)
        self.opt.step(self.g)

    def time_step(self, kind, nonfinite):
        self.opt.step(self.g)

    def track_gparams_per_s(self, kind, nonfinite):
        import time

        t = time.perf_counter()
        self.opt.step(self.g)
        return DENSE_N / (time.perf_counter() - t) / 1e9

    track_gparams_per_s.unit = "Gparams/s"


class TorchOptimDense:
    """Peer: torch.optim with fused=True on the same tensor (torch never checks; ``nonfinite`` is ignored)."""

    params = [KINDS, CHECKS]
    param_names = ["kind", "nonfinite"]
    timeout = 300

    def setup(self, kind, nonfinite):
        torch = require("torch")
        rng = np.random.default_rng(0)
        self.p = torch.from_numpy(rng.standard_normal(DENSE_N, dtype=np.float32)).requires_grad_()
        self.p.grad = torch.from_numpy(rng.standard_normal(DENSE_N, dtype=np.float32))
        self.opt = _torch(kind, [self.p])
        self.opt.step()

    def time_step(self, kind, nonfinite):
        self.opt.step()


class OptimManyTensors:
    """Adam over many small tensors (1,000 x 16k): one launch per step."""

    params = [CHECKS]
    param_names = ["nonfinite"]
    timeout = 300

    def setup(self, nonfinite):
        count, n = MANY
        rng = np.random.default_rng(0)
        self.ps = [rng.standard_normal(n, dtype=np.float32) for _ in range(count)]
        self.gs = [rng.standard_normal(n, dtype=np.float32) for _ in range(count)]
        self.opt = _ours("adam", self.ps, nonfinite)
        self.opt.step(self.gs)

    def time_step(self, nonfinite):
        self.opt.step(self.gs)


class TorchOptimManyTensors:
    """Peer: torch.optim.Adam(fused=True) over the same tensors."""

    params = [CHECKS]
    param_names = ["nonfinite"]
    timeout = 300

    def setup(self, nonfinite):
        torch = require("torch")
        count, n = MANY
        rng = np.random.default_rng(0)
        self.ps = [torch.from_numpy(rng.standard_normal(n, dtype=np.float32)).requires_grad_() for _ in range(count)]
        for p in self.ps:
            p.grad = torch.from_numpy(rng.standard_normal(n, dtype=np.float32))
        self.opt = _torch("adam", self.ps)
        self.opt.step()

    def time_step(self, nonfinite):
        self.opt.step()


def _row_batch():
    n, d, m = ROWS
    rng = np.random.default_rng(0)
    rows = rng.integers(0, n, size=m)  # random ids: repeats happen
    grads = rng.standard_normal((m, d), dtype=np.float32)
    return rows, grads


class OptimSparseRows:
    """Lazy row-sparse Adam: 4096x65 random rows (with repeats) of a [1,000,000, 128] float32 table."""

    timeout = 300

    def setup(self):
        n, d, _ = ROWS
        self.table = np.random.default_rng(1).standard_normal((n, d), dtype=np.float32)
        self.rows, self.grads = _row_batch()
        self.opt = _ours("adam", [self.table])
        self.opt.step_rows(0, self.rows, self.grads)

    def time_step_rows(self):
        self.opt.step_rows(0, self.rows, self.grads)

    def peakmem_step_rows(self):
        self.opt.step_rows(0, self.rows, self.grads)


class TorchSparseAdamRows:
    """Peer: torch.optim.SparseAdam with a sparse COO gradient of the same rows."""

    timeout = 300

    def setup(self):
        torch = require("torch")
        n, d, _ = ROWS
        self.table = torch.from_numpy(np.random.default_rng(1).standard_normal((n, d), dtype=np.float32))
        self.table.requires_grad_()
        rows, grads = _row_batch()
        self.grad = torch.sparse_coo_tensor(torch.from_numpy(rows)[None], torch.from_numpy(grads), (n, d),
                                            check_invariants=False)
        self.opt = torch.optim.SparseAdam([self.table], lr=1e-3)
        self.table.grad = self.grad
        self.opt.step()

    def time_step_rows(self):
        self.table.grad = self.grad
        self.opt.step()

    def peakmem_step_rows(self):
        self.table.grad = self.grad
        self.opt.step()


class ClipGradNorm:
    """clip_grad_norm over 1,000 tensors of 16k elements."""

    timeout = 300

    def setup(self):
        from fastgnn.optim import clip_grad_norm

        count, n = MANY
        rng = np.random.default_rng(0)
        self.gs = [rng.standard_normal(n, dtype=np.float32) for _ in range(count)]
        self.clip = clip_grad_norm
        self.clip(self.gs, 1e9)

    def time_clip(self):
        self.clip(self.gs, 1e9)


class TorchClipGradNorm:
    """Peer: torch.nn.utils.clip_grad_norm_ (foreach) on the same tensors."""

    timeout = 300

    def setup(self):
        torch = require("torch")
        count, n = MANY
        rng = np.random.default_rng(0)
        self.ps = [torch.zeros(n, requires_grad=True) for _ in range(count)]
        for p in self.ps:
            p.grad = torch.from_numpy(rng.standard_normal(n, dtype=np.float32))
        self.clip = torch.nn.utils.clip_grad_norm_
        self.clip(self.ps, 1e9)

    def time_clip(self):
        self.clip(self.ps, 1e9)
