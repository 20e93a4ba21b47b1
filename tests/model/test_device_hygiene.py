"""Device hygiene: every training and generation path runs with the model and batch on a second device and no op
mixes device tensors with CPU tensors, as CUDA requires.

Why: CI has no GPU, so a ``torch.zeros(n)`` without ``device=``, a CPU index into a device tensor or a
``torch.as_tensor(numpy)`` passes every other test and breaks (or silently syncs) only on the cluster. The checker
(tests/model/device_check.py) holds CPU data that reports device ``meta`` and fails on any mix; the first tests prove
it catches the cases plain meta tensors let through (mm, linear, bmm, einsum, indexing), so that it cannot pass
everything silently. The rest run the real modules: pretraining forward + loss + backward for every objective
(packing on and off, text and encoder caches, negatives gathered from a simulated second rank, GradCache, the Triton
kernels), held-out evaluation and the cache builders, finetuning with LoRA, and generation, on Llama, Gemma 3
(sliding-window masks) and Qwen2 tiny LLMs.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import model.distributed
import model.packing
from data.stream import StreamConfig, StreamLoader
from model.encoders import EncoderConfig, build_encoder
from model.kernels import pooling, softmin
from model.llm import LLMConfig, freeze
from model.lora import LoraConfig, apply_lora
from model.loss_functions import NonFiniteLossError
from model.losses import LossConfig
from model.packing import packed_inputs
from model.projectors import ProjectorConfig, build_projector
from tests.model.device_check import (
    DEVICE,
    CheckedKernel,
    DeviceMismatchError,
    DeviceTensor,
    module_to_device,
    on_device,
    require_device,
    to_device,
)
from tests.model.test_encoders import tiny_whisper
from tests.model.test_pipeline import _speech_llm
from tests.model.test_speech_llm import ASR, HIDDEN, audio_batch, build
from tests.train.test_finetune_model import META
from train import cache_encoder, cache_text
from train.finetune_model import FinetuneModule
from train.grad_cache import GradCacheStep
from train.heldout import HeldoutConfig, HeldoutEvaluator
from train.pretrain_model import PretrainModule, encode
from train.tasks import TaskConfig

OBJECTIVES = ["cos", "wasser", "asr", "cos+asr", "wasser+asr"]
TEXTS = [m["text"] for m in META]

# ------------------------------------------------------------------------------------------ the checker itself
MISMATCHES = {
    "mm": lambda x, w: x @ w.T,
    "linear": lambda x, w: F.linear(x, w),
    "bmm": lambda x, w: torch.bmm(x[None], w.T[None]),
    "einsum": lambda x, w: torch.einsum("id,jd->ij", x, w),
    "index": lambda x, w: x[torch.tensor([0, 2])],
    "bool mask": lambda x, w: x[torch.tensor([True, False, True])],
    "index_put": lambda x, w: x.index_put_((torch.tensor([1]),), torch.ones(1, 4, device=x.device)),
    "cat": lambda x, w: torch.cat([x, w]),
    "where": lambda x, w: torch.where(torch.ones(3, 4, dtype=torch.bool), x, 0.0),
    "device scalar, CPU tensor": lambda x, w: x.sum() * w,
    "numpy": lambda x, w: x.numpy(),
}


@pytest.mark.parametrize("case", MISMATCHES)
def test_checker_flags_every_mix_of_device_and_cpu_tensors(case):
    x, w = to_device(torch.randn(3, 4)), torch.randn(5, 4)
    with on_device() as checker, pytest.raises(DeviceMismatchError) as err:
        MISMATCHES[case](x, w)
    assert checker.violations == [str(err.value)]
    assert case == "numpy" or ("aten." in str(err.value) and "cpu(" in str(err.value) and "device(" in str(err.value))


def test_checker_allows_scalars_factories_and_explicit_transfers():
    x = to_device(torch.arange(12.0).view(3, 4))
    with on_device() as checker:
        made = [x * torch.tensor(2.0), torch.zeros(3, device=x.device), torch.arange(3, device=x.device),
                torch.randint(0, 5, (3,), device=x.device), torch.tensor([1, 2], device=x.device),
                torch.as_tensor(np.arange(3), device=x.device), x.new_tensor([1.0]), x.new_zeros(2),
                torch.zeros(2).to(x.device), x[torch.tensor([0, 2]).to(x.device)], x.nonzero()]
        assert all(isinstance(t, DeviceTensor) and t.device == DEVICE for t in made)
        assert made[4].elem.tolist() == [1, 2] and made[5].elem.tolist() == [0, 1, 2]  # values survive
        host = x.cpu()
        assert type(host) is torch.Tensor and host.numpy().shape == (3, 4) and type(x.to("cpu")) is torch.Tensor
        assert x.sum().item() == 66.0 and x[0].tolist() == [0.0, 1.0, 2.0, 3.0] and int(x.argmax()) == 11
        y = x.clone()
        y[0] = torch.ones(4)  # slice assignment from the host: an explicit copy_, legal on CUDA
        y.add_(1)  # in-place ops keep the wrapper
        assert isinstance(y, DeviceTensor) and y.elem[0].tolist() == [2.0] * 4
    assert checker.violations == []
    assert checker.syncs["_local_scalar_dense.default"] >= 2 and checker.syncs["tolist"] == 1


class _HostInBackward(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return x * 2

    @staticmethod
    def backward(ctx, grad):
        return grad * torch.full(grad.shape, 2.0)  # the bug: a CPU tensor in a backward


def test_checker_sees_backward_ops_and_model_code(monkeypatch, shard_batch, tiny_tokenizer_dir):
    x = to_device(torch.randn(3)).requires_grad_()
    with on_device(), pytest.raises(DeviceMismatchError, match="mul"):
        _HostInBackward.apply(x).sum().backward()
    # a packing plan left on the CPU (the `.to(device)` dropped) is caught inside the real pretraining forward
    segment_ids = model.packing._segment_ids
    monkeypatch.setattr(model.packing, "_segment_ids", lambda plan, device: segment_ids(plan, "cpu"))
    module = _pretrain_module(tiny_tokenizer_dir, "cos", "rows")
    with on_device() as checker, pytest.raises(DeviceMismatchError):
        module(to_device(shard_batch))
    assert checker.violations


# ------------------------------------------------------------------------------------------ pretraining
@pytest.fixture(scope="module")
def shard_batch(shard_set, tiny_tokenizer_dir):
    """A real batch of the streaming loader (audio, masks, token ids, keys), on the CPU as the loader yields it."""
    loader = StreamLoader(StreamConfig(sources=[{"path": str(shard_set)}], batch_size=4, num_workers=0,
                                       tokenizer=str(tiny_tokenizer_dir), text_norm="lower", max_duration=3.0))
    return next(iter(loader))


def _pretrain_module(tokenizer_dir, objective: str, packing: str, **loss) -> PretrainModule:
    speech_llm = _speech_llm(tokenizer_dir)
    speech_llm.cfg.packing, speech_llm.cfg.position_shift_max = packing, 20
    speech_llm.cfg.position_shift_shared = packing == "rows"  # both branches of the text-side shift
    module = PretrainModule(speech_llm, LossConfig(objective=objective, blur=0.5, **loss)).train()
    return module_to_device(module)


def _step_on_device(module, batch: dict, **kwargs) -> float:
    """Forward + backward with the batch moved to the device; every trainable parameter gets a device gradient."""
    with on_device() as checker:
        loss, _ = module(to_device(batch), **kwargs)
        loss.backward()
    assert checker.violations == []
    assert isinstance(loss, DeviceTensor) and torch.isfinite(loss.elem)
    grads = [p.grad for p in module.trainable_parameters()]
    assert grads and all(isinstance(g, DeviceTensor) for g in grads)
    return float(loss.elem)


@pytest.mark.parametrize("packing", ["rows", "off"])
@pytest.mark.parametrize("objective", OBJECTIVES)
def test_pretraining_step_on_device(shard_batch, tiny_tokenizer_dir, objective, packing):
    _step_on_device(_pretrain_module(tiny_tokenizer_dir, objective, packing), shard_batch)


def test_device_run_computes_what_the_cpu_run_computes(shard_batch, tiny_tokenizer_dir):
    """The checker runs the real ops on the real data: same loss as the plain CPU run."""
    losses = []
    for device in (False, True):
        speech_llm = _speech_llm(tiny_tokenizer_dir)
        module = PretrainModule(speech_llm, LossConfig(objective="wasser+asr", blur=0.5)).eval()
        if device:
            with on_device():
                losses.append(float(module_to_device(module)(to_device(shard_batch))[0].elem))
        else:
            losses.append(float(module(shard_batch)[0].detach()))
    # not bit-equal: SDPA picks its kernel by device, and for "meta" it decomposes into the math path
    assert losses[1] == pytest.approx(losses[0], rel=1e-5)


@pytest.mark.parametrize("objective", ["cos", "wasser"])
def test_cached_text_states_and_encoder_features_on_device(shard_batch, tiny_tokenizer_dir, objective):
    """The batch carries the text cache (pooled for cos, every token for wasser) and the encoder cache."""
    module = _pretrain_module(tiny_tokenizer_dir, objective, "rows", direction="sym", learn_temperature=True)
    m = module.speech_llm
    with on_device(), torch.no_grad():  # what the cache builders compute; the loader yields it on the host
        batch = to_device(shard_batch)
        enc = encode(m, batch)
        states, mask = m.text_hidden_states(batch["text_ids"], batch["text_mask"])
        stacked = torch.stack([states[layer] for layer in m.layers], 2)  # [B, L, layers, D]
        pooled = (stacked * mask[..., None, None]).sum(1) / mask.sum(1)[:, None, None]
    cache = {"encoder_features": enc.features.cpu(), "encoder_mask": enc.mask.cpu()}
    cache.update({"text_pooled": pooled.cpu()} if objective == "cos" else {"text_states": stacked.cpu()})
    _step_on_device(module, {**shard_batch, **cache})


@pytest.mark.parametrize("objective", ["cos", "wasser+asr"])
def test_nonfinite_diagnosis_on_device(shard_batch, tiny_tokenizer_dir, objective):
    """A NaN projector: the guard's diagnosis (which samples, which layer) reads device tensors on the host."""
    module = _pretrain_module(tiny_tokenizer_dir, objective, "rows")
    with torch.no_grad():
        next(module.speech_llm.projector.parameters()).elem.fill_(float("nan"))
    with on_device() as checker, pytest.raises(NonFiniteLossError, match="non-finite inputs"):
        module(to_device(shard_batch))
    assert checker.violations == []


