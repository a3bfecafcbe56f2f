"""DeepWalk quality on BlogCatalog: macro/micro-F1 at 50% training labels (the DeepWalk protocol).

Protocol (Perozzi et al. 2014): 10 walks of 80 nodes per node, window 10, dim 128; a one-vs-rest
logistic regression (``C`` = 1, scikit-learn's default, as DeepWalk's ``scoring.py``) on half of the
labelled nodes; each test node gets its true number of labels, the most probable ones
(``fastgnn.evaluate.node_classification``). Split ``s`` (a seed) seeds the walks, the training and the
split, so every seed is an independent repetition; the figures are mean ± std over the seeds.

With ``--gensim`` (needs gensim, e.g. ``../.venv-peers``) gensim's skip-gram is trained on the *same*
walks with the same hyper-parameters and scored on the same splits. ``--peer-time`` also times the
peer pipeline end to end (pecanpy walks + gensim, same hyper-parameters), once with the first seed, as
``benchmarks/word2vec.py`` does; the ratio is against the mean of fastgnn's end-to-end times.

Run from the repository root::

    nice .venv-peers/bin/python asv_benchmarks/quality_deepwalk.py --seeds 0 1 2 --gensim

Skips (exit status 0, one line on stdout) when ``../shared/datasets/blogcatalog`` is absent.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

_HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.normpath(os.path.join(_HERE, "..", "..", "shared", "datasets", "blogcatalog"))
#: fixed by the issue (the DeepWalk paper's settings)
FIXED = dict(walk_length=80, walks_per_node=10, window=10, vector_size=128)


def _parse(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--gensim", action="store_true", help="also score gensim trained on the same walks")
    p.add_argument("--peer-time", action="store_true",
                   help="also time pecanpy walks + gensim end to end (once, with the first seed)")
    p.add_argument("--data", default=DATA)
    p.add_argument("--C", type=float, default=1.0, help="logistic-regression C (protocol: 1.0)")
    # our defaults unless overridden (None = DeepWalk's default)
    for name, typ in (("epochs", int), ("negative", int), ("alpha", float), ("min_alpha", float),
                      ("ns_exponent", float), ("sample", float)):
        p.add_argument("--" + name.replace("_", "-"), dest=name, type=typ, default=None)
    p.add_argument("--no-shared-negatives", dest="shared_negatives", action="store_false", default=None)
    return p.parse_args(argv)


def _settings(args):
    """The training settings in force: DeepWalk's defaults, the fixed protocol, the overrides."""
    import inspect

    from fastgnn import DeepWalk, Word2Vec

    defaults = {k: v.default for k, v in inspect.signature(DeepWalk.__init__).parameters.items()
                if v.default is not inspect.Parameter.empty}
    w2v = {k: v.default for k, v in inspect.signature(Word2Vec.__init__).parameters.items()
           if v.default is not inspect.Parameter.empty}
    s = {k: defaults.get(k, w2v.get(k)) for k in ("epochs", "negative", "alpha", "min_alpha", "ns_exponent",
                                                  "sample", "shared_negatives")}
    for k in s:
        if getattr(args, k) is not None:
            s[k] = getattr(args, k)
    s.update(FIXED)
    return s


def _gensim_vectors(walks, n, s, seed, workers):
    from gensim.models import Word2Vec as GW

    sentences = [[str(v) for v in w[w >= 0]] for w in walks]
    t = time.perf_counter()
    m = GW(sentences, vector_size=s["vector_size"], window=s["window"], negative=s["negative"], sg=1, hs=0,
           min_count=0, epochs=s["epochs"], alpha=s["alpha"], min_alpha=s["min_alpha"],
           ns_exponent=s["ns_exponent"], sample=s["sample"], workers=workers, seed=seed)
    secs = time.perf_counter() - t
    return np.stack([m.wv[str(i)] for i in range(n)]), secs


