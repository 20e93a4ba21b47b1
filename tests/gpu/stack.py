"""The stacks the GPU check trains, built in memory from configs, and its smoke stage.

    python -m tests.gpu.stack [--tiny]          # smoke: CUDA visible, one tiny bf16 forward + backward

Why in memory: the lent GPU machine has no network and no model files, and random weights are all a throughput or
kernel check needs. So the encoder (HuBERT), the projector and the LLM (Llama) are built here from their configs -
the paper's sizes (`PAPER`: HuBERT-large, the default window Q-Former, Llama-3.1-8B; the same configs as
`train.throughput.paper_stack`, which a CI test keeps equal) or tiny ones (`TINY`) - straight on the device in
the compute dtype (an 8B LLM built in float32 first would need 32 GB of host or GPU memory), and then handed to the
project's own classes (`build_encoder`, `build_projector`, `SpeechLLM`, `PretrainModule`), so every forward below
is the training code's.

Batches are synthetic (tones and noise, no TTS on that machine) and carry what the loader would: audio and its mask,
token ids and mask, and, with ``text_cache``, pooled text states as `data.text_cache` supplies them.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from dataclasses import dataclass, field

import torch

from model.projectors import ProjectorConfig

__all__ = ["StackSpec", "PAPER", "TINY", "build_module", "synthetic_batch", "flops_stack", "count_stack", "device_name"]

SAMPLE_RATE = 16_000


@dataclass(frozen=True)
class StackSpec:
    """Sizes of one stack and of its batches."""

    name: str
    encoder: dict
    """HubertConfig keyword arguments."""
    llm: dict
    """LlamaConfig keyword arguments."""
    projector: ProjectorConfig = field(default_factory=ProjectorConfig)
    batch: int = 10
    """Utterances per micro-batch (paper: 10 per GPU)."""
    seconds: tuple[float, float] = (15.0, 20.0)
    """Utterance lengths are drawn uniformly from this range."""
    text_tokens_per_s: float = 3.3
    """Transcript tokens per second of speech (as `train.throughput.Stack`)."""


PAPER = StackSpec(
    name="HuBERT-large + Q-Former + Llama-3.1-8B (random weights)",
    encoder=dict(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, intermediate_size=4096,
                 feat_extract_norm="layer", do_stable_layer_norm=True, conv_bias=True),
    llm=dict(hidden_size=4096, intermediate_size=14336, num_hidden_layers=32, num_attention_heads=32,
             num_key_value_heads=8, vocab_size=128256, tie_word_embeddings=False))

TINY = StackSpec(
    name="tiny HuBERT + Q-Former + Llama (random weights)",
    # hubert-large's front end (320-sample stride, layer norm), narrow; 11 LLM layers make "all" = [0, 5, 10, 11]
    encoder=dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
                 conv_dim=(16,) * 7, conv_stride=(5, 2, 2, 2, 2, 2, 2), conv_kernel=(10, 3, 3, 3, 3, 2, 2),
                 conv_bias=True, feat_extract_norm="layer", do_stable_layer_norm=True, num_conv_pos_embeddings=16,
                 num_conv_pos_embedding_groups=4),
    llm=dict(hidden_size=64, intermediate_size=128, num_hidden_layers=11, num_attention_heads=4,
             num_key_value_heads=2, vocab_size=300, tie_word_embeddings=False),
    projector=ProjectorConfig(hidden=32, heads=4, layers=2, ffn=64),
    batch=3, seconds=(1.0, 2.0))


def device_name(device: torch.device) -> str:
    return torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU ({torch.get_num_threads()} threads)"


def build_module(spec: StackSpec, device: torch.device, dtype: torch.dtype, objective: str = "cos",
                 layers: str | list[int] = "all", packing: str = "rows", seed: int = 0):
    """A `PretrainModule` (frozen encoder and LLM, trainable projector, objective) built on `device` in `dtype`.

    The LLM uses SDPA (flash-attn is not installed on the lent machines) and packs speech and transcripts into rows
    (`llm.packing=rows`; varlen needs flash-attn).
    """
    from transformers import AutoModelForCausalLM, HubertConfig, HubertModel, LlamaConfig

    from model.encoders import EncoderConfig, build_encoder
    from model.llm import LLMConfig
    from model.losses import LossConfig
    from model.projectors import build_projector
    from model.speech_llm import SpeechLLM
    from train.pretrain_model import PretrainModule

    torch.manual_seed(seed)
    llm_cfg = LLMConfig(name_or_path="random-init", layers=layers, attn_implementation="sdpa",
                        dtype={torch.bfloat16: "bfloat16", torch.float32: "float32"}[dtype], packing=packing)
    with torch.device(device):  # weights are created where they run: no host copy of an 8B model
        previous = torch.get_default_dtype()
        torch.set_default_dtype(dtype)
        try:
            hubert = HubertModel(HubertConfig(**spec.encoder))
            llm = AutoModelForCausalLM.from_config(LlamaConfig(**spec.llm), dtype=dtype, attn_implementation="sdpa")
        finally:
            torch.set_default_dtype(previous)
        encoder = build_encoder(EncoderConfig(name_or_path="random-init", kind="hubert",
                                              dtype={torch.bfloat16: "bfloat16", torch.float32: "float32"}[dtype]),
                                model=hubert)
        projector = build_projector(spec.projector, encoder.dim, llm.config.hidden_size, encoder.frame_rate)
    projector.to(device, dtype)
    speech_llm = SpeechLLM(encoder, projector, llm, tokenizer=None, cfg=llm_cfg)
    return PretrainModule(speech_llm, LossConfig(objective=objective))


def synthetic_batch(spec: StackSpec, module, seed: int = 0, text_cache: bool = False) -> dict:
    """A batch as the loader yields it: tone-and-noise audio of `spec.seconds`, random token ids, and with
    `text_cache` pooled text states ``[B, layers, D]`` in the LLM's dtype (as `data.text_cache` supplies them for the
    cosine objective; the text-side LLM forward is then skipped)."""
    g = torch.Generator().manual_seed(seed)
    b, (lo, hi) = spec.batch, spec.seconds
    lengths = ((lo + (hi - lo) * torch.rand(b, generator=g)) * SAMPLE_RATE).long()
    t = torch.arange(int(lengths.max())) / SAMPLE_RATE
    freqs = 100 + 900 * torch.rand(b, 3, 1, generator=g)  # three tones per utterance, slowly amplitude-modulated
    tones = (torch.sin(2 * math.pi * freqs * t) * (0.5 + 0.5 * torch.sin(2 * math.pi * 3 * t * torch.rand(
        b, 3, 1, generator=g)))).sum(1)
    mask = t[None] * SAMPLE_RATE < lengths[:, None]
    audio = ((0.2 * tones + 0.05 * torch.randn(tones.shape, generator=g)) * mask).float()
    words = torch.clamp((lengths / SAMPLE_RATE * spec.text_tokens_per_s).round().long(), min=1)
    text_mask = torch.arange(int(words.max()))[None] < words[:, None]
    vocab = spec.llm["vocab_size"]
    batch = {"audio": audio, "audio_mask": mask, "text_ids": torch.randint(3, vocab, text_mask.shape, generator=g),
             "text_mask": text_mask, "keys": [f"synthetic-{seed}-{i}" for i in range(b)],
             "texts": ["synthetic"] * b}
    if text_cache:
        m = module.speech_llm
        pooled = torch.randn(b, len(m.layers), m.hidden_size, generator=g)
        batch["text_pooled"] = pooled.to(m.embed_dtype)
    return batch


def flops_stack(spec: StackSpec):
    """`train.throughput.Stack` of `spec`: `paper_stack` itself for `PAPER` (the FLOP model the project reports with;
    tests/gpu/test_check_tiny.py checks that `count_stack(PAPER)` equals it), else `count_stack`."""
    from train.throughput import paper_stack

    return paper_stack() if spec is PAPER else count_stack(spec)


def count_stack(spec: StackSpec):
    """`train.throughput.Stack` of `spec`, counted as `paper_stack` counts (parameters on the meta device)."""
    from transformers import HubertConfig, HubertModel, LlamaConfig, LlamaForCausalLM

    from model.projectors import build_projector
    from train.throughput import Stack, conv_flops_per_second

    enc_cfg = HubertConfig(**spec.encoder)
    with torch.device("meta"):
        encoder, llm = HubertModel(enc_cfg), LlamaForCausalLM(LlamaConfig(**spec.llm))
        projector = build_projector(spec.projector, enc_cfg.hidden_size, llm.config.hidden_size, 50.0)

    def count(module, skip: str = "\0") -> int:
        return sum(p.numel() for n, p in module.named_parameters() if skip not in n)

    return Stack(encoder_params=count(encoder, "feature_extractor"),
                 encoder_conv_flops=conv_flops_per_second(enc_cfg.conv_dim, enc_cfg.conv_kernel, enc_cfg.conv_stride),
                 frame_rate=50.0, projector_params=count(projector),
                 speech_tokens_per_s=projector.tokens_per_second, llm_params=count(llm.model.layers),
                 text_tokens_per_s=spec.text_tokens_per_s)


def smoke(tiny: bool) -> dict:
    """CUDA visible (else exit with what torch sees), then one tiny bf16 forward + backward of the whole training
    module (encoder, Q-Former, LLM over speech and text, cosine InfoNCE with the kernels on CUDA)."""
    import os

    from tests.gpu.check import SITE_ENV

    site = os.environ.get(SITE_ENV, "")
    cuda = torch.cuda.is_available()
    if not cuda and not tiny:
        raise SystemExit(f"smoke: CUDA is not visible (torch {torch.__version__}, built for CUDA {torch.version.cuda}, "
                         f"CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES')!r}, /dev/nvidia0 "
                         f"{'exists' if os.path.exists('/dev/nvidia0') else 'missing'}): nothing else can run")
    device = torch.device("cuda" if cuda else "cpu")
    start = time.perf_counter()
    module = build_module(TINY, device, torch.bfloat16).train()
    batch = synthetic_batch(TINY, module)
    loss, _ = module(batch)
    loss.backward()
    grads = [p.grad for p in module.trainable_parameters()]
    if cuda:
        torch.cuda.synchronize()
    if not torch.isfinite(loss) or any(g is None or not torch.isfinite(g).all() for g in grads):
        raise SystemExit(f"smoke: non-finite loss {float(loss)} or gradients in a bf16 step on {device}")
    return {"device": device_name(device), "torch": torch.__version__, "cuda": torch.version.cuda,
            "capability": ".".join(map(str, torch.cuda.get_device_capability())) if cuda else None,
            "loss": round(float(loss), 4), "grad_tensors": len(grads), "seconds": round(time.perf_counter() - start, 2),
            "site_on_path": bool(site) and site in sys.path}


def main(argv: list[str] | None = None) -> int:
    from tests.gpu.check import record, record_imports

    p = argparse.ArgumentParser(description="GPU check, smoke stage")
    p.add_argument("--tiny", action="store_true", help="CPU allowed (the CI run of the check)")
    args = p.parse_args(argv)
    figures = smoke(args.tiny)
    record("smoke", "figures", **figures)
    print("smoke:", figures)
    record_imports("smoke")
    return 0


if __name__ == "__main__":
    sys.exit(main())
