"""KeyedVectors: a key -> row mapping over a float matrix, with gensim-style similarity queries."""
from __future__ import annotations

import numbers

import numpy as np

from .. import _check

__all__ = ["KeyedVectors"]


class KeyedVectors:
    """Vectors addressed by key (``model.wv``), with cosine-similarity queries.

    Similarities are cosines, ``cos(x, y) = x·y / (|x| |y|)``; zero vectors have similarity 0.

    Parameters
    ----------
    keys : sequence of hashable
        One key per row (strings for words, ints for graph nodes); must be unique.
    vectors : float array [len(keys), D]
        Kept by reference when already C-contiguous float32/float64 (a model's ``wv`` shares its
        training matrix); other inputs are converted.
    counts : int array [len(keys)], optional
        Frequencies (kept for ``save_word2vec_format`` and restricted queries).

    Raises
    ------
    ValueError
        Duplicate keys, or ``vectors`` rows != number of keys, or non-finite values.

    Examples
    --------
    >>> kv = KeyedVectors(["a", "b"], np.eye(2, dtype=np.float32))
    >>> kv.similarity("a", "b")
    0.0
    """

    def __init__(self, keys, vectors, counts=None):
        keys = list(keys)
        if not (isinstance(vectors, np.ndarray) and vectors.dtype in (np.float32, np.float64)
                and vectors.flags.c_contiguous):
            vectors = _check.float_array(vectors, "vectors", ndim=2)
        elif vectors.ndim != 2:
            raise ValueError(f"vectors: expected a 2-d array [N, D], got shape {vectors.shape}")
        else:
            _check.finite(vectors, "vectors")
        if vectors.shape[0] != len(keys):
            raise ValueError(f"vectors: {vectors.shape[0]} rows for {len(keys)} keys")
        self.index_to_key = keys
        self.key_to_index = {k: i for i, k in enumerate(keys)}
        if len(self.key_to_index) != len(keys):
            seen = set()
            dup = next(k for k in keys if k in seen or seen.add(k))
            raise ValueError(f"keys: duplicate key {dup!r}")
        self.vectors = vectors
        if counts is None:
            counts = np.zeros(len(keys), np.int64)
        self.counts = _check.index_array(counts, "counts", shape=(len(keys),), dtype=np.int64)
        self._normed = None

    # ------------------------------------------------------------------ mapping
    @property
    def vector_size(self) -> int:
        return int(self.vectors.shape[1])

    def __len__(self) -> int:
        return len(self.index_to_key)

    def __contains__(self, key) -> bool:
        try:
            return key in self.key_to_index
        except TypeError:
            return False

    def __repr__(self) -> str:
        return f"KeyedVectors({len(self)} keys, {self.vector_size} dims, {self.vectors.dtype})"

    def get_index(self, key, default=None):
        """Row of ``key``; ``default`` if absent (``KeyError`` when ``default`` is None).

        An integer that is not itself a key is taken as a row number (gensim's convention).
        """
        idx = self.key_to_index.get(key) if _hashable(key) else None
        if idx is not None:
            return idx
        if isinstance(key, numbers.Integral) and not isinstance(key, bool) and 0 <= key < len(self):
            return int(key)
        if default is not None:
            return default
        raise KeyError(f"key {key!r} not in vocabulary")

    def __getitem__(self, key):
        """The vector of a key ([D]) or of a list of keys ([K, D])."""
        if isinstance(key, (list, tuple, np.ndarray)):
            return np.stack([self.vectors[self.get_index(k)] for k in key]) if len(key) else \
                np.empty((0, self.vector_size), self.vectors.dtype)
        return self.vectors[self.get_index(key)]

    def get_vector(self, key, norm=False):
        """Vector of ``key``; unit length when ``norm``."""
        v = self.vectors[self.get_index(key)]
        if norm:
            n = np.linalg.norm(v)
            return v / n if n > 0 else v.copy()
        return v

    def fill_norms(self, force=False):
        """(Re)compute the unit-length rows used by the queries (needed after editing ``vectors`` in place)."""
        if self._normed is None or force or self._normed.shape != self.vectors.shape:
            norms = np.linalg.norm(self.vectors, axis=1, keepdims=True)
            norms[norms == 0] = 1.0
            self._normed = (self.vectors / norms).astype(self.vectors.dtype, copy=False)

    def get_normed_vectors(self):
        """All rows scaled to unit length (zero rows stay zero)."""
        self.fill_norms()
        return self._normed

    def _invalidate(self):
        self._normed = None

    # ------------------------------------------------------------------ queries
    def _query(self, items, sign):
        """Resolve keys or raw vectors to unit vectors, weighted by ``sign``; returns (vectors, row ids)."""
        vecs, rows = [], []
        for it in items:
            if isinstance(it, np.ndarray) and it.ndim == 1:
                v = _check.float_array(it, "positive" if sign > 0 else "negative", shape=(self.vector_size,))
                n = np.linalg.norm(v)
                vecs.append(sign * (v / n if n > 0 else v))
            else:
                i = self.get_index(it)
                rows.append(i)
                vecs.append(sign * self.get_normed_vectors()[i])
        return vecs, rows

    def most_similar(self, positive=None, negative=None, topn=10, restrict_vocab=None):
        """Keys closest to ``mean(unit(positive)) - mean(unit(negative))`` by cosine, query keys excluded.

        ``score(x) = cos(x, Σ_p p̂ - Σ_n n̂)``.

        Parameters
        ----------
        positive, negative : key, vector, or list of them
        topn : int >= 1
        restrict_vocab : int, optional
            Only the first ``restrict_vocab`` rows (the most frequent words) are candidates.

        Returns
        -------
        list of (key, cosine) pairs, best first.

        Raises
        ------
        KeyError
            A key is not in the vocabulary.
        ValueError
            Nothing to query, bad ``topn``/``restrict_vocab``.

        Examples
        --------
        >>> kv = KeyedVectors(["a", "b", "c"], np.array([[1, 0], [1, 0.1], [0, 1]], np.float32))
        >>> kv.most_similar("a", topn=1)[0][0]
        'b'
        """
        pos = _as_list(positive)
        neg = _as_list(negative)
        if not pos and not neg:
            raise ValueError("positive: give at least one key or vector (positive or negative)")
        topn = _check.integer(topn, "topn", minimum=1)
        limit = self._limit(restrict_vocab)
        pv, prow = self._query(pos, 1.0)
        nv, nrow = self._query(neg, -1.0)
        q = np.sum(pv + nv, axis=0)
        n = np.linalg.norm(q)
        if n > 0:
            q = q / n
        sims = self.get_normed_vectors()[:limit] @ q.astype(self.vectors.dtype)
        exclude = [r for r in prow + nrow if r < limit]
        return self._top(sims, topn, exclude)

    def most_similar_cosmul(self, positive=None, negative=None, topn=10, restrict_vocab=None):
        """3CosMul (Levy & Goldberg 2014): ``score(x) = Π_p s(x,p) / (Π_n s(x,n) + 1e-6)``, ``s = (1 + cos)/2``.

        Parameters and returns as :meth:`most_similar` (keys or vectors; query keys excluded).

        Examples
        --------
        >>> kv = KeyedVectors(["a", "b", "c"], np.array([[1, 0], [1, 0.1], [0, 1]], np.float32))
        >>> kv.most_similar_cosmul(positive=["a"], topn=1)[0][0]
        'b'
        """
        pos = _as_list(positive)
        neg = _as_list(negative)
        if not pos and not neg:
            raise ValueError("positive: give at least one key or vector (positive or negative)")
        topn = _check.integer(topn, "topn", minimum=1)
        limit = self._limit(restrict_vocab)
        normed = self.get_normed_vectors()[:limit]
        pv, prow = self._query(pos, 1.0)
        nv, nrow = self._query(neg, 1.0)
        num = np.ones(limit)
        for v in pv:
            num *= (1.0 + normed @ v) / 2.0
        den = np.ones(limit)
        for v in nv:
            den *= (1.0 + normed @ v) / 2.0
        sims = num / (den + 1e-6)
        exclude = [r for r in prow + nrow if r < limit]
        return self._top(sims, topn, exclude)

    def similarity(self, w1, w2) -> float:
        """Cosine similarity of two keys: ``w1·w2 / (|w1| |w2|)``.

        Examples
        --------
        >>> KeyedVectors(["a", "b"], np.array([[1, 0], [2, 0]], np.float32)).similarity("a", "b")
        1.0
        """
        normed = self.get_normed_vectors()
        return float(normed[self.get_index(w1)] @ normed[self.get_index(w2)])

    def analogy(self, a, b, c, topn=1, method="add"):
        """Solve ``a : b :: c : ?`` — 3CosAdd ``argmax cos(x, b̂ - â + ĉ)`` or 3CosMul; a, b, c excluded.

        Parameters
        ----------
        a, b, c : keys
        topn : int >= 1
        method : "add" | "mul"

        Returns
        -------
        list of (key, score), best first.

        Examples
        --------
        >>> v = np.array([[1, 0, 0], [1, 1, 0], [0, 0, 1], [0, 1, 1]], np.float32)
        >>> KeyedVectors(["man", "king", "woman", "queen"], v).analogy("man", "king", "woman")[0][0]
        'queen'
        """
        method = _check.choice(method, "method", ("add", "mul"))
        if method == "add":
            return self.most_similar(positive=[b, c], negative=[a], topn=topn)
        return self.most_similar_cosmul(positive=[b, c], negative=[a], topn=topn)

    def evaluate_word_analogies(self, path, restrict_vocab=300000, case_insensitive=True, method="add"):
        """Analogy accuracy on a questions-words file; see :func:`fastgnn.evaluate.word_analogies`."""
        from ..evaluate import word_analogies

        return word_analogies(self, path, restrict_vocab=restrict_vocab, case_insensitive=case_insensitive,
                              method=method)

    def evaluate_word_pairs(self, path, delimiter="\t", restrict_vocab=300000, case_insensitive=True):
        """Pearson/Spearman against human scores; see :func:`fastgnn.evaluate.word_pairs`."""
        from ..evaluate import word_pairs

        return word_pairs(self, path, delimiter=delimiter, restrict_vocab=restrict_vocab,
                          case_insensitive=case_insensitive)

    # ------------------------------------------------------------------ files
    def save_word2vec_format(self, path, binary=False):
        """Write the word2vec C / gensim format; see :func:`fastgnn.io.save_word2vec_format`."""
        from ..io import save_word2vec_format

        save_word2vec_format(path, self.index_to_key, self.vectors, binary=binary)

    @classmethod
    def load_word2vec_format(cls, path, binary=False, limit=None, encoding="utf-8", unicode_errors="strict"):
        """Read the word2vec C / gensim format; see :func:`fastgnn.io.load_word2vec_format`."""
        from ..io import load_word2vec_format

        return load_word2vec_format(path, binary=binary, limit=limit, encoding=encoding,
                                    unicode_errors=unicode_errors)

    # ------------------------------------------------------------------ helpers
    def _limit(self, restrict_vocab):
        if restrict_vocab is None:
            return len(self)
        return min(len(self), _check.integer(restrict_vocab, "restrict_vocab", minimum=1))

    def _top(self, sims, topn, exclude):
        sims = np.asarray(sims, np.float64).copy()
        if exclude:
            sims[np.asarray(exclude, np.int64)] = -np.inf
        k = min(topn, int(np.isfinite(sims).sum()))
        if k <= 0:
            return []
        best = np.argpartition(-sims, k - 1)[:k]
        best = best[np.lexsort((best, -sims[best]))]
        return [(self.index_to_key[i], float(sims[i])) for i in best]


def _hashable(x) -> bool:
    try:
        hash(x)
    except TypeError:
        return False
    return True


def _as_list(x):
    if x is None:
        return []
    if isinstance(x, np.ndarray) and x.ndim == 1 and x.dtype.kind == "f":
        return [x]
    if isinstance(x, (list, tuple)):
        return list(x)
    return [x]
