"""MuST-C v1 (English TED talks -> 8 languages), one speech-translation item per aligned segment.

Obtain it from FBK (https://ict.fbk.eu/must-c/, downloads at https://ict.fbk.eu/must-c-releases/, CC BY-NC-ND 4.0):
one ``MUSTC_v1.0_en-<tgt>.tar.gz`` per target language (de es fr it nl pt ro ru), unpacking to ``en-<tgt>/``::

    en-de/
      data/
        train/                      (also dev/, tst-COMMON/, tst-HE/)
          wav/ted_767.wav           one wav per whole talk
          txt/train.yaml            one list entry per segment, e.g.
                                    - {duration: 3.500000, offset: 16.080000, rW: 9, uW: 0,
                                       speaker_id: spk.767, wav: ted_767.wav}
          txt/train.en              English transcript, line i belongs to yaml entry i
          txt/train.de              German translation, line i belongs to yaml entry i

(layout as read by fairseq ``examples/speech_to_text/prep_mustc_data.py`` and lhotse
``lhotse/recipes/must_c.py``). ``--root`` is either one ``en-<tgt>`` directory or the directory holding several.

Every pair ships its own copy of the talk wavs and its own segmentation, but the English side of a talk is the same
recording, so a segment that several pairs cut at the same offset and duration (to the millisecond) of the same
talk becomes one item with several translations: ``<split>_<talk>_<offset-ms>_<duration-ms>``. With
``--no-merge-pairs`` every pair keeps its own items, keyed ``en-<tgt>_<split>_<talk>_<offset-ms>_<duration-ms>``.
An empty English line drops the segment as ``empty_transcript``, an empty target line as ``missing_translation``
(merged: only when no pair has a translation); a yaml and its text files that differ in length are a broken
download and stop the import.
"""

from __future__ import annotations

import argparse
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import yaml

from data.corpora.common import AudioRef, Corpus, Drop, Item, Segment, require_dir, safe_key

log = logging.getLogger("data.prepare")

SPLITS = ("train", "dev", "tst-COMMON", "tst-HE")
PAIR_DIR = re.compile(r"en-([a-z]{2,3})")
LAYOUT = ("en-<tgt>/data/{train,dev,tst-COMMON,tst-HE}/{wav/ted_<talk>.wav, txt/<split>.yaml, txt/<split>.en, "
          "txt/<split>.<tgt>} (MuST-C as unpacked from MUSTC_v1.0_en-<tgt>.tar.gz)")
# For yaml files not in the released one-entry-per-line form (see _flow_entries); libyaml is ~10x faster than the
# pure-Python loader on a ~230k-entry train yaml.
YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
# One released yaml line: a flow mapping of plain scalars (no quotes, escapes, comments or nesting).
FLOW_ENTRY = re.compile(r"-[ \t]+\{([^{}\[\]'\"#&*!|>%@`]*)\}[ \t]*")


@dataclass
class _Segment:
    """One yaml entry of one pair with its two text lines."""

    tgt: str
    wav: Path
    talk: str
    offset: float
    duration: float
    speaker: str
    english: str
    translation: str


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--pairs", nargs="+", default=None, metavar="TGT",
                        help="target languages, e.g. de fr (or en-de en-fr); default: every en-* under --root")
    parser.add_argument("--splits", nargs="+", default=list(SPLITS), choices=SPLITS, help="splits to import")
    parser.add_argument("--no-merge-pairs", dest="merge_pairs", action="store_false",
                        help="keep the segments of each pair apart instead of merging identical segments of "
                             "different pairs into one item with several translations")


def find_pairs(root: Path, wanted: list[str] | None = None) -> dict[str, Path]:
    """{target language: en-<tgt> directory} under ``root`` (itself one pair directory or the parent of several)."""
    require_dir(root, LAYOUT)
    match = PAIR_DIR.fullmatch(root.name)
    if match and (root / "data").is_dir():
        found = {match.group(1): root}
    else:
        found = {m.group(1): d for d in sorted(root.iterdir())
                 if (m := PAIR_DIR.fullmatch(d.name)) and (d / "data").is_dir()}
    if not found:
        raise FileNotFoundError(f"no MuST-C language pair under {root}: expected {root}/{LAYOUT}, or --root "
                                f"pointing at one en-<tgt> directory")
    if wanted is None:
        return found
    targets = [t.strip().removeprefix("en-") for entry in wanted for t in entry.split(",") if t.strip()]
    missing = [t for t in targets if t not in found]
    if missing:
        raise FileNotFoundError(f"--pairs {' '.join(missing)}: no {', '.join(f'en-{t}/data' for t in missing)} "
                                f"under {root} (found: {', '.join(f'en-{t}' for t in found)})")
    return {t: found[t] for t in sorted(set(targets))}


