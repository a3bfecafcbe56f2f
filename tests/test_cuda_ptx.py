"""Compile the CUDA kernels to PTX for the argument types the simulator tests launch them with.

The Numba CUDA simulator runs kernels as Python, so it never types or lowers the GPU code (nor the
GPU-only branches such as ``mathfn.mul_rn``'s libdevice call or ``warp.py``'s shuffles). ``make test``
therefore runs ``tests/cuda`` under the simulator with ``FASTGNN_RECORD_KERNEL_SIGNATURES=<dir>``
(``tests/cuda/conftest.py`` records every fastgnn kernel launch as module, qualname and argument types),
then this file in a normal process with ``FASTGNN_PTX_SIGNATURES=<dir>``: every distinct recorded
signature is compiled with ``numba.cuda.compile_ptx`` for sm_90, which needs NVVM (the ``ptx`` extra) but
no GPU (about a minute for ~110 signatures on 2 CPU cores), and every module-level kernel in fastgnn must
have been recorded at least once.
"""
import functools
import importlib
import os
import pickle
import time
from pathlib import Path

import pytest

SIG_DIR = os.environ.get("FASTGNN_PTX_SIGNATURES")
CC = (9, 0)
# (module, qualname) -> reason, for kernels the simulator tests cannot launch; keep it empty where possible.
UNLAUNCHED = {}

if not SIG_DIR:
    pytest.skip("FASTGNN_PTX_SIGNATURES is unset (make test sets it after recording the simulator launches)",
                allow_module_level=True)
SIG_FILES = sorted(Path(SIG_DIR).glob("signatures-*.pkl"))
if not SIG_FILES:
    pytest.skip(f"no recorded signatures in {SIG_DIR}: run tests/cuda under NUMBA_ENABLE_CUDASIM=1 with "
                f"FASTGNN_RECORD_KERNEL_SIGNATURES={SIG_DIR} first", allow_module_level=True)

from numba import config  # noqa: E402

if config.ENABLE_CUDASIM:
    pytest.skip("compile_ptx needs numba-cuda's real target: unset NUMBA_ENABLE_CUDASIM", allow_module_level=True)
pytest.importorskip("numba_cuda", reason="numba-cuda is not installed (the cuda extra)")

from numba import cuda  # noqa: E402
from numba.cuda import dispatcher as cuda_dispatcher  # noqa: E402

import fastgnn  # noqa: E402

# the kernel's own compile options that compile_ptx also takes
_OPTIONS = ("debug", "lineinfo", "fastmath", "opt", "forceinline", "launch_bounds")


@functools.cache
def _recorded():
    """{(module, qualname): set of argument-type tuples} over every recording in SIG_DIR."""
    sigs = {}
    for path in SIG_FILES:
        for module, qualname, argtypes in pickle.loads(path.read_bytes()):
            sigs.setdefault((module, qualname), set()).add(argtypes)
    return sigs


def _resolve(module, qualname):
    obj = importlib.import_module(module)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    if not isinstance(obj, cuda_dispatcher.CUDADispatcher):
        raise TypeError(f"{module}.{qualname} is a {type(obj).__name__}, not a cuda.jit kernel")
    return obj


