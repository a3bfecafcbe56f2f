import pytest


def pytest_collection_modifyitems(config, items):
    # Under NUMBA_ENABLE_CUDASIM the device code runs on NumPy scalars, which warn on the 64-bit
    # wrap-around the counter-based hash relies on; on a GPU the same code wraps silently.
    mark = pytest.mark.filterwarnings("ignore:overflow encountered in scalar:RuntimeWarning")
    for item in items:
        if "tests/cuda/" in str(item.fspath).replace("\\", "/"):
            item.add_marker(mark)
