"""Kaldi data directories, and AISHELL-2 (Mandarin read speech) whose release ships Kaldi-style tables.

``kaldi``: any Kaldi data directory (https://kaldi-asr.org/doc/data_prep.html), one import per directory::

    data/train/
      wav.scp      <recording-id> <path>            or  <recording-id> <command> |   (stdout is the audio)
      text         <utterance-id> <transcript>
      segments     <utterance-id> <recording-id> <start-s> <end-s>   optional; end -1 = to the end of the file
      utt2spk      <utterance-id> <speaker-id>                        optional -> "speaker"
      utt2lang     <utterance-id> <language>                          optional -> "lang" (ISO 639-1 expected)

Without ``segments`` the first column of wav.scp is the utterance id. Relative paths in wav.scp (and in its
commands) are resolved against ``--audio-base``; by default against the data directory when the first relative
path exists there, else against the recipe directory two levels up (``egs/<corpus>/s5`` for ``data/train``), where
Kaldi runs its scripts. A segment of a piped recording runs the command once per segment and cuts the span from
its output with a small soundfile program (Kaldi's ``extract-segments`` does the same in one pass): correct for
the usual ``sph2pipe ... |`` Switchboard/Fisher tables, at the cost of decoding each recording once per segment.
Utterances of ``text`` without audio are dropped (``missing_audio``); recordings without a transcript are not
imported (their number is logged). Transcripts are kept as written (Kaldi tags such as ``<UNK>`` included).
Unsupported: wav.scp entries that point into Kaldi archives (``foo.ark:123``) and segments with a channel column.

``aishell2``: AISHELL-2 (Du et al. 2018, arXiv:1808.10583; ~1000 h, 1991 speakers, ~1M utterances of 16 kHz
read Mandarin). The iOS channel is free for non-commercial research on application at
https://www.aishelltech.com/aishell_2; the dev/test sets (AISHELL2-2018A-EVAL: dev 2500 utterances of 5 speakers,
test 5000 of 10, each recorded on iOS, Android and Mic) come from http://www.aishelltech.com/aishell_eval as a zip
of ``AISHELL-DEV-TEST-SET/<device>/{dev,test}.tar.gz``, to be unpacked in place::

    AISHELL-2/                          --root (or the directory holding AISHELL-2/)
      iOS/data/
        wav.scp                         <utt>\\twav/<speaker>/<utt>.wav   (relative to iOS/data)
        trans.txt                       <utt>\\t<Chinese characters, no spaces>
        wav/C0001/IC0001W0001.wav
    AISHELL-DEV-TEST-SET/               inside --root, next to it, or --dev-test-root
      iOS/dev/{wav.scp,trans.txt,wav/}  same formats; also iOS/test, Android/{dev,test}, Mic/{dev,test}

(layout as read by Kaldi ``egs/aishell2/s5/local/prepare_data.sh``, ESPnet ``egs2/aishell2/asr1/local/data.sh``
and lhotse ``lhotse/recipes/aishell2.py``). The speaker is the wav's parent directory, as in the Kaldi recipe.
Transcripts are kept as released except whitespace between two CJK characters, which is removed. Keys are
``<split>_<device>_<utt>``. Score AISHELL-2 by character error rate: ``scoring.asr_metric=cer`` in the eval config.
"""

from __future__ import annotations

import argparse
import logging
import re
import shlex
import sys
from collections.abc import Iterator
from pathlib import Path

from data.corpora.common import (
    AudioRef,
    Corpus,
    Drop,
    Item,
    Segment,
    read_text_lines,
    require_dir,
    safe_key,
    split_pipe,
)

log = logging.getLogger("data.prepare")

KALDI_LAYOUT = ("a Kaldi data directory: wav.scp (<recording-id> <path or command |>) and text (<utterance-id> "
                "<transcript>), optionally segments, utt2spk, utt2lang")
