# edgeprune: every target creates or reuses the project environment in .venv/.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PROFILE ?= full
SEEDS ?= 1
# complete: every variant and file (the lab's default); deployable: dense, best structured, best int8 per model.
PRESET ?= complete
# report.pdf through headless Chromium: auto (when one is installed; otherwise the report says how to get one), yes, no.
PDF ?= auto
# WORKERS=N runs the export's experiment graph on a local Dask cluster of N processes; empty: in this process.
WORKERS ?=
# DEVICE: where training runs (auto: cuda, then mps, then cpu).
DEVICE ?= auto
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

.PHONY: all setup export bench report test wheels bench-openvino emulated-arm64 test-emulated clean distclean

all: export bench report

$(BIN)/harness: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q $(TORCH_PIP_ARGS) $(TORCH_PIN)
	$(BIN)/python -m pip install -q -e '.[test]'
	@touch $@

setup: $(BIN)/harness

export: setup
	$(BIN)/harness export --profile $(PROFILE) --seeds $(SEEDS) --preset $(PRESET) --device $(DEVICE) \
		$(if $(WORKERS),--workers $(WORKERS)) --out $(BUNDLE)

# The runner on this machine, twice: the onnxruntime default thread count and a single thread. Five timing rounds
# per file, each 0.1 s window beside a 0.1 s window of the dense reference, so every speed-up gets a paired interval
# over the rounds (runners/rounds.py); the whole of it takes no longer than the three 0.4 s windows it replaces.
BENCH_TIMING := --rounds 5 --min-seconds 0.1
# DEVICES=devices.toml benches the devices that file names over SSH instead (harness bench, docs/devices.md): only
# the files a device lacks are copied, each result lands in $(RESULTS)/NAME.json; SSH_CONFIG=FILE is passed as ssh -F.
DEVICES ?=
SSH_CONFIG ?=
bench: setup
	@test -f $(BUNDLE)/manifest.json || { echo "no bundle in $(BUNDLE): run 'make export' first"; exit 2; }
	@mkdir -p $(RESULTS)
ifeq ($(strip $(DEVICES)),)
	$(BIN)/runner bench $(BUNDLE) $(BENCH_TIMING) --out $(RESULTS)/workstation.json
	$(BIN)/runner bench $(BUNDLE) $(BENCH_TIMING) --threads 1 --out $(RESULTS)/workstation-1thread.json
else
	$(BIN)/harness bench --devices $(DEVICES) --bundle $(BUNDLE) --results $(RESULTS) \
		--bench-options "$(BENCH_TIMING)" $(if $(SSH_CONFIG),--ssh-config $(SSH_CONFIG))
endif

# The runner's wheels for devices without network, added to the bundle (wheels/, wheels/index.json with sha256);
# downloads are cached in build/wheel-cache, so a second bundle needs no network. On the device:
# python3 runner install (or sh install.sh) then python3 runner bench . --out result.json.
WHEEL_PLATFORMS ?= linux_x86_64 linux_aarch64
WHEEL_PYTHONS ?= 3.9 3.10 3.11 3.12 3.13
wheels: setup
	@test -f $(BUNDLE)/manifest.json || { echo "no bundle in $(BUNDLE): run 'make export' first"; exit 2; }
	$(BIN)/python -m exporters.wheels $(BUNDLE) --platform "$(WHEEL_PLATFORMS)" --python "$(WHEEL_PYTHONS)"

# A second execution provider on this machine: OpenVINO through the onnxruntime-openvino wheel, in its own venv
# (it provides the same `onnxruntime` module as the onnxruntime wheel, so the two never share one). Pinned: the
# version whose OpenVINOExecutionProvider was measured here (docs/devices.md); the CPU provider is benched beside
# it in the same run, so the report compares the two on equal terms.
OPENVINO_VENV := build/venv-openvino
OPENVINO_PIN := onnxruntime-openvino==1.24.1
$(OPENVINO_VENV)/bin/python: runners/requirements.txt
	$(PYTHON) -m venv $(OPENVINO_VENV)
	$(OPENVINO_VENV)/bin/python -m pip install -q $(OPENVINO_PIN) numpy psutil click
	@touch $@
bench-openvino: $(OPENVINO_VENV)/bin/python
	@test -f $(BUNDLE)/manifest.json || { echo "no bundle in $(BUNDLE): run 'make export' first"; exit 2; }
	@mkdir -p $(RESULTS)
	$(OPENVINO_VENV)/bin/python $(BUNDLE)/runner bench $(BUNDLE) $(BENCH_TIMING) --provider openvino,cpu \
	  --provider-option openvino:device_type=CPU --out $(RESULTS)/workstation-openvino.json

# The bundle on an emulated arm64 Debian (qemu-aarch64, root needed): offline install from the carried aarch64
# wheels, runner bench without network, result in build/results/ beside the x86-64 ones. Timings are functional
# only; accuracies must equal the host's. test-emulated runs the same flow on a small synthetic bundle.
emulated-arm64: setup
	@mkdir -p $(RESULTS)
	bash devices/emulated-arm64.sh $(BUNDLE) $(RESULTS)/arm64-emulated.json
test-emulated: setup
	$(BIN)/python -m pytest -q -m emulated tests/test_emulated.py

report: setup
	@ls $(RESULTS)/*.json >/dev/null 2>&1 || { echo "no results in $(RESULTS): run 'make bench' first"; exit 2; }
	$(BIN)/harness report $(RESULTS)/*.json --bundle $(BUNDLE) --out build/report --pdf $(PDF)

# TEST_WORKERS: pytest-xdist processes (auto: one per core); the tests set torch to one thread each, so two cores run
# two test files at once instead of one. TEST_WORKERS=0 runs them in this process.
TEST_WORKERS ?= auto
test: setup
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile

clean:
	rm -rf build

distclean: clean
	rm -rf runs $(VENV) *.egg-info
