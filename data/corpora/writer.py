"""Corpus -> shard set, in parallel and resumable: a local process pool, or the tasks of a Slurm job array.

Every task scans the corpus metadata itself (cheap, deterministic), drops duplicate keys, shuffles the items with
a fixed seed (so each shard mixes speakers and lengths) and cuts them into parts of ``utts_per_shard`` items. Part
``i`` becomes ``shard-{i:06d}.tar`` and is owned by task ``i % num_tasks``; the tasks need no communication. Within
a part, items are read and stored in source order (file, offset / row), so a long talk or a parquet row group is
read once per part rather than once per item; the loader's shuffle buffer mixes them again. A part
is finished when its marker ``parts/part-{i:06d}.json`` (its shard entry and drop counts) exists and its tar has
the recorded size; finished parts are never rewritten, so a killed or requeued job only redoes what is missing.
Whichever task finds every part finished writes ``index.json`` and ``report.json``: utterances, hours per split,
and dropped items by reason with the first few named.

The plan is pinned in ``plan.json`` (a fingerprint of the ordered keys): rerunning over an output directory built
from different input, or with different part sizes, stops with a message instead of mixing two plans.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import random
import shutil
import time
from collections import Counter, defaultdict
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

from tqdm import tqdm

from data.audio import BadSample
from data.corpora.common import Corpus, Drop, Item, load_item_audio
from data.shards import ShardWriter, _write_json_atomic, write_index

log = logging.getLogger("data.prepare")

PLAN_NAME = "plan.json"
REPORT_NAME = "report.json"
PARTS_DIR = "parts"
NAMED_DROPS = 5
# Drops decided by the corpus definition (garbage tags, length filters), not by broken files: they do not count
# against --max-bad-fraction.
FILTER_REASONS = {"too_long", "garbage_utterance", "not_in_subset"}
# How this task ran, not what was imported: left out of report.json, which any task may write.
RUN_OPTIONS = {"command", "func", "corpus", "task_index", "num_tasks", "workers", "overwrite"}


def plan_parts(corpus: Corpus, args: argparse.Namespace, utts_per_shard: int, seed: int
               ) -> tuple[list[list[Item]], list[Drop]]:
    """The corpus's items cut into parts (shuffled with ``seed``), and the drops found while scanning."""
    items: dict[str, Item] = {}
    drops: list[Drop] = []
    for entry in corpus.scan(args):
        if isinstance(entry, Drop):
            drops.append(entry)
        elif entry.key in items:
            drops.append(Drop(entry.key, "duplicate_id", f"key {entry.key!r} occurs twice; the first is kept"))
        else:
            items[entry.key] = entry
    ordered = [items[k] for k in sorted(items)]
    random.Random(seed).shuffle(ordered)
    return [ordered[i:i + utts_per_shard] for i in range(0, len(ordered), utts_per_shard)], drops


