"""Shared helpers for the asv suite.

``FASTGNN_ASV_SMOKE=1`` (set by the smoke test run from ``make test``) shrinks every size so the whole
suite executes once in seconds and never rots; asv itself runs the full sizes.
"""
import os

SMOKE = os.environ.get("FASTGNN_ASV_SMOKE", "0") not in ("", "0")


def size(full, smoke):
    """``full`` normally, ``smoke`` under FASTGNN_ASV_SMOKE."""
    return smoke if SMOKE else full


def require(module):
    """Import an optional peer or skip the benchmark (asv skips a case whose setup raises NotImplementedError)."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise NotImplementedError(f"peer {module!r} not installed") from exc
