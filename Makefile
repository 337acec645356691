# The two commands: `make quickstart` and `make test`. Both set up .venv/ first.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.setup-stamp
# The tested set: every package with its version and hashes, for Python 3.11 on x86_64 Linux,
# torch as its CPU build (2.13.0+cpu). `make lock` writes it; set-up installs exactly it.
LOCK := locks/py3.11.txt
# Where the lock's torch (2.13.0+cpu) comes from, if not from this machine's pip sources
# (tools/pip_index_args.py): make setup TORCH_PIP_ARGS="--extra-index-url https://download.pytorch.org/whl/cpu"
TORCH_PIP_ARGS ?=
HAS_GPU := $(shell command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1 && echo yes)
# uv installs the lock in a fraction of pip's time (README: set-up timings). pip bootstraps it
# into .venv/uv/ (outside the venv's packages, so the venv holds exactly the lock);
# `make setup INSTALLER=pip` sets up with pip alone (pip install --require-hashes).
INSTALLER ?= uv
UV_VERSION := 0.13.9
UV := $(VENV)/uv/bin/uv
# uv reads no pip.conf: it gets this machine's pip sources (index, wheel folder; none on a plain
# machine, so PyPI) from tools/pip_index_args.py, and picks the best version across all of them,
# as pip does (uv's default takes the first index that has it). `--sources` leaves pip's
# constraint file out: uv refuses a range beside a hash-checked lock's exact pins.
UV_SOURCES = --index-strategy unsafe-best-match $$($(PYTHON) tools/pip_index_args.py --sources)

.PHONY: setup quickstart test lint bench clean browser lock smoke

setup: $(STAMP)

$(UV):
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found (make setup and make test use Python 3.11; see README for 3.12 and 3.13)"; exit 1; }
	$(PYTHON) -m pip install --quiet --target $(VENV)/uv uv==$(UV_VERSION)

$(STAMP): pyproject.toml $(LOCK)
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found (make setup and make test use Python 3.11; see README for 3.12 and 3.13)"; exit 1; }
	# The lock changed (or there is no venv): start from an empty venv, so that it holds the
	# lock and nothing left from an older one (e.g. mlflow beside mlflow-skinny).
	rm -rf $(VENV)
	$(PYTHON) -m venv $(VENV)
ifeq ($(INSTALLER),pip)
	$(BIN)/python -m pip install --quiet --require-hashes --no-deps -r $(LOCK) $(TORCH_PIP_ARGS)
	$(BIN)/python -m pip install --quiet --no-deps -e .
else
	$(MAKE) --no-print-directory $(UV)
	$(UV) pip sync --quiet --python $(BIN)/python --require-hashes $(UV_SOURCES) $(TORCH_PIP_ARGS) $(LOCK)
	$(UV) pip install --quiet --python $(BIN)/python --no-deps -e .
endif
ifeq ($(HAS_GPU),yes)
	# An NVIDIA GPU: PyPI's CUDA build of the same torch replaces the lock's CPU build (with
	# the CUDA libraries it names; the one part of the set-up that is not from the lock).
	$(BIN)/python -m pip install --quiet --force-reinstall --index-url https://pypi.org/simple \
		"torch==$$($(BIN)/python -c 'import torch; print(torch.__version__.split("+")[0])')"
endif
	touch $(STAMP)

# Refresh every lock from pyproject.toml's ranges to the newest releases they admit, except what
# locks/constraints.in holds back; then run `make test` before committing the new locks.
# `make lock UPGRADE=` only adds what pyproject.toml newly asks for and keeps every other pin.
UPGRADE ?= --upgrade
# Which lock is for what: locks/README.md. manylinux_2_35: glibc 2.35 (Ubuntu 22.04, the
# inference base; Debian 12 here has 2.36).
LOCK_COMMON = --quiet --generate-hashes --python-platform x86_64-manylinux_2_35 \
	--custom-compile-command "make lock" -c locks/constraints.in
# The tested versions, as constraints for the other locks (so all agree), less the packages
# whose lock differs on purpose: torch (CPU or CUDA build) and what locks/overrides.in lifts.
TESTED := $(VENV)/tested-pins.txt
# The tested torch (its CPU build), for the inference image: its endpoints run on CPU sizes.
CPU_TORCH := $(VENV)/cpu-torch.txt
lock: $(UV)
	$(UV) pip compile $(LOCK_COMMON) $(UV_SOURCES) $(UPGRADE) --python-version 3.11 \
		--extra all --extra dev --override locks/overrides.in pyproject.toml -o $(LOCK)
	sed -E -n 's/^([A-Za-z0-9_.-]+==[^ ]+) .*/\1/p' $(LOCK) \
		| grep -v -i -E '^(torch|azure-identity)==' > $(TESTED)
	sed -E -n 's/^(torch==[^ ]+) .*/\1/p' $(LOCK) > $(CPU_TORCH)
	# PyPI alone for 3.12 and 3.13: it has the one torch there is for them (the CUDA build;
	# this machine's wheel folder and local indexes hold 3.11 builds only).
	for v in 3.12 3.13; do \
		$(UV) pip compile $(LOCK_COMMON) -c $(TESTED) --python-version $$v \
			pyproject.toml -o locks/py$$v.txt || exit 1; done
	$(UV) pip compile $(LOCK_COMMON) $(UV_SOURCES) -c $(TESTED) -c $(CPU_TORCH) \
		--python-version 3.11 environments/inference/context/requirements.in \
		-o environments/inference/context/requirements.txt
	# The training image runs on NVIDIA GPUs: PyPI alone, so torch is its CUDA build.
	$(UV) pip compile $(LOCK_COMMON) -c $(TESTED) --python-version 3.11 \
		--extra training --extra onnx pyproject.toml \
		-o environments/training/context/requirements.txt

# Python 3.12 and 3.13: install that Python's lock, then fine-tune, package and predict through
# the CLI (tools/smoke_python.sh; .ci/run runs it after make test).
smoke: setup
	bash tools/smoke_python.sh 3.12 3.13

quickstart: setup
	$(BIN)/deitkit quickstart

# The evaluation report's browser test drives the OS's Chromium (playwright never downloads
# one here). Installed when missing and the machine lets us (root with apt-get); otherwise the
# test is skipped and says how to install it.
browser:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || \
	{ [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) >/dev/null 2>&1 \
	  && echo "installed chromium for the report's browser test"; } || \
	echo "no chromium: the report's browser test will be skipped (apt-get install chromium)"

test: setup browser
	# Two or more workers (at most 4: each runs torch, servers and training ranks of its own),
	# tests handed out one by one as workers free up; a single file runs faster without -n.
	$(BIN)/python -m pytest -n auto --maxprocesses 4 --dist worksteal --durations=30

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

bench: setup
	$(BIN)/python -m benchmarks

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info .pytest_cache