def write_corpus(corpus: Corpus, args: argparse.Namespace, out: Path, *, utts_per_shard: int = 2000,
                 workers: int = 1, seed: int = 0, task_index: int = 0, num_tasks: int = 1,
                 max_duration: float = 0.0, max_bad_fraction: float = 0.05, overwrite: bool = False) -> dict | None:
    """Write this task's parts of ``corpus``; returns the index when every part is finished, else None."""
    if not 0 <= task_index < num_tasks:
        raise ValueError(f"task index {task_index} is not in [0, {num_tasks})")
    if utts_per_shard < 1:
        raise ValueError(f"utts_per_shard must be >= 1, got {utts_per_shard}")
    out = Path(out)
    if overwrite and out.exists():
        if num_tasks > 1:
            raise ValueError("--overwrite with several array tasks would let them delete each other's shards; "
                             f"remove {out} once before submitting the array instead")
        shutil.rmtree(out)
    started = time.perf_counter()
    parts, scan_drops = plan_parts(corpus, args, utts_per_shard, seed)
    if not parts:
        raise RuntimeError(f"{corpus.name}: no usable utterances under {args.root} ({_counts(scan_drops)} dropped); "
                           f"check --root and the layout in `python -m data.prepare {corpus.name} --help`")
    (out / PARTS_DIR).mkdir(parents=True, exist_ok=True)
    _pin_plan(out, corpus, parts, utts_per_shard, seed)
    mine = [i for i in range(task_index, len(parts), num_tasks) if not _part_done(out, i)]
    log.info("%s: %d utterances in %d parts (%d scan drops); task %d/%d writes %d unfinished parts with %d workers",
             corpus.name, sum(map(len, parts)), len(parts), len(scan_drops), task_index, num_tasks, len(mine),
             workers)
    seconds = 0.0
    bar = tqdm(total=sum(len(parts[i]) for i in mine), desc=f"{corpus.name} shards", unit="utt")
    if workers <= 1:
        for i in mine:
            seconds += _finish(bar, write_part(out, i, parts[i], max_duration))
    else:
        with ProcessPoolExecutor(workers) as pool:
            futures = [pool.submit(write_part, out, i, parts[i], max_duration) for i in mine]
            for future in as_completed(futures):
                seconds += _finish(bar, future.result())
    bar.close()
    wall = time.perf_counter() - started
    log.info("%s: wrote %.3f h of audio in %.1f s (%.2f audio h/s)", corpus.name, seconds / 3600, wall,
             seconds / 3600 / max(wall, 1e-9))
    if not all(_part_done(out, i) for i in range(len(parts))):
        log.info("%s: parts of other array tasks are unfinished; the task that finishes last writes index.json",
                 corpus.name)
        return None
    return finalize(out, corpus, args, len(parts), scan_drops, max_bad_fraction)


