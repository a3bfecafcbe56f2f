"""The Trainer: learns a graph's latent space by composing encoders, losses, optimizer, schedules and miners.

One epoch is one full-graph step:

1. the curriculum stage (if any) sets τ, the number of negatives, the loss weights and the difficulty
   threshold; otherwise the temperature and loss-weight schedulers do;
2. the encoder (GCN / SAGE / GAT on :mod:`fastgnn.autograd`, or a plain embedding table) produces ``Z``;
3. each objective returns its loss and exact gradient with respect to ``Z`` (or to the projected views):
   ``infonce`` (graph neighbours as positives with mined negatives, or two augmented views GRACE-style),
   ``spectral`` (Laplacian smoothness), ``local`` (margin contrastive on edges and negatives),
   ``reconstruction`` (edges vs degree^0.75 negatives);
4. :class:`~fastgnn.losses.MultiObjectiveLoss` combines them (fixed, uncertainty or GradNorm weights) and the
   combined gradient is back-propagated to every parameter, then the optimizer steps.

All randomness of epoch ``e`` is drawn from ``(seed, e)``, so a run resumed from a checkpoint continues
bit-identically on one thread. On the CUDA backend the table model trains on a device-resident table (see the
``backend`` parameter of :class:`Trainer` and :mod:`fastgnn.trainer._device`). A non-finite loss raises
:class:`TrainingDiverged` naming the epoch, step and component, after restoring the last good parameters.

Layout: :mod:`._trainer` (the class: configuration, fit loop, embeddings, checkpoints), :mod:`._epoch` (one
epoch: settings, objectives, negatives, the step), :mod:`._parts` (constants, errors, augmentations, history,
early stopping, helpers), :mod:`._device` (the device-resident table).
"""
from ._parts import (MINERS, MODELS, OBJECTIVES, POSITIVES, EarlyStopping, History, TrainingDiverged, drop_edges,
                     mask_features)
from ._trainer import Trainer

__all__ = ["Trainer", "History", "TrainingDiverged", "EarlyStopping", "drop_edges", "mask_features", "MODELS",
           "OBJECTIVES", "POSITIVES", "MINERS"]

# public names report this package as their home (stable pickles of History in checkpoints, docs)
for _obj in (Trainer, History, TrainingDiverged, EarlyStopping, drop_edges, mask_features):
    _obj.__module__ = __name__
del _obj
