"""Negatives that survive gradient accumulation: one optimizer step contrasts every sample against the whole global
batch (all micro-batches of all ranks), whatever fits in memory at once.

Plain accumulation computes InfoNCE per micro-batch, so a step of ``accum`` micro-batches of ``b`` samples on ``w``
ranks sees ``b * w`` negatives, not ``b * accum * w``: accumulation buys the gradient noise of a big batch but not
its contrast. GradCache (Gao et al., 2021, "Scaling Deep Contrastive Learning Batch Size under Memory Limited Setup")
gets the big-batch gradient exactly, because the loss depends on the model only through small per-sample features
(`ContrastiveLoss.features`: one ``[D]`` vector per layer for cos, the token cloud for wasser):

1. every micro-batch forward **without grad**, keeping the features (and the RNG state before each forward);
2. the contrastive loss over all of them (other ranks' gathered as negatives, as in the one-micro-batch case) and
   its gradient with respect to this rank's speech features;
3. every micro-batch forward again **with grad** from the same RNG state (same dropout and position shifts), and
   backward of ``sum(features * gradient)``, whose parameter gradient is the chain rule's product: the full-batch
   gradient, accumulated micro-batch by micro-batch by the engine as usual.

The text side has no trainable parameter, so it runs once (pass 1) and never needs gradients. Cost: one more
no-grad encoder + projector + LLM pass over the speech per micro-batch (plus, with an ASR term, one more no-grad
ASR forward so that a non-finite batch is known before any backward). Exactness is tested in fp64 against one big
batch for 4 micro-batches x 2 ranks (tests/train/test_grad_cache.py).
"""

from __future__ import annotations

import time

import torch
import torch.nn.functional as F
from torch import Tensor

from model.losses import combine
from train import distributed as tdist
from train.checkpoint import rng_state, set_rng_state

__all__ = ["GradCacheStep", "concat_features", "split_rows"]


def concat_features(parts: list[dict[int, Tensor]], masks: list[Tensor]) -> tuple[dict[int, Tensor], Tensor]:
    """Stacks the micro-batches' features along the batch: ``[B, D]`` features concatenate; ``[B, L, D]`` token
    clouds and their ``[B, L]`` masks are zero/False-padded to the longest micro-batch first (padding is masked out
    of the Sinkhorn problems, so it changes nothing)."""
    longest = max(m.shape[1] for m in masks)
    mask = torch.cat([F.pad(m, (0, longest - m.shape[1]), value=False) for m in masks])
    out = {}
    for layer in parts[0]:
        tensors = [p[layer] for p in parts]
        if tensors[0].dim() == 3:
            tensors = [F.pad(t, (0, 0, 0, longest - t.shape[1])) for t in tensors]
        out[layer] = torch.cat(tensors)
    return out, mask


def split_rows(full: dict[int, Tensor], masks: list[Tensor]) -> list[dict[int, Tensor]]:
    """The inverse of `concat_features` for its gradients: each micro-batch's rows (and, for token clouds, its own
    length)."""
    out, start = [], 0
    for m in masks:
        rows = slice(start, start + m.shape[0])
        out.append({l: (t[rows, : m.shape[1]] if t.dim() == 3 else t[rows]) for l, t in full.items()})
        start += m.shape[0]
    return out


class GradCacheStep:
    """One optimizer step over ``len(batches)`` micro-batches with full-batch negatives (see the module docstring).

    Args:
        engine: the DeepSpeed engine (or anything with ``__call__``, ``backward`` and ``step`` that divides the loss
            by the accumulation steps in ``backward``, as DeepSpeed does) around a `PretrainModule`.
        module: the `PretrainModule` itself (its objective's settings).
    """

    def __init__(self, engine, module):
        self.engine, self.module = engine, module

    def __call__(self, batches: list[dict]) -> tuple[dict[str, Tensor] | None, dict[str, float]]:
        """Runs the three passes; returns ``(metrics of the whole step, or None when a non-finite loss made every
        rank skip it before any backward; timings)``."""
        cfg = self.module.objective.cfg
        accum = len(batches)
        start = time.perf_counter()
        before, feats = [], []
        with torch.no_grad():
            for batch in batches:
                before.append(rng_state())
                feats.append(self.engine(batch, mode="features"))
        after = rng_state()
        speech_masks = [f["speech_mask"] for f in feats]
        speech, speech_mask = concat_features([f["speech"] for f in feats], speech_masks)
        text, text_mask = concat_features([f["text"] for f in feats], [f["text_mask"] for f in feats])
        keys = [k for b in batches for k in b["keys"]]
        leaves = {l: t.detach().requires_grad_() for l, t in speech.items()}
        # Not through the engine: DeepSpeed hooks every output of its forward to scale gradients for accumulation
        # and to reduce them when a backward ends, and this backward must reach only the features.
        with torch.enable_grad():
            loss, metrics = self.module.global_loss(speech=leaves, speech_mask=speech_mask, text=text,
                                                    text_mask=text_mask, keys=keys)
        asr = [f["asr"] for f in feats] if cfg.uses_asr else []
        finite = loss is not None and all(bool(torch.isfinite(a)) for a in asr)
        timings = {"grad_cache_first_pass": time.perf_counter() - start}
        if tdist.all_reduce_max(float(not finite)):  # every rank skips together or none does
            return None, timings
        # d(total)/d(features), times accum: the engine divides every micro-batch's loss by accum in backward.
        grads = torch.autograd.grad(loss, list(leaves.values()))
        scale = cfg.contrastive_weight * accum
        per_batch = split_rows({l: g * scale for l, g in zip(leaves, grads)}, speech_masks)
        temperature_term = None
        if cfg.learn_temperature:
            # pass 1 ran without grad, so these features carry none: the term's only gradient is the temperature's
            temperature_term = {"speech": speech, "speech_mask": speech_mask, "text": text, "text_mask": text_mask,
                                "keys": keys}
        backward = optim = 0.0
        for i, batch in enumerate(batches):
            set_rng_state(before[i])
            surrogate = self.engine(batch, mode="replay", speech_grads=per_batch[i],
                                    temperature_term=temperature_term if i == 0 else None, temperature_scale=accum)
            t = time.perf_counter()
            self.engine.backward(surrogate)
            backward += time.perf_counter() - t
            t = time.perf_counter()
            self.engine.step()
            optim += time.perf_counter() - t
        set_rng_state(after)
        losses = {"contrastive": loss.detach()}
        weights = {"contrastive": cfg.contrastive_weight}
        if asr:
            losses["asr"], weights["asr"] = torch.stack(asr).mean(), cfg.asr_weight
        _, totals = combine(losses, weights)
        metrics = {**metrics, **totals}
        counts: dict[str, float] = {}
        for f in feats:
            for k, v in f["counts"].items():
                counts[k] = counts.get(k, 0.0) + float(v)
        timings.update(backward=backward, optimizer=optim)
        return {**metrics, **{k: torch.tensor(v) for k, v in counts.items()}}, timings
