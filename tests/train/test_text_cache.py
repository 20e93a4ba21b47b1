"""The text hidden-state cache: built by `python -m train.cache_text`, joined by key in the loader, and giving the
same loss and gradients as running the frozen LLM over the transcripts; stale caches are refused."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch
import yaml

from data.prepare import build_from_manifest
from data.stream import StreamLoader
from data.text_cache import read_manifest
from model.tiny import TinyConfig, read_texts, write_tiny_models
from tests.conftest import REPO, make_word_tone_manifest
from train.cache_text import main as cache_main
from train.config import from_dict, to_dict
from train.pretrain import PretrainConfig
from train.pretrain_model import PretrainModule, build_speech_llm
from train.runner import _check_text_cache


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("textcache")
    manifest = make_word_tone_manifest(root / "corpus", 32, seed=3)
    build_from_manifest(manifest, root / "shards", max_samples=10, workers=1)
    models = write_tiny_models(root / "tiny", TinyConfig(vocab_size=300, llm_layers=6), read_texts([manifest]))
    return {"root": root, "shards": root / "shards", **models}


def _cfg(world, objective: str, cache=None, **llm) -> PretrainConfig:
    return from_dict(PretrainConfig, {
        "data": {"sources": [{"path": str(world["shards"]), "name": "tone"}], "batch_size": 8, "num_workers": 0,
                 "shuffle_buffer": 0, "tokenizer": str(world["llm"]), "text_cache": cache},
        "encoder": {"name_or_path": str(world["encoder"])}, "projector": {"kind": "mlp", "mlp_hidden": 32},
        "llm": {"name_or_path": str(world["llm"]), "dtype": "float32", **llm},
        "loss": {"objective": objective}})


def _build(world, name: str, objective: str, *args: str, **llm) -> str:
    cache = str(world["root"] / name)
    overrides = [f"data.text_cache={cache}", f"loss.objective={objective}"] + [f"llm.{k}={v}" for k, v in llm.items()]
    config = world["root"] / f"{name}.yaml"
    config.write_text(yaml.safe_dump(to_dict(_cfg(world, objective))))
    assert cache_main(["--config", str(config), *args, *overrides]) == 0
    return cache


def _loss_and_grads(world, objective: str, cache=None):
    cfg = _cfg(world, objective, cache)
    speech_llm = build_speech_llm(cfg.encoder, cfg.projector, cfg.llm, seed=0)
    if cache:
        _check_text_cache(cfg, speech_llm)
    module = PretrainModule(speech_llm, cfg.loss)
    batch = next(iter(StreamLoader(cfg.data, 0, 1, tokenizer=speech_llm.tokenizer)))
    loss, _ = module(batch)
    loss.backward()
    return batch, loss.detach(), [p.grad.clone() for p in module.trainable_parameters()]


@pytest.mark.parametrize("objective,pooling", [("cos", "mean"), ("wasser", "none")])
def test_cached_text_states_give_the_same_loss_and_gradients(world, objective, pooling):
    cache = _build(world, f"cache-{objective}", objective, "--dtype", "float32")
    assert read_manifest(cache)["spec"]["pooling"] == pooling
    batch, loss, grads = _loss_and_grads(world, objective, cache)
    assert ("text_pooled" if pooling == "mean" else "text_states") in batch
    _, ref_loss, ref_grads = _loss_and_grads(world, objective)
    torch.testing.assert_close(loss, ref_loss, rtol=1e-5, atol=1e-6)
    for g, r in zip(grads, ref_grads):
        torch.testing.assert_close(g, r, rtol=1e-4, atol=1e-6)


def test_half_precision_cache_is_close(world):
    cache = _build(world, "cache-bf16", "cos", "--dtype", "bfloat16")
    _, loss, _ = _loss_and_grads(world, "cos", cache)
    _, ref, _ = _loss_and_grads(world, "cos")
    assert abs(float(loss) - float(ref)) < 2e-2 * abs(float(ref))


def test_a_cache_built_for_other_settings_is_refused(world):
    cache = _build(world, "cache-emb", "cos", "--dtype", "float32", layers="emb")
    cfg = _cfg(world, "cos", cache)  # layers "all"
    speech_llm = build_speech_llm(cfg.encoder, cfg.projector, cfg.llm)
    with pytest.raises(ValueError, match=r"layers: cache \[0\] vs config \[0, 5, 6\].*rebuild it"):
        _check_text_cache(cfg, speech_llm)
    shifted = _cfg(world, "cos", cache, position_shift_max=10)
    with pytest.raises(ValueError, match="position shifts cannot be cached"):
        _check_text_cache(shifted, speech_llm)


def test_missing_cached_states_are_counted_bad_samples(world):
    cache = _build(world, "cache-partial", "cos", "--dtype", "float32")
    files = sorted((world["root"] / "cache-partial" / "tone").glob("*.safetensors"))
    files[0].unlink()
    cfg = _cfg(world, "cos", cache)
    cfg.data.max_bad_fraction = 1.0
    loader = StreamLoader(cfg.data, 0, 1)
    seen = set()
    for batch in loader:
        if batch["epoch"] > 0:
            break
        seen.update(batch["keys"])
    # the first shard's 10 samples are skipped and counted, the others train as usual
    assert len(seen) == 32 - 10 and loader.stats.bad == {"text_cache_missing": 10}


def test_cache_text_script_without_slurm_builds_every_shard(world):
    config = world["root"] / "script.yaml"
    config.write_text(yaml.safe_dump(to_dict(_cfg(world, "cos"))))
    cache = world["root"] / "cache-script"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
    proc = subprocess.run(["bash", "slurm/cache_text.sh", str(config), f"data.text_cache={cache}"], cwd=REPO,
                          env={**env, "PYTHON": sys.executable, "CACHE_ARGS": "--dtype float16"},
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "part 0 of 1" in proc.stdout and len(list((cache / "tone").glob("*.safetensors"))) == 4
    assert read_manifest(cache)["spec"]["dtype"] == "float16"


def test_a_cache_that_covers_nothing_stops_instead_of_looping(world):
    """Every sample missing from the cache (a cache built for other shards) with max_bad_fraction=1: a whole epoch of
    empty batches is an error naming the reason, not an endless stream of skipped batches."""
    from data.stream import DataQualityError

    cache = _build(world, "cache-empty", "cos", "--dtype", "float32")
    for f in (world["root"] / "cache-empty" / "tone").glob("*.safetensors"):
        f.unlink()
    cfg = _cfg(world, "cos", cache)
    cfg.data.max_bad_fraction = 1.0
    with pytest.raises(DataQualityError, match=r"whole epoch.*text_cache_missing"):
        for _ in StreamLoader(cfg.data, 0, 1):
            pass


def test_heldout_evaluation_reads_its_own_shards_not_the_training_caches(world, tmp_path):
    """Held-out shards are not in the training caches: the evaluator computes their states (the cache paths may
    not even exist)."""
    from train.heldout import HeldoutConfig, HeldoutEvaluator

    cfg = _cfg(world, "cos", str(tmp_path / "no-text-cache"))
    cfg.data.encoder_cache = str(tmp_path / "no-encoder-cache")
    heldout = HeldoutConfig(sources=[{"path": str(world["shards"]), "name": "tone"}], max_samples=8, batch_size=4)
    evaluator = HeldoutEvaluator(heldout, cfg.data, cfg.loss, tmp_path / "run")
    assert evaluator.size == 8
    assert not {"text_pooled", "text_states", "encoder_features"} & {k for b in evaluator.batches for k in b}
