#!/usr/bin/env bash
# One GPU lease, one call: the GPU figures of GPU_RESULTS.md that are still open, the same cases again with the
# stream-ordered memory pool, and the CUDA test suite on the real GPU. Every output lands in $OUT (default
# ./gpu_out): device.txt, bench.txt + rows.json, bench_pool.txt + rows_pool.json, tests.txt.
#
#     bash asv_benchmarks/gpu_session.sh            # from the repository root, on the GPU machine
#
# Each step has its own time limit (BENCH_S, POOL_S, TESTS_S seconds) so that the whole run fits one device
# call of 10 minutes; a step that runs out leaves what it printed. PYTHON picks the interpreter (default
# python3, the device image's, which has numba-cuda, torch and pytest-xdist).
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

{ nvidia-smi -L; $PY -c "import numba, numpy, torch; print('numba', numba.__version__, 'numpy', numpy.__version__,
'torch', torch.__version__)"; nproc; git log --oneline -1; } > "$OUT/device.txt" 2>&1

# The largest gaps first (GCN epoch 0.07x torch in Run 3), so a step stopped at its limit loses the least; gemm
# (a few seconds) first of all: the 8 x 8-register GEMM of the eleventh session under most of the others.
timeout "${BENCH_S:-300}" $PY asv_benchmarks/gpu_bench.py gemm gcn grace infonce optim miner inbatch --kernel-times \
    --json "$OUT/rows.json" > "$OUT/bench.txt" 2>&1
echo "bench exit $?" >> "$OUT/bench.txt"

timeout "${POOL_S:-120}" $PY asv_benchmarks/gpu_bench.py gcn grace infonce --no-cpu --pool \
    --json "$OUT/rows_pool.json" > "$OUT/bench_pool.txt" 2>&1
echo "pool bench exit $?" >> "$OUT/bench_pool.txt"

XDIST=()
if $PY -c "import xdist" 2>/dev/null; then XDIST=(-n "$(nproc)" --dist loadfile); fi
timeout "${TESTS_S:-150}" $PY -m pytest tests/cuda -q "${XDIST[@]}" -p no:cacheprovider > "$OUT/tests.txt" 2>&1
echo "tests exit $?" >> "$OUT/tests.txt"

tail -n 25 "$OUT/bench.txt" "$OUT/bench_pool.txt"
tail -n 15 "$OUT/tests.txt"
