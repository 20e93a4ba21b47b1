"""What every corpus importer produces, and how an item's audio becomes a shard member.

An importer reads a corpus's published on-disk layout (metadata only: transcript files, YAML offsets, JSON, parquet
columns) and yields one :class:`Item` per usable utterance or one :class:`Drop` per unusable one. Scanning is cheap
and deterministic, so every Slurm array task can scan on its own and agree on the same plan
(:mod:`data.corpora.writer`); audio is only read when a shard part is written, in a worker process, through
:func:`load_item_audio`.

Item metadata uses the shard schema of the synthetic corpus (``data/synth/``): ``text`` (transcript), ``lang``,
``task`` (asr/st/sqa), ``translations`` {lang: text} for ST, ``question``/``answer``/``answer_start``/``answers`` for
SQA (one item per question, the passage audio repeated), ``labels`` {attribute: value} for paralinguistic
questions, plus provenance (``corpus``, ``split``, ``speaker``, ...). ``duration`` is added by the writer from the
decoded audio.
"""

from __future__ import annotations

import argparse
import io
import re
import shlex
import subprocess
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf

from data.audio import (
    FLAC_MAX_CHANNELS,
    MAX_SAMPLE_RATE,
    MIN_SAMPLE_RATE,
    TARGET_SAMPLE_RATE,
    BadSample,
    resample,
    wav_truncation,
)

# Lossy codecs decode at their own internal rate (Opus always at 48 kHz); their content is no wider than the 16 kHz
# the encoders consume, so their segments are stored at 16 kHz instead of tripling the shard size.
LOSSY_SUFFIXES = (".opus", ".ogg", ".mp3")


@dataclass(frozen=True)
class Segment:
    """A span of one audio file; ``end`` None means to the end of the file."""

    path: Path
    start: float = 0.0
    end: float | None = None


@dataclass(frozen=True)
class AudioRef:
    """Where an item's audio is. Exactly one of the fields is set (picklable: read in worker processes)."""

    path: Path | None = None
    """A whole file; FLAC is stored byte for byte, anything else re-encoded to FLAC."""
    segments: tuple[Segment, ...] = ()
    """Spans of one or more files, concatenated in order (MuST-C offsets, GigaSpeech segments, Spoken-SQuAD
    sentences of one passage)."""
    data: bytes | None = None
    """Encoded audio bytes (a parquet or arrow cell)."""
    table: tuple[str, int, str] | None = None
    """(parquet or arrow file, row, column) of an audio cell, read when the part is written, not at scan time."""
    command: str | None = None
    """A Kaldi wav.scp pipe: a shell command whose stdout is the audio file."""

    def __post_init__(self):
        set_fields = sum(x is not None and x != () for x in (self.path, self.segments, self.data, self.table,
                                                                  self.command))
        if set_fields != 1:
            raise ValueError(f"an AudioRef needs exactly one source, got {self!r}")

    def describe(self) -> str:
        """Where the audio is, for warnings and drop reports."""
        if self.path is not None:
            return str(self.path)
        if self.segments:
            first = self.segments[0]
            more = f" (+{len(self.segments) - 1} more)" if len(self.segments) > 1 else ""
            return f"{first.path} [{first.start:.2f}-{first.end if first.end is not None else 'end'} s]{more}"
        if self.table is not None:
            return f"{self.table[0]} row {self.table[1]} column {self.table[2]!r}"
        if self.command is not None:
            return f"pipe `{self.command}`"
        return "inline audio bytes"


@dataclass
class Item:
    """One utterance to write: its key, its audio and its metadata (shard schema, see the module docstring)."""

    key: str
    audio: AudioRef
    meta: dict


@dataclass(frozen=True)
class Drop:
    """An utterance the importer cannot use, counted under ``reason`` in the corpus report."""

    key: str
    reason: str
    detail: str = ""


@dataclass(frozen=True)
class Corpus:
    """A registered importer: ``python -m data.prepare <name> --root DIR --out DIR [options]``."""

    name: str
    help: str
    """One line for ``--help``: what the corpus is and which layout is expected."""
    scan: Callable[[argparse.Namespace], Iterable[Item | Drop]]
    """Reads the layout under ``args.root``; yields items and drops (metadata only)."""
    add_arguments: Callable[[argparse.ArgumentParser], None] = lambda parser: None
    """Corpus-specific options (splits, language pair, ...)."""
    defaults: dict = field(default_factory=dict)
    """Overrides of the common options' defaults (e.g. fewer utterances per shard for long SQA passages)."""


