"""The synthetic tasks (ASR per language, ST, SQA): what each utterance says, how it is voiced, its manifest lines.

Utterance ``i`` of task ``t`` is planned by :func:`make_plan` from ``random.Random`` seeded by
``SeedSequence([seed, task_id(t), i, 0])`` alone (texts from :mod:`data.synth.text`), so no utterance depends on
another; :func:`manifest_records` turns a rendered one into its JSONL lines (one per question for an SQA passage).
"""

from __future__ import annotations

import random
import zlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from data.synth import augment, text

if TYPE_CHECKING:
    from data.synth.config import SynthConfig

TASK_LANG = {"st": "en", "sqa": "en"}
"""Spoken language of the non-ASR tasks (English source speech, as in MuST-C / SQuAD)."""


# ----------------------------------------------------------------------------- planning


@dataclass(frozen=True)
class Utterance:
    """Everything needed to render one audio file; derived from (seed, task, index) only."""

    task: str
    """Task name: ``asr-<lang>``, ``st`` or ``sqa``."""
    index: int
    """Position in the task's deterministic sequence."""
    uid: str
    """Audio id (dot-free; becomes a WebDataset key)."""
    text: str
    """Transcript, spoken verbatim."""
    lang: str
    """Spoken language."""
    voice: str
    """espeak-ng voice string, e.g. ``en-gb+f3``."""
    speed: int
    """Words per minute."""
    pitch: int
    """espeak-ng pitch 0-99."""
    noise: str | None
    """Noise colour or None."""
    snr_db: float | None
    """SNR of the added noise, None without noise."""
    rt60: float | None
    """Reverb RT60 in seconds, None without reverb."""
    extra: dict = field(default_factory=dict)
    """Task fields: ``translations`` (st) or ``qas`` (sqa)."""


def task_id(task: str) -> int:
    """Stable integer id of a task name, so a language's data does not depend on the others."""
    return zlib.crc32(task.encode("utf-8"))


def _stream_seed(seed: int, task: str, index: int, stream: int) -> int:
    """Independent 64-bit seed for (seed, task, utterance, stream)."""
    return int(np.random.SeedSequence([seed, task_id(task), index, stream]).generate_state(1, np.uint64)[0])


def make_plan(cfg: SynthConfig, task: str, index: int, voices: dict[str, list[str]]) -> Utterance:
    """Plan utterance ``index`` of ``task``: text, voice, prosody and augmentation choices."""
    rng = random.Random(_stream_seed(cfg.seed, task, index, 0))
    extra: dict = {}
    if task.startswith("asr-"):
        lang = task[4:]
        uid = f"{task}-{index:07d}"
        txt = text.asr_sentence(lang, rng)
    elif task == "st":
        lang, uid = TASK_LANG[task], f"st-{index:07d}"
        ex = text.st_example(rng)
        txt = ex["en"]
        extra["translations"] = {tl: ex[tl] for tl in text.ST_TARGET_LANGS}
    elif task == "sqa":
        lang, uid = TASK_LANG[task], f"sqa-{index:07d}"
        ex = text.sqa_example(rng)
        txt = ex["context"]
        for qa in ex["qas"]:
            start, ans = qa["answer_start"], qa["answer"]
            if txt[start:start + len(ans)] != ans:
                raise ValueError(f"sqa_example gave answer {ans!r} not at offset {start} of its context")
        extra["qas"] = [dict(qa) for qa in ex["qas"]]
    else:
        raise ValueError(f"unknown task {task!r}")
    if not txt.strip():
        raise ValueError(f"empty text planned for {uid}")
    # Draw every value unconditionally, in a fixed order, so changing one probability does not
    # reshuffle the other choices of the same utterance.
    voice = rng.choice(voices[lang])
    speed, pitch = rng.randint(*cfg.speed), rng.randint(*cfg.pitch)
    use_noise, color = rng.random() < cfg.noise_prob, rng.choice(augment.NOISE_COLORS)
    snr = round(rng.uniform(*cfg.snr_db), 2)
    use_reverb, rt60 = rng.random() < cfg.reverb_prob, round(rng.uniform(*cfg.rt60), 3)
    return Utterance(task=task, index=index, uid=uid, text=txt, lang=lang, voice=voice, speed=speed,
                     pitch=pitch, noise=color if use_noise else None, snr_db=snr if use_noise else None,
                     rt60=rt60 if use_reverb else None, extra=extra)


# ----------------------------------------------------------------------------- manifest lines


SLOW_WPM, FAST_WPM = 145, 175
"""Speaking-rate label bounds in words per minute: slow <= 145 < normal < 175 <= fast."""


def paralinguistic_labels(utt: Utterance) -> dict[str, str]:
    """Labels a listener could hear, from how the utterance was rendered (finetuning's "para" task).

    Gender only where the voice says it: espeak-ng's plain voices and its m1..m8 variants are male, f1..f5 female;
    the named variants are left unlabelled rather than guessed.
    """
    variant = utt.voice.partition("+")[2]
    labels = {"speaking_rate": "slow" if utt.speed <= SLOW_WPM else "fast" if utt.speed >= FAST_WPM else "normal",
              "noise": "noisy" if utt.noise else "clean", "reverberation": "reverberant" if utt.rt60 else "dry"}
    if not variant or (variant[0] == "m" and variant[1:].isdigit()):
        labels["gender"] = "male"
    elif variant[0] == "f" and variant[1:].isdigit():
        labels["gender"] = "female"
    return labels


def manifest_records(utt: Utterance, n_samples: int, sample_rate: int) -> list[dict]:
    """Manifest lines of one rendered utterance (several for an SQA passage)."""
    base = {
        "id": utt.uid, "audio": f"audio/{utt.uid}.flac", "text": utt.text, "lang": utt.lang,
        "duration": round(n_samples / sample_rate, 3), "voice": utt.voice, "speed": utt.speed,
        "pitch": utt.pitch, "noise": utt.noise, "snr_db": utt.snr_db, "rt60": utt.rt60,
        "task": utt.task.split("-")[0], "labels": paralinguistic_labels(utt),
    }
    if utt.task == "st":
        return [{**base, "translations": utt.extra["translations"]}]
    if utt.task == "sqa":
        # Ids stay unique per line; the shared audio is named by the passage id.
        return [{**base, "id": f"{utt.uid}-q{q:02d}", "passage_id": utt.uid, "question": qa["question"],
                 "answer": qa["answer"], "answer_start": qa["answer_start"]}
                for q, qa in enumerate(utt.extra["qas"])]
    return [base]
