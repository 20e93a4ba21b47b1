"""Corpora published as tables (HF parquet exports, HF ``save_to_disk`` arrow) and the reader of their audio cells.

DisfluencySpeech (``disfluency-speech``; https://huggingface.co/datasets/amaai-lab/DisfluencySpeech, Apache-2.0,
``huggingface-cli download amaai-lab/DisfluencySpeech --repo-type dataset --local-dir DisfluencySpeech``)::

    DisfluencySpeech/                                   (+ README.md, MFA.zip: forced alignments, unused)
        data/train-0000{0,1,2}-of-00003.parquet         4500 rows
             validation-00000-of-00001.parquet          250 rows
             test-00000-of-00001.parquet                250 rows
    columns: audio {bytes: 22.05 kHz WAV, path}, transcript_annotated, transcript_a, transcript_b, transcript_c

The text is ``transcript_a`` (``--transcript`` picks another): every word spoken, fillers, editing terms and restarts
included, only non-speech events (laughter, sighs) removed - the audio word for word, which ``annotated`` (with markup)
and b/c (fillers, then false starts deleted) are not. All four variants are kept in ``transcripts``.

mls-eng-speaker-descriptions (``mls-speaker-descriptions``; https://huggingface.co/datasets/parler-tts/
mls-eng-speaker-descriptions, CC-BY-4.0, text only) joined with the MLS English audio (openslr.org/94)::

    mls-eng-speaker-descriptions/               --root
        data/train-000NN-of-00027.parquet       10,808,037 rows
             dev-*.parquet  test-*.parquet      3,807 and 3,769 rows
    columns: original_path (the LibriVox mp3), begin_time, end_time, original_text (the MLS transcript), text
        (punctuation restored), audio_duration, speaker_id, book_id, snr, c50, speech_duration, speaking_rate,
        phonemes, stoi, si-sdr, pesq, utterance_pitch_mean, utterance_pitch_std, gender, pitch, noise,
        reverberation, speech_monotony, sdr_noise, pesq_speech_quality, text_description
    mls_english[_opus]/                         --audio-root (or its parent)
        {train,dev,test}/segments.txt           "<speaker>_<book>_<nnnnnn>\\t<mp3 url>\\t<begin>\\t<end>"
        {train,dev,test}/transcripts.txt        (unused: the descriptions carry the transcript)
        {train,dev,test}/audio/<speaker>/<book>/<speaker>_<book>_<nnnnnn>.flac (.opus)

The descriptions carry no MLS utterance id (they are row-aligned with parler-tts/mls_eng, which has none either), so
a row finds its utterance through segments.txt: same speaker, book, begin and end (centiseconds, 0.01 s slack);
segments of one book that share those are told apart by ``original_path`` (the mp3 url). ``labels`` are the
categorical annotations as published ("quite fast", "female", ...); ``description`` keeps the text description and
``measures`` the numeric ones.

hf-disk (``hf-disk``): any ``datasets`` ``save_to_disk`` directory::

    <dir>/ state.json  dataset_info.json  data-0000i-of-0000N.arrow      a Dataset (Arrow IPC stream files)
    <dir>/ dataset_dict.json {"splits": [...]}  <split>/<a Dataset as above>   a DatasetDict

Audio cells (an HF Audio struct {bytes, path}, raw bytes, or a path string) are read in the writer's worker
processes by :func:`read_audio_cell`; pyarrow is the only dependency (``datasets`` is not imported). save_to_disk
embeds the local files of an Audio column, so a cell with a path and no bytes comes from a plain struct column.
"""

from __future__ import annotations

import argparse
import bisect
import json
import math
from collections import OrderedDict
from collections.abc import Callable, Iterator
from itertools import accumulate
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from data.audio import BadSample
from data.corpora.common import AudioRef, Corpus, Drop, Item, require_dir, safe_key

