"""Memory model of a training step: peak bytes per rank, term by term, and whether a recipe fits a 40 or 80 GB GPU.

    python -m train.throughput --memory                          # every paper recipe, 4 GPUs, 40 / 80 GB
    python -m train.throughput --memory --config train/configs/contr-wasser-all.yaml --world 8 loss.kernels=triton

The gradient of a contrastive step runs back through the frozen LLM into the projector, so autograd keeps the
activations of every decoder layer up to the deepest layer the loss reads. The terms (bytes on one rank):

* frozen weights: encoder + LLM in their dtype (ZeRO-3: a 1/world shard plus the two decoder layers gathered at a
  time, the one running and the one prefetched).
* trainable state: projector weights and gradients in the compute dtype, and DeepSpeed's float32 master weights,
  float32 gradient accumulator and two Adam moments, partitioned over ranks as the ZeRO stage says.
* activations (`llm_activation_bytes`, checked against autograd's saved tensors in tests/train/test_memory.py): per
  decoder layer and token, the float32 inputs of its RMSNorms, attention's q, k, v, output and log-sum-exp (k and
  v at all query heads where HF repeats them for SDPA with a mask; at the key/value heads for flash / varlen
  packing), the SDPA mask, the MLP's gate, activation and up projections; with activation checkpointing only each
  layer's input plus one layer recomputed in the backward. Frozen linear layers save no input (no weight grad).
  The projector's saved tensors are measured exactly by a dry run on the meta device (`projector_activation_bytes`).
* loss: the Sinkhorn cost blocks (`sinkhorn_bytes`): per layer the softmin weights the backward keeps, for every
  (speech, text) pair; all layers' are alive together until the backward; plus one layer's eps-scaling workspace.
* encoder: the frozen encoder's largest transient tensors (no grad; freed before the LLM runs).

The peak is the weights plus the largest phase: with GradCache (``loss.grad_cache`` and accumulation) the loss over
the whole step's features and the speech replay with grad run one after the other; without it, together. A fixed
`OVERHEAD_BYTES` covers the CUDA context, NCCL buffers and allocator fragmentation; a recipe "fits" when the peak is
under 90 % of the card. Lengths are the worst case of the recipe (``data.max_duration``), which is what runs out of
memory, not the average batch.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TypeVar

import torch
from torch import nn

__all__ = ["LLMShape", "llm_activation_bytes", "llm_recompute_bytes", "saved_bytes", "projector_activation_bytes",
           "sinkhorn_bytes", "trainable_state_bytes", "frozen_weight_bytes", "OVERHEAD_BYTES", "FIT_FRACTION"]

T = TypeVar("T")
GB = 1e9
OVERHEAD_BYTES = 2.5 * GB
"""CUDA context (~0.5-1 GB outside PyTorch's allocator), NCCL buffers and fragmentation; a measured-order figure."""
FIT_FRACTION = 0.9
"""A recipe fits a card when its modelled peak is under this share of the card's memory."""
FP32 = 4


@dataclass(frozen=True)
class LLMShape:
    """The sizes of a decoder-only LLM that its saved activations depend on (from an HF config)."""

    hidden: int
    intermediate: int
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    norms_per_layer: int
    """RMSNorms per decoder layer: 2 (Llama, Qwen2), 4 (Gemma 2/3: pre and post norms around both blocks)."""
    qk_norm: bool
    """RMSNorm on queries and keys per head (Gemma 3, Qwen 3)."""
    rope_tables: int
    """Rotary cos/sin tables per forward: 2 for Gemma 3 (local and global bases), else 1."""
    params: int
    """All parameters, embeddings and head included (untied heads counted)."""
    layer_params: int
    """Parameters of one decoder layer."""

    @classmethod
    def from_config(cls, config) -> LLMShape:
        """From an HF text config (counts parameters by building the model on the meta device)."""
        from transformers import AutoModelForCausalLM

        config = getattr(config, "text_config", config)
        with torch.device("meta"):
            model = AutoModelForCausalLM.from_config(config)
        decoder = model.get_decoder()
        heads = config.num_attention_heads
        head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
        gemma = config.model_type.startswith("gemma")
        return cls(hidden=config.hidden_size, intermediate=config.intermediate_size,
                   layers=config.num_hidden_layers, heads=heads,
                   kv_heads=getattr(config, "num_key_value_heads", None) or heads, head_dim=head_dim,
                   norms_per_layer=4 if gemma else 2, qk_norm=config.model_type in ("gemma3_text", "qwen3"),
                   rope_tables=2 if config.model_type == "gemma3_text" else 1,
                   params=sum(p.numel() for p in model.parameters()),
                   layer_params=sum(p.numel() for p in decoder.layers[0].parameters()))


def _layer_bytes(s: LLMShape, rows: int, seq: int, dtype_bytes: int, attention: str) -> float:
    """Bytes autograd saves in one decoder layer over ``rows`` sequences of ``seq`` positions."""
    tokens = rows * seq
    kv_saved = s.kv_heads if attention == "flash" else s.heads  # HF repeats k/v for SDPA with a mask
    per_token = (s.norms_per_layer * (s.hidden * FP32 + FP32)  # float32 norm input and its rsqrt
                 + (2 * s.heads + 2 * kv_saved) * s.head_dim * dtype_bytes  # q, k, v, attention output
                 + s.heads * FP32  # log-sum-exp
                 + 3 * s.intermediate * dtype_bytes)  # gate (activation input), activation, up
    if s.qk_norm:  # float32 copies of q and k before their per-head norms, and the rsqrt
        per_token += (s.heads + s.kv_heads) * (s.head_dim * FP32 + FP32)
    mask = rows * seq * seq * dtype_bytes if attention == "sdpa" else 0  # the float mask SDPA gets, per layer
    return tokens * per_token + mask


def llm_activation_bytes(s: LLMShape, rows: int, seq: int, layers_run: int, dtype_bytes: int,
                         attention: str = "sdpa", checkpointing: bool = False) -> float:
    """Bytes kept for the backward by an LLM forward with grad through ``layers_run`` decoder layers.

    Args:
        s: the LLM's shape.
        rows: sequences in the forward (the micro-batch, or packed rows).
        seq: positions per sequence (padded length, or the packed row capacity).
        layers_run: decoder layers the forward runs (the deepest aligned hidden state; ``s.layers`` plus the final
            norm when the last hidden state is read).
        dtype_bytes: bytes per element of the LLM's compute dtype (2 for bf16).
        attention: "sdpa" (a mask; k/v repeated to all heads) or "flash" (no mask: flash-attn, varlen packing).
        checkpointing: `llm.activation_checkpointing`: each layer keeps its input, one layer is recomputed.
    """
    if attention not in ("sdpa", "flash"):
        raise ValueError(f"attention must be 'sdpa' or 'flash', got {attention!r}")
    layers_run = min(layers_run, s.layers)
    tokens = rows * seq
    final_norm = tokens * (s.hidden * FP32 + FP32) if layers_run == s.layers else 0
    rope = 2 * s.rope_tables * seq * s.head_dim * dtype_bytes if layers_run else 0
    if checkpointing:  # the layer inputs; the layer recomputed in the backward is `llm_recompute_bytes`
        return layers_run * tokens * s.hidden * dtype_bytes + final_norm
    return layers_run * _layer_bytes(s, rows, seq, dtype_bytes, attention) + final_norm + rope


def llm_recompute_bytes(s: LLMShape, rows: int, seq: int, dtype_bytes: int, attention: str = "sdpa") -> float:
    """With activation checkpointing, the activations of the one layer recomputed at a time in the backward."""
    return _layer_bytes(s, rows, seq, dtype_bytes, attention)


def saved_bytes(fn: Callable[[], T], exclude: Iterable[torch.Tensor] = ()) -> tuple[T, int]:
    """``(fn(), bytes autograd saved for the backward while fn ran)``: one entry per storage (views, and tensors
    several ops save, count once), the storages of ``exclude`` (parameters, buffers) left out. Storages are told
    apart by their C++ object, which meta tensors have too, so this also measures a meta-device dry run."""
    skip = {t.untyped_storage()._cdata for t in exclude}
    seen: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        if storage._cdata not in skip:
            seen[storage._cdata] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        value = fn()
    return value, sum(seen.values())


def projector_activation_bytes(projector: nn.Module, rows: int, frames: int, in_dim: int, dtype: torch.dtype,
                               train: bool = True) -> int:
    """Bytes the projector's autograd graph saves for ``rows`` utterances of ``frames`` encoder frames: measured
    by `saved_bytes` on a meta-device copy (no memory, no compute)."""
    import copy

    meta = copy.deepcopy(projector).to(device="meta", dtype=dtype).train(train)
    features = torch.zeros(rows, frames, in_dim, device="meta", dtype=dtype)
    mask = torch.ones(rows, frames, device="meta", dtype=torch.bool)
    return saved_bytes(lambda: meta(features, mask), meta.parameters())[1]


def sinkhorn_bytes(rows: int, cols: int, n: int, m: int, dim: int, layers: int, backend: str = "torch",
                   self_schedule: str = "pair") -> tuple[float, float]:
    """``(saved, workspace)`` bytes of the Wasserstein loss over ``rows`` speech and ``cols`` text sets of ``n`` and
    ``m`` tokens (model/sinkhorn.py, float32): what every layer keeps for the backward (all layers at once), and
    one layer's transient eps-scaling buffers and costs."""
    pairs = rows * cols
    self_x = pairs if self_schedule == "pair" else rows  # debias problems per pair (geomloss) or per set
    self_y = pairs if self_schedule == "pair" else cols
    inputs = (rows * n + cols * m) * dim * FP32  # float32 copies of the states the cost matmuls keep
    if backend == "triton":  # the last step keeps only the costs: plans are recomputed block by block
        saved = pairs * n * m + rows * n * n + cols * m * m
        workspace = 0.0
    else:  # torch reference: one weight block per softmin (P for f_ba and g_ab, and the two debias terms)
        saved = 2 * pairs * n * m + self_x * n * n + self_y * m * m
        workspace = pairs * n * m * 2 + self_x * n * n + self_y * m * m + rows * n * n + cols * m * m
    return layers * (saved * FP32 + inputs), workspace * FP32


def trainable_state_bytes(params: int, zero_stage: int, world: int, dtype_bytes: int = 2) -> float:
    """Projector weights + gradients in the compute dtype and DeepSpeed's float32 master weights, gradient
    accumulator and Adam moments (16 bytes per parameter), partitioned by the ZeRO stage: 1 partitions the
    optimizer state, 2 also the float32 gradients, 3 also the compute-dtype weights and gradients."""
    fp32_state = 16 if dtype_bytes != FP32 else 12  # in fp32 the module weights are the master weights
    optimizer = fp32_state * params / (world if zero_stage >= 1 else 1)
    half = 2 * dtype_bytes * params / (world if zero_stage >= 3 else 1)
    if zero_stage >= 2 and dtype_bytes != FP32:
        optimizer = fp32_state * params / world
    return optimizer + half


def frozen_weight_bytes(encoder_params: int, encoder_bytes: int, llm: LLMShape, llm_bytes: int, zero_stage: int,
                        world: int) -> float:
    """Frozen encoder and LLM weights on one rank (ZeRO-3: a shard, plus two gathered decoder layers)."""
    total = encoder_params * encoder_bytes + llm.params * llm_bytes
    if zero_stage < 3:
        return total
    return total / world + 2 * llm.layer_params * llm_bytes


def fits(peak_bytes: float, card_gb: float) -> bool:
    """Whether a modelled peak fits a card of ``card_gb`` GB with `FIT_FRACTION` headroom."""
    return peak_bytes <= FIT_FRACTION * card_gb * GB


def ceil_div(a: float, b: float) -> int:
    return int(math.ceil(a / b))


# ------------------------------------------------------------------------------------------------ recipes
# Published configs of the recipes' hub models, so the model runs offline (nothing is downloaded); a local directory
# or a converted `pypi:` model is read from its own config.json instead.
_HUB_CONFIGS = {
    "meta-llama/Llama-3.1-8B-Instruct": ("LlamaConfig", dict(
        hidden_size=4096, intermediate_size=14336, num_hidden_layers=32, num_attention_heads=32,
        num_key_value_heads=8, vocab_size=128256, tie_word_embeddings=False)),
    "google/gemma-3-4b-it": ("Gemma3TextConfig", dict(
        hidden_size=2560, intermediate_size=10240, num_hidden_layers=34, num_attention_heads=8, num_key_value_heads=4,
        head_dim=256, vocab_size=262208, sliding_window=1024)),
    "01-ai/Yi-6B": ("LlamaConfig", dict(
        hidden_size=4096, intermediate_size=11008, num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=4,
        vocab_size=64000, tie_word_embeddings=False)),
    "facebook/hubert-large-ls960-ft": ("HubertConfig", dict(
        hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, intermediate_size=4096,
        feat_extract_norm="layer", do_stable_layer_norm=True, conv_bias=True)),
    "openai/whisper-medium": ("WhisperConfig", dict(
        d_model=1024, encoder_layers=24, encoder_attention_heads=16, encoder_ffn_dim=4096, num_mel_bins=80)),
    "openai/whisper-large-v3": ("WhisperConfig", dict(
        d_model=1280, encoder_layers=32, encoder_attention_heads=20, encoder_ffn_dim=5120, num_mel_bins=128)),
}


def model_config(name_or_path: str):
    """The HF config of a recipe's model: the published one for known hub names, else the local config.json."""
    import transformers

    if name_or_path in _HUB_CONFIGS:
        cls, kwargs = _HUB_CONFIGS[name_or_path]
        return getattr(transformers, cls)(**kwargs)
    from model.pretrained import resolve_model

    return transformers.AutoConfig.from_pretrained(resolve_model(name_or_path), local_files_only=True)


def _encoder_sizes(config, batch: int, seconds: float, dtype_bytes: int) -> tuple[int, int, float]:
    """``(parameters, width, transient bytes)`` of a frozen encoder over ``batch`` utterances of ``seconds``: the
    transient is its largest no-grad working set (three tensors of its widest layer: input, output, a temporary)."""
    from transformers import AutoModel
    from transformers.models.whisper.modeling_whisper import WhisperEncoder

    with torch.device("meta"):
        model = WhisperEncoder(config) if config.model_type == "whisper" else AutoModel.from_config(config)
    params = sum(p.numel() for p in model.parameters())
    if config.model_type == "whisper":  # padded to its 30 s window: mels at 100 Hz, then 50 Hz frames
        frames, width, ffn = 1500, config.d_model, config.encoder_ffn_dim
        widest = max(3000 * width, frames * ffn)
    else:  # wav2vec2 / HuBERT: the CNN front end's first layers are the widest tensors
        samples, widest = seconds * 16000, 0.0
        for channels, stride in zip(config.conv_dim, config.conv_stride):
            samples /= stride
            widest = max(widest, channels * samples)
        width, ffn = config.hidden_size, config.intermediate_size
        widest = max(widest, seconds * 50 * ffn)
    return params, width, 3 * batch * widest * dtype_bytes


def estimate(cfg, world: int = 4, attention: str = "sdpa", text_tokens_per_s: float = 3.3,
             prompt_tokens: int = 40) -> dict[str, float]:
    """Peak bytes per rank of a pretraining step of ``cfg`` (a `train.pretrain.PretrainConfig`) on ``world`` GPUs,
    by term (see the module docstring); ``peak`` is their total."""
    from model.llm import resolve_layers
    from model.projectors import build_projector
    from train.engine import deepspeed_config, zero_stage

    nbytes = {"float32": 4, "bfloat16": 2, "float16": 2, "auto": 2}
    ds = deepspeed_config(cfg.engine, cfg.data.batch_size, 1.0, world, cuda=True)
    stage = zero_stage(ds)
    compute = 2 if ds["bf16"]["enabled"] or ds["fp16"]["enabled"] else FP32
    seconds = cfg.data.max_duration or 30.0
    b, accum = cfg.data.batch_size, cfg.engine.grad_accum
    llm_config = model_config(cfg.llm.name_or_path)
    llm = LLMShape.from_config(llm_config)
    llm_b, enc_b = nbytes[cfg.llm.dtype], nbytes[cfg.encoder.dtype]
    enc_params, enc_width, enc_transient = _encoder_sizes(model_config(cfg.encoder.name_or_path), b, seconds, enc_b)
    with torch.device("meta"):
        projector = build_projector(cfg.projector, enc_width, llm.hidden, 50.0)
    frames = ceil_div(seconds * 50, 1)
    n = int(projector.output_length(frames))  # speech tokens of the longest utterance
    m = ceil_div(seconds * text_tokens_per_s, 1)  # its transcript
    layers = resolve_layers(cfg.llm.layers, llm.layers)
    # ZeRO-3 runs the whole decoder (early stop would skip its release hooks): every layer's graph is alive.
    layers_run = llm.layers if stage == 3 else layers[-1]
    kind, uses_asr = cfg.loss.contrastive_kind, cfg.loss.uses_asr
    ckpt = cfg.llm.activation_checkpointing
    out = {
        "weights": frozen_weight_bytes(enc_params, enc_b, llm, llm_b, stage, world),
        "trainable": trainable_state_bytes(sum(p.numel() for p in projector.parameters()), stage, world, compute),
        "encoder": 0.0 if cfg.data.encoder_cache else enc_transient,
        "projector": projector_activation_bytes(projector, b, frames, enc_width, torch.bfloat16 if compute == 2
                                                else torch.float32),
        "activations": 0.0, "recompute": 0.0, "asr": 0.0, "loss": 0.0,
    }
    if kind:
        out["activations"] = llm_activation_bytes(llm, b, n, layers_run, llm_b, attention, ckpt)
        out["recompute"] = llm_recompute_bytes(llm, b, n, llm_b, attention) if ckpt and layers_run else 0.0
    if uses_asr:  # prompt + speech + transcript through every layer; logits (and float32 softmax) at the answer only
        seq = n + m + prompt_tokens
        out["asr"] = (llm_activation_bytes(llm, b, seq, llm.layers, llm_b, attention, ckpt)
                      + (llm_recompute_bytes(llm, b, seq, llm_b, attention) if ckpt else 0.0)
                      + b * m * getattr(llm_config, "text_config", llm_config).vocab_size * (llm_b + FP32))
    grad_cache = cfg.loss.grad_cache and accum > 1
    step = b * (accum if grad_cache else 1)
    gathered = cfg.loss.gather_negatives and world > 1
    cols = step * (world if gathered else 1)
    rows = step if cfg.loss.local_loss else cols
    if kind == "wasser":
        backend = "torch" if cfg.loss.kernels == "torch" else "triton"  # auto: the kernels on CUDA (triton ships)
        saved, workspace = sinkhorn_bytes(rows, cols, n, m, llm.hidden, len(layers), backend,
                                          cfg.loss.sinkhorn_self_schedule)
        out["loss"] = saved + workspace
    grads = (step * n * llm.hidden * FP32 * len(layers)) if grad_cache and kind == "wasser" else 0.0
    replay = out["activations"] + out["recompute"] + out["projector"] + out["asr"] + grads
    dynamic = max(out["loss"] + grads, replay) if grad_cache else out["loss"] + replay
    out["overhead"] = OVERHEAD_BYTES
    out["peak"] = out["weights"] + out["trainable"] + max(dynamic, out["encoder"]) + OVERHEAD_BYTES
    out.update(zero_stage=stage, world=world, speech_tokens=n, text_tokens=m, layers_run=layers_run,
               pairs=rows * cols, grad_cache=grad_cache)
    return out

