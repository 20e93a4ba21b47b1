"""GradCache (train/grad_cache.py): 4 micro-batches x 2 gloo ranks give exactly (fp64) the loss and gradients of one
global batch of 8 micro-batches, with dropout, position shifts, a learned temperature and an ASR term in play; the
global batch size setting; the trainer's use of it in a real DeepSpeed run."""

from __future__ import annotations

import math

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import yaml

from data.prepare import build_from_manifest
from data.stream import StreamLoader
from model.tiny import TinyConfig, read_texts, write_tiny_models
from tests.conftest import make_word_tone_manifest
from tests.train.conftest import rows, run, write_config
from train.config import from_dict
from train.engine import EngineConfig, resolve_grad_accum
from train.grad_cache import GradCacheStep, concat_features, split_rows
from train.pretrain import PretrainConfig
from train.pretrain_model import PretrainModule, build_speech_llm

WORLD, ACCUM, MICRO = 2, 4, 3
CASES = {  # objective, local_loss, direction, learn_temperature
    "cos-global-sym-temperature": ("cos", False, "sym", True),
    "wasser+asr-local-t2s": ("wasser+asr", True, "t2s", False),
}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("gradcache")
    manifest = make_word_tone_manifest(root / "corpus", WORLD * ACCUM * MICRO, seed=5)
    build_from_manifest(manifest, root / "shards", max_samples=12, workers=1)
    models = write_tiny_models(root / "tiny", TinyConfig(vocab_size=300, llm_layers=6), read_texts([manifest]))
    return {"root": root, "shards": root / "shards", **models}


def _cfg(world, case: str) -> PretrainConfig:
    objective, local, direction, learn = CASES[case]
    return from_dict(PretrainConfig, {
        "data": {"sources": [{"path": str(world["shards"])}], "batch_size": MICRO, "num_workers": 0,
                 "shuffle_buffer": 0, "tokenizer": str(world["llm"])},
        "encoder": {"name_or_path": str(world["encoder"])},
        "projector": {"kind": "qformer", "hidden": 16, "heads": 2, "layers": 1, "ffn": 32, "dropout": 0.2},
        "llm": {"name_or_path": str(world["llm"]), "dtype": "float32", "position_shift_max": 20},
        "loss": {"objective": objective, "local_loss": local, "direction": direction, "learn_temperature": learn,
                 "temperature": 0.2, "blur": 0.5, "contrastive_weight": 0.7, "asr_weight": 0.3}})


def _module(cfg) -> PretrainModule:
    module = PretrainModule(build_speech_llm(cfg.encoder, cfg.projector, cfg.llm, seed=0), cfg.loss).double()
    module.train()
    return module


def _batches(cfg) -> list[dict]:
    """The global batch: WORLD x ACCUM micro-batches in rank-major order, audio in fp64."""
    loader = StreamLoader(cfg.data, 0, 1)
    out = []
    for batch in loader:
        out.append({**batch, "audio": batch["audio"].double()})
        if len(out) == WORLD * ACCUM:
            return out
    raise AssertionError("not enough batches")


class _Engine:
    """What GradCacheStep needs of DeepSpeed: forward, backward dividing by the accumulation steps, step."""

    def __init__(self, module, accum):
        self.module, self.accum = module, accum

    def __call__(self, *args, **kwargs):
        return self.module(*args, **kwargs)

    def backward(self, loss):
        (loss / self.accum).backward()

    def step(self):
        pass


def _grads(module) -> list[torch.Tensor]:
    return [p.grad.clone() for p in module.trainable_parameters()]


def _reference(cfg, batches) -> tuple[float, list[torch.Tensor]]:
    """One process, one big batch: every micro-batch's features with grad (from the seed its rank starts with, so
    dropout and shifts are those of GradCache's first pass), the loss over all of them, one backward."""
    module = _module(cfg)
    parts = []
    for rank in range(WORLD):
        torch.manual_seed(100 + rank)
        parts += [module(b, mode="features") for b in batches[rank * ACCUM:(rank + 1) * ACCUM]]
    speech, speech_mask = concat_features([p["speech"] for p in parts], [p["speech_mask"] for p in parts])
    text, text_mask = concat_features([p["text"] for p in parts], [p["text_mask"] for p in parts])
    contrastive, _ = module.objective.contrastive(speech, speech_mask, text, text_mask, from_features=True)
    total = cfg.loss.contrastive_weight * contrastive
    if cfg.loss.uses_asr:
        total = total + cfg.loss.asr_weight * torch.stack([p["asr"] for p in parts]).mean()
    total.backward()
    return float(contrastive.detach()), _grads(module)


def _rank(rank: int, init_file: str, case: str, world: dict, batches: list[dict], out: dict) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD)
    torch.set_num_threads(1)
    cfg = _cfg(world, case)
    module = _module(cfg)
    torch.manual_seed(100 + rank)
    metrics, _ = GradCacheStep(_Engine(module, ACCUM), module)(batches[rank * ACCUM:(rank + 1) * ACCUM])
    grads = _grads(module)
    for g in grads:  # what DeepSpeed does with the ranks' gradients
        dist.all_reduce(g)
        g /= WORLD
    loss = torch.tensor([float(metrics["loss/contrastive"])], dtype=torch.float64)
    dist.all_reduce(loss)
    if rank == 0:
        out["loss"], out["grads"] = float(loss) / WORLD, [g.tolist() for g in grads]
        out["metrics"] = {k: float(v) for k, v in metrics.items()}
    dist.destroy_process_group()