# Workers read one item at a time, each part in (file, row) order (data/corpora/writer.py): the last row groups read
# (HF writes ~100 audio rows each) stay cached up to a byte budget, so a row group is read about once per part; arrow
# files stay memory-mapped, and no worker ever holds a whole corpus.
CACHED_ROW_GROUP_BYTES = 512 * 2**20
CACHED_FILES = 8
_row_groups: OrderedDict[tuple, pa.Table] = OrderedDict()
_files: OrderedDict[tuple, object] = OrderedDict()


def read_audio_cell(path: Path, row: int, column: str) -> bytes | None:
    """The encoded audio in ``column`` of ``row`` of a parquet or HF arrow file; BadSample when there is none."""
    path = Path(path)
    where = f"{path} row {row} column {column!r}"
    try:
        stamp = (str(path), path.stat().st_mtime_ns)
        table, first_row = _rows_around(path, stamp, row, column)
        cell = table.column(column)[row - first_row].as_py()
    except FileNotFoundError:
        raise BadSample("missing_audio", f"{where}: the table file does not exist") from None
    except (OSError, pa.ArrowException, KeyError, IndexError) as exc:
        raise BadSample("corrupt_table", f"{where}: cannot read it ({type(exc).__name__}: {exc})") from None
    if isinstance(cell, dict):  # an HF Audio struct: bytes, else the file it names
        cell = cell.get("bytes") or cell.get("path")
    if isinstance(cell, bytes) and cell:
        return cell
    if isinstance(cell, str) and cell:
        file = Path(cell) if Path(cell).is_absolute() else path.parent / cell
        if file.is_file():
            return file.read_bytes()
        raise BadSample("missing_audio", f"{where}: no audio bytes, and {file} is not a file")
    raise BadSample("missing_audio", f"{where}: the cell holds no audio bytes and no path")


def _remember(cache: OrderedDict, key: tuple, make: Callable[[], object], too_full: Callable[[OrderedDict], bool]):
    """``cache[key]``, made on a miss; the least recently used entries go while ``too_full`` (the newest stays)."""
    if key in cache:
        cache.move_to_end(key)
    else:
        cache[key] = make()
        while len(cache) > 1 and too_full(cache):
            cache.popitem(last=False)
    return cache[key]


def _rows_around(path: Path, stamp: tuple, row: int, column: str) -> tuple[pa.Table, int]:
    """A table holding ``row`` of ``column`` and the file row its first row is."""
    opened = _remember(_files, stamp, lambda: _open_table(path), lambda c: len(c) > CACHED_FILES)
    if isinstance(opened, pa.Table):
        return opened, 0
    parquet, starts = opened
    group = bisect.bisect_right(starts, row) - 1
    if not 0 <= group < parquet.metadata.num_row_groups or row >= parquet.metadata.num_rows:
        raise IndexError(f"row {row} is outside the file's {parquet.metadata.num_rows} rows")
    table = _remember(_row_groups, (*stamp, group, column), lambda: parquet.read_row_group(group, columns=[column]),
                      lambda c: sum(t.nbytes for t in c.values()) > CACHED_ROW_GROUP_BYTES)
    return table, starts[group]


def _open_table(path: Path):
    """(ParquetFile, first row of each row group) for parquet, else the memory-mapped arrow table (zero copy)."""
    with open(path, "rb") as fh:
        magic = fh.read(6)
    if magic.startswith(b"PAR1"):
        parquet = pq.ParquetFile(path)
        sizes = [parquet.metadata.row_group(g).num_rows for g in range(parquet.metadata.num_row_groups)]
        return parquet, list(accumulate(sizes, initial=0))[:-1]
    return read_arrow(path)


def read_arrow(path: Path) -> pa.Table:
    """An Arrow IPC file, memory-mapped: the stream format ``save_to_disk`` writes, or the random-access format."""
    source = pa.memory_map(str(path))
    if source.read(6) == b"ARROW1":
        return pa.ipc.open_file(source).read_all()
    source.seek(0)
    return pa.ipc.open_stream(source).read_all()


