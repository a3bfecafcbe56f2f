"""The quality scripts in asv_benchmarks/: their probe and their clean skip where ../shared is absent."""
import importlib.util
import os

import numpy as np
import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
BENCH = os.path.join(HERE, "..", "asv_benchmarks")


def _load(name):
    spec = importlib.util.spec_from_file_location(name, os.path.join(BENCH, f"{name}.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_trainer_quality_skips_without_shared(monkeypatch, capsys):
    mod = _load("quality_trainer")
    monkeypatch.setattr(mod, "SHARED", os.path.join(HERE, "no-such-folder"))
    assert mod.main(["--seeds", "0"]) == 0
    assert capsys.readouterr().out.startswith("SKIP")


def test_deepwalk_quality_skips_without_data(capsys, tmp_path):
    mod = _load("quality_deepwalk")
    assert mod.main(["--data", str(tmp_path / "absent")]) == 0
    assert capsys.readouterr().out.startswith("SKIP")


def test_probe_selects_on_validation_and_reports_test():
    pytest.importorskip("sklearn")
    mod = _load("quality_trainer")
    rng = np.random.default_rng(0)
    n = 300
    labels = rng.integers(0, 3, n)
    Z = rng.normal(size=(n, 8))
    Z[:, 0] += 4.0 * labels  # separable along one axis
    perm = rng.permutation(n)
    split = {"train": np.sort(perm[:60]), "val": np.sort(perm[60:120]), "test": np.sort(perm[120:])}
    acc, val, scaling, C = mod.probe(Z, labels, split)
    assert acc > 0.9 and val > 0.9
    assert scaling in ("raw", "l2", "std") and C in mod.CS
    # pure noise: the same probe is near chance
    acc0, *_ = mod.probe(rng.normal(size=(n, 8)), labels, split)
    assert acc0 < 0.6


def test_compare_peers_runs_small_cases():
    # the head-to-head script on the asv smoke sizes: a ratio line (or SKIP without the peer) per case
    import subprocess
    import sys

    env = dict(os.environ, FASTGNN_ASV_SMOKE="1")
    out = subprocess.run([sys.executable, os.path.join(BENCH, "compare_peers.py"), "khop-2", "miner",
                          "optim-adam-raise", "--rounds", "2", "--peakmem"], capture_output=True, text=True,
                         env=env, timeout=600)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    for case in ("khop-2", "miner", "optim-adam-raise"):
        mine = [ln for ln in lines if ln.startswith(case + ":")]
        assert mine and ("ratio" in mine[0] or "SKIP" in mine[0]), out.stdout
