"""Spoken-SQuAD (Li et al., Interspeech 2018): SQuAD v1.1 passages read by Google TTS, one SQA item per question.

Obtain it from https://github.com/chiahsuan156/Spoken-SQuAD (now github.com/Chia-Hsuan-Lee/Spoken-SQuAD; CC BY-SA
4.0): clone the repository for the JSON files and run its ``download_audio.sh``, which fetches the ~50 GB
``http://speech.ee.ntu.edu.tw/~chiahsuan/Spoken-SQuAD/Spoken-SQuAD_audio.zip``. That archive holds two more zips,
``Spoken-SQuAD_audio/train_wav.zip`` and ``Spoken-SQuAD_audio/dev_wav.zip``; unzip both in place::

    <root>/
      spoken_train-v1.1.json          SQuAD v1.1 format; each "context" is the CMU Sphinx ASR transcript of the
      spoken_test-v1.1.json           passage audio, "answers" hold {"text", "answer_start"} spans into it
      Spoken-SQuAD_audio/             (train_wav/ and dev_wav/ directly under <root> are found as well)
        train_wav/<topic>_<paragraph>_<sentence>.wav     one 24 kHz wav per sentence, all indices 0-based,
        dev_wav/<topic>_<paragraph>_<sentence>.wav       following the order of the articles and paragraphs
                                                         in the JSON file; dev_wav/ is the audio of
                                                         spoken_test-v1.1.json (built from the SQuAD dev set)

The test set is SQuAD's dev set, so the released test json pairs with ``dev_wav/``; the noisy test variants
(``spoken_test-v1.1_WER54.json``, ``spoken_dev-v1.1_WER44.json``) have no released audio and are not imported.

Every question becomes one item whose audio is the passage's sentence wavs concatenated in sentence order and whose
``text`` is the ASR context. The passage's sentence count is read from the directory listing and checked against
the context: the ASR transcript of each sentence wav ends in a period (Sphinx itself writes none: "n f l", "m v p"),
so a context with more sentence periods than wavs, or a gap in the sentence numbers, means missing audio and every
question of that passage is dropped as ``missing_audio``. Questions without a gold answer are dropped as
``no_answer``. Passages longer than ``--max-duration`` (150 s by default) are dropped by the writer as ``too_long``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

from data.corpora.common import AudioRef, Corpus, Drop, Item, Segment, require_dir, safe_key

CORPUS = "spoken-squad"
# split name -> (released json, sentence wav folder inside Spoken-SQuAD_audio/)
SPLITS = {"train": ("spoken_train-v1.1.json", "train_wav"), "test": ("spoken_test-v1.1.json", "dev_wav")}
AUDIO_DIR = "Spoken-SQuAD_audio"
LAYOUT = ("spoken_{train,test}-v1.1.json and Spoken-SQuAD_audio/{train_wav,dev_wav}/<topic>_<paragraph>_<sentence>"
          ".wav (the Spoken-SQuAD GitHub JSON files, and Spoken-SQuAD_audio.zip with its inner zips unpacked)")
SENTENCE_WAV = re.compile(r"(\d+)_(\d+)_(\d+)\.wav")
# A sentence ends where the transcript of one sentence wav was joined to the next ("... the p. they defeated ...").
SENTENCE_END = re.compile(r"\.(?=\s|$)")
MISSING_NAMED = 3


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--splits", nargs="+", default=list(SPLITS), choices=list(SPLITS),
                        help="splits to import (test = spoken_test-v1.1.json with the dev_wav/ audio)")


def find_audio_dir(root: Path, folder: str) -> Path:
    """The sentence wav folder of one split: under Spoken-SQuAD_audio/ as unpacked, or directly under ``root``."""
    candidates = [root / AUDIO_DIR / folder, root / folder]
    for path in candidates:
        if path.is_dir():
            # An inner zip unpacked into a folder of its own name leaves train_wav/train_wav/: look one level down.
            return path / folder if (path / folder).is_dir() else path
    raise FileNotFoundError(f"no {folder}/ under {root} (looked for {candidates[0]} and {candidates[1]}): expected "
                            f"{LAYOUT}; unzip Spoken-SQuAD_audio/{folder}.zip from the audio download")


def list_sentence_wavs(audio_dir: Path) -> dict[tuple[int, int], set[int]]:
    """{(topic, paragraph): sentence indices} of the wavs in ``audio_dir``: one listing instead of a stat per file."""
    found: dict[tuple[int, int], set[int]] = defaultdict(set)
    with os.scandir(audio_dir) as entries:
        for entry in entries:
            match = SENTENCE_WAV.fullmatch(entry.name)
            if match:
                topic, paragraph, sentence = map(int, match.groups())
                found[topic, paragraph].add(sentence)
    return found


def load_squad_json(path: Path) -> list[dict]:
    """The ``data`` list (articles) of a SQuAD-format file, a clear error if it is not one."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8-sig"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise ValueError(f"{path} is not a UTF-8 JSON file ({exc}); expected the released {path.name}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("data"), list):
        raise ValueError(f"{path} has no 'data' list of articles: expected SQuAD v1.1 format "
                         '({"data": [{"title", "paragraphs": [{"context", "qas"}]}]})')
    return doc["data"]


def count_sentences(context: str) -> int:
    """How many sentence wavs the ASR context was transcribed from (one trailing period per sentence, at least 1)."""
    return max(1, len(SENTENCE_END.findall(context)))


def passage_audio(audio_dir: Path, topic: int, paragraph: int, found: set[int], context: str
                  ) -> tuple[AudioRef | None, str]:
    """The passage's sentence wavs in sentence order, or None and why they are incomplete."""
    n_sentences = max(count_sentences(context), max(found) + 1 if found else 0)
    missing = [s for s in range(n_sentences) if s not in found]
    if missing:
        names = ", ".join(f"{topic}_{paragraph}_{s}.wav" for s in missing[:MISSING_NAMED])
        more = f" and {len(missing) - MISSING_NAMED} more" if len(missing) > MISSING_NAMED else ""
        return None, f"{len(missing)} of {n_sentences} sentence wavs missing in {audio_dir}: {names}{more}"
    paths = (audio_dir / f"{topic}_{paragraph}_{s}.wav" for s in range(n_sentences))
    return AudioRef(segments=tuple(Segment(p) for p in paths)), ""


def gold_answers(qa: dict) -> list[dict]:
    """The answers of one question that have a non-blank text, in their published order."""
    answers = qa.get("answers") or []
    return [a for a in answers if isinstance(a, dict) and str(a.get("text", "")).strip()]


def scan_split(root: Path, split: str) -> Iterator[Item | Drop]:
    """Items and drops of one split, in the order of the JSON file."""
    json_name, folder = SPLITS[split]
    articles = load_squad_json(root / json_name)
    audio_dir = find_audio_dir(root, folder)
    wavs = list_sentence_wavs(audio_dir)
    for topic, article in enumerate(articles):
        title = str(article.get("title", ""))
        for paragraph, para in enumerate(article.get("paragraphs") or []):
            context = str(para.get("context", "")).strip()
            qas = para.get("qas") or []
            passage_id = f"{split}-{topic}_{paragraph}"
            audio, why_missing = passage_audio(audio_dir, topic, paragraph, wavs.get((topic, paragraph), set()),
                                               context)
            for q, qa in enumerate(qas):
                # SQuAD question ids are unique across the dataset; the split prefix keeps train and test apart
                # should a user's files ever share one.
                key = safe_key(f"{split}-{qa.get('id') or f'{topic}_{paragraph}_q{q}'}")
                question = str(qa.get("question", "")).strip()
                answers = gold_answers(qa)
                if audio is None:
                    yield Drop(key, "missing_audio", why_missing)
                elif not context:
                    yield Drop(key, "empty_transcript", f"passage {passage_id} has an empty context")
                elif not question:
                    yield Drop(key, "empty_question", f"question {q} of passage {passage_id} has no text")
                elif not answers:
                    yield Drop(key, "no_answer", f"question {qa.get('id')!r} of passage {passage_id} has no answer")
                else:
                    yield Item(key, audio, {
                        "text": context, "lang": "en", "task": "sqa", "split": split, "corpus": CORPUS,
                        "question": question, "answer": answers[0]["text"],
                        "answer_start": int(answers[0].get("answer_start", -1)),
                        "answers": [a["text"] for a in answers], "passage_id": passage_id,
                        "question_id": str(qa.get("id", "")), "title": title,
                    })


def scan(args: argparse.Namespace) -> Iterator[Item | Drop]:
    """Every requested split of the Spoken-SQuAD release under ``args.root``."""
    root = require_dir(Path(args.root), LAYOUT)
    missing = [SPLITS[s][0] for s in args.splits if not (root / SPLITS[s][0]).is_file()]
    if missing:
        raise FileNotFoundError(f"{', '.join(missing)} not found in {root}: expected {LAYOUT} (choose the splits "
                                f"you have with --splits)")
    for split in args.splits:
        yield from scan_split(root, split)


CORPORA = [
    Corpus(
        CORPUS,
        "Spoken-SQuAD (TTS-read SQuAD v1.1, ASR contexts), one SQA item per question: spoken_{train,test}-v1.1.json "
        "+ Spoken-SQuAD_audio/{train_wav,dev_wav}/<topic>_<paragraph>_<sentence>.wav concatenated per passage",
        scan,
        add_arguments,
        defaults={"max_duration": 150.0, "utts_per_shard": 500},
    ),
]
