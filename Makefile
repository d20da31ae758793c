# Two commands do all the set-up on a fresh machine:
#   make pipeline   install everything into .venv, then run the default pipeline (dvc repro)
#   make test       install everything into .venv, then run the tests (all but those marked long)
# make test-all adds the tests marked long (sweeps, the DVC queue, the baseline's reproduction): CI runs it.
VENV ?= .venv
PY := $(VENV)/bin/python
# Stages run as `python -m stages.<name>`: put the venv first on PATH for DVC's subprocesses.
export PATH := $(abspath $(VENV))/bin:$(PATH)

.PHONY: pipeline test test-all test-fast bench install browser baseline docs docs-reference lint

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

# The committed baseline: dvc.lock and the default pipeline's small deterministic results, so that
# a fresh clone's `dvc exp show` has a baseline row and `reprokit reproduce HEAD` proves it
# (tests/integration/test_baseline.py). dvc.lock holds the hashes of reprokit/'s code: run this
# after every change to the code or params.yaml, then commit what it staged. DVC's own
# .gitignore files (they keep the cached outputs out of git) are staged with it.
BASELINE := dvc.lock runs/train/metrics.json runs/validate/metrics.json runs/validate/plots/by_category.tsv
baseline: install
	dvc repro
	git add -- $(BASELINE) $$(find data runs -name .gitignore)
	@echo "staged the baseline ($(BASELINE)): commit it"

# The report's browser test drives the system's Chromium (Debian's `chromium` package; Playwright
# cannot download a browser here). Installed with apt only where it is missing and apt can run
# (root); otherwise the test is skipped with the reason, except under CI, where it must run.
browser:
	@if command -v chromium >/dev/null 2>&1; then :; \
	elif command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
		echo "installing Debian's chromium for the report's browser test"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	elif [ -n "$$CI" ]; then \
		echo "error: no chromium and no root apt-get to install it; CI runs the report's browser test" >&2; exit 1; \
	else \
		echo "note: no chromium on PATH: the report's browser test will be skipped (sudo apt-get install chromium)"; \
	fi

# The slowest tests are listed at the end of each run, so a test that grows expensive shows.
# Three workers (pytest-xdist) on the 2 cores of the machine this is tested on: a slow test spends
# part of its time waiting (servers starting, polling a stage that runs), which a third worker
# fills (`make test` on the working checkout: 567 s with three, 608 s with two); --dist loadscope keeps a test module's
# tests (and its module-scoped finished pipeline) on one worker.
PYTEST_PARALLEL := -q -n 3 --dist loadscope --durations=10

# Before you push: every test but the few marked long, each of which runs many pipelines.
test: install browser
	$(PY) -m pytest $(PYTEST_PARALLEL) -m "not long"

# Everything (what CI runs): the tests marked long too.
test-all: install browser
	$(PY) -m pytest $(PYTEST_PARALLEL)

# While developing: everything but the tests marked slow (real pipelines, real servers).
test-fast: install
	$(PY) -m pytest -q -m "not slow"

# The documentation site (mkdocs.yml, docs/) into site/. --strict: a broken link, a link to a missing heading
# or a page outside the nav fails the build. docs/reference/ is generated from the code: after changing a
# default, a CLI flag or a run-folder file, `make docs-reference` and commit (tests/unit/test_docs_reference.py
# fails while it is stale). NO_MKDOCS_2_WARNING: no end-of-life banner from Material on every build.
docs: install
	$(PY) -m docs.generate --check
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --quiet

docs-reference: install
	$(PY) -m docs.generate

bench: install
	$(PY) benchmarks/bench_pipeline.py
	$(PY) benchmarks/bench_metrics.py
	$(PY) benchmarks/bench_mirror.py
	$(PY) benchmarks/bench_pml.py
	$(PY) benchmarks/bench_faiss.py
	$(PY) benchmarks/bench_data.py
	$(PY) benchmarks/bench_log.py
	$(PY) benchmarks/bench_visualize.py
	$(PY) benchmarks/bench_sweep.py

# Lint and types (CI runs this before the tests): ruff's rules and formatting (pyproject.toml's
# [tool.ruff]) over the code, the tests, the benchmarks and the docs generator; mypy over reprokit/.
LINTED := reprokit stages tests benchmarks docs
lint: install
	$(VENV)/bin/ruff check $(LINTED)
	$(VENV)/bin/ruff format --check $(LINTED)
	$(VENV)/bin/mypy
