import subprocess
import sys


from fastgnn.cli import main


def test_info(capsys):
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    for word in ("numba", "threads", "JIT cache", "cpu", "cuda", "auto ->"):
        assert word in out


def test_demo_small(capsys, tmp_path):
    import numpy as np

    path = tmp_path / "emb.npy"
    assert main(["demo", "--nodes", "300", "--communities", "3", "--degree", "8", "--dim", "8", "--epochs", "12",
                 "-o", str(path)]) == 0
    out = capsys.readouterr().out
    for text in ("nodes", "300", "edge homophily", "auto ->", "stage 'easy'", "stage 'medium'",
                 "linear probe", "ROC AUC"):
        assert text in out, text
    Z = np.load(path)
    assert Z.shape == (300, 8) and np.isfinite(Z).all()


def test_stats_and_errors(capsys, tmp_path):
    p = tmp_path / "e.txt"
    p.write_text("0 1\n1 2\n")
    assert main(["stats", "--edges", str(p)]) == 0
    assert "edges" in capsys.readouterr().out
    assert main(["stats", "--edges", str(tmp_path / "missing.txt")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("fastgnn: error:") and "no such edge-list file" in err and "Traceback" not in err
    bad = tmp_path / "bad.txt"
    bad.write_text("0 1\nzz\n")
    assert main(["stats", "--edges", str(bad)]) == 2
    assert "line 2" in capsys.readouterr().err
    assert main(["stats"]) == 2
    assert main(["no-such-command"]) == 2


def test_module_entry_point():
    out = subprocess.run([sys.executable, "-m", "fastgnn", "info"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "backends" in out.stdout
