"""DeepWalk and node2vec: random walks fed straight into the skip-gram kernel on integer node ids."""
from __future__ import annotations

import numpy as np

from .. import _check
from ..graph import Graph
from . import _corpus
from .keyedvectors import KeyedVectors
from .model import Word2Vec

__all__ = ["DeepWalk", "Node2Vec"]


class DeepWalk:
    """DeepWalk (Perozzi et al. 2014): uniform random walks + skip-gram with negative sampling.

    Node ``v`` is word ``v`` (row ``v`` of the result); walks go from :func:`fastgnn.random_walks` into
    the kernel as int32 ids, with no string conversion. The objective per (node, context) pair in a
    walk window is ``-log σ(u_c·v_n) - Σ_k log σ(-u_c·v_k)``, noise ``∝ count^0.75``.

    Parameters
    ----------
    graph : Graph
    walk_length : int >= 1
        Nodes per walk (80 in the DeepWalk paper).
    walks_per_node : int >= 1
        Walks started from every node (10 in the paper).
    vector_size : int >= 1
    window : int >= 1
    negative : int >= 1
        Noise nodes per positive pair.
    epochs : int >= 1
        Passes over the walks. The defaults, 3 epochs with 1 noise node, cost about what 1 epoch with
        5 noise nodes (word2vec's choice) costs and score much better on graphs: BlogCatalog macro-F1
        at 50% labels 0.209 -> 0.245 ± 0.004 over 3 splits (gensim on the same walks with the same
        settings 0.248 ± 0.006; ``asv_benchmarks/quality_deepwalk.py``).
    alpha, min_alpha : float
        Linear learning-rate decay.
    sample : float >= 0
        Sub-sampling threshold (0, the default, keeps every visit as in the paper).
    min_count : int >= 0
        Nodes visited fewer times keep their random initial vector (default 0: every node is a word).
    seed : int, optional
        Seeds the walks, the initial vectors and every draw; with ``workers=1`` on the CPU backend the
        result is reproducible.
    workers : int >= 1
    shared_negatives : bool
        Draw the noise nodes once per centre node and share them across its window (Ji et al. 2016).
        On by default here: about twice as fast with window 10, and the same quality in our checks
        (planted partition accuracy / link AUC, BlogCatalog macro-F1); ``False`` is word2vec's scheme.
    keep_walks : bool
        Keep the walk matrix as ``self.walks``.
    backend : "cpu" | "cuda" | "auto", optional
        Backend of the walks and of the training (see :class:`Word2Vec`): on ``"cuda"`` the tables
        stay on the device for the whole training and are copied back once, at the end of :meth:`fit`.
        The walks are the same on both backends for a given seed.
    **word2vec_args
        Any other :class:`Word2Vec` argument (``ns_exponent``, ``shrink_windows``, ``l2``, ...).

    Attributes (after :meth:`fit`)
    ----------
    embeddings : float32 array [num_nodes, D]
    model : Word2Vec (``model.wv`` answers most_similar queries with node ids as keys)
    walks : int32 array [W, walk_length], kept only with ``keep_walks=True``

    Examples
    --------
    >>> g = Graph.from_edges([0, 1, 2, 3], [1, 2, 3, 0])
    >>> DeepWalk(g, walk_length=10, walks_per_node=2, vector_size=8, seed=0, workers=1).fit().shape
    (4, 8)
    """

    _p = 1.0
    _q = 1.0

    def __init__(self, graph, *, walk_length=80, walks_per_node=10, vector_size=128, window=10, negative=1,
                 epochs=3, alpha=0.025, min_alpha=0.0001, sample=0.0, min_count=0, seed=None, workers=3,
                 shared_negatives=True, keep_walks=False, backend=None, **word2vec_args):
        if not isinstance(graph, Graph):
            raise TypeError(f"graph: expected a fastgnn.Graph, got {type(graph).__name__}")
        if graph.num_nodes == 0:
            raise ValueError("graph: has no nodes")
        self.graph = graph
        self.walk_length = _check.integer(walk_length, "walk_length", minimum=1)
        self.walks_per_node = _check.integer(walks_per_node, "walks_per_node", minimum=1)
        self.min_count = _check.integer(min_count, "min_count", minimum=0)
        self.seed = _check.seed_value(seed)
        self.keep_walks = bool(keep_walks)
        for bad in ("sentences", "min_count", "max_vocab_size"):
            if bad in word2vec_args:
                raise TypeError(f"{bad}: not an argument of {type(self).__name__}")
        # validated by Word2Vec (every argument error names the argument)
        self.model = Word2Vec(vector_size=vector_size, window=window, negative=negative, epochs=epochs,
                              alpha=alpha, min_alpha=min_alpha, sample=sample, seed=self.seed, workers=workers,
                              sg=1, min_count=1, shared_negatives=shared_negatives, backend=backend,
                              **word2vec_args)
        self.embeddings = None
        self.walks = None

    def _walks(self):
        from ..walks import random_walks

        return random_walks(self.graph, self.walk_length, self.walks_per_node, p=self._p, q=self._q,
                            seed=self.seed, backend=self.model.backend)

    def fit(self):
        """Generate the walks and train; returns the embeddings, float [num_nodes, D] (row = node id).

        Raises
        ------
        ValueError
            ``min_count`` leaves no node (only possible when every walk is shorter than it).
        """
        walks = self._walks()
        corpus, offsets = _corpus.walks_to_corpus(walks)
        n = self.graph.num_nodes
        counts = np.bincount(corpus, minlength=n).astype(np.int64)
        if self.min_count > 1:
            if not (counts >= self.min_count).any():
                raise ValueError(f"min_count: no node is visited {self.min_count} times")
            keep_node = counts >= self.min_count
            corpus, offsets = _drop_rare(corpus, offsets, keep_node)
            counts = np.where(keep_node, counts, 0)
        m = self.model
        rng = np.random.default_rng([self.seed, 0])
        d = m.vector_size
        syn0 = ((rng.random((n, d)) - 0.5) / d).astype(m.dtype)
        m.wv = KeyedVectors(range(n), syn0, counts)
        m.syn1neg = np.zeros((n, d), m.dtype)
        m._tables = None
        m.epochs_trained = 0
        m.epoch_losses = []
        m._train_ids(corpus, offsets)
        self.walks = walks if self.keep_walks else None
        self.embeddings = m.wv.vectors  # on "cuda": the one copy back from the device
        return self.embeddings

    @property
    def wv(self) -> KeyedVectors:
        """The trained vectors with node ids as keys."""
        return self.model.wv

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({self.graph.num_nodes} nodes, {self.walks_per_node}x{self.walk_length} "
                f"walks, {self.model.vector_size} dims)")


