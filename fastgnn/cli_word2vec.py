"""``fastgnn word2vec ...`` and ``fastgnn deepwalk ...`` subcommands (registered by :mod:`fastgnn.cli`).

- ``word2vec train CORPUS -o VECTORS``: one sentence per line, whitespace-separated tokens.
- ``word2vec similar VECTORS WORD [-k]``, ``word2vec analogy VECTORS A B C [-k]``.
- ``word2vec evaluate VECTORS [--analogies F] [--pairs F]``.
- ``deepwalk EDGES -o EMB [--p --q --walks --length --dim --window --labels F]``.

``train`` and ``deepwalk`` take ``--backend cpu|cuda|auto`` (:mod:`fastgnn.backend`).

User errors (missing or empty file, unknown word, empty vocabulary) raise ``CLIError``: one line on
stderr, exit status 2.
"""
from __future__ import annotations

import os
import sys
import time

__all__ = ["register"]

_MAX_WORDS = 10000  # longer lines are cut into sentences of this many tokens (as gensim's LineSentence)


def _error(msg):
    from .cli import CLIError

    return CLIError(msg)


def _need_file(path, what):
    if not os.path.isfile(path):
        raise _error(f"{what}: no such file: {path}")
    if os.path.getsize(path) == 0:
        raise _error(f"{what}: file is empty: {path}")


def _read_corpus(path):
    _need_file(path, "corpus")
    sentences = []
    with open(path, encoding="utf-8", errors="replace") as fh:
        for line in fh:
            toks = line.split()
            for i in range(0, len(toks), _MAX_WORDS):
                sentences.append(toks[i:i + _MAX_WORDS])
    if not any(sentences):
        raise _error(f"corpus: no tokens in {path}")
    return sentences


def _load_vectors(path):
    from .io import load_word2vec_format

    _need_file(path, "vectors")
    try:
        return load_word2vec_format(path, binary=None)
    except (ValueError, UnicodeDecodeError) as exc:
        raise _error(f"vectors: {exc}") from None


def _check_words(kv, words):
    for w in words:
        if w not in kv:
            raise _error(f"word {w!r} is not in the vocabulary ({len(kv)} words)")


def _positive(name):
    def parse(text):
        import argparse

        try:
            v = float(text) if name == "float" else int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a positive {name}, got {text!r}") from None
        if v <= 0:
            raise argparse.ArgumentTypeError(f"expected a positive {name}, got {text!r}")
        return v

    return parse


def _on_backend(fn, *args):
    """Run ``fn``; a backend that cannot be used here is a user error (one line, exit status 2)."""
    from .backend import BackendUnavailableError

    try:
        return fn(*args)
    except BackendUnavailableError as exc:
        raise _error(str(exc)) from None


# ---------------------------------------------------------------------------- commands
def cmd_train(args) -> int:
    from .word2vec import Word2Vec

    sentences = _read_corpus(args.corpus)
    out_dir = os.path.dirname(os.path.abspath(args.output))
    if not os.path.isdir(out_dir):
        raise _error(f"output: directory does not exist: {out_dir}")
    try:
        model = Word2Vec(vector_size=args.dim, window=args.window, negative=args.negative, epochs=args.epochs,
                         min_count=args.min_count, workers=args.workers, seed=args.seed, sg=args.sg,
                         sample=args.sample, alpha=args.alpha, shared_negatives=args.shared_negatives,
                         progress=(not args.quiet and sys.stderr.isatty()) if args.progress is None else args.progress,
                         backend=args.backend)
        model.build_vocab(sentences)
    except (ValueError, TypeError) as exc:
        raise _error(str(exc)) from None
    t0 = time.perf_counter()
    effective, raw = _on_backend(model.train, sentences)
    elapsed = time.perf_counter() - t0
    model.wv.save_word2vec_format(args.output, binary=args.binary)
    if args.save_model:
        model.save(args.save_model)
    if not args.quiet:
        print(f"{len(model.wv)} words x {model.vector_size} dims -> {args.output}; {effective:,} effective words "
              f"in {elapsed:.2f} s ({effective / max(elapsed, 1e-9):,.0f} words/s), "
              f"final epoch loss {model.get_latest_training_loss():.6g}")
    return 0


def cmd_similar(args) -> int:
    kv = _load_vectors(args.vectors)
    _check_words(kv, [args.word])
    for word, score in kv.most_similar(args.word, topn=args.k):
        print(f"{word}\t{score:.4f}")
    return 0


def cmd_analogy(args) -> int:
    kv = _load_vectors(args.vectors)
    _check_words(kv, [args.a, args.b, args.c])
    for word, score in kv.analogy(args.a, args.b, args.c, topn=args.k, method=args.method):
        print(f"{word}\t{score:.4f}")
    return 0


