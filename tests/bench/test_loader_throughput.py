"""Loader throughput: audio hours decoded per second per worker, ours vs a plain WebDataset pipeline, same run.

Run with `make bench`; figures go to BENCHMARKS.md (section "loader"). Never asserts times: it measures.
"""

from __future__ import annotations

import time

import pytest
import webdataset as wds
from torch.utils.data import DataLoader

from data.audio import decode_audio
from data.check import measure
from data.shards import read_index
from data.stream import StreamConfig, StreamLoader
from tests.bench.report import write_section
from tests.conftest import make_shard_set

pytestmark = pytest.mark.bench
N_SAMPLES = 1200  # ~1.1 h of 0.5-6 s clips
BATCHES = 120


def _plain_webdataset_hours_per_s(shards, workers: int, samples: int) -> float:
    """Reference pipeline: webdataset's own tar streaming + soundfile decode, no plan, no buckets."""

    def decode(sample):
        return decode_audio(sample["flac"]).samples

    pipeline = wds.WebDataset(shards, shardshuffle=False, nodesplitter=wds.split_by_node).map(decode)
    loader = DataLoader(pipeline, batch_size=None, num_workers=workers)
    seconds, t0 = 0.0, time.perf_counter()
    for n, audio in enumerate(loader, start=1):
        seconds += len(audio) / 16000
        if n >= samples:
            break
    return seconds / 3600 / (time.perf_counter() - t0)


def test_loader_throughput(tmp_path_factory):
    root = make_shard_set(tmp_path_factory.mktemp("bench"), N_SAMPLES, max_samples=100)
    index = read_index(root)
    shards = [str(root / s["name"]) for s in index["shards"]]
    rows = []
    for workers in (1, 2):
        cfg = StreamConfig(sources=[{"path": str(root)}], batch_size=8, num_workers=workers, shuffle_buffer=500)
        loader = StreamLoader(cfg)
        report = measure(loader, BATCHES, progress=False)
        t0 = time.perf_counter()
        resumed = StreamLoader(cfg)
        resumed.load_state_dict(loader.state_dict())
        next(iter(resumed))
        resume_s = time.perf_counter() - t0
        plain = _plain_webdataset_hours_per_s(shards, workers, report.samples)
        rows.append((workers, report, plain, resume_s))
    lines = ["| workers | audio h/s (ours) | audio h/s per worker | plain WebDataset h/s | ours / plain | padding | "
             "first batch s | resume to next batch s |", "|---|---|---|---|---|---|---|---|"]
    for workers, r, plain, resume_s in rows:
        lines.append(f"| {workers} | {r.hours_per_second:.3f} | {r.hours_per_second / workers:.3f} | {plain:.3f} | "
                     f"{r.hours_per_second / plain:.2f} | {100 * r.padding_fraction:.1f}% | {r.startup_seconds:.2f} | "
                     f"{resume_s:.2f} |")
    body = (f"{index['samples']} FLAC clips of 0.5-6 s ({index['hours']:.2f} h) in {len(shards)} shards; "
            f"{BATCHES} batches of 8, shuffle buffer 500; ours = data.stream (plan, pread, decode, buckets, "
            f"collate to padded tensors); plain = webdataset tar streaming + the same decode, no batching.\n\n"
            + "\n".join(lines))
    write_section("loader", "Streaming loader throughput", body,
                  "make bench  (pytest -m bench tests/bench/test_loader_throughput.py)")
    assert all(r.samples == BATCHES * 8 for _, r, _, _ in rows)


def test_plan_resume_cost_at_cluster_scale():
    """Resuming deep into a 1M-sample epoch: jump to the saved position vs replaying the plan up to it."""
    import numpy as np

    from data.plan import Planner, PlanSpec, SourceOrder, initial_state

    n, edges = 1_000_000, (2.0, 4.0, 6.0, 8.0, 10.0, 13.0, 16.0, 20.0, 25.0, 30.0, 37.0, 45.0)
    durations = np.random.default_rng(0).gamma(4.0, 3.0, n).clip(0.5, 45)
    rows = []
    for world, rank in ((64, 5), (1, 0)):
        spec = PlanSpec(0, 10, edges, 2000, True, world, rank, n, (1.0,))
        planner = Planner(spec, [SourceOrder([100] * (n // 100), durations, 0, 0, 2000, True)])
        target = int(0.9 * planner.batches_per_epoch)
        t0 = time.perf_counter()
        it = planner.iterate(initial_state(len(edges)))
        for _ in range(target):
            _, _, _, state = next(it)
        replay_s = time.perf_counter() - t0
        expected = next(it)[0]
        t0 = time.perf_counter()
        fresh = Planner(spec, [SourceOrder([100] * (n // 100), durations, 0, 0, 2000, True)])
        got = next(fresh.iterate(state))[0]
        resume_s = time.perf_counter() - t0
        assert got == expected
        rows.append(f"| {rank} of {world} | {target:,} of {planner.batches_per_epoch:,} | {resume_s:.3f} | "
                    f"{replay_s:.3f} | {replay_s / resume_s:.1f} |")
    body = (f"One source of {n:,} samples in {n // 100:,} shards, batch 10, shuffle buffer 2000, state saved at 90% "
            "of the first epoch. Replaying the plan is metadata only; a loader without a plan would have to re-read "
            "and skip the audio of every earlier sample instead.\n\n"
            "| rank | batch resumed at | resume from saved state (s) | replay the plan to it (s) | replay / resume |\n"
            "|---|---|---|---|---|\n" + "\n".join(rows) + "\n\n"
            "Resume cost is one pass-order build (O(source size)) plus the mixing counts, independent of how far "
            "into the run the job was.")
    write_section("plan_resume", "Loader resume cost at cluster scale (plan only)", body,
                  "make bench  (pytest -m bench tests/bench/test_loader_throughput.py)")
