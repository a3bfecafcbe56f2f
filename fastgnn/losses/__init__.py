"""Loss functions with exact gradients, each returning ``(loss, grads)``.

Every function validates its inputs, resolves the backend (``"cpu"`` kernels in
``fastgnn/kernels/cpu/losses.py``, CUDA twins in ``fastgnn/kernels/cuda/losses.py``) and returns

* ``loss``: a Python float for ``reduction="mean"`` / ``"sum"``, or a per-item array for ``"none"``;
* ``grads``: a dict naming each differentiable input, e.g. ``{"anchors": ..., "positives": ...}``.
  With ``reduction="none"`` the gradients are those of the *sum* of the per-item losses. A table's
  gradient is row-sparse ``(rows, values)`` (sorted distinct rows) unless the caller passes a dense
  buffer ``table_grad=`` that it is added into.

Device inputs (numba device arrays, or any object exposing ``__cuda_array_interface__``: CuPy, PyTorch CUDA
tensors) run on CUDA end to end (``_device.py``): no copy of the data, value checks by device scans, the
loss a Python float (or a device array for ``"none"``) and the gradients numba device arrays.

Modules: :mod:`.contrastive` (info_nce, local_contrastive), :mod:`.graph` (spectral, reconstruction,
laplacian_eigenvalues), :mod:`.multi` (MultiObjectiveLoss, combine_gradients).
"""
from .contrastive import info_nce, local_contrastive
from .graph import laplacian_eigenvalues, reconstruction, spectral
from .multi import MultiObjectiveLoss, combine_gradients

__all__ = [
    "info_nce",
    "local_contrastive",
    "spectral",
    "reconstruction",
    "laplacian_eigenvalues",
    "MultiObjectiveLoss",
    "combine_gradients",
]