def _split_list(text: str) -> list[str]:
    return [s.strip() for s in str(text).split(",") if s.strip()]


def _hf_parquet(root: Path, split: str, layout: str) -> list[Path]:
    files = sorted((root / "data").glob(f"{split}-*.parquet"))
    if not files:
        raise FileNotFoundError(f"no {root / 'data'}/{split}-*.parquet: expected {layout}")
    return files


def _require_columns(present: list[str], needed: list[str], where: Path, layout: str) -> None:
    missing = [c for c in needed if c not in present]
    if missing:
        raise ValueError(f"{where} lacks the columns {missing} (it has {present}): expected {layout}")


# ---- DisfluencySpeech ----------------------------------------------------------------------------------------------

DISFLUENCY_LAYOUT = ("DisfluencySpeech/data/{train,validation,test}-*.parquet with columns audio, "
                     "transcript_annotated, transcript_a, transcript_b, transcript_c (amaai-lab/DisfluencySpeech)")
TRANSCRIPTS = {"a": "transcript_a", "b": "transcript_b", "c": "transcript_c", "annotated": "transcript_annotated"}


def scan_disfluency(args: argparse.Namespace) -> Iterator[Item | Drop]:
    root = require_dir(args.root, DISFLUENCY_LAYOUT)
    for split in _split_list(args.splits):
        number, column = 0, TRANSCRIPTS[args.transcript]  # number: the row in the split, the key
        for file in _hf_parquet(root, split, DISFLUENCY_LAYOUT):
            names = pq.ParquetFile(file).schema_arrow.names
            _require_columns(names, ["audio", *TRANSCRIPTS.values()], file, DISFLUENCY_LAYOUT)
            rows = pq.read_table(file, columns=[*TRANSCRIPTS.values(), "audio.path"]).to_pylist()
            for row_number, row in enumerate(rows):
                key = f"{split}_{number:05d}"
                number += 1
                text = (row[column] or "").strip()
                if not text:
                    yield Drop(key, "empty_transcript", f"{file} row {row_number}: {column} is empty")
                    continue
                meta = {"text": text, "lang": "en", "task": "asr", "split": split, "corpus": "disfluency-speech",
                        "speaker": "disfluencyspeech", "transcripts": {k: row[c] for k, c in TRANSCRIPTS.items()},
                        "audio_file": (row.get("audio") or {}).get("path")}
                yield Item(key, AudioRef(table=(str(file), row_number, "audio")), meta)


def add_disfluency_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--splits", default="train,validation,test", help="comma list of train,validation,test")
    parser.add_argument("--transcript", default="a", choices=sorted(TRANSCRIPTS),
                        help="text variant: a = verbatim with disfluencies (default), b = without fillers, "
                             "c = also without false starts, annotated = with the disfluency markup")


# ---- mls-eng-speaker-descriptions + MLS English audio ----------------------------------------------------------------

MLS_LAYOUT = ("--root: mls-eng-speaker-descriptions/data/{train,dev,test}-*.parquet; --audio-root: "
              "mls_english[_opus]/{train,dev,test}/segments.txt and audio/<speaker>/<book>/<id>.flac|.opus")
LABEL_COLUMNS = ("gender", "pitch", "speaking_rate", "noise", "reverberation", "speech_monotony", "sdr_noise",
                 "pesq_speech_quality")
MEASURE_COLUMNS = ("snr", "c50", "speech_duration", "stoi", "si-sdr", "pesq", "utterance_pitch_mean",
                   "utterance_pitch_std")
MLS_ROW_COLUMNS = ["speaker_id", "book_id", "begin_time", "end_time", "original_path", "text_description"]
AMBIGUOUS = "<ambiguous>"
# Lookups try the exact centiseconds first, then 0.01 s either way (float times written by different tools).
SLACK = [(0, 0)] + [(db, de) for db in (-1, 0, 1) for de in (-1, 0, 1) if (db, de) != (0, 0)]


