"""``asv_benchmarks/gpu_bench.py`` (the GPU figures of GPU_RESULTS.md) at its smoke sizes, so it never rots:
under the simulator here, on a real GPU when there is one. The full sizes run only by hand on a GPU."""
import importlib.util
import json
import os

import pytest

from fastgnn import backend

pytestmark = [
    pytest.mark.skipif(not backend.cuda_available(), reason=backend.cuda_status()[1]),
    pytest.mark.filterwarnings("ignore:overflow encountered in scalar:RuntimeWarning"),
]
HERE = os.path.dirname(os.path.abspath(__file__))


def _script():
    path = os.path.join(HERE, "..", "..", "asv_benchmarks", "gpu_bench.py")
    spec = importlib.util.spec_from_file_location("gpu_bench", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_gpu_bench_smoke(tmp_path, capsys):
    out = tmp_path / "rows.json"
    assert _script().main(["--smoke", "host", "copy", "dispatch", "infonce", "khop", "gcn", "grace", "inbatch",
                           "gemm", "--kernel-times",
                           "--json", str(out)]) == 0
    data = json.loads(out.read_text())
    assert data["failed"] == []
    cases = {r["case"] for r in data["rows"]}
    assert {"host", "copy", "dispatch", "infonce", "khop", "gcn", "grace", "inbatch", "gemm"} <= cases
    # a Trainer epoch is the difference of two fits (clipped at 0): at smoke sizes one fit each, so it may be 0
    assert all(r["median_ms"] >= 0 for r in data["rows"])
    assert all(r["median_ms"] > 0 for r in data["rows"] if "Trainer epoch" not in r["impl"])
    host = {r["impl"] for r in data["rows"] if r["case"] == "host"}
    assert {"launch, 1 array argument (arrays.fill)", "round trip: a launch, its result copied back"} <= host
    kernels = {r["impl"] for r in data["rows"] if r["impl"].startswith("kernel ")}
    assert "kernel autograd._matmul (2 epochs)" in kernels and "kernel optim.adam_flat_guarded (2 epochs)" in kernels
    infonce = {r["impl"] for r in data["rows"] if r["case"] == "infonce"}
    # the row-sparse call's own table: its grouping and its table pass
    assert {"kernel arrays._radix_scatter (one row-sparse call)",
            "kernel losses._table_grad_grouped (one row-sparse call)"} <= infonce
    assert sum(i.startswith("  part: arrays.sort_keys(ids, bound=N), warp chunks of") for i in infonce) == 4
    grace = {r["impl"] for r in data["rows"] if r["case"] == "grace"}
    assert "kernel graph._compact_arcs (2 epochs)" in grace  # the views are built on the device
    assert "check: loss cuda" in capsys.readouterr().out  # the answer was compared with the CPU backend


def test_gpu_bench_rejects_unknown_case():
    with pytest.raises(SystemExit):
        _script().main(["--smoke", "nope"])
