"""Stage 1: contrastive pretraining of the projector (the main job).

    python -m train.pretrain --config train/configs/demo.yaml [key.sub=value ...]      # one process
    torchrun --nproc_per_node 8 -m train.pretrain --config train/configs/contr-cos-all.yaml
    sbatch slurm/pretrain.sh train/configs/contr-cos-all.yaml                           # (or bash, without Slurm)

Resumes automatically from the newest complete checkpoint in ``run_dir``. Exit status 0 when training finished,
75 (EX_TEMPFAIL) when it stopped on a preemption signal after checkpointing, so a wrapper knows to requeue, 2 with one
ERROR line when a setting, file, model or the data cannot work (core.errors).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field

from core.errors import entry_point
from data.stream import StreamConfig
from model.encoders import EncoderConfig
from model.llm import LLMConfig
from model.losses import LossConfig
from model.projectors import ProjectorConfig
from train import distributed as tdist
from train.checkpoint import CheckpointConfig
from train.config import parse_cli
from train.engine import EngineConfig
from train.heldout import HeldoutConfig, HeldoutEvaluator
from train.loop import LoopConfig
from train.optim import OptimConfig
from train.pretrain_model import PretrainModule
from train.runner import EXIT_PREEMPTED, learning_curve, run_job, setup_logging

__all__ = ["PretrainConfig", "main", "EXIT_PREEMPTED", "learning_curve"]

@dataclass
class PretrainConfig:
    run_dir: str = "runs/pretrain"
    """Output directory: config.yaml, checkpoints/, metrics.jsonl, eval.jsonl, tensorboard/, plots/, projector/."""
    seed: int = 0
    """Seeds the projector initialisation (the data order has its own data.seed)."""
    asr_prompt: str = "Can you transcribe this audio?"
    """Instruction of the ASR term for objectives with "asr" (paper's ASR test prompt)."""
    tensorboard: bool = True
    """Write TensorBoard scalars to run_dir/tensorboard."""
    plots: bool = True
    """Draw PNG plots into run_dir/plots at the end (loss and R@1 per layer, embedding map)."""
    data: StreamConfig = field(default_factory=StreamConfig)
    heldout: HeldoutConfig = field(default_factory=HeldoutConfig)
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    projector: ProjectorConfig = field(default_factory=ProjectorConfig)
    llm: LLMConfig = field(default_factory=lambda: LLMConfig(name_or_path="meta-llama/Llama-3.1-8B-Instruct"))
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    engine: EngineConfig = field(default_factory=EngineConfig)
    train: LoopConfig = field(default_factory=LoopConfig)
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)


@entry_point
def main(argv: list[str] | None = None) -> int:
    cfg = parse_cli(PretrainConfig, argv, prog="python -m train.pretrain", description=__doc__.split("\n\n")[0],
                    exit_on_error=False)
    setup_logging(tdist.discover().rank)

    def evaluator(run_dir):
        return HeldoutEvaluator(cfg.heldout, cfg.data, cfg.loss, run_dir) if cfg.heldout.enabled else None

    return run_job(cfg, lambda speech_llm: PretrainModule(speech_llm, cfg.loss, cfg.asr_prompt, cfg.train.profile),
                   evaluator, eval_every=cfg.heldout.every_steps, eval_at_start=cfg.heldout.at_start,
                   objective=cfg.loss.objective)


if __name__ == "__main__":
    sys.exit(main())