AISHELL2_LAYOUT = ("AISHELL-2/<device>/data/{wav.scp,trans.txt,wav/} for train and "
                   "AISHELL-DEV-TEST-SET/<device>/{dev,test}/{wav.scp,trans.txt,wav/} for dev/test")
ARK_ENTRY = re.compile(r".+\.ark:\d+")
CJK_GAP = re.compile(r"(?<=[\u3400-\u9fff\uf900-\ufaff])\s+(?=[\u3400-\u9fff\uf900-\ufaff])")
DEVICES = ("iOS", "Android", "Mic")
AISHELL2_SPLITS = ("train", "dev", "test")
# ESPnet's AISHELL-2 recipe excludes this training utterance as broken.
AISHELL2_BAD = {"IC0803W0380"}

# Cuts [start, end) of the audio file on stdin and writes it to stdout as WAV. Self-contained (soundfile only) so
# that each segment of a piped recording pays for a bare interpreter, not for importing this project.
TRIM_PROGRAM = """import io, sys, soundfile as sf
start, end = float(sys.argv[1]), None if sys.argv[2] == "end" else float(sys.argv[2])
data = sys.stdin.buffer.read() or sys.exit("no audio on stdin: the wav.scp command failed")
with sf.SoundFile(io.BytesIO(data)) as f:
    first, stop = round(start * f.samplerate), f.frames if end is None else min(f.frames, round(end * f.samplerate))
    if first >= f.frames or stop <= first:
        sys.exit(f"segment {start}-{end} s is outside the {f.frames / f.samplerate:.3f} s recording")
    f.seek(first)
    out, pcm = io.BytesIO(), f.subtype in ("PCM_16", "PCM_24")
    sf.write(out, f.read(stop - first, always_2d=True), f.samplerate, f.subtype if pcm else "FLOAT", format="WAV")
sys.stdout.buffer.write(out.getvalue())
"""


def read_table(path: Path) -> dict[str, str]:
    """A Kaldi table ``<id> <rest of line>`` (space or tab separated) as {id: rest}; the first of repeated ids."""
    table: dict[str, str] = {}
    repeated = 0
    for line in read_text_lines(path):
        fields = line.split(maxsplit=1)
        if not fields:
            continue
        if fields[0] in table:
            repeated += 1
            continue
        table[fields[0]] = fields[1].strip() if len(fields) > 1 else ""
    if repeated:
        log.warning("%s: %d repeated ids; the first line of each is used", path, repeated)
    return table


def audio_base(root: Path, wav_scp: dict[str, str], given: Path | None) -> Path:
    """The directory that relative wav.scp paths are relative to (see the module docstring)."""
    if given is not None:
        return Path(given).resolve()
    for entry in wav_scp.values():
        if split_pipe(entry) is None and not ARK_ENTRY.fullmatch(entry) and not Path(entry).is_absolute():
            return root if (root / entry).exists() else root.parent.parent
    return root.parent.parent


def wav_entry_audio(entry: str, base: Path, start: float | None = None, end: float | None = None
                    ) -> AudioRef | Drop:
    """The AudioRef of a wav.scp entry (the whole recording, or [start, end) of it); a keyless Drop if unusable."""
    command = split_pipe(entry)
    if command is not None:
        # Kaldi runs wav.scp commands from the recipe directory: relative paths in them must resolve the same way.
        command = f"cd {shlex.quote(str(base))} && ( {command} )"
        if start is not None:
            end_arg = "end" if end is None else repr(end)
            command += f" | {shlex.quote(sys.executable)} -c {shlex.quote(TRIM_PROGRAM)} {start!r} {end_arg}"
        return AudioRef(command=command)
    if ARK_ENTRY.fullmatch(entry) or entry == "-":
        return Drop("", "unsupported_wav_entry", f"wav.scp entry {entry!r} is not a file or a command ending in |")
    path = Path(entry) if Path(entry).is_absolute() else base / entry
    if start is None:
        return AudioRef(path=path)
    return AudioRef(segments=(Segment(path, start, end),))


