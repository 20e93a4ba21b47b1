"""Alignment losses: per-layer InfoNCE (cosine or Sinkhorn/Wasserstein similarity), ASR next-token loss, their sum.

Paper (arXiv 2412.15712) and its public code: speech and text hidden states are taken at several layers of the frozen
LLM; for every layer an InfoNCE loss with temperature 0.1 pairs each transcript with its speech, and the per-layer
losses are **summed**. Similarity is either the cosine of masked mean-pooled states or minus the debiased Sinkhorn
divergence between the per-token L2-normalised state clouds (geomloss ``SamplesLoss("sinkhorn", p=2, ...)``
semantics, computed by ``model/sinkhorn.py``). The public code scores text -> speech (for each text, a softmax over
the speeches of the batch); ``direction="sym"`` averages both directions as in CLIP.

Negatives across ranks (``gather_negatives``) follow open_clip: with ``local_loss=False`` every rank computes the same
global ``B x B`` loss; with ``local_loss=True`` a rank scores only its own rows against all gathered columns (the
positives sit at this rank's row offset). Scaling rule, tested in ``tests/model/test_gather.py``: gradients flow back
through the gather summed over ranks (``model/distributed.py``), so a rank's input gradient is ``world_size`` times
the single-process gradient, and the *averaging* over ranks that DDP and DeepSpeed do restores it exactly, in both
modes. So: do **not** multiply the loss by the world size, and keep the trainer's gradient averaging on. In local mode
each rank's loss is additionally weighted by ``B_local * world / B_global`` so that the mean of the ranks' losses is
the global loss even for unequal local batches (a no-op for equal ones). Replicated parameters such as the learned
temperature get, after averaging, exactly the single-process gradient too. Local mode does ``1/world`` of the
Sinkhorn work per rank; prefer it for ``wasser``.

The tensor functions (pooling, similarity matrices, `info_nce`, `asr_loss`, `check_finite`) live in
``model/loss_functions.py``; this module owns what is configured and stateful: `LossConfig` (the ``loss.*`` keys),
`ContrastiveLoss` (layer weights, learned temperature, the cross-rank gather, GradCache features) and
`AlignmentObjective`, and imports that module, never the reverse.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor, nn

from model.distributed import gather_with_grad, rank_and_world
from model.loss_functions import (
    _KEYS_SHOWN,
    _sinkhorn_similarity,
    _token_cloud,
    asr_loss,
    check_finite,
    info_nce,
    l2_normalize,
    masked_mean_pool,
)

__all__ = ["LossConfig", "ContrastiveLoss", "combine", "AlignmentObjective", "MAX_LOGIT_SCALE"]

MAX_LOGIT_SCALE = 100.0  # CLIP: 1 / temperature is clamped to at most 100 (temperature >= 0.01)


@dataclass
class LossConfig:
    objective: Literal["cos", "wasser", "asr", "cos+asr", "wasser+asr"] = "cos"
    """Training signal: contrastive with cosine or Wasserstein similarity, ASR next-token loss, or a weighted sum."""
    temperature: float = 0.1
    """InfoNCE temperature (paper: 0.1); the initial value when `learn_temperature` is set."""
    learn_temperature: bool = False
    """Learn log(1/temperature) like CLIP, clamped to [1, 100] as a scale; add the objective's parameters to the
    optimiser then."""
    direction: Literal["t2s", "s2t", "sym"] = "t2s"
    """t2s: for each text a softmax over the batch's speeches (public code); s2t the converse; sym: their mean."""
    blur: float = 0.05
    """Sinkhorn blur (eps = blur^2): the paper's table says 0.5, its code uses 0.05."""
    scaling: float = 0.5
    """Sinkhorn eps-scaling factor per annealing step (geomloss default 0.5); closer to 1 is slower and finer."""
    layer_weights: dict[int, float] | None = None
    """Weight of each LLM layer's InfoNCE loss (missing layers: 1.0; 0 skips a layer). The paper sums the layers."""
    contrastive_weight: float = 1.0
    """Weight of the contrastive term in the total (paper: 0.1 when combined with ASR)."""
    asr_weight: float = 1.0
    """Weight of the ASR next-token term in the total."""
    gather_negatives: bool = True
    """Use the other ranks' samples as negatives (global batch); no effect in a single process."""
    local_loss: bool = False
    """With gathered negatives, score only this rank's rows against all columns (open_clip `local_loss`)."""
    grad_cache: bool = True
    """With gradient accumulation, contrast every sample against all micro-batches of the step (GradCache: the exact
    gradient of one big batch, for one extra no-grad speech forward per micro-batch; train/grad_cache.py). False:
    each micro-batch only against itself (and the other ranks' current micro-batches)."""
    sinkhorn_self_schedule: Literal["pair", "set"] = "pair"
    """Sinkhorn debiasing terms OT(x, x), OT(y, y): "pair" anneals them with each pair's schedule as geomloss does
    (B^2 problems), "set" once per set (B problems; S moves by ~1e-5 relative; model/sinkhorn.py)."""
    kernels: Literal["auto", "torch", "triton"] = "auto"
    """"triton": the fused kernels of model/kernels/ (Sinkhorn softmins and plan gradients, the cosine loss's masked
    mean-pool); "torch": the references (model/sinkhorn.py, masked_mean_pool); "auto": triton for float32/16 CUDA
    tensors when triton is installed."""
    nonfinite: Literal["raise", "skip"] = "raise"
    """On a NaN/inf loss: raise NonFiniteLossError, or return None as the total so the caller skips the step."""

    def __post_init__(self):
        for name, allowed in (("objective", ("cos", "wasser", "asr", "cos+asr", "wasser+asr")),
                              ("direction", ("t2s", "s2t", "sym")), ("nonfinite", ("raise", "skip")),
                              ("kernels", ("auto", "torch", "triton")),
                              ("sinkhorn_self_schedule", ("pair", "set"))):
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {getattr(self, name)!r}")
        if not (math.isfinite(self.temperature) and self.temperature > 0):
            raise ValueError(f"temperature must be > 0, got {self.temperature}")
        if self.learn_temperature and not 1 / MAX_LOGIT_SCALE <= self.temperature <= 1:
            raise ValueError(f"a learned temperature is clamped to [{1 / MAX_LOGIT_SCALE}, 1]; "
                             f"start inside it, got {self.temperature}")
        if not self.blur > 0:
            raise ValueError(f"blur must be > 0, got {self.blur}")
        if not 0 < self.scaling < 1:
            raise ValueError(f"scaling must be in (0, 1), got {self.scaling}")
        for name in ("contrastive_weight", "asr_weight"):
            if not (math.isfinite(getattr(self, name)) and getattr(self, name) >= 0):
                raise ValueError(f"{name} must be finite and >= 0, got {getattr(self, name)}")
        if self.layer_weights is not None:
            # YAML/CLI may deliver "5" keys; layer indices are ints everywhere else.
            self.layer_weights = {int(k): float(v) for k, v in self.layer_weights.items()}
            bad = {k: v for k, v in self.layer_weights.items() if not (math.isfinite(v) and v >= 0)}
            if bad:
                raise ValueError(f"layer_weights must be finite and >= 0, got {bad}")

    @property
    def contrastive_kind(self) -> Literal["cos", "wasser"] | None:
        """"cos" or "wasser" when the objective has a contrastive term, else None."""
        kind = self.objective.split("+")[0]
        return kind if kind in ("cos", "wasser") else None  # type: ignore[return-value]

    @property
    def uses_asr(self) -> bool:
        """Whether the objective has an ASR next-token term."""
        return "asr" in self.objective


