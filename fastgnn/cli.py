"""The ``fastgnn`` command line (also ``python -m fastgnn``).

Subcommands: ``info`` (versions, threads, JIT cache, usable backends), ``demo`` (the main job on the
built-in planted-partition graph), ``stats`` (statistics of a data-set folder or edge list), plus those
registered by topic modules listed in ``_SUBCOMMAND_MODULES`` (each has ``register(subparsers)``).

User errors raise :class:`CLIError`: one line on stderr, exit status 2, no traceback.
"""
from __future__ import annotations

import argparse
import importlib
import os
import platform
import sys
import time

__all__ = ["CLIError", "main", "build_parser"]

# Topic modules that add their own subcommands: ``register(subparsers)``.
_SUBCOMMAND_MODULES: list[str] = ["fastgnn.cli_word2vec"]


class CLIError(Exception):
    """A user error: printed as one line on stderr, exit status 2."""


def _print_table(rows, out=None):
    out = sys.stdout if out is None else out
    width = max((len(str(k)) for k, _ in rows), default=0)
    for k, v in rows:
        print(f"  {str(k).ljust(width)}  {v}", file=out)


def backend_rows():
    """Rows ``(name, "usable"/"not usable", reason)`` for the backend table."""
    from . import backend

    rows = []
    for name, (ok, why) in backend.available_backends().items():
        rows.append((name, f"{'usable' if ok else 'not usable'} - {why}"))
    rows.append(("auto ->", backend.resolve("auto")))
    return rows


def cmd_info(args) -> int:
    import numba
    import numpy
    import scipy

    from . import __version__

    cache = numba.config.CACHE_DIR or "(beside each module, in __pycache__)"
    print("fastgnn", __version__)
    _print_table([
        ("python", platform.python_version()),
        ("numpy", numpy.__version__),
        ("scipy", scipy.__version__),
        ("numba", numba.__version__),
        ("numba-cuda", _version_of("numba-cuda")),
        ("threads", f"{numba.get_num_threads()} (NUMBA_NUM_THREADS to change)"),
        ("threading layer", numba.config.THREADING_LAYER),
        ("JIT cache", cache),
        ("FASTGNN_BACKEND", os.environ.get("FASTGNN_BACKEND", "(unset: auto)")),
        ("FASTGNN_CUDA_POOL", os.environ.get("FASTGNN_CUDA_POOL", "(unset: on)")),
    ])
    print("backends:")
    _print_table(backend_rows())
    return 0


def _version_of(dist):
    from importlib import metadata

    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def _print_summary(ds):
    rows = []
    for k, v in ds.summary().items():
        if isinstance(v, float):
            v = f"{v:.4g}"
        rows.append((k, v))
    _print_table(rows)


def cmd_demo(args) -> int:
    import numpy as np

    from . import datasets, evaluate
    from .trainer import Trainer

    t_start = time.perf_counter()
    ds = datasets.planted_partition(args.nodes, args.communities, args.degree, args.p_in, seed=args.seed)
    print(f"data set: {ds.name} (seed {args.seed})")
    _print_summary(ds)
    print("backends:")
    _print_table(backend_rows())
    train_graph, test_edges = evaluate.split_edges(ds.graph, test_frac=0.1, seed=args.seed)
    print(f"training on {train_graph.num_edges} edges ({len(test_edges)} held out for link prediction): "
          f"table model, dim {args.dim}, objectives infonce + local + spectral + reconstruction, "
          "negatives drawn by degree^0.75, default curriculum")
    trainer = Trainer("table", ("infonce", "local", "spectral", "reconstruction"), positives="neighbors",
                      dim=args.dim, lr=args.lr, weight_decay=0.0, curriculum="default", seed=args.seed)
    state = {"stage": None}

    def report(tr, rec):
        if rec["stage"] != state["stage"]:
            state["stage"] = rec["stage"]
            print(f"  epoch {rec['epoch']:3d}: stage '{rec['stage']}' - temperature {rec['temperature']}, "
                  f"{rec['num_negatives']} negatives, loss weights {rec['weights']}")
        if (rec["epoch"] + 1) % 20 == 0:
            parts = ", ".join(f"{k} {v:.4f}" for k, v in rec["losses"].items())
            print(f"  epoch {rec['epoch']:3d}: loss {rec['loss']:.4f} ({parts})")

    t0 = time.perf_counter()
    hist = trainer.fit(train_graph, epochs=args.epochs, callbacks=[report], progress=False)
    train_s = time.perf_counter() - t0
    Z = trainer.embed()
    cls = evaluate.node_classification(Z, ds.labels, train_ratio=0.5, seed=args.seed)
    auc = evaluate.link_prediction(Z, test_edges, seed=args.seed, graph=ds.graph)
    print(f"trained {len(hist)} epochs in {train_s:.1f} s (first call includes JIT compilation or cache load)")
    print(f"linear probe (logistic regression, 50% of nodes for training): accuracy {cls['accuracy']:.4f}, "
          f"macro-F1 {cls['macro_f1']:.4f}")
    print(f"link prediction on held-out edges: ROC AUC {auc:.4f}")
    np.save(args.output, Z)
    print(f"embeddings [{Z.shape[0]}, {Z.shape[1]}] written to {args.output}; total {time.perf_counter() - t_start:.1f} s")
    return 0


def _load_features(path):
    import numpy as np

    if not os.path.exists(path):
        raise CLIError(f"--features: no such file: {path!r}")
    if path.endswith(".npz"):
        import scipy.sparse as sp

        try:
            return sp.load_npz(path)
        except Exception as exc:
            raise CLIError(f"--features: {path!r} is not a scipy sparse .npz file ({exc})") from None
    try:
        return np.load(path, allow_pickle=False)
    except Exception as exc:
        raise CLIError(f"--features: {path!r} is not a .npy array ({exc})") from None


