"""GPU figures for the CUDA backend (issue 8): fastgnn on CUDA beside fastgnn's CPU backend and PyTorch CUDA,
all on the same machine, ratios from one run.

    python asv_benchmarks/gpu_bench.py [CASE ...] [--smoke] [--json FILE] [--no-cpu] [--kernel-times] [--pool on|off]

Cases (all by default):

    copy      device-to-device copy of 1 GiB (numba and torch): the bandwidth ceiling, bytes read + written
    optim     one step of fused Adam / AdamW / AMSGrad / SGD-Nesterov over one 64M-element float32 tensor:
              fastgnn (default non-finite check, and "propagate") vs torch.optim(fused=True); the share of
              the copy bandwidth counts 28 bytes per parameter (AMSGrad 36, SGD with momentum 20)
    infonce   info_nce with index negatives, B=65,536, K=64, D=128, N=10^7 table, forward + backward
              (row-sparse table gradient, or added into a dense device buffer) vs the PyTorch CUDA recipe
              (gather, normalise, bmm, cross-entropy, backward with a dense table gradient)
    inbatch   symmetric in-batch info_nce (GRACE's loss), B=16,384, D=128 (a B x B similarity), forward +
              backward vs the PyTorch CUDA recipe (normalize, mm, two cross-entropies) vs the CPU backend
    skipgram  DeepWalk end to end (walks + skip-gram) on a 10^6-node planted partition, 1 walk of 40 per
              node, window 10, negative 1, dim 128, 1 epoch; fastgnn CUDA vs fastgnn CPU (this machine)
    miner     HardNegativeMiner("hardest"), 4,096 anchors x 1M pool x 128, K=64 vs blocked torch mm + topk
    khop      k_hop k=2, 10k sources of a 200k-node / 2M-edge graph, CUDA vs CPU backend
    gcn       one Trainer epoch of a 2-layer GCN (128 features -> 256 -> 128) with neighbour InfoNCE (16
              degree^0.75 negatives per anchor) on a 200k-node / 2M-edge planted partition: fastgnn's
              device-resident encoder vs the CPU backend vs the same model and loss in PyTorch CUDA
              (torch.sparse CSR propagation, fused Adam). fastgnn's epoch is the difference of fits of 1 and
              of several more epochs, so fit's fixed cost (feature checks, upload, device set-up) is apart
    grace     one Trainer epoch of GRACE (the Trainer's default: two augmented views, their dropped-edge graphs
              built on the device, 2-layer GCN 128 -> 256 -> 128, projection head, symmetric in-batch InfoNCE
              over all N nodes, tau 0.4) on a 20k-node planted partition vs the CPU backend vs the same model
              and loss in PyTorch CUDA (benchmarks/trainer.py:torch_grace)
    dispatch  what resolving the backend costs per call with a GPU present (target < 5 us)
    host      what a kernel launch (queued, no wait) and a round trip (launch + one element back) cost the host:
              the cases that launch many small kernels depend on it; compare it across machines first

Times are medians of 5 timed batches (each batch at least ~0.2 s of calls, the device synchronised before
and after; JIT compilation and first-touch allocation happen in an untimed warm-up call). ``--smoke`` shrinks
every size so the script runs in seconds (also under ``NUMBA_ENABLE_CUDASIM=1``). Each case also checks its
answer against the peer (or the CPU backend) and prints the largest relative difference. ``--pool on|off``
sets ``FASTGNN_CUDA_POOL`` (fastgnn's stream-ordered device memory pool, on by default) for the run; compare
``--pool off`` against a default run on the same warm machine.
"""
import argparse
import contextlib
import json
import os
import statistics
import sys
import time

import numpy as np

SMOKE = False


def size(full, smoke):
    return smoke if SMOKE else full


def _torch():
    try:
        import torch
    except ImportError:
        return None
    return torch if torch.cuda.is_available() else None


SYNC = True


@contextlib.contextmanager
def _full_fp32(torch):
    """torch matmuls in full float32 (TF32 off), as fastgnn computes, for the duration of the block."""
    prev = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32 = prev


def _sync():
    if SYNC:
        from numba import cuda

        cuda.synchronize()


def timeit(fn, rounds=5, min_batch=0.2):
    """Median and min seconds per call: ``fn`` once untimed, then ``rounds`` batches of back-to-back calls."""
    fn()
    _sync()
    t = time.perf_counter()
    fn()
    _sync()
    one = max(time.perf_counter() - t, 1e-7)
    reps = 1 if SMOKE else max(1, min(1000, int(min_batch / one)))
    samples = []
    for _ in range(1 if SMOKE else rounds):
        _sync()
        t = time.perf_counter()
        for _ in range(reps):
            fn()
        _sync()
        samples.append((time.perf_counter() - t) / reps)
    return statistics.median(samples), min(samples)


ROWS = []


def row(case, impl, seconds, extra="", **data):
    med, mn = seconds if isinstance(seconds, tuple) else (seconds, seconds)
    ROWS.append(dict(case=case, impl=impl, median_ms=med * 1e3, min_ms=mn * 1e3, extra=extra, **data))
    print(f"{case:10s} {impl:44s} {med * 1e3:11.3f} ms (min {mn * 1e3:11.3f})  {extra}", flush=True)


def randn(shape, seed, dtype=np.float32):
    """A device array of standard normals (drawn on the GPU by torch when it is there, else on the host)."""
    from numba import cuda

    torch = _torch()
    if torch is not None:
        g = torch.Generator(device="cuda").manual_seed(seed)
        t = torch.randn(shape, generator=g, device="cuda", dtype=getattr(torch, np.dtype(dtype).name))
        return cuda.as_cuda_array(t), t
    a = np.random.default_rng(seed).standard_normal(shape).astype(dtype)
    return cuda.to_device(a), None


