#!/usr/bin/env bash
# One GPU lease, one call: the GPU figures of GPU_RESULTS.md that are still open, the CUDA test suite on the real
# GPU, and the device-resident cases again without the stream-ordered memory pool. Every output lands in $OUT
# (default ./gpu_out): device.txt, bench.txt + rows.json, tests.txt, bench_nopool.txt + rows_nopool.json.
#
#     bash asv_benchmarks/gpu_session.sh            # from the repository root, on the GPU machine
#
# Each step has its own time limit (BENCH_S, TESTS_S, POOL_S seconds) so that the whole run fits one device
# call of 10 minutes; a step that runs out leaves what it printed. BENCH_ARGS adds options to the first bench
# (default "--no-cpu --kernel-times": GPU rows only, with the per-kernel tables of the infonce, gcn and grace
# cases; "--kernel-times" adds the CPU backend's rows). GPU rows only by default: in Run 8 (GPU_RESULTS.md), with
# the CPU rows in the same process, the cases that launch many small kernels ran 30-75% slower than in the GPU-only
# Run 6 (the cause is not established). PYTHON picks the interpreter (default python3, the device image's, which
# has numba-cuda, torch and pytest-xdist).
set -u
OUT=${OUT:-gpu_out}
PY=${PYTHON:-python3}
mkdir -p "$OUT"

# numba-cuda 0.30.4 overloads np.row_stack, which numpy 2.5 removed: give it the alias on this machine only.
SHIM=$(mktemp -d)
cat > "$SHIM/sitecustomize.py" <<'PYEOF'
import numpy
if not hasattr(numpy, "row_stack"):
    numpy.row_stack = numpy.vstack
PYEOF
export PYTHONPATH="$SHIM:$PWD${PYTHONPATH:+:$PYTHONPATH}"
unset NUMBA_ENABLE_CUDASIM FASTGNN_CUDA_POOL
BENCH_ARGS=${BENCH_ARGS---no-cpu --kernel-times}

{ nvidia-smi -L; nvidia-smi --query-gpu=clocks.sm,clocks.max.sm,clocks.mem,power.limit,temperature.gpu,clocks_throttle_reasons.active --format=csv
  $PY -c "import numba, numpy, torch; print('numba', numba.__version__, 'numpy', numpy.__version__,
'torch', torch.__version__)"; nproc; git log --oneline -1; } > "$OUT/device.txt" 2>&1

# host first (seconds): what a launch and a round trip cost this machine's host, to compare machines by. Then
# the cases still short of their targets (info_nce, the GCN/GRACE epochs, the GEMM, the miner), so a step
# stopped at its limit loses the least; copy before optim (the optimizers' share of the copy bandwidth). The
# memory pool is on by default since Run 5 (FASTGNN_CUDA_POOL unset). skipgram and dispatch last: their targets were
# met in Run 3 (dispatch) and Run 5 (skip-gram).
timeout "${BENCH_S:-300}" $PY asv_benchmarks/gpu_bench.py host infonce gcn grace gemm copy optim miner inbatch skipgram dispatch $BENCH_ARGS \
    --json "$OUT/rows.json" > "$OUT/bench.txt" 2>&1
echo "bench exit $?" >> "$OUT/bench.txt"

XDIST=()
if $PY -c "import xdist" 2>/dev/null; then XDIST=(-n "$(nproc)" --dist loadfile); fi
timeout "${TESTS_S:-150}" $PY -m pytest tests/cuda -q "${XDIST[@]}" -p no:cacheprovider > "$OUT/tests.txt" 2>&1
echo "tests exit $?" >> "$OUT/tests.txt"

# The same device-resident cases without the pool (cuMemAlloc/cuMemFree), to compare with the default run.
timeout "${POOL_S:-120}" $PY asv_benchmarks/gpu_bench.py infonce gcn grace --no-cpu --pool off \
    --json "$OUT/rows_nopool.json" > "$OUT/bench_nopool.txt" 2>&1
echo "no-pool bench exit $?" >> "$OUT/bench_nopool.txt"

tail -n 25 "$OUT/bench.txt" "$OUT/bench_nopool.txt"
tail -n 15 "$OUT/tests.txt"
