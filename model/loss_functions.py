"""Loss functions on tensors: masked mean-pooling and L2 normalisation, the speech x text similarity matrices,
InfoNCE, the ASR next-token loss with its labels, and the non-finite check.

Cosine similarity is that of masked mean-pooled, L2-normalised states; Wasserstein similarity is minus the debiased
Sinkhorn divergence between the per-token L2-normalised state clouds (geomloss ``SamplesLoss("sinkhorn", p=2, ...)``
semantics, computed by ``model/sinkhorn.py``). `info_nce` places the positives on a (shifted) diagonal so that a
rank's queries can be scored against gathered candidates.

Why the seam: everything here is a stateless function of tensors and plain arguments; nothing reads `LossConfig`,
holds parameters or touches torch.distributed. ``model/losses.py`` builds the configured objective (per-layer
`ContrastiveLoss` with its cross-rank gather and learned temperature, `AlignmentObjective`) on top of these, and
imports this module, never the reverse.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["NonFiniteLossError", "masked_mean_pool", "l2_normalize", "cosine_similarity_matrix",
           "wasserstein_similarity_matrix", "info_nce", "check_finite", "asr_loss", "answer_labels", "span_mask",
           "IGNORE_INDEX"]

IGNORE_INDEX = -100  # label of positions without a next-token target (HF / torch cross-entropy convention)
_KEYS_SHOWN = 4  # batch keys named in a non-finite error


class NonFiniteLossError(FloatingPointError):
    """A loss came out NaN/inf; the message names the loss, the layer and the batch keys."""

    def __init__(self, message: str, what: str, layer: int | None, keys: list[str] | None):
        super().__init__(message)
        self.what, self.layer, self.keys = what, layer, keys


# ------------------------------------------------------------------------------------------------ similarities
def _zero_padding(h: Tensor, mask: Tensor) -> Tensor:
    """``h`` with padded positions set to 0, upcast to at least float32.

    masked_fill rather than ``h * mask``: padded LLM states can be NaN (fully masked attention rows), and NaN * 0 is
    NaN in the forward pass and in the gradient. Upcast because bf16 sums over long sequences lose precision.
    """
    h = h.to(torch.promote_types(h.dtype, torch.float32))
    return h.masked_fill(~mask.bool().unsqueeze(-1), 0.0)


def l2_normalize(x: Tensor, eps: float = 1e-12) -> Tensor:
    """L2-normalises the last dimension (zero vectors stay zero)."""
    return F.normalize(x, dim=-1, eps=eps)


def masked_mean_pool(h: Tensor, mask: Tensor) -> Tensor:
    """Mean of ``h [B, L, D]`` over the valid positions of ``mask [B, L]`` -> ``[B, D]`` (float32 or wider).

    A row without valid positions pools to zeros; `ContrastiveLoss` rejects such rows before getting here.
    """
    count = mask.bool().sum(dim=1, keepdim=True).clamp(min=1)
    return _zero_padding(h, mask).sum(dim=1) / count


def cosine_similarity_matrix(speech_h: Tensor, speech_mask: Tensor, text_h: Tensor, text_mask: Tensor) -> Tensor:
    """Cosine similarity of masked mean-pooled states: ``[Bs, Ls, D] x [Bt, Lt, D] -> [Bs, Bt]``."""
    return l2_normalize(masked_mean_pool(speech_h, speech_mask)) @ l2_normalize(masked_mean_pool(text_h, text_mask)).T


def _token_cloud(h: Tensor, mask: Tensor) -> Tensor:
    """Per-token L2-normalised states with exact zeros at padded positions (as the paper's code normalises)."""
    return l2_normalize(_zero_padding(h, mask))


def _sinkhorn_similarity(x: Tensor, x_mask: Tensor, y: Tensor, y_mask: Tensor, blur: float, scaling: float,
                         backend: str = "torch", self_schedule: str = "pair") -> Tensor:
    from model.sinkhorn import sinkhorn_divergence_matrix

    return -sinkhorn_divergence_matrix(x, x_mask.bool(), y, y_mask.bool(), blur=blur, scaling=scaling, p=2,
                                       backend=backend, self_schedule=self_schedule)


def wasserstein_similarity_matrix(speech_h: Tensor, speech_mask: Tensor, text_h: Tensor, text_mask: Tensor,
                                  blur: float = 0.05, scaling: float = 0.5) -> Tensor:
    """Minus the debiased Sinkhorn divergence between per-token L2-normalised state clouds -> ``[Bs, Bt]``.

    Uniform weights over each sample's valid tokens, cost ``|x - y|^2 / 2``, ``eps = blur^2``, eps-scaling
    ``scaling`` (geomloss ``SamplesLoss("sinkhorn", p=2, debias=True)``).
    """
    return _sinkhorn_similarity(_token_cloud(speech_h, speech_mask), speech_mask, _token_cloud(text_h, text_mask),
                                text_mask, blur, scaling)


# ----------------------------------------------------------------------------------------------------- InfoNCE
def info_nce(sim: Tensor, temperature: float | Tensor, direction: Literal["t2s", "s2t", "sym"] = "t2s",
             offset: int = 0) -> Tensor:
    """InfoNCE (cross-entropy over similarity / temperature) with the positives on a shifted diagonal.

    ``sim`` is always speech x text. ``s2t``: each speech row is a query over the text columns and its positive is
    column ``i + offset``; ``t2s``: each text column is a query over the speech rows, positive row ``j + offset``.
    The offset places a rank's local queries inside gathered candidates. ``sym`` averages both directions and
    needs a square matrix (offset 0); for a rank-local ``sym`` average two single-direction calls instead.

    Args:
        sim: ``[Bs, Bt]`` similarities, or ``[L, Bs, Bt]`` for L independent problems (layers) at once.
        temperature: Softmax temperature (a tensor when learned).
        direction: "t2s", "s2t" or "sym".
        offset: Index of the first query's positive among the candidates.

    Returns:
        Mean cross-entropy over the queries (float32 or wider): a scalar, or ``[L]``.
    """
    if direction == "sym":
        if sim.shape[-2] != sim.shape[-1] or offset:
            raise ValueError(f"sym InfoNCE needs a square matrix and offset 0, got {tuple(sim.shape)}, offset {offset}")
        return 0.5 * (info_nce(sim, temperature, "s2t") + info_nce(sim, temperature, "t2s"))
    if direction not in ("t2s", "s2t"):
        raise ValueError(f"direction must be t2s, s2t or sym, got {direction!r}")
    logits = sim if direction == "s2t" else sim.mT  # rows = queries
    queries, candidates = logits.shape[-2:]
    if offset < 0 or offset + queries > candidates:
        raise ValueError(f"{queries} queries at offset {offset} do not fit {candidates} candidates")
    logits = logits.to(torch.promote_types(logits.dtype, torch.float32)) / temperature
    labels = torch.arange(queries, device=logits.device) + offset
    if logits.dim() == 2:
        return F.cross_entropy(logits, labels)
    per_query = F.cross_entropy(logits.reshape(-1, candidates), labels.repeat(logits.shape[0]), reduction="none")
    return per_query.view(logits.shape[0], queries).mean(-1)


def check_finite(value: Tensor, what: str, keys: list[str] | None = None, layer: int | None = None,
                 mode: Literal["raise", "skip"] = "raise", detail: str | None = None) -> Tensor | None:
    """Returns ``value`` if finite; otherwise raises `NonFiniteLossError` or, in ``skip`` mode, returns None.

    Never let a NaN reach the optimiser silently: one NaN step poisons the AdamW moments for good. In ``skip`` mode
    the caller must skip backward and the optimiser step for this batch and count it. Under DDP/DeepSpeed all ranks
    must agree to skip (all-reduce the flag first), or the others hang in the gradient all-reduce. Costs one
    device-to-host sync.

    Args:
        value: A scalar loss.
        what: Name of the loss ("cos", "wasser", "asr", ...).
        keys: The batch's sample keys; the first few are named in the error.
        layer: LLM layer index of a per-layer loss.
        mode: "raise" or "skip".
        detail: Extra diagnosis for the message (e.g. which inputs were non-finite).
    """
    if bool(torch.isfinite(value).all()):
        return value
    if mode == "skip":
        return None
    where = f" at layer {layer}" if layer is not None else ""
    shown = "none given" if not keys else ", ".join(map(str, keys[:_KEYS_SHOWN])) + (
        f" (+{len(keys) - _KEYS_SHOWN} more)" if len(keys) > _KEYS_SHOWN else "")
    message = f"non-finite {what} loss ({value.detach().flatten()[0].item()}){where}; batch keys: {shown}"
    raise NonFiniteLossError(message + (f"; {detail}" if detail else ""), what, layer, list(keys) if keys else None)


# ----------------------------------------------------------------------------------------------------- ASR
def asr_loss(logits: Tensor, labels: Tensor, ignore_index: int = IGNORE_INDEX) -> Tensor:
    """Mean next-token cross-entropy over the target tokens (labels aligned with the inputs, shifted here).

    Only the target rows of the logits are upcast to float32: upcasting a whole ``[B, L, V]`` tensor for a
    128k-token vocabulary costs gigabytes. A batch without targets (answers truncated away) gives a zero loss
    that is still attached to the graph, so distributed backward stays in step on every rank.

    Args:
        logits: ``[B, L, V]`` LLM output over the full input sequence, or ``[M, V]`` logits already gathered at
            the M positions that predict a target (`SpeechLLM.answer_logits`).
        labels: ``[B, L]`` token ids at answer positions, ``ignore_index`` elsewhere (see `answer_labels`); with
            ``[M, V]`` logits, the ``[M]`` targets themselves (no shift).
        ignore_index: Label of positions without a target.

    Returns:
        Scalar mean over this batch's target tokens.
    """
    if logits.dim() == 2:  # gathered answer positions: already aligned with their targets
        if labels.shape != logits.shape[:1]:
            raise ValueError(f"gathered logits {tuple(logits.shape)} need [M] targets, got {tuple(labels.shape)}")
        if logits.shape[0] == 0:
            return logits.sum() * 0.0
        return F.cross_entropy(logits.to(torch.promote_types(logits.dtype, torch.float32)), labels)
    if logits.shape[:2] != labels.shape:
        raise ValueError(f"logits {tuple(logits.shape)} do not match labels {tuple(labels.shape)}")
    targets = labels[:, 1:]  # position t predicts token t + 1
    valid = targets != ignore_index
    picked = logits[:, :-1][valid]
    if picked.shape[0] == 0:
        return logits.sum() * 0.0
    return F.cross_entropy(picked.to(torch.promote_types(picked.dtype, torch.float32)), targets[valid])


def answer_labels(input_ids: Tensor, answer_mask: Tensor, ignore_index: int = IGNORE_INDEX) -> Tensor:
    """Labels that keep only the answer (transcript) tokens: ``input_ids`` where ``answer_mask``, else ignored.

    Prompt, template, speech placeholder and padding positions get no loss; include the EOS that ends the answer in
    the mask so the model learns to stop.
    """
    if input_ids.shape != answer_mask.shape:
        raise ValueError(f"input_ids {tuple(input_ids.shape)} and answer_mask {tuple(answer_mask.shape)} differ")
    return input_ids.masked_fill(~answer_mask.bool(), ignore_index)


def span_mask(starts: Tensor, ends: Tensor, seq_len: int) -> Tensor:
    """``[B, seq_len]`` bool mask, True on ``[starts[b], ends[b])``: the answer span of each sequence."""
    pos = torch.arange(seq_len, device=starts.device)
    return (pos >= starts.unsqueeze(1)) & (pos < ends.unsqueeze(1))
