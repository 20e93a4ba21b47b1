"""Tests for eval/generate.py: batched greedy generation over shard sets with a tiny random SpeechLLM.

The tiny model's outputs are noise; what is checked is structure and determinism: every sample exactly once,
sorted, with its reference and prompt; the same hypotheses whatever the batch size and the number of ranks
(2 gloo processes); max_new_tokens respected; atomic JSONL output.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from data.collate import normalize_text
from data.stream import SourceCatalog, SourceConfig, StreamConfig
from eval.generate import (
    GenerateConfig,
    build_eval_loader,
    generate,
    generate_sharded,
    merge_rows,
    read_results,
    write_results,
)
from model.encoders import EncoderConfig
from model.llm import LLMConfig
from model.projectors import ProjectorConfig
from model.tiny import TinyConfig, read_texts, write_tiny_models
from tests.conftest import make_shard_set
from train import distributed as tdist
from train.pretrain_model import build_speech_llm

WORLD = 2
ASR = "Can you transcribe this audio?"


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> dict:
    """Two shard sets (12 and 5 samples of 0.5-2 s, shards of 5) and tiny HuBERT + Llama directories."""
    root = tmp_path_factory.mktemp("generate")
    a = make_shard_set(root / "a", 12, seed=0, prefix="a", max_samples=5, max_s=2.0)
    b = make_shard_set(root / "b", 5, seed=1, prefix="b", max_samples=5, max_s=2.0)
    manifests = [root / "a" / "corpus" / "manifest.jsonl", root / "b" / "corpus" / "manifest.jsonl"]
    paths = write_tiny_models(root / "tiny", TinyConfig(vocab_size=300), read_texts(manifests))
    refs = {}
    for m in manifests:
        for line in m.read_text().splitlines():
            rec = json.loads(line)
            refs[rec["id"]] = normalize_text(rec["text"], "basic")
    sources = [{"path": str(a), "name": "a"}, {"path": str(b), "name": "b"}]
    return {"sources": sources, "encoder": str(paths["encoder"]), "llm": str(paths["llm"]), "refs": refs}


def _first(corpus: dict, n: int | None) -> list[str]:
    """Keys of the first n samples of each source in shard order (data.prepare orders shards by its own rule)."""
    cats = [SourceCatalog(SourceConfig(**s), StreamConfig(sources=[s])) for s in corpus["sources"]]
    return [k for c in cats for k in c.keys[:n]]


def _model(corpus: dict):
    torch.manual_seed(0)
    return build_speech_llm(EncoderConfig(name_or_path=corpus["encoder"]), ProjectorConfig(kind="mlp", mlp_hidden=32),
                            LLMConfig(name_or_path=corpus["llm"], dtype="float32"), seed=0)


@pytest.fixture(scope="module")
def speech_llm(corpus):
    return _model(corpus)


def _prompt_for(sample: dict) -> str:
    return "Translate this audio to German." if sample["source"] == "b" else ASR


def _hyps(rows: list[dict]) -> dict[str, str]:
    return {r["key"]: r["hypothesis"] for r in rows}


def test_config_validation():
    assert GenerateConfig().batch_size == 8 and GenerateConfig().max_samples is None
    for bad in ({"batch_size": 0}, {"max_new_tokens": 0}, {"max_samples": 0}):
        with pytest.raises(ValueError):
            GenerateConfig(**bad)


@pytest.mark.parametrize("max_samples", [None, 7, 3])
def test_eval_loader_ranks_cover_each_sample_once(corpus, max_samples):
    one = [k for b in build_eval_loader(corpus["sources"], None, 4, max_samples, 0, 1) for k in b["keys"]]
    per_rank = [[k for b in build_eval_loader(corpus["sources"], None, 3, max_samples, r, WORLD) for k in b["keys"]]
                for r in range(WORLD)]
    both = per_rank[0] + per_rank[1]
    # the first n of each source in shard order, split without overlap (odd counts wrap around and are dropped)
    assert sorted(one) == sorted(both) == sorted(_first(corpus, max_samples))
    assert len(both) == (17 if max_samples is None else min(12, max_samples) + min(5, max_samples))
    assert len(set(per_rank[0]) & set(per_rank[1])) == 0


def test_rows_complete_sorted_with_references_and_prompts(corpus, speech_llm):
    cfg = GenerateConfig(batch_size=4, max_new_tokens=6)
    speech_llm.train()
    rows = generate_sharded(speech_llm, corpus["sources"], _prompt_for, cfg)
    assert speech_llm.training and speech_llm.projector.training  # mode restored
    keys = [r["key"] for r in rows]
    assert keys == sorted(corpus["refs"]) and len(set(keys)) == 17
    for r in rows:
        assert set(r) == {"key", "source", "prompt", "hypothesis", "reference", "meta"}
        assert r["source"] == r["key"][0]  # source names "a" / "b" match the key prefixes
        assert r["reference"] == corpus["refs"][r["key"]]
        assert r["prompt"] == _prompt_for(r) and isinstance(r["hypothesis"], str)
        assert isinstance(r["meta"], dict)
    assert any(r["hypothesis"] for r in rows)  # the random model says something (tests below need non-empty text)
    # a fixed prompt string works too, and max_samples applies per source
    few = generate_sharded(speech_llm, corpus["sources"], ASR, GenerateConfig(batch_size=2, max_new_tokens=2,
                                                                              max_samples=2))
    assert [r["key"] for r in few] == sorted(_first(corpus, 2)) and len(few) == 4
    assert {r["prompt"] for r in few} == {ASR}


def test_batch_size_does_not_change_hypotheses(corpus, speech_llm):
    results = {bs: generate_sharded(speech_llm, corpus["sources"], _prompt_for,
                                    GenerateConfig(batch_size=bs, max_new_tokens=12)) for bs in (1, 4, 17)}
    assert _hyps(results[1]) == _hyps(results[4]) == _hyps(results[17])


def test_samples_without_a_prompt_are_skipped(corpus, speech_llm):
    """A pass may ask about some samples only (eval.run: the ST pass for a second target); the others give no row
    and the asked ones the same answers as when everything is asked."""
    cfg = GenerateConfig(batch_size=4, max_new_tokens=8)
    only_b = generate_sharded(speech_llm, corpus["sources"], lambda s: _prompt_for(s) if s["source"] == "b" else None,
                              cfg)
    everything = generate_sharded(speech_llm, corpus["sources"], _prompt_for, cfg)
    assert [r["key"] for r in only_b] == sorted(k for k in corpus["refs"] if k.startswith("b"))
    assert _hyps(only_b) == {k: h for k, h in _hyps(everything).items() if k.startswith("b")}


def test_max_new_tokens_respected(corpus, speech_llm):
    batch = next(build_eval_loader(corpus["sources"][:1], None, 4, None, 0, 1))
    prompts = [ASR] * batch["size"]
    long = speech_llm.generate(batch["audio"], batch["audio_mask"], prompts, max_new_tokens=10)
    short = speech_llm.generate(batch["audio"], batch["audio_mask"], prompts, max_new_tokens=3)
    assert long.shape[1] <= 10 and short.shape[1] <= 3
    assert torch.equal(long[:, :short.shape[1]], short)  # greedy: the shorter run is a prefix

    seen = []
    original = speech_llm.generate_text

    def spy(*args, **kwargs):
        seen.append(kwargs["max_new_tokens"])
        return original(*args, **kwargs)

    speech_llm.generate_text = spy
    try:
        rows = generate(speech_llm, [batch], ASR, GenerateConfig(max_new_tokens=3))
    finally:
        del speech_llm.generate_text
    assert seen == [3] and len(rows) == batch["size"]
    assert [r["hypothesis"] for r in rows] == speech_llm.generate_text(batch["audio"], batch["audio_mask"], prompts, 3)


def test_write_results_atomic_jsonl(tmp_path):
    rows = [{"key": "k1", "hypothesis": "grüße", "meta": {"lang": "de"}}, {"key": "k2", "hypothesis": ""}]
    path = write_results(rows, tmp_path / "out" / "res.jsonl")
    assert read_results(path) == rows and "grüße" in path.read_text(encoding="utf-8")
    assert sorted(p.name for p in path.parent.iterdir()) == ["res.jsonl"]  # no temp file left
    with pytest.raises(TypeError):
        write_results([{"key": object()}], path)
    assert read_results(path) == rows and sorted(p.name for p in path.parent.iterdir()) == ["res.jsonl"]


def test_merge_rows_rejects_duplicates():
    row = {"key": "x", "source": "s"}
    assert merge_rows([[{"key": "y", "source": "s"}], [row]]) == [row, {"key": "y", "source": "s"}]
    with pytest.raises(ValueError, match="more than once"):
        merge_rows([[row], [dict(row)]])


def _worker(rank: int, port: int, corpus: dict, out: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=WORLD)
    try:
        rows = generate_sharded(_model(corpus), corpus["sources"], _prompt_for,
                                GenerateConfig(batch_size=3, max_new_tokens=12))
        Path(out, f"rank{rank}.json").write_text(json.dumps(rows))
        if rank == 0:
            write_results(rows, Path(out, "merged.jsonl"))
    finally:
        dist.destroy_process_group()


@pytest.mark.distributed
def test_two_ranks_match_one(corpus, speech_llm, tmp_path):
    single = generate_sharded(speech_llm, corpus["sources"], _prompt_for,
                              GenerateConfig(batch_size=4, max_new_tokens=12))
    mp.spawn(_worker, args=(tdist._free_port(), corpus, str(tmp_path)), nprocs=WORLD, join=True)
    merged = read_results(tmp_path / "merged.jsonl")
    assert merged == single
    assert json.loads((tmp_path / "rank1.json").read_text()) == single  # every rank holds the merged rows
