"""The encoder feature cache: built by `python -m train.cache_encoder`, joined by key in the loader, and giving the
same loss and gradients as running the frozen encoder (pretraining and finetuning); stale caches are refused."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch
import yaml

from data.stream import StreamLoader
from data.text_cache import read_manifest
from tests.conftest import REPO
from tests.train.test_text_cache import _cfg, world  # noqa: F401 - the module-scoped fixture
from train.cache_encoder import check_encoder_cache
from train.cache_encoder import main as cache_main
from train.config import to_dict
from train.finetune_model import FinetuneModule
from train.pretrain_model import PretrainModule, build_speech_llm
from train.tasks import TaskConfig


def _build(world, name: str, *args: str, **encoder) -> str:  # noqa: F811
    cache = str(world["root"] / name)
    config = world["root"] / f"{name}.yaml"
    config.write_text(yaml.safe_dump(to_dict(_cfg(world, "cos"))))
    overrides = [f"data.encoder_cache={cache}"] + [f"encoder.{k}={v}" for k, v in encoder.items()]
    assert cache_main(["--config", str(config), *args, *overrides]) == 0
    return cache


def _loss_and_grads(world, objective: str, cache=None):  # noqa: F811
    cfg = _cfg(world, objective)
    cfg.data.encoder_cache = cache
    if cache:
        check_encoder_cache(cfg)
    speech_llm = build_speech_llm(cfg.encoder, cfg.projector, cfg.llm, seed=0)
    module = PretrainModule(speech_llm, cfg.loss)
    calls = []
    speech_llm.encoder.register_forward_hook(lambda *_: calls.append(1))
    batch = next(iter(StreamLoader(cfg.data, 0, 1, tokenizer=speech_llm.tokenizer)))
    loss, _ = module(batch)
    loss.backward()
    assert len(calls) == (0 if cache else 1)  # the cache replaces the encoder forward
    return batch, loss.detach(), [p.grad.clone() for p in module.trainable_parameters()]


@pytest.mark.parametrize("objective", ["cos", "wasser+asr"])
def test_cached_encoder_features_give_the_same_loss_and_gradients(world, objective):  # noqa: F811
    cache = _build(world, f"enc-{objective}", "--dtype", "float32")
    spec = read_manifest(cache)["spec"]
    assert spec["dtype"] == "float32" and spec["sample_rate"] == 16000 and "layer" in spec["settings"]
    batch, loss, grads = _loss_and_grads(world, objective, cache)
    assert batch["encoder_features"].shape[:2] == batch["encoder_mask"].shape
    _, ref_loss, ref_grads = _loss_and_grads(world, objective)
    torch.testing.assert_close(loss, ref_loss, rtol=1e-5, atol=1e-6)
    for g, r in zip(grads, ref_grads):
        torch.testing.assert_close(g, r, rtol=1e-4, atol=1e-6)


def test_an_encoder_cache_for_other_settings_is_refused(world):  # noqa: F811
    cache = _build(world, "enc-layer1", "--dtype", "float16", layer=1)
    cfg = _cfg(world, "cos")  # encoder.layer -1
    cfg.data.encoder_cache = cache
    with pytest.raises(ValueError, match=r"encoder cache .* built for other settings \(settings: cache "
                                         r".*'layer': 1.*rebuild it with `python -m train.cache_encoder"):
        check_encoder_cache(cfg)
    cfg.data.encoder_cache = str(world["root"] / "no-such-cache")
    with pytest.raises(FileNotFoundError, match="python -m train.cache_encoder"):
        check_encoder_cache(cfg)


def test_missing_cached_features_are_counted_bad_samples(world):  # noqa: F811
    cache = _build(world, "enc-partial", "--dtype", "float16")
    next(iter(sorted((world["root"] / "enc-partial" / "tone").glob("*.safetensors")))).unlink()
    cfg = _cfg(world, "cos")
    cfg.data.encoder_cache, cfg.data.max_bad_fraction = cache, 1.0
    loader = StreamLoader(cfg.data, 0, 1)
    seen = set()
    for batch in loader:
        if batch["epoch"] > 0:
            break
        seen.update(batch["keys"])
        assert batch["encoder_features"].dtype == torch.float16
    assert len(seen) == 32 - 10 and loader.stats.bad == {"encoder_cache_missing": 10}


def test_finetuning_reads_the_cached_features_too(world):  # noqa: F811
    cache = _build(world, "enc-finetune", "--dtype", "float32")
    cfg = _cfg(world, "cos")
    cfg.data.encoder_cache = cache
    speech_llm = build_speech_llm(cfg.encoder, cfg.projector, cfg.llm, seed=0)
    module = FinetuneModule(speech_llm, TaskConfig())
    batch = next(iter(StreamLoader(cfg.data, 0, 1, tokenizer=speech_llm.tokenizer)))
    without = {k: v for k, v in batch.items() if not k.startswith("encoder_")}
    calls = []
    speech_llm.encoder.register_forward_hook(lambda *_: calls.append(1))
    torch.manual_seed(0)
    cached, _ = module(batch)
    assert not calls
    torch.manual_seed(0)
    computed, _ = module(without)
    torch.testing.assert_close(cached, computed, rtol=1e-5, atol=1e-6)


def test_slurm_script_builds_the_cache_in_array_parts_without_slurm(world):  # noqa: F811
    """slurm/cache_encoder.sh run as two array tasks would (SLURM_ARRAY_* set by hand): each writes its half."""
    cache = world["root"] / "enc-script"
    config = world["root"] / "enc-script.yaml"
    config.write_text(yaml.safe_dump(to_dict(_cfg(world, "cos"))))
    for task in (0, 1):
        env = {**os.environ, "PYTHON": sys.executable, "OMP_NUM_THREADS": "1", "SLURM_ARRAY_TASK_ID": str(task),
               "SLURM_ARRAY_TASK_MIN": "0", "SLURM_ARRAY_TASK_COUNT": "2"}
        proc = subprocess.run(["bash", "slurm/cache_encoder.sh", str(config), f"data.encoder_cache={cache}"],
                              cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert f"part {task} of 2" in proc.stdout
        written = sorted(p.name for p in (cache / "tone").glob("*.safetensors"))
        assert len(written) == (2 if task == 0 else 4), written
