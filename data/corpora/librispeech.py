"""LibriSpeech, Multilingual LibriSpeech and Russian LibriSpeech: read audiobook speech (LibriVox) in their layouts.

LibriSpeech (``librispeech``, openslr.org/12, one tarball per subset, all unpacking into ``LibriSpeech/``)::

    LibriSpeech/
        SPEAKERS.TXT                       ';' comments, then "ID | SEX | SUBSET | MINUTES | NAME" rows
        train-clean-100/ ... test-other/   (any of the seven subsets)
            <speaker>/<chapter>/
                <speaker>-<chapter>.trans.txt   "<speaker>-<chapter>-<nnnn> TRANSCRIPT IN UPPER CASE" per line
                <speaker>-<chapter>-<nnnn>.flac 16 kHz

Multilingual LibriSpeech (``mls``, openslr.org/94, ``mls_<language>.tar.gz`` with FLAC or
``mls_<language>_opus.tar.gz`` with Opus)::

    mls_<language>[_opus]/
        metainfo.txt                       " SPEAKER | GENDER | PARTITION | MINUTES | BOOK ID | TITLE | CHAPTER"
        train/ dev/ test/
            transcripts.txt                "<speaker>_<book>_<nnnnnn>\\t<lower-case transcript>"
            segments.txt                   "<id>\\t<LibriVox mp3 url>\\t<start>\\t<end>" (offsets in the source
                                           mp3s, not in our files: unused)
            audio/<speaker>/<book>/<speaker>_<book>_<nnnnnn>.flac (or .opus)
        train/limited_supervision/{1hr/0..5,9hr}/handles.txt   (subsets of train: unused)

Russian LibriSpeech (``ruls``, openslr.org/96, ``ruls_data.tar.gz``; built with the NeMo segmentation tool)::

    ruls_data/
        train/ dev/ test/
            manifest.json                  NeMo JSON lines: {"audio_filepath": "audio/<speaker>/<book>/<name>.wav",
                                           "text": normalised transcript, "text_no_preprocessing": book text,
                                           "duration": s, "score": alignment score}
            audio/<speaker>/<book>/*.wav   16 kHz mono

Transcripts are stored as each corpus publishes them (LibriSpeech upper case, MLS and RuLS lower case without
punctuation); the loader normalises text. Speaker genders from SPEAKERS.TXT / metainfo.txt become
``labels={"gender": ...}``. A listed utterance whose audio file is missing is reported by the writer as
``missing_audio``; an empty transcript is dropped here as ``empty_transcript``.
"""

from __future__ import annotations

import argparse
import json
import re
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

from data.corpora.common import AudioRef, Corpus, Drop, Item, iter_nonempty, read_text_lines, require_dir, safe_key

LIBRISPEECH_SUBSETS = ("train-clean-100", "train-clean-360", "train-other-500", "dev-clean", "dev-other",
                       "test-clean", "test-other")
LIBRISPEECH_LAYOUT = ("LibriSpeech/<subset>/<speaker>/<chapter>/<speaker>-<chapter>.trans.txt and <utt-id>.flac "
                      "(--root is the LibriSpeech directory or its parent)")
MLS_LANGUAGES = {"english": "en", "german": "de", "dutch": "nl", "french": "fr", "spanish": "es", "italian": "it",
                 "portuguese": "pt", "polish": "pl"}
MLS_SPLITS = ("train", "dev", "test")
MLS_LAYOUT = ("mls_<language>[_opus]/{train,dev,test}/transcripts.txt and audio/<speaker>/<book>/<id>.flac|.opus "
              "(--root is one mls_<language> directory or a directory holding several)")
RULS_SPLITS = ("train", "dev", "test")
RULS_LAYOUT = ("ruls_data/{train,dev,test}/manifest.json and audio/<speaker>/<book>/*.wav "
               "(--root is ruls_data or its parent)")
GENDERS = {"F": "female", "M": "male"}