@pytest.mark.distributed
@pytest.mark.parametrize("case", sorted(CASES))
def test_four_micro_batches_on_two_ranks_equal_one_big_batch_in_fp64(world, case, tmp_path):
    cfg = _cfg(world, case)
    batches = _batches(cfg)
    ref_loss, ref_grads = _reference(cfg, batches)
    with mp.Manager() as manager:
        out = manager.dict()
        mp.spawn(_rank, args=(str(tmp_path / "init"), case, world, batches, out), nprocs=WORLD, join=True)
        out = dict(out)
    assert out["loss"] == pytest.approx(ref_loss, rel=1e-12, abs=1e-12)
    assert out["metrics"]["count/speech_tokens"] > 0
    for got, want in zip(out["grads"], ref_grads):
        torch.testing.assert_close(torch.tensor(got, dtype=torch.float64), want, rtol=1e-10, atol=1e-13)
    assert any(float(g.abs().max()) > 0 for g in ref_grads)


def test_without_grad_cache_each_micro_batch_sees_only_itself(world):
    """The contrast GradCache buys: plain accumulation's gradient differs from the big batch's."""
    cfg = _cfg(world, "cos-global-sym-temperature")
    batches = _batches(cfg)[:ACCUM]
    module = _module(cfg)
    torch.manual_seed(100)
    GradCacheStep(_Engine(module, ACCUM), module)(batches)
    cached = _grads(module)
    module.zero_grad()
    torch.manual_seed(100)
    for b in batches:
        (module(b)[0] / ACCUM).backward()
    plain = _grads(module)
    assert max(float((a - b).abs().max()) for a, b in zip(cached, plain)) > 1e-6


def test_concat_and_split_round_trip_token_clouds():
    a, b = torch.randn(2, 3, 4), torch.randn(1, 5, 4)
    ma, mb = torch.ones(2, 3, dtype=torch.bool), torch.tensor([[True, True, True, True, False]])
    full, mask = concat_features([{7: a}, {7: b}], [ma, mb])
    assert full[7].shape == (3, 5, 4) and mask.shape == (3, 5) and not mask[:2, 3:].any()
    assert torch.equal(full[7][:2, 3:], torch.zeros(2, 2, 4))
    back = split_rows(full, [ma, mb])
    assert torch.equal(back[0][7], a) and torch.equal(back[1][7], b)
    pooled, _ = concat_features([{0: a[:, 0]}, {0: b[:, 0]}], [ma, mb])
    assert [t[0].shape for t in split_rows(pooled, [ma, mb])] == [(2, 4), (1, 4)]


@pytest.mark.parametrize(("global_batch", "micro", "world_size", "accum"), [(0, 8, 2, 3), (64, 8, 2, 4), (16, 8, 2, 1)])
def test_global_batch_size_sets_the_accumulation(global_batch, micro, world_size, accum):
    cfg = EngineConfig(grad_accum=3, global_batch_size=global_batch)
    assert resolve_grad_accum(cfg, micro, world_size) == accum == cfg.grad_accum


def test_a_global_batch_that_does_not_split_is_refused():
    with pytest.raises(ValueError, match=r"global_batch_size=60 is not a multiple of .* 8 x 2 = 16: use e.g. 48 or 64"):
        resolve_grad_accum(EngineConfig(global_batch_size=60), 8, 2)
    with pytest.raises(ValueError, match="global_batch_size must be >= 0"):
        EngineConfig(global_batch_size=-1)


@pytest.mark.slow
def test_pretraining_with_a_global_batch_size_runs_grad_cache(tone_world):
    """A real DeepSpeed run: engine.global_batch_size=16 with micro-batches of 4 is 4 accumulation steps, each
    step's loss scored over all 16 samples; loss.grad_cache=false falls back to per-micro-batch negatives."""
    root = tone_world["root"] / "global-batch"
    cached, plain = root / "cached", root / "plain"
    root.mkdir()
    sections = {"engine": {"ds_config": "zero2", "global_batch_size": 16}, "data": {"batch_size": 4},
                "train": {"max_steps": 3, "log_every": 1}, "heldout": {"every_steps": 0}}
    log = run(write_config(tone_world, cached, **sections))
    assert "contrastive candidates per sample: 16 (each sample against all micro-batches (GradCache)" in log
    assert yaml.safe_load((cached / "config.yaml").read_text())["engine"]["grad_accum"] == 4
    steps = rows(cached / "metrics.jsonl")
    assert [r["samples"] for r in steps] == [16, 32, 48]
    assert all(r["time/grad_cache_first_pass_s"] > 0 and math.isfinite(r["loss/total"]) for r in steps)
    log = run(write_config(tone_world, plain, **sections, loss={"objective": "cos", "grad_cache": False}))
    assert "contrastive candidates per sample: 4 (each sample against its own micro-batch" in log
    assert not any("time/grad_cache_first_pass_s" in r for r in rows(plain / "metrics.jsonl"))