# ------------------------------------------------------------------------------------------ contrastive module
def _kernels(setting: str, t: Tensor) -> str:
    """"triton" or "torch" for ``loss.kernels`` and a tensor (see `model.sinkhorn.resolve_backend`)."""
    from model.sinkhorn import resolve_backend

    return resolve_backend(setting, t)


def _nonfinite_rows(h: Tensor, mask: Tensor, keys: list[str] | None) -> list[str]:
    """Keys (or indices) of the samples whose valid positions hold NaN/inf: the diagnosis for an error message.

    ``h`` is ``[B, L, D]`` (states, token clouds) or ``[B, D]`` (pooled features, which have no padding).
    """
    valid = mask.bool().unsqueeze(-1) if h.dim() == 3 else torch.ones_like(h, dtype=torch.bool)
    bad = (~torch.isfinite(h) & valid).flatten(1).any(dim=1)
    return [str(keys[i]) if keys and i < len(keys) else f"#{i}" for i in bad.nonzero().flatten().tolist()]


@dataclass
class _Gathered:
    """What one forward pass learns about the global batch (computed once, shared by all layers)."""

    offset: int
    """Row of this rank's first sample in the gathered batch."""
    scale: float
    """Local-loss weight ``B_local * world / B_global`` (1.0 for equal local batches)."""
    speech_mask: Tensor | None
    """Gathered token masks (Wasserstein only; padded to the longest rank)."""
    text_mask: Tensor | None