class SegmentIndex:
    """segments.txt of one MLS split: (speaker, book, begin, end in centiseconds) -> utterance id."""

    def __init__(self, path: Path):
        self.path = path
        self.ids: dict[tuple, str | list[str]] = {}
        self.urls: dict[str, str] = {}
        names: dict[str, str] = {}  # speaker and book strings shared by all their keys (millions of train lines)
        for utt, _, begin, end in self._lines():
            parts = utt.split("_")
            if len(parts) != 3:
                raise ValueError(f"{self.path}: {utt!r} is not an MLS id <speaker>_<book>_<segment>")
            speaker, book = names.setdefault(parts[0], parts[0]), names.setdefault(parts[1], parts[1])
            key = (speaker, book, round(begin * 100), round(end * 100))
            known = self.ids.setdefault(key, utt)
            if known != utt:
                self.ids[key] = [*([known] if isinstance(known, str) else known), utt]
        clashes = {u for v in self.ids.values() if isinstance(v, list) for u in v}
        if clashes:  # a second pass keeps the urls of the few clashing segments only
            self.urls = {utt: url for utt, url, _, _ in self._lines() if utt in clashes}

    def _lines(self) -> Iterator[tuple[str, str, float, float]]:
        with open(self.path, encoding="utf-8") as fh:
            for line_no, line in enumerate(fh, 1):
                fields = line.rstrip("\n").split("\t")
                try:
                    yield fields[0], fields[1], float(fields[2]), float(fields[3])
                except (ValueError, IndexError):
                    if line.strip():
                        raise ValueError(f"{self.path}:{line_no} is not '<id>\\t<url>\\t<begin>\\t<end>': "
                                         f"{line[:120]!r}") from None

    def find(self, speaker: str, book: str, begin: float, end: float, url: str | None) -> str | None:
        """The utterance id of that segment, AMBIGUOUS when the url cannot tell clashing ones apart, else None."""
        for db, de in SLACK:
            found = self.ids.get((speaker, book, round(begin * 100) + db, round(end * 100) + de))
            if isinstance(found, str):
                return found
            if found:
                same = [u for u in found if self.urls.get(u) == url]
                return same[0] if len(same) == 1 else AMBIGUOUS
        return None


def _mls_audio_root(path: Path | None) -> Path:
    if path is None:
        raise ValueError(f"--audio-root is required: {MLS_LAYOUT}")
    root = require_dir(path, MLS_LAYOUT)
    for name in ("mls_english", "mls_english_opus"):  # the parent of an unpacked archive is accepted too
        if (root / name).is_dir():
            return root / name
    return root


def scan_mls(args: argparse.Namespace) -> Iterator[Item | Drop]:
    root = require_dir(args.root, MLS_LAYOUT)
    audio_root = _mls_audio_root(args.audio_root)
    suffix = ".opus" if audio_root.name.endswith("_opus") else ".flac"
    for split in _split_list(args.splits):
        files, split_dir = _hf_parquet(root, split, MLS_LAYOUT), require_dir(audio_root / split, MLS_LAYOUT)
        if not (split_dir / "segments.txt").is_file():
            raise FileNotFoundError(f"{split_dir / 'segments.txt'} not found: expected {MLS_LAYOUT}")
        segments = SegmentIndex(split_dir / "segments.txt")
        for file in files:  # checked before the segments index, which takes a while for train
            parquet = pq.ParquetFile(file)
            names = parquet.schema_arrow.names
            _require_columns(names, [*MLS_ROW_COLUMNS, args.text_column], file, MLS_LAYOUT)
            wanted = [*MLS_ROW_COLUMNS, args.text_column, "original_text", *LABEL_COLUMNS, *MEASURE_COLUMNS]
            row_number = 0  # the descriptions' columns only (no phonemes): batches keep memory flat on train
            for batch in parquet.iter_batches(65536, columns=[c for c in dict.fromkeys(wanted) if c in names]):
                for row in batch.to_pylist():
                    yield _mls_entry(row, file, row_number, split, split_dir, suffix, segments, args.text_column)
                    row_number += 1


