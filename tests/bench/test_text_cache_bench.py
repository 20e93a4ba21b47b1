"""Training step with vs without the text hidden-state cache, measured in the same run on the same batches.

A word-tone corpus, a tiny HuBERT and a 12-layer Llama of width 256 (so the frozen LLM dominates as it does at
scale), the MLP projector; cosine (pooled cache) and Wasserstein (token cache) objectives. Each variant runs the
same 8 batches forward + backward, alternating cached and uncached passes so that machine noise hits both alike;
the figure is the median step time. Also the measured disk cost per utterance of each cache. Figures go to
BENCHMARKS.md (section "text_cache").
"""

from __future__ import annotations

import statistics
import time

import pytest

from data.prepare import build_from_manifest
from data.stream import StreamLoader
from model.tiny import TinyConfig, read_texts, write_tiny_models
from tests.bench.report import write_section
from tests.conftest import make_word_tone_manifest
from tests.train.test_text_cache import _build, _cfg
from train.pretrain_model import PretrainModule, build_speech_llm

pytestmark = pytest.mark.bench
BATCHES, ROUNDS = 8, 3


def _step_times(world: dict, objective: str, cache: str | None) -> list[float]:
    cfg = _cfg(world, objective, cache)
    cfg.data.batch_size = 16
    speech_llm = build_speech_llm(cfg.encoder, cfg.projector, cfg.llm, seed=0)
    module = PretrainModule(speech_llm, cfg.loss)
    loader = StreamLoader(cfg.data, 0, 1, tokenizer=speech_llm.tokenizer)
    batches = [b for b, _ in zip(loader, range(BATCHES))]
    times = []
    for batch in batches:
        start = time.perf_counter()
        loss, _ = module(batch)
        loss.backward()
        times.append(time.perf_counter() - start)
    return times


def test_text_cache_speedup(tmp_path):
    manifest = make_word_tone_manifest(tmp_path / "corpus", 160, seed=0)
    build_from_manifest(manifest, tmp_path / "shards", max_samples=40, workers=2)
    models = write_tiny_models(tmp_path / "tiny", TinyConfig(vocab_size=300, llm_hidden=256, llm_layers=12,
                                                             llm_heads=8, llm_kv_heads=4, llm_intermediate=1024),
                               read_texts([manifest]))
    world = {"root": tmp_path, "shards": tmp_path / "shards", **models}
    rows = []
    for objective in ("cos", "wasser"):
        cache = _build(world, f"cache-{objective}", objective, "--dtype", "bfloat16")
        cached, plain = [], []
        for _ in range(ROUNDS):
            cached += _step_times(world, objective, cache)
            plain += _step_times(world, objective, None)
        files = list((tmp_path / f"cache-{objective}" / "tone").glob("*.safetensors"))
        per_utt = sum(f.stat().st_size for f in files) / 160
        with_cache, without = statistics.median(cached), statistics.median(plain)
        rows.append(f"| {objective} ({'pooled' if objective == 'cos' else 'every token'}) | {without * 1e3:.0f} ms "
                    f"| {with_cache * 1e3:.0f} ms | {without / with_cache:.2f}x | {per_utt / 1024:.1f} KiB |")
    body = ("Forward + backward of `PretrainModule` on the same 8 batches of 16 word-tone utterances (2-5 words), "
            "tiny HuBERT + 12-layer Llama of width 256 (layers 0/5/10/12), MLP projector, fp32 on CPU, bf16 cache; "
            f"median over {ROUNDS} alternating rounds. The cache removes the text-side LLM forward; what remains is "
            "the speech side (forward and backward through the frozen LLM). Disk: the cache files divided by the "
            "utterances (4 layers x 256 dims x 2 bytes pooled = 2 KiB + file overhead).\n\n"
            "| objective (cache) | step without cache | step with cache | speed-up | disk per utterance |\n"
            "|---|---|---|---|---|\n" + "\n".join(rows))
    write_section("text_cache", "Text hidden-state cache: step time with vs without (CPU)", body,
                  "make bench  (pytest -m bench tests/bench/test_text_cache_bench.py)")
