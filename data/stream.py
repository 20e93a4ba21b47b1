"""The streaming loader: weighted mix of shard sets -> rank/worker split -> decode -> filter -> bucketed batches.

    loader = StreamLoader(cfg, rank=rank, world_size=world)    # cfg: StreamConfig
    for batch in loader: ...                                     # infinite; epochs via loader.batches_per_epoch
    state = loader.state_dict()  ...  loader.load_state_dict(state)   # exact resume, any num_workers

The batch order comes from `data.plan` (metadata only), so it does not depend on the number of dataloader
workers: worker w loads batches w, w + num_workers, ... and PyTorch's DataLoader hands them back in order.
Bad samples are dropped from their batch and reported with it; the main process counts them, names them in
warnings and stops when more than `max_bad_fraction` of what was read is bad.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from core.errors import UserError
from data.audio import TARGET_SAMPLE_RATE, BadSample, decode_audio
from data.collate import TEXT_NORMS, LoadedSample, TextTokenizer, collate, normalize_text
from data.plan import Planner, PlanSpec, SourceOrder, initial_state
from data.shards import ShardReader, load_table, read_index
from data.text_cache import TextCacheReader

log = logging.getLogger("data.stream")
STATE_VERSION = 1
NAMED_WARNINGS_PER_REASON = 20


class DataQualityError(UserError, RuntimeError):
    """Too much of the data is unusable; the message names the counts, examples and the setting to change.

    An expected error (core.errors): a command ends on it with one ERROR line and exit status 2. Raised while
    streaming it is ``rank_local`` (each rank reads its own share of the data, so it may be the only one to fail)."""


class LoaderStateError(UserError, ValueError):
    """A checkpoint's loader state cannot continue here (another version, number of ranks, data or plan settings): a
    refused resume, an expected error (core.errors)."""


@dataclass
class SourceConfig:
    path: str = ""
    """Shard-set directory holding index.json (from `python -m data.prepare`)."""
    name: str = ""
    """Label used in batches, logs and metrics; defaults to the directory name."""
    weight: float | None = None
    """Sampling probability weight; leave unset on every source to mix by `mix_by`."""

    def __post_init__(self):
        if not self.path:
            raise ValueError("a source needs `path`, the shard-set directory")
        if self.weight is not None and self.weight <= 0:
            raise ValueError(f"source weight must be > 0, got {self.weight}")
        self.name = self.name or Path(self.path).name


@dataclass
class StreamConfig:
    sources: list[SourceConfig] = field(default_factory=list)
    """Shard sets to mix."""
    mix_by: Literal["hours", "samples"] = "hours"
    """Weights when no source sets one: proportional to audio hours or to sample counts."""
    batch_size: int = 8
    """Samples per batch on each rank (the last batch of an epoch may be smaller)."""
    seed: int = 0
    """Seeds shard order, shuffle buffers and mixing; the whole batch sequence follows from it."""
    num_workers: int = 2
    """DataLoader worker processes per rank (0 = load in the main process). Does not change the batches."""
    prefetch_factor: int = 2
    """Batches each worker prepares ahead."""
    shuffle_buffer: int = 2000
    """Samples in the streaming shuffle buffer (0 or 1 = shard order)."""
    shuffle_shards: bool = True
    """Visit shards in a seeded order that changes every pass."""
    bucket_edges: list[float] = field(default_factory=lambda: [2, 4, 6, 8, 10, 13, 16, 20, 25, 30, 37, 45])
    """Upper edges (seconds) of the duration buckets; a batch only holds samples of one bucket."""
    min_duration: float = 0.1
    """Shorter samples are filtered out at planning time."""
    max_duration: float = 45.0
    """Longer samples are filtered out at planning time (paper: 45 s for ASR/ST, 150 s for SQA)."""
    sample_rate: int = TARGET_SAMPLE_RATE
    """Output sample rate; other rates are resampled."""
    text_norm: Literal["none", "basic", "lower"] = "basic"
    """Transcript normalisation, see data.collate.normalize_text."""
    tokenizer: str | None = None
    """Local path of an HF tokenizer (the LLM's); when set, batches carry text_ids/text_mask."""
    add_special_tokens: bool = False
    """Let the tokenizer add BOS/EOS (the paper's text side uses bare transcript tokens)."""
    max_text_tokens: int = 1024
    """Samples with longer tokenised transcripts are filtered out."""
    text_cache: str | None = None
    """Directory of cached frozen-LLM text hidden states (`python -m train.cache_text`); batches then carry them
    (text_pooled or text_states) and training skips the text-side LLM forward."""
    encoder_cache: str | None = None
    """Directory of cached frozen-encoder features (`python -m train.cache_encoder`); batches then carry them
    (encoder_features, encoder_mask) and training skips the encoder."""
    samples_per_epoch: int | None = None
    """Global samples per epoch; default: all usable samples of all sources."""
    subset_fraction: float = 1.0
    """Use a deterministic subset of each source: the samples whose key hashes below this fraction (the paper's
    10 % finetuning runs). The same keys are chosen on every machine and for any sharding of the data."""
    max_bad_fraction: float = 0.01
    """Stop when more than this fraction of the samples read so far is bad."""
    bad_grace_samples: int = 200
    """Samples to read before the bad-fraction threshold applies (a few early bad files are not a trend)."""

    def __post_init__(self):
        self.sources = [s if isinstance(s, SourceConfig) else SourceConfig(**s) for s in self.sources]
        explicit = [s.weight is not None for s in self.sources]
        if any(explicit) and not all(explicit):
            raise ValueError("set `weight` on every source or on none (then sources mix by `mix_by`)")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.num_workers < 0:
            raise ValueError(f"num_workers must be >= 0, got {self.num_workers}")
        if not self.bucket_edges or list(self.bucket_edges) != sorted(self.bucket_edges):
            raise ValueError(f"bucket_edges must be a non-empty ascending list, got {self.bucket_edges}")
        if not 0 <= self.min_duration < self.max_duration:
            raise ValueError(f"need 0 <= min_duration < max_duration, got {self.min_duration}, {self.max_duration}")
        if not 0 < self.subset_fraction <= 1:
            raise ValueError(f"subset_fraction must be in (0, 1], got {self.subset_fraction}")
        if not 0 <= self.max_bad_fraction <= 1:
            raise ValueError(f"max_bad_fraction must be in [0, 1], got {self.max_bad_fraction}")
        if self.text_norm not in TEXT_NORMS:
            raise ValueError(f"text_norm must be one of {TEXT_NORMS}, got {self.text_norm!r}")


def _in_subset(key: str, fraction: float) -> bool:
    digest = hashlib.sha256(key.encode()).digest()
    return int.from_bytes(digest[:8], "little") < fraction * 2**64


class SourceCatalog:
    """One shard set's usable samples (duration-filtered, missing/truncated shards removed) as flat arrays."""

    def __init__(self, cfg: SourceConfig, stream: StreamConfig):
        self.name = cfg.name
        directory = Path(cfg.path)
        index = read_index(directory)
        self.listed = int(index["samples"])
        self.problems: list[str] = []
        self.lost = 0
        self.filtered = 0
        self.paths, keys, shard_sizes = [], [], []
        cols = {c: [] for c in ("shard", "audio_offset", "audio_size", "json_offset", "json_size", "duration")}
        for shard in index["shards"]:
            table, problems = load_table(directory, shard)
            self.problems += problems
            if table is None:
                self.lost += shard["samples"]
                continue
            self.lost += max(0, shard["samples"] - len(table))
            keep = [i for i, d in enumerate(table.duration) if stream.min_duration <= d <= stream.max_duration]
            self.filtered += len(table) - len(keep)
            if stream.subset_fraction < 1:  # by key hash: the same subset whatever the shard layout or order
                keep = [i for i in keep if _in_subset(table.keys[i], stream.subset_fraction)]
            if not keep:
                continue
            cols["shard"] += [len(self.paths)] * len(keep)
            for c in ("audio_offset", "audio_size", "json_offset", "json_size", "duration"):
                col = getattr(table, c)
                cols[c] += [col[i] for i in keep]
            keys += [table.keys[i] for i in keep]
            shard_sizes.append(len(keep))
            self.paths.append(str(directory / table.shard))
        self.keys, self.shard_sizes = keys, shard_sizes
        self.arrays = {c: np.asarray(v, dtype=np.float64 if c == "duration" else np.int64) for c, v in cols.items()}
        self.hours = float(self.arrays["duration"].sum()) / 3600 if keys else 0.0
        if not keys:
            raise ValueError(f"source {self.name!r} ({directory}) has no usable samples: {self.lost} lost, "
                             f"{self.filtered} outside [{stream.min_duration}, {stream.max_duration}] s; "
                             f"problems: {self.problems or 'none'}")

    def __len__(self) -> int:
        return len(self.keys)

    def shard_path(self, item: int) -> str:
        return self.paths[self.arrays["shard"][item]]

    def read(self, reader: ShardReader, item: int) -> tuple[bytes, bytes]:
        """(audio bytes, json bytes) of one item."""
        a, path = self.arrays, self.shard_path(item)
        audio = reader.read(path, int(a["audio_offset"][item]), int(a["audio_size"][item]))
        meta = reader.read(path, int(a["json_offset"][item]), int(a["json_size"][item]))
        return audio, meta


class _PlannedBatches(IterableDataset):
    """Runs the planner in every worker and loads the batches that belong to this worker."""

    def __init__(self, planner: Planner, catalogs: list[SourceCatalog], cfg: StreamConfig, tokenizer: TextTokenizer):
        self.planner, self.catalogs, self.cfg, self.tokenizer = planner, catalogs, cfg, tokenizer
        self._cache = self._encoder_cache = None
        self.start_state = initial_state(len(cfg.bucket_edges))

    def __iter__(self):
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info else (0, 1)
        reader = ShardReader()
        for t, (refs, epoch, index, after) in enumerate(self.planner.iterate(self.start_state)):
            if t % workers == worker:
                yield self.load(reader, refs, epoch, index, after)

    def load(self, reader: ShardReader, refs, epoch: int, index: int, after: dict) -> dict:
        samples, token_ids, dropped, fixes = [], [], [], Counter()
        for s, item in refs:
            catalog = self.catalogs[s]
            try:
                sample, ids, sample_fixes = self._load_one(reader, catalog, item)
            except BadSample as exc:
                dropped.append({"key": catalog.keys[item], "shard": catalog.shard_path(item), "source": catalog.name,
                                "reason": exc.reason, "detail": exc.detail})
                continue
            fixes.update(sample_fixes)
            samples.append(sample)
            token_ids.append(ids)
        pad_id = self.tokenizer.pad_id() if self.tokenizer else 0
        batch = collate(samples, token_ids if self.tokenizer else None, pad_id)
        batch["_stream"] = {"epoch": epoch, "index": index, "after": after, "planned": len(refs),
                            "dropped": dropped, "fixes": dict(fixes)}
        return batch

    def _load_one(self, reader: ShardReader, catalog: SourceCatalog, item: int):
        audio_bytes, meta_bytes = catalog.read(reader, item)
        try:
            meta = json.loads(meta_bytes)
        except (ValueError, RecursionError) as exc:  # RecursionError: absurdly deep nesting ("[[[[...")
            raise BadSample("corrupt_json", f"json member does not parse ({exc})") from None
        if not isinstance(meta, dict):
            raise BadSample("corrupt_json", "json member is not an object")
        raw = meta.get("text")
        text = normalize_text(raw, self.cfg.text_norm) if isinstance(raw, str) else ""
        if not text.strip():  # text_norm "none" keeps a whitespace-only transcript as it is
            raise BadSample("empty_transcript", f"transcript is {raw!r}")
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:  # "\ud800" escapes parse to lone surrogates, which the tokenizer cannot take
            detail = f"transcript is not valid Unicode (lone surrogates): {text[:80]!r}"
            raise BadSample("corrupt_json", detail) from None
        audio = decode_audio(audio_bytes, self.cfg.sample_rate)
        fixes = list(audio.fixes)
        if audio.seconds > self.cfg.max_duration + 0.5:  # the index claimed a shorter duration
            raise BadSample("duration_mismatch", f"{audio.seconds:.1f} s decoded, index said "
                                                 f"{catalog.arrays['duration'][item]:.1f} s")
        ids = None
        if self.tokenizer:
            ids = self.tokenizer.encode(text)
            if not ids:  # no target: the contrastive loss stops training on a text row with no valid position
                raise BadSample("empty_transcript", f"transcript {text[:80]!r} tokenises to no tokens")
            if len(ids) > self.cfg.max_text_tokens:
                raise BadSample("text_too_long", f"{len(ids)} tokens > max_text_tokens={self.cfg.max_text_tokens}")
        cached = None
        if self.cfg.text_cache:
            if self._cache is None:  # opened in each worker process (file handles do not cross a fork)
                self._cache = TextCacheReader(self.cfg.text_cache)
            cached = self._cache.lookup(catalog.name, catalog.shard_path(item), catalog.keys[item])
            if cached is None:
                raise BadSample("text_cache_missing", f"no cached text states in {self.cfg.text_cache} (rerun "
                                                      f"python -m train.cache_text for this source)")
        features = None
        if self.cfg.encoder_cache:
            if self._encoder_cache is None:
                self._encoder_cache = TextCacheReader(self.cfg.encoder_cache)
            features = self._encoder_cache.lookup(catalog.name, catalog.shard_path(item), catalog.keys[item])
            if features is None:
                raise BadSample("encoder_cache_missing", f"no cached encoder features in {self.cfg.encoder_cache} "
                                                         f"(rerun python -m train.cache_encoder for this source)")
        sample = LoadedSample(catalog.keys[item], catalog.name, audio.samples, text, meta, cached, features)
        return sample, ids, fixes


FILTER_REASONS = frozenset({"text_too_long"})  # dropped by policy, not evidence of broken data


class DataStats:
    """What the loader has read, repaired, dropped and filtered; part of the resumable state."""

    def __init__(self):
        self.samples = 0
        self.seconds = 0.0
        self.bad: Counter[str] = Counter()
        self.filtered: Counter[str] = Counter()
        self.fixes: Counter[str] = Counter()

    def state_dict(self) -> dict:
        return {"samples": self.samples, "seconds": self.seconds, "bad": dict(self.bad),
                "filtered": dict(self.filtered), "fixes": dict(self.fixes)}

    def load_state_dict(self, d: dict) -> None:
        self.samples, self.seconds = int(d["samples"]), float(d["seconds"])
        self.bad, self.filtered, self.fixes = Counter(d["bad"]), Counter(d["filtered"]), Counter(d["fixes"])

    @property
    def attempted(self) -> int:
        return self.samples + sum(self.bad.values())


class StreamLoader:
    """Iterable of batches for one rank, with exact `state_dict()` / `load_state_dict()`.

    Args:
        cfg: the StreamConfig.
        rank, world_size: this process's global rank and the number of ranks (over all nodes).
        tokenizer: an HF tokenizer object, overriding `cfg.tokenizer`.
    """

    def __init__(self, cfg: StreamConfig, rank: int = 0, world_size: int = 1, tokenizer=None):
        if not cfg.sources:
            raise ValueError("StreamConfig.sources is empty: give at least one shard-set directory")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} outside world_size {world_size}")
        self.cfg, self.rank, self.world_size = cfg, rank, world_size
        names = Counter(s.name for s in cfg.sources)
        if max(names.values()) > 1:
            raise ValueError(f"source names must be unique, got {dict(names)}: set `name` on each source")
        self.catalogs = [SourceCatalog(s, cfg) for s in cfg.sources]
        self.stats = DataStats()
        self._check_plan_time_losses()
        if all(s.weight is not None for s in cfg.sources):
            weights = [s.weight for s in cfg.sources]
        else:
            weights = [c.hours if cfg.mix_by == "hours" else len(c) for c in self.catalogs]
        total = sum(weights)
        self.weights = tuple(w / total for w in weights)
        self.samples_per_epoch = cfg.samples_per_epoch or sum(len(c) for c in self.catalogs)
        spec = PlanSpec(cfg.seed, cfg.batch_size, tuple(float(e) for e in cfg.bucket_edges), cfg.shuffle_buffer,
                        cfg.shuffle_shards, world_size, rank, self.samples_per_epoch, self.weights)
        orders = [SourceOrder(c.shard_sizes, c.arrays["duration"], cfg.seed, i, cfg.shuffle_buffer,
                              cfg.shuffle_shards) for i, c in enumerate(self.catalogs)]
        self.planner = Planner(spec, orders)
        self.batches_per_epoch = self.planner.batches_per_epoch
        self.position = initial_state(len(cfg.bucket_edges))
        tok = TextTokenizer(tokenizer, cfg.tokenizer, cfg.add_special_tokens)
        self.dataset = _PlannedBatches(self.planner, self.catalogs, cfg, tok)
        if rank == 0:
            for c, w in zip(self.catalogs, self.weights):
                log.info("source %s: %d samples, %.3f h, weight %.3f (%d filtered by duration)",
                         c.name, len(c), c.hours, w, c.filtered)

    def _check_plan_time_losses(self) -> None:
        # Checked here, against everything indexed, rather than in the running bad fraction: these samples are
        # never attempted, and counting them there would trip the threshold on the first batch.
        for c in self.catalogs:
            for p in c.problems:
                log.warning("%s", p)
        listed = sum(c.listed for c in self.catalogs)
        lost = sum(c.lost for c in self.catalogs)
        if lost > self.cfg.max_bad_fraction * listed:
            raise DataQualityError(
                f"{lost} of {listed} indexed samples sit in missing or truncated shards, above "
                f"max_bad_fraction={self.cfg.max_bad_fraction}: "
                + "; ".join(p for c in self.catalogs for p in c.problems[:5])
                + ". Restore the shards (or re-run data.prepare), or raise max_bad_fraction.")

    @property
    def epoch(self) -> int:
        """Epoch of the next batch."""
        return self.position["epoch"] + (self.position["batch"] >= self.batches_per_epoch)

    def __iter__(self):
        self.dataset.start_state = self.position
        workers = self.cfg.num_workers
        # Own generator: DataLoader draws its workers' base seed from it when iterated; from the global RNG that
        # draw would shift the trainer's dropout / position-shift stream depending on when iteration starts.
        loader = DataLoader(self.dataset, batch_size=None, num_workers=workers,
                            prefetch_factor=self.cfg.prefetch_factor if workers else None,
                            multiprocessing_context="fork" if workers else None,
                            generator=torch.Generator().manual_seed(self.cfg.seed))
        expected = (self.position["epoch"], self.position["batch"])
        empty_run = 0  # consecutive batches with nothing usable: a whole epoch of them would loop forever
        for batch in loader:
            info = batch.pop("_stream")
            if expected[1] >= self.batches_per_epoch:
                expected = (expected[0] + 1, 0)
            if (info["epoch"], info["index"]) != expected:
                raise RuntimeError(f"loader out of order: got batch {info['epoch']}:{info['index']}, "
                                   f"expected {expected[0]}:{expected[1]}")
            expected = (info["epoch"], info["index"] + 1)
            self.position = info["after"]
            self._account(batch, info)
            if batch["size"] == 0:
                log.warning("batch %d:%d has no usable sample left; skipped", info["epoch"], info["index"])
                empty_run += 1
                if empty_run >= self.batches_per_epoch:
                    reasons = dict(self.stats.bad) | dict(self.stats.filtered)
                    raise DataQualityError(
                        f"{empty_run} batches in a row (a whole epoch for rank {self.rank}) had no usable sample; "
                        f"skipped so far by reason: {reasons}, e.g. {info['dropped'][:2]}. Every sample of "
                        f"{[c.name for c in self.catalogs]} is being dropped: fix the named cause (a text or "
                        f"encoder cache built for other shards, corrupt audio, ...) rather than training on nothing.",
                        rank_local=True)
                continue
            empty_run = 0
            batch["epoch"], batch["batch_index"] = info["epoch"], info["index"]
            yield batch

    def _account(self, batch: dict, info: dict) -> None:
        st = self.stats
        st.samples += batch["size"]
        st.seconds += float(batch["audio_lengths"].sum()) / self.cfg.sample_rate
        st.fixes.update(info["fixes"])
        for d in info["dropped"]:
            counter = st.filtered if d["reason"] in FILTER_REASONS else st.bad
            counter[d["reason"]] += 1
            n = counter[d["reason"]]
            if n <= NAMED_WARNINGS_PER_REASON:
                log.warning("skipping %s in %s (%s): %s", d["key"], d["shard"], d["reason"], d["detail"])
            elif n % 100 == 0:
                log.warning("%d samples skipped so far for %s (latest: %s in %s)", n, d["reason"], d["key"],
                            d["shard"])
        n_bad = sum(st.bad.values())
        if st.attempted >= self.cfg.bad_grace_samples and n_bad > self.cfg.max_bad_fraction * st.attempted:
            examples = [f"{d['key']} in {d['shard']}: {d['reason']}" for d in info["dropped"][:3]]
            raise DataQualityError(
                f"{n_bad} of {st.attempted} samples read were bad ({dict(st.bad)}), above max_bad_fraction="
                f"{self.cfg.max_bad_fraction}; recent: {examples}. Fix or re-prepare the named shards, or raise "
                f"max_bad_fraction if this data is known to be noisy.", rank_local=True)

    def state_dict(self) -> dict:
        """Position after the last batch handed out, plus counters; JSON-serialisable."""
        return {"version": STATE_VERSION, "fingerprint": self.planner.fingerprint(), "rank": self.rank,
                "world_size": self.world_size, "position": json.loads(json.dumps(self.position)),
                "stats": self.stats.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        """Continue exactly after the batch where `state` was taken; the number of workers may differ."""
        if state.get("version") != STATE_VERSION:
            raise LoaderStateError(f"loader state version {state.get('version')} != {STATE_VERSION}: the checkpoint "
                                   f"was written by another version of data/stream.py; start a new run_dir")
        if state["world_size"] != self.world_size or state["rank"] != self.rank:
            raise LoaderStateError(f"loader state is from rank {state['rank']}/{state['world_size']}, this is rank "
                                   f"{self.rank}/{self.world_size}: resume with the same number of ranks")
        if state["fingerprint"] != self.planner.fingerprint():
            raise LoaderStateError("loader state was saved with different data or plan settings (sources, seed, "
                                   "batch_size, bucket_edges, shuffle, samples_per_epoch or weights changed): the "
                                   "sample order cannot continue exactly; restore those settings or start a new run")
        self.position = state["position"]
        self.stats.load_state_dict(state["stats"])

    def summary(self) -> str:
        st = self.stats
        lost = sum(c.lost for c in self.catalogs)
        return (f"{st.samples} samples, {st.seconds / 3600:.3f} h read; bad {dict(st.bad)}; filtered "
                f"{dict(st.filtered)}; repaired {dict(st.fixes)}; {lost} samples in missing/truncated shards")