def zeros(shape):
    from numba import cuda

    torch = _torch()
    if torch is not None:
        t = torch.zeros(shape, device="cuda")
        return cuda.as_cuda_array(t), t
    return cuda.to_device(np.zeros(shape, np.float32)), None


def randint(high, shape, seed):
    from numba import cuda

    torch = _torch()
    if torch is not None:
        g = torch.Generator(device="cuda").manual_seed(seed)
        t = torch.randint(0, high, shape, generator=g, device="cuda")
        return cuda.as_cuda_array(t), t
    return cuda.to_device(np.random.default_rng(seed).integers(0, high, shape)), None


def relerr(a, b):
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-300))


# ------------------------------------------------------------------------------------------------ cases
BANDWIDTH = {}


def case_copy(args):
    from numba import cuda

    n = size(256 << 20, 256)  # float32 elements: 1 GiB
    src, keep = randn(n, 0)
    dst = cuda.device_array(n, np.float32)
    t = timeit(lambda: dst.copy_to_device(src))
    bw = 2 * 4 * n / t[0] / 1e9
    BANDWIDTH["numba"] = bw
    row("copy", "numba device-to-device", t, f"{bw:8.1f} GB/s (read + write)", gbps=bw)
    torch = _torch()
    if torch is not None:
        a = torch.randn(n, device="cuda")
        b = torch.empty_like(a)
        t = timeit(lambda: b.copy_(a))
        bw = 2 * 4 * n / t[0] / 1e9
        BANDWIDTH["torch"] = bw
        row("copy", "torch copy_", t, f"{bw:8.1f} GB/s (read + write)", gbps=bw)
    # fastgnn's own 1-d copy kernel (one load a thread; arrays.copy_into takes it only to cast since the
    # seventeenth session, the driver's copy otherwise)
    from fastgnn.kernels.cuda import arrays

    t = timeit(lambda: arrays._copy_into[arrays._grid(n)](src, dst, np.int64(0)))
    bw = 2 * 4 * n / t[0] / 1e9
    row("copy", "part: fastgnn's cast-copy kernel, same dtype", t, f"{bw:8.1f} GB/s (read + write)", gbps=bw)
    del keep


def case_host(args):
    """What the host adds to a device-resident step: a kernel launch queued back to back (no wait; with one and
    with six array arguments) and a round trip (a launch, then its one-element result copied back). The cases
    that launch many small kernels (the Trainer epochs, a row-sparse info_nce call) depend on these: compare them
    across machines before comparing those cases."""
    from numba import cuda

    from fastgnn.kernels.cuda import arrays
    from fastgnn.kernels.cuda import losses as kl

    x = cuda.device_array(1, np.float64)
    n = size(2000, 5)

    def fills():
        for _ in range(n):
            arrays.fill(x, 1.0)

    t = timeit(fills)
    row("host", "launch, 1 array argument (arrays.fill)", (t[0] / n, t[1] / n), f"{t[0] / n * 1e6:.2f} us a launch")
    Z, grad = cuda.to_device(np.ones((1, 1), np.float32)), cuda.to_device(np.zeros((1, 1), np.float32))
    src, rows, starts = (cuda.to_device(np.array(v, np.int64)) for v in ([0], [0], [0, 1]))
    coef = cuda.to_device(np.ones(1))

    def gathers():
        for _ in range(n):
            kl.launch_scatter_gather(Z, src, coef, rows, starts, grad)

    t = timeit(gathers)
    row("host", "launch, 6 array arguments (scatter_gather)", (t[0] / n, t[1] / n),
        f"{t[0] / n * 1e6:.2f} us a launch")

    def round_trip():
        arrays.fill(x, 2.0)
        return x.copy_to_host()

    t = timeit(round_trip)
    row("host", "round trip: a launch, its result copied back", t, f"{t[0] * 1e6:.2f} us")


BYTES = {"adam": 28, "adamw": 28, "amsgrad": 36, "sgd_nesterov": 20}


def _fastgnn_opt(kind, params, nonfinite):
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from benchmarks.optim import _ours

    return _ours(kind, params, nonfinite)


def _torch_opt(torch, kind, params):
    cls = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW, "amsgrad": torch.optim.Adam,
           "sgd_nesterov": torch.optim.SGD}[kind]
    kw = {"amsgrad": {"amsgrad": True}, "sgd_nesterov": {"momentum": 0.9, "nesterov": True}}.get(kind, {})
    return cls(params, lr=1e-3, fused=True, **kw)