def safe_key(raw: str) -> str:
    """A WebDataset key from a corpus id: '.', '/', '\\' and whitespace become '_' (keys must be dot-free)."""
    key = re.sub(r"[./\\\s]", "_", str(raw))
    if not key:
        raise ValueError(f"empty key from id {raw!r}")
    return key


def read_text_lines(path: Path) -> list[str]:
    """Lines of a UTF-8 text file (BOM tolerated), a clear error naming the file when it is not UTF-8.

    Split at newlines only (\\r\\n and \\r are translated on reading): str.splitlines would also break at U+2028,
    U+0085 or form feeds inside a transcript and shift every later line against metadata kept line by line.
    """
    try:
        lines = Path(path).read_text(encoding="utf-8-sig").split("\n")
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path} is not UTF-8 ({exc}); convert it with iconv before importing") from None
    return lines[:-1] if lines and lines[-1] == "" else lines


def require_dir(path: Path, what: str) -> Path:
    """``path`` if it is a directory, else a FileNotFoundError that names the expected layout."""
    if not Path(path).is_dir():
        raise FileNotFoundError(f"{path} not found: expected {what}")
    return Path(path)


def load_item_audio(ref: AudioRef) -> tuple[bytes, float]:
    """The FLAC bytes to store for ``ref`` and their duration in seconds; BadSample (with a reason) if unusable."""
    if ref.path is not None:
        return _whole_file(Path(ref.path))
    if ref.segments:
        pieces, rates, subtypes = [], set(), set()
        for seg in ref.segments:
            samples, rate, subtype = _read_span(seg)
            pieces.append(samples)
            rates.add(rate)
            subtypes.add(subtype)
        if len(rates) > 1:
            raise BadSample("mixed_sample_rates", f"segments at {sorted(rates)} Hz cannot be concatenated")
        deepest = next((s for s in ("PCM_S8", "PCM_16") if subtypes == {s}), "PCM_24")  # mixed depths: the deepest
        return _encode(np.concatenate(pieces), rates.pop(), deepest, lossy=_is_lossy(ref.segments[0].path))
    if ref.table is not None:
        return _encoded_bytes(_table_cell(*ref.table), ref.describe())
    if ref.command is not None:
        return _encoded_bytes(_run_pipe(ref.command), ref.describe())
    return _encoded_bytes(ref.data, "inline audio")


def _is_lossy(path: Path) -> bool:
    return Path(path).suffix.lower() in LOSSY_SUFFIXES


def _whole_file(path: Path) -> tuple[bytes, float]:
    if not path.is_file():
        raise BadSample("missing_audio", f"audio file {path} does not exist")
    data = path.read_bytes()
    if path.suffix.lower() == ".flac":
        samples, rate, _ = _decode(data, str(path))  # full decode: a truncated FLAC must not reach a shard
        return data, len(samples) / rate
    return _encoded_bytes(data, str(path), lossy=_is_lossy(path))


def _encoded_bytes(data: bytes | None, where: str, lossy: bool | None = None) -> tuple[bytes, float]:
    if not data:
        raise BadSample("empty_audio", f"{where}: no audio bytes")
    samples, rate, subtype = _decode(data, where)
    if lossy is None:
        lossy = subtype in ("OPUS", "VORBIS", "MPEG_LAYER_III")
    return _encode(samples, rate, subtype, lossy)


def _decode(data: bytes, where: str) -> tuple[np.ndarray, int, str]:
    try:
        info = sf.info(io.BytesIO(data))
        samples, rate = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
    except Exception as exc:  # soundfile raises LibsndfileError, RuntimeError or TypeError for garbage
        raise BadSample("corrupt_audio", f"{where}: cannot decode ({type(exc).__name__}: {exc})") from None
    if truncated := wav_truncation(data):  # libsndfile would return the frames present as if they were all
        raise BadSample("corrupt_audio", f"{where}: {truncated}")
    return _checked(samples, rate, where), rate, info.subtype


