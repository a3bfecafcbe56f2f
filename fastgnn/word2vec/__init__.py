"""Word embeddings from scratch: vocabulary, skip-gram / CBOW with negative sampling, KeyedVectors-style
queries, incremental and online training, and DeepWalk / node2vec on integer node ids.

``Word2Vec`` (model.py), ``KeyedVectors`` (keyedvectors.py), ``DeepWalk`` / ``Node2Vec`` (graph.py);
the compiled loops live in ``fastgnn/kernels/cpu/word2vec.py`` and load on first training call.
"""
from .graph import DeepWalk, Node2Vec
from .keyedvectors import KeyedVectors
from .model import Word2Vec

__all__ = ["Word2Vec", "KeyedVectors", "DeepWalk", "Node2Vec"]
