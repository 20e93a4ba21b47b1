"""Cross-modal retrieval metrics on pooled embeddings: cosine similarity, pessimistic ranks, R@k and MRR.

Pure tensor functions, no model and no distributed code: the caller gathers the held-out set's pooled speech and text
embeddings (one ``[N, D]`` tensor per LLM layer) and gets back a flat ``{name: float}`` dict ready for logging.
Row ``i`` of every matrix is speech sample ``i``; its transcript is text column ``i``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor


def similarity(speech: Tensor, text: Tensor) -> Tensor:
    """Cosine similarity of every speech embedding with every text embedding.

    Args:
        speech: ``[N, D]`` speech embeddings (any float dtype, bf16 included).
        text: ``[M, D]`` text embeddings.

    Returns:
        ``[N, M]`` float32 matrix, ``sim[i, j] = cos(speech[i], text[j])``.
    """
    if speech.ndim != 2 or text.ndim != 2 or speech.shape[1] != text.shape[1]:
        raise ValueError(f"expected [N, D] and [M, D] embeddings, got {tuple(speech.shape)} and {tuple(text.shape)}")
    # float32 before normalising: bf16 has ~3 significant digits, enough to create spurious ties between close pairs
    s = F.normalize(speech.detach().float(), dim=-1)
    t = F.normalize(text.detach().float(), dim=-1)
    return s @ t.T


def correct_ranks(sim: Tensor) -> Tensor:
    """0-based rank of the matching column ``i`` in each row ``i`` of a square similarity matrix.

    Ties count against the match (rank = number of other columns scoring ``>=`` the match), so a degenerate model
    whose embeddings all coincide gets rank ``N - 1`` everywhere instead of a lucky R@1 from index order.

    Args:
        sim: ``[N, N]`` similarity matrix.

    Returns:
        ``[N]`` long tensor of ranks in ``[0, N - 1]``.
    """
    if sim.ndim != 2 or sim.shape[0] != sim.shape[1]:
        raise ValueError(f"expected a square similarity matrix, got shape {tuple(sim.shape)}")
    n = sim.shape[0]
    diag = sim.diagonal().unsqueeze(1)
    beats = sim >= diag
    beats.fill_diagonal_(False)
    ranks = beats.sum(dim=1)
    # a NaN match compares False with everything; it is a failure, not a hit
    return torch.where(diag.squeeze(1).isnan(), torch.full_like(ranks, n - 1), ranks).long()


def recall_at_k(ranks: Tensor, ks: Sequence[int] = (1, 5)) -> dict[int, float]:
    """Fraction of queries whose match ranks in the top ``k``, for each ``k`` in ``ks``."""
    if ranks.numel() == 0:
        raise ValueError("recall_at_k needs at least one rank")
    return {int(k): (ranks < k).float().mean().item() for k in ks}


def mean_reciprocal_rank(ranks: Tensor) -> float:
    """Mean of ``1 / (rank + 1)`` over queries (1.0 when every match ranks first)."""
    if ranks.numel() == 0:
        raise ValueError("mean_reciprocal_rank needs at least one rank")
    return (1.0 / (ranks.double() + 1.0)).mean().item()


def retrieval_metrics(speech: Mapping[int, Tensor], text: Mapping[int, Tensor], ks: Sequence[int] = (1, 5),
                      prefix: str = "eval/") -> dict[str, float]:
    """Speech->text retrieval (and text->speech R@1) per layer on a held-out set of matched pairs.

    Args:
        speech: layer index -> ``[N, D]`` pooled speech embeddings.
        text: layer index -> ``[N, D]`` pooled text embeddings of the same samples, same order.
        ks: cut-offs for R@k.
        prefix: prepended to every key.

    Returns:
        ``{prefix}r@{k}/layer_{l}``, ``{prefix}mrr/layer_{l}`` and ``{prefix}t2s_r@1/layer_{l}`` per layer;
        ``{prefix}r@{k}/mean`` and ``{prefix}mrr/mean`` over layers; ``{prefix}chance_r@{k} = min(k, N) / N``.

    Raises:
        ValueError: if the layer sets differ, are empty, or the sample counts disagree.
    """
    if set(speech) != set(text):
        raise ValueError(f"speech and text must have the same layers, got speech {sorted(speech)} "
                         f"and text {sorted(text)}")
    if not speech:
        raise ValueError("retrieval_metrics needs at least one layer")
    sizes = {("speech", l): e.shape[0] for l, e in speech.items()} | {("text", l): e.shape[0] for l, e in text.items()}
    if len(set(sizes.values())) != 1:
        raise ValueError(f"every layer must hold the same number of samples N, got {sizes}")
    n = next(iter(sizes.values()))
    if n == 0:
        raise ValueError("retrieval_metrics needs at least one sample")

    out: dict[str, float] = {}
    per_k: dict[int, list[float]] = {int(k): [] for k in ks}
    mrrs: list[float] = []
    for layer in sorted(speech):
        sim = similarity(speech[layer], text[layer])
        ranks = correct_ranks(sim)
        for k, r in recall_at_k(ranks, ks).items():
            out[f"{prefix}r@{k}/layer_{layer}"] = r
            per_k[k].append(r)
        mrrs.append(mean_reciprocal_rank(ranks))
        out[f"{prefix}mrr/layer_{layer}"] = mrrs[-1]
        # the transposed matrix ranks speech for each transcript: a hub (one speech vector close to every text)
        # hurts text->speech much more than speech->text, so the asymmetry is a collapse diagnostic
        out[f"{prefix}t2s_r@1/layer_{layer}"] = recall_at_k(correct_ranks(sim.T), (1,))[1]
    for k, values in per_k.items():
        out[f"{prefix}r@{k}/mean"] = sum(values) / len(values)
        out[f"{prefix}chance_r@{k}"] = min(k, n) / n
    out[f"{prefix}mrr/mean"] = sum(mrrs) / len(mrrs)
    return out
