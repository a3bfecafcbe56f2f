import pytest


def pytest_collection_modifyitems(config, items):
    # Under NUMBA_ENABLE_CUDASIM the device code runs on NumPy scalars, which warn on the 64-bit
    # wrap-around the counter-based hash relies on; on a GPU the same code wraps silently.
    mark = pytest.mark.filterwarnings("ignore:overflow encountered in scalar:RuntimeWarning")
    for item in items:
        if "tests/cuda/" in str(item.fspath).replace("\\", "/"):
            item.add_marker(mark)


@pytest.fixture
def small_blocks(monkeypatch):
    """Small blocks in the device-input tests, so that their tiny inputs still span several blocks."""
    from fastgnn.kernels.cuda import arrays as ka
    from fastgnn.kernels.cuda import losses as kl
    from fastgnn.kernels.cuda import mining as km
    from fastgnn.kernels.cuda import optim as ko
    from fastgnn.kernels.cuda import walks as kw

    monkeypatch.setattr(kl, "THREADS", 4)
    monkeypatch.setattr(kl, "TILE", (4, 2))
    monkeypatch.setattr(ka, "THREADS", 4)
    monkeypatch.setattr(kw, "_THREADS", 4)
    monkeypatch.setattr(km, "_THREADS", 2)
    monkeypatch.setattr(ko, "_ROW_TY", 2)  # rows per block of the row-sparse optimizer kernels