def case_optim(args):
    from numba import cuda

    n = size(64 << 20, 256)
    torch = _torch()
    ceiling = BANDWIDTH.get("numba") or BANDWIDTH.get("torch")
    for kind in ("adam", "adamw", "amsgrad", "sgd_nesterov"):
        p0, keep_p = randn(n, 1)
        g, keep_g = randn(n, 2)
        times = {}
        for check in ("raise", "propagate"):
            p = cuda.device_array(n, np.float32)
            p.copy_to_device(p0)
            opt = _fastgnn_opt(kind, [p], check)
            t = timeit(lambda: opt.step([g]))
            times[check] = t[0]
            bw = BYTES[kind] * n / t[0] / 1e9
            share = f" = {100 * bw / ceiling:5.1f}% of copy" if ceiling else ""
            row("optim", f"fastgnn cuda {kind} ({check})", t, f"{bw:8.1f} GB/s{share}", gbps=bw)
            del p, opt
        if kind == "adam":  # the default check's own pass alone: the gradient read once, the word published
            from fastgnn.kernels.cuda.optim import StepGuard

            guard = StepGuard()
            guard.begin()
            t = timeit(lambda: guard.scan(g, 1))
            guard.finish()
            bw = 4 * n / t[0] / 1e9
            row("optim", "  part: the non-finite scan kernel (StepGuard.scan)", t, f"{bw:8.1f} GB/s read", gbps=bw)
        if torch is not None:
            tp = torch.as_tensor(p0, device="cuda").clone()
            tg = torch.as_tensor(g, device="cuda")
            tp.grad = tg.clone()
            opt = _torch_opt(torch, kind, [tp])
            t = timeit(opt.step)
            bw = BYTES[kind] * n / t[0] / 1e9
            share = f" = {100 * bw / ceiling:5.1f}% of copy" if ceiling else ""
            row("optim", f"torch cuda {kind} fused", t,
                f"{bw:8.1f} GB/s{share}; torch/fastgnn {t[0] / times['raise']:.2f}x (check) "
                f"{t[0] / times['propagate']:.2f}x (propagate)", gbps=bw)
            # same first step from the same start: the answers must agree
            m = min(n, 1 << 20)
            q = torch.as_tensor(p0, device="cuda")[:m].clone()
            q.grad = tg[:m].clone()
            o = _torch_opt(torch, kind, [q])
            o.step()
            p = cuda.to_device(np.asarray(p0.copy_to_host()[:m]))
            _fastgnn_opt(kind, [p], "raise").step([g[:m]])
            print(f"           check {kind}: one step vs torch, max rel diff "
                  f"{relerr(p.copy_to_host() - p0.copy_to_host()[:m], (q - tp.new_tensor(p0.copy_to_host()[:m])).cpu().numpy()):.2e}"
                  " (of the update)", flush=True)
            del tp, tg, opt, q, o
            torch.cuda.empty_cache()
        if not args.no_cpu and kind == "adam":
            hp = p0.copy_to_host()[: size(16_000_000, 4096)]
            hg = g.copy_to_host()[: hp.size]
            opt = _fastgnn_opt(kind, [hp], "raise")
            t = timeit(lambda: opt.step([hg]), rounds=3)
            bw = BYTES[kind] * hp.size / t[0] / 1e9
            row("optim", f"fastgnn cpu {kind} (raise), 16M", t, f"{bw:8.1f} GB/s", gbps=bw)
        del keep_p, keep_g


def case_infonce(args):
    from numba import cuda

    from fastgnn.losses import info_nce

    B, K, D, N = size((65_536, 64, 128, 10_000_000), (16, 4, 8, 100))
    tau = 0.07
    A, kA = randn((B, D), 10)
    P, kP = randn((B, D), 11)
    T, kT = randn((N, D), 12)
    ids, kI = randint(N, (B, K), 13)
    res = {}

    def sparse():
        res["s"] = info_nce(A, P, ids, table=T, temperature=tau)

    t_sparse = timeit(sparse)
    row("infonce", "fastgnn cuda (row-sparse table grad)", t_sparse)
    if args.kernel_times:
        kernel_table("infonce", sparse, "one row-sparse call")
    buf, kB = zeros((N, D))

    def dense():
        res["d"] = info_nce(A, P, ids, table=T, temperature=tau, table_grad=buf)

    t_dense = timeit(dense)
    row("infonce", "fastgnn cuda (dense table_grad buffer)", t_dense)
    # where the time goes: the stable grouping of the ids (row-sparse output only), and the two kernels alone
    from fastgnn.kernels.cuda import arrays as ka
    from fastgnn.kernels.cuda import losses as kl

    flat = ids.reshape(B * K) if hasattr(ids, "reshape") else ids
    row("infonce", "  part: arrays.group_by_row(ids, bound=N)", timeit(lambda: ka.group_by_row(flat, K, bound=N)))
    # the radix sort alone at several chunk sizes (the default is the first): data for tuning _CHUNK_ROUNDS
    for rounds in (ka._CHUNK_ROUNDS, 32, 64, 128):
        chunk = ka._radix_chunk(flat.shape[0], rounds)
        row("infonce", f"  part: arrays.sort_keys(ids, bound=N), warp chunks of {chunk} keys "
            f"({-(-flat.shape[0] // chunk)} chunks)", timeit(lambda: ka.sort_keys(flat, bound=N, rounds=rounds)))
    sc = kl.info_nce_scratch(B, K)
    outs = [cuda.device_array(B, np.float32), cuda.device_array((B, D), np.float32),
            cuda.device_array((B, D), np.float32), cuda.device_array((B, K), np.float64),
            cuda.device_array((B, K), np.float64), cuda.device_array(B, np.int64)]
    w = ka.full(B, 1.0 / B)
    row("infonce", "  part: forward + backward kernels, coefficients out", timeit(lambda: kl.launch_info_nce_rows(
        A, P, T, ids, 1.0 / tau, True, w, *outs, sc)))
    row("infonce", "  part: forward + backward kernels, atomics into the buffer", timeit(
        lambda: kl.launch_info_nce_rows(A, P, T, ids, 1.0 / tau, True, w, *outs, sc, out=buf, guard=True)))
    ka.fill(buf.reshape(N * D), 0.0)  # one call into a zeroed buffer, for the check against torch below
    dense()
    torch = _torch()
    if torch is not None:
        F = torch.nn.functional
        a = torch.as_tensor(A, device="cuda").clone().requires_grad_(True)
        p = torch.as_tensor(P, device="cuda").clone().requires_grad_(True)
        tt = torch.as_tensor(T, device="cuda").clone().requires_grad_(True)
        ti = torch.as_tensor(ids, device="cuda")
        target = torch.zeros(B, dtype=torch.long, device="cuda")
        out = {}

        def recipe():
            a.grad = p.grad = tt.grad = None
            an = F.normalize(a, dim=1)
            pn = F.normalize(p, dim=1)
            nn_ = F.normalize(tt[ti], dim=2)
            logits = torch.cat([(an * pn).sum(1, keepdim=True), torch.bmm(nn_, an.unsqueeze(2)).squeeze(2)], 1)
            loss = F.cross_entropy(logits / tau, target)
            loss.backward()
            out["loss"] = loss

        t = timeit(recipe)
        row("infonce", "torch cuda recipe (dense table grad)", t,
            f"fastgnn speed-up {t[0] / t_sparse[0]:.2f}x (sparse) {t[0] / t_dense[0]:.2f}x (dense)")
        loss, grads = res["s"]
        rows, vals = grads["table"]
        rows = rows.copy_to_host() if hasattr(rows, "copy_to_host") else np.asarray(rows)
        trows = torch.as_tensor(rows, device="cuda")
        ref_t = tt.grad[trows].cpu().numpy()
        dense_rows = torch.as_tensor(buf, device="cuda")[trows].cpu().numpy()
        print(f"           check: loss {loss:.6f} vs torch {out['loss'].item():.6f}; rel diff anchors grad "
              f"{relerr(grads['anchors'].copy_to_host(), a.grad.cpu().numpy()):.2e}, positives "
              f"{relerr(grads['positives'].copy_to_host(), p.grad.cpu().numpy()):.2e}, table rows "
              f"{relerr(vals.copy_to_host(), ref_t):.2e} (dense buffer {relerr(dense_rows, ref_t):.2e})", flush=True)
        del a, p, tt, ti, out, trows
        torch.cuda.empty_cache()
    if not args.no_cpu:
        hA, hP, hT, hI = A.copy_to_host(), P.copy_to_host(), T.copy_to_host(), ids.copy_to_host()
        t = timeit(lambda: info_nce(hA, hP, hI, table=hT, temperature=tau, backend="cpu"), rounds=3)
        row("infonce", "fastgnn cpu (row-sparse table grad)", t, f"cuda speed-up {t[0] / t_sparse[0]:.1f}x")
        lc, _ = info_nce(hA, hP, hI, table=hT, temperature=tau, backend="cpu")
        print(f"           check: loss cuda {res['s'][0]:.7f} vs cpu {lc:.7f}", flush=True)
    del kA, kP, kT, kI