def _read_span(seg: Segment) -> tuple[np.ndarray, int, str]:
    path = Path(seg.path)
    if not path.is_file():
        raise BadSample("missing_audio", f"audio file {path} does not exist")
    where = f"{path} [{seg.start:.3f}-{seg.end if seg.end is not None else 'end'} s]"
    try:
        with sf.SoundFile(str(path)) as f:
            rate, subtype, frames = f.samplerate, f.subtype, f.frames
            start = int(round(seg.start * rate))
            stop = frames if seg.end is None else min(frames, int(round(seg.end * rate)))
            if seg.start < 0 or start >= frames or (seg.end is not None and seg.end <= seg.start):
                raise BadSample("bad_segment", f"{where} is outside the file's {frames / rate:.3f} s")
            f.seek(start)
            samples = f.read(stop - start, dtype="float32", always_2d=True)
    except BadSample:
        raise
    except Exception as exc:
        raise BadSample("corrupt_audio", f"{where}: cannot decode ({type(exc).__name__}: {exc})") from None
    return _checked(samples, rate, where), rate, subtype


def _checked(samples: np.ndarray, rate: int, where: str) -> np.ndarray:
    if samples.shape[0] == 0:
        raise BadSample("empty_audio", f"{where}: decodes to 0 frames")
    if not MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE:
        raise BadSample("bad_sample_rate", f"{where}: sample rate {rate} Hz outside [{MIN_SAMPLE_RATE}, "
                                           f"{MAX_SAMPLE_RATE}]")
    if not np.isfinite(samples).all():
        raise BadSample("non_finite_audio", f"{where}: NaN/Inf samples")
    return samples


def _encode(samples: np.ndarray, rate: int, subtype: str, lossy: bool) -> tuple[bytes, float]:
    if lossy and rate > TARGET_SAMPLE_RATE:
        samples = np.stack([resample(samples[:, c], rate, TARGET_SAMPLE_RATE) for c in range(samples.shape[1])], 1)
        rate = TARGET_SAMPLE_RATE
    if samples.shape[1] > FLAC_MAX_CHANNELS:
        raise BadSample("unsupported_audio", f"{samples.shape[1]} channels; FLAC stores at most {FLAC_MAX_CHANNELS}")
    out = io.BytesIO()
    # Integer PCM keeps its depth; float and lossy sources become 24-bit, FLAC's deepest integer format.
    try:
        sf.write(out, np.clip(samples, -1.0, 1.0), rate, format="FLAC",
                 subtype=subtype if subtype in ("PCM_16", "PCM_24", "PCM_S8") else "PCM_24")
    except Exception as exc:  # any other combination FLAC cannot hold: skip the item, not the whole job
        raise BadSample("unsupported_audio", f"cannot be stored as FLAC ({type(exc).__name__}: {exc})") from None
    return out.getvalue(), samples.shape[0] / rate


def _table_cell(file: str, row: int, column: str) -> bytes | None:
    """The encoded audio of one row of a parquet file or an HF ``save_to_disk`` arrow file."""
    from data.corpora.tables import read_audio_cell  # pyarrow is only needed by the table importers

    return read_audio_cell(Path(file), row, column)


def _run_pipe(command: str) -> bytes:
    proc = subprocess.run(command, shell=True, capture_output=True, timeout=600)
    if proc.returncode != 0:
        err = proc.stderr.decode("utf-8", "replace").strip()[-300:]
        raise BadSample("pipe_failed", f"`{command}` exited with {proc.returncode}: {err}")
    return proc.stdout


def split_pipe(entry: str) -> str | None:
    """The command of a Kaldi wav.scp pipe entry (``... |``), or None for a plain path."""
    entry = entry.strip()
    if entry.endswith("|"):
        return entry[:-1].strip()
    return None


def quote(path: Path) -> str:
    return shlex.quote(str(path))


def iter_nonempty(lines: Iterable[str]) -> Iterator[tuple[int, str]]:
    """(1-based line number, stripped line) of the non-blank lines."""
    for i, line in enumerate(lines, 1):
        if line.strip():
            yield i, line.strip()
