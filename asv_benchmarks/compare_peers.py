"""Interleaved head-to-head timing of an asv class and its peer class, ratio from the same run.

    python asv_benchmarks/compare_peers.py CASE [CASE ...] [--rounds 7] [--peakmem]

Cases (each names a fastgnn class and its peer in ``benchmarks/``, with the asv parameters):

    khop-2, khop-3                      k_hop vs the scipy sparse-product recipe (10k sources, 200k nodes / 2M edges)
    miner                               HardNegativeMiner("hardest") vs blocked torch mm + topk (4096 x 1M x 128)
    optim-KIND-CHECK                    one optimizer step on a 16M tensor vs torch fused; KIND: adam, adamw,
                                        amsgrad, sgd_nesterov; CHECK: raise (the default check) or propagate
    optim-many-CHECK                    Adam over 1,000 tensors of 16k elements vs torch fused
    optim-rows                          row-sparse Adam (4096 x 65 rows of [1M, 128]) vs torch.optim.SparseAdam

Per round the fastgnn method runs once, then the peer's; prints min / median wall time of each, the ratio
(peer / fastgnn) of the minima and of the medians, and the load average seen meanwhile. ``--peakmem`` also
reports, for each side in a fresh process, the peak resident memory of one call beyond what ``setup``
(inputs included) left resident (Linux only). A missing peer prints SKIP.
"""
import argparse
import os
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

CASES = {
    "khop-2": ("mining", "KHopFastgnn", "KHopScipy", (2,), "time_k_hop"),
    "khop-3": ("mining", "KHopFastgnn", "KHopScipy", (3,), "time_k_hop"),
    "miner": ("mining", "MinerFastgnn", "MinerTorch", (), "time_mine"),
}
for _kind in ("adam", "adamw", "amsgrad", "sgd_nesterov"):
    for _check in ("raise", "propagate"):
        CASES[f"optim-{_kind}-{_check}"] = ("optim", "OptimDense", "TorchOptimDense", (_kind, _check), "time_step")
for _check in ("raise", "propagate"):
    CASES[f"optim-many-{_check}"] = ("optim", "OptimManyTensors", "TorchOptimManyTensors", (_check,), "time_step")
CASES["optim-rows"] = ("optim", "OptimSparseRows", "TorchSparseAdamRows", (), "time_step_rows")

PEAK = r'''
import importlib, sys
sys.path.insert(0, sys.argv[1])
mod = importlib.import_module("benchmarks." + sys.argv[2])
obj = getattr(mod, sys.argv[3])(); params = eval(sys.argv[4]); obj.setup(*params)
def rss_kib(key):
    for line in open("/proc/self/status"):
        if line.startswith(key):
            return int(line.split()[1])
base = rss_kib("VmRSS:")
open("/proc/self/clear_refs", "w").write("5")  # reset the peak (VmHWM) to the current RSS
getattr(obj, sys.argv[5])(*params)
print((rss_kib("VmHWM:") - base) / 1024)
'''


def _instance(module, cls, params):
    import importlib

    obj = getattr(importlib.import_module(f"benchmarks.{module}"), cls)()
    obj.setup(*params)
    return obj


def _peakmem(module, cls, params, method):
    out = subprocess.run([sys.executable, "-c", PEAK, HERE, module, cls, repr(params), method],
                         capture_output=True, text=True, cwd=HERE)
    if out.returncode:
        return f"failed: {out.stderr.strip().splitlines()[-1] if out.stderr.strip() else out.returncode}"
    return f"{float(out.stdout.split()[-1]):.0f} MiB"


def run_case(name, rounds, peakmem):
    module, ours, peer, params, method = CASES[name]
    try:
        objs = {"fastgnn": _instance(module, ours, params), "peer": _instance(module, peer, params)}
    except NotImplementedError as exc:  # asv's "skip": a peer is not installed
        print(f"{name}: SKIP ({exc})")
        return
    times = {k: [] for k in objs}
    loads = []
    for _ in range(rounds):
        for k, obj in objs.items():
            t = time.perf_counter()
            getattr(obj, method)(*params)
            times[k].append(time.perf_counter() - t)
        loads.append(os.getloadavg()[0])
    f, p = np.array(times["fastgnn"]), np.array(times["peer"])
    print(f"{name}: fastgnn {f.min() * 1e3:.1f} / {np.median(f) * 1e3:.1f} ms, {peer} {p.min() * 1e3:.1f} / "
          f"{np.median(p) * 1e3:.1f} ms (min / median of {rounds}); ratio {p.min() / f.min():.2f}x / "
          f"{np.median(p) / np.median(f):.2f}x; load {min(loads):.1f}-{max(loads):.1f}", flush=True)
    if peakmem and sys.platform.startswith("linux"):
        del objs
        print(f"{name}: peak memory beyond setup: fastgnn {_peakmem(module, ours, params, method)}, "
              f"{peer} {_peakmem(module, peer, params, method)}", flush=True)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("cases", nargs="+", choices=sorted(CASES), metavar="CASE")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--peakmem", action="store_true")
    args = ap.parse_args(argv)
    for name in args.cases:
        run_case(name, args.rounds, args.peakmem)
    return 0


if __name__ == "__main__":
    sys.exit(main())
