"""WebDataset tar shards: writing, per-shard sample tables, the shard-set index, and random reads.

A shard set is a directory:

    DIR/index.json              shard list with per-shard samples, audio hours, bytes (epoch sizing, mixing weights)
    DIR/shard-000000.tar        plain tar: {key}.flac + {key}.json per sample, readable by `tar` and `webdataset`
    DIR/shard-000000.tar.idx    JSON sample table: key, byte offset/size of each member, duration

The sample tables let the loader plan a whole epoch from metadata (durations for length buckets, counts for
splitting) and read any sample with two `pread`s, so a resumed job jumps to its position instead of replaying the
epoch. Shards from other tools get their tables from `index_shard_set` (a header scan, no audio decode for our own
shards, a header-only read otherwise).
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import tarfile
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

from data.audio import AUDIO_EXTENSIONS, BadSample, audio_info

log = logging.getLogger(__name__)

INDEX_NAME = "index.json"
TABLE_SUFFIX = ".idx"
FORMAT = "speechllm-align-shards"
FORMAT_VERSION = 1


def split_key(member_name: str) -> tuple[str, str]:
    """WebDataset convention: the key is everything before the first dot of the basename (directory kept)."""
    directory, _, base = member_name.rpartition("/")
    stem, dot, ext = base.partition(".")
    key = f"{directory}/{stem}" if directory else stem
    return key, ext if dot else ""


@dataclass
class SampleTable:
    """Columnar per-shard metadata: one entry per complete sample (audio + json members)."""

    shard: str
    bytes: int
    keys: list[str]
    audio_ext: list[str]
    audio_offset: list[int]
    audio_size: list[int]
    json_offset: list[int]
    json_size: list[int]
    duration: list[float]

    def __len__(self) -> int:
        return len(self.keys)

    def to_json(self) -> dict:
        return {"version": FORMAT_VERSION, **self.__dict__}

    @classmethod
    def from_json(cls, d: dict) -> SampleTable:
        d = dict(d)
        d.pop("version", None)
        return cls(**d)


def _write_json_atomic(path: Path, obj) -> None:
    # A temporary name per process: array tasks may write the same file (plan.json, index.json) at the same time.
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(obj, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def scan_tar(path: Path) -> tuple[SampleTable, list[str]]:
    """Build the sample table of one tar by reading its headers.

    Truncated or corrupt tails end the scan: samples whose bytes are not all present are left out and reported.

    Returns:
        (table, problems): problems are human-readable notes on what was left out and why.
    """
    size = path.stat().st_size
    members: OrderedDict[str, dict[str, tuple[int, int]]] = OrderedDict()
    problems: list[str] = []
    with open(path, "rb") as fh:
        try:
            tf = tarfile.open(fileobj=fh, mode="r:")
        except tarfile.TarError as exc:
            return _empty_table(path, size), [f"{path}: not a readable tar ({exc})"]
        while True:
            try:
                info = tf.next()
            except (tarfile.TarError, EOFError, OSError) as exc:
                problems.append(f"{path}: tar scan stopped at byte {fh.tell()} ({exc}); truncated or corrupt shard")
                break
            if info is None:
                break
            if not info.isfile():
                continue
            if info.offset_data + info.size > size:
                problems.append(f"{path}: member {info.name} extends past the end of the file (truncated shard)")
                break
            key, ext = split_key(info.name)
            members.setdefault(key, {})[ext] = (info.offset_data, info.size)
    table = _empty_table(path, size)
    with open(path, "rb") as fh:
        for key, exts in members.items():
            audio_ext = next((e for e in AUDIO_EXTENSIONS if e in exts), None)
            if audio_ext is None or "json" not in exts:
                problems.append(f"{path}: sample {key} lacks an audio or a json member ({sorted(exts)})")
                continue
            (a_off, a_size), (j_off, j_size) = exts[audio_ext], exts["json"]
            duration = _duration_of(fh, a_off, a_size, j_off, j_size)
            if duration is None:
                problems.append(f"{path}: sample {key} has unreadable audio header and no duration field")
                duration = 0.0  # kept: the loader will skip and count it when it fails to decode
            table.keys.append(key)
            table.audio_ext.append(audio_ext)
            table.audio_offset.append(a_off)
            table.audio_size.append(a_size)
            table.json_offset.append(j_off)
            table.json_size.append(j_size)
            table.duration.append(round(float(duration), 4))
    return table, problems


def _empty_table(path: Path, size: int) -> SampleTable:
    return SampleTable(path.name, size, [], [], [], [], [], [], [])


def _duration_of(fh, a_off: int, a_size: int, j_off: int, j_size: int) -> float | None:
    """Duration from the json's "duration" field (our shards), else from the audio header."""
    fh.seek(j_off)
    try:
        meta = json.loads(fh.read(j_size))
        if isinstance(meta, dict) and isinstance(meta.get("duration"), (int, float)):
            return float(meta["duration"])
    except (ValueError, RecursionError):  # RecursionError: absurdly deep nesting; the loader drops it as corrupt_json
        pass
    fh.seek(a_off)
    try:
        return audio_info(fh.read(a_size))[0]
    except BadSample:
        return None