def test_heldout_evaluation_and_cache_builders_on_device(shard_set, shard_batch, tiny_tokenizer_dir, tmp_path):
    """Held-out loss + retrieval, and the text / encoder cache builders, with the frozen models on the device."""
    module = _pretrain_module(tiny_tokenizer_dir, "cos", "rows")
    m = module.speech_llm
    data = StreamConfig(sources=[{"path": str(shard_set)}], tokenizer=str(tiny_tokenizer_dir), text_norm="lower",
                        max_duration=3.0)
    evaluator = HeldoutEvaluator(HeldoutConfig(sources=[{"path": str(shard_set)}], max_samples=8, batch_size=4),
                                 data, LossConfig(blur=0.5), tmp_path)
    ids = [row[row.bool()].tolist() for row in shard_batch["text_ids"] * shard_batch["text_mask"]]
    with on_device() as checker:
        metrics = evaluator.evaluate(module, step=0)
        pooled = cache_text.text_states(m.llm, ids, m.layers, pad_id=0, pooled=True)
        states = cache_text.text_states(m.llm, ids, m.layers, pad_id=0, pooled=False)
        waves = [row[:n] for row, n in zip(shard_batch["audio"], shard_batch["audio_lengths"].tolist())]
        features = cache_encoder.encoder_features(m.encoder, waves)
    assert checker.violations == [] and metrics["eval/samples"] == 8
    assert all(isinstance(t, DeviceTensor) for t in pooled + states)  # build_cache moves them to the host
    assert all(type(t) is torch.Tensor for t in features)


