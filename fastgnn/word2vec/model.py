"""Word2Vec: vocabulary, skip-gram / CBOW training with negative sampling, incremental and online training."""
from __future__ import annotations

import json
import logging
import math
import sys
import time

import numpy as np

from .. import _check, backend as _backend
from . import _corpus
from .keyedvectors import KeyedVectors

__all__ = ["Word2Vec"]

log = logging.getLogger("fastgnn")

_FORMAT = "fastgnn.Word2Vec/1"


class Word2Vec:
    """Skip-gram / CBOW with negative sampling (word2vec), gensim-compatible arguments.

    Each (centre ``i``, context ``j``) pair takes one SGD step on
    ``L = -log σ(u_j·v_i) - Σ_{n ~ P^0.75} log σ(-u_j·v_n)`` (skip-gram; CBOW uses the mean/sum of the
    context rows for ``u``), with separate input (``wv.vectors``) and output (``syn1neg``) matrices.

    Parameters
    ----------
    sentences : iterable of lists of str, optional
        If given, the vocabulary is built and the model trained for ``epochs`` right away.
        Must be restartable (a list, or an object whose ``__iter__`` starts over).
    vector_size : int >= 1
    alpha, min_alpha : float
        Learning rate decayed linearly from ``alpha`` to ``min_alpha`` by progress over all epochs.
    window : int >= 1
        Maximum distance between centre and context words.
    min_count : int >= 1
        Words rarer than this are dropped.
    max_vocab_size : int, optional
        Bound on distinct words during the scan (rarest pruned, as gensim).
    sample : float >= 0
        Sub-sampling threshold; a word of count ``c`` is kept with ``min(1, (√(c/(sT))+1)·sT/c)``.
    seed : int
        Seeds the initial vectors and every draw; with ``workers=1`` training on the CPU backend is
        bit-reproducible (on "cuda" only when the corpus is one chunk).
    workers : int >= 1
        Threads (capped at numba's thread count). Above 1 the updates race (Hogwild).
    sg : {0, 1}
        1 skip-gram, 0 CBOW.
    negative : int >= 1
        Noise words per positive pair.
    ns_exponent : float
        Noise distribution ``∝ count ** ns_exponent``.
    cbow_mean : {0, 1}
        CBOW hidden vector: 1 mean, 0 sum of the context rows.
    epochs : int >= 1
    shrink_windows : bool
        Draw an effective window ``uniform{1..window}`` per centre word (word2vec's reduced windows).
    batch_words : int
        Words per chunk of work (chunks are fixed by the corpus, not by the thread count).
    compute_loss : bool
        Accumulate the loss (float64) per epoch into ``epoch_losses``.
    shared_negatives : bool
        Skip-gram only: draw the noise words once per centre word and share them across its window
        (Ji et al. 2016); faster (output rows stay in cache), same objective in expectation.
    lr_schedule : object with ``lr_at(epoch) -> float``, optional
        Replaces the linear decay: epoch ``e`` runs at ``lr_schedule.lr_at(e)`` (e.g. the schedules
        of :mod:`fastgnn.optim.lr`).
    patience : int, optional
        Early stopping: stop when the epoch loss has not improved by more than ``min_delta`` for
        ``patience`` epochs (needs ``compute_loss``).
    min_delta : float >= 0
    l2 : float >= 0
        L2 penalty ``λ/2 |row|²`` on every row an update touches (weight decay toward 0).
    clip_grad : float >= 0
        If > 0, each row's gradient longer than this is rescaled to this length (direction kept).
    dtype : numpy.float32 or numpy.float64
    progress : bool, optional
        One status line per epoch on stderr (words/s, loss); default: when stderr is a terminal.
    backend : "cpu" | "cuda" | "auto", optional
        Where training runs (resolved by :mod:`fastgnn.backend` at each ``train`` call: this argument,
        else ``use_backend`` / ``set_backend`` / ``FASTGNN_BACKEND``, else ``"auto"``). On ``"cuda"`` the
        two tables are copied to the device once and stay there across epochs and ``train`` calls; they
        are copied back when ``wv`` or ``syn1neg`` is read (or the vocabulary changes). One GPU warp (32
        threads over the vector's columns) trains one chunk of ``batch_words`` words, so a small
        ``batch_words`` (e.g. 100) fills the device better; the chunks race (Hogwild) and ``workers`` is
        ignored. ``"cuda"`` without a usable GPU raises :class:`fastgnn.backend.BackendUnavailableError`
        saying why.

    Attributes
    ----------
    wv : KeyedVectors
        The input vectors (shares memory with the training matrix).
    syn1neg : array [V, D]
        The output vectors.
    epoch_losses : list of float
        Loss of every epoch trained so far.
    words_per_sec : float
        Effective (kept) words per second of the last ``train`` call.

    Raises
    ------
    TypeError, ValueError
        Bad arguments (named in the message); an empty vocabulary after ``min_count``.

    Examples
    --------
    >>> sentences = [["the", "cat", "sat"], ["the", "dog", "ran"]] * 50
    >>> model = Word2Vec(sentences, vector_size=8, min_count=1, sg=1, seed=0, workers=1)
    >>> model.wv["cat"].shape
    (8,)
    """

    def __init__(self, sentences=None, *, vector_size=100, alpha=0.025, window=5, min_count=5,
                 max_vocab_size=None, sample=1e-3, seed=1, workers=3, min_alpha=0.0001, sg=0, negative=5,
                 ns_exponent=0.75, cbow_mean=1, epochs=5, shrink_windows=True, batch_words=10000,
                 compute_loss=True, shared_negatives=False, lr_schedule=None, patience=None, min_delta=0.0, l2=0.0, clip_grad=0.0,
                 dtype=np.float32, progress=None, backend=None):
        self.vector_size = _check.integer(vector_size, "vector_size", minimum=1)
        self.alpha = _check.real(alpha, "alpha", minimum=0.0, strict_min=True)
        self.min_alpha = _check.real(min_alpha, "min_alpha", minimum=0.0)
        self.window = _check.integer(window, "window", minimum=1)
        self.min_count = _check.integer(min_count, "min_count", minimum=1)
        self.max_vocab_size = None if max_vocab_size is None else _check.integer(
            max_vocab_size, "max_vocab_size", minimum=1)
        self.sample = _check.real(sample, "sample", minimum=0.0)
        self.seed = _check.seed_value(seed)
        self.workers = _check.integer(workers, "workers", minimum=1)
        self.sg = _check.integer(sg, "sg", minimum=0, maximum=1)
        self.negative = _check.integer(negative, "negative", minimum=1)
        self.ns_exponent = _check.real(ns_exponent, "ns_exponent")
        self.cbow_mean = _check.integer(int(cbow_mean) if isinstance(cbow_mean, bool) else cbow_mean,
                                        "cbow_mean", minimum=0, maximum=1)
        self.epochs = _check.integer(epochs, "epochs", minimum=1)
        if not isinstance(shrink_windows, (bool, np.bool_)):
            raise TypeError(f"shrink_windows: expected a bool, got {type(shrink_windows).__name__}")
        self.shrink_windows = bool(shrink_windows)
        self.batch_words = _check.integer(batch_words, "batch_words", minimum=1)
        self.compute_loss = bool(compute_loss)
        self.shared_negatives = bool(shared_negatives)
        self.lr_schedule = _check_schedule(lr_schedule)
        self.patience = None if patience is None else _check.integer(patience, "patience", minimum=1)
        self.min_delta = _check.real(min_delta, "min_delta", minimum=0.0)
        if self.patience is not None and not self.compute_loss:
            raise ValueError("patience: early stopping watches the loss, so it needs compute_loss=True")
        self.l2 = _check.real(l2, "l2", minimum=0.0)
        self.clip_grad = _check.real(clip_grad, "clip_grad", minimum=0.0)
        if np.dtype(dtype) not in (np.float32, np.float64):
            raise TypeError(f"dtype: expected float32 or float64, got {np.dtype(dtype)}")
        self.dtype = np.dtype(dtype)
        self.progress = progress
        self.backend = None if backend is None else _backend._validate_name(backend)
        self._device = None  # (syn0, syn1) device tables while training on "cuda", else None
        self._host_stale = False  # the device tables are newer than wv.vectors / syn1neg
        self._wv = KeyedVectors([], np.empty((0, self.vector_size), self.dtype))
        self._syn1neg = np.empty((0, self.vector_size), self.dtype)
        self.epoch_losses: list[float] = []
        self.epochs_trained = 0  # also the RNG stream of the next epoch
        self.words_per_sec = 0.0
        self.stopped_early = False
        self._pending: dict = {}
        self._tables = None
        if sentences is not None:
            _corpus.check_sentences(sentences)
            self.build_vocab(sentences)
            self.train(sentences)

    # ------------------------------------------------------------------ tables (host / device)
    @property
    def wv(self) -> KeyedVectors:
        """The input vectors (copied back from the device first when training ran on ``"cuda"``)."""
        self._sync_host()
        return self._wv

    @wv.setter
    def wv(self, kv):
        if not isinstance(kv, KeyedVectors):
            raise TypeError(f"wv: expected a KeyedVectors, got {type(kv).__name__}")
        self._release_device()
        self._wv = kv

    @property
    def syn1neg(self) -> np.ndarray:
        """The output vectors (copied back from the device first when training ran on ``"cuda"``)."""
        self._sync_host()
        return self._syn1neg

    @syn1neg.setter
    def syn1neg(self, value):
        self._release_device()
        self._syn1neg = value

    def _sync_host(self):
        """Copy the device tables into the host arrays (in place, so views stay valid) if they are newer."""
        if self._host_stale:
            d0, d1 = self._device
            d0.copy_to_host(self._wv.vectors)
            d1.copy_to_host(self._syn1neg)
            self._host_stale = False
            self._wv._invalidate()

    def _release_device(self):
        """Bring the host arrays up to date and forget the device tables (the host arrays change next)."""
        self._sync_host()
        self._device = None

    def _device_tables(self, kc):
        """The device tables, copied from the host arrays on first use and kept resident afterwards."""
        if self._device is None:
            self._device = kc.to_device(self._wv.vectors), kc.to_device(self._syn1neg)
        return self._device

    # ------------------------------------------------------------------ vocabulary
    def build_vocab(self, sentences, update=False):
        """Scan ``sentences`` and build (or, with ``update=True``, extend) the vocabulary.

        New words (count >= ``min_count`` in ``sentences``) are appended with fresh vectors; existing
        words keep their vectors and have their counts increased. ``counts ** ns_exponent`` and the
        sub-sampling probabilities are recomputed from the updated counts.

        Parameters
        ----------
        sentences : iterable of lists of str
        update : bool
            Extend the current vocabulary instead of replacing it.

        Returns
        -------
        int : number of words added.

        Raises
        ------
        ValueError
            ``update=True`` before any vocabulary; the vocabulary is empty after ``min_count``.

        Examples
        --------
        >>> m = Word2Vec(min_count=1, vector_size=4)
        >>> m.build_vocab([["a", "b"]])
        2
        >>> m.build_vocab([["c"]], update=True)
        1
        """
        _corpus.check_sentences(sentences, restartable=False)
        if update and len(self._wv) == 0:
            raise ValueError("update: the model has no vocabulary yet; call build_vocab(sentences) first")
        counts, nsent, ntok = _corpus.scan_vocab(sentences, self.max_vocab_size)
        return self._add_counts(counts, update, nsent, ntok)

    def _add_counts(self, counts, update, nsent=None, ntok=None):
        if not update:
            new = _corpus.sorted_new_words(counts, self.min_count)
            if not new:
                most = max(counts.values()) if counts else 0
                raise ValueError(f"sentences: vocabulary is empty after min_count={self.min_count} "
                                 f"({len(counts)} distinct tokens, the most frequent seen {most} times)")
            keys = [w for w, _ in new]
            cnt = np.array([c for _, c in new], np.int64)
            self._set_vocab(keys, cnt, None, None)
            self.epochs_trained = 0
            self.epoch_losses = []
            return len(keys)
        k2i = self._wv.key_to_index
        old_counts = self._wv.counts.copy()
        for w, c in counts.items():
            i = k2i.get(w)
            if i is not None:
                old_counts[i] += c
        new = _corpus.sorted_new_words(counts, self.min_count, known=k2i)
        keys = list(self._wv.index_to_key) + [w for w, _ in new]
        cnt = np.concatenate([old_counts, np.array([c for _, c in new], np.int64)])
        self._set_vocab(keys, cnt, self.wv.vectors, self.syn1neg)
        return len(new)

    def _set_vocab(self, keys, counts, old_syn0, old_syn1):
        v, d = len(keys), self.vector_size
        start = 0 if old_syn0 is None else old_syn0.shape[0]
        syn0 = np.empty((v, d), self.dtype)
        syn1 = np.zeros((v, d), self.dtype)
        if start:
            syn0[:start] = old_syn0
            syn1[:start] = old_syn1
        # new rows: uniform(-0.5, 0.5) / D as word2vec, seeded by (seed, first new row)
        rng = np.random.default_rng([self.seed, start])
        syn0[start:] = ((rng.random((v - start, d)) - 0.5) / d).astype(self.dtype)
        self.wv = KeyedVectors(keys, syn0, counts)
        self.syn1neg = syn1
        self._tables = None

    def _sampling_tables(self):
        if self._tables is None:
            k = _backend.kernels("word2vec", "cpu")
            keep = _corpus.keep_probabilities(self._wv.counts, self.sample)
            prob, alias = _corpus.noise_table(self._wv.counts, self.ns_exponent, k)
            self._tables = (keep, prob, alias)
        return self._tables

    # ------------------------------------------------------------------ training
    def train(self, sentences, *, epochs=None, start_alpha=None, end_alpha=None, total_examples=None,
              total_words=None):
        """Train on ``sentences`` only (words outside the vocabulary are skipped).

        The learning rate goes linearly from ``start_alpha`` (default ``alpha``) to ``end_alpha``
        (default ``min_alpha``) over ``epochs`` passes, unless ``lr_schedule`` is set.

        Parameters
        ----------
        sentences : iterable of lists of str
        epochs : int, optional (default ``self.epochs``)
        start_alpha, end_alpha : float, optional
        total_examples, total_words : ignored
            Accepted for gensim compatibility (the corpus is counted exactly here).

        Returns
        -------
        (int, int) : effective words trained (after sub-sampling) and raw tokens seen, over the epochs run
        (fewer than ``epochs`` after an early stop).

        Raises
        ------
        ValueError
            No vocabulary yet.

        Examples
        --------
        >>> m = Word2Vec(min_count=1, vector_size=4, seed=0, workers=1)
        >>> m.build_vocab([["a", "b", "c"]] * 10)
        3
        >>> m.train([["a", "b", "c"]] * 10, epochs=2)[1]
        60
        """
        _corpus.check_sentences(sentences, restartable=False)
        if len(self._wv) == 0:
            raise ValueError("sentences: the model has no vocabulary; call build_vocab(sentences) first")
        corpus, offsets, raw = _corpus.encode(sentences, self._wv.key_to_index)
        before = self.epochs_trained
        effective = self._train_ids(corpus, offsets, epochs, start_alpha, end_alpha)
        ran = self.epochs_trained - before if offsets[-1] else (epochs if epochs is not None else self.epochs)
        return effective, raw * ran

    def _train_ids(self, corpus, offsets, epochs=None, start_alpha=None, end_alpha=None):
        """Train on an encoded corpus (int32 ids < vocabulary size, int64 offsets); returns effective words."""
        epochs = self.epochs if epochs is None else _check.integer(epochs, "epochs", minimum=1)
        a0 = self.alpha if start_alpha is None else _check.real(start_alpha, "start_alpha", minimum=0.0)
        a1 = self.min_alpha if end_alpha is None else _check.real(end_alpha, "end_alpha", minimum=0.0)
        self.stopped_early = False
        total = int(offsets[-1])
        if total == 0:
            return 0
        name = _backend.resolve(self.backend)
        keep, prob, alias = self._sampling_tables()
        chunks = _corpus.chunk_bounds(offsets, self.batch_words)
        run, done = self._epoch_runner(name, corpus, offsets, chunks, keep, prob, alias, total)
        show = self.progress if self.progress is not None else (sys.stderr.isatty() and total * epochs > 10**6)
        best, wait, effective = math.inf, 0, 0
        t0 = time.perf_counter()
        try:
            for e in range(epochs):
                if self.lr_schedule is not None:
                    lo = hi = float(self.lr_schedule.lr_at(self.epochs_trained))
                    if not math.isfinite(lo) or lo < 0:
                        raise ValueError(f"lr_schedule: lr_at({self.epochs_trained}) returned {lo}")
                else:
                    lo = max(a1, a0 - (a0 - a1) * e / epochs)
                    hi = max(a1, a0 - (a0 - a1) * (e + 1) / epochs)
                loss, words = run(lo, hi)
                self.epochs_trained += 1
                effective += words
                loss = loss if self.compute_loss else math.nan
                self.epoch_losses.append(loss)
                elapsed = time.perf_counter() - t0
                self.words_per_sec = effective / elapsed if elapsed > 0 else 0.0
                msg = (f"epoch {e + 1}/{epochs}: {self.words_per_sec:,.0f} words/s, loss {loss:.6g}, "
                       f"lr {hi:.5g}")
                log.info(msg)
                if show:
                    bar = "#" * int(20 * (e + 1) / epochs)
                    print(f"\r[{bar:<20}] {msg}", end="\n" if e + 1 == epochs else "", file=sys.stderr, flush=True)
                if self.patience is not None:
                    if loss < best - self.min_delta:
                        best, wait = loss, 0
                    else:
                        wait += 1
                        if wait >= self.patience:
                            self.stopped_early = True
                            if show:
                                print(file=sys.stderr)
                            log.info("early stopping after epoch %d (no improvement for %d epochs)", e + 1, wait)
                            break
        finally:
            done()
        return effective

    def _epoch_runner(self, name, corpus, offsets, chunks, keep, prob, alias, total):
        """``(run, done)``: ``run(lo, hi)`` trains epoch ``epochs_trained`` on backend ``name`` with the
        learning rate going from ``lo`` to ``hi`` and returns ``(loss, kept words)``; ``done()`` cleans up."""
        nch = chunks.size - 1
        d = self.vector_size

        def launch(k, syn0, syn1, inputs, loss_out, words_out, lo, hi, **extra):
            common = (*inputs, syn0, syn1, self.window, self.shrink_windows, self.negative)
            tail = (lo, hi, total, self.l2, self.clip_grad, self.seed, self.epochs_trained, self.compute_loss,
                    loss_out, words_out)
            if self.sg:
                k.train_sg(*common, self.shared_negatives, *tail, **extra)
            else:
                k.train_cbow(*common, bool(self.cbow_mean), *tail, **extra)

        if name == "cuda":
            kc = _backend.kernels("word2vec", "cuda")
            syn0, syn1 = self._device_tables(kc)  # resident until the host reads them
            inputs = tuple(kc.to_device(a) for a in (corpus, offsets, chunks, keep, prob, alias))
            loss_out, words_out = kc.device_empty(nch, np.float64), kc.device_empty(nch, np.int64)
            scratch = kc.workspace(corpus.size, nch, d, self.negative, self.dtype)

            def run(lo, hi):
                self._host_stale = True
                launch(kc, syn0, syn1, inputs, loss_out, words_out, lo, hi, workspace=scratch)
                return float(loss_out.copy_to_host().sum()), int(words_out.copy_to_host().sum())

            return run, lambda: None

        import numba

        k = _backend.kernels("word2vec", "cpu")
        self._release_device()  # a later CPU run continues from the device's tables
        syn0, syn1 = self._wv.vectors, self._syn1neg
        loss_out, words_out = np.zeros(nch, np.float64), np.zeros(nch, np.int64)
        inputs = (corpus, offsets, chunks, keep, prob, alias)
        threads_before = numba.get_num_threads()
        numba.set_num_threads(max(1, min(self.workers, numba.config.NUMBA_NUM_THREADS)))

        def run(lo, hi):
            launch(k, syn0, syn1, inputs, loss_out, words_out, lo, hi)
            return float(loss_out.sum()), int(words_out.sum())

        def done():
            numba.set_num_threads(threads_before)
            self._wv._invalidate()

        return run, done

    def stream_train(self, sentences, batch_size=10000, epochs=1):
        """Train online: read ``sentences`` (any iterable, read once) ``batch_size`` sentences at a time.

        Each batch extends the vocabulary (a word joins once its running count reaches ``min_count``,
        counts carried across batches) and is trained on ``epochs`` times with ``alpha → min_alpha``;
        earlier batches are never revisited.

        Parameters
        ----------
        sentences : iterable of lists of str
        batch_size : int >= 1
            Sentences per batch.
        epochs : int >= 1
            Passes over each batch.

        Returns
        -------
        int : number of batches trained.

        Examples
        --------
        >>> m = Word2Vec(min_count=1, vector_size=4, seed=0, workers=1)
        >>> m.stream_train(iter([["a", "b"], ["b", "c"]] * 10), batch_size=5)
        4
        """
        _corpus.check_sentences(sentences, restartable=False)
        batch_size = _check.integer(batch_size, "batch_size", minimum=1)
        epochs = _check.integer(epochs, "epochs", minimum=1)
        nbatches = 0
        batch = []
        for sentence in sentences:
            batch.append(sentence)
            if len(batch) == batch_size:
                nbatches += self._stream_batch(batch, epochs)
                batch = []
        if batch:
            nbatches += self._stream_batch(batch, epochs)
        return nbatches

    def _stream_batch(self, batch, epochs):
        counts, _, _ = _corpus.scan_vocab(batch, self.max_vocab_size)
        k2i = self._wv.key_to_index
        for w, c in counts.items():
            if w not in k2i:
                self._pending[w] = self._pending.get(w, 0) + c
        from collections import Counter

        merged = Counter({w: c for w, c in counts.items() if w in k2i})
        admitted = {w: c for w, c in self._pending.items() if c >= self.min_count}
        merged.update(admitted)
        for w in admitted:
            del self._pending[w]
        if self.max_vocab_size is not None and len(self._pending) > self.max_vocab_size:
            keep = sorted(self._pending.items(), key=lambda wc: -wc[1])[: self.max_vocab_size]
            self._pending = dict(keep)
        if len(self._wv) == 0:
            if not merged:
                return 0
            self._add_counts(merged, update=False)
        else:
            self._add_counts(merged, update=True)
        corpus, offsets, _ = _corpus.encode(batch, self._wv.key_to_index)
        self._train_ids(corpus, offsets, epochs)
        return 1

    def get_latest_training_loss(self) -> float:
        """Loss of the last epoch (float64 sum over all pairs); NaN before training."""
        return self.epoch_losses[-1] if self.epoch_losses else math.nan

    # ------------------------------------------------------------------ persistence
    _PARAMS = ("vector_size", "alpha", "min_alpha", "window", "min_count", "max_vocab_size", "sample", "seed",
               "workers", "sg", "negative", "ns_exponent", "cbow_mean", "epochs", "shrink_windows",
               "batch_words", "compute_loss", "shared_negatives", "patience", "min_delta", "l2", "clip_grad")

    def save(self, path):
        """Save the whole model (vectors, output weights, vocabulary, counts, settings) to one ``.npz``.

        The file holds NumPy arrays and one JSON document (no pickle); :meth:`load` restores a model
        that continues training exactly where this one stopped (``lr_schedule`` and ``backend`` are not
        saved: pass them again).

        Examples
        --------
        >>> import tempfile, os
        >>> m = Word2Vec([["a", "b"]] * 5, min_count=1, vector_size=4, workers=1)
        >>> p = os.path.join(tempfile.mkdtemp(), "m.npz")
        >>> m.save(p); Word2Vec.load(p).wv["a"].shape
        (4,)
        """
        meta = {"format": _FORMAT, "params": {k: getattr(self, k) for k in self._PARAMS},
                "dtype": self.dtype.name, "keys": list(self.wv.index_to_key),
                "epochs_trained": self.epochs_trained, "epoch_losses": self.epoch_losses,
                "pending": self._pending}
        blob = np.frombuffer(json.dumps(meta).encode("utf-8"), np.uint8)
        with open(path, "wb") as fh:
            np.savez(fh, syn0=self.wv.vectors, syn1neg=self.syn1neg, counts=self.wv.counts, meta=blob)

    @classmethod
    def load(cls, path, *, backend=None):
        """Load a model written by :meth:`save` (``backend``: as the constructor's; it is not saved).

        Raises
        ------
        ValueError
            The file is not a saved fastgnn Word2Vec model.
        """
        try:
            with np.load(path, allow_pickle=False) as z:
                meta = json.loads(bytes(z["meta"]).decode("utf-8"))
                syn0, syn1, counts = z["syn0"], z["syn1neg"], z["counts"]
        except (KeyError, ValueError, OSError) as exc:
            if isinstance(exc, FileNotFoundError):
                raise
            raise ValueError(f"path: {path} is not a saved fastgnn Word2Vec model ({exc})") from exc
        if meta.get("format") != _FORMAT:
            raise ValueError(f"path: {path} is not a saved fastgnn Word2Vec model (format {meta.get('format')!r})")
        model = cls(**meta["params"], dtype=np.dtype(meta["dtype"]), backend=backend)
        model.wv = KeyedVectors(meta["keys"], np.ascontiguousarray(syn0), counts)
        model.syn1neg = np.ascontiguousarray(syn1)
        model.epochs_trained = int(meta["epochs_trained"])
        model.epoch_losses = [float(x) for x in meta["epoch_losses"]]
        model._pending = dict(meta.get("pending", {}))
        return model

    def __repr__(self) -> str:
        kind = "skip-gram" if self.sg else "CBOW"
        return f"Word2Vec({kind}, {len(self._wv)} words, {self.vector_size} dims)"


def _check_schedule(s):
    if s is None:
        return None
    if not callable(getattr(s, "lr_at", None)):
        raise TypeError(f"lr_schedule: expected an object with an lr_at(epoch) method, got {type(s).__name__}")
    return s
