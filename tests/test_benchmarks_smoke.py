"""Run every asv benchmark once at a tiny size (FASTGNN_ASV_SMOKE=1) so the suite never rots."""
import importlib
import inspect
import os
import pkgutil
import sys
from pathlib import Path

import pytest

BENCH_DIR = Path(__file__).resolve().parents[1] / "asv_benchmarks"
os.environ.setdefault("FASTGNN_ASV_SMOKE", "1")
sys.path.insert(0, str(BENCH_DIR))


def _modules():
    import benchmarks

    return sorted(m.name for m in pkgutil.iter_modules(benchmarks.__path__) if not m.name.startswith("_"))


def _cases():
    for modname in _modules():
        mod = importlib.import_module(f"benchmarks.{modname}")
        for name, obj in vars(mod).items():
            if inspect.isclass(obj) and obj.__module__ == mod.__name__ and not name.startswith("_"):
                methods = [m for m in dir(obj) if m.startswith(("time_", "peakmem_", "track_", "mem_"))]
                if methods:
                    yield pytest.param(obj, methods, id=f"{modname}.{name}")


def test_smoke_mode_is_on():
    from benchmarks import _common

    assert _common.SMOKE


@pytest.mark.parametrize("cls,methods", list(_cases()))
def test_benchmark_runs_once(cls, methods):
    params = getattr(cls, "params", None)
    if params is None:
        combos = [()]
    else:
        if not isinstance(params, (list, tuple)) or not params or not isinstance(params[0], (list, tuple)):
            params = [params]
        combos = [tuple(next(iter(p)) for p in params)]  # first value of each parameter
    for args in combos:
        inst = cls()
        if hasattr(inst, "setup"):
            try:
                inst.setup(*args)
            except NotImplementedError as exc:
                pytest.skip(f"skipped by the benchmark itself: {exc}")
        for m in methods:
            getattr(inst, m)(*args)
        if hasattr(inst, "teardown"):
            inst.teardown(*args)