def cmd_evaluate(args) -> int:
    from .evaluate import word_analogies, word_pairs

    if not args.analogies and not args.pairs:
        raise _error("evaluate: give --analogies FILE and/or --pairs FILE")
    kv = _load_vectors(args.vectors)
    try:
        if args.analogies:
            _need_file(args.analogies, "analogies")
            score, sections = word_analogies(kv, args.analogies, restrict_vocab=args.restrict_vocab)
            for s in sections:
                n = s["correct"] + s["incorrect"]
                acc = s["correct"] / n if n else 0.0
                print(f"analogies\t{s['section']}\t{acc:.4f}\t({s['correct']}/{n}, {s['skipped']} skipped)")
        if args.pairs:
            _need_file(args.pairs, "pairs")
            pearson, spearman, oov = word_pairs(kv, args.pairs, restrict_vocab=args.restrict_vocab)
            print(f"pairs\tspearman\t{spearman[0]:.4f}\tpearson\t{pearson[0]:.4f}\toov\t{oov:.1f}%")
    except ValueError as exc:
        raise _error(str(exc)) from None
    return 0


def _read_labels(path, n):
    import numpy as np

    _need_file(path, "labels")
    pairs = []
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            text = line.strip()
            if not text or text.startswith("#"):
                continue
            parts = text.split()
            try:
                node, lab = int(parts[0]), int(parts[1])
            except (ValueError, IndexError):
                raise _error(f"labels: line {lineno} of {path} is not 'node<TAB>class': {text!r}") from None
            if not (0 <= node < n) or lab < 0:
                raise _error(f"labels: line {lineno} of {path}: node {node} / class {lab} out of range "
                             f"(graph has {n} nodes)")
            pairs.append((node, lab))
    if not pairs:
        raise _error(f"labels: no labels in {path}")
    arr = np.asarray(pairs, np.int64)
    ncls = int(arr[:, 1].max()) + 1
    if np.unique(arr[:, 0]).size < arr.shape[0]:  # a node listed twice: multi-label
        y = np.zeros((n, ncls), np.int8)
        y[arr[:, 0], arr[:, 1]] = 1
        return y
    y = np.full(n, -1, np.int64)
    y[arr[:, 0]] = arr[:, 1]
    return y


def cmd_deepwalk(args) -> int:
    from .graph import Graph
    from .io import save_word2vec_format
    from .word2vec import Node2Vec

    _need_file(args.edges, "edges")
    try:
        graph = Graph.read_edgelist(args.edges)
    except ValueError as exc:
        raise _error(f"edges: {exc}") from None
    if graph.num_edges == 0:
        raise _error(f"edges: no edges in {args.edges}")
    labels = _read_labels(args.labels, graph.num_nodes) if args.labels else None
    t0 = time.perf_counter()
    try:
        model = Node2Vec(graph, p=args.p, q=args.q, walk_length=args.length, walks_per_node=args.walks,
                         vector_size=args.dim, window=args.window,
                         workers=args.workers, seed=args.seed, backend=args.backend,
                         **{k: v for k, v in (("epochs", args.epochs), ("negative", args.negative)) if v is not None})
    except (ValueError, TypeError) as exc:
        raise _error(str(exc)) from None
    emb = _on_backend(model.fit)
    elapsed = time.perf_counter() - t0
    save_word2vec_format(args.output, range(graph.num_nodes), emb, binary=args.binary)
    print(f"{graph.num_nodes} nodes x {emb.shape[1]} dims -> {args.output} ({elapsed:.2f} s, walks + training)")
    if labels is not None:
        from .evaluate import node_classification

        try:
            res = node_classification(emb, labels, train_ratio=args.train_ratio, seed=args.seed)
        except ValueError as exc:
            raise _error(str(exc)) from None
        print(f"node classification ({res['num_train']} train / {res['num_test']} test): "
              f"micro-F1 {res['micro_f1']:.4f}  macro-F1 {res['macro_f1']:.4f}  accuracy {res['accuracy']:.4f}")
    return 0