def read_lines(path: Path) -> list[str]:
    """The lines of a MuST-C text file, split at newlines only.

    str.splitlines would also split at U+2028, U+0085, form feeds and the like inside a TED sentence and shift every
    later line against the yaml; a final newline ends the last line rather than starting an empty one.
    """
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: expected {LAYOUT}")
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path} is not UTF-8 ({exc}); a broken download? unpack the archive again") from None
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()
    return [line.rstrip("\r").strip() for line in lines]


def read_yaml_entries(path: Path) -> list[dict]:
    """The segment list of ``<split>.yaml``; a ValueError naming the file when it is not one."""
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: expected {LAYOUT}")
    text = path.read_bytes().decode("utf-8-sig", errors="replace")
    entries = _flow_entries(text)
    if entries is None:  # not the one-mapping-per-line form MuST-C ships: let a YAML parser read it
        try:
            entries = yaml.load(text, Loader=YAML_LOADER)
        except yaml.YAMLError as exc:
            raise ValueError(f"{path} is not valid YAML ({exc}); a broken download?") from None
    if entries is None:
        return []
    if not isinstance(entries, list) or not all(isinstance(e, dict) and {"wav", "offset", "duration"} <= e.keys()
                                                for e in entries):
        raise ValueError(f"{path} is not a MuST-C segment list (- {{duration, offset, speaker_id, wav}} per line)")
    return entries


def _flow_entries(text: str) -> list[dict] | None:
    """The entries of a yaml list written one plain flow mapping per line, or None for anything else.

    Even libyaml's loader builds a train yaml (~230k entries) in about half a minute, per pair and per array task;
    the released files are ``- {duration: 3.5, offset: 16.08, ..., wav: ted_767.wav}`` lines without quotes,
    escapes or nesting, which this reads in a second. A line in any other form hands the file to the YAML parser.
    """
    entries = []
    for line in text.splitlines():
        match = FLOW_ENTRY.fullmatch(line)
        if match is None:
            if not line.strip() or line.strip() == "---":
                continue
            return None
        entry = {}
        for field in match.group(1).split(","):
            name, colon, value = field.partition(":")
            if not colon or not name.strip():
                return None
            entry[name.strip()] = value.strip()
        try:
            entry["offset"], entry["duration"] = float(entry["offset"]), float(entry["duration"])
        except (KeyError, ValueError):
            return None
        entries.append(entry)
    return entries


def read_split(tgt: str, pair_dir: Path, split: str) -> list[_Segment]:
    """The segments of one pair's split, the yaml entries zipped with the English and target lines."""
    split_dir = require_dir(pair_dir / "data" / split, f"{LAYOUT}; choose other splits with --splits")
    txt = require_dir(split_dir / "txt", LAYOUT)
    wav_dir = split_dir / "wav"
    yaml_path, en_path, tgt_path = txt / f"{split}.yaml", txt / f"{split}.en", txt / f"{split}.{tgt}"
    entries = read_yaml_entries(yaml_path)
    english, translations = read_lines(en_path), read_lines(tgt_path)
    if not len(entries) == len(english) == len(translations):
        raise ValueError(f"MuST-C en-{tgt} {split}: {yaml_path} has {len(entries)} segments but {en_path} has "
                         f"{len(english)} lines and {tgt_path} has {len(translations)}; they must match line for "
                         f"line (a broken or mixed download? unpack the archive again)")
    talks: dict[str, tuple[Path, str]] = {}  # one Path per talk, not per segment: a train split has ~230k segments
    segments = []
    for entry, en, tr in zip(entries, english, translations):
        name = str(entry["wav"])
        if name not in talks:
            talks[name] = (wav_dir / name, Path(name).stem)
        segments.append(_Segment(tgt, *talks[name], float(entry["offset"]), float(entry["duration"]),
                                 str(entry.get("speaker_id", "")), en, tr))
    return segments