def case_inbatch(args):
    """Symmetric in-batch InfoNCE (GRACE's loss), B x B logits: fastgnn's GEMM path vs torch vs the CPU backend."""
    from fastgnn.losses import info_nce

    B, D = size((16_384, 128), (24, 8))
    tau = 0.5
    A, kA = randn((B, D), 20)
    P, kP = randn((B, D), 21)
    res = {}

    def run():
        res["r"] = info_nce(A, P, temperature=tau, symmetric=True)

    t_dev = timeit(run)
    row("inbatch", "fastgnn cuda info_nce(A, P, symmetric=True)", t_dev)
    torch = _torch()
    if torch is not None:
        F = torch.nn.functional
        a = torch.as_tensor(A, device="cuda").clone().requires_grad_(True)
        p = torch.as_tensor(P, device="cuda").clone().requires_grad_(True)
        target = torch.arange(B, device="cuda")
        out = {}

        def recipe():
            a.grad = p.grad = None
            logits = F.normalize(a, dim=1) @ F.normalize(p, dim=1).t() / tau
            out["loss"] = (F.cross_entropy(logits, target) + F.cross_entropy(logits.t(), target)) / 2
            out["loss"].backward()

        t = timeit(recipe)
        loss, grads = res["r"]
        row("inbatch", "torch cuda recipe (normalize, mm, two cross-entropies)", t,
            f"fastgnn speed-up {t[0] / t_dev[0]:.2f}x")
        print(f"           check: loss {loss:.6f} vs torch {out['loss'].item():.6f}; rel diff anchors grad "
              f"{relerr(grads['anchors'].copy_to_host(), a.grad.cpu().numpy()):.2e}, positives "
              f"{relerr(grads['positives'].copy_to_host(), p.grad.cpu().numpy()):.2e}", flush=True)
        del a, p, out
        torch.cuda.empty_cache()
    if not args.no_cpu:
        hA, hP = A.copy_to_host(), P.copy_to_host()
        t = timeit(lambda: info_nce(hA, hP, temperature=tau, symmetric=True, backend="cpu"), rounds=3)
        row("inbatch", "fastgnn cpu info_nce(A, P, symmetric=True)", t, f"cuda speed-up {t[0] / t_dev[0]:.1f}x")
        lc, _ = info_nce(hA, hP, temperature=tau, symmetric=True, backend="cpu")
        print(f"           check: loss cuda {res['r'][0]:.7f} vs cpu {lc:.7f}", flush=True)
    del kA, kP


def case_skipgram(args):
    from fastgnn import DeepWalk
    from fastgnn.datasets import planted_partition

    n = size(1_000_000, 100)
    t0 = time.perf_counter()
    ds = planted_partition(n, size(1000, 4), 10.0, 0.8, seed=0)
    g = ds.graph
    print(f"           graph: {g.num_nodes} nodes, {g.num_edges} edges, built in {time.perf_counter() - t0:.1f} s",
          flush=True)
    cfg = dict(walk_length=size(40, 4), walks_per_node=1, vector_size=size(128, 4), window=10, negative=1, epochs=1)
    small = planted_partition(size(200, 20), 4, 4.0, 0.9, seed=1).graph
    backends = ([] if args.cpu_only else ["cuda"]) + ([] if args.no_cpu else ["cpu"])
    words = n * cfg["walk_length"] * cfg["epochs"]
    from fastgnn.walks import random_walks

    for be in backends:
        if be == "cuda":
            random_walks(small, 5, 1, seed=0, backend="cuda", output="device")
            row("skipgram", "  part: random_walks on cuda (device output)", timeit(
                lambda: random_walks(g, cfg["walk_length"], 1, seed=0, backend="cuda", output="device"), rounds=3))
        extra = dict(batch_words=200) if be == "cuda" else dict(workers=args.workers or os.cpu_count())
        DeepWalk(small, **dict(cfg, walk_length=5), seed=0, backend=be, **extra).fit()  # compile outside
        reps = 1 if be == "cpu" else 3
        ts = []
        for r in range(reps):
            _sync()
            t = time.perf_counter()
            emb = DeepWalk(g, **cfg, seed=r, backend=be, **extra).fit()
            _sync()
            ts.append(time.perf_counter() - t)
        med = statistics.median(ts)
        gap = community_gap(emb, ds.labels)
        row("skipgram", f"fastgnn {be} DeepWalk.fit (walks + train)", (med, min(ts)),
            f"{words / med / 1e6:8.2f} M words/s end to end; quality {gap:.3f}", words_per_s=words / med,
            quality=gap)
    print("           quality: mean cosine of same-community node pairs minus that of random pairs (20k each)",
          flush=True)