def parse_segment(utt: str, value: str) -> tuple[str, float, float | None] | Drop:
    """(recording id, start, end or None) of one segments line after the utterance id, or a Drop."""
    fields = value.split()
    if len(fields) == 4:
        return Drop(utt, "unsupported_channel", f"segment {value!r} selects channel {fields[3]}; import the "
                                                "channel as its own recording (e.g. a sox remix pipe) instead")
    try:
        if len(fields) != 3:
            raise ValueError("needs <recording-id> <start> <end>")
        start, end = float(fields[1]), float(fields[2])
    except ValueError as exc:
        return Drop(utt, "bad_segment", f"segments line {utt} {value!r}: {exc}")
    if start < 0 or (end != -1 and end <= start):
        return Drop(utt, "bad_segment", f"segments line {utt} {value!r}: empty or negative span")
    return fields[0], start, None if end == -1 else end


def scan_kaldi(args: argparse.Namespace) -> Iterator[Item | Drop]:
    root = require_dir(args.root, KALDI_LAYOUT).resolve()
    missing = [name for name in ("wav.scp", "text") if not (root / name).is_file()]
    if missing:
        raise FileNotFoundError(f"{root} has no {' or '.join(missing)}: expected {KALDI_LAYOUT}")
    wav_scp, texts = read_table(root / "wav.scp"), read_table(root / "text")
    segments = read_table(root / "segments") if (root / "segments").is_file() else None
    speakers = read_table(root / "utt2spk") if (root / "utt2spk").is_file() else {}
    langs = read_table(root / "utt2lang") if (root / "utt2lang").is_file() else {}
    base = audio_base(root, wav_scp, args.audio_base)
    log.info("%s: relative wav.scp paths and commands are resolved in %s (change with --audio-base)", root, base)
    split = args.split or root.name
    for utt, text in texts.items():
        key = safe_key(utt)
        if not text:
            yield Drop(key, "empty_transcript", f"{root / 'text'}: {utt} has no transcript")
            continue
        if segments is None:
            if utt not in wav_scp:
                yield Drop(key, "missing_audio", f"{utt} is in text but not in {root / 'wav.scp'}")
                continue
            audio = wav_entry_audio(wav_scp[utt], base)
        else:
            if utt not in segments:
                yield Drop(key, "missing_audio", f"{utt} is in text but not in {root / 'segments'}")
                continue
            span = parse_segment(utt, segments[utt])
            if isinstance(span, Drop):
                yield Drop(key, span.reason, span.detail)
                continue
            recording, start, end = span
            if recording not in wav_scp:
                yield Drop(key, "missing_audio", f"recording {recording} of {utt} is not in {root / 'wav.scp'}")
                continue
            audio = wav_entry_audio(wav_scp[recording], base, start, end)
        if isinstance(audio, Drop):
            yield Drop(key, audio.reason, audio.detail)
            continue
        meta = {"text": text, "lang": langs.get(utt, args.lang), "task": "asr", "split": split,
                "corpus": args.corpus_name}
        if utt in speakers:
            meta["speaker"] = speakers[utt]
        yield Item(key, audio, meta)
    untranscribed = sum(1 for utt in (wav_scp if segments is None else segments) if utt not in texts)
    if untranscribed:
        log.info("%s: %d utterances of %s have no line in text and are not imported", root, untranscribed,
                 "wav.scp" if segments is None else "segments")


def add_kaldi_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--lang", default="en", help="ISO 639-1 language of utterances not in utt2lang")
    parser.add_argument("--split", default=None, help="split name stored with each item (default: the directory name)")
    parser.add_argument("--audio-base", type=Path, default=None,
                        help="directory that relative wav.scp paths are relative to (default: the data directory "
                             "if the first relative path exists there, else the recipe directory two levels up)")
    parser.add_argument("--corpus-name", default="kaldi", help="corpus name stored with each item")