def write_part(out: Path, number: int, items: list[Item], max_duration: float = 0.0) -> dict:
    """Read, verify and encode one part's audio into ``shard-{number:06d}.tar``; writes and returns its marker."""
    writer = ShardWriter(out, max_bytes=2**62, first_number=number)
    drops: dict[str, list[list[str]]] = defaultdict(list)
    by_split: dict[str, list[float]] = defaultdict(lambda: [0, 0.0])
    fields: set[str] = set()
    for item in sorted(items, key=_source_order):
        try:
            audio, duration = load_item_audio(item.audio)
            if max_duration and duration > max_duration:
                raise BadSample("too_long", f"{duration:.1f} s > max_duration {max_duration:g} s")
        except BadSample as exc:
            drops[exc.reason].append([item.key, exc.detail])
            continue
        meta = {**item.meta, "duration": round(duration, 3)}
        try:
            json.dumps(meta, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate from an invalid escape in the corpus metadata
            drops["bad_text"].append([item.key, "the metadata holds a lone surrogate (an invalid \\ud800 escape)"])
            continue
        writer.write(item.key, audio, "flac", meta, duration)
        fields.update(meta)
        split = by_split[str(item.meta.get("split", "all"))]
        split[0] += 1
        split[1] += duration
    shards = writer.finish()
    marker = {"part": number, "shard": shards[0] if shards else None, "dropped": dict(drops),
              "by_split": {k: {"samples": v[0], "seconds": round(v[1], 3)} for k, v in by_split.items()},
              "fields": sorted(fields)}
    _write_json_atomic(_marker(out, number), marker)  # last: the part counts as finished only now
    return marker


def finalize(out: Path, corpus: Corpus, args: argparse.Namespace, n_parts: int, scan_drops: list[Drop],
             max_bad_fraction: float) -> dict:
    """Merge the part markers into index.json and report.json; an error if too many items were unreadable."""
    markers = [json.loads(_marker(out, i).read_text(encoding="utf-8")) for i in range(n_parts)]
    dropped: dict[str, list[list[str]]] = defaultdict(list)
    for d in scan_drops:
        dropped[d.reason].append([d.key, d.detail])
    by_split: dict[str, Counter] = defaultdict(Counter)
    for m in markers:
        for reason, entries in m["dropped"].items():
            dropped[reason].extend(entries)
        for split, v in m["by_split"].items():
            by_split[split].update(v)
    shards = [m["shard"] for m in markers if m["shard"]]
    samples = sum(s["samples"] for s in shards)
    bad = sum(len(v) for r, v in dropped.items() if r not in FILTER_REASONS)
    report = {
        "corpus": corpus.name, "root": str(args.root), "samples": samples,
        "hours": round(sum(s["hours"] for s in shards), 6),
        "splits": {k: {"samples": int(v["samples"]), "hours": round(v["seconds"] / 3600, 6)}
                   for k, v in sorted(by_split.items())},
        "dropped": {r: len(v) for r, v in sorted(dropped.items())},
        "dropped_examples": {r: dict(v[:NAMED_DROPS]) for r, v in sorted(dropped.items())},
        "options": {k: (str(v) if isinstance(v, Path) else v) for k, v in sorted(vars(args).items())
                    if k not in RUN_OPTIONS and _jsonable(v)},
    }
    _write_json_atomic(out / REPORT_NAME, report)
    _log_report(report)
    if bad > max_bad_fraction * (samples + bad):
        raise RuntimeError(f"{corpus.name}: {bad} of {samples + bad} utterances are unusable "
                           f"({ {r: n for r, n in report['dropped'].items() if r not in FILTER_REASONS} }), above "
                           f"--max-bad-fraction={max_bad_fraction}; see {out / REPORT_NAME} for the first offenders "
                           f"(a wrong --root or an incomplete download?); index.json was not written")
    fields = sorted({f for m in markers for f in m["fields"]})
    return write_index(out, shards, {"created_by": f"data.prepare {corpus.name}", "corpus": corpus.name,
                                     "skipped": report["dropped"], "fields": fields, "report": REPORT_NAME})


def _source_order(item: Item) -> tuple[str, float]:
    """Where an item's audio sits: a part reads its items in this order, so segments of one talk or rows of one
    parquet row group are read together (the plan's shuffle already decided which part each item is in)."""
    ref = item.audio
    if ref.segments:
        return str(ref.segments[0].path), ref.segments[0].start
    if ref.table is not None:
        return ref.table[0], float(ref.table[1])
    return str(ref.path or ref.command or ""), 0.0


def _finish(bar: tqdm, marker: dict) -> float:
    shard = marker["shard"]
    bar.update((shard["samples"] if shard else 0) + sum(len(v) for v in marker["dropped"].values()))
    return shard["hours"] * 3600 if shard else 0.0


def _marker(out: Path, number: int) -> Path:
    return out / PARTS_DIR / f"part-{number:06d}.json"


def _part_done(out: Path, number: int) -> bool:
    path = _marker(out, number)
    if not path.exists():
        return False
    shard = json.loads(path.read_text(encoding="utf-8"))["shard"]
    if shard is None:
        return True
    tar = out / shard["name"]
    return tar.exists() and os.path.getsize(tar) == shard["bytes"]


def _pin_plan(out: Path, corpus: Corpus, parts: list[list[Item]], utts_per_shard: int, seed: int) -> None:
    digest = hashlib.sha256()
    for part in parts:
        digest.update("\n".join(item.key for item in part).encode("utf-8") + b"\f")
    plan = {"corpus": corpus.name, "parts": len(parts), "utterances": sum(map(len, parts)),
            "utts_per_shard": utts_per_shard, "seed": seed, "fingerprint": digest.hexdigest()}
    path = out / PLAN_NAME
    if path.exists():
        old = json.loads(path.read_text(encoding="utf-8"))
        if old != plan:
            raise FileExistsError(f"{out} holds a shard set planned from other input or options ({old}; now {plan}); "
                                  f"pass --overwrite to rebuild it, or choose another --out")
        return
    _write_json_atomic(path, plan)


def _counts(drops: list[Drop]) -> dict:
    return dict(Counter(d.reason for d in drops))


def _jsonable(value) -> bool:
    return isinstance(value, (str, int, float, bool, list, type(None), Path))


def _log_report(report: dict) -> None:
    log.info("%s: %d utterances, %.3f h", report["corpus"], report["samples"], report["hours"])
    for split, v in report["splits"].items():
        log.info("  split %-20s %8d utterances %10.3f h", split, v["samples"], v["hours"])
    for reason, n in report["dropped"].items():
        example = next(iter(report["dropped_examples"][reason].items()), ("", ""))
        log.info("  dropped %-18s %8d  e.g. %s: %s", reason, n, example[0], example[1])
