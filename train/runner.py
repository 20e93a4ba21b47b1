"""What pretraining and finetuning share: process setup, model, DeepSpeed engine, resume, loop, outputs.

`run_job(cfg, make_module, ...)` does everything between a parsed config and the exit status; the entry points
(`train.pretrain`, `train.finetune`) only say which module trains and what is evaluated during training. `cfg`
is any config with the common sections: run_dir, seed, tensorboard, plots, data, encoder, projector, llm, optim,
engine, train, checkpoint.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from data.stream import StreamLoader
from model.speech_llm import SpeechLLM
from train import distributed as tdist
from train.checkpoint import Checkpointer
from train.config import ConfigError, config_diff, dump_config, to_dict
from train.engine import build_engine, deepspeed_config, resolve_grad_accum, zero_stage
from train.export import META, WEIGHTS
from train.loop import Trainer
from train.metrics import MetricsLogger
from train.optim import build_optimizer, build_scheduler
from train.preflight import preflight
from train.pretrain_model import build_speech_llm

__all__ = ["run_job", "setup_logging", "EXIT_PREEMPTED", "learning_curve"]

log = logging.getLogger("train.runner")
EXIT_PREEMPTED = 75


def setup_logging(rank: int) -> None:
    logging.basicConfig(level=logging.INFO if rank == 0 else logging.WARNING,
                        format=f"%(asctime)s [rank {rank}] %(name)s %(levelname)s %(message)s")
    for noisy in ("DeepSpeed", "deepspeed", "torch.distributed"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def run_job(cfg, make_module: Callable[[SpeechLLM], nn.Module], make_evaluator: Callable | None = None,
            prepare_model: Callable[[SpeechLLM], None] | None = None, eval_every: int = 0,
            eval_at_start: bool = True, objective: str = "") -> int:
    """Builds and runs one training job on every rank; returns 0 (finished) or 75 (preempted, checkpointed).

    A setting that cannot work raises ConfigError (train.preflight finds most before any model is loaded), a
    checkpoint that cannot be resumed ResumeError: expected errors, which the entry point (core.errors.entry_point)
    ends with exit status 2 on every rank and one ERROR line from rank 0.

    Args:
        cfg: the job's config (see the module docstring).
        make_module: SpeechLLM -> the module DeepSpeed trains (PretrainModule, FinetuneModule).
        make_evaluator: run_dir -> an evaluator with ``evaluate(module, step)`` (held-out metrics), or None.
        prepare_model: finishes the model before the engine is built (finetuning: the starting projector weights,
            LoRA adapters).
        eval_every, eval_at_start: when the evaluator runs.
        objective: recorded in the exported projector's metadata.
    """
    dist_env = tdist.setup(timeout_minutes=cfg.engine.collective_timeout_minutes)
    preflight(cfg, dist_env.world_size)  # config.json files and cache manifests only: before minutes of loading
    run_dir = Path(cfg.run_dir)
    if cfg.data.tokenizer is None:  # the text side must be tokenised exactly as the frozen LLM expects
        cfg.data.tokenizer = cfg.llm.name_or_path
    resolve_grad_accum(cfg.engine, cfg.data.batch_size, dist_env.world_size)
    if dist_env.is_main:
        dump_config(cfg, run_dir)
        log.info("run %s; settings changed from the defaults: %s", run_dir,
                 {k: v for k, (_, v) in config_diff(cfg).items()})

    torch.manual_seed(cfg.seed)
    speech_llm = build_speech_llm(cfg.encoder, cfg.projector, cfg.llm, seed=cfg.seed)
    if prepare_model is not None:
        prepare_model(speech_llm)
    ds = deepspeed_config(cfg.engine, cfg.data.batch_size, cfg.optim.clip_grad_norm, dist_env.world_size)
    if zero_stage(ds) == 3:
        speech_llm.cfg.early_stop = False  # ZeRO-3 hooks must see every started module finish
    if getattr(cfg.data, "text_cache", None):
        _check_text_cache(cfg, speech_llm)
    if getattr(cfg.data, "encoder_cache", None):
        from train.cache_encoder import check_encoder_cache

        check_encoder_cache(cfg)
        log.info("encoder features from the cache %s: the encoder forward is skipped", cfg.data.encoder_cache)
    module = make_module(speech_llm)
    loader = StreamLoader(cfg.data, dist_env.rank, dist_env.world_size, tokenizer=speech_llm.tokenizer)
    total = cfg.train.total_steps(loader.batches_per_epoch, cfg.engine.grad_accum)
    optimizer = build_optimizer(module.trainable_parameters(), cfg.optim)
    engine = build_engine(module, optimizer, build_scheduler(optimizer, cfg.optim, total), ds)

    checkpointer = Checkpointer(run_dir, cfg.checkpoint)
    resume = tdist.broadcast_object(checkpointer.find_resume_point() if dist_env.is_main else None)
    evaluator = make_evaluator(run_dir) if make_evaluator is not None else None
    projector_meta = {"projector": to_dict(cfg.projector), "in_dim": speech_llm.encoder.dim,
                      "out_dim": speech_llm.hidden_size, "frame_rate": speech_llm.encoder.frame_rate,
                      "encoder": cfg.encoder.name_or_path, "llm": cfg.llm.name_or_path, "objective": objective}
    lora = getattr(cfg, "lora", None)
    if lora is not None and lora.enabled:  # the adapters travel with the projector (train/export.py)
        projector_meta["lora"] = to_dict(lora)
    state = local = None
    if resume is not None:
        state, local = checkpointer.load(engine, resume)
        log.info("resumed from %s: step %d of %d, %.3f audio hours seen", resume, state["step"], total,
                 state["audio_hours"])
        if changed := _changed_settings(state["config"], to_dict(cfg)):
            log.warning("settings differ from the checkpoint's run (the resumed run uses the new ones): %s", changed)
    logger = MetricsLogger(run_dir, dist_env.is_main, state["step"] if state else None, cfg.tensorboard)
    trainer = Trainer(cfg.train, engine, module, loader, total, checkpointer, cfg.checkpoint.every_steps, logger,
                      evaluator, eval_every, eval_at_start,
                      {"config": to_dict(cfg), "world_size": dist_env.world_size}, projector_meta)
    if state is not None:
        trainer.restore(state, local)
    log.info("training %d optimizer steps (%d batches per epoch per rank, accumulation %d, %d ranks)", total,
             loader.batches_per_epoch, cfg.engine.grad_accum, dist_env.world_size)
    loss_cfg = getattr(cfg, "loss", None)
    if loss_cfg is not None and loss_cfg.contrastive_kind:
        across = "all micro-batches (GradCache)" if trainer.grad_cache is not None else "its own micro-batch"
        ranks = f" of all {dist_env.world_size} ranks" if loss_cfg.gather_negatives else " of this rank"
        per_step = cfg.data.batch_size * (cfg.engine.grad_accum if trainer.grad_cache is not None else 1) * (
            dist_env.world_size if loss_cfg.gather_negatives else 1)
        log.info("contrastive candidates per sample: %d (each sample against %s%s)", per_step, across, ranks)
    try:
        status = trainer.run()
    finally:
        logger.close()
    if dist_env.is_main:
        _finish(run_dir, checkpointer, cfg.plots, status)
    tdist.teardown()
    return 0 if status == "finished" else EXIT_PREEMPTED


def _check_text_cache(cfg, speech_llm) -> None:
    """Refuses a text cache built for other settings (the manifest's spec must equal what this run implies)."""
    from data.text_cache import check_spec, read_manifest
    from train.cache_text import cache_spec

    if not hasattr(cfg, "loss") or cfg.loss.contrastive_kind is None:
        raise ConfigError("data.text_cache holds text states for contrastive pretraining; unset it for this job",
                          "data.text_cache")
    saved = read_manifest(cfg.data.text_cache)["spec"]
    check_spec(cfg.data.text_cache, cache_spec(cfg, speech_llm.llm, speech_llm.tokenizer, saved["pooling"],
                                               saved["dtype"]))
    if cfg.loss.objective.startswith("wasser") and saved["pooling"] == "mean":
        raise ConfigError(f"data.text_cache={cfg.data.text_cache} holds pooled states, but the wasser objective "
                          f"needs every token: rebuild it with --pooling none", "data.text_cache")
    log.info("text states from the cache %s (%s, %s): the text-side LLM forward is skipped", cfg.data.text_cache,
             saved["pooling"], saved["dtype"])


def _changed_settings(before: dict, now: dict, prefix: str = "") -> dict:
    """``{"optim.lr": (old, new), ...}`` for leaves that differ between two config dicts."""
    out = {}
    for key in sorted(set(before) | set(now)):
        a, b = before.get(key), now.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            out.update(_changed_settings(a, b, f"{prefix}{key}."))
        elif a != b:
            out[f"{prefix}{key}"] = (a, b)
    return out


def _finish(run_dir: Path, checkpointer: Checkpointer, plots: bool, status: str) -> None:
    latest = checkpointer.complete()[-1]
    out = run_dir / "projector"
    if status == "finished":
        out.mkdir(exist_ok=True)
        for name in (WEIGHTS, META):
            shutil.copy2(latest / name, out / name)
    curve = learning_curve(run_dir)
    if curve:
        log.info("learning curve (train loss: mean over the steps since the previous evaluation)\n%s", curve)
    written = []
    if plots:
        from eval.plots import make_plots

        written = make_plots(run_dir)
    log.info("%s. checkpoints: %s (latest %s) | projector: %s | metrics: %s, %s | TensorBoard: tensorboard "
             "--logdir %s | plots: %s", status, checkpointer.root, latest.name, out if status == "finished" else "-",
             run_dir / "metrics.jsonl", run_dir / "eval.jsonl", run_dir / "tensorboard",
             ", ".join(str(p) for p in written) or "-")


def learning_curve(run_dir: Path) -> str:
    """A text table of training loss, held-out loss and R@1 at each evaluation (what the plots show)."""
    from eval.plots import read_jsonl

    steps, evals = (read_jsonl(run_dir / n) if (run_dir / n).is_file() else [] for n in ("metrics.jsonl", "eval.jsonl"))
    if not evals:
        return ""
    kind = "cos" if any(k.startswith("eval/cos/") for k in evals[0]) else "wasser"
    lines = [f"{'step':>7} {'train loss':>11} {'held-out ' + kind + ' loss':>20} {'R@1 mean':>9} {'R@5 mean':>9}"
             f" {'chance R@1':>11}"]
    previous = 0
    for e in evals:
        window = [r["loss/total"] for r in steps if previous < r["step"] <= e["step"] and r.get("loss/total")]
        previous = e["step"]
        held = sum(v for k, v in e.items() if k.startswith(f"eval/{kind}/layer_") and v is not None)
        train = f"{sum(window) / len(window):11.4f}" if window else f"{'-':>11}"
        lines.append(f"{e['step']:>7} {train} {held:20.4f} {e['eval/r@1/mean']:9.3f} {e['eval/r@5/mean']:9.3f}"
                     f" {e['eval/chance_r@1']:11.3f}")
    return "\n".join(lines)
