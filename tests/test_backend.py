import subprocess
import sys

import pytest

import fastgnn
from fastgnn import backend
from fastgnn.backend import BackendUnavailableError


@pytest.fixture(autouse=True)
def clean_backend(monkeypatch):
    monkeypatch.delenv("FASTGNN_BACKEND", raising=False)
    backend.set_backend(None)
    yield
    backend.set_backend(None)


def test_cpu_always_resolves():
    assert backend.resolve("cpu") == "cpu"
    assert backend.resolve("CPU") == "cpu"


def test_precedence(monkeypatch):
    monkeypatch.setenv("FASTGNN_BACKEND", "cpu")
    assert backend.get_backend() == "cpu"
    backend.set_backend("auto")
    assert backend.get_backend() == "auto"
    with backend.use_backend("cpu"):
        assert backend.get_backend() == "cpu"
        with backend.use_backend("auto"):
            assert backend.get_backend() == "auto"
        assert backend.get_backend() == "cpu"
    assert backend.get_backend() == "auto"
    # an explicit argument wins over everything
    with backend.use_backend("auto"):
        assert backend.resolve("cpu") == "cpu"


def test_unknown_names(monkeypatch):
    with pytest.raises(ValueError, match="backend: unknown backend 'tpu'"):
        backend.resolve("tpu")
    with pytest.raises(ValueError, match="backend"):
        backend.set_backend("gpu")
    with pytest.raises(ValueError, match="backend"):
        with backend.use_backend("metal"):
            pass
    with pytest.raises(TypeError, match="backend"):
        backend.resolve(3)
    monkeypatch.setenv("FASTGNN_BACKEND", "rocm")
    with pytest.raises(ValueError, match="FASTGNN_BACKEND: unknown backend 'rocm'"):
        backend.resolve()


def test_cuda_request_without_gpu_is_a_clear_error():
    ok, why = backend.cuda_status()
    if ok:
        pytest.skip(f"CUDA is usable here ({why})")
    with pytest.raises(BackendUnavailableError, match="backend 'cuda' is not usable: .*(numba-cuda|driver|device)"):
        backend.resolve("cuda")
    # auto never falls back silently to something unusable
    assert backend.resolve("auto") == "cpu"


def test_cuda_status_reasons(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "numba_cuda" else real(name, *a))
    ok, why = backend.cuda_status(refresh=True)
    assert not ok and "numba-cuda is not installed" in why
    with pytest.raises(BackendUnavailableError, match="numba-cuda is not installed"):
        backend.resolve("cuda")
    monkeypatch.undo()
    backend.cuda_status(refresh=True)


def test_available_backends_table():
    table = backend.available_backends()
    assert table["cpu"][0] is True
    assert set(table) == {"cpu", "cuda"}


def test_import_is_light_and_compiles_nothing():
    code = (
        "import sys, time; t = time.perf_counter(); import fastgnn; dt = time.perf_counter() - t; "
        "print(dt); assert 'numba' not in sys.modules, 'numba imported'; "
        "assert 'scipy' not in sys.modules, 'scipy imported'; fastgnn.Graph; fastgnn.use_backend"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr


def test_lazy_public_names():
    assert fastgnn.spmm is fastgnn.graph.spmm
    assert fastgnn.datasets.planted_partition is not None
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        fastgnn.nope


def test_auto_resolution_is_memoised_until_refresh(monkeypatch):
    import importlib.util

    backend.cuda_status(refresh=True)
    first = backend.resolve("auto")
    calls = []
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: calls.append(name) or real(name, *a))
    assert backend.resolve("auto") == first and calls == []  # no probing on the hot path
    backend.cuda_status(refresh=True)
    assert backend.resolve("auto") == first and "numba_cuda" in calls


def test_use_backend_is_per_thread():
    import threading

    seen = []
    with backend.use_backend("cpu"):
        t = threading.Thread(target=lambda: seen.append(backend.get_backend()))
        t.start()
        t.join()
        assert backend.get_backend() == "cpu"
    assert seen == ["auto"]