def community_gap(emb, labels, pairs=20_000, seed=0):
    """Mean cosine similarity of random same-community node pairs minus that of random node pairs: near 0 for
    embeddings that learnt nothing, larger the better they separate the planted communities."""
    rng = np.random.default_rng(seed)
    emb = np.asarray(emb, np.float64)
    emb = emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-300)
    labels = np.asarray(labels)
    order = np.argsort(labels, kind="stable")
    a = rng.integers(0, len(labels), pairs)
    lo = np.searchsorted(labels[order], labels[a], "left")
    hi = np.searchsorted(labels[order], labels[a], "right")
    same = order[lo + (rng.random(pairs) * (hi - lo)).astype(np.int64)]
    other = rng.integers(0, len(labels), pairs)
    return float(np.mean(np.sum(emb[a] * emb[same], 1)) - np.mean(np.sum(emb[a] * emb[other], 1)))


def case_miner(args):
    from fastgnn.mining import HardNegativeMiner

    B, Pn, D, K = size((4096, 1_000_000, 128, 64), (8, 300, 8, 4))
    A, kA = randn((B, D), 20)
    Pool, kP = randn((Pn, D), 21)
    miner = HardNegativeMiner("hardest", num_negatives=K, seed=0)
    res = {}

    def mine():
        res["ids"] = miner.mine(A, None, Pool)

    t_ours = timeit(mine, rounds=3)
    row("miner", "fastgnn cuda HardNegativeMiner hardest", t_ours, f"{B * Pn / t_ours[0] / 1e9:6.1f} G sims/s")
    torch = _torch()
    if torch is not None:
        a = torch.as_tensor(A, device="cuda")
        pool = torch.as_tensor(Pool, device="cuda")
        block = size(65536, 500)

        def recipe():
            with torch.no_grad():
                an = torch.nn.functional.normalize(a, dim=1)
                best_v = best_i = None
                for start in range(0, pool.shape[0], block):
                    blk = torch.nn.functional.normalize(pool[start:start + block], dim=1)
                    v, i = torch.topk(an @ blk.T, K, dim=1)
                    i += start
                    if best_v is not None:
                        v, j = torch.topk(torch.cat([best_v, v], 1), K, dim=1)
                        i = torch.gather(torch.cat([best_i, i], 1), 1, j)
                    best_v, best_i = v, i
                res["torch"] = best_i

        with _full_fp32(torch):
            t = timeit(recipe, rounds=3)
        row("miner", "torch cuda blocked mm + topk (fp32)", t, f"fastgnn speed-up {t[0] / t_ours[0]:.2f}x")
        ours = np.sort(res["ids"].copy_to_host(), 1)
        ref = np.sort(res["torch"].cpu().numpy(), 1)
        print(f"           check: rows with the same id set as torch {np.mean((ours == ref).all(1)):.4f}", flush=True)
    if not args.no_cpu:
        hA, hP = A.copy_to_host(), Pool.copy_to_host()
        cpu = HardNegativeMiner("hardest", num_negatives=K, seed=0, backend="cpu")
        t = timeit(lambda: cpu.mine(hA, None, hP), rounds=2)
        row("miner", "fastgnn cpu HardNegativeMiner hardest", t, f"cuda speed-up {t[0] / t_ours[0]:.1f}x")
    del kA, kP


def case_khop(args):
    from numba import cuda

    from fastgnn import Graph
    from fastgnn.mining import k_hop

    rng = np.random.default_rng(0)
    n, m = size(200_000, 100), size(2_000_000, 300)
    g = Graph.from_edges(rng.integers(0, n, m), rng.integers(0, n, m), num_nodes=n)
    sources = rng.choice(n, size(10_000, 5), replace=False)
    d_src = cuda.to_device(sources)
    t_cuda = timeit(lambda: k_hop(g, d_src, 2, 1))
    row("khop", "fastgnn cuda k_hop k=2 (device sources)", t_cuda)
    if not args.no_cpu:
        t = timeit(lambda: k_hop(g, sources, 2, 1, backend="cpu"))
        row("khop", "fastgnn cpu k_hop k=2", t, f"cuda speed-up {t[0] / t_cuda[0]:.2f}x")


