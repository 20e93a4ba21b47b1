"""Stage 2: multitask finetuning of the projector on ASR, speech translation and spoken QA.

    python -m train.finetune --config train/configs/finetune-demo.yaml init_projector=runs/demo/projector
    python -m train.finetune --config ... init_projector=null data.subset_fraction=0.1     # "no pretrain", 10 %
    python -m train.finetune --config ... lora.r=8                                         # + LoRA on the LLM

The projector starts from a pretraining export (``run_dir/projector`` or any ``checkpoints/step_*`` directory) or,
with ``init_projector`` unset, from scratch (the paper's "no pretrain" baseline). Each sample's task comes from its
manifest fields (see train/tasks.py), the loss covers the answer tokens only, and everything else - engine,
accumulation, checkpoints, exact resume, exports, exit status 75 on preemption - is the pretraining machinery.
With ``lora.r > 0`` LoRA adapters on the LLM train too (an extension; model/lora.py); they are checkpointed and
exported with the projector, and eval.run loads them from there.
"""

from __future__ import annotations

import json
import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path

import torch

from core.errors import entry_point, user_errors
from data.stream import StreamConfig
from model.encoders import EncoderConfig
from model.llm import LLMConfig
from model.lora import LoraConfig, apply_lora, require_peft
from model.projectors import ProjectorConfig
from train import distributed as tdist
from train.checkpoint import CheckpointConfig
from train.config import from_dict, parse_cli, to_dict
from train.engine import EngineConfig
from train.export import META, load_projector
from train.finetune_model import FinetuneModule
from train.loop import LoopConfig
from train.optim import OptimConfig
from train.runner import run_job, setup_logging
from train.tasks import TaskConfig

__all__ = ["FinetuneConfig", "main"]

log = logging.getLogger("train.finetune")


@dataclass
class FinetuneConfig:
    run_dir: str = "runs/finetune"
    """Output directory (same layout as pretraining)."""
    init_projector: str | None = None
    """Exported projector to start from (a directory with projector.safetensors + projector.json: a pretraining
    run's projector/ or a checkpoint step directory); None trains from scratch ("no pretrain" baseline)."""
    seed: int = 0
    """Seeds a from-scratch projector's initialisation."""
    nonfinite: str = "raise"
    """On a NaN/inf loss: "raise", or "skip" the micro-batch on every rank."""
    tensorboard: bool = True
    """Write TensorBoard scalars to run_dir/tensorboard."""
    plots: bool = True
    """Draw PNG plots into run_dir/plots at the end."""
    tasks: TaskConfig = field(default_factory=TaskConfig)
    data: StreamConfig = field(default_factory=lambda: StreamConfig(text_norm="none"))
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    projector: ProjectorConfig = field(default_factory=ProjectorConfig)
    llm: LLMConfig = field(default_factory=lambda: LLMConfig(name_or_path="meta-llama/Llama-3.1-8B-Instruct"))
    lora: LoraConfig = field(default_factory=LoraConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    engine: EngineConfig = field(default_factory=lambda: EngineConfig(grad_accum=2))
    train: LoopConfig = field(default_factory=lambda: LoopConfig(epochs=2.0))
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)

    def __post_init__(self):
        if self.nonfinite not in ("raise", "skip"):
            raise ValueError(f"nonfinite must be raise or skip, got {self.nonfinite!r}")


def adopt_projector_config(cfg: FinetuneConfig) -> dict | None:
    """With `init_projector`, the projector's shape comes from its projector.json (what the weights were trained
    as); returns that metadata. A conflicting `projector` section is overridden with a warning."""
    if not cfg.init_projector:
        return None
    path = Path(cfg.init_projector) / META
    if not path.is_file():
        raise FileNotFoundError(f"init_projector={cfg.init_projector} holds no {META}: point it at a pretraining "
                                f"run's projector/ directory or a checkpoints/step_XXXXXXXX directory")
    meta = json.loads(path.read_text())
    saved = from_dict(ProjectorConfig, meta["projector"], source=str(path))
    if to_dict(saved) != to_dict(cfg.projector):
        log.warning("projector settings taken from %s (the config's projector section differs)", path)
        cfg.projector = saved
    return meta


@entry_point
def main(argv: list[str] | None = None) -> int:
    cfg = parse_cli(FinetuneConfig, argv, prog="python -m train.finetune", description=__doc__.split("\n\n")[0],
                    exit_on_error=False)
    setup_logging(tdist.discover().rank)
    with user_errors(ValueError, ImportError):  # lora without peft installed, an init_projector that does not fit
        require_peft(cfg.lora)
        meta = adopt_projector_config(cfg)

    def prepare_model(speech_llm) -> None:
        init_projector(speech_llm)
        if cfg.lora.enabled:
            torch.manual_seed(cfg.seed + 1)  # the same adapter init on every rank, independent of the projector's
            names = set(apply_lora(speech_llm.llm, cfg.lora))
            n = sum(p.numel() for name, p in speech_llm.llm.named_parameters() if name in names)
            log.info("LoRA r=%d alpha=%g on %s: %d adapter tensors, %s parameters train with the projector",
                     cfg.lora.r, cfg.lora.alpha, ",".join(cfg.lora.target_modules), len(names), f"{n:,}")

    def init_projector(speech_llm) -> None:
        if meta is None:
            log.info("projector initialised from scratch (no pretraining)")
            return
        if (meta["in_dim"], meta["out_dim"]) != (speech_llm.encoder.dim, speech_llm.hidden_size):
            raise ValueError(f"{cfg.init_projector} maps {meta['in_dim']} -> {meta['out_dim']} dims, but this encoder "
                             f"/ LLM need {speech_llm.encoder.dim} -> {speech_llm.hidden_size}: it was pretrained for "
                             f"{meta.get('encoder')} + {meta.get('llm')}")
        projector, _ = load_projector(cfg.init_projector)
        speech_llm.projector.load_state_dict(projector.state_dict())
        log.info("projector initialised from %s (pretrained %s, step %s)", cfg.init_projector, meta.get("objective"),
                 meta.get("step"))

    return run_job(cfg, lambda speech_llm: FinetuneModule(speech_llm, cfg.tasks, cfg.nonfinite, cfg.train.profile),
                   prepare_model=prepare_model, objective="finetune")


if __name__ == "__main__":
    sys.exit(main())
