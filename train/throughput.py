"""Throughput model of contrastive pretraining: FLOPs per second of audio, and audio hours per GPU-hour.

    python -m train.throughput                        # the paper's stack, 400 h and 1,400 h, 5 epochs, H100 bf16
    python -m train.throughput --mfu 0.2 --peak-tflops 989 --hours 400 1400 --epochs 5
    python -m train.throughput --memory               # peak memory per GPU of every paper recipe (train/memory.py)

What one training step computes per second of audio (attention scores are left out: at ~12 speech tokens per
second and utterances under 45 s they are < 1 % of the matmuls at LLM widths):

* encoder: forward only (frozen, no grad) - 2 x transformer parameters per frame + the CNN front end's
  multiply-adds; zero when features come from the encoder cache (train.cache_encoder).
* projector: forward + backward with weight gradients - at most 6 x its parameters per input frame (an upper
  bound: the Q-Former applies only its cross-attention keys/values to every frame, the rest to 4 queries per window).
* LLM over the speech tokens: forward + backward to its inputs only (frozen weights get no weight gradient), 4 x
  the non-embedding parameters per token, through every layer up to the deepest aligned one (the last, for "all").
* LLM over the transcript: forward only, 2 x parameters per text token; zero with the text cache (train.cache_text).

Parameters are counted exactly by building the models from their configs on the meta device (no weights needed);
`tests/train/test_throughput.py` checks the per-stage formulas against torch's FLOP counter on real modules. The
audio hours per GPU-hour then follow from an assumed model-FLOPs utilisation (MFU): measure yours (the `audio h/s`
of metrics.jsonl) and compare.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass

import torch
from torch import nn

from core.errors import entry_point

__all__ = ["Stack", "conv_flops_per_second", "flops_per_audio_second", "audio_hours_per_gpu_hour", "paper_stack"]

SAMPLE_RATE = 16_000


@dataclass(frozen=True)
class Stack:
    """The sizes the throughput model needs."""

    encoder_params: float
    """Encoder transformer parameters (applied once per frame)."""
    encoder_conv_flops: float
    """CNN front-end FLOPs per second of audio."""
    frame_rate: float
    """Encoder frames per second."""
    projector_params: float
    speech_tokens_per_s: float
    """Projector outputs (LLM input tokens) per second of audio."""
    llm_params: float
    """LLM parameters applied per token: decoder layers up to the deepest aligned layer, no embeddings, no head."""
    text_tokens_per_s: float = 3.3
    """Transcript tokens per second of speech (~2.5 words/s x ~1.3 tokens/word for English with Llama 3)."""


def conv_flops_per_second(conv_dim, conv_kernel, conv_stride, in_channels: int = 1) -> float:
    """FLOPs (2 x multiply-adds) per second of 16 kHz audio of a wav2vec2/HuBERT CNN feature extractor."""
    rate, flops, c_in = float(SAMPLE_RATE), 0.0, in_channels
    for c_out, k, s in zip(conv_dim, conv_kernel, conv_stride):
        rate /= s
        flops += 2 * c_in * c_out * k * rate
        c_in = c_out
    return flops


def flops_per_audio_second(stack: Stack, text_cache: bool = False, encoder_cache: bool = False) -> dict[str, float]:
    """FLOPs per second of audio of each stage of one contrastive training step (see the module docstring)."""
    out = {
        "encoder": 0.0 if encoder_cache else 2 * stack.encoder_params * stack.frame_rate + stack.encoder_conv_flops,
        "projector": 6 * stack.projector_params * stack.frame_rate,
        "llm_speech": 4 * stack.llm_params * stack.speech_tokens_per_s,
        "llm_text": 0.0 if text_cache else 2 * stack.llm_params * stack.text_tokens_per_s,
    }
    out["total"] = sum(out.values())
    return out


def audio_hours_per_gpu_hour(flops_per_audio_s: float, peak_flops: float, mfu: float) -> float:
    """Audio seconds per GPU-second (= audio hours per GPU-hour) at utilisation `mfu` of `peak_flops`."""
    return peak_flops * mfu / flops_per_audio_s


def _params(module: nn.Module, skip: tuple[str, ...] = ()) -> int:
    return sum(p.numel() for n, p in module.named_parameters() if not any(s in n for s in skip))


def paper_stack() -> Stack:
    """HuBERT-large + the paper's Q-Former + Llama-3.1-8B, counted from their published configs on the meta device."""
    from transformers import HubertConfig, HubertModel, LlamaConfig, LlamaForCausalLM

    from model.projectors import ProjectorConfig, build_projector

    hubert = HubertConfig(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, intermediate_size=4096,
                          feat_extract_norm="layer", do_stable_layer_norm=True, conv_bias=True)
    llama = LlamaConfig(hidden_size=4096, intermediate_size=14336, num_hidden_layers=32, num_attention_heads=32,
                        num_key_value_heads=8, vocab_size=128256)
    with torch.device("meta"):
        encoder = HubertModel(hubert)
        llm = LlamaForCausalLM(llama)
        projector = build_projector(ProjectorConfig(), 1024, 4096, 50.0)
    cfg = ProjectorConfig()
    frames = round(cfg.window_seconds * 50)
    return Stack(encoder_params=_params(encoder, skip=("feature_extractor",)),
                 encoder_conv_flops=conv_flops_per_second(hubert.conv_dim, hubert.conv_kernel, hubert.conv_stride),
                 frame_rate=50.0, projector_params=_params(projector),
                 speech_tokens_per_s=50.0 / frames * cfg.queries_per_window,
                 llm_params=_params(llm.model.layers))


