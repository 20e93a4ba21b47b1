"""The projector alone, as safetensors + JSON: what finetuning starts from and what a team shares.

    python -m train.export runs/demo/checkpoints/step_00000300 exported/      # copy a checkpoint's projector
    projector, meta = load_projector("exported/")                           # rebuild it for finetuning

Every checkpoint carries ``projector.safetensors`` and ``projector.json`` (the ProjectorConfig, its input/output
widths, the encoder and LLM it was trained against, the step), written by rank 0 after gathering ZeRO-3 partitions.
The learned temperature, when there is one, is saved next to the projector weights under ``objective.*`` keys, and
LoRA adapters of a finetuning run with ``lora.r > 0`` under ``llm.*`` keys (their settings in projector.json's
"lora"); `load_adapters` puts those back into a SpeechLLM.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from contextlib import nullcontext
from pathlib import Path

import torch
from torch import nn

from core.errors import entry_point, user_errors
from model.lora import EXPORT_PREFIX, LoraConfig, apply_lora, load_lora_weights
from model.projectors import Projector, ProjectorConfig, build_projector
from train import distributed as tdist

__all__ = ["export_projector", "load_projector", "load_adapters", "WEIGHTS", "META"]

WEIGHTS = "projector.safetensors"
META = "projector.json"


def _gathered(params: list[nn.Parameter]):
    """ZeRO-3 keeps each parameter partitioned across ranks; gather the full tensors for reading (collective)."""
    if params and hasattr(params[0], "ds_id"):
        import deepspeed

        return deepspeed.zero.GatheredParameters(params, modifier_rank=None)
    return nullcontext()


def _fp32_masters(named: list[tuple[str, nn.Parameter]]) -> dict[str, torch.Tensor] | None:
    """DeepSpeed's float32 master copies of 16-bit trainable weights (collective: every rank calls it), or None
    when the weights are float32 or no DeepSpeed optimizer holds them.

    In a bf16 run the module's weights are the masters rounded to 8 significant bits; exporting those would start
    finetuning (and every evaluation of the export) from weights the optimizer never had."""
    if not any(p.dtype in (torch.bfloat16, torch.float16) for _, p in named):
        return None
    try:
        from deepspeed.utils import safe_get_full_fp32_param
    except ImportError:
        return None
    masters = {k: safe_get_full_fp32_param(p) for k, p in named}
    return masters if all(m is not None for m in masters.values()) else None


def export_projector(module: nn.Module, out_dir: str | Path, meta: dict) -> Path | None:
    """Writes the trainable weights of `module` (PretrainModule or a bare projector) to `out_dir`.

    Collective under ZeRO-3, and in 16-bit runs (every rank must call it); only rank 0 writes. In bf16/fp16 runs the
    weights are DeepSpeed's float32 masters, not the rounded module copy. Keys drop the ``speech_llm.projector.``
    prefix so that `load_projector` loads them straight into a fresh projector.
    """
    from safetensors.torch import save_file

    named = [(k, p) for k, p in module.named_parameters() if p.requires_grad]
    masters = _fp32_masters(named)
    with _gathered([p for _, p in named]) if masters is None else nullcontext():
        if not tdist.is_main():
            return None
        weights = masters or {k: p.detach() for k, p in named}
        tensors = {_short(k): weights[k].to("cpu", torch.float32).contiguous().clone() for k, _ in named}
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(out / WEIGHTS), metadata={"format": "pt"})
    (out / META).write_text(json.dumps(meta, indent=2, sort_keys=True))
    return out


def _short(key: str) -> str:
    for prefix in ("speech_llm.projector.", "projector."):
        if key.startswith(prefix):
            return key[len(prefix):]
    if key.startswith("speech_llm.llm."):  # LoRA adapters
        return EXPORT_PREFIX + key[len("speech_llm.llm."):]
    return key


def load_projector(path: str | Path, device: str | torch.device = "cpu") -> tuple[Projector, dict]:
    """Rebuilds an exported projector: ``(projector with the saved weights, metadata)``."""
    from safetensors.torch import load_file

    path = Path(path)
    if not (path / WEIGHTS).is_file() or not (path / META).is_file():
        raise FileNotFoundError(f"{path} holds no exported projector ({WEIGHTS} + {META}); export one with "
                                f"`python -m train.export CHECKPOINT_DIR OUT_DIR`")
    meta = json.loads((path / META).read_text())
    projector = build_projector(ProjectorConfig(**meta["projector"]), meta["in_dim"], meta["out_dim"],
                                meta["frame_rate"])
    weights = {k: v for k, v in load_file(str(path / WEIGHTS)).items()
               if not k.startswith(("objective.", EXPORT_PREFIX))}
    try:
        missing, unexpected = projector.load_state_dict(weights, strict=False)
    except RuntimeError as e:  # same names, other shapes (torch raises even with strict=False)
        raise ValueError(f"{path / WEIGHTS} does not match its projector.json: {e}") from e
    if missing or unexpected:
        raise ValueError(f"{path / WEIGHTS} does not match its projector.json: missing {missing}, "
                         f"unexpected {unexpected}")
    return projector.to(device), meta


def load_adapters(path: str | Path, speech_llm) -> int:
    """Adds the LoRA adapters an export carries (projector.json "lora") to `speech_llm`'s LLM and loads their
    weights; returns the number of adapter tensors (0 for an export without LoRA)."""
    from safetensors.torch import load_file

    path = Path(path)
    settings = json.loads((path / META).read_text()).get("lora")
    if not settings:
        return 0
    apply_lora(speech_llm.llm, LoraConfig(**settings))
    weights = {k: v for k, v in load_file(str(path / WEIGHTS)).items() if k.startswith(EXPORT_PREFIX)}
    load_lora_weights(speech_llm.llm, weights, str(path / WEIGHTS))
    return len(weights)


@entry_point
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", type=Path, help="a step_XXXXXXXX checkpoint directory (or an export)")
    parser.add_argument("out", type=Path, help="directory to write projector.safetensors + projector.json into")
    args = parser.parse_args(argv)
    with user_errors(ValueError):  # weights that do not match their projector.json
        projector, meta = load_projector(args.checkpoint)  # validates before copying
    args.out.mkdir(parents=True, exist_ok=True)
    for name in (WEIGHTS, META):
        shutil.copy2(args.checkpoint / name, args.out / name)
    n = sum(p.numel() for p in projector.parameters())
    print(f"exported {meta['projector']['kind']} projector ({n:,} parameters, step {meta.get('step')}) to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
