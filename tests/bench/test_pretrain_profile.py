"""Pretraining step profile on CPU: step time, audio hours/s and where a step's time goes.

The demo config (train/configs/demo.yaml) on a freshly synthesised espeak-ng corpus with the tiny models, run with
``train.profile=true`` through `python -m train.pretrain`; plus two variants measured in the same run (the paper's
Q-Former projector, and the Wasserstein objective). Shares come from the per-stage timers the trainer writes into
metrics.jsonl (time/*_s); the first steps (start-up, allocator warm-up) are left out. Figures go to BENCHMARKS.md
(section "pretrain_profile").
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from data.prepare import build_from_manifest
from data.synth.config import SynthConfig
from data.synth.corpus import synthesize
from model.tiny import TinyConfig, read_texts, write_tiny_models
from tests.bench.report import write_section
from tests.conftest import REPO

pytestmark = pytest.mark.bench
STEPS, WARMUP = 60, 10
STAGES = ("data_wait", "encoder", "projector", "llm_speech", "llm_text", "loss", "backward", "optimizer")
VARIANTS = {
    "demo (MLP, cos, layers 0/5/10/11)": [],
    "Q-Former projector, cos": ["projector.kind=qformer", "projector.hidden=64", "projector.heads=4",
                                "projector.layers=2", "projector.ffn=128"],
    "MLP, wasser (Sinkhorn, blur 0.05)": ["loss.objective=wasser"],
}


def _profile(rows: list[dict]) -> dict:
    rows = rows[WARMUP:]
    step = sum(r["step_time_s"] for r in rows) / len(rows)
    stages = {s: sum(r.get(f"time/{s}_s") or 0.0 for r in rows) / len(rows) for s in STAGES}
    stages["other (metrics, all-reduce, bookkeeping)"] = max(0.0, step - sum(stages.values()))
    hours = sum(r["audio_hours_per_s"] * r["step_time_s"] for r in rows)
    return {"step": step, "audio_h_per_s": hours / sum(r["step_time_s"] for r in rows),
            "tokens_per_s": sum(r["tokens_per_s"] for r in rows) / len(rows), "stages": stages}


def test_pretrain_step_profile(tmp_path):
    corpus = tmp_path / "corpus"
    synthesize(SynthConfig(out=corpus, hours=0.3, langs=("en", "ru", "de"), st_hours=0.0, sqa_hours=0.0, seed=0))
    sources = []
    for lang in ("en", "ru", "de"):
        build_from_manifest(corpus / f"asr-{lang}" / "manifest.jsonl", tmp_path / f"shards-{lang}", workers=2)
        sources.append({"path": str(tmp_path / f"shards-{lang}"), "name": lang})
    manifests = [corpus / f"asr-{lang}" / "manifest.jsonl" for lang in ("en", "ru", "de")]
    models = write_tiny_models(tmp_path / "tiny", TinyConfig(), read_texts(manifests))
    results = {}
    for name, extra in VARIANTS.items():
        run_dir = tmp_path / f"run{len(results)}"
        args = [sys.executable, "-m", "train.pretrain", "--config", str(REPO / "train/configs/demo.yaml"),
                f"run_dir={run_dir}", f"data.sources={json.dumps(sources)}", "heldout.sources=[]",
                f"encoder.name_or_path={models['encoder']}", f"llm.name_or_path={models['llm']}",
                f"train.max_steps={STEPS}", "train.profile=true", "checkpoint.every_steps=0", "plots=false",
                "tensorboard=false", "data.encoder_cache=null", "data.text_cache=null", *extra]
        proc = subprocess.run(args, cwd=REPO, capture_output=True, text=True, env={**os.environ})
        assert proc.returncode == 0, proc.stderr[-4000:]
        rows = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
        results[name] = _profile(rows)

    names = list(results)
    header = "| stage | " + " | ".join(names) + " |\n|---|" + "---|" * len(names) + "\n"
    lines = ["| step time (s) | " + " | ".join(f"{results[n]['step']:.3f}" for n in names) + " |",
             "| audio hours / s | " + " | ".join(f"{results[n]['audio_h_per_s']:.4f}" for n in names) + " |",
             "| tokens / s (speech + text) | " + " | ".join(f"{results[n]['tokens_per_s']:.0f}" for n in names) + " |"]
    for stage in results[names[0]]["stages"]:
        cells = [f"{100 * results[n]['stages'][stage] / results[n]['step']:.1f} %" for n in names]
        lines.append(f"| {stage} | " + " | ".join(cells) + " |")
    body = (f"`python -m train.pretrain --config train/configs/demo.yaml train.profile=true` on 0.3 h of espeak-ng "
            f"speech (en/ru/de), tiny random-weight HuBERT (CNN 32 channels, 2 layers, width 64) + 11-layer Llama "
            f"(width 64), batch 16, fp32, DeepSpeed ZeRO-2, one process; mean over steps {WARMUP + 1}-{STEPS}. "
            "Shares of the step time: `backward` is the backward pass through the frozen LLM, the projector and "
            "the loss together; `llm_speech` / `llm_text` are the frozen-LLM forwards over the projected speech "
            "and over the transcript.\n\n" + header + "\n".join(lines))
    write_section("pretrain_profile", "Pretraining step profile (CPU, demo config)", body,
                  "make bench  (pytest -m bench tests/bench/test_pretrain_profile.py)")
