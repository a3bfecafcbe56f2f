"""The stream-ordered memory pool (on by default, ``FASTGNN_CUDA_POOL=0`` off) on a real GPU.

The memory manager is fixed when a process opens its CUDA context, so each case runs in a fresh Python process:
one with the pool, one without. Both train the same GRACE GCN and the same device-resident table for a few
epochs; the pool must serve the allocations and change no number that deterministic kernels compute. Skipped
under the simulator (it has no device memory) and without a GPU; the plugin's logic is also tested against a fake
driver in ``tests/test_cuda_pool.py``.
"""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from fastgnn import backend as fb

pytestmark = pytest.mark.skipif(fb.simulator_enabled() or not fb.cuda_available(),
                                reason="needs a real GPU (the simulator has no device memory to pool)")

SCRIPT = r"""
import json, sys
import numpy as np
from numba import cuda
from fastgnn import backend as fb, datasets
from fastgnn.trainer import Trainer

ok, why = fb.cuda_status()
assert ok, why
ds = datasets.planted_partition(600, 6, 8.0, 0.8, seed=3)
X = np.random.default_rng(0).standard_normal((600, 16)).astype(np.float32)
runs = {}
for model, kw in (("gcn", dict(positives="views")), ("table", dict(positives="neighbors", num_negatives=4))):
    tr = Trainer(model, ("infonce",), backend="cuda", dim=8, seed=1, **kw)
    h = tr.fit(ds.graph, epochs=4, features=X if model != "table" else None)
    runs[model] = [r["loss"] for r in h.epochs]
# Allocation churn outside the Trainer: temporaries freed and reused in stream order.
a = cuda.to_device(np.arange(1 << 20, dtype=np.float32))
for _ in range(50):
    b = cuda.device_array_like(a)
    b.copy_to_device(a)
    a = b
assert np.array_equal(a.copy_to_host(), np.arange(1 << 20, dtype=np.float32))
print(json.dumps({"status": why, "pool": fb.cuda_pool_info(), "runs": runs}))
"""


def _run(pool):
    env = dict(os.environ, FASTGNN_CUDA_POOL="1" if pool else "0", FASTGNN_BACKEND="cuda")
    env.pop("NUMBA_CUDA_MEMORY_MANAGER", None)
    out = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_pool_serves_the_allocations_and_changes_no_number():
    on, off = _run(True), _run(False)
    assert on["pool"]["requested"] and on["pool"]["active"], on["pool"]
    assert "memory pool on" in on["status"]
    assert on["pool"]["pool_allocations"] > 50 and on["pool"]["driver_allocations"] == 0
    assert on["pool"]["used_high_bytes"] >= 4 << 20
    assert on["pool"]["reserved_bytes"] >= on["pool"]["used_bytes"]
    assert not off["pool"]["active"] and "memory pool" not in off["status"]
    # GRACE's GCN runs deterministic kernels only: the same bits either way. The table's negatives add into its
    # gradient by atomics (rows collide), whose order a GPU does not fix from run to run: close, not equal.
    assert on["runs"]["gcn"] == off["runs"]["gcn"]
    np.testing.assert_allclose(on["runs"]["table"], off["runs"]["table"], rtol=1e-5)
