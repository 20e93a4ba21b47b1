"""GigaSpeech (SpeechColab): 10,000 h of transcribed English podcasts, YouTube and audiobooks, as released.

Obtain it from https://github.com/SpeechColab/GigaSpeech (fill in the access form; the reply gives a password and
the download hosts). The release is encrypted: ``GigaSpeech.json.gz.aes`` and one ``.tgz.aes`` archive per audio
folder. Decrypt and unpack it with the official tool first, e.g. ``utils/download_gigaspeech.sh <dir>`` of that
repository or ``GigaSpeech(<dir>).download(password, "{XL}")`` of PySpeechColab (``pip install speechcolab``); this
importer reads the unpacked result, the directory given as ``--root``::

    <root>/
        GigaSpeech.json                     one metadata file for every subset
        audio/
            podcast/P0000/POD0000000001.opus
            youtube/P0000/YOU0000000001.opus
            audiobook/P0000/AUD0000000001.opus
            ...                              (the leftover *.aes archives are ignored)

``GigaSpeech.json`` (schema from the official toolkit scripts ``toolkits/kaldi/extract_meta.py``,
``utils/extract_subset_segments.py`` and PySpeechColab ``speechcolab/datasets/gigaspeech.py``)::

    {"dataset": ..., "version": ..., ...,
     "audios": [{"aid": "POD0000000001", "path": "audio/podcast/P0000/POD0000000001.opus", "source": "podcast",
                 "format": "opus", "sample_rate": 16000, "channels": 1, "duration": 3421.4, "md5": ...,
                 "subsets": ["{XL}", "{L}", ...],
                 "segments": [{"sid": "POD0000000001_S0000008", "speaker": "N/A", "begin_time": 159.0,
                               "end_time": 167.52, "text_tn": "AS THEY'RE LEAVING <COMMA> CAN KASH ...",
                               "subsets": ["{XL}", "{L}", "{M}", "{S}", "{XS}"]}, ...]}, ...]}

``path`` is relative to the directory of ``GigaSpeech.json``. The training subsets are nested (XS in S in M in L in
XL: 10, 250, 1,000, 2,500 and 10,000 h); DEV (12 h) and TEST (40 h) are human-transcribed. ``--subset`` picks the
segments tagged ``{SUBSET}``; the others are skipped silently. Following the official guidelines, segments whose
``text_tn`` holds a garbage tag (``<SIL> <MUSIC> <NOISE> <OTHER>``, they fill the gaps of DEV/TEST) are dropped as
``garbage_utterance``, and the punctuation tags become ``, . ? !`` attached to the previous word. The text stays in
the released upper case.

Audio is a span of the long Opus file (``AudioRef(segments=...)``); the writer decodes it (libsndfile reports the
rate stored in the Opus header, 16 or 48 kHz) and stores 16 kHz FLAC.

Memory: ``GigaSpeech.json`` (a few GB uncompressed) is streamed with the standard ``json`` module one audio entry at
a time (entries are at most a few MB), so parsing needs little memory; it runs at about 100 MB/s on one core, and
every scan reads the whole file whatever the subset. The writer then holds one Item per segment of the chosen subset
while it plans the shards, about 1-1.3 KB each: segments average ~4 s, so ~10 GB for XL (~9 M segments), ~1 GB for
M, far less for the others (per task: every Slurm array task scans on its own).
"""

from __future__ import annotations

import argparse
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from data.corpora.common import AudioRef, Corpus, Drop, Item, Segment, require_dir, safe_key

METADATA_NAME = "GigaSpeech.json"
SUBSETS = ("XS", "S", "M", "L", "XL", "DEV", "TEST")
PUNCTUATION = {"<COMMA>": ",", "<PERIOD>": ".", "<QUESTIONMARK>": "?", "<EXCLAMATIONPOINT>": "!"}
GARBAGE_TAGS = ("<SIL>", "<MUSIC>", "<NOISE>", "<OTHER>")
LAYOUT = (f"the decrypted GigaSpeech release: <root>/{METADATA_NAME} and <root>/audio/<source>/P*/<aid>.opus "
          "(decrypt the .aes files with the official tool from https://github.com/SpeechColab/GigaSpeech first)")

