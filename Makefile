# pianoeval: two commands on a fresh machine.
#   make demo   set up (if needed), then run the main job on the bundled data
#   make test   set up (if needed), then run the test suite
# Set-up is idempotent and fast when everything is already installed.

PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(VENV)/bin/pip
STAMP  := $(VENV)/.pianoeval-installed
APT_PACKAGES := libfluidsynth3 musescore-general-soundfont
PYTEST_ARGS ?=

.PHONY: setup demo test data benchmarks clean-results

setup: $(STAMP)

# The stamp depends on pyproject.toml: editing the dependencies reinstalls.
$(STAMP): pyproject.toml Makefile
	@bash -c 'missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	  if [ -n "$$missing" ]; then \
	    echo "[setup] installing system packages:$$missing"; \
	    if [ "$$(id -u)" = 0 ]; then SUDO=""; elif sudo -n true 2>/dev/null; then SUDO="sudo -n"; \
	    else echo "[setup] error: need root (or sudo) to install$$missing; install them and rerun" >&2; exit 1; fi; \
	    $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	  fi'
	@test -x $(PY) || { echo "[setup] creating $(VENV)"; $(PYTHON) -m venv $(VENV); }
	@$(PY) -c "import torch, sys; sys.exit(torch.__version__.split('+')[0] != '2.13.0')" 2>/dev/null || \
	  { echo "[setup] installing torch==2.13.0 (local CPU build)"; $(PIP) install -q torch==2.13.0; }
	@echo "[setup] installing pianoeval and its pinned dependencies"
	@bash -c 'set -o pipefail; $(PIP) install -q -e ".[dev,tracking]" 2>&1 | { grep -v "is ignored: it is neither" || true; }'
	@$(PY) -m pianoeval.setup_assets
	@touch $(STAMP)

demo: setup
	$(PY) runners/demo.py

test: setup
	$(PY) -m pytest $(PYTEST_ARGS)

# Rebuild the bundled note-feature cache from the raw bundled data.
data: setup
	$(PY) runners/prepare_data.py --force

benchmarks: setup
	$(PY) benchmarks/data_pipeline.py

clean-results:
	rm -rf results/sweeps results/ablations results/runs