def test_text_cache_build_runs_the_llm_on_the_device(monkeypatch, shard_set, tiny_tokenizer_dir, tmp_path):
    """`python -m train.cache_text` (a GPU job) must move the LLM that load_llm leaves on the CPU."""
    m = _speech_llm(tiny_tokenizer_dir)
    monkeypatch.setattr(cache_text, "load_llm", lambda cfg: (m.llm, m.tokenizer))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.nn.Module, "cuda", lambda self, device=None: module_to_device(self))
    data = StreamConfig(sources=[{"path": str(shard_set)}], tokenizer=str(tiny_tokenizer_dir), text_norm="lower",
                        text_cache=str(tmp_path / "cache"))
    cfg = SimpleNamespace(data=data, llm=LLMConfig(name_or_path=str(tiny_tokenizer_dir), layers="all"))
    with on_device() as checker:
        counts = cache_text.build_cache(cfg, pooling="mean", dtype="float32", batch_size=64)
    assert checker.violations == [] and counts["samples"] > 0
    assert isinstance(m.llm.get_input_embeddings().weight, DeviceTensor)


class _SecondRank:
    """torch.distributed as model/distributed.py uses it, for rank 1 of 2 whose peer holds the same batch; NCCL
    collectives take device tensors only."""

    ReduceOp = torch.distributed.ReduceOp

    def is_available(self):
        return True

    def is_initialized(self):
        return True

    def get_rank(self, group=None):
        return 1

    def get_world_size(self, group=None):
        return 2

    def all_gather(self, out, t, group=None):
        require_device("all_gather", (out, t))
        for o in out:
            o.copy_(t)

    def all_reduce(self, t, op=None, group=None):
        require_device("all_reduce", t)
        t.mul_(2)