def _mls_entry(row: dict, file: Path, row_number: int, split: str, split_dir: Path, suffix: str,
               segments: SegmentIndex, text_column: str) -> Item | Drop:
    speaker, book, begin, end = str(row["speaker_id"]), str(row["book_id"]), row["begin_time"], row["end_time"]
    where = f"{file} row {row_number}"
    if not all(isinstance(t, (int, float)) and math.isfinite(t) for t in (begin, end)):
        return Drop(safe_key(f"{split}_{file.stem}_{row_number}"), "bad_segment", f"{where}: times {begin}-{end}")
    utt = segments.find(speaker, book, begin, end, row["original_path"])
    if utt is None or utt == AMBIGUOUS:
        reason = "missing_audio" if utt is None else "ambiguous_segment"
        return Drop(safe_key(f"{split}_{speaker}_{book}_{begin:.2f}"), reason,
                    f"{where}: {'no' if utt is None else 'several'} segments of {speaker}/{book} at {begin:.2f}-"
                    f"{end:.2f} s in {segments.path}")
    text = (row[text_column] or "").strip()
    if not text:
        return Drop(safe_key(utt), "empty_transcript", f"{where}: {text_column} is empty")
    labels = {c: row[c].strip() for c in LABEL_COLUMNS if isinstance(row.get(c), str) and row[c].strip()}
    measures = {c.replace("-", "_"): round(float(row[c]), 4) for c in MEASURE_COLUMNS
                if isinstance(row.get(c), (int, float)) and math.isfinite(row[c])}
    meta = {"text": text, "lang": "en", "task": "asr", "split": split, "corpus": "mls-speaker-descriptions",
            "speaker": speaker, "book": book, "mls_id": utt, "labels": labels,
            "description": row["text_description"], "measures": measures, "original_text": row.get("original_text"),
            "original_path": row["original_path"], "begin_time": begin, "end_time": end}
    return Item(safe_key(utt), AudioRef(path=split_dir / "audio" / speaker / book / f"{utt}{suffix}"), meta)


def add_mls_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--audio-root", type=Path, default=None,
                        help="MLS English as unpacked from openslr.org/94: mls_english or mls_english_opus")
    parser.add_argument("--splits", default="train,dev,test", help="comma list of train,dev,test")
    parser.add_argument("--text-column", default="text", choices=["text", "original_text"],
                        help="transcript: text (punctuation and case restored, default) or original_text (MLS)")


# ---- any HF save_to_disk directory -----------------------------------------------------------------------------------

HF_DISK_LAYOUT = ("a datasets save_to_disk directory: state.json + dataset_info.json + data-*.arrow (a Dataset), or "
                  "dataset_dict.json + one such directory per split (a DatasetDict)")


def _hf_disk_splits(root: Path, wanted: list[str]) -> list[tuple[str, Path]]:
    if (root / "dataset_dict.json").is_file():
        found = [(s, root / s) for s in json.loads((root / "dataset_dict.json").read_text(encoding="utf-8"))["splits"]]
    elif (root / "state.json").is_file():
        split = json.loads((root / "state.json").read_text(encoding="utf-8")).get("_split") or "train"
        found = [(str(split), root)]
    else:
        raise FileNotFoundError(f"{root} has neither dataset_dict.json nor state.json: expected {HF_DISK_LAYOUT}")
    unknown = sorted(set(wanted) - {s for s, _ in found})
    if unknown:
        raise ValueError(f"{root} has no splits {unknown}; it has {[s for s, _ in found]}")
    return [(s, d) for s, d in found if not wanted or s in wanted]


