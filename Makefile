# edgeprune: every target creates or reuses the project environment in .venv/.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PROFILE ?= full
SEEDS ?= 1
BUNDLE := build/bundle
RESULTS := build/results
# Pinned: on the workstations this was built on, pip's wheel folder serves this version as the CPU build, while an
# unpinned torch pulls a CUDA build of several GB. Where plain PyPI is all pip sees (Linux gets the CUDA build
# there), point pip at PyTorch's CPU wheel index: make setup TORCH_PIP_ARGS='--index-url <that index>'.
TORCH_PIN := torch==2.13.0
TORCH_PIP_ARGS ?=

export PROFILE
# Data: $EDGEPRUNE_DATA if set, else a shared/datasets folder beside the checkout, else the user cache (download).
EDGEPRUNE_DATA ?= $(abspath $(wildcard ../shared/datasets))
export EDGEPRUNE_DATA

.PHONY: all setup export bench report test clean distclean

all: export bench report

$(BIN)/harness: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q $(TORCH_PIP_ARGS) $(TORCH_PIN)
	$(BIN)/python -m pip install -q -e '.[test]'
	@touch $@

setup: $(BIN)/harness

export: setup
	$(BIN)/harness export --profile $(PROFILE) --seeds $(SEEDS) --out $(BUNDLE)

# The runner on this machine, twice: the onnxruntime default thread count and a single thread. Five timing rounds
# per file, each 0.1 s window beside a 0.1 s window of the dense reference, so every speed-up gets a paired interval
# over the rounds (runners/rounds.py); the whole of it takes no longer than the three 0.4 s windows it replaces.
BENCH_TIMING := --rounds 5 --min-seconds 0.1
bench: setup
	@test -f $(BUNDLE)/manifest.json || { echo "no bundle in $(BUNDLE): run 'make export' first"; exit 2; }
	@mkdir -p $(RESULTS)
	$(BIN)/runner bench $(BUNDLE) $(BENCH_TIMING) --out $(RESULTS)/workstation.json
	$(BIN)/runner bench $(BUNDLE) $(BENCH_TIMING) --threads 1 --out $(RESULTS)/workstation-1thread.json

report: setup
	@ls $(RESULTS)/*.json >/dev/null 2>&1 || { echo "no results in $(RESULTS): run 'make bench' first"; exit 2; }
	$(BIN)/harness report $(RESULTS)/*.json --bundle $(BUNDLE) --out build/report

test: setup
	$(BIN)/python -m pytest -q

clean:
	rm -rf build

distclean: clean
	rm -rf runs $(VENV) *.egg-info