class ContrastiveLoss(nn.Module):
    """Per-layer InfoNCE, summed with the layer weights; holds the learned temperature when configured.

    Example::

        loss_fn = ContrastiveLoss(LossConfig(objective="cos"))
        total, metrics = loss_fn({5: s5, 10: s10}, speech_mask, {5: t5, 10: t10}, text_mask, keys=batch["keys"])
        # metrics == {"cos/layer_5": ..., "cos/layer_10": ...}, detached

    Args:
        cfg: The loss settings.
        kind: "cos" or "wasser"; default: the one in ``cfg.objective``.
    """

    def __init__(self, cfg: LossConfig, kind: Literal["cos", "wasser"] | None = None):
        super().__init__()
        self.cfg, self.kind = cfg, kind or cfg.contrastive_kind
        if self.kind not in ("cos", "wasser"):
            raise ValueError(f"objective {cfg.objective!r} has no contrastive term; pass kind='cos' or 'wasser'")
        # CLIP parameterisation: log of the logit scale 1/temperature, so the optimiser works on a log scale.
        # Shape [1], not a 0-dim scalar: DeepSpeed broadcasts parameters as bytes, which 0-dim tensors cannot be.
        self.log_logit_scale = (nn.Parameter(torch.tensor([math.log(1 / cfg.temperature)]))
                                if cfg.learn_temperature else None)

    def temperature(self) -> Tensor | float:
        """The current temperature; a learned one is first clamped in place to ``[1/MAX_LOGIT_SCALE, 1]``.

        Clamping the parameter itself (as open_clip does after each step) keeps it where gradients flow, which a
        clamp inside the graph would not once it drifted past the bound.
        """
        if self.log_logit_scale is None:
            return self.cfg.temperature
        with torch.no_grad():
            self.log_logit_scale.clamp_(0.0, math.log(MAX_LOGIT_SCALE))
        scale = self.log_logit_scale[0]  # bf16 under DeepSpeed's bf16: exp in fp32, not rounded to 8 bits again
        return torch.exp(-scale.to(torch.promote_types(scale.dtype, torch.float32)))

    def forward(self, speech_states: dict[int, Tensor], speech_mask: Tensor, text_states: dict[int, Tensor],
                text_mask: Tensor, keys: list[str] | None = None,
                from_features: bool = False) -> tuple[Tensor | None, dict[str, Tensor]]:
        """Weighted sum over layers of the InfoNCE loss between speech and text states.

        Args:
            speech_states: Layer index -> ``[B, Ls, D]`` LLM hidden states over the projected speech.
            speech_mask: ``[B, Ls]``, True at valid speech positions.
            text_states: Layer index -> ``[B, Lt, D]`` hidden states of the transcripts (same layers).
            text_mask: ``[B, Lt]``, True at valid transcript tokens.
            keys: Sample keys, for error messages.
            from_features: The "states" are already `features` of the states (GradCache's full-batch loss over
                cached features of several micro-batches): skip the pooling/normalisation.

        Returns:
            ``(total, metrics)``: the weighted sum (None in ``skip`` mode when a layer's loss is not finite) and
            ``{f"{kind}/layer_{l}": loss}``, detached. With ``local_loss`` the values are this rank's weighted
            share: their mean over ranks is the global loss.

        Raises:
            NonFiniteLossError: A layer's loss is NaN/inf (``nonfinite="raise"``).
            ValueError: Mismatched layers, batch sizes or lengths, or a sample without valid positions.
        """
        if from_features:  # made by `features`, which checked the layers and dropped those weighted 0
            fs, ft, layers = speech_states, text_states, sorted(speech_states)
        else:
            layers = self._layers(speech_states, text_states)
            _check_inputs(speech_states, speech_mask, text_states, text_mask, layers, keys)
            fs, ft = self.features(speech_states, speech_mask), self.features(text_states, text_mask)
        temperature = self.temperature()
        gathered = self._gather_context(speech_mask, text_mask)
        if self.kind == "cos":  # all layers at once: [B, L, D] features, one gather, one batched similarity
            stacked = self._layer_loss(torch.stack([fs[l] for l in layers], 1), speech_mask,
                                       torch.stack([ft[l] for l in layers], 1), text_mask, temperature, gathered)
            losses = dict(zip(layers, stacked.unbind(0)))
        else:
            losses = {l: self._layer_loss(fs[l], speech_mask, ft[l], text_mask, temperature, gathered)
                      for l in layers}
        metrics = {f"{self.kind}/layer_{l}": v.detach() for l, v in losses.items()}
        if not bool(torch.isfinite(torch.stack(list(losses.values()))).all()):  # one host sync for all layers
            for l, v in losses.items():
                detail = _diagnose(fs[l], speech_mask, ft[l], text_mask, keys)
                if check_finite(v, self.kind, keys, l, self.cfg.nonfinite, detail) is None:
                    return None, metrics
        weights = self.cfg.layer_weights or {}
        return sum(weights.get(l, 1.0) * v for l, v in losses.items()), metrics

    def features(self, states: dict[int, Tensor], mask: Tensor) -> dict[int, Tensor]:
        """What the similarity consumes, per layer with a positive weight: for ``cos`` the masked mean-pooled,
        L2-normalised ``[B, D]`` vectors; for ``wasser`` the per-token L2-normalised ``[B, L, D]`` clouds with exact
        zeros at padding. The loss depends on the states only through these, which is what lets GradCache hold a
        whole global batch of them (``[B, D]`` per layer for cos) instead of its LLM activations.
        """
        weights = self.cfg.layer_weights or {}
        if self.kind == "cos":
            pool = masked_mean_pool
            if states and _kernels(self.cfg.kernels, next(iter(states.values()))) == "triton":
                from model.kernels.pooling import masked_mean_pool_fused as pool
            return {l: l2_normalize(pool(h, mask)) for l, h in states.items() if weights.get(l, 1.0) > 0}
        return {l: _token_cloud(h, mask) for l, h in states.items() if weights.get(l, 1.0) > 0}

    def _layers(self, speech_states: dict[int, Tensor], text_states: dict[int, Tensor]) -> list[int]:
        if sorted(speech_states) != sorted(text_states):
            raise ValueError(f"speech and text states cover different layers: {sorted(speech_states)} vs "
                             f"{sorted(text_states)}")
        weights = self.cfg.layer_weights or {}
        if missing := sorted(set(weights) - set(speech_states)):
            raise ValueError(f"layer_weights name layers {missing} that the model does not return "
                             f"(it returns {sorted(speech_states)})")
        layers = [l for l in sorted(speech_states) if weights.get(l, 1.0) > 0]
        if not layers:
            raise ValueError("no layer with a positive weight")
        return layers

    def _gather_context(self, speech_mask: Tensor, text_mask: Tensor) -> _Gathered | None:
        rank, world = rank_and_world()
        if not self.cfg.gather_negatives or world == 1:
            return None
        sizes = gather_with_grad(torch.tensor([speech_mask.shape[0]], device=speech_mask.device)).tolist()
        masks = (None, None)
        if self.kind == "wasser":  # token masks are the same for every layer: gather them once
            masks = (gather_with_grad(speech_mask.bool()), gather_with_grad(text_mask.bool()))
        return _Gathered(offset=sum(sizes[:rank]), scale=sizes[rank] * world / sum(sizes),
                         speech_mask=masks[0], text_mask=masks[1])

    def _layer_loss(self, fs: Tensor, ms: Tensor, ft: Tensor, mt: Tensor, temperature: Tensor | float,
                    g: _Gathered | None) -> Tensor:
        """InfoNCE of one layer from its `features`; for cos, of all layers at once from ``[B, L, D]`` stacked
        features (pooled before any gather, so ``[B, L, D]`` travels in one collective), returning ``[L]``."""
        if self.kind == "cos":
            def sim(a: Tensor, _ma: Tensor | None, b: Tensor, _mb: Tensor | None) -> Tensor:
                return torch.einsum("ild,jld->lij", a, b)  # [L, Bs, Bt]
        else:
            def sim(a: Tensor, ma: Tensor | None, b: Tensor, mb: Tensor | None) -> Tensor:
                # model.sinkhorn rejects non-finite tokens with a ValueError; turn them into a NaN loss instead so
                # that the non-finite guard (layer, keys, skip mode) handles every objective alike. Checked after
                # the gathers so that every rank still takes part in every collective.
                if not bool(torch.isfinite(a).all() & torch.isfinite(b).all()):
                    return a.new_full((a.shape[0], b.shape[0]), math.nan)
                return _sinkhorn_similarity(a, ma, b, mb, self.cfg.blur, self.cfg.scaling, self.cfg.kernels,
                                            self.cfg.sinkhorn_self_schedule)

        direction = self.cfg.direction
        if g is None:
            return info_nce(sim(fs, ms, ft, mt), temperature, direction)
        local = self.cfg.local_loss
        # Gather only what is scored: a rank-local t2s loss needs every speech but only its own texts.
        fs_all = gather_with_grad(fs) if not local or direction != "s2t" else None
        ft_all = gather_with_grad(ft) if not local or direction != "t2s" else None
        if not local:  # open_clip local_loss=False: the full global matrix, identical on every rank
            return info_nce(sim(fs_all, g.speech_mask, ft_all, g.text_mask), temperature, direction)
        parts = []
        if fs_all is not None:
            parts.append(info_nce(sim(fs_all, g.speech_mask, ft, mt), temperature, "t2s", g.offset))
        if ft_all is not None:
            parts.append(info_nce(sim(fs, ms, ft_all, g.text_mask), temperature, "s2t", g.offset))
        return g.scale * sum(parts) / len(parts)