def _peer_time(graph, s, seed, workers):
    from gensim.models import Word2Vec as GW
    from pecanpy import pecanpy

    pg = pecanpy.FirstOrderUnweighted(p=1.0, q=1.0, workers=workers, verbose=False, random_state=seed)
    pg.set_node_ids([str(i) for i in range(graph.num_nodes)])
    pg.indptr = np.asarray(graph.indptr).astype(np.uint32)
    pg.indices = np.asarray(graph.indices).astype(np.uint32)
    pg.data = np.ones(graph.num_arcs, np.float32)
    pg.simulate_walks(1, 2)  # compile outside the timing
    t = time.perf_counter()
    walks = pg.simulate_walks(s["walks_per_node"], s["walk_length"])
    GW(walks, vector_size=s["vector_size"], window=s["window"], negative=s["negative"], sg=1, min_count=0,
       epochs=s["epochs"], alpha=s["alpha"], min_alpha=s["min_alpha"], ns_exponent=s["ns_exponent"],
       sample=s["sample"], workers=workers, seed=seed)
    return time.perf_counter() - t


def _fmt(vals):
    a = np.asarray(vals, np.float64)
    sd = a.std(ddof=1) if a.size > 1 else 0.0
    return f"{a.mean():.4f} ± {sd:.4f}  [" + ", ".join(f"{v:.4f}" for v in a) + "]"


def main(argv=None):
    args = _parse(argv)
    if not os.path.isdir(args.data):
        print(f"SKIP: {args.data} not found (the BlogCatalog data set lives in ../shared)")
        return 0
    from fastgnn import DeepWalk
    from fastgnn.datasets import load, planted_partition
    from fastgnn.evaluate import node_classification

    ds = load(args.data)
    g, labels = ds.graph, ds.labels
    s = _settings(args)
    print("settings:", ", ".join(f"{k}={v}" for k, v in s.items()), f"| C={args.C}, workers={args.workers}")
    train_kw = {k: v for k, v in s.items()}
    # load the compiled kernels outside the timing
    DeepWalk(planted_partition(50, 2, 4.0, 0.8, seed=0).graph, walk_length=5, walks_per_node=1, vector_size=4,
             seed=0, workers=args.workers).fit()
    res = {"fastgnn": [], "fastgnn_micro": [], "gensim": [], "gensim_micro": [], "time": [], "gtime": [],
           "ptime": []}
    for seed in args.seeds:
        t = time.perf_counter()
        dw = DeepWalk(g, **train_kw, seed=seed, workers=args.workers, keep_walks=args.gensim)
        emb = dw.fit()
        res["time"].append(time.perf_counter() - t)
        r = node_classification(emb, labels, train_ratio=0.5, seed=seed, C=args.C)
        res["fastgnn"].append(r["macro_f1"])
        res["fastgnn_micro"].append(r["micro_f1"])
        line = (f"seed {seed}: fastgnn macro-F1 {r['macro_f1']:.4f} micro-F1 {r['micro_f1']:.4f} "
                f"(end to end {res['time'][-1]:.1f} s)")
        if args.gensim:
            gemb, gsec = _gensim_vectors(dw.walks, g.num_nodes, s, seed, args.workers)
            rg = node_classification(gemb, labels, train_ratio=0.5, seed=seed, C=args.C)
            res["gensim"].append(rg["macro_f1"])
            res["gensim_micro"].append(rg["micro_f1"])
            res["gtime"].append(gsec)
            line += f" | gensim same walks macro-F1 {rg['macro_f1']:.4f} micro-F1 {rg['micro_f1']:.4f} ({gsec:.1f} s)"
        if args.peer_time and seed == args.seeds[0]:
            res["ptime"].append(_peer_time(g, s, seed, args.workers))
            line += f" | pecanpy+gensim end to end {res['ptime'][-1]:.1f} s"
        print(line, flush=True)
    print(f"fastgnn macro-F1 {_fmt(res['fastgnn'])}")
    print(f"fastgnn micro-F1 {_fmt(res['fastgnn_micro'])}")
    print(f"fastgnn DeepWalk end to end (walks + training) {_fmt(res['time'])} s")
    if args.gensim:
        print(f"gensim (same walks) macro-F1 {_fmt(res['gensim'])}")
        print(f"gensim (same walks) micro-F1 {_fmt(res['gensim_micro'])}")
        print(f"gensim training only {_fmt(res['gtime'])} s")
    if args.peer_time:
        ratio = np.mean(res["ptime"]) / np.mean(res["time"])
        print(f"pecanpy walks + gensim end to end {_fmt(res['ptime'])} s; ratio {ratio:.2f}x")
    print(f"target macro-F1 >= 0.21: {'met' if np.mean(res['fastgnn']) >= 0.21 else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