@pytest.mark.parametrize("local_loss", [False, True])
@pytest.mark.parametrize("objective", ["cos", "wasser"])
def test_negatives_gathered_across_ranks_on_device(monkeypatch, shard_batch, tiny_tokenizer_dir, objective,
                                                   local_loss):
    monkeypatch.setattr(model.distributed, "dist", _SecondRank())
    _step_on_device(_pretrain_module(tiny_tokenizer_dir, objective, "rows", local_loss=local_loss), shard_batch)


class _Engine:
    """What GradCacheStep needs of DeepSpeed: forward, backward dividing by the accumulation steps, step."""

    def __init__(self, module):
        self.module = module

    def __call__(self, *args, **kwargs):
        return self.module(*args, **kwargs)

    def backward(self, loss):
        (loss / 2).backward()

    def step(self):
        pass


@pytest.mark.parametrize("objective", ["cos+asr", "wasser"])
def test_grad_cache_step_on_device(shard_batch, tiny_tokenizer_dir, objective):
    module = _pretrain_module(tiny_tokenizer_dir, objective, "rows", learn_temperature=True)
    with on_device() as checker:
        metrics, _ = GradCacheStep(_Engine(module), module)([to_device(shard_batch), to_device(shard_batch)])
    assert checker.violations == [] and isinstance(metrics["loss/total"], DeviceTensor)
    assert all(isinstance(p.grad, DeviceTensor) for p in module.trainable_parameters())


@pytest.mark.skipif(not softmin.triton_available(), reason="triton is not installed")
def test_fused_kernels_launch_with_device_tensors(monkeypatch):
    """The Triton kernels run under TRITON_INTERPRET on the CPU data, each launch checked for device arguments
    (``loss.kernels=auto`` picks them only for CUDA tensors, so they are forced here)."""
    kernels = {(softmin, "_softmin_kernel"), (softmin, "_plan_grad_kernel"), (pooling, "_masked_mean_kernel")}
    checked = {name: CheckedKernel(getattr(mod, name), name) for mod, name in kernels}
    for mod, name in kernels:
        monkeypatch.setattr(mod, name, checked[name])
    audio, mask = audio_batch((8000, 5000))  # the interpreter runs one kernel program at a time: keep it small
    speech_llm = build("llama", projector="qformer", packing="rows")
    ids = speech_llm.tokenizer(["quick brown fox", "the fox"], padding=True, return_tensors="pt")
    batch = {"audio": audio, "audio_mask": mask, "text_ids": ids.input_ids, "text_mask": ids.attention_mask,
             "keys": list("ab")}
    for objective in ("cos", "wasser"):
        loss = LossConfig(objective=objective, blur=0.5, scaling=0.2, kernels="triton")
        module = PretrainModule(speech_llm, loss).train()
        _step_on_device(module_to_device(module), batch)
    assert all(k.launches > 0 for k in checked.values())