def kernel_timer():
    """Time every launch of a fastgnn kernel (the device synchronised before and after each: serialised, so the
    sum is an upper bound of each kernel's share). Returns ``({module.kernel: (launches, seconds)}, restore)``;
    call ``restore()`` to put the launcher back."""
    from numba import cuda

    from fastgnn import backend

    times = {}
    if backend.simulator_enabled():
        from numba.cuda.simulator import kernel as sim

        cls, meth = sim.FakeCUDAKernel, "__call__"

        def kernel_of(self):  # a launch, not a device-function call from inside a kernel
            return None if self._device or sim._kernel_context else self.fn
    else:
        from numba.cuda.dispatcher import CUDADispatcher

        cls, meth = CUDADispatcher, "call"

        def kernel_of(self):
            return self.py_func
    orig = getattr(cls, meth)

    def timed(self, *args):
        fn = kernel_of(self)
        if fn is None or not fn.__module__.startswith("fastgnn."):
            return orig(self, *args)
        cuda.synchronize()
        t = time.perf_counter()
        out = orig(self, *args)
        cuda.synchronize()
        key = f"{fn.__module__.rsplit('.', 1)[-1]}.{fn.__qualname__}"
        n, sec = times.get(key, (0, 0.0))
        times[key] = (n + 1, sec + time.perf_counter() - t)
        return out

    setattr(cls, meth, timed)
    return times, lambda: setattr(cls, meth, orig)


def per_epoch(tr, g, X, more):
    """Seconds of one epoch and of fit's fixed cost: medians of fits that add 1 and ``more`` epochs to a trained
    model (a fit validates and uploads the features and builds its device state once)."""
    def fit(n):
        _sync()
        t = time.perf_counter()
        tr.fit(g, epochs=tr.epoch + n, features=X)
        _sync()
        return time.perf_counter() - t

    fit(1)  # compilation, graph caches
    t1 = statistics.median([fit(1) for _ in range(1 if SMOKE else 3)])
    tn = statistics.median([fit(more) for _ in range(1 if SMOKE else 2)])
    epoch = max((tn - t1) / (more - 1), 0.0)
    return epoch, max(t1 - epoch, 0.0)


def kernel_table(case, work, what="2 epochs"):
    """``--kernel-times``: each fastgnn kernel's share of ``work()`` (a 2-epoch device fit, one call ...), printed
    and as rows."""
    times, restore = kernel_timer()
    try:
        work()
    finally:
        restore()
    total = sum(s for _, s in times.values())
    print(f"           kernel times of {what} (each launch synchronised before and after; "
          f"{total * 1e3:.1f} ms in {sum(n for n, _ in times.values())} launches):", flush=True)
    for name, (n, sec) in sorted(times.items(), key=lambda kv: -kv[1][1])[:30]:
        print(f"             {sec * 1e3:9.2f} ms {n:6d} x  {name}", flush=True)
        row(case, f"kernel {name} ({what})", sec, f"{n} launches", launches=n)


def fit_more(tr, g, X, epochs=2):
    """A callable that trains ``tr`` for ``epochs`` more epochs (for :func:`kernel_table`)."""
    return lambda: tr.fit(g, epochs=tr.epoch + epochs, features=X)


def check_histories(cfg, g, X):
    """The first two epochs' losses of fresh CUDA and CPU trainers (the same seed: the same draws)."""
    from fastgnn.trainer import Trainer

    h_dev = Trainer(backend="cuda", **cfg).fit(g, epochs=2, features=X)
    h_cpu = Trainer(backend="cpu", **cfg).fit(g, epochs=2, features=X)
    print(f"           check: epoch losses cuda {h_dev['loss']} vs cpu {h_cpu['loss']}", flush=True)


def case_gcn(args):
    from fastgnn.datasets import planted_partition
    from fastgnn.trainer import Trainer

    n, fin, hid, dim, K = size((200_000, 128, 256, 128, 16), (60, 8, 8, 4, 2))
    g = planted_partition(n, size(200, 4), 10.0, 0.8, seed=0).graph
    X = np.random.default_rng(1).standard_normal((n, fin)).astype(np.float32)
    print(f"           graph: {g.num_nodes} nodes, {g.num_edges} edges, {fin} features", flush=True)
    cfg = dict(model="gcn", objectives=("infonce",), positives="neighbors", dim=dim, hidden=hid, layers=2,
               num_negatives=K, lr=1e-3, seed=0)

    dev = Trainer(backend="cuda", **cfg)
    t_dev, setup_dev = per_epoch(dev, g, X, 6)
    row("gcn", "fastgnn cuda Trainer epoch (device-resident)", t_dev, f"fit's fixed cost {setup_dev * 1e3:.1f} ms",
        setup_ms=setup_dev * 1e3)
    if not SMOKE:
        import cProfile
        import io
        import pstats

        prof = cProfile.Profile()
        prof.enable()
        dev.fit(g, epochs=dev.epoch + 3, features=X)
        _sync()
        prof.disable()
        out = io.StringIO()
        pstats.Stats(prof, stream=out).sort_stats("tottime").print_stats(25)
        print("           profile of a 3-epoch device fit (host view; device work shows in the calls that wait):\n"
              + out.getvalue(), flush=True)
    if args.kernel_times:
        kernel_table("gcn", fit_more(dev, g, X))
    torch = _torch()
    if torch is not None:
        t = _torch_gcn_epoch(torch, g, X, fin, hid, dim, K)
        row("gcn", "torch cuda GCN + InfoNCE epoch", t, f"fastgnn speed-up {t[0] / t_dev:.2f}x")
        t = _torch_gcn_epoch(torch, g, X, fin, hid, dim, K, aggregate_first=True)
        row("gcn", "torch cuda GCN + InfoNCE epoch, first layer (A X) W, A X computed once", t,
            f"fastgnn speed-up {t[0] / t_dev:.2f}x")
    if not args.no_cpu:
        cpu_epoch("gcn", Trainer(backend="cpu", **cfg), g, X, t_dev)
        check_histories(cfg, g, X)


def cpu_epoch(case, tr, g, X, t_dev):
    t, setup = per_epoch(tr, g, X, 3)
    row(case, "fastgnn cpu Trainer epoch", t, f"fit's fixed cost {setup * 1e3:.1f} ms; cuda speed-up "
        f"{t / max(t_dev, 1e-12):.1f}x", setup_ms=setup * 1e3)