def _comma_list(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _gender_table(path: Path, comment: str | None = None) -> dict[str, str]:
    """Speaker id -> "female"/"male" from a '|'-separated table whose first two columns are id and F/M.

    Only those two columns are read: names and titles (which may themselves contain '|' or stray bytes) are never
    parsed, so the file is decoded leniently instead of failing a whole import over optional metadata.
    """
    if not path.is_file():
        return {}
    genders = {}
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        if comment and line.lstrip().startswith(comment):
            continue
        columns = [c.strip() for c in line.split("|")]
        if len(columns) >= 2 and columns[0].isdigit() and columns[1].upper() in GENDERS:
            genders[columns[0]] = GENDERS[columns[1].upper()]
    return genders


def _asr_meta(text: str, lang: str, split: str, corpus: str, speaker: str | None, genders: dict[str, str],
              **extra) -> dict:
    """Shard metadata of one ASR utterance; the gender label only where the corpus states it."""
    meta = {"text": text, "lang": lang, "task": "asr", "split": split, "corpus": corpus, **extra}
    if speaker:
        meta["speaker"] = speaker
        if speaker in genders:
            meta["labels"] = {"gender": genders[speaker]}
    return meta


# --- LibriSpeech -------------------------------------------------------------------------------------------------


def _librispeech_subsets(base: Path, requested: str | None) -> list[Path]:
    if requested:
        dirs = [base / name for name in _comma_list(requested)]
        missing = [d.name for d in dirs if not d.is_dir()]
        if missing:
            raise FileNotFoundError(f"--subsets {missing} not found under {base}: expected {LIBRISPEECH_LAYOUT}")
        return dirs
    dirs = [base / name for name in LIBRISPEECH_SUBSETS if (base / name).is_dir()]
    if not dirs:
        hint = f" ({base} looks like a subset: pass its parent)" if base.name in LIBRISPEECH_SUBSETS else ""
        raise FileNotFoundError(f"no LibriSpeech subset ({', '.join(LIBRISPEECH_SUBSETS)}) under {base}{hint}: "
                                f"expected {LIBRISPEECH_LAYOUT}")
    return dirs


def scan_librispeech(args: argparse.Namespace) -> Iterator[Item | Drop]:
    """One item per line of every ``<speaker>-<chapter>.trans.txt`` of the selected subsets."""
    root = require_dir(args.root, LIBRISPEECH_LAYOUT)
    base = root / "LibriSpeech" if (root / "LibriSpeech").is_dir() else root
    genders = _gender_table(base / "SPEAKERS.TXT", comment=";")
    for subset_dir in _librispeech_subsets(base, args.subsets):
        transcripts = sorted(subset_dir.glob("*/*/*.trans.txt"))
        if not transcripts:
            raise ValueError(f"{subset_dir} holds no <speaker>/<chapter>/<speaker>-<chapter>.trans.txt: "
                             f"expected {LIBRISPEECH_LAYOUT}")
        for trans in transcripts:
            chapter_dir = trans.parent
            speaker, chapter = chapter_dir.parent.name, chapter_dir.name
            for line_no, line in iter_nonempty(read_text_lines(trans)):
                utt_id, _, text = line.partition(" ")
                key = safe_key(utt_id)
                if not text.strip():
                    yield Drop(key, "empty_transcript", f"{trans}:{line_no} has an id but no words")
                    continue
                meta = _asr_meta(text.strip(), "en", subset_dir.name, "librispeech", speaker, genders,
                                 chapter=chapter)
                yield Item(key, AudioRef(path=chapter_dir / f"{utt_id}.flac"), meta)


def _librispeech_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--subsets", default=None,
                        help=f"comma list of subset directories (default: every one present of "
                             f"{','.join(LIBRISPEECH_SUBSETS)})")


# --- Multilingual LibriSpeech ------------------------------------------------------------------------------------


def _mls_language(name: str) -> str | None:
    """'mls_german_opus' -> 'german'; None for other names (mls_lm_* language-model archives included)."""
    m = re.fullmatch(r"mls_([a-z]+?)(_opus)?", name)
    return m.group(1) if m and m.group(1) in MLS_LANGUAGES else None


def _is_mls_language_dir(path: Path) -> bool:
    return any((path / split / "transcripts.txt").is_file() for split in MLS_SPLITS)


def _wanted_languages(requested: str | None) -> set[str] | None:
    """--languages as MLS language names; each entry may be a name (german) or an ISO code (de)."""
    if not requested:
        return None
    by_code = {code: name for name, code in MLS_LANGUAGES.items()}
    wanted = set()
    for entry in _comma_list(requested.lower()):
        if entry not in MLS_LANGUAGES and entry not in by_code:
            raise ValueError(f"unknown MLS language {entry!r}; choose from {sorted(MLS_LANGUAGES)} or their codes")
        wanted.add(by_code.get(entry, entry))
    return wanted