def test_varlen_packing_inputs_on_device():
    """flash-attn's padding-free path cannot run on the CPU; its inputs (built for any attention) are checked."""
    speech_llm = module_to_device(build("llama", packing="rows"))
    with on_device() as checker:
        lengths = torch.tensor([6, 2, 4])
        embeds, mask = to_device(torch.randn(3, 6, HIDDEN)), to_device(torch.arange(6)[None] < lengths[:, None])
        _, inputs = packed_inputs(speech_llm.llm, embeds, mask, torch.tensor([0, 3, 1]), "varlen")
    assert checker.violations == []
    assert all(isinstance(v, DeviceTensor) for v in inputs.values() if isinstance(v, torch.Tensor))
    assert inputs["cu_seq_lens_q"].elem.tolist() == [0, 6, 8, 12]


# ------------------------------------------------------------------------------------------ finetuning, generation
@pytest.mark.parametrize("arch,packing", [("llama", "rows"), ("gemma3", "off"), ("gemma3", "rows"), ("qwen2", "off")])
def test_finetune_with_lora_and_generate_on_device(arch, packing):
    torch.manual_seed(0)
    speech_llm = build(arch, projector="qformer", packing=packing, position_shift_max=5)
    apply_lora(speech_llm.llm, LoraConfig(r=2, target_modules=["q_proj", "v_proj"]))
    module = module_to_device(FinetuneModule(speech_llm, TaskConfig(st_targets=["de", "fr"])).train())
    audio, mask = audio_batch()
    batch = {"audio": audio, "audio_mask": mask, "keys": list("abc"), "meta": META, "texts": TEXTS, "epoch": 0}
    _step_on_device(module, batch)
    assert any("lora_" in n and isinstance(p.grad, DeviceTensor) for n, p in module.named_parameters())
    speech_llm.eval()
    with on_device() as checker:
        answers = speech_llm.generate_text(to_device(audio), to_device(mask), [ASR] * 3, max_new_tokens=3)
        answers += speech_llm.generate_from_text(["quick fox", "dog"], max_new_tokens=2)
        logits = speech_llm.lm_logits(to_device(torch.randn(2, 5, HIDDEN)), to_device(torch.ones(2, 5, dtype=bool)))
    assert checker.violations == [] and len(answers) == 5 and isinstance(logits, DeviceTensor)


@pytest.mark.parametrize("window", [None, 1.0])
def test_whisper_encoder_on_device(window):
    """Whisper's log-mel keeps its filter bank on the CPU (plain attributes) and moves it per call."""
    speech_llm = build("llama", projector="qformer", packing="rows")
    speech_llm.encoder = freeze(build_encoder(EncoderConfig(kind="whisper", whisper_window_seconds=window),
                                              model=tiny_whisper()))
    speech_llm.projector = build_projector(ProjectorConfig(hidden=32, heads=2, ffn=64, layers=1),
                                           speech_llm.encoder.dim, HIDDEN, speech_llm.encoder.frame_rate)
    audio, mask = audio_batch()
    ids = speech_llm.tokenizer(["quick brown fox", "lazy dog", "the fox"], padding=True, return_tensors="pt")
    batch = {"audio": audio, "audio_mask": mask, "text_ids": ids.input_ids, "text_mask": ids.attention_mask,
             "keys": list("abc"), "texts": TEXTS}
    _step_on_device(module_to_device(PretrainModule(speech_llm, LossConfig(objective="cos+asr")).train()), batch)