def case_grace(args):
    """GRACE, the Trainer's default set-up: two views built on the device each epoch (feature masks, dropped
    edges), 2-layer GCN, projection head, symmetric in-batch InfoNCE over all nodes (an N x N similarity)."""
    from fastgnn.datasets import planted_partition
    from fastgnn.trainer import Trainer

    n, fin, hid, dim = size((20_000, 128, 256, 128), (40, 8, 8, 4))
    g = planted_partition(n, size(20, 4), 10.0, 0.8, seed=0).graph
    X = np.random.default_rng(1).standard_normal((n, fin)).astype(np.float32)
    print(f"           graph: {g.num_nodes} nodes, {g.num_edges} edges, {fin} features", flush=True)
    cfg = dict(model="gcn", objectives=("infonce",), positives="views", dim=dim, hidden=hid, layers=2, lr=5e-4,
               temperature=0.4, seed=0)
    dev = Trainer(backend="cuda", **cfg)
    t_dev, setup_dev = per_epoch(dev, g, X, 6)
    row("grace", "fastgnn cuda Trainer epoch (device-resident)", t_dev,
        f"fit's fixed cost {setup_dev * 1e3:.1f} ms", setup_ms=setup_dev * 1e3)
    if args.kernel_times:
        kernel_table("grace", fit_more(dev, g, X))
    torch = _torch()
    if torch is not None:
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        from benchmarks.trainer import torch_grace

        t = timeit(torch_grace(torch, g, X, hid, dim, device="cuda"), rounds=3, min_batch=0.5)
        row("grace", "torch cuda GRACE epoch", t, f"fastgnn speed-up {t[0] / max(t_dev, 1e-12):.2f}x")
    if not args.no_cpu:
        cpu_epoch("grace", Trainer(backend="cpu", **cfg), g, X, t_dev)
        check_histories(cfg, g, X)


def _torch_gcn_epoch(torch, g, X, fin, hid, dim, K, dev="cuda", aggregate_first=False):
    """The same epoch in PyTorch CUDA: Â = D̃^-1/2 (A + I) D̃^-1/2 as a CSR tensor, two GCN layers, each node's
    random neighbour as positive and K negatives drawn ∝ degree^0.75 on the GPU, cosine InfoNCE (τ = 0.5),
    fused Adam. The first layer is ``Â (X W1)`` as PyG's ``GCNConv`` computes it, or with ``aggregate_first``
    ``(Â X) W1`` with ``Â X`` computed once before the epochs: what fastgnn's ``GCNConv`` does in a ``fit``
    (it propagates first when a layer widens, and keeps ``Â X`` of fixed features)."""
    import scipy.sparse as sp

    F = torch.nn.functional
    n = g.num_nodes
    A = g.to_scipy().astype(np.float32) + sp.identity(n, np.float32, format="csr")
    d = np.asarray(A.sum(axis=1)).ravel() ** -0.5
    A = sp.diags(d) @ A @ sp.diags(d)
    A = A.tocsr()
    At = torch.sparse_csr_tensor(torch.as_tensor(A.indptr, device=dev), torch.as_tensor(A.indices, device=dev),
                                 torch.as_tensor(A.data, device=dev), size=A.shape)
    x = torch.as_tensor(X, device=dev)
    ax = At @ x if aggregate_first else None
    gen = torch.Generator(device=dev).manual_seed(0)
    w1 = torch.nn.Parameter(torch.empty(fin, hid, device=dev).uniform_(-0.1, 0.1))
    w2 = torch.nn.Parameter(torch.empty(hid, dim, device=dev).uniform_(-0.1, 0.1))
    b1 = torch.nn.Parameter(torch.zeros(hid, device=dev))
    b2 = torch.nn.Parameter(torch.zeros(dim, device=dev))
    opt = torch.optim.Adam([w1, w2, b1, b2], lr=1e-3, fused=dev == "cuda")
    indptr = torch.as_tensor(np.array(g.indptr, np.int64), device=dev)
    indices = torch.as_tensor(np.asarray(g.indices, np.int64), device=dev)
    deg = (indptr[1:] - indptr[:-1])
    anchors = torch.nonzero(deg > 0).squeeze(1)
    noise = deg.double() ** 0.75
    target = torch.zeros(anchors.numel(), dtype=torch.long, device=dev)

    def epoch():
        off = (torch.rand(anchors.numel(), generator=gen, device=dev) * deg[anchors]).long()
        pos = indices[indptr[anchors] + off]
        negs = torch.multinomial(noise, anchors.numel() * K, replacement=True, generator=gen).view(-1, K)
        opt.zero_grad(set_to_none=True)
        h = torch.relu((ax @ w1 if aggregate_first else At @ (x @ w1)) + b1)
        z = At @ (h @ w2) + b2
        zn = F.normalize(z, dim=1)
        a, p, q = zn[anchors], zn[pos], zn[negs]
        logits = torch.cat([(a * p).sum(1, keepdim=True), torch.bmm(q, a.unsqueeze(2)).squeeze(2)], 1)
        F.cross_entropy(logits / 0.5, target).backward()
        opt.step()

    return timeit(epoch, rounds=3, min_batch=0.5)


GEMMS = [  # (what, M, K, N, trans_a, trans_b): the products the library runs most
    ("GCN layer X W", 200_000, 128, 256, False, False),
    ("weight gradient X^T G (split K)", 128, 200_000, 256, True, False),
    ("miner block / in-batch S = A P^T", 4096, 128, 16_384, False, True),
    ("in-batch gA = U P", 16_384, 16_384, 128, False, False),
]


