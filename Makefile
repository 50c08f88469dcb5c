# geokd: the two commands of the README, and their helpers.
#   make report  -> create .venv, install, run the workflow on the embedded synthetic dataset
#   make test    -> create .venv, install, run the whole test suite: the default (fast) pass,
#                   then the slow, slurm and faults tests (slurm needs .ci/run's apt packages)
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
CONSTRAINTS := requirements/constraints.txt
STAMP := $(VENV)/.installed
CORES ?= all
export PATH := $(BIN):$(PATH)

.PHONY: report test test-fast lint install system-packages lock bench clean pull

# --quiet rules: one line per finished job, not every job's inputs and outputs (a few hundred
# lines for the whole run; the logs of each job are in logs/, a failed job's command is printed)
report: $(STAMP)
	$(BIN)/snakemake --cores $(CORES) results/report.html --quiet rules

# DVC (docs/dvc.md): fetch the tracked data and outputs from the remote, then mark them up to
# date for Snakemake, which judges by file times (DVC restores contents, not times).
pull: $(STAMP)
	$(BIN)/dvc pull
	$(BIN)/snakemake --cores $(CORES) --touch

# Both passes run their tests in parallel processes (pytest-xdist): a test file's tests in one
# process (--dist loadfile: a module's workflow run is made once, the SLURM tests share the
# host's one test cluster), the longest files first (tests/conftest.py: FIRST). The default
# pass uses a process per core; the second one at least 3, one of which mostly waits for
# SLURM. TEST_WORKERS=0 SLOW_WORKERS=0: one process, as before. Each pass ends with
# "processes left behind: 0" (tests/helpers/leftovers.py).
TEST_WORKERS ?= auto
SLOW_WORKERS ?= $(shell $(PYTHON) -c "import os; print(max(3, os.cpu_count() or 1))")
XDIST = --dist loadfile --no-loadscope-reorder

test: system-packages $(STAMP)
	$(BIN)/python -m pytest -q --durations=15 -n $(TEST_WORKERS) $(XDIST)
	$(BIN)/python -m pytest -q --durations=15 -m "slow or slurm or faults" --timeout 3600 \
		-n $(SLOW_WORKERS) $(XDIST)

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -x

lint: $(STAMP)
	$(BIN)/ruff check src tests bench scripts
	$(BIN)/ruff format --check src tests bench scripts
	$(BIN)/snakefmt --check workflow
	$(BIN)/snakemake --lint --cores 1

install: $(STAMP)

# Debian packages of the SLURM and browser tests (apt-get as root; else a note and those skip).
system-packages:
	bash scripts/system-packages.sh

# The venv is (re)built when the package metadata or the lock changes; then the distance
# kernels are compiled once into numba's on-disk cache (about a minute on one core), instead
# of by every parallel job or test process that first calls them.
$(STAMP): pyproject.toml $(CONSTRAINTS)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip==25.3"
	$(BIN)/python -m pip install --quiet -c $(CONSTRAINTS) "torch==2.13.0"
	$(BIN)/python -m pip install --quiet -c $(CONSTRAINTS) -e ".[dev]"
	$(BIN)/python scripts/compile_kernels.py
	touch $(STAMP)

# Re-resolve the dependencies in a scratch venv and write the lock (exact versions of everything).
lock:
	rm -rf .lockvenv && $(PYTHON) -m venv .lockvenv
	.lockvenv/bin/python -m pip install --quiet "pip==25.3" "torch==2.13.0"
	.lockvenv/bin/python -m pip install --quiet -e ".[dev]"
	mkdir -p requirements
	{ echo "# Exact versions of every dependency (make lock). torch is the CPU wheel 2.13.0."; \
	  .lockvenv/bin/python -m pip freeze --exclude-editable | sed 's/+cpu$$//'; } > $(CONSTRAINTS)
	rm -rf .lockvenv

bench: $(STAMP)
	$(BIN)/python bench/bench_distances.py

clean:
	rm -rf results logs benchmarks .snakemake data/interim