class ShardWriter:
    """Writes samples into size-bounded tar shards, each with its sample table, then the set's index.json.

    Shards are written under a temporary name and renamed when complete, so a killed prepare job never leaves a
    half-written shard that looks valid. Tar headers are fixed (mtime 0, uid 0) so equal input gives equal bytes.
    """

    def __init__(self, out_dir: str | Path, max_bytes: int = 500 * 10**6, max_samples: int = 0, prefix: str = "shard",
                 first_number: int = 0):
        self.out_dir = Path(out_dir)
        self.first_number = first_number  # parallel writers of one set number their shards apart
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.max_bytes = max_bytes
        self.max_samples = max_samples
        self.prefix = prefix
        self.shards: list[dict] = []
        self._tar: tarfile.TarFile | None = None
        self._tmp: Path | None = None
        self._count = 0
        self._seconds = 0.0

    def _open(self) -> None:
        name = f"{self.prefix}-{self.first_number + len(self.shards):06d}.tar"
        self._tmp = self.out_dir / (name + ".partial")
        self._tar = tarfile.open(self._tmp, "w", format=tarfile.PAX_FORMAT)
        self._count, self._seconds = 0, 0.0

    def _add(self, name: str, payload: bytes) -> None:
        info = tarfile.TarInfo(name)
        info.size, info.mtime, info.mode, info.uid, info.gid = len(payload), 0, 0o644, 0, 0
        self._tar.addfile(info, io.BytesIO(payload))

    def write(self, key: str, audio: bytes, audio_ext: str, meta: dict, duration: float) -> None:
        """Append one sample; `key` must be dot-free and unique within the set."""
        if "." in key or "/" in key or not key:
            raise ValueError(f"invalid sample key {key!r}: keys must be non-empty and contain no '.' or '/'")
        if self._tar is not None and (
            self._tar.offset >= self.max_bytes or (self.max_samples and self._count >= self.max_samples)
        ):
            self._close_shard()
        if self._tar is None:
            self._open()
        self._add(f"{key}.{audio_ext}", audio)
        self._add(f"{key}.json", json.dumps(meta, ensure_ascii=False, sort_keys=True).encode("utf-8"))
        self._count += 1
        self._seconds += duration

    def _close_shard(self) -> None:
        self._tar.close()
        final = self._tmp.with_suffix("")  # drop ".partial"
        os.replace(self._tmp, final)
        table, problems = scan_tar(final)
        if problems or len(table) != self._count:
            raise RuntimeError(f"shard {final} failed verification after writing: {problems}")
        _write_json_atomic(final.with_name(final.name + TABLE_SUFFIX), table.to_json())
        self.shards.append(_shard_entry(table))
        self._tar = None

    def finish(self) -> list[dict]:
        """Finish the last shard; returns the index entries of every shard written (no index.json)."""
        if self._tar is not None:
            self._close_shard()
        return self.shards

    def close(self, extra: dict | None = None) -> dict:
        """Finish the last shard and write index.json (atomically); returns the index."""
        return write_index(self.out_dir, self.finish(), extra)


def _shard_entry(table: SampleTable) -> dict:
    return {
        "name": table.shard,
        "samples": len(table),
        "hours": round(sum(table.duration) / 3600, 6),
        "bytes": table.bytes,
    }


def write_index(out_dir: Path, shards: list[dict], extra: dict | None = None) -> dict:
    index = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "samples": sum(s["samples"] for s in shards),
        "hours": round(sum(s["hours"] for s in shards), 6),
        "shards": shards,
        **(extra or {}),
    }
    _write_json_atomic(Path(out_dir) / INDEX_NAME, index)
    return index


