"""Vector files in the word2vec C / gensim formats (text and binary).

Text: a header line ``"<count> <dim>"``, then one line per key: ``key v1 v2 ... vD`` (single spaces).
Binary: the same header line, then per key ``key`` + one space + ``dim`` little-endian float32 values
+ ``"\\n"`` (the original word2vec C tool writes the newline, gensim omits it; both are read).
"""
from __future__ import annotations

import os

import numpy as np

from . import _check

__all__ = ["save_word2vec_format", "load_word2vec_format"]

_F32 = np.dtype("<f4")


def _check_keys(keys, n):
    out = []
    for i, k in enumerate(keys):
        s = str(k)
        if not s or any(ch.isspace() for ch in s):
            raise ValueError(f"keys: key {i} ({s!r}) is empty or contains whitespace, which the word2vec format "
                             "cannot store")
        out.append(s)
    if len(out) != n:
        raise ValueError(f"keys: {len(out)} keys for {n} vectors")
    return out


def save_word2vec_format(path, keys, vectors, binary=False):
    """Write ``keys`` and their ``vectors`` in the word2vec C / gensim format.

    Text values are written with 9 significant digits, so float32 vectors read back bit-exactly.

    Parameters
    ----------
    path : str or os.PathLike
    keys : sequence
        One key per row (written with ``str``); no whitespace inside a key.
    vectors : float array [N, D]
    binary : bool
        Binary (float32) rather than text.

    Raises
    ------
    ValueError
        Key/row count mismatch, a key with whitespace, non-finite values, ``D == 0``.

    Examples
    --------
    >>> import tempfile, os
    >>> p = os.path.join(tempfile.mkdtemp(), "v.txt")
    >>> save_word2vec_format(p, ["a", "b"], np.eye(2, dtype=np.float32))
    >>> open(p).read().splitlines()[:2]
    ['2 2', 'a 1 0']
    """
    vectors = _check.float_array(vectors, "vectors", ndim=2)
    if vectors.shape[1] == 0:
        raise ValueError("vectors: must have at least one column")
    keys = _check_keys(keys, vectors.shape[0])
    n, d = vectors.shape
    with open(path, "wb") as fh:
        fh.write(f"{n} {d}\n".encode("utf-8"))
        if binary:
            data = np.ascontiguousarray(vectors, dtype=_F32)
            for k, row in zip(keys, data):
                fh.write(k.encode("utf-8") + b" " + row.tobytes() + b"\n")
        else:
            fmt = " ".join(["%.9g" if vectors.dtype == np.float32 else "%.17g"] * d)
            lines = [f"{k} {fmt % tuple(row)}\n" for k, row in zip(keys, vectors.tolist())]
            fh.write("".join(lines).encode("utf-8"))


def _header(line, path):
    parts = line.split()
    if len(parts) != 2 or not all(p.isdigit() for p in parts):
        raise ValueError(f"path: {path} does not start with a '<count> <dim>' header line (got {line[:60]!r})")
    n, d = int(parts[0]), int(parts[1])
    if d == 0:
        raise ValueError(f"path: {path} declares dimension 0")
    return n, d


def _sniff_binary(path):
    """True when the first record after the header is not a text line of ``dim`` numbers."""
    with open(path, "rb") as fh:
        head = fh.readline()
        try:
            _, d = _header(head.decode("utf-8", errors="replace"), path)
        except ValueError:
            return False
        rec = fh.read(64 + 40 * d)
    line = rec.split(b"\n", 1)[0]
    try:
        parts = line.decode("utf-8").rstrip().split(" ")
        [float(x) for x in parts[1:]]
        return len(parts) != d + 1
    except (UnicodeDecodeError, ValueError):
        return True


def load_word2vec_format(path, binary=False, limit=None, encoding="utf-8", unicode_errors="strict",
                         dtype=np.float32):
    """Read a word2vec C / gensim vector file into :class:`fastgnn.KeyedVectors`.

    Parameters
    ----------
    path : str or os.PathLike
    binary : bool or None
        Binary (float32) file; ``None`` guesses from the first record.
    limit : int, optional
        Read only the first ``limit`` vectors.
    encoding, unicode_errors : str
        How keys are decoded (``unicode_errors`` as in ``bytes.decode``).
    dtype : numpy.float32 or numpy.float64

    Returns
    -------
    KeyedVectors

    Raises
    ------
    FileNotFoundError
        ``path`` does not exist.
    ValueError
        Empty file, bad header, a record with the wrong number of values, truncated data, duplicate
        keys, non-finite values.

    Examples
    --------
    >>> import tempfile, os
    >>> p = os.path.join(tempfile.mkdtemp(), "v.txt")
    >>> save_word2vec_format(p, ["a", "b"], np.eye(2, dtype=np.float32))
    >>> load_word2vec_format(p)["b"]
    array([0., 1.], dtype=float32)
    """
    from .word2vec import KeyedVectors

    path = os.fspath(path)
    if limit is not None:
        limit = _check.integer(limit, "limit", minimum=0)
    if np.dtype(dtype) not in (np.float32, np.float64):
        raise TypeError(f"dtype: expected float32 or float64, got {np.dtype(dtype)}")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"path: no such file: {path}")
    if os.path.getsize(path) == 0:
        raise ValueError(f"path: {path} is empty")
    if binary is None:
        binary = _sniff_binary(path)
    with open(path, "rb") as fh:
        n, d = _header(fh.readline().decode("utf-8", errors="replace"), path)
        if limit is not None:
            n = min(n, limit)
        keys = []
        vectors = np.empty((n, d), dtype)
        if binary:
            data = fh.read()
            pos = 0
            nbytes = 4 * d
            for i in range(n):
                sp = data.find(b" ", pos)
                if sp < 0 or sp + 1 + nbytes > len(data):
                    raise ValueError(f"path: {path} ends after {i} of {n} vectors (truncated or wrong header)")
                keys.append(data[pos:sp].decode(encoding, errors=unicode_errors).lstrip("\n"))
                vectors[i] = np.frombuffer(data, _F32, count=d, offset=sp + 1)
                pos = sp + 1 + nbytes
        else:
            for i in range(n):
                raw = fh.readline()
                if not raw:
                    raise ValueError(f"path: {path} ends after {i} of {n} vectors (truncated or wrong header)")
                parts = raw.decode(encoding, errors=unicode_errors).rstrip().split(" ")
                if len(parts) != d + 1:
                    raise ValueError(f"path: line {i + 2} of {path} has {len(parts) - 1} values, expected {d}")
                keys.append(parts[0])
                try:
                    vectors[i] = np.array(parts[1:], dtype=np.float64)
                except ValueError as exc:
                    raise ValueError(f"path: line {i + 2} of {path}: {exc}") from None
    _check.finite(vectors, "path")
    return KeyedVectors(keys, vectors)
