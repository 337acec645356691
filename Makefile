# The two commands: `make quickstart` and `make test`. Both set up .venv/ first.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.setup-stamp
# Without an NVIDIA GPU, take the CPU build of torch first; otherwise pip resolves the
# default (CUDA) wheel and pulls several GB of CUDA packages.
# Elsewhere, point the installer (uv or pip) at the CPU wheels: make test TORCH_PIP_ARGS="--index-url https://download.pytorch.org/whl/cpu"
TORCH_PIP_ARGS ?=
HAS_GPU := $(shell command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1 && echo yes)
# uv installs the same pinned set as pip in a fraction of the time (README: set-up timings).
# pip bootstraps it into .venv/uv/ (outside the venv's packages, so the venv holds exactly the
# tested set); `make setup INSTALLER=pip` sets up with pip alone.
INSTALLER ?= uv
UV_VERSION := 0.13.9
UV := $(VENV)/uv/bin/uv
# uv reads no pip.conf: it gets this machine's pip sources (index, wheel folder, constraint
# file; none on a plain machine, so PyPI) from tools/pip_index_args.py, and picks the best
# version across all of them, as pip does (uv's default takes the first index that has it).
UV_PIP = $(UV) pip install --quiet --python $(BIN)/python --index-strategy unsafe-best-match
UV_INSTALL = $(UV_PIP) $$($(BIN)/python tools/pip_index_args.py)

.PHONY: setup quickstart test lint bench clean browser

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found (deitkit needs Python 3.11)"; exit 1; }
	# The pins changed (or there is no venv): start from an empty venv, so that it holds the
	# tested set and nothing left from an older one (e.g. mlflow beside mlflow-skinny).
	rm -rf $(VENV)
	$(PYTHON) -m venv $(VENV)
ifeq ($(INSTALLER),pip)
	$(BIN)/python -m pip install --quiet --upgrade pip
ifneq ($(HAS_GPU),yes)
	$(BIN)/python -m pip install --quiet torch==2.13.0 $(TORCH_PIP_ARGS)
endif
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[all,dev]"
else
	$(BIN)/python -m pip install --quiet --target $(VENV)/uv uv==$(UV_VERSION)
	$(UV_INSTALL) --upgrade pip
ifneq ($(HAS_GPU),yes)
	$(UV_PIP) $$($(BIN)/python tools/pip_index_args.py $(TORCH_PIP_ARGS)) \
		-c constraints.txt torch==2.13.0
endif
	$(UV_INSTALL) -c constraints.txt -e ".[all,dev]"
endif
	touch $(STAMP)

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