# An audio entry is a few MB at most; a value growing past this means a corrupt file, not a long entry.
MAX_VALUE_CHARS = 256 * 2**20
_WHITESPACE = re.compile(r"[ \t\n\r]*")


class _JsonStream:
    """Reads one JSON value at a time from a text file, with ``json.JSONDecoder.raw_decode`` on a growing buffer.

    The standard library has no streaming parser; decoding each ``audios`` entry on its own keeps memory at one
    entry instead of the whole multi-GB document.
    """

    def __init__(self, file: IO[str], where: Path, chunk_chars: int):
        self.file, self.where, self.chunk_chars = file, where, chunk_chars
        self.buf, self.pos, self.eof = "", 0, False
        self.decoder = json.JSONDecoder()

    def _read_more(self) -> None:
        # Reading at least as much as is buffered doubles the buffer, so a long value is decoded in linear time.
        data = self.file.read(max(self.chunk_chars, len(self.buf) - self.pos))
        self.eof = not data
        self.buf = self.buf[self.pos:] + data
        self.pos = 0

    def peek(self) -> str:
        """The next non-whitespace character ('' at the end of the file)."""
        while True:
            self.pos = _WHITESPACE.match(self.buf, self.pos).end()
            if self.pos < len(self.buf):
                return self.buf[self.pos]
            if self.eof:
                return ""
            self._read_more()

    def take(self, expected: str) -> str:
        """Consumes the next character, which must be one of ``expected``."""
        char = self.peek()
        if not char or char not in expected:
            raise self.error(f"expected one of {expected!r}, found {char or 'the end of the file'!r}")
        self.pos += 1
        return char

    def value(self):
        """The next complete JSON value."""
        self.peek()
        while True:
            try:
                value, end = self.decoder.raw_decode(self.buf, self.pos)
                # A number at the very end of the buffer may continue in the next chunk.
                if end < len(self.buf) or self.eof:
                    self.pos = end
                    return value
            except json.JSONDecodeError as exc:
                if self.eof:
                    raise self.error(f"invalid JSON ({exc.msg})") from None
            if len(self.buf) - self.pos > MAX_VALUE_CHARS:
                raise self.error(f"no valid JSON value within {MAX_VALUE_CHARS} characters")
            self._read_more()

    def error(self, message: str) -> ValueError:
        return ValueError(f"{self.where} is not GigaSpeech metadata: {message} (near {self.buf[self.pos:][:60]!r}); "
                          f"expected {LAYOUT}")


def iter_audios(path: Path, chunk_chars: int = 2**20) -> Iterator[dict]:
    """The entries of the top-level ``audios`` list of ``GigaSpeech.json``, one at a time, in file order."""
    with open(path, encoding="utf-8") as file:
        stream = _JsonStream(file, path, chunk_chars)
        stream.take("{")
        found = False
        if stream.peek() == "}":
            stream.take("}")
        else:
            while True:
                key = stream.value()
                stream.take(":")
                if key == "audios":
                    found = True
                    stream.take("[")
                    if stream.peek() == "]":
                        stream.take("]")
                    else:
                        while True:
                            yield stream.value()
                            if stream.take(",]") == "]":
                                break
                else:
                    stream.value()  # dataset name, version, license, ...: not needed
                if stream.take(",}") == "}":
                    break
        if stream.peek():
            raise stream.error("text after the top-level object")
    if not found:
        raise ValueError(f"{path} has no top-level 'audios' list: expected {LAYOUT}")


def normalize_text(text_tn: str) -> str:
    """``text_tn`` with its punctuation tags as marks on the previous word: 'HI <COMMA> YOU <PERIOD>' -> 'HI, YOU.'"""
    words: list[str] = []
    for token in text_tn.split():
        mark = PUNCTUATION.get(token)
        if mark is None:
            words.append(token)
        elif words:  # a mark before any word has nothing to attach to
            words[-1] += mark
    return " ".join(words)