def aishell2_dirs(root: Path, splits: list[str], devices: list[str], dev_test_root: Path | None
                  ) -> list[tuple[str, str, Path]]:
    """(split, device, directory holding wav.scp and trans.txt) of every requested split and device."""
    require_dir(root, AISHELL2_LAYOUT)
    train_bases = [root, root / "AISHELL-2"]
    eval_bases = [dev_test_root] if dev_test_root else [root / "AISHELL-DEV-TEST-SET",
                                                        root.parent / "AISHELL-DEV-TEST-SET", root]
    found = []
    for split in splits:
        for device in devices:
            tried = [b / device / "data" for b in train_bases] if split == "train" else \
                [Path(b) / device / split for b in eval_bases]
            usable = [d for d in tried if (d / "wav.scp").is_file() and (d / "trans.txt").is_file()]
            if not usable:
                packed = [d.with_name(f"{split}.tar.gz") for d in tried if d.with_name(f"{split}.tar.gz").is_file()]
                hint = f"; unpack {packed[0]} in {packed[0].parent} first" if packed else ""
                raise FileNotFoundError(f"AISHELL-2 {split} ({device}): none of {', '.join(map(str, tried))} holds "
                                        f"wav.scp and trans.txt{hint}. Expected {AISHELL2_LAYOUT}; choose what to "
                                        f"import with --splits / --devices")
            found.append((split, device, usable[0]))
    return found


def scan_aishell2(args: argparse.Namespace) -> Iterator[Item | Drop]:
    for split, device, directory in aishell2_dirs(Path(args.root), args.splits, args.devices, args.dev_test_root):
        wav_scp, texts = read_table(directory / "wav.scp"), read_table(directory / "trans.txt")
        for utt, raw in texts.items():
            key = safe_key(f"{split}_{device}_{utt}")
            text = CJK_GAP.sub("", raw).strip()
            if utt in AISHELL2_BAD:
                yield Drop(key, "known_bad_utterance", f"{utt} is excluded by the ESPnet AISHELL-2 recipe")
            elif not text:
                yield Drop(key, "empty_transcript", f"{directory / 'trans.txt'}: {utt} has no transcript")
            elif utt not in wav_scp:
                yield Drop(key, "missing_audio", f"{utt} is in trans.txt but not in {directory / 'wav.scp'}")
            else:
                relative = Path(wav_scp[utt])
                meta = {"text": text, "lang": "zh", "task": "asr", "split": split, "corpus": "aishell2",
                        "speaker": relative.parent.name, "device": device}
                yield Item(key, AudioRef(path=directory / relative), meta)
        untranscribed = sum(1 for utt in wav_scp if utt not in texts)
        if untranscribed:
            log.info("%s: %d utterances of wav.scp have no transcript and are not imported", directory, untranscribed)


def add_aishell2_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--splits", nargs="+", default=list(AISHELL2_SPLITS), choices=AISHELL2_SPLITS,
                        help="splits to import (train is the released <device>/data directory)")
    parser.add_argument("--devices", nargs="+", default=["iOS"], choices=DEVICES,
                        help="recording channels to import (only iOS training data is free; dev/test have all three)")
    parser.add_argument("--dev-test-root", type=Path, default=None,
                        help="the unpacked AISHELL-DEV-TEST-SET directory (default: looked for in and next to --root)")


CORPORA = [
    Corpus("kaldi", "a Kaldi data directory (wav.scp, text, optional segments/utt2spk/utt2lang; --root is the data "
                    "directory, e.g. egs/<corpus>/s5/data/train)", scan_kaldi, add_kaldi_arguments),
    Corpus("aishell2", "AISHELL-2 Mandarin read speech (~1000 h; --root holds iOS/data/{wav.scp,trans.txt,wav/} and "
                       "AISHELL-DEV-TEST-SET/<device>/{dev,test}/; score with CER)", scan_aishell2,
           add_aishell2_arguments),
]
