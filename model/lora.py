"""Optional LoRA adapters on the frozen LLM (finetuning extension; the paper trains the projector alone).

    lora = LoraConfig(r=8, alpha=16, target_modules=["q_proj", "v_proj"])
    names = apply_lora(speech_llm.llm, lora)           # adapters injected in place, trainable, B = 0
    load_lora_weights(speech_llm.llm, exported)        # {"llm.<...>.lora_A.default.weight": tensor, ...}

The adapters are injected with peft's `inject_adapter_in_model`, which swaps the targeted nn.Linear layers for LoRA
layers inside the model itself instead of wrapping it in a PeftModel: the LLM keeps its class, its
``config._attn_implementation``, its decoder layout and its ``generate``, so everything in model/llm.py and
model/speech_llm.py (hidden states at chosen layers, early stop, packing, prompts) works unchanged. The base weights
stay frozen; only ``lora_A`` / ``lora_B`` require grad. B starts at zero, so a freshly adapted LLM computes exactly
what the frozen one did (tested) and the adapters only move it as far as training pushes them. There is no adapter
dropout: SpeechLLM keeps the LLM in eval mode (a deterministic frozen forward), which would switch it off anyway.

peft is an optional dependency (``pip install peft``; requirements-dev.txt has it for the tests); asking for LoRA
without it is a clear error before any model is loaded.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

__all__ = ["LoraConfig", "apply_lora", "require_peft", "lora_parameters", "load_lora_weights", "EXPORT_PREFIX"]

EXPORT_PREFIX = "llm."
"""Adapter weights are exported next to the projector's under this prefix (``llm.model.layers.0...lora_A...``)."""
_MARK = "lora_"


@dataclass
class LoraConfig:
    r: int = 0
    """Adapter rank; 0 = no LoRA (the paper's setting: only the projector trains)."""
    alpha: float = 16.0
    """Scaling numerator: the update is (alpha / r) * B A x."""
    target_modules: list[str] = field(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"])
    """Names of the LLM's Linear layers to adapt (suffix match, as in peft): attention projections by default; add
    gate_proj / up_proj / down_proj for the MLPs."""
    layers: list[int] | None = None
    """Decoder layer indices to adapt (None: all)."""

    def __post_init__(self):
        if self.r < 0:
            raise ValueError(f"lora.r must be >= 0 (0 disables LoRA), got {self.r}")
        if self.r and self.alpha <= 0:
            raise ValueError(f"lora.alpha must be > 0, got {self.alpha}")
        if self.r and not self.target_modules:
            raise ValueError("lora.target_modules is empty: name the LLM's Linear layers to adapt, e.g. "
                             "[q_proj, v_proj]")

    @property
    def enabled(self) -> bool:
        return self.r > 0


def _peft():
    try:
        import peft
    except ImportError as e:
        raise ImportError("lora.r > 0 needs peft: `pip install peft` (or set lora.r=0 to train the projector "
                          "alone)") from e
    return peft


def require_peft(cfg: LoraConfig) -> None:
    """Fails fast (before models are loaded) when LoRA is asked for and peft is missing."""
    if cfg.enabled:
        _peft()


def apply_lora(llm: nn.Module, cfg: LoraConfig) -> list[str]:
    """Injects trainable LoRA adapters into `llm` in place; returns the adapter parameter names.

    The random init of ``lora_A`` draws from torch's global RNG: seed it first for the same adapters on every rank.
    """
    peft = _peft()
    linear_names = {name.rsplit(".", 1)[-1] for name, m in llm.named_modules() if isinstance(m, nn.Linear)}
    missing = [t for t in cfg.target_modules if t not in linear_names]
    if missing:
        raise ValueError(f"lora.target_modules {missing} name no Linear layer of this LLM; it has "
                         f"{sorted(linear_names)}")
    peft_cfg = peft.LoraConfig(r=cfg.r, lora_alpha=cfg.alpha, lora_dropout=0.0,
                               target_modules=list(cfg.target_modules), layers_to_transform=cfg.layers, bias="none")
    peft.inject_adapter_in_model(peft_cfg, llm)
    names = []
    for name, p in llm.named_parameters():
        adapter = _MARK in name
        p.requires_grad_(adapter)  # base weights stay frozen whatever peft did
        if adapter:
            names.append(name)
    if not names:
        raise ValueError(f"lora.layers={cfg.layers} selects no decoder layer of this LLM")
    return names


def lora_parameters(module: nn.Module) -> list[tuple[str, nn.Parameter]]:
    """(name, parameter) of every LoRA adapter weight inside `module`."""
    return [(n, p) for n, p in module.named_parameters() if _MARK in n]


def load_lora_weights(llm: nn.Module, weights: dict[str, torch.Tensor], source: str = "") -> None:
    """Copies exported adapter weights (keys ``EXPORT_PREFIX + name``) into an LLM that `apply_lora` adapted with
    the same settings; any missing or extra key is an error naming both sides."""
    params = dict(lora_parameters(llm))
    given = {k[len(EXPORT_PREFIX):]: v for k, v in weights.items() if k.startswith(EXPORT_PREFIX)}
    if given.keys() != params.keys():
        missing, extra = sorted(params.keys() - given.keys()), sorted(given.keys() - params.keys())
        raise ValueError(f"LoRA weights in {source or 'the export'} do not fit this LLM's adapters (settings from its "
                         f"projector.json): missing {missing[:4]}{'...' if len(missing) > 4 else ''}, unexpected "
                         f"{extra[:4]}{'...' if len(extra) > 4 else ''}")
    with torch.no_grad():
        for name, p in params.items():
            if given[name].shape != p.shape:
                raise ValueError(f"LoRA weight {name} in {source}: shape {tuple(given[name].shape)}, the adapter "
                                 f"has {tuple(p.shape)}")
            p.copy_(given[name].to(p.dtype))
