# speechllm-align: two commands on a fresh machine: `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
DEMO_DIR ?= demo_out
APT_PACKAGES := espeak-ng sox

.PHONY: install install-dev install-gpu system-deps test lint bench demo clean

## Debian packages the synthetic corpus and the tests need (skipped when present; needs root or sudo).
system-deps:
	@if ! command -v espeak-ng >/dev/null || ! command -v sox >/dev/null; then \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q $(APT_PACKAGES); \
	fi

$(VENV)/.installed: requirements.txt
	$(PYTHON) -m venv $(VENV)
	# torch first (pinned): DeepSpeed's setup imports it, so DeepSpeed builds without isolation against it.
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q setuptools wheel
	$(PIP) install -q --no-build-isolation -r requirements.txt
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed requirements-dev.txt
	$(PIP) install -q -r requirements-dev.txt
	touch $@

install: system-deps $(VENV)/.installed

install-dev: install $(VENV)/.installed-dev

## flash-attn + triton: only on CUDA machines.
install-gpu: install
	$(PIP) install --no-build-isolation ".[gpu]"

test: install-dev
	$(PY) -m ruff check .
	$(PY) -m pytest -q

lint: install-dev
	$(PY) -m ruff check .

## Benchmarks write their figures into BENCHMARKS.md.
bench: install-dev
	$(PY) -m pytest -q -m bench tests/bench -p no:cacheprovider -s

## The main job end to end on the embedded default (at this stage: synthetic corpus -> shards -> streaming).
demo: install
	DEMO_DIR=$(DEMO_DIR) PYTHON=$(PY) bash scripts/demo.sh

clean:
	rm -rf $(DEMO_DIR) .pytest_cache .ruff_cache