def _mls_language_dirs(args: argparse.Namespace) -> list[tuple[str, Path]]:
    """(language name, directory) pairs to import, sorted by language."""
    root = require_dir(args.root, MLS_LAYOUT)
    wanted = _wanted_languages(args.languages)
    if _is_mls_language_dir(root):
        language = _mls_language(root.name)
        if language is None and wanted is not None and len(wanted) == 1:
            language = next(iter(wanted))  # a renamed directory: the user says which language it is
        if language is None:
            raise ValueError(f"cannot tell the language of {root} from its name; keep the mls_<language>[_opus] name "
                             f"or pass --languages with one language")
        return [(language, root)]
    found: dict[str, Path] = {}
    for child in sorted(root.iterdir()):
        language = _mls_language(child.name)
        if language is None or not child.is_dir() or not _is_mls_language_dir(child):
            continue
        # The FLAC and Opus releases of one language hold the same utterances: keep one, the lossless one.
        if language not in found or found[language].name.endswith("_opus"):
            found[language] = child
    if wanted is not None:
        missing = sorted(wanted - set(found))
        if missing:
            raise FileNotFoundError(f"MLS languages {missing} not found under {root}: expected {MLS_LAYOUT}")
        found = {k: v for k, v in found.items() if k in wanted}
    if not found:
        raise FileNotFoundError(f"no MLS language directory under {root}: expected {MLS_LAYOUT}")
    return sorted(found.items())


def _mls_audio_suffix(lang_dir: Path) -> str:
    if lang_dir.name.endswith("_opus"):
        return ".opus"
    if _mls_language(lang_dir.name):
        return ".flac"
    # A renamed directory: look at one file (the first found, no full listing).
    for split in MLS_SPLITS:
        first = next((lang_dir / split / "audio").glob("*/*/*.*"), None)
        if first is not None:
            return first.suffix
    return ".flac"


def scan_mls(args: argparse.Namespace) -> Iterator[Item | Drop]:
    """One item per ``transcripts.txt`` line of the selected splits of every selected language."""
    splits = _comma_list(args.splits)
    unknown = sorted(set(splits) - set(MLS_SPLITS))
    if unknown:
        raise ValueError(f"unknown MLS splits {unknown}; choose from {','.join(MLS_SPLITS)}")
    for language, lang_dir in _mls_language_dirs(args):
        code, suffix = MLS_LANGUAGES[language], _mls_audio_suffix(lang_dir)
        genders = _gender_table(lang_dir / "metainfo.txt")
        for split in splits:
            transcripts = lang_dir / split / "transcripts.txt"
            if not transcripts.is_file():
                raise FileNotFoundError(f"{transcripts} not found: expected {MLS_LAYOUT}")
            for line_no, line in iter_nonempty(read_text_lines(transcripts)):
                utt_id, text = line.split("\t", 1) if "\t" in line else (line.split(maxsplit=1) + [""])[:2]
                key = safe_key(f"{code}_{utt_id}")
                parts = utt_id.split("_")
                if len(parts) != 3:
                    yield Drop(key, "bad_transcript_line", f"{transcripts}:{line_no}: id {utt_id!r} is not "
                                                           f"<speaker>_<book>_<n>")
                    continue
                if not text.strip():
                    yield Drop(key, "empty_transcript", f"{transcripts}:{line_no} has an id but no words")
                    continue
                speaker, book, _ = parts
                audio = lang_dir / split / "audio" / speaker / book / f"{utt_id}{suffix}"
                meta = _asr_meta(text.strip(), code, split, "mls", speaker, genders, book=book)
                yield Item(key, AudioRef(path=audio), meta)


def _mls_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--splits", default=",".join(MLS_SPLITS), help="comma list of train,dev,test")
    parser.add_argument("--languages", default=None,
                        help=f"comma list of languages to import from a parent directory, names or codes "
                             f"({','.join(MLS_LANGUAGES)}; default: every one present)")


# --- Russian LibriSpeech -----------------------------------------------------------------------------------------


