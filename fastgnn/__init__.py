"""fastgnn: fast node, GNN-latent and word embeddings with Numba kernels on the CPU and CUDA.

``import fastgnn`` imports numpy only; numba, scipy and the kernels load on first use. Public names
from the topical modules are resolved lazily through :func:`__getattr__`.
"""
from importlib import import_module as _import_module

from . import backend
from .backend import set_backend, use_backend
from .graph import Graph

__version__ = "0.1.0"

# public name -> module that defines it (loaded on first access)
_LAZY = {
    # data
    "Dataset": "datasets",
    "spmm": "graph",
    # losses
    "info_nce": "losses",
    "local_contrastive": "losses",
    "spectral": "losses",
    "reconstruction": "losses",
    "laplacian_eigenvalues": "losses",
    "MultiObjectiveLoss": "losses",
    # optimisation and schedules
    "SGD": "optim",
    "Adam": "optim",
    "AdamW": "optim",
    "clip_grad_norm": "optim",
    "clip_grad_value": "optim",
    "TemperatureScheduler": "schedules",
    "LossWeightScheduler": "schedules",
    "CurriculumScheduler": "schedules",
    "CurriculumStage": "schedules",
    # mining and walks
    "HardNegativeMiner": "mining",
    "GraphHardNegativeMiner": "mining",
    "k_hop": "mining",
    "random_walks": "walks",
    # embeddings and training
    "Word2Vec": "word2vec",
    "KeyedVectors": "word2vec",
    "DeepWalk": "word2vec",
    "Node2Vec": "word2vec",
    "Trainer": "trainer",
    "EarlyStopping": "trainer",
    "TrainingDiverged": "trainer",
    "History": "trainer",
    "combine_gradients": "losses",
}
_SUBMODULES = {
    "datasets", "graph", "losses", "optim", "schedules", "mining", "walks", "word2vec", "autograd", "nn",
    "trainer", "evaluate", "io", "cli", "kernels",
}

__all__ = ["Graph", "backend", "set_backend", "use_backend", "__version__", *_LAZY]


def __getattr__(name):
    if name in _LAZY:
        value = getattr(_import_module(f"{__name__}.{_LAZY[name]}"), name)
        globals()[name] = value
        return value
    if name in _SUBMODULES:
        return _import_module(f"{__name__}.{name}")
    raise AttributeError(f"module 'fastgnn' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY) | _SUBMODULES)