def index_shard_set(directory: str | Path, pattern: str = "*.tar") -> dict:
    """Create sample tables and index.json for tars written by other tools (e.g. webdataset's TarWriter)."""
    directory = Path(directory)
    tars = sorted(directory.glob(pattern))
    if not tars:
        raise FileNotFoundError(f"no shards matching {pattern!r} in {directory}")
    shards = []
    for tar in tars:
        table, problems = scan_tar(tar)
        for p in problems:
            log.warning("%s", p)
        _write_json_atomic(tar.with_name(tar.name + TABLE_SUFFIX), table.to_json())
        shards.append(_shard_entry(table))
    return write_index(directory, shards, {"indexed_by": "data.prepare index"})


def read_index(directory: str | Path) -> dict:
    """Load DIR/index.json with a message that says how to make one when it is missing."""
    path = Path(directory) / INDEX_NAME
    if not path.exists():
        raise FileNotFoundError(
            f"{path} not found: build shards with `python -m data.prepare manifest --manifest M.jsonl --out "
            f"{directory}`, or index existing tars with `python -m data.prepare index {directory}`"
        )
    index = json.loads(path.read_text(encoding="utf-8"))
    if index.get("format") != FORMAT:
        raise ValueError(f"{path} is not a {FORMAT} index (format={index.get('format')!r})")
    return index


def load_table(directory: Path, shard: dict) -> tuple[SampleTable | None, list[str]]:
    """The sample table of a listed shard, checked against the file on disk.

    Returns (None, [why]) for a missing shard; a table limited to the complete samples for a truncated one.
    """
    tar = directory / shard["name"]
    if not tar.exists():
        return None, [f"shard {tar} is missing ({shard['samples']} samples lost); restore it or re-run data.prepare"]
    table_path = tar.with_name(tar.name + TABLE_SUFFIX)
    size = tar.stat().st_size
    changed = []
    if table_path.exists():
        table = SampleTable.from_json(json.loads(table_path.read_text(encoding="utf-8")))
        if size == table.bytes and len(table) == shard["samples"]:
            return table, []
        if size > table.bytes or len(table) != shard["samples"]:  # (a shorter tar is the truncation below)
            # A stale table would read other samples' bytes, possibly pairing one sample's audio with another's
            # transcript: the tar is rescanned instead.
            changed = [f"shard {tar} does not match its sample table or index.json ({size} bytes on disk, "
                       f"{table.bytes} in the table; {len(table)} samples in the table, {shard['samples']} in "
                       f"index.json): rescanned; re-run `python -m data.prepare index` to refresh them"]
    # No table, a changed tar, or one shorter than when it was indexed: rescan what is really there.
    table, problems = scan_tar(tar)
    lost = shard["samples"] - len(table)
    if lost > 0:
        problems.insert(0, f"shard {tar} is truncated: {lost} of {shard['samples']} samples unreadable")
    elif table_path.exists() and not changed:  # shorter than indexed, yet whole: another tar took its place
        changed = [f"shard {tar} does not match its sample table ({size} bytes on disk, {shard['samples']} samples "
                   f"listed): rescanned; re-run `python -m data.prepare index` to refresh it"]
    return table, changed + problems


class ShardReader:
    """Reads sample members by byte range; keeps a small LRU of open file descriptors (one reader per worker)."""

    def __init__(self, max_open: int = 32):
        self.max_open = max_open
        self._fds: OrderedDict[str, int] = OrderedDict()

    def _fd(self, path: str) -> int:
        fd = self._fds.pop(path, None)
        if fd is None:
            fd = os.open(path, os.O_RDONLY)
            if len(self._fds) >= self.max_open:
                os.close(self._fds.popitem(last=False)[1])
        self._fds[path] = fd
        return fd

    def read(self, path: str, offset: int, size: int) -> bytes:
        """Exactly `size` bytes at `offset`. Raises BadSample for missing or truncated shards."""
        try:
            data = os.pread(self._fd(path), size, offset)
        except FileNotFoundError:
            raise BadSample("missing_shard", f"shard {path} disappeared") from None
        except OSError as exc:
            raise BadSample("unreadable_shard", f"cannot read {path}: {exc}") from None
        if len(data) != size:
            raise BadSample("truncated_shard", f"{path} ends before byte {offset + size}")
        return data

    def close(self) -> None:
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()

    def __del__(self):
        with contextlib.suppress(Exception):
            self.close()
