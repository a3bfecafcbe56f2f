"""Interleaved timing of one GCN/GRACE training epoch on Cora: fastgnn vs the same model and loss in PyTorch.

    python asv_benchmarks/compare_grace_epoch.py [--rounds 15] [--widths 256-128 512-512] [--pause 0.3]

Each library runs the asv classes of ``benchmarks/trainer.py`` in its own worker process (so their thread
pools do not disturb each other); per round one fastgnn epoch, then one torch epoch, with a short pause
between them so that the other worker's idle threads stop spinning. Prints min / median wall time and the
ratio (torch / fastgnn) from the same run, and the load average seen meanwhile. Skips without torch.
"""
import argparse
import os
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
WORKER = r'''
import sys, time, warnings
warnings.filterwarnings("ignore")
sys.path.insert(0, sys.argv[3])
from benchmarks import trainer as b
obj = getattr(b, sys.argv[1])(); w = sys.argv[2]; obj.setup(w); obj.time_epoch(w)
print("ready", flush=True)
for line in sys.stdin:
    t = time.perf_counter(); obj.time_epoch(w)
    print(time.perf_counter() - t, flush=True)
'''


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--widths", nargs="+", default=["256-128", "512-512"])
    ap.add_argument("--pause", type=float, default=0.3)
    args = ap.parse_args(argv)
    try:
        import torch  # noqa: F401 - only its presence
    except ImportError:
        print("SKIP: torch is not installed")
        return 0
    for widths in args.widths:
        procs = {}
        for name, cls in (("fastgnn", "GraceEpochFastgnn"), ("torch", "GraceEpochTorch")):
            p = subprocess.Popen([sys.executable, "-c", WORKER, cls, widths, HERE], stdin=subprocess.PIPE,
                                 stdout=subprocess.PIPE, text=True, cwd=HERE)
            if p.stdout.readline().strip() != "ready":
                raise RuntimeError(f"{cls} worker failed to start")
            procs[name] = p
        times = {k: [] for k in procs}
        loads = []
        for r in range(args.rounds + 1):
            for k, p in procs.items():
                time.sleep(args.pause)
                p.stdin.write("go\n")
                p.stdin.flush()
                t = float(p.stdout.readline()) * 1e3
                if r:  # round 0 warms up
                    times[k].append(t)
            loads.append(os.getloadavg()[0])
        for p in procs.values():
            p.stdin.close()
            p.wait()
        w = {k: np.array(v) for k, v in times.items()}
        for k in procs:
            print(f"widths {widths} {k:8s} min {w[k].min():7.1f} ms  median {np.median(w[k]):7.1f} ms")
        print(f"widths {widths} torch / fastgnn: min {w['torch'].min() / w['fastgnn'].min():.2f}x  "
              f"median {np.median(w['torch']) / np.median(w['fastgnn']):.2f}x  "
              f"(load average {min(loads):.2f}-{max(loads):.2f})", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
