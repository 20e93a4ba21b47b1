"""Batched greedy generation over evaluation shard sets, split over ranks, merged in a fixed order.

    loader = build_eval_loader(sources, None, cfg.batch_size, cfg.max_samples, rank, world, "basic")
    rows = generate(speech_llm, loader, "Can you transcribe this audio?", cfg)      # this rank's samples
    rows = generate_sharded(speech_llm, sources, prompt_for, cfg)                    # all samples, every rank
    write_results(rows, run_dir / "eval" / "asr_test.jsonl")

One row per sample: ``{"key", "source", "prompt", "hypothesis", "reference", "meta"}``. The output does not depend
on the number of ranks or on the batch size: each source is read in shard order (no shuffling), split over ranks by
the loader, and the gathered rows are sorted by (key, source). Greedy decoding with left padding is batch-invariant
because `SpeechLLM` derives position ids from the attention mask (up to float round-off, see the tests).

The model must be replicated on every rank (plain inference, not ZeRO-3 partitioned): ranks generate independently
and only meet in the final gather.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist

from data.stream import SourceCatalog, SourceConfig, StreamConfig, StreamLoader
from train import distributed as tdist

__all__ = ["GenerateConfig", "generate", "generate_sharded", "build_eval_loader", "merge_rows", "write_results",
           "read_results"]

log = logging.getLogger(__name__)

PromptFor = Callable[[dict], str | None] | str


@dataclass
class GenerateConfig:
    batch_size: int = 8
    """Samples per generation batch on each rank (batches hold samples of similar duration)."""
    max_new_tokens: int = 128
    """Greedy decoding stops after this many new tokens (or at the end-of-turn token)."""
    max_samples: int | None = None
    """Use the first N samples of each source, in shard order (None = all of them)."""

    def __post_init__(self):
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")
        if self.max_samples is not None and self.max_samples < 1:
            raise ValueError(f"max_samples must be >= 1 or None, got {self.max_samples}")


def _source(s: SourceConfig | dict | str) -> SourceConfig:
    if isinstance(s, SourceConfig):
        return s
    return SourceConfig(**s) if isinstance(s, dict) else SourceConfig(path=str(s))


def build_eval_loader(sources: Sequence[SourceConfig | dict | str], tokenizer: str | None, batch_size: int,
                      max_samples: int | None, rank: int = 0, world: int = 1,
                      text_norm: str = "basic") -> Iterator[dict]:
    """One pass over each source in shard order, this rank's share only.

    Sources are read one after the other (a weighted mix would repeat some samples and skip others). The loader
    gives every rank the same number of samples, so a source of n samples is read as ``world * ceil(n / world)``
    positions: the last ones wrap around to the source's first samples (same order on every pass) and are dropped
    here, so over all ranks every sample comes exactly once.

    Args:
        sources: shard-set directories (SourceConfig, its dict, or a path).
        tokenizer: local HF tokenizer directory (batches then carry text_ids), or None.
        batch_size: samples per batch on this rank.
        max_samples: first N samples of each source (None = all).
        rank, world: this rank and the number of ranks.
        text_norm: reference normalisation (see data.collate.normalize_text).

    Yields:
        The loader's batch dicts (audio, audio_mask, keys, texts, sources, meta, ...).
    """
    for src in map(_source, sources):
        base = StreamConfig(sources=[src], batch_size=batch_size, shuffle_buffer=0, shuffle_shards=False,
                            num_workers=0, seed=0, max_bad_fraction=1.0, text_norm=text_norm, tokenizer=tokenizer)
        n = len(SourceCatalog(src, base))
        n = n if max_samples is None else min(n, max_samples)
        per_rank = -(-n // world)
        base.samples_per_epoch = per_rank * world
        loader = StreamLoader(base, rank=rank, world_size=world)
        # Without shuffling, position g reads catalog item g % len: positions past n are repeats (or samples past
        # max_samples); this rank owns those with g % world == rank, and drops them.
        keys = loader.catalogs[0].keys
        extra = {keys[g % len(keys)] for g in range(n, per_rank * world) if g % world == rank}
        batches = iter(loader)
        for _ in range(loader.batches_per_epoch):
            batch = next(batches, None)
            if batch is None or batch["epoch"] != 0:  # batches emptied by bad samples are skipped by the loader
                break
            if extra:
                keep = [i for i, k in enumerate(batch["keys"]) if k not in extra]
                if not keep:
                    continue
                batch = _select(batch, keep) if len(keep) < batch["size"] else batch
            yield batch
        if loader.stats.bad:
            log.warning("source %s: %s", src.name, loader.summary())


def _select(batch: dict, keep: list[int]) -> dict:
    """The samples `keep` of a batch (per-sample tensors and lists indexed, the rest kept)."""
    b, out = batch["size"], {}
    for k, v in batch.items():
        if isinstance(v, torch.Tensor) and v.dim() > 0 and v.shape[0] == b:
            v = v[keep]
        elif isinstance(v, list) and len(v) == b:
            v = [v[i] for i in keep]
        out[k] = v
    out["size"] = len(keep)
    return out


@torch.no_grad()
def generate(speech_llm, batches: Iterable[dict], prompt_for: PromptFor, cfg: GenerateConfig) -> list[dict]:
    """Greedy answers for every sample of `batches` (this process's only; no communication).

    Args:
        speech_llm: a `model.speech_llm.SpeechLLM` (switched to eval mode, restored afterwards).
        batches: loader batch dicts with audio, audio_mask, keys, texts, sources, meta.
        prompt_for: the instruction, or a function of the sample ``{"key", "source", "text", "meta"}`` returning it
            (e.g. the target language of a speech translation sample from its meta); None skips the sample.
        cfg: generation settings (max_new_tokens).

    Returns:
        One row per sample, in batch order: ``{"key", "source", "prompt", "hypothesis", "reference", "meta"}``.
    """
    was_training = speech_llm.training
    speech_llm.eval()
    rows: list[dict] = []
    try:
        for batch in batches:
            samples = [{"key": k, "source": s, "text": t, "meta": m}
                       for k, s, t, m in zip(batch["keys"], batch["sources"], batch["texts"], batch["meta"])]
            prompts = [prompt_for if isinstance(prompt_for, str) else prompt_for(s) for s in samples]
            keep = [i for i, p in enumerate(prompts) if p is not None]
            if not keep:
                continue
            if len(keep) < len(samples):  # samples this pass does not ask about (e.g. ASR samples in an ST pass)
                batch, samples, prompts = _select(batch, keep), [samples[i] for i in keep], [prompts[i] for i in keep]
            dev = speech_llm.device
            hyps = speech_llm.generate_text(batch["audio"].to(dev), batch["audio_mask"].to(dev), prompts,
                                            max_new_tokens=cfg.max_new_tokens)
            rows += [{"key": s["key"], "source": s["source"], "prompt": p, "hypothesis": h, "reference": s["text"],
                      "meta": s["meta"]} for s, p, h in zip(samples, prompts, hyps)]
    finally:
        speech_llm.train(was_training)
    return rows


def merge_rows(parts: Iterable[list[dict]]) -> list[dict]:
    """Rows of all ranks sorted by (key, source, target) (target: a row's ST language, if it has one).

    Raises:
        ValueError: a (key, source, target) came more than once (duplicate keys in a shard set).
    """
    order = lambda r: (r["key"], r["source"], r.get("target") or "")  # noqa: E731
    rows = sorted((r for part in parts for r in part), key=order)
    dup = [order(a) for a, b in zip(rows, rows[1:]) if order(a) == order(b)]
    if dup:
        raise ValueError(f"{len(dup)} samples generated more than once, e.g. {dup[:3]}: are keys unique per source?")
    return rows


def generate_sharded(speech_llm, sources: Sequence[SourceConfig | dict | str], prompt_for: PromptFor,
                     cfg: GenerateConfig, text_norm: str = "basic") -> list[dict]:
    """`generate` over `sources` split over the ranks of the default process group; all rows on every rank.

    Rank and world come from torch.distributed (a world of one without a process group). The result is sorted
    by (key, source) and independent of the number of ranks and of ``cfg.batch_size``.
    """
    initialized = dist.is_available() and dist.is_initialized()
    rank, world = (dist.get_rank(), dist.get_world_size()) if initialized else (0, 1)
    batches = build_eval_loader(sources, None, cfg.batch_size, cfg.max_samples, rank, world, text_norm)
    local = generate(speech_llm, batches, prompt_for, cfg)
    return merge_rows(tdist.all_gather_object(local))


def write_results(rows: Iterable[dict], path: str | os.PathLike) -> Path:
    """Writes one JSON object per line, atomically (temp file in the same directory, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            for row in rows:
                fh.write(json.dumps(row, ensure_ascii=False) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def read_results(path: str | os.PathLike) -> list[dict]:
    """The rows of a `write_results` file."""
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]
