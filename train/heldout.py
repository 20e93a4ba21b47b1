"""Held-out evaluation during pretraining: test contrastive loss per layer and speech->text retrieval per layer.

The paper's tables report the test loss of both similarity measures (cosine and Wasserstein) per layer whatever
the training objective was, so both are computed here, within evaluation batches as in training. Retrieval ranks
each held-out utterance's transcript among all held-out transcripts by cosine similarity of mean-pooled states
(R@1, R@5, MRR per layer; chance is 1/N), which is the number that shows whether speech lands next to its own text.

The held-out set is fixed: the first `max_samples` samples of its shard sets in shard order (no shuffling), loaded
once and split over ranks. Every rank runs the same number of batches (ZeRO-3 needs all ranks in every forward),
the pooled embeddings are gathered to rank 0, which writes them to ``eval/embeddings_step_XXXXXXXX.npz`` for the
embedding map.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from data.stream import SourceConfig, StreamConfig, StreamLoader
from eval.retrieval import retrieval_metrics
from model.loss_functions import l2_normalize, masked_mean_pool
from model.losses import ContrastiveLoss, LossConfig
from train import distributed as tdist

__all__ = ["HeldoutConfig", "HeldoutEvaluator"]

log = logging.getLogger(__name__)


@dataclass
class HeldoutConfig:
    sources: list[SourceConfig] = field(default_factory=list)
    """Shard sets of the held-out data (empty: no held-out evaluation)."""
    max_samples: int = 256
    """Samples used (the first ones in shard order)."""
    batch_size: int = 16
    """Evaluation batch size per rank: the InfoNCE test loss is computed within batches of this size."""
    every_steps: int = 0
    """Evaluate every N optimizer steps (0: only before training and at the end)."""
    at_start: bool = True
    """Evaluate before the first step (the baseline the learning curve starts from)."""
    save_embeddings: bool = True
    """Write the pooled held-out embeddings of each evaluation to run_dir/eval/ (for the embedding map)."""

    def __post_init__(self):
        self.sources = [s if isinstance(s, SourceConfig) else SourceConfig(**s) for s in self.sources]
        if self.max_samples < 2 or self.batch_size < 2:
            raise ValueError(f"held-out max_samples and batch_size must be >= 2 (retrieval needs negatives), got "
                             f"{self.max_samples}, {self.batch_size}")
        if self.every_steps < 0:
            raise ValueError(f"every_steps must be >= 0, got {self.every_steps}")

    @property
    def enabled(self) -> bool:
        return bool(self.sources)


class HeldoutEvaluator:
    """Loads the held-out batches of this rank once; `evaluate(module)` returns the metrics (on every rank).

    Args:
        cfg: held-out settings.
        data: the training StreamConfig (text normalisation, tokenizer, durations are taken from it).
        loss: the training LossConfig (temperature, direction, blur and scaling of the test losses).
        run_dir: where rank 0 saves embeddings.
    """

    def __init__(self, cfg: HeldoutConfig, data: StreamConfig, loss: LossConfig, run_dir: str | Path):
        self.cfg, self.run_dir = cfg, Path(run_dir)
        d = tdist.discover()
        total = sum(int(_index_samples(s.path)) for s in cfg.sources)
        n = min(cfg.max_samples, total)
        # The training caches (data.text_cache / encoder_cache) cover the training shards, not these: held-out
        # samples go through the frozen encoder and LLM, as a test set would.
        stream = replace(data, sources=cfg.sources, batch_size=cfg.batch_size, shuffle_buffer=0, shuffle_shards=False,
                         samples_per_epoch=n, num_workers=0, seed=0, max_bad_fraction=1.0, text_cache=None,
                         encoder_cache=None)
        loader = StreamLoader(stream, rank=d.rank, world_size=d.world_size)
        it = iter(loader)
        self.batches = [next(it) for _ in range(loader.batches_per_epoch)]
        self.batches = [b for b in self.batches if b["epoch"] == 0]
        self.size = int(sum(tdist.all_gather_object(sum(b["size"] for b in self.batches))))
        self.losses = {kind: ContrastiveLoss(replace(loss, objective=kind, learn_temperature=False,
                                                     gather_negatives=False, nonfinite="skip"), kind)
                       for kind in ("cos", "wasser")}

    @torch.no_grad()
    def evaluate(self, module, step: int) -> dict[str, float]:
        """Metrics with ``eval/`` keys; `module` is the PretrainModule (switched to eval mode and back)."""
        m = module.speech_llm
        was_training = module.training
        module.eval()
        pooled: dict[str, dict[int, list[torch.Tensor]]] = {"speech": {}, "text": {}}
        sums: dict[str, float] = {}
        keys, sources = [], []
        n_batches = int(tdist.all_reduce_max(len(self.batches)))
        for i in range(n_batches):
            real = i < len(self.batches)
            batch = self.batches[min(i, len(self.batches) - 1)]  # repeats keep ranks in step; results dropped
            dev = m.device
            speech, smask, text, tmask = m.paired_hidden_states(batch["audio"].to(dev), batch["audio_mask"].to(dev),
                                                                batch["text_ids"].to(dev), batch["text_mask"].to(dev))
            if not real:
                continue
            b = batch["size"]
            for loss_fn in self.losses.values():
                _, per_layer = loss_fn(speech, smask, text, tmask)
                for k, v in per_layer.items():
                    sums[f"eval/{k}"] = sums.get(f"eval/{k}", 0.0) + float(v) * b
            for layer in speech:
                pooled["speech"].setdefault(layer, []).append(
                    l2_normalize(masked_mean_pool(speech[layer].float(), smask)).cpu())
                pooled["text"].setdefault(layer, []).append(
                    l2_normalize(masked_mean_pool(text[layer].float(), tmask)).cpu())
            keys += batch["keys"]
            sources += batch["sources"]
        local = {"sums": sums, "keys": keys, "sources": sources,
                 "pooled": {side: {layer: torch.cat(v) for layer, v in d.items()} for side, d in pooled.items()}}
        everything = tdist.all_gather_object(local)
        module.train(was_training)
        return self._reduce(everything, step)

    def _reduce(self, parts: list[dict], step: int) -> dict[str, float]:
        n = sum(len(p["keys"]) for p in parts)
        metrics = {"eval/samples": float(n)}
        for k in parts[0]["sums"]:
            metrics[k] = sum(p["sums"].get(k, 0.0) for p in parts) / n
        layers = sorted(parts[0]["pooled"]["speech"])
        speech = {l: torch.cat([p["pooled"]["speech"][l] for p in parts]) for l in layers}
        text = {l: torch.cat([p["pooled"]["text"][l] for p in parts]) for l in layers}
        metrics.update(retrieval_metrics(speech, text, ks=(1, 5), prefix="eval/"))
        if self.cfg.save_embeddings and tdist.is_main():
            out = self.run_dir / "eval"
            out.mkdir(parents=True, exist_ok=True)
            arrays = {f"{side}/layer_{l}": t[l].numpy().astype(np.float32)
                      for side, t in (("speech", speech), ("text", text)) for l in layers}
            arrays["keys"] = np.array([k for p in parts for k in p["keys"]])
            arrays["sources"] = np.array([s for p in parts for s in p["sources"]])
            np.savez(out / f"embeddings_step_{step:08d}.npz", **arrays)
        return metrics


def _index_samples(path: str) -> int:
    from data.shards import read_index

    return read_index(Path(path))["samples"]