class Node2Vec(DeepWalk):
    """node2vec (Grover & Leskovec 2016): second-order biased walks + skip-gram.

    From ``t → v`` the walk moves to ``x`` with probability ``∝ w(v,x)·α``, ``α = 1/p`` (back to ``t``),
    ``1`` (``x`` adjacent to ``t``), ``1/q`` (otherwise); everything else as :class:`DeepWalk`.

    Parameters
    ----------
    graph : Graph
    p, q : float > 0
        Return and in-out parameters.
    **kwargs
        As :class:`DeepWalk`.

    Raises
    ------
    ValueError
        ``p`` or ``q`` not > 0.

    Examples
    --------
    >>> g = Graph.from_edges([0, 1, 2, 3], [1, 2, 3, 0])
    >>> Node2Vec(g, p=0.5, q=2.0, walk_length=10, walks_per_node=2, vector_size=8, seed=0).fit().shape
    (4, 8)
    """

    def __init__(self, graph, p=1.0, q=1.0, **kwargs):
        self._p = _check.real(p, "p", minimum=0.0, strict_min=True)
        self._q = _check.real(q, "q", minimum=0.0, strict_min=True)
        super().__init__(graph, **kwargs)

    @property
    def p(self) -> float:
        return self._p

    @property
    def q(self) -> float:
        return self._q


def _drop_rare(corpus, offsets, keep_node):
    keep = keep_node[corpus]
    sent = np.repeat(np.arange(offsets.size - 1), np.diff(offsets))
    lengths = np.bincount(sent[keep], minlength=offsets.size - 1).astype(np.int64)
    new_off = np.zeros(offsets.size, np.int64)
    np.cumsum(lengths, out=new_off[1:])
    return np.ascontiguousarray(corpus[keep]), new_off