# ---------------------------------------------------------------------------- parser
def register(subparsers) -> None:
    """Add the ``word2vec`` (train / similar / analogy / evaluate) and ``deepwalk`` subcommands.

    Parameters
    ----------
    subparsers : argparse._SubParsersAction
        From ``parser.add_subparsers()``; each command sets ``func(args) -> int``.

    Examples
    --------
    >>> import argparse
    >>> p = argparse.ArgumentParser(); register(p.add_subparsers())
    """
    pos_int, pos_float = _positive("integer"), _positive("float")
    w2v = subparsers.add_parser("word2vec", help="train and query word vectors (skip-gram / CBOW)")
    sub = w2v.add_subparsers(dest="word2vec_command", metavar="ACTION")
    sub.required = True

    t = sub.add_parser("train", help="train on a text file (one sentence per line)")
    t.add_argument("corpus")
    t.add_argument("-o", "--output", required=True, help="vectors file (word2vec format)")
    mode = t.add_mutually_exclusive_group()
    mode.add_argument("--sg", dest="sg", action="store_const", const=1, help="skip-gram (default)")
    mode.add_argument("--cbow", dest="sg", action="store_const", const=0, help="CBOW (mean of the context)")
    t.set_defaults(sg=1)
    t.add_argument("--dim", type=pos_int, default=100)
    t.add_argument("--window", type=pos_int, default=5)
    t.add_argument("--negative", type=pos_int, default=5)
    t.add_argument("--epochs", type=pos_int, default=5)
    t.add_argument("--min-count", dest="min_count", type=pos_int, default=5)
    t.add_argument("--sample", type=float, default=1e-3)
    t.add_argument("--alpha", type=pos_float, default=0.025)
    t.add_argument("--workers", type=pos_int, default=os.cpu_count() or 1)
    t.add_argument("--seed", type=int, default=1)
    t.add_argument("--shared-negatives", dest="shared_negatives", action="store_true",
                   help="skip-gram: one set of noise words per window (faster)")
    t.add_argument("--binary", action="store_true", help="write the binary format")
    t.add_argument("--save-model", dest="save_model", help="also save the whole model (.npz) here")
    t.add_argument("--progress", dest="progress", action="store_true", default=None,
                   help="per-epoch progress (default: when stderr is a terminal)")
    t.add_argument("-q", "--quiet", action="store_true")
    _backend_option(t)
    t.set_defaults(func=cmd_train)

    s = sub.add_parser("similar", help="nearest words by cosine similarity")
    s.add_argument("vectors")
    s.add_argument("word")
    s.add_argument("-k", type=pos_int, default=10)
    s.set_defaults(func=cmd_similar)

    a = sub.add_parser("analogy", help="A is to B as C is to ? (B - A + C)")
    a.add_argument("vectors")
    a.add_argument("a")
    a.add_argument("b")
    a.add_argument("c")
    a.add_argument("-k", type=pos_int, default=5)
    a.add_argument("--method", choices=("add", "mul"), default="add")
    a.set_defaults(func=cmd_analogy)

    e = sub.add_parser("evaluate", help="analogy accuracy and word-pair correlation")
    e.add_argument("vectors")
    e.add_argument("--analogies", help="questions-words file")
    e.add_argument("--pairs", help="WordSim-353 style file (w1<TAB>w2<TAB>score)")
    e.add_argument("--restrict-vocab", dest="restrict_vocab", type=pos_int, default=300000)
    e.set_defaults(func=cmd_evaluate)

    d = subparsers.add_parser("deepwalk", help="DeepWalk / node2vec embeddings of an edge list")
    d.add_argument("edges", help="edge list: 'u v' or 'u v w' per line")
    d.add_argument("-o", "--output", required=True, help="embeddings (word2vec text format, keys = node ids)")
    d.add_argument("--p", type=pos_float, default=1.0, help="node2vec return parameter")
    d.add_argument("--q", type=pos_float, default=1.0, help="node2vec in-out parameter")
    d.add_argument("--walks", type=pos_int, default=10, help="walks per node")
    d.add_argument("--length", type=pos_int, default=80, help="nodes per walk")
    d.add_argument("--dim", type=pos_int, default=128)
    d.add_argument("--window", type=pos_int, default=10)
    d.add_argument("--negative", type=pos_int, default=None, help="noise nodes per pair (default: DeepWalk's)")
    d.add_argument("--epochs", type=pos_int, default=None, help="passes over the walks (default: DeepWalk's)")
    d.add_argument("--workers", type=pos_int, default=os.cpu_count() or 1)
    d.add_argument("--seed", type=int, default=0)
    d.add_argument("--binary", action="store_true")
    d.add_argument("--labels", help="node<TAB>class file: print node-classification scores")
    d.add_argument("--train-ratio", dest="train_ratio", type=float, default=0.5)
    _backend_option(d)
    d.set_defaults(func=cmd_deepwalk)


def _backend_option(parser):
    parser.add_argument("--backend", choices=("cpu", "cuda", "auto"), default=None,
                        help="where training runs (default: FASTGNN_BACKEND, else auto)")
