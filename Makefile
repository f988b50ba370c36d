# One-command entry points. `make quickstart` and `make test` set everything up first.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
TORCH_PINS := torch==2.14.1 torchvision==0.29.1
# The official LVIS API, without its dependencies: it requires opencv-python, which would install a second cv2
# over opencv-python-headless; everything it imports is already a dependency (see pyproject.toml).
LVIS_API := lvis==0.5.3
# The official Cityscapes evaluation, without its declared dependencies: they include the `typing` backport, harmful
# on Python 3, and packages its instance evaluation never imports (see pyproject.toml).
CITYSCAPES_SCRIPTS := cityscapesscripts==2.3.0

.PHONY: setup quickstart lint format test test-all bench gpu-check clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet $(TORCH_PINS)
	$(PY) -m pip install --quiet -e ".[dev]"
	$(PY) -m pip install --quiet --no-deps $(LVIS_API)
	$(PY) -m pip install --quiet --no-deps $(CITYSCAPES_SCRIPTS)
	touch $@

setup: $(VENV)/.installed

# Train a small random-init model on a generated set until it visibly learns (held-out segm AP ~0.5+),
# evaluate its best checkpoint, predict on a few images.
QUICKSTART_RUNS := outputs/train/quickstart_maskrcnn_synthetic
quickstart: setup
	$(PY) train.py experiment=quickstart
	$(PY) evaluate.py experiment=quickstart model.weights=$$(ls -t $(QUICKSTART_RUNS)/*/checkpoints/best.pt | head -1)
	$(PY) predict.py experiment=quickstart model.weights=$$(ls -t $(QUICKSTART_RUNS)/*/checkpoints/best.pt | head -1) \
		input='data/synthetic_quickstart_pennfudan/PNGImages/SynthPed0000*.png'

# Lint, format check, types and import layers (configured in pyproject.toml; docs/architecture.md).
lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

# Apply the formatter and the safe lint fixes.
format: setup
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

# The default suite (slow tests excluded; see pyproject.toml).
test: setup
	$(PY) -m pytest

# Everything, slow tests included.
test-all: setup
	$(PY) -m pytest -m ""

bench: setup
	$(PY) -m benchmarks all

# On a machine with a CUDA device: the cuda tests and the GPU benchmarks in at most 8 minutes, gpu_check/gpu_check.json.
# Without one it says so and exits 3 before anything else (no setup either: it uses the venv when there is one).
GPU_PY := $(if $(wildcard $(PY)),$(PY),$(PYTHON))
gpu-check:
	$(GPU_PY) -m benchmarks.gpu_check

clean:
	rm -rf outputs/* multirun .pytest_cache