def case_gemm(args):
    """``kernels/cuda/autograd.py:matmul`` (float32) against ``torch.mm`` with TF32 off, in TFLOP/s."""
    from numba import cuda

    from fastgnn.kernels.cuda.autograd import matmul

    torch = _torch()
    for i, (what, M, K, N, ta, tb) in enumerate(GEMMS):
        if SMOKE:
            M, K, N = min(M, 70), min(K, 40), min(N, 50)
        A, kA = randn((K, M) if ta else (M, K), 30 + i)
        B, kB = randn((N, K) if tb else (K, N), 40 + i)
        out = cuda.device_array((M, N), np.float32)
        t = timeit(lambda: matmul(A, B, out, trans_a=ta, trans_b=tb))
        tf = 2.0 * M * N * K / t[0] / 1e12
        row("gemm", f"fastgnn {what} {M}x{K}x{N}", t, f"{tf:6.2f} TFLOP/s", tflops=tf)
        if torch is not None:
            a, b = torch.as_tensor(A, device="cuda"), torch.as_tensor(B, device="cuda")
            a, b = (a.t() if ta else a), (b.t() if tb else b)
            res = {}
            with _full_fp32(torch):
                tt = timeit(lambda: res.__setitem__("c", torch.mm(a, b)))
            tft = 2.0 * M * N * K / tt[0] / 1e12
            row("gemm", f"torch.mm {what}", tt, f"{tft:6.2f} TFLOP/s; fastgnn {tt[0] / t[0]:.2f}x", tflops=tft)
            print(f"           check: rel diff vs torch {relerr(out.copy_to_host(), res['c'].cpu().numpy()):.2e}",
                  flush=True)
            del a, b, res
        del kA, kB


def case_dispatch(args):
    from fastgnn import backend

    backend.kernels("losses", backend.resolve(None))
    n = size(20_000, 100)
    samples = []
    for _ in range(5):
        t = time.perf_counter()
        for _ in range(n):
            backend.kernels("losses", backend.resolve(None))
        samples.append((time.perf_counter() - t) / n)
    row("dispatch", f"kernels(resolve(None)) -> {backend.resolve(None)}",
        (statistics.median(samples), min(samples)), f"{statistics.median(samples) * 1e6:.2f} us per call")


CASES = {"host": case_host, "copy": case_copy, "dispatch": case_dispatch, "optim": case_optim, "infonce": case_infonce,
         "miner": case_miner, "khop": case_khop, "skipgram": case_skipgram, "gcn": case_gcn, "grace": case_grace,
         "inbatch": case_inbatch, "gemm": case_gemm}


def _cpu_model():
    """The host CPU's model name (Linux), for comparing machines."""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "cpu model unknown"


def main(argv=None):
    global SMOKE, SYNC
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("cases", nargs="*", help=f"any of {', '.join(CASES)} (default: all)")
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--no-cpu", action="store_true", help="skip the CPU-backend rows")
    ap.add_argument("--cpu-only", action="store_true", help="only the CPU rows of skipgram (no GPU needed)")
    ap.add_argument("--workers", type=int, help="CPU threads of skipgram's CPU row (default: all cores)")
    ap.add_argument("--json", help="write the rows here")
    ap.add_argument("--kernel-times", action="store_true",
                    help="gcn, grace: also time each kernel of a 2-epoch device fit (launches synchronised one "
                         "by one)")
    ap.add_argument("--pool", choices=("on", "off"),
                    help="set FASTGNN_CUDA_POOL: allocate through fastgnn's stream-ordered device memory pool "
                         "(on, the default) or through cuMemAlloc/cuMemFree (off); takes effect only if this "
                         "process has not opened the GPU yet")
    args = ap.parse_args(argv)
    unknown = sorted(set(args.cases) - set(CASES))
    if unknown:
        ap.error(f"unknown cases {unknown}; choose from {list(CASES)}")
    args.cases = args.cases or list(CASES)
    SMOKE = args.smoke
    from fastgnn import backend

    if args.pool:
        os.environ[backend.POOL_ENV_VAR] = "1" if args.pool == "on" else "0"
    ok, why = backend.cuda_status()
    if args.cpu_only:
        ok, args.cases, SYNC = True, ["skipgram"], False
    elif not ok:
        print(f"SKIP: CUDA not usable: {why}")
        return 0
    from numba import cuda

    if not args.cpu_only and not backend.simulator_enabled():
        dev = cuda.get_current_device()
        print(f"device: {dev.name.decode() if isinstance(dev.name, bytes) else dev.name}, "
              f"cc {dev.compute_capability}, {dev.MULTIPROCESSOR_COUNT} SMs; cpu cores {os.cpu_count()} "
              f"({_cpu_model()})")
        print(f"device memory: {backend.cuda_pool_info()['reason']}")
    import numba

    torch = _torch()
    print(f"numba {numba.__version__}, numpy {np.__version__}, torch {torch.__version__ if torch else 'absent'}",
          flush=True)
    failed = []
    for name in args.cases:
        try:
            CASES[name](args)
        except Exception as exc:  # keep going: one device lease, every figure counts
            import traceback

            traceback.print_exc()
            print(f"FAILED {name}: {type(exc).__name__}: {exc}", flush=True)
            failed.append(name)
        if args.json:  # after every case: a run stopped at its time limit keeps the cases it finished
            with open(args.json, "w") as fh:
                json.dump(dict(rows=ROWS, bandwidth=BANDWIDTH, failed=failed, pool=backend.cuda_pool_info()), fh,
                          indent=1)
    print("\nsummary")
    for r in ROWS:
        print(f"{r['case']:9s} {r['impl']:44s} {r['median_ms']:11.3f} ms  {r['extra']}")
    print(f"device memory pool: {backend.cuda_pool_info()}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