def segment_id(split: str, seg: _Segment) -> str:
    """``<split>_<talk>_<offset-ms>_<duration-ms>``: the same for every pair that cut the same span of a talk."""
    return f"{split}_{seg.talk}_{round(seg.offset * 1000)}_{round(seg.duration * 1000)}"


def scan(args: argparse.Namespace) -> Iterator[Item | Drop]:
    """Items of the chosen pairs and splits, split by split; every pair's files are checked before any is used."""
    pairs = find_pairs(Path(args.root), getattr(args, "pairs", None))
    merge = getattr(args, "merge_pairs", True)
    splits = getattr(args, "splits", None) or list(SPLITS)
    log.info("MuST-C: pairs %s, splits %s, %s", ", ".join(f"en-{t}" for t in pairs), ", ".join(splits),
             "segments of different pairs merged" if merge else "pairs kept apart")
    for split in splits:
        segments = [seg for tgt, pair_dir in pairs.items() for seg in read_split(tgt, pair_dir, split)]
        if merge:
            yield from _merged_items(split, segments)
        else:
            yield from _pair_items(split, segments)


def _pair_items(split: str, segments: list[_Segment]) -> Iterator[Item | Drop]:
    for seg in segments:
        key = safe_key(f"en-{seg.tgt}_{segment_id(split, seg)}")
        if not seg.english:
            yield Drop(key, "empty_transcript", f"{seg.wav.name} at {seg.offset:.3f} s: empty English line")
        elif not seg.translation:
            yield Drop(key, "missing_translation", f"{seg.wav.name} at {seg.offset:.3f} s: empty {seg.tgt} line")
        else:
            yield _item(key, split, seg, seg.wav, seg.english, {seg.tgt: seg.translation})


def _merged_items(split: str, segments: list[_Segment]) -> Iterator[Item | Drop]:
    groups: dict[str, dict[str, _Segment]] = {}
    for seg in segments:  # pairs in sorted order, each in yaml order: the groups' order is deterministic
        key = safe_key(segment_id(split, seg))
        by_pair = groups.setdefault(key, {})
        if seg.tgt in by_pair:
            yield Drop(key, "duplicate_id", f"en-{seg.tgt} lists {seg.wav.name} at {seg.offset:.3f} s twice; "
                                            f"the first is kept")
        else:
            by_pair[seg.tgt] = seg
    wav_exists: dict[Path, bool] = {}
    for key, by_pair in groups.items():
        group = list(by_pair.values())
        english = next((seg.english for seg in group if seg.english), "")
        translations = {seg.tgt: seg.translation for seg in group if seg.translation}
        where = f"{group[0].wav.name} at {group[0].offset:.3f} s ({', '.join(f'en-{t}' for t in by_pair)})"
        if not english:
            yield Drop(key, "empty_transcript", f"{where}: empty English line")
            continue
        if not translations:
            yield Drop(key, "missing_translation", f"{where}: every target line is empty")
            continue
        # Every pair has its own copy of the talk; read the first that is there (a partial download of one pair
        # should not lose a segment the others have).
        for seg in group:
            if seg.wav not in wav_exists:
                wav_exists[seg.wav] = seg.wav.is_file()
        wav = next((seg.wav for seg in group if wav_exists[seg.wav]), group[0].wav)
        yield _item(key, split, group[0], wav, english, translations)


def _item(key: str, split: str, seg: _Segment, wav: Path, english: str, translations: dict[str, str]) -> Item:
    meta = {"text": english, "lang": "en", "task": "st", "translations": translations, "split": split,
            "corpus": "mustc", "speaker": seg.speaker, "talk": seg.talk, "offset": round(seg.offset, 3)}
    return Item(key, AudioRef(segments=(Segment(wav, seg.offset, seg.offset + seg.duration),)), meta)


CORPORA = [
    Corpus("mustc", "MuST-C v1 English->X speech translation: --root en-<tgt>/ or its parent; segments of "
                    "en-<tgt>/data/<split>/wav/ted_*.wav by txt/<split>.yaml with txt/<split>.{en,<tgt>}",
           scan, add_arguments),
]
