# Two commands do all the set-up on a fresh machine:
#   make pipeline   install everything into .venv, then run the default pipeline (dvc repro)
#   make test       install everything into .venv, then run the whole test suite (fast + slow)
VENV ?= .venv
PY := $(VENV)/bin/python
# Stages run as `python -m stages.<name>`: put the venv first on PATH for DVC's subprocesses.
export PATH := $(abspath $(VENV))/bin:$(PATH)

.PHONY: pipeline test test-fast bench install

install: $(VENV)/.installed

# torch first, pinned to the CPU build on this machine's disk: a bare range would pull a CUDA
# build with gigabytes of NVIDIA libraries. Never torchvision (it breaks Lightning's import here).
# The package asks for ranges; constraints.txt pins the exact versions this repository is tested with.
$(VENV)/.installed: pyproject.toml constraints.txt
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -c constraints.txt -e ".[dev]"
	touch $@

pipeline: install
	dvc repro

# The slowest tests are listed at the end of each full run, so a test that grows expensive shows.
test: install
	$(PY) -m pytest -q --durations=10

# While developing: everything but the tests marked slow (real pipelines, real servers).
test-fast: install
	$(PY) -m pytest -q -m "not slow"

bench: install
	$(PY) benchmarks/bench_pipeline.py
	$(PY) benchmarks/bench_metrics.py
	$(PY) benchmarks/bench_mirror.py
	$(PY) benchmarks/bench_pml.py
	$(PY) benchmarks/bench_faiss.py
	$(PY) benchmarks/bench_data.py
	$(PY) benchmarks/bench_log.py
	$(PY) benchmarks/bench_sweep.py