PAPER_RECIPES = ("contr-cos-all", "contr-wasser-all", "contr-cos-emb", "contr-wasser-emb", "contr-cos-all-asr",
                 "contr-wasser-all-asr", "asr-pretrain", "contr-cos-all-1400h", "whisper-gemma-mlp", "whisper-linear")


def memory_table(configs: list[str], world: int, overrides: list[str], attention: str = "sdpa") -> str:
    """Markdown table of `train.memory.estimate` for each config, without and with activation checkpointing."""
    from train.config import load_config
    from train.memory import estimate, fits
    from train.pretrain import PretrainConfig

    head = ("| recipe | ZeRO | weights | projector + optimizer | LLM activations (ckpt) | ASR term (ckpt) | loss | "
            "peak GB | peak GB, ckpt | fits 40 GB | fits 80 GB |")
    lines = [head, "|---|---|---|---|---|---|---|---|---|---|---|"]
    for path in configs:
        plain = estimate(load_config(PretrainConfig, path, [*overrides, "llm.activation_checkpointing=false"]),
                         world, attention)
        ckpt = estimate(load_config(PretrainConfig, path, [*overrides, "llm.activation_checkpointing=true"]),
                        world, attention)

        def fit(card: int, plain=plain, ckpt=ckpt) -> str:
            return "yes" if fits(plain["peak"], card) else "with ckpt" if fits(ckpt["peak"], card) else "no"

        name = path.rsplit("/", 1)[-1].removesuffix(".yaml")
        lines.append(f"| {name} | {plain['zero_stage']} | {gb(plain['weights'])} | {gb(plain['trainable'])} | "
                     f"{gb(plain['activations'])} ({gb(ckpt['activations'] + ckpt['recompute'])}) | "
                     f"{gb(plain['asr'])} ({gb(ckpt['asr'])}) | {gb(plain['loss'])} | {gb(plain['peak'])} | "
                     f"{gb(ckpt['peak'])} | {fit(40)} | {fit(80)} |")
    return "\n".join(lines)


def gb(x: float) -> str:
    return f"{x / 1e9:.1f}"


@entry_point
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--memory", action="store_true", help="peak memory per GPU of recipes instead (train/memory.py)")
    p.add_argument("--config", nargs="+", default=None, help="--memory: recipe YAMLs (default: the paper recipes)")
    p.add_argument("--world", type=int, default=4, help="--memory: GPUs in the job (paper: 4)")
    p.add_argument("--attention", choices=("sdpa", "flash"), default="sdpa",
                   help="--memory: sdpa with masks (default install) or flash-attn / varlen packing")
    p.add_argument("overrides", nargs="*", help="--memory: key=value settings applied to every recipe")
    p.add_argument("--peak-tflops", type=float, default=989.0, help="GPU peak (H100 SXM dense bf16: 989)")
    p.add_argument("--mfu", type=float, nargs="+", default=[0.2, 0.4], help="assumed utilisations")
    p.add_argument("--hours", type=float, nargs="+", default=[400.0, 1400.0], help="corpus sizes in audio hours")
    p.add_argument("--epochs", type=float, default=5.0, help="pretraining epochs (paper: 5)")
    p.add_argument("--gpus", type=int, default=8, help="GPUs per node, for the wall-clock column")
    args = p.parse_args(argv)
    if args.memory:
        from pathlib import Path

        configs = args.config or [str(Path(__file__).parent / "configs" / f"{r}.yaml") for r in PAPER_RECIPES]
        print(f"Peak memory per GPU, {args.world} GPUs, longest utterances of each recipe (train/memory.py):")
        print(memory_table(configs, args.world, args.overrides, args.attention))
        return 0
    stack = paper_stack()
    print(f"HuBERT-large ({stack.encoder_params / 1e6:.0f} M) + Q-Former ({stack.projector_params / 1e6:.1f} M, "
          f"{stack.speech_tokens_per_s:.2f} tokens/s) + Llama-3.1-8B ({stack.llm_params / 1e9:.2f} B in its layers)")
    print("| text states | GFLOP per audio s (enc / proj / LLM speech / LLM text) | MFU | audio h per GPU-h | "
          + " | ".join(f"{h:,.0f} h x {args.epochs:g} ep: GPU-h (1 node)" for h in args.hours) + " |")
    print("|---|---|---|---|" + "---|" * len(args.hours))
    for cached in (False, True):
        f = flops_per_audio_second(stack, text_cache=cached)
        parts = " / ".join(f"{f[k] / 1e9:.0f}" for k in ("encoder", "projector", "llm_speech", "llm_text"))
        for mfu in args.mfu:
            rate = audio_hours_per_gpu_hour(f["total"], args.peak_tflops * 1e12, mfu)
            cells = [f"{h * args.epochs / rate:,.1f} ({h * args.epochs / rate / args.gpus:,.1f} h)" for h in args.hours]
            print(f"| {'cached' if cached else 'computed'} | {f['total'] / 1e9:.0f} ({parts}) | {mfu:.0%} | "
                  f"{rate:,.0f} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