def _manifest_records(path: Path) -> Iterator[tuple[int, dict | None, str]]:
    """(line number, record or None, error) of a NeMo manifest: JSON lines, or one JSON list as some copies have."""
    lines = read_text_lines(path)
    first = next((line for _, line in iter_nonempty(lines)), "")
    if first.startswith("["):
        try:
            records = json.loads("\n".join(lines))
        except ValueError as exc:
            raise ValueError(f"{path} is neither JSON lines nor a JSON list ({exc})") from None
        for i, record in enumerate(records, 1):
            yield i, record if isinstance(record, dict) else None, "not an object"
        return
    for line_no, line in iter_nonempty(lines):
        try:
            record = json.loads(line)
        except ValueError as exc:
            yield line_no, None, f"not JSON ({exc})"
            continue
        yield line_no, record if isinstance(record, dict) else None, "not an object"


def _below_audio(rel: PurePosixPath) -> tuple[str, ...]:
    """The path parts below the last ``audio`` directory (<speaker>/<book>/<file>); the file name if there is none."""
    parts = rel.parts
    audio_dirs = [i for i, part in enumerate(parts[:-1]) if part == "audio"]
    if audio_dirs:
        return parts[audio_dirs[-1] + 1:]
    return parts[-1:] if rel.is_absolute() else parts


def _ruls_base(root: Path) -> Path:
    root = require_dir(root, RULS_LAYOUT)
    return root / "ruls_data" if (root / "ruls_data").is_dir() else root


def scan_ruls(args: argparse.Namespace) -> Iterator[Item | Drop]:
    """One item per manifest line of the selected splits."""
    base = _ruls_base(args.root)
    splits = _comma_list(args.splits)
    if not any((base / split / "manifest.json").is_file() for split in splits):
        raise FileNotFoundError(f"no {{{','.join(splits)}}}/manifest.json under {base}: expected {RULS_LAYOUT}")
    for split in splits:
        split_dir = base / split
        manifest = split_dir / "manifest.json"
        if not manifest.is_file():
            raise FileNotFoundError(f"{manifest} not found: expected {RULS_LAYOUT}")
        for line_no, record, error in _manifest_records(manifest):
            where = f"{manifest}:{line_no}"
            audio_path = record.get("audio_filepath") if record else None
            if not isinstance(audio_path, str) or not audio_path.strip():
                yield Drop(safe_key(f"{split}_line{line_no}"), "bad_manifest_line",
                           f"{where}: {error if record is None else 'no audio_filepath'}")
                continue
            rel = PurePosixPath(audio_path.strip().replace("\\", "/"))
            inside = _below_audio(rel)
            key = safe_key(f"{split}_{PurePosixPath(*inside).with_suffix('')}")
            text = record.get("text")
            if not isinstance(text, str) or not text.strip():
                yield Drop(key, "empty_transcript", f"{where}: text is {text!r}")
                continue
            extra = {"book": inside[1]} if len(inside) >= 3 else {}  # audio/<speaker>/<book>/<file>
            if isinstance(record.get("text_no_preprocessing"), str):
                extra["text_no_preprocessing"] = record["text_no_preprocessing"]
            if isinstance(record.get("score"), (int, float)):
                extra["alignment_score"] = record["score"]
            meta = _asr_meta(text.strip(), "ru", split, "ruls", inside[0] if len(inside) >= 3 else None, {}, **extra)
            audio = Path(rel) if rel.is_absolute() else split_dir / rel
            yield Item(key, AudioRef(path=audio), meta)


def _ruls_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--splits", default=",".join(RULS_SPLITS), help="comma list of train,dev,test")


CORPORA = [
    Corpus("librispeech", "LibriSpeech (openslr 12), English read speech: LibriSpeech/<subset>/<speaker>/<chapter>/"
                          "*.trans.txt + *.flac", scan_librispeech, _librispeech_arguments),
    Corpus("mls", "Multilingual LibriSpeech (openslr 94), 8 languages: mls_<language>[_opus]/{train,dev,test}/"
                  "transcripts.txt + audio/<speaker>/<book>/*.flac|opus", scan_mls, _mls_arguments),
    Corpus("ruls", "Russian LibriSpeech (openslr 96): ruls_data/{train,dev,test}/manifest.json (NeMo) + audio/*.wav",
           scan_ruls, _ruls_arguments),
]