def _check_inputs(speech_states: dict[int, Tensor], speech_mask: Tensor, text_states: dict[int, Tensor],
                  text_mask: Tensor, layers: list[int], keys: list[str] | None) -> None:
    if speech_mask.shape[0] != text_mask.shape[0]:
        raise ValueError(f"{speech_mask.shape[0]} speech samples but {text_mask.shape[0]} texts")
    for l in layers:
        for side, h, m in (("speech", speech_states[l], speech_mask), ("text", text_states[l], text_mask)):
            if h.dim() != 3 or h.shape[:2] != m.shape:
                raise ValueError(f"{side} states at layer {l} have shape {tuple(h.shape)}, mask {tuple(m.shape)}")
    for side, m in (("speech", speech_mask), ("text", text_mask)):
        empty = (~m.bool().any(dim=1)).nonzero().flatten().tolist()
        if empty:  # an empty sample would pool to a zero vector / an empty point cloud: a data bug, not a negative
            names = [str(keys[i]) if keys and i < len(keys) else f"#{i}" for i in empty]
            raise ValueError(f"{side} samples without valid positions: {names[:_KEYS_SHOWN]}")


def _diagnose(hs: Tensor, ms: Tensor, ht: Tensor, mt: Tensor, keys: list[str] | None) -> str | None:
    bad = [f"{side} states of {rows[:_KEYS_SHOWN]}" for side, rows in
           (("speech", _nonfinite_rows(hs, ms, keys)), ("text", _nonfinite_rows(ht, mt, keys))) if rows]
    return "non-finite inputs: " + ", ".join(bad) if bad else "inputs are finite (overflow in the loss?)"


