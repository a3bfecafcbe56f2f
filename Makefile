# Every target bootstraps .venv itself: a fresh machine needs only Python 3 (with venv and pip) and a C compiler.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
SIGS   := build/kernel-signatures
PYTEST_ARGS ?=
# pytest-xdist: one worker per core, each test file in one worker (module fixtures, patched kernels). On this
# 2-core machine it took the simulator suite from about 37 to 19 minutes. XDIST= runs in one process.
XDIST ?= -n auto --dist loadfile

.PHONY: run test test-cpu test-cuda test-ptx bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed-run: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[test,cuda,ptx,eval]"
	touch $@ $(VENV)/.installed-run

$(VENV)/.installed-bench: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[bench,eval]"
	touch $@ $(VENV)/.installed-run

## make run: the main job (fastgnn demo on the built-in planted-partition graph)
run: $(VENV)/.installed-run
	$(BIN)/fastgnn demo

## make test: every test; the CUDA twins in their own process under the Numba CUDA simulator, which
## records each kernel launch's argument types in $(SIGS); then those kernels compiled to PTX (no GPU needed)
test: test-cpu test-cuda
	$(MAKE) --no-print-directory test-ptx

test-cpu: $(VENV)/.installed-test
	$(BIN)/python -m pytest tests -q $(XDIST) $(PYTEST_ARGS)

test-cuda: $(VENV)/.installed-test
	rm -rf $(SIGS)
	NUMBA_ENABLE_CUDASIM=1 FASTGNN_RECORD_KERNEL_SIGNATURES=$(CURDIR)/$(SIGS) $(BIN)/python -m pytest tests/cuda -q $(XDIST) $(PYTEST_ARGS)

test-ptx: $(VENV)/.installed-test
	@ls $(SIGS)/signatures-*.pkl >/dev/null 2>&1 || { echo "test-ptx: no kernel signatures in $(SIGS): run make test-cuda first" >&2; exit 1; }
	NUMBA_ENABLE_CUDASIM=0 FASTGNN_PTX_SIGNATURES=$(CURDIR)/$(SIGS) $(BIN)/python -m pytest tests/test_cuda_ptx.py -q $(PYTEST_ARGS)

## make bench: the asv suite on this machine's Python (results in asv_benchmarks/results)
bench: $(VENV)/.installed-bench
	cd asv_benchmarks && ../$(BIN)/asv machine --yes && ../$(BIN)/asv run --python=same --show-stderr

clean:
	rm -rf $(VENV) build *.egg-info asv_benchmarks/results asv_benchmarks/html
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
