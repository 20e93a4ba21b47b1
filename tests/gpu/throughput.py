"""Measured throughput of contrastive pretraining at the paper's size on one GPU: the check's last stage.

    python -m tests.gpu.throughput                      # HuBERT-large + Q-Former + Llama-3.1-8B, bf16, ZeRO-2
    python -m tests.gpu.throughput --tiny               # the same path on CPU at tiny sizes (gloo, fp32)

`train.throughput` predicts audio hours per GPU-hour from a FLOP count and an assumed utilisation; this measures
the utilisation. The stack has random weights (built on the GPU from configs, tests/gpu/stack.py: nothing to
download), and the step is the trainer's: `PretrainModule` inside a one-rank DeepSpeed ZeRO-2 engine
(`train.engine.build_engine`, NCCL), bf16, cosine InfoNCE over the "all" layers, text states from the text cache
(random, as `data.text_cache` would supply them: the text-side LLM forward is skipped), speech packed into rows
(`llm.packing=rows`; varlen needs flash-attn, which the lent machines lack) and, for comparison, padded
(`llm.packing=off`). Batches: 10 utterances of 15-20 s of synthetic audio.

Per variant, after warm-up steps (allocator, cuBLAS, Triton compiles): step time, audio hours per GPU-hour, MFU =
model FLOPs per step (`train.throughput.flops_per_audio_second`, text_cache=True: encoder forward, projector
forward + backward, LLM forward + input-backward over the speech tokens) / step time / the GPU's dense bf16 peak,
and the peak of `torch.cuda.max_memory_allocated`, beside the memory model's prediction (`train.memory`, see
`memory_model_prediction`). Every figure is appended to the check's records as soon as it exists.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from pathlib import Path

import torch

from tests.gpu.check import record, record_imports
from tests.gpu.stack import PAPER, TINY, StackSpec, build_module, device_name, flops_stack, synthetic_batch

REPO = Path(__file__).resolve().parents[2]
GB = 1e9  # decimal, as train.memory reports
# Dense bf16 tensor-core peaks (TFLOP/s) by device-name substring, most specific first. H200 has H100's compute.
PEAK_BF16_TFLOPS = (("H100 PCIe", 756.0), ("H100 NVL", 835.0), ("GH200", 989.0), ("H200", 989.0), ("H100", 989.0),
                    ("A100", 312.0))


def peak_tflops(name: str, override: float | None = None) -> float | None:
    """The device's dense bf16 peak: `override`, else looked up by name; None when unknown (MFU left out)."""
    if override:
        return override
    return next((tflops for key, tflops in PEAK_BF16_TFLOPS if key in name), None)


def memory_model_prediction(spec: StackSpec, activation_checkpointing: bool = False) -> dict:
    """Hook for the memory model: its predicted peak for this run, beside the measured one.

    `train.memory.estimate` of the paper recipe (train/configs/contr-cos-all.yaml) with this run's micro-batch,
    its longest utterance as ``data.max_duration``, one micro-batch per step, one GPU. Never fails the stage: an
    absent module or a changed API is reported as the reason instead of a number.
    """
    where = (f"train.memory.estimate(contr-cos-all.yaml, data.batch_size={spec.batch}, "
             f"data.max_duration={spec.seconds[1]:g}, world 1)")
    try:
        from train.config import load_config
        from train.memory import estimate
        from train.pretrain import PretrainConfig
    except ImportError as exc:
        return {"source": where, "peak_gb": None, "reason": f"not available: {exc}"}
    try:
        overrides = [f"data.batch_size={spec.batch}", f"data.max_duration={spec.seconds[1]}", "engine.grad_accum=1",
                     f"llm.activation_checkpointing={str(activation_checkpointing).lower()}"]
        cfg = load_config(PretrainConfig, REPO / "train/configs/contr-cos-all.yaml", overrides)
        est = estimate(cfg, world=1, attention="sdpa")
    except Exception as exc:  # the model is another engineer's work in progress: report, never fail the run
        return {"source": where, "peak_gb": None, "reason": f"{type(exc).__name__}: {exc}"}
    terms = ("weights", "trainable", "encoder", "projector", "activations", "recompute", "loss", "overhead")
    return {"source": where, "peak_gb": round(est["peak"] / GB, 2),
            "terms_gb": {k: round(est[k] / GB, 2) for k in terms if k in est}}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _step(engine, batch: dict) -> float:
    loss, _ = engine(batch)
    engine.backward(loss)
    engine.step()
    return float(loss.detach())


