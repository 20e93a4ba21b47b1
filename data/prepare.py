"""Build WebDataset shard sets.

    python -m data.prepare <corpus> --root DIR --out DIR [--workers N] [--utts-per-shard N] [corpus options]
    python -m data.prepare manifest --manifest M.jsonl --out DIR [--max-shard-size 500MB] [--max-shard-samples N]
    python -m data.prepare index DIR        # sample tables + index.json for tars made by other tools

`<corpus>` is one of the importers in data/corpora/ (librispeech, mustc, gigaspeech, ...; `--help` lists them): it
reads the corpus in its published layout and writes shards in parallel, resumably, with a report of what was
dropped and why (data/corpora/writer.py). Under a Slurm job array each task writes its share of the parts.

Manifest lines are JSON objects with at least `audio` (path, relative to the manifest's directory or absolute)
and `text`; `id` names the sample (default: the audio file's stem). Every other field (lang, duration, task
fields such as translations or question/answer) is copied verbatim into the sample's `.json` member. FLAC audio
is stored byte for byte; other formats are losslessly re-encoded to FLAC at their own rate. Bad lines are skipped,
counted and named in warnings; more than --max-bad-fraction of them stops the job.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import re
import shutil
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tqdm import tqdm

from core.errors import entry_point, user_errors
from data.audio import BadSample, decode_audio, to_flac
from data.corpora import registry
from data.corpora.writer import write_corpus
from data.shards import INDEX_NAME, ShardWriter, index_shard_set

log = logging.getLogger("data.prepare")
_SIZE_UNITS = {"": 1, "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "KIB": 2**10, "MIB": 2**20, "GIB": 2**30}
MAX_NAMED_WARNINGS = 20


def parse_size(text: str) -> int:
    """'500MB' -> 500_000_000; '2GiB' -> 2 * 2**30; '1000' -> 1000 bytes."""
    m = re.fullmatch(r"\s*([0-9.]+)\s*([A-Za-z]*)\s*", str(text))
    if not m or m.group(2).upper() not in _SIZE_UNITS:
        raise argparse.ArgumentTypeError(f"cannot parse size {text!r}; use e.g. 500MB, 2GB, 64MiB")
    return int(float(m.group(1)) * _SIZE_UNITS[m.group(2).upper()])


def sample_key(record: dict, line_no: int) -> str:
    """The WebDataset key: the record's id (or audio stem) with '.' and '/' made safe."""
    raw = record.get("id") or Path(str(record.get("audio", f"line{line_no}"))).stem
    return re.sub(r"[./\\\s]", "_", str(raw))


def load_audio_for_shard(path: Path) -> tuple[bytes, str, float]:
    """Read and fully verify one audio file; returns (bytes to store, extension, duration seconds)."""
    if not path.is_file():
        raise BadSample("missing_audio", f"audio file {path} does not exist")
    data = path.read_bytes()
    decoded = decode_audio(data, target_rate=None)  # full decode: catches truncated bodies, NaNs, bad rates
    if path.suffix.lower() != ".flac":
        data = to_flac(data)
    return data, "flac", decoded.seconds


