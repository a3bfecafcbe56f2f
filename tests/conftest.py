import os
from pathlib import Path

import numpy as np
import pytest

SHARED_DATASETS = Path(__file__).resolve().parents[1].parent / "shared" / "datasets"


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


@pytest.fixture
def one_thread():
    """Run the test with one numba thread (for bit-reproducibility checks of Hogwild kernels)."""
    import numba

    before = numba.get_num_threads()
    numba.set_num_threads(1)
    yield
    numba.set_num_threads(before)


@pytest.fixture
def shared_datasets():
    """The evaluation data sets in ../shared/datasets; the test skips where that folder is absent."""
    if not SHARED_DATASETS.is_dir():
        pytest.skip("../shared/datasets is not present on this machine")
    return SHARED_DATASETS


def pytest_collection_modifyitems(config, items):
    # CUDA twins run in their own process with NUMBA_ENABLE_CUDASIM=1 (see Makefile); in a normal run
    # the simulator is off, so they are skipped with a reason rather than silently dropped.
    if os.environ.get("NUMBA_ENABLE_CUDASIM", "0") in ("", "0"):
        skip = pytest.mark.skip(reason="CUDA tests run in a separate process under NUMBA_ENABLE_CUDASIM=1 (make test)")
        for item in items:
            if "tests/cuda/" in str(item.fspath).replace(os.sep, "/"):
                try:
                    from numba import cuda

                    if cuda.is_available():
                        continue  # a real GPU: run them here too
                except Exception:
                    pass
                item.add_marker(skip)