def _plain_values(column: pa.ChunkedArray, name: str) -> list:
    """A kept column as JSON-ready values (dates and decimals as strings); binary columns are refused."""
    if any(test(column.type) for test in (pa.types.is_binary, pa.types.is_large_binary, pa.types.is_fixed_size_binary)):
        raise ValueError(f"--keep-columns {name}: binary values cannot go into the sample's JSON")
    if pa.types.is_temporal(column.type) or pa.types.is_decimal(column.type):
        column = column.cast(pa.string())
    return column.to_pylist()


def scan_hf_disk(args: argparse.Namespace) -> Iterator[Item | Drop]:
    root = require_dir(args.root, HF_DISK_LAYOUT)
    keep = _split_list(args.keep_columns or "")
    for split, directory in _hf_disk_splits(root, _split_list(args.splits or "")):
        state_file = directory / "state.json"
        if not state_file.is_file():
            raise FileNotFoundError(f"{state_file} not found: expected {HF_DISK_LAYOUT}")
        entries = json.loads(state_file.read_text(encoding="utf-8")).get("_data_files") or []
        if not entries:
            raise ValueError(f"{state_file} lists no _data_files: expected {HF_DISK_LAYOUT}")
        number = 0
        for entry in entries:
            file = directory / entry["filename"]
            table = read_arrow(file)  # memory-mapped: the audio bytes are not read here
            needed = [args.audio_column, args.text_column, *([args.id_column] if args.id_column else []), *keep]
            _require_columns(table.column_names, needed, file, HF_DISK_LAYOUT)
            texts = table.column(args.text_column).to_pylist()
            ids = table.column(args.id_column).to_pylist() if args.id_column else None
            kept = {c: _plain_values(table.column(c), c) for c in keep}
            paths = (table.column(args.audio_column).to_pylist()
                     if pa.types.is_string(table.schema.field(args.audio_column).type) else None)
            for row in range(table.num_rows):
                key = safe_key(str(ids[row])) if ids else f"{split}_{number}"
                number += 1
                text = str(texts[row] or "").strip()
                if not text:
                    yield Drop(key, "empty_transcript", f"{file} row {row}: {args.text_column} is empty")
                    continue
                if paths is not None and not paths[row]:
                    yield Drop(key, "missing_audio", f"{file} row {row}: {args.audio_column} is empty")
                    continue
                audio = (AudioRef(path=directory / paths[row]) if paths is not None  # a column of file paths
                         else AudioRef(table=(str(file), row, args.audio_column)))
                meta = {**{c: v[row] for c, v in kept.items()}, "text": text, "lang": args.lang, "task": "asr",
                        "split": split, "corpus": root.name}
                yield Item(key, audio, meta)


def add_hf_disk_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--lang", required=True, help="ISO 639-1 language of the speech, e.g. en")
    parser.add_argument("--audio-column", default="audio", help="Audio struct {bytes, path}, bytes, or a path column")
    parser.add_argument("--text-column", default="text", help="transcript column")
    parser.add_argument("--splits", default=None, help="comma list of the DatasetDict's splits to import (default all)")
    parser.add_argument("--id-column", default=None, help="column of unique ids (default: keys <split>_<row>)")
    parser.add_argument("--keep-columns", default=None, help="comma list of columns copied into each sample's JSON")


CORPORA = [
    Corpus("disfluency-speech", "DisfluencySpeech: ~10 h single-speaker English with disfluencies, the HF parquet "
           "export (amaai-lab/DisfluencySpeech: data/{train,validation,test}-*.parquet)", scan_disfluency,
           add_disfluency_arguments),
    Corpus("mls-speaker-descriptions", "MLS English with parler-tts/mls-eng-speaker-descriptions labels: --root the "
           "descriptions (data/*.parquet), --audio-root mls_english[_opus] from openslr.org/94", scan_mls,
           add_mls_arguments),
    Corpus("hf-disk", "any HF datasets save_to_disk directory (Dataset or DatasetDict) with an audio and a text "
           "column", scan_hf_disk, add_hf_disk_arguments),
]