# ------------------------------------------------------------------------------------------- the objective
def combine(losses: dict[str, Tensor], weights: dict[str, float]) -> tuple[Tensor, dict[str, Tensor]]:
    """Weighted sum of named losses -> ``(total, {"loss/<name>": unweighted, ..., "loss/total": total})``."""
    if not losses or set(losses) != set(weights):
        raise ValueError(f"need one weight per loss, got losses {sorted(losses)} and weights {sorted(weights)}")
    total = sum(weights[k] * v for k, v in losses.items())
    metrics = {f"loss/{k}": v.detach() for k, v in losses.items()}
    metrics["loss/total"] = total.detach()
    return total, metrics


class AlignmentObjective(nn.Module):
    """The configured training objective: contrastive (per-layer InfoNCE) and/or ASR, weighted and summed.

    Returns ``(total, metrics)``; ``total`` is None in ``nonfinite="skip"`` mode when a term is not finite, and the
    metrics then hold ``nonfinite/<term>`` = 1 (see `check_finite` for what the caller must do).
    """

    def __init__(self, cfg: LossConfig):
        super().__init__()
        self.cfg = cfg
        self.contrastive = ContrastiveLoss(cfg) if cfg.contrastive_kind else None

    def forward(self, speech_states: dict[int, Tensor] | None = None, speech_mask: Tensor | None = None,
                text_states: dict[int, Tensor] | None = None, text_mask: Tensor | None = None,
                logits: Tensor | None = None, labels: Tensor | None = None,
                keys: list[str] | None = None) -> tuple[Tensor | None, dict[str, Tensor]]:
        """Computes the terms the objective names; the inputs of the other terms may be omitted.

        Args:
            speech_states, speech_mask, text_states, text_mask: As for `ContrastiveLoss` (contrastive objectives).
            logits, labels: As for `asr_loss` (ASR objectives).
            keys: Sample keys, for error messages.
        """
        losses, weights, metrics = {}, {}, {}
        if self.contrastive is not None:
            if speech_states is None or speech_mask is None or text_states is None or text_mask is None:
                raise ValueError(f"objective {self.cfg.objective!r} needs speech and text states and masks")
            value, metrics = self.contrastive(speech_states, speech_mask, text_states, text_mask, keys)
            if value is None:
                return None, {**metrics, "nonfinite/contrastive": torch.ones(())}
            losses["contrastive"], weights["contrastive"] = value, self.cfg.contrastive_weight
            if self.cfg.learn_temperature:
                # Not temperature(): its in-place clamp would bump the version of a tensor the graph may need.
                metrics["contrastive/temperature"] = torch.exp(-self.contrastive.log_logit_scale.detach()[0])
        if self.cfg.uses_asr:
            if logits is None or labels is None:
                raise ValueError(f"objective {self.cfg.objective!r} needs logits and labels")
            value = check_finite(asr_loss(logits, labels), "asr", keys, mode=self.cfg.nonfinite)
            if value is None:
                return None, {**metrics, "nonfinite/asr": torch.ones(())}
            losses["asr"], weights["asr"] = value, self.cfg.asr_weight
        total, loss_metrics = combine(losses, weights)
        return total, {**metrics, **loss_metrics}
