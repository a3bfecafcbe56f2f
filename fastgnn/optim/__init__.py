"""Fused optimizers (``SGD``, ``Adam``, ``AdamW``), gradient clipping and learning-rate schedules.

The update rules are ``torch.optim``'s (same defaults, order of operations and ε placement). Each step is
one fused, parallel kernel over all parameters: the caller's arrays stay the live parameters (updated in
place), and many small arrays are updated in one launch through a table of their addresses, so 1,000
tensors cost about what one tensor of the same total does. ``step_rows`` gives lazy row-sparse updates for
embedding tables. Learning-rate schedules live in :mod:`fastgnn.optim.lr`.

Examples
--------
>>> import numpy as np
>>> from fastgnn.optim import Adam
>>> from fastgnn.optim.lr import Cosine
>>> table = np.zeros((100, 8), dtype=np.float32)
>>> opt = Adam([table], lr=0.01)
>>> sched = Cosine(opt, t_max=10)
>>> opt.step_rows(0, np.array([3, 5, 3]), np.ones((3, 8), dtype=np.float32))
True
>>> sched.step()
>>> round(opt.lr, 6)
0.009755
"""
from ._base import Optimizer
from ._clip import clip_grad_norm, clip_grad_value
from ._optimizers import SGD, Adam, AdamW

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "clip_grad_norm", "clip_grad_value", "lr"]


def __getattr__(name):
    if name == "lr":
        from . import lr

        return lr
    raise AttributeError(f"module 'fastgnn.optim' has no attribute {name!r}")
