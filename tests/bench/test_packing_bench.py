"""Packed vs padded LLM forward, and what GradCache's full-batch negatives cost, measured in the same run.

Same setup as the text-cache benchmark (word-tone corpus, tiny HuBERT, 12-layer Llama of width 256, MLP projector,
fp32 on CPU) on the loader's own length-bucketed batches of 16: forward + backward of `PretrainModule` with
``llm.packing=off`` vs ``rows`` (block-diagonal SDPA, the CPU path), alternating rounds, median step time, plus the
share of computed LLM positions that hold tokens, and packed with ``torch.compile`` of the decoder layers. Then one
optimizer step's worth of 4 micro-batches with plain accumulation (each contrasts 16 samples) vs GradCache (each
contrasts all 64). Figures go to BENCHMARKS.md (section "packing").
"""

from __future__ import annotations

import statistics
import time

import pytest
import torch

from data.prepare import build_from_manifest
from data.stream import StreamLoader
from model.llm import decoder_of
from model.packing import plan_packing
from model.tiny import TinyConfig, read_texts, write_tiny_models
from tests.bench.report import write_section
from tests.conftest import make_word_tone_manifest
from tests.train.test_grad_cache import _Engine
from tests.train.test_text_cache import _cfg
from train.grad_cache import GradCacheStep
from train.pretrain_model import PretrainModule, build_speech_llm

pytestmark = pytest.mark.bench
BATCHES, ROUNDS = 8, 3


def _setup(world: dict, packing: str):
    cfg = _cfg(world, "cos", None, packing=packing)
    cfg.data.batch_size = 16
    speech_llm = build_speech_llm(cfg.encoder, cfg.projector, cfg.llm, seed=0)
    module = PretrainModule(speech_llm, cfg.loss)
    loader = StreamLoader(cfg.data, 0, 1, tokenizer=speech_llm.tokenizer)
    return module, [b for b, _ in zip(loader, range(BATCHES))]


def _step_times(module, batches) -> list[float]:
    times = []
    for batch in batches:
        start = time.perf_counter()
        loss, _ = module(batch)
        loss.backward()
        times.append(time.perf_counter() - start)
    return times


def _densities(module, batches) -> tuple[float, float]:
    """Share of the computed speech positions that hold tokens: padded, packed."""
    padded, packed = [], []
    with torch.no_grad():
        for batch in batches:
            m = module.speech_llm
            enc = m.encoder(batch["audio"], batch["audio_mask"])
            _, mask = m.projector(enc.features, enc.mask)
            padded.append(float(mask.float().mean()))
            packed.append(plan_packing(mask.sum(1)).density)
    return statistics.mean(padded), statistics.mean(packed)


def _accumulation_times(module, batches) -> tuple[float, float]:
    """One step of 4 micro-batches: plain accumulation vs GradCache (median over pairs of steps)."""
    plain, cached = [], []
    for i in range(0, len(batches), 4):
        group = batches[i:i + 4]
        start = time.perf_counter()
        for b in group:
            (module(b)[0] / 4).backward()
        plain.append(time.perf_counter() - start)
        start = time.perf_counter()
        GradCacheStep(_Engine(module, 4), module)(group)
        cached.append(time.perf_counter() - start)
    return statistics.median(plain), statistics.median(cached)


def test_packing_and_grad_cache_cost(tmp_path):
    manifest = make_word_tone_manifest(tmp_path / "corpus", 160, seed=0)
    build_from_manifest(manifest, tmp_path / "shards", max_samples=40, workers=2)
    models = write_tiny_models(tmp_path / "tiny", TinyConfig(vocab_size=300, llm_hidden=256, llm_layers=12,
                                                             llm_heads=8, llm_kv_heads=4, llm_intermediate=1024),
                               read_texts([manifest]))
    world = {"root": tmp_path, "shards": tmp_path / "shards", **models}
    padded_module, batches = _setup(world, "off")
    packed_module, _ = _setup(world, "rows")
    padded, packed = [], []
    for _ in range(ROUNDS):
        padded += _step_times(padded_module, batches)
        packed += _step_times(packed_module, batches)
    t_padded, t_packed = statistics.median(padded), statistics.median(packed)
    # torch.compile of the frozen decoder layers (dynamic shapes; packing keeps the shapes few): measured here to
    # decide whether a setting for it pays; the first two rounds absorb the compilation.
    for layer in decoder_of(packed_module.speech_llm.llm).layers:
        layer.compile(dynamic=True)
    start = time.perf_counter()
    _step_times(packed_module, batches)
    _step_times(packed_module, batches)
    warmup = time.perf_counter() - start
    compiled = []
    for _ in range(ROUNDS):
        compiled += _step_times(packed_module, batches)
    t_compiled = statistics.median(compiled)
    d_padded, d_packed = _densities(padded_module, batches)
    t_plain, t_cached = _accumulation_times(padded_module, batches)
    body = ("Forward + backward of `PretrainModule` (cos, layers 0/5/10/12) on the loader's own length-bucketed "
            "batches of 16 word-tone utterances, tiny HuBERT + 12-layer Llama of width 256, MLP projector, fp32 on "
            f"CPU; median over {ROUNDS} alternating rounds of {BATCHES} batches. Density: the share of the LLM "
            "positions computed on the speech side that hold a token.\n\n"
            "| LLM forward | step | density |\n|---|---|---|\n"
            f"| padded (`llm.packing=off`) | {t_padded * 1e3:.0f} ms | {d_padded:.2f} |\n"
            f"| packed rows, block-diagonal SDPA (`llm.packing=rows`) | {t_packed * 1e3:.0f} ms | {d_packed:.2f} |\n"
            f"| packed rows + `torch.compile` of the 12 decoder layers | {t_compiled * 1e3:.0f} ms | {d_packed:.2f} |\n"
            f"\nPacked / padded step time: {t_packed / t_padded:.2f} (below 1 = packing is faster). Compiled / packed: "
            f"{t_compiled / t_packed:.2f}, after {warmup:.0f} s of compilation in the first 2 rounds (or less from "
            "the compile cache). Not a setting yet: the frozen layers are compiled here by hand, and whether it "
            "earns one depends on the GPU figure, not yet measured.\n\n"
            "Negatives across accumulation, same model and batches, one optimizer step of 4 micro-batches of 16 "
            "(median over 2 steps):\n\n| accumulation | candidates per sample | step |\n|---|---|---|\n"
            f"| plain (`loss.grad_cache=false`) | 16 | {t_plain * 1e3:.0f} ms |\n"
            f"| GradCache (default) | 64 | {t_cached * 1e3:.0f} ms |\n"
            f"\nGradCache costs {t_cached / t_plain:.2f}x plain accumulation here: one more no-grad speech-side "
            "forward per micro-batch (the text side runs once either way).")
    write_section("packing", "Packed vs padded LLM forward, and GradCache's cost (CPU)", body,
                  "make bench  (pytest -m bench tests/bench/test_packing_bench.py)")