def scan(args: argparse.Namespace) -> Iterator[Item | Drop]:
    """Items of the segments tagged ``{args.subset}``, in ``GigaSpeech.json`` order."""
    root = require_dir(args.root, LAYOUT)
    metadata = root / METADATA_NAME
    if not metadata.is_file():
        encrypted = sorted(p.name for p in root.glob(f"{METADATA_NAME}*.aes"))
        hint = f"; found {', '.join(encrypted)}, which must be decrypted first" if encrypted else ""
        raise FileNotFoundError(f"{metadata} not found: expected {LAYOUT}{hint}")
    subset = args.subset.upper()
    tag = "{" + subset + "}"
    for audio in iter_audios(metadata):
        if not isinstance(audio, dict) or not {"aid", "path", "segments"} <= audio.keys():
            raise ValueError(f"{metadata}: an 'audios' entry lacks aid/path/segments ({str(audio)[:120]}): "
                             f"expected {LAYOUT}")
        # Entries carry the union of their segments' tags, so a whole recording can be skipped unread.
        if tag not in audio.get("subsets", [tag]):
            continue
        yield from _audio_items(root, audio, tag, subset.lower())


def _audio_items(root: Path, audio: dict, tag: str, split: str) -> Iterator[Item | Drop]:
    aid = str(audio["aid"])
    path = root / audio["path"]
    missing = None if path.is_file() else _missing_detail(root, path)
    for number, segment in enumerate(audio["segments"]):
        if tag not in segment.get("subsets", ()):
            continue
        key = safe_key(segment.get("sid") or f"{aid}_segment{number}")
        try:
            begin, end, text_tn = float(segment["begin_time"]), float(segment["end_time"]), str(segment["text_tn"])
        except (KeyError, TypeError, ValueError) as exc:
            yield Drop(key, "bad_segment", f"{aid}: segment lacks a usable begin_time/end_time/text_tn ({exc!r})")
            continue
        if any(garbage in text_tn for garbage in GARBAGE_TAGS):
            yield Drop(key, "garbage_utterance", text_tn)
            continue
        text = normalize_text(text_tn)
        if not text:
            yield Drop(key, "empty_transcript", f"text_tn {text_tn!r}")
            continue
        if not 0 <= begin < end:
            yield Drop(key, "bad_segment", f"{path} [{begin}-{end} s] is not a span")
            continue
        if missing:
            yield Drop(key, "missing_audio", missing)
            continue
        meta = {"text": text, "lang": "en", "task": "asr", "split": split, "corpus": "gigaspeech",
                "source": audio.get("source"), "aid": aid}
        yield Item(key, AudioRef(segments=(Segment(path, begin, end),)), meta)


def _missing_detail(root: Path, path: Path) -> str:
    """Why an audio file is absent, naming the still-encrypted archive of its folder when there is one."""
    archives = [p for p in (path.parent.with_name(path.parent.name + ".tgz.aes"), path.with_name(path.name + ".aes"))
                if p.is_file()]
    if archives:
        return f"{path} does not exist; {archives[0].relative_to(root)} must be decrypted and unpacked first"
    return f"{path} does not exist (audio of this subset not downloaded?)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--subset", type=str.upper, choices=SUBSETS, default="M",
                        help="segments tagged {SUBSET} in GigaSpeech.json: training XS 10 h, S 250 h, M 1,000 h, "
                             "L 2,500 h, XL 10,000 h (nested); DEV 12 h, TEST 40 h (default: M)")


CORPORA = [
    Corpus(
        "gigaspeech",
        "GigaSpeech (SpeechColab, English, 10k h): GigaSpeech.json + audio/<source>/P*/<aid>.opus, decrypted with "
        "the official tool first; --subset XS|S|M|L|XL|DEV|TEST",
        scan,
        add_arguments,
    ),
]