def _save_atomic(path, array):
    import tempfile

    import numpy as np

    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise CLIError(f"-o: folder {folder!r} does not exist")
    fd, tmp = tempfile.mkstemp(prefix=".emb-", suffix=".npy", dir=folder)
    try:
        with os.fdopen(fd, "wb") as fh:
            np.save(fh, array)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def cmd_train(args) -> int:
    from . import datasets
    from .graph import Graph
    from .trainer import OBJECTIVES, Trainer, TrainingDiverged

    if (args.data is None) == (args.edges is None):
        raise CLIError("train: give exactly one of --data DIR or --edges FILE")
    objectives = [o.strip() for o in args.objective.split(",") if o.strip()]
    for o in objectives:
        if o not in OBJECTIVES:
            raise CLIError(f"--objective: unknown objective {o!r}; choose from {', '.join(OBJECTIVES)}")
    try:
        if args.data is not None:
            ds = datasets.load(args.data)
        else:
            ds = datasets.Dataset(graph=Graph.read_edgelist(args.edges), name=os.path.basename(args.edges))
        features = _load_features(args.features) if args.features else ds.features
        positives = args.positives or ("neighbors" if args.model == "table" else "views")
        trainer = Trainer(args.model, objectives, positives=positives, dim=args.dim, hidden=args.hidden,
                          lr=args.lr, curriculum="default" if args.curriculum else None, seed=args.seed)
        hist = trainer.fit(ds.graph, epochs=args.epochs, features=features, progress=args.progress or None)
        Z = trainer.embed(ds.graph, features)
    except (FileNotFoundError, ValueError, TypeError, TrainingDiverged) as exc:
        raise CLIError(str(exc)) from None
    _save_atomic(args.output, Z)
    print(f"trained {len(hist)} epochs; final loss {hist['loss'][-1]:.4f}; embeddings {Z.shape} written to {args.output}")
    if args.eval:
        from . import evaluate

        if ds.labels is None:
            raise CLIError("--eval: the data set has no labels.tsv")
        split = ds.split or {}
        res = evaluate.node_classification(Z, ds.labels, train_idx=split.get("train"), test_idx=split.get("test"),
                                           seed=args.seed)
        print(f"linear probe: accuracy {res['accuracy']:.4f}, micro-F1 {res['micro_f1']:.4f}, "
              f"macro-F1 {res['macro_f1']:.4f} ({res['num_train']} train / {res['num_test']} test nodes)")
    return 0


def cmd_stats(args) -> int:
    from . import datasets
    from .graph import Graph

    if (args.data is None) == (args.edges is None):
        raise CLIError("stats: give exactly one of --data DIR or --edges FILE")
    try:
        if args.data is not None:
            ds = datasets.load(args.data)
        else:
            ds = datasets.Dataset(graph=Graph.read_edgelist(args.edges), name=os.path.basename(args.edges))
    except (FileNotFoundError, ValueError) as exc:
        raise CLIError(str(exc)) from None
    _print_summary(ds)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fastgnn", description="Fast node, GNN-latent and word embeddings.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser("info", help="versions, threads, JIT cache and usable backends")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("demo", help="the main job: train embeddings of the built-in planted-partition graph")
    p.add_argument("--nodes", type=int, default=3000)
    p.add_argument("--communities", type=int, default=10)
    p.add_argument("--degree", type=float, default=10.0, help="average degree")
    p.add_argument("--p-in", type=float, default=0.8, dest="p_in", help="share of edges inside communities")
    p.add_argument("--dim", type=int, default=32)
    p.add_argument("--epochs", type=int, default=None, help="default: the curriculum's 60 epochs")
    p.add_argument("--lr", type=float, default=0.05)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("-o", "--output", default="fastgnn_demo_embeddings.npy", help="where the embeddings (.npy) go")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("train", help="train node embeddings (GNN encoder or embedding table)")
    p.add_argument("--data", help="folder in the shared format (edges.tsv, labels.tsv, features.npz, ...)")
    p.add_argument("--edges", help="edge-list file (u v [w] per line)")
    p.add_argument("--features", help="node features: .npy (dense) or .npz (scipy sparse)")
    p.add_argument("--model", choices=["gcn", "sage", "gat", "table"], default="gcn")
    p.add_argument("--objective", default="infonce", help="comma-separated: infonce,local,spectral,reconstruction")
    p.add_argument("--positives", choices=["neighbors", "views"], default=None,
                   help="default: views for GNN encoders, neighbors for the table")
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--dim", type=int, default=128)
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--curriculum", action="store_true", help="use the default Easy/Medium/Hard curriculum")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--progress", action="store_true", help="force a progress bar")
    p.add_argument("--eval", action="store_true", help="linear-probe evaluation when labels exist")
    p.add_argument("-o", "--output", required=True, help="embeddings (.npy)")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("stats", help="statistics of a data-set folder or an edge list")
    p.add_argument("--data", help="folder in the shared format (edges.tsv, labels.tsv, ...)")
    p.add_argument("--edges", help="edge-list file (u v [w] per line)")
    p.set_defaults(func=cmd_stats)

    for modname in _SUBCOMMAND_MODULES:
        importlib.import_module(modname).register(sub)
    return parser


def main(argv=None) -> int:
    """Run the command line; returns the exit status (0 success, 2 user error)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse already printed its message
        return int(exc.code or 0)
    try:
        return int(args.func(args) or 0)
    except CLIError as exc:
        print(f"fastgnn: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("fastgnn: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
