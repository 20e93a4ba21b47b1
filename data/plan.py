"""The deterministic sample and batch plan of the streaming loader, computed from metadata alone.

Why a plan: exact resume with any number of dataloader workers needs the batch sequence to be a pure function of
(seed, sources, rank, world size, position), never of which worker happened to read which shard. So the order is
decided here, on sample tables (keys, durations), before any audio is read:

1. Each source cycles forever through passes. Pass p of source s visits its shards in a seeded order and runs a
   seeded shuffle buffer over their samples, the same algorithm as a streaming WebDataset shuffle, so reads stay
   within a window of a few shards (sequential-ish I/O) while neighbours are decorrelated.
2. A global mixed stream picks, at position g, source s with probability weight[s] (seeded per block of
   positions, so any position can be located without replaying the past) and takes that source's next sample.
3. Epoch e owns global positions [e*N, (e+1)*N) with N = world_size * (samples_per_epoch // world_size); rank r
   takes g = r (mod world_size). Every rank gets the same count, so no rank ever waits for another at epoch end,
   and over ranks every position is taken exactly once.
4. A rank buckets its samples by duration and emits a batch whenever a bucket holds batch_size samples (bounded
   padding). At the epoch's end the leftovers are sorted by duration and emitted in chunks, which makes the number
   of batches per epoch exactly ceil(per_rank / batch_size) on every rank.

The planner's state after each batch is a small dict (position, bucket contents); a restarted job continues from
it in milliseconds (pass orders are rebuilt in O(source size), mixing counts in O(position / 8192)).
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass

import numpy as np

MIX_BLOCK = 8192


@dataclass(frozen=True)
class PlanSpec:
    """Everything that determines the batch sequence; a resume with a different spec cannot be exact."""

    seed: int
    batch_size: int
    bucket_edges: tuple[float, ...]
    shuffle_buffer: int
    shuffle_shards: bool
    world_size: int
    rank: int
    samples_per_epoch: int
    weights: tuple[float, ...]


class SourceOrder:
    """Per-pass sample order of one source. Items are 0..n-1, stored shard after shard."""

    def __init__(self, shard_sizes: list[int], durations: np.ndarray, seed: int, source_index: int,
                 shuffle_buffer: int, shuffle_shards: bool):
        self.shard_starts = np.concatenate([[0], np.cumsum(shard_sizes)]).astype(np.int64)
        self.durations = np.asarray(durations, dtype=np.float64)
        self.n = int(self.shard_starts[-1])
        if self.n == 0:
            raise ValueError("a source with no usable samples cannot be planned")
        self.seed, self.source_index = seed, source_index
        self.shuffle_buffer, self.shuffle_shards = shuffle_buffer, shuffle_shards
        self._cache: dict[int, np.ndarray] = {}

    def pass_order(self, p: int) -> np.ndarray:
        if p not in self._cache:
            if len(self._cache) >= 2:  # consumers move forward; keep the current and the next pass only
                self._cache.pop(min(self._cache))
            self._cache[p] = self._build(p)
        return self._cache[p]

    def _build(self, p: int) -> np.ndarray:
        rng = np.random.default_rng([self.seed, self.source_index, p, 0x5EED])
        n_shards = len(self.shard_starts) - 1
        shards = rng.permutation(n_shards) if self.shuffle_shards else np.arange(n_shards)
        seq = np.concatenate([np.arange(self.shard_starts[i], self.shard_starts[i + 1]) for i in shards])
        return buffer_shuffle(seq, self.shuffle_buffer, rng) if self.shuffle_buffer > 1 else seq


def buffer_shuffle(seq: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """Streaming shuffle: fill a buffer of `size`, then emit a random slot and refill it with the next item."""
    size = min(size, len(seq))
    items = seq.tolist()
    buf = items[:size]
    picks = (rng.random(len(items)) * size).astype(np.int64).tolist()
    out = []
    for i in range(size, len(items)):
        j = picks[i]
        out.append(buf[j])
        buf[j] = items[i]
    tail = np.asarray(buf, dtype=np.int64)[rng.permutation(size)]
    return np.concatenate([np.asarray(out, dtype=np.int64), tail])


class MixSchedule:
    """Source choice for every global position, seeded per block so any position is located directly."""

    def __init__(self, weights: tuple[float, ...], seed: int):
        w = np.asarray(weights, dtype=np.float64)
        self.p = w / w.sum()
        self.seed = seed
        self._counts_before = [np.zeros(len(w), dtype=np.int64)]  # per-source choices before block b
        self._last: tuple[int, np.ndarray, np.ndarray] | None = None

    def _block(self, b: int) -> tuple[np.ndarray, np.ndarray]:
        """(source, local index within that source's infinite stream) for the positions of block b."""
        if self._last is not None and self._last[0] == b:
            return self._last[1], self._last[2]
        while len(self._counts_before) <= b:
            k = len(self._counts_before) - 1
            src = self._choices(k)
            self._counts_before.append(self._counts_before[k] + np.bincount(src, minlength=len(self.p)))
        src = self._choices(b)
        local = np.empty(MIX_BLOCK, dtype=np.int64)
        for s in range(len(self.p)):
            where = np.flatnonzero(src == s)
            local[where] = self._counts_before[b][s] + np.arange(len(where))
        self._last = (b, src, local)
        return src, local

    def _choices(self, b: int) -> np.ndarray:
        if len(self.p) == 1:
            return np.zeros(MIX_BLOCK, dtype=np.int64)
        return np.random.default_rng([self.seed, 0x6D1C, b]).choice(len(self.p), MIX_BLOCK, p=self.p)

    def locate(self, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Vectorised (source, local index) for sorted global positions."""
        src = np.empty(len(positions), dtype=np.int64)
        local = np.empty(len(positions), dtype=np.int64)
        blocks = positions // MIX_BLOCK
        for b in np.unique(blocks):
            sel = np.flatnonzero(blocks == b)
            bs, bl = self._block(int(b))
            off = positions[sel] - b * MIX_BLOCK
            src[sel], local[sel] = bs[off], bl[off]
        return src, local


def initial_state(n_buckets: int) -> dict:
    return {"epoch": 0, "batch": 0, "cursor": 0, "buckets": [[] for _ in range(n_buckets)], "flushed": 0}


class Planner:
    """Yields (refs, epoch, batch index, state after) for one rank; refs are (source, item) pairs."""

    CHUNK = 2048  # rank positions located per vectorised step

    def __init__(self, spec: PlanSpec, sources: list[SourceOrder]):
        if spec.samples_per_epoch < spec.world_size:
            raise ValueError(f"samples_per_epoch={spec.samples_per_epoch} is smaller than world_size="
                             f"{spec.world_size}: every rank needs at least one sample per epoch")
        self.spec, self.sources = spec, sources
        self.mix = MixSchedule(spec.weights, spec.seed)
        self.edges = np.asarray(spec.bucket_edges, dtype=np.float64)
        self.per_rank = spec.samples_per_epoch // spec.world_size
        self.batches_per_epoch = -(-self.per_rank // spec.batch_size)

    def fingerprint(self) -> str:
        doc = {"spec": asdict(self.spec), "sources": [(s.n, round(float(s.durations.sum()), 3)) for s in self.sources]}
        return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:16]

    def duration(self, ref: tuple[int, int]) -> float:
        return float(self.sources[ref[0]].durations[ref[1]])

    def _chunk(self, epoch: int, k0: int, k1: int) -> tuple[list[tuple[int, int]], list[int]]:
        """Refs and duration buckets of rank-stream positions [k0, k1) of `epoch`."""
        w = self.spec.world_size
        g = epoch * self.per_rank * w + self.spec.rank + np.arange(k0, k1, dtype=np.int64) * w
        src, local = self.mix.locate(g)
        items = np.empty(len(g), dtype=np.int64)
        durations = np.empty(len(g), dtype=np.float64)
        for s, order in enumerate(self.sources):
            sel = np.flatnonzero(src == s)
            if len(sel) == 0:
                continue
            passes, offsets = np.divmod(local[sel], order.n)
            for p in np.unique(passes):  # usually one pass, two at a pass boundary
                at = passes == p
                items[sel[at]] = order.pass_order(int(p))[offsets[at]]
            durations[sel] = order.durations[items[sel]]
        last = len(self.edges) - 1
        buckets = np.minimum(np.searchsorted(self.edges, durations, side="left"), last)
        return list(zip(src.tolist(), items.tolist())), buckets.tolist()

    def iterate(self, state: dict) -> Iterator[tuple[list[tuple[int, int]], int, int, dict]]:
        state = copy.deepcopy(state)
        state["buckets"] = [[tuple(r) for r in b] for b in state["buckets"]]
        if len(state["buckets"]) != len(self.edges):
            raise ValueError("planner state has a different number of buckets than bucket_edges")
        bs = self.spec.batch_size
        while True:
            while state["cursor"] < self.per_rank:
                k0 = state["cursor"]
                refs, bucket_ids = self._chunk(state["epoch"], k0, min(k0 + self.CHUNK, self.per_rank))
                for ref, b in zip(refs, bucket_ids):
                    state["cursor"] += 1
                    bucket = state["buckets"][b]
                    bucket.append(ref)
                    if len(bucket) == bs:
                        state["buckets"][b] = []
                        yield from self._emit(bucket, state)
            leftovers = sorted((r for b in state["buckets"] for r in b), key=self.duration)
            while state["flushed"] * bs < len(leftovers):
                chunk = leftovers[state["flushed"] * bs:(state["flushed"] + 1) * bs]
                state["flushed"] += 1
                yield from self._emit(chunk, state)
            state.update(initial_state(len(self.edges)), epoch=state["epoch"] + 1)

    def _emit(self, refs, state):
        epoch, index = state["epoch"], state["batch"]
        state["batch"] += 1
        after = {**state, "buckets": [[list(r) for r in b] for b in state["buckets"]]}
        yield list(refs), epoch, index, after