def _defined_kernels():
    """(module, qualname) of every module-level ``cuda.jit`` kernel (not device function) in fastgnn."""
    root = Path(fastgnn.__file__).resolve().parent
    kernels = set()
    for path in sorted(root.rglob("*.py")):
        if "cuda.jit" not in path.read_text(encoding="utf-8"):
            continue
        parts = path.relative_to(root.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        for obj in vars(importlib.import_module(name)).values():
            if (isinstance(obj, cuda_dispatcher.CUDADispatcher) and not obj.targetoptions.get("device")
                    and obj.py_func.__module__ == name):
                kernels.add((name, obj.py_func.__qualname__))
    return kernels


class _Device:
    compute_capability = CC


@pytest.fixture(scope="module")
def compile_ptx():
    """``cuda.compile_ptx``, after a probe compile of a one-line kernel (skips unless NVVM can be loaded).

    A kernel's call to a non-inline device function compiles that function for the current device
    (``CUDADispatcher.compile_device`` calls ``get_current_device()``), which needs a driver: here the
    current device is a stub of compute capability ``CC``."""
    from numba import float64

    def probe(x):
        x[0] = 1.0

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(cuda_dispatcher, "get_current_device", lambda: _Device)
        try:
            cuda.compile_ptx(probe, (float64[:],), cc=CC)
        except Exception as e:  # noqa: BLE001 - any loader/toolkit error means "cannot compile here"
            pytest.skip(f"cannot compile PTX here (install the ptx extra for NVVM/NVRTC): {type(e).__name__}: {e}")
        yield cuda.compile_ptx


def test_recorded_kernels_compile_to_ptx(compile_ptx):
    failures = []
    count = 0
    start = time.perf_counter()
    for (module, qualname), argsets in sorted(_recorded().items()):
        try:
            kernel = _resolve(module, qualname)
        except Exception as e:  # noqa: BLE001
            failures.append(f"{module}.{qualname}: cannot load: {type(e).__name__}: {e}")
            continue
        opts = {k: kernel.targetoptions[k] for k in _OPTIONS if k in kernel.targetoptions}
        for argtypes in sorted(argsets, key=str):
            count += 1
            try:
                compile_ptx(kernel.py_func, argtypes, cc=CC, **opts)
            except Exception as e:  # noqa: BLE001
                failures.append(f"{module}.{qualname}{argtypes}:\n    {type(e).__name__}: {str(e)[:3000]}")
    print(f"compiled {count} signatures of {len(_recorded())} kernels to PTX (sm_{CC[0]}{CC[1]}) "
          f"in {time.perf_counter() - start:.1f} s")
    if failures:
        pytest.fail(f"{len(failures)} failures ({count} signatures of {len(_recorded())} kernels tried):\n"
                    + "\n".join(failures), pytrace=False)


def test_every_kernel_has_a_recorded_signature():
    missing = _defined_kernels() - set(_recorded()) - set(UNLAUNCHED)
    if missing:
        pytest.fail("kernels no simulator test launches, so their GPU code is never compiled: "
                    + ", ".join(f"{m}.{q}" for m, q in sorted(missing)), pytrace=False)


def test_word2vec_reads_its_tables_from_l2(compile_ptx):
    """The Hogwild skip-gram / CBOW kernel reads the shared tables with ``ld.global.cg`` (coherent L2; see
    ``kernels/cuda/coherent.py``): with plain loads an H100 kept each SM's stale L1 copy and learnt nothing. The
    loads are side-effecting assembly, so every one stays in the PTX: at least one per table read in the source."""
    import re

    sigs = _recorded().get(("fastgnn.kernels.cuda.word2vec", "_train_kernel"))
    if not sigs:
        pytest.skip("no recorded signature of the word2vec kernel")
    kernel = _resolve("fastgnn.kernels.cuda.word2vec", "_train_kernel")
    for argtypes in sorted(sigs, key=str):
        ptx, _ = compile_ptx(kernel.py_func, argtypes, cc=CC)
        width = argtypes[7].dtype.bitwidth  # syn0
        assert len(re.findall(rf"ld\.global\.cg\.f{width}\b", ptx)) >= 10, argtypes


def _ptxas():
    """The ptx extra's ptxas (nvidia-cuda-nvcc), else one on PATH, else None."""
    import shutil

    try:
        import nvidia.cuda_nvcc as nvcc
    except ImportError:
        return shutil.which("ptxas")
    found = [Path(root) / "bin" / "ptxas" for root in nvcc.__path__]
    return next((str(p) for p in found if p.is_file()), shutil.which("ptxas"))


def _nvdisasm():
    """The ptx extra's nvdisasm (nvidia-cuda-nvdisasm, under ``nvidia/cu*/bin``), else one on PATH, else None."""
    import shutil

    try:
        import nvidia
    except ImportError:
        return shutil.which("nvdisasm")
    found = [p for root in nvidia.__path__ for p in sorted(Path(root).glob("*/bin/nvdisasm")) if p.is_file()]
    return str(found[-1]) if found else shutil.which("nvdisasm")


def _assemble(ptx, tmp_path):
    """``(ptxas -v report, SASS text or None without nvdisasm)`` of one kernel's PTX for sm_90 (needs ptxas)."""
    import subprocess

    src, obj = tmp_path / "kernel.ptx", tmp_path / "kernel.o"
    src.write_text(ptx)
    res = subprocess.run([_ptxas(), f"-arch=sm_{CC[0]}{CC[1]}", "-v", str(src), "-o", str(obj)],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    nvdisasm = _nvdisasm()
    if nvdisasm is None:
        return res.stderr, None
    dis = subprocess.run([nvdisasm, "-c", str(obj)], capture_output=True, text=True)
    assert dis.returncode == 0, dis.stderr
    return res.stderr, dis.stdout


def _opcodes(lines):
    """The opcodes (predicates dropped) of SASS lines."""
    import re

    ops = []
    for line in lines:
        m = re.search(r"\*/\s+(?:@!?U?P\w+\s+)?([A-Z][A-Z0-9_.]*)", line)
        if m:
            ops.append(m.group(1))
    return ops


def _loops(sass):
    """The opcodes of each basic block that ends in a backward branch to its own label (the innermost loops)."""
    import re

    lines = sass.splitlines()
    loops = []
    for i, line in enumerate(lines):
        m = re.match(r"(\.L_x_\d+):", line)
        if not m:
            continue
        for k in range(i + 1, len(lines)):
            if lines[k].startswith(".L_"):
                break
            if re.search(rf"\bBRA\b.*`\({re.escape(m.group(1))}\)", lines[k]):
                loops.append(_opcodes(lines[i:k + 1]))
                break
    return loops


def _kk_loop(sass):
    """The instructions (opcodes) of the innermost loop that holds the GEMM's multiply-adds: from the last label
    before the first FFMA to the first branch after the last one."""
    import re

    lines = sass.splitlines()
    ffma = [i for i, line in enumerate(lines) if re.search(r"\bFFMA\b", line)]
    start = max(i for i in range(ffma[0]) if lines[i].startswith(".L_"))
    end = min(i for i in range(ffma[-1], len(lines)) if re.search(r"\bBRA\b", lines[i]))
    return _opcodes(lines[start:end + 1])


def test_gemm_keeps_its_register_blocks_in_registers(compile_ptx, tmp_path):
    """The GEMM (``kernels/cuda/autograd.py``) keeps each thread's 8 x 8 sums, operands and prefetched slice in
    local arrays indexed by constants only: they must be registers (no ``.local`` in the PTX), and, where ptxas is
    at hand, the float32 kernel must fit 128 registers without spills, so that two 256-thread blocks share an SM.
    Where nvdisasm is at hand too, the SASS of the K loop must read each k's 8 A and 8 B operands as four 16-byte
    shared loads (``LDS.128``) and nothing narrower: ptxas merges them only when it can prove the addresses
    16-byte aligned (A's rows are consecutive, B's columns permuted into runs of 4, ``_b_slot``)."""
    import re

    from numba import boolean, float32, float64
    from numba import int64 as numba_int64

    from fastgnn.kernels.cuda import autograd as ka

    ptxas = _ptxas()
    for dtype in (float32, float64):
        arr = dtype[:, ::1]
        for kernel, out, extra in ((ka._matmul, arr, ()), (ka._matmul_split, dtype[:, :, ::1], (numba_int64,))):
            sig = (arr, arr, out, boolean, boolean) + extra
            ptx, _ = compile_ptx(kernel.py_func, sig, cc=CC)
            name = f"{kernel.py_func.__name__}[{dtype}]"
            assert ".local" not in ptx, name
            if ptxas is None or dtype is float64:
                continue
            info, sass = _assemble(ptx, tmp_path)
            regs = int(re.search(r"Used (\d+) registers", info).group(1))
            assert regs <= 128 and "0 bytes spill stores" in info, (name, info)
            if sass is None:
                continue
            loop = _kk_loop(sass)
            assert loop.count("FFMA") == ka.MM_R * ka.MM_R, (name, loop)
            assert [op for op in loop if op.startswith("LDS")] == ["LDS.128"] * (2 * ka.MM_R // 4), (name, loop)


def _float32_sigs(module, qualname, arg):
    """The recorded signatures of a kernel whose argument ``arg`` is a float32 array."""
    sigs = _recorded().get((module, qualname), set())
    return sorted((a for a in sigs if str(a[arg].dtype) == "float32"), key=str)


@pytest.mark.parametrize("module, qualname, arg", [
    ("fastgnn.kernels.cuda.sparse", "spmm_csr", 9),
    ("fastgnn.kernels.cuda.gat", "_aggregate", 2),
])
def test_float32_aggregations_sum_in_float32(compile_ptx, module, qualname, arg):
    """The row aggregations of float32 features add in float32, as their docstrings and the CPU kernels do: no
    float64 arithmetic and no conversions to float64 in the PTX. (A sum started as ``X[0, 0] * 0`` is float64 in
    Numba, float32 times int64, and made every addition a float64 one with two conversions.)"""
    import re

    sigs = _float32_sigs(module, qualname, arg)
    if not sigs:
        pytest.skip(f"no recorded float32 signature of {qualname}")
    kernel = _resolve(module, qualname)
    for argtypes in sigs:
        if any(str(getattr(a, "dtype", "")) == "float64" for a in argtypes):
            continue  # float64 weights or scales promote, as they should
        ptx, _ = compile_ptx(kernel.py_func, argtypes, cc=CC)
        assert not re.findall(r"\b(?:add|fma\.rn|mul)\.f64\b|cvt\.f64\.f32", ptx), (qualname, argtypes)


@pytest.mark.parametrize("module, qualname, arg", [
    ("fastgnn.kernels.cuda.sparse", "spmm_csr", 9),
    ("fastgnn.kernels.cuda.losses", "_table_grad_grouped", 0),
    ("fastgnn.kernels.cuda.losses", "_scatter_gather", 0),
])
def test_row_gathers_keep_eight_loads_in_flight(compile_ptx, tmp_path, module, qualname, arg):
    """The warp-per-row gathers (:mod:`fastgnn.kernels.cuda.rows`: four columns per lane, two gathered rows per
    step), ``sparse.spmm_csr``, the grouped table gradient of InfoNCE and the grouped scatter-add of the Trainer and
    the reconstruction loss: in the loop of eight multiply-adds, each
    lane issues its eight loads of the gathered rows before the first multiply-add, so none waits for another,
    and nothing spills. Where ptxas and nvdisasm are at hand."""
    if _ptxas() is None:
        pytest.skip("no ptxas (the ptx extra)")
    sigs = _float32_sigs(module, qualname, arg)
    if not sigs:
        pytest.skip(f"no recorded float32 signature of {qualname}")
    kernel = _resolve(module, qualname)
    for argtypes in sigs:
        ptx, _ = compile_ptx(kernel.py_func, argtypes, cc=CC)
        info, sass = _assemble(ptx, tmp_path)
        assert "0 bytes spill stores" in info, info
        if sass is None:
            pytest.skip("no nvdisasm (the ptx extra)")
        steps = [ops for ops in _loops(sass) if ops.count("FFMA") == 8]
        assert steps, (argtypes, "no loop of eight multiply-adds")
        for ops in steps:
            first = ops.index("FFMA")
            assert sum(op.startswith("LDG") for op in ops[:first]) >= 8, (argtypes, ops)


def test_nonfinite_scan_streams_eight_loads_a_pass(compile_ptx, tmp_path):
    """The guarded optimizer step's scan (``optim._nonfinite_code``) is bound by the read of the gradient: its
    grid-stride loop issues a thread's eight loads before the first add (float32; ptxas moves the first adds of
    float64 up, after at least four loads), tests them with adds alone (``y - y``,
    no compare and branch an element), and indexes with unsigned integers, so no negative-index code sits in the
    loop (with signed indices ptxas gave 112 instructions a pass of eight, 48 without). Before, the scan had no
    loop: a thread read eight elements and ended, 32,768 blocks for 64M elements (2.06 TB/s against 2.91 on an
    H100, GPU_RESULTS.md, Run 7). Float32 and float64; where ptxas and nvdisasm are at hand."""
    if _ptxas() is None:
        pytest.skip("no ptxas (the ptx extra)")
    from numba import float32, float64, int32, int64

    from fastgnn.kernels.cuda import optim as ko

    word = int32[::1]
    for dtype, add, ahead in ((float32, "FADD", ko._SCAN), (float64, "DADD", ko._SCAN // 2)):
        ptx, _ = compile_ptx(ko._nonfinite_code.py_func, (dtype[::1], word, int64, word, word), cc=CC)
        info, sass = _assemble(ptx, tmp_path)
        assert "0 bytes spill stores" in info, info
        if sass is None:
            pytest.skip("no nvdisasm (the ptx extra)")
        passes = [ops for ops in _loops(sass) if ops.count(add) == 2 * ko._SCAN]
        assert len(passes) == 1, (dtype, _loops(sass))
        ops = passes[0]
        assert sum(op.startswith("LDG") for op in ops) == ko._SCAN and len(ops) <= 8 * ko._SCAN, (dtype, ops)
        assert sum(op.startswith("LDG") for op in ops[:ops.index(add)]) >= ahead, (dtype, ops)
