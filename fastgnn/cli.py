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
_SUBCOMMAND_MODULES: list[str] = []


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

    from . import datasets
    from .graph import spmm

    t0 = time.perf_counter()
    ds = datasets.planted_partition(args.nodes, args.communities, args.degree, args.p_in, seed=args.seed)
    print(f"data set: {ds.name} (seed {args.seed}), built in {time.perf_counter() - t0:.2f} s")
    _print_summary(ds)
    print("backends:")
    _print_table(backend_rows())
    # One propagation step of the kernel every encoder uses, as a live check of the compiled path.
    rng = np.random.default_rng(args.seed)
    X = rng.standard_normal((ds.num_nodes, args.dim)).astype(np.float32)
    t0 = time.perf_counter()
    Y = spmm(ds.graph, X, norm="sym")
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    spmm(ds.graph, X, norm="sym", out=Y)
    warm = time.perf_counter() - t0
    print(f"spmm (D^-1/2 A D^-1/2 X, D={args.dim}): first call {first:.3f} s (includes JIT or cache load), "
          f"then {warm * 1e3:.2f} ms")
    if args.output:
        ds.graph.save(args.output)
        print(f"graph written to {args.output}")
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

    p = sub.add_parser("demo", help="the main job on the built-in planted-partition graph")
    p.add_argument("--nodes", type=int, default=10_000)
    p.add_argument("--communities", type=int, default=10)
    p.add_argument("--degree", type=float, default=20.0, help="average degree")
    p.add_argument("--p-in", type=float, default=0.9, dest="p_in", help="share of edges inside communities")
    p.add_argument("--dim", type=int, default=64)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("-o", "--output", help="write the graph (.npz) here")
    p.set_defaults(func=cmd_demo)

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