def run_variant(engine, packing: str, batches: list[dict], warmup: int, steps: int, device: torch.device,
                flops_per_audio_s: float, peak: float | None) -> dict:
    """Warm-up steps, then `steps` timed steps (synchronised) with ``llm.packing=packing``."""
    engine.module.speech_llm.cfg.packing = packing
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    losses, times, audio = [], [], []
    for i in range(warmup + steps):
        batch = batches[i % len(batches)]
        _sync(device)
        start = time.perf_counter()
        losses.append(_step(engine, batch))
        _sync(device)
        if i >= warmup:
            times.append(time.perf_counter() - start)
            audio.append(float(batch["audio_mask"].sum()) / 16_000)
    step_s = statistics.median(times)
    audio_s = statistics.mean(audio)
    achieved = flops_per_audio_s * sum(audio) / sum(times)
    out = {"packing": packing, "warmup_steps": warmup, "timed_steps": steps, "step_s": round(step_s, 4),
           "step_s_mean": round(statistics.mean(times), 4), "audio_s_per_step": round(audio_s, 1),
           "audio_h_per_gpu_h": round(sum(audio) / sum(times), 1), "model_tflop_per_step": round(
               flops_per_audio_s * audio_s / 1e12, 2), "achieved_tflops": round(achieved / 1e12, 1),
           "mfu": round(achieved / (peak * 1e12), 4) if peak else None, "loss_first": round(losses[0], 4),
           "loss_last": round(losses[-1], 4), "finite": all(map(math.isfinite, losses))}
    if device.type == "cuda":
        out["peak_allocated_gb"] = round(torch.cuda.max_memory_allocated(device) / GB, 2)
        out["peak_reserved_gb"] = round(torch.cuda.max_memory_reserved(device) / GB, 2)
        free, total = torch.cuda.mem_get_info(device)  # + CUDA context, NCCL buffers: what train.memory's overhead is
        out["device_used_gb"] = round((total - free) / GB, 2)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="GPU check, throughput stage")
    p.add_argument("--tiny", action="store_true", help="tiny stack on CPU (gloo, fp32): the CI run of the check")
    p.add_argument("--peak-tflops", type=float, default=None, help="dense bf16 peak, if the GPU's name is not known")
    p.add_argument("--warmup", type=int, default=None, help="warm-up steps per variant (default 3; tiny 1)")
    p.add_argument("--steps", type=int, default=None, help="timed steps per variant (default 6; tiny 2)")
    p.add_argument("--packing", nargs="+", default=["rows", "off"], choices=["rows", "off"])
    args = p.parse_args(argv)
    spec = TINY if args.tiny else PAPER
    warmup = args.warmup if args.warmup is not None else (1 if args.tiny else 3)
    steps = args.steps if args.steps is not None else (2 if args.tiny else 6)
    if not torch.cuda.is_available() and not args.tiny:
        raise SystemExit("throughput: CUDA is not visible (use --tiny for the CPU run)")

    from train import distributed as tdist
    from train.engine import EngineConfig, build_engine, deepspeed_config, zero_stage
    from train.optim import OptimConfig, build_optimizer, build_scheduler
    from train.throughput import flops_per_audio_second

    start = time.perf_counter()
    tdist.setup(timeout_minutes=5)  # NCCL on the GPU, gloo (DS_ACCELERATOR=cpu) without one; world of one
    device = torch.device("cuda", torch.cuda.current_device()) if torch.cuda.is_available() else torch.device("cpu")
    ds = deepspeed_config(EngineConfig(ds_config="zero2"), spec.batch, clip_grad_norm=1.0, world_size=1)
    dtype = torch.bfloat16 if ds["bf16"]["enabled"] else torch.float32  # auto: the JSON's bf16 on GPU, fp32 on CPU
    stack = flops_stack(spec)
    flops = flops_per_audio_second(stack, text_cache=True)
    peak = peak_tflops(device_name(device), args.peak_tflops)
    module = build_module(spec, device, dtype, objective="cos", layers="all")
    _sync(device)
    built = time.perf_counter()
    optimizer = build_optimizer(module.trainable_parameters(), OptimConfig())
    engine = build_engine(module, optimizer, build_scheduler(optimizer, OptimConfig(), 1000), ds)
    engine.train()
    batches = [{k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v for k, v in
                synthetic_batch(spec, module, seed=s, text_cache=True).items()} for s in range(3)]
    setup = {"device": device_name(device), "stack": spec.name, "batch": spec.batch, "seconds": list(spec.seconds),
             "dtype": str(dtype).removeprefix("torch."), "zero_stage": zero_stage(ds),
             "backend": torch.distributed.get_backend(), "layers": module.speech_llm.layers, "objective": "cos",
             "text_cache": True, "activation_checkpointing": getattr(module.speech_llm.cfg, "activation_checkpointing",
                                                                     None), "peak_tflops": peak, "params_m": {
                 "encoder": round(stack.encoder_params / 1e6, 1), "projector": round(stack.projector_params / 1e6, 2),
                 "llm_layers": round(stack.llm_params / 1e6, 1)},
             "model_gflop_per_audio_s": {k: round(v / 1e9, 1) for k, v in flops.items()},
             "build_s": round(built - start, 1), "engine_s": round(time.perf_counter() - built, 1),
             "memory_model": memory_model_prediction(spec)}
    if device.type == "cuda":
        setup["weights_allocated_gb"] = round(torch.cuda.memory_allocated(device) / GB, 2)
    record("throughput", "setup", **setup)
    print("throughput setup:", setup, flush=True)
    for packing in args.packing:
        figures = run_variant(engine, packing, batches, warmup, steps, device, flops["total"], peak)
        record("throughput", "variant", **figures)
        print("throughput:", figures, flush=True)
    record_imports("throughput")
    tdist.teardown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