def _check_record(line: str, line_no: int, base: Path):
    """Parse + verify one manifest line. Returns (key, record, audio bytes, ext, duration) or raises BadSample."""
    try:
        record = json.loads(line)
    except ValueError as exc:
        raise BadSample("bad_manifest_line", f"not JSON ({exc})") from None
    if not isinstance(record, dict) or "audio" not in record:
        raise BadSample("bad_manifest_line", "a manifest line must be an object with an 'audio' field")
    text = record.get("text")
    if not isinstance(text, str) or not text.strip():
        raise BadSample("empty_transcript", f"text is {text!r}")
    try:
        json.dumps(record, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:  # a "\ud800" escape parses to a lone surrogate, which no shard member can hold
        raise BadSample("bad_manifest_line", "a field holds a lone surrogate (an invalid \\ud800 escape)") from None
    path = Path(record["audio"])
    audio, ext, duration = load_audio_for_shard(path if path.is_absolute() else base / path)
    return sample_key(record, line_no), record, audio, ext, duration


def build_from_manifest(
    manifest: Path,
    out: Path,
    max_bytes: int = 500 * 10**6,
    max_samples: int = 0,
    shuffle_seed: int | None = 0,
    max_bad_fraction: float = 0.05,
    workers: int = 4,
    overwrite: bool = False,
) -> dict:
    """Write `out/` shards + index.json from a JSONL manifest; returns the index."""
    manifest, out = Path(manifest), Path(out)
    if not manifest.is_file():
        raise FileNotFoundError(f"manifest {manifest} not found")
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise FileExistsError(f"{out} is not empty; pass --overwrite to replace its shard set")
        shutil.rmtree(out)
    # Newlines only: str.splitlines would also break at U+2028/U+0085 inside a raw UTF-8 transcript.
    lines = [(i + 1, ln) for i, ln in enumerate(manifest.read_text(encoding="utf-8").split("\n")) if ln.strip()]
    if not lines:
        raise ValueError(f"manifest {manifest} has no records")
    if shuffle_seed is not None:
        # Shuffled once here so that every shard mixes speakers and lengths; the loader's shuffle buffer then
        # only has to decorrelate neighbours.
        random.Random(shuffle_seed).shuffle(lines)
    writer = ShardWriter(out, max_bytes=max_bytes, max_samples=max_samples)
    bad: Counter[str] = Counter()
    seen: set[str] = set()
    fields: set[str] = set()
    started = time.perf_counter()
    with ThreadPoolExecutor(max(1, workers)) as pool:
        results = _bounded_map(pool, lambda item: _safe_check(item, manifest.parent), lines, chunk=64 * workers)
        for (line_no, _), result in tqdm(zip(lines, results), total=len(lines), desc="shards", unit="utt"):
            if isinstance(result, BadSample):
                _count_bad(bad, result, f"{manifest}:{line_no}")
                continue
            key, record, audio, ext, duration = result
            if key in seen:
                _count_bad(bad, BadSample("duplicate_id", f"key {key!r} already written"), f"{manifest}:{line_no}")
                continue
            seen.add(key)
            meta = {k: v for k, v in record.items() if k != "audio"}
            meta.setdefault("duration", round(duration, 3))
            fields.update(meta)
            writer.write(key, audio, ext, meta, duration)
            n_bad = sum(bad.values())
            if n_bad > max_bad_fraction * len(lines):
                raise RuntimeError(_too_bad_message(bad, len(lines), max_bad_fraction, manifest))
    if not seen:
        raise RuntimeError(_too_bad_message(bad, len(lines), max_bad_fraction, manifest))
    index = writer.close({"created_by": "data.prepare manifest", "manifest": str(manifest),
                          "skipped": dict(bad), "fields": sorted(fields)})
    log.info("%d samples, %.3f h in %d shards -> %s (%d skipped) in %.1f s", index["samples"], index["hours"],
             len(index["shards"]), out, sum(bad.values()), time.perf_counter() - started)
    return index


def _bounded_map(pool, fn, items, chunk):
    """Ordered parallel map that holds at most `chunk` results (audio bytes) in memory at a time."""
    for start in range(0, len(items), chunk):
        yield from pool.map(fn, items[start:start + chunk])


def _safe_check(item, base):
    line_no, line = item
    try:
        return _check_record(line, line_no, base)
    except BadSample as exc:
        return exc


def _count_bad(bad: Counter, exc: BadSample, where: str) -> None:
    bad[exc.reason] += 1
    if bad[exc.reason] <= MAX_NAMED_WARNINGS:
        log.warning("skipping %s: %s", where, exc)
    elif bad[exc.reason] == MAX_NAMED_WARNINGS + 1:
        log.warning("more %s samples are being skipped; the total is in index.json under 'skipped'", exc.reason)


def _too_bad_message(bad: Counter, total: int, limit: float, manifest: Path) -> str:
    return (f"{sum(bad.values())} of {total} manifest lines in {manifest} are unusable ({dict(bad)}), above "
            f"--max-bad-fraction={limit}; fix the manifest (see the warnings above for the first offenders) "
            f"or raise the threshold")


def build_parser() -> tuple[argparse.ArgumentParser, dict]:
    """The command line: manifest, index, and one subcommand per registered corpus importer."""
    parser = argparse.ArgumentParser(prog="python -m data.prepare", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    m = sub.add_parser("manifest", help="JSONL manifest -> shards")
    m.add_argument("--manifest", type=Path, required=True)
    m.add_argument("--out", type=Path, required=True)
    m.add_argument("--max-shard-size", type=parse_size, default=parse_size("500MB"))
    m.add_argument("--max-shard-samples", type=int, default=0, help="0 = no limit")
    m.add_argument("--shuffle-seed", type=int, default=0)
    m.add_argument("--no-shuffle", action="store_true", help="keep manifest order")
    m.add_argument("--max-bad-fraction", type=float, default=0.05)
    m.add_argument("--workers", type=int, default=4, help="reader threads")
    m.add_argument("--overwrite", action="store_true")
    ix = sub.add_parser("index", help="write sample tables + index.json for existing tars")
    ix.add_argument("dir", type=Path)
    ix.add_argument("--pattern", default="*.tar")
    corpora = registry()
    for corpus in corpora.values():
        _add_corpus_parser(sub, corpus)
    return parser, corpora


@entry_point
def main(argv=None) -> int:
    parser, corpora = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    # The importers and the writer report unusable input (a malformed corpus file, too many bad items, an --out
    # that holds other shards) with ValueError / RuntimeError / FileExistsError naming the file and the fix.
    with user_errors(ValueError, RuntimeError):
        if args.command in corpora:
            write_corpus(corpora[args.command], args, args.out, utts_per_shard=args.utts_per_shard,
                         workers=args.workers, seed=args.seed, task_index=args.task_index, num_tasks=args.num_tasks,
                         max_duration=args.max_duration, max_bad_fraction=args.max_bad_fraction,
                         overwrite=args.overwrite)
        elif args.command == "manifest":
            build_from_manifest(args.manifest, args.out, args.max_shard_size, args.max_shard_samples,
                                None if args.no_shuffle else args.shuffle_seed, args.max_bad_fraction,
                                args.workers, args.overwrite)
        else:
            index = index_shard_set(args.dir, args.pattern)
            log.info("indexed %d samples, %.3f h in %d shards -> %s", index["samples"], index["hours"],
                     len(index["shards"]), args.dir / INDEX_NAME)
    return 0


def _array_position() -> tuple[int, int]:
    """(task index, task count) of this Slurm array task, (0, 1) outside an array."""
    if "SLURM_ARRAY_TASK_ID" not in os.environ:
        return 0, 1
    first = int(os.environ.get("SLURM_ARRAY_TASK_MIN", 0))
    return int(os.environ["SLURM_ARRAY_TASK_ID"]) - first, int(os.environ.get("SLURM_ARRAY_TASK_COUNT", 1))


def _add_corpus_parser(sub, corpus) -> None:
    task_index, num_tasks = _array_position()
    p = sub.add_parser(corpus.name, help=corpus.help, description=corpus.help)
    p.add_argument("--root", type=Path, required=True, help="the corpus as downloaded and unpacked")
    p.add_argument("--out", type=Path, required=True, help="shard set directory")
    p.add_argument("--utts-per-shard", type=int, default=2000, help="utterances per shard (one part each)")
    p.add_argument("--workers", type=int, default=int(os.environ.get("SLURM_CPUS_PER_TASK", min(8, os.cpu_count()))),
                   help="processes writing parts in parallel")
    p.add_argument("--seed", type=int, default=0, help="seed of the shuffle that mixes speakers across shards")
    p.add_argument("--task-index", type=int, default=task_index, help="this task's index (Slurm array: automatic)")
    p.add_argument("--num-tasks", type=int, default=num_tasks, help="tasks sharing the parts (Slurm array: automatic)")
    p.add_argument("--max-duration", type=float, default=0.0, help="drop longer utterances (seconds; 0: keep all)")
    p.add_argument("--max-bad-fraction", type=float, default=0.05,
                   help="fail (no index.json) when more unreadable items than this")
    p.add_argument("--overwrite", action="store_true", help="delete --out first (single task only)")
    corpus.add_arguments(p)
    p.set_defaults(**corpus.defaults)


if __name__ == "__main__":
    sys.exit(main())
