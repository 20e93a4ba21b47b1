"""Synthetic multilingual speech corpus (ASR / ST / SQA) made with espeak-ng.

    python -m data.synth --out DIR --hours 1 --langs en,ru,de --seed 0 [--st-hours 0.5 --sqa-hours 0.5]

Layout written under ``DIR``::

    asr-<lang>/manifest.jsonl, asr-<lang>/audio/asr-<lang>-0000000.flac, ...
    st/manifest.jsonl      English speech of ``text.st_example()["en"]`` + ``translations``
    sqa/manifest.jsonl     one line per question; the lines of a passage share one FLAC file
    synth.json             config, counts, hours, wall time, voices used

Determinism: utterance ``i`` of task ``t`` is planned from ``random.Random`` seeded by
``SeedSequence([seed, task_id(t), i, 0])`` and its augmentation noise comes from
``default_rng([seed, task_id(t), i, 1])``; nothing depends on other utterances, so the output
is the same for any worker count. Utterances are kept in index order until the cumulative
duration first reaches the task's target; results computed ahead in parallel are discarded.
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import os
import random
import re
import shutil
import subprocess
import sys
import time
import zlib
from collections import Counter, deque
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
from tqdm import tqdm

from data import augment, text

logger = logging.getLogger("data.synth")

BASE_VOICES: dict[str, tuple[str, ...]] = {
    "en": ("en-us", "en-gb", "en-gb-scotland", "en-gb-x-rp", "en-gb-x-gbclan", "en-gb-x-gbcwmd",
           "en-029", "en-us-nyc"),
    "de": ("de",),
    "ru": ("ru", "ru-lv"),
    "fr": ("fr-fr", "fr-be", "fr-ch"),
    "es": ("es", "es-419"),
    "it": ("it",),
}
"""espeak-ng language voices per corpus language (mbrola voices are deliberately absent)."""

VARIANTS: tuple[str, ...] = (
    "m1", "m2", "m3", "m4", "m5", "m6", "m7", "m8", "f1", "f2", "f3", "f4", "f5",
    "Alex", "Alicia", "Andrea", "Andy", "Annie", "Denis", "Diogo", "Gene", "Gene2", "Henrique",
    "Hugo", "Jacky", "Lee", "Marco", "Mario", "Michael", "Mike", "Nguyen", "adam", "anika",
    "antonio", "aunty", "belinda", "benjamin", "boris", "david", "ed", "edward", "edward2",
    "grandma", "grandpa", "gustave", "iven", "iven2", "iven3", "iven4", "john", "klatt",
    "klatt2", "klatt3", "klatt4", "linda", "marcelo", "max", "michel", "miguel", "norbert",
    "pablo", "paul", "pedro", "quincy", "rob", "robert", "sandro", "shelby", "steph", "steph2",
    "steph3", "travis", "victor", "zac",
)
"""Curated ``+variant`` names (espeak-ng file names). Left out on purpose: whispered or unvoiced
(whisper, whisperf, caleb), heavy echo / robot effects (robosoft*, RicishayMax*, UniRobot,
anikaRobot, announcer, Demonic, Tweaky), speed hacks (fast) and names with spaces. espeak-ng
silently falls back to the plain voice for an unknown variant, so each one is checked against
``espeak-ng --voices=variant`` before use."""

SUPPORTED_LANGS: tuple[str, ...] = tuple(lang for lang in text.ASR_LANGS if lang in BASE_VOICES)
"""Languages that have both a text generator and espeak-ng voices."""

TASK_LANG = {"st": "en", "sqa": "en"}
"""Spoken language of the non-ASR tasks (English source speech, as in MuST-C / SQuAD)."""

ESPEAK_RATE = 22050
"""Native output rate of espeak-ng voices."""


@dataclass
class SynthConfig:
    """Settings of one synthetic corpus run (``python -m data.synth``)."""

    out: Path
    """Output directory; must be empty or missing unless ``overwrite``."""
    hours: float
    """Total ASR hours, split over ``langs`` equally unless ``lang_weights`` is given."""
    langs: tuple[str, ...] = ("en",)
    """ASR languages (a comma-separated string is accepted)."""
    seed: int = 0
    """Seed of everything random: texts, voices, prosody, augmentation."""
    st_hours: float = 0.0
    """Hours of English speech with de/fr/es/it translations (0 = no ST manifest)."""
    sqa_hours: float = 0.0
    """Hours of spoken passages with questions (0 = no SQA manifest)."""
    lang_weights: dict[str, float] | None = None
    """Relative ASR share per language (missing languages get weight 0); None = equal."""
    noise_prob: float = 0.3
    """Probability that an utterance gets additive white/pink/brown noise."""
    snr_db: tuple[float, float] = (5.0, 30.0)
    """Uniform SNR range in dB (active speech power vs noise power, see ``data.augment``)."""
    reverb_prob: float = 0.2
    """Probability that an utterance gets synthetic reverb (applied before noise)."""
    rt60: tuple[float, float] = (0.2, 0.8)
    """Uniform RT60 range in seconds."""
    speed: tuple[int, int] = (120, 200)
    """espeak-ng speaking rate range in words per minute (inclusive)."""
    pitch: tuple[int, int] = (20, 80)
    """espeak-ng pitch range, 0-99 (inclusive)."""
    voice_set: str = "all"
    """Speakers to draw from: "all", or a fixed split of espeak-ng's variants (the speaker identities, shared by
    every accent) into "train" (~80 %) and "heldout" (the rest, see `heldout_variant`), so that test speech comes
    from voices no training utterance used. Plain voices (no variant) count as train."""
    workers: int = field(default_factory=lambda: os.cpu_count() or 1)
    """Synthesis processes; 1 runs in-process. The output does not depend on it."""
    chunk_size: int = 4
    """Utterances per task sent to a worker at once (amortises inter-process overhead)."""
    overwrite: bool = False
    """Replace previous synth outputs in a non-empty ``out``."""
    sample_rate: int = 16000
    """Rate of the written FLAC files (fixed by the rest of the pipeline)."""

    def __post_init__(self) -> None:
        self.out = Path(self.out)
        if isinstance(self.langs, str):
            self.langs = tuple(s.strip() for s in self.langs.split(",") if s.strip())
        self.langs = tuple(self.langs)
        unknown = [lang for lang in self.langs if lang not in SUPPORTED_LANGS]
        if unknown:
            raise ValueError(f"unsupported language(s) {unknown}; supported: {list(SUPPORTED_LANGS)}")
        if len(set(self.langs)) != len(self.langs):
            raise ValueError(f"duplicate languages in langs={self.langs}")
        for name in ("hours", "st_hours", "sqa_hours"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.hours > 0 and not self.langs:
            raise ValueError("hours > 0 needs at least one language in langs")
        if self.hours + self.st_hours + self.sqa_hours <= 0:
            raise ValueError("nothing to do: hours, st_hours and sqa_hours are all 0")
        if self.lang_weights is not None:
            extra = set(self.lang_weights) - set(self.langs)
            if extra:
                raise ValueError(f"lang_weights names languages not in langs: {sorted(extra)}")
            if any(w < 0 for w in self.lang_weights.values()) or sum(self.lang_weights.values()) <= 0:
                raise ValueError(f"lang_weights must be >= 0 with a positive sum, got {self.lang_weights}")
        if self.seed < 0:
            raise ValueError(f"seed must be >= 0, got {self.seed}")
        for name in ("noise_prob", "reverb_prob"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        self.snr_db = _check_range("snr_db", self.snr_db, -20.0, 100.0, float)
        self.rt60 = _check_range("rt60", self.rt60, 0.01, 10.0, float)
        self.speed = _check_range("speed", self.speed, 80, 450, int)
        self.pitch = _check_range("pitch", self.pitch, 0, 99, int)
        if self.workers < 1 or self.chunk_size < 1:
            raise ValueError(f"workers and chunk_size must be >= 1, got {self.workers}, {self.chunk_size}")
        if self.voice_set not in ("all", "train", "heldout"):
            raise ValueError(f"voice_set must be all, train or heldout, got {self.voice_set!r}")
        if self.sample_rate < 8000:
            raise ValueError(f"sample_rate must be >= 8000 Hz, got {self.sample_rate}")

    def task_targets(self) -> dict[str, float]:
        """Target seconds per task name (``asr-<lang>``, ``st``, ``sqa``), zero targets omitted."""
        weights = self.lang_weights or {lang: 1.0 for lang in self.langs}
        total_w = sum(weights.get(lang, 0.0) for lang in self.langs)
        targets = {f"asr-{lang}": self.hours * 3600.0 * weights.get(lang, 0.0) / total_w
                   for lang in self.langs} if self.hours > 0 else {}
        targets["st"] = self.st_hours * 3600.0
        targets["sqa"] = self.sqa_hours * 3600.0
        return {name: t for name, t in targets.items() if t > 0}


def _check_range(name: str, value: Any, lo: float, hi: float, cast: type) -> tuple:
    """Validate a ``(low, high)`` pair inside ``[lo, hi]``; returns it cast to ``cast``."""
    try:
        a, b = (cast(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a (low, high) pair, got {value!r}") from None
    if not lo <= a <= b <= hi:
        raise ValueError(f"{name} must satisfy {lo} <= low <= high <= {hi}, got ({a}, {b})")
    return (a, b)


# ----------------------------------------------------------------------------- espeak-ng


def find_espeak() -> str:
    """Path of the espeak-ng executable, or a RuntimeError that says how to install it."""
    exe = shutil.which("espeak-ng")
    if exe is None:
        raise RuntimeError("espeak-ng not found on PATH; install it with `apt-get install espeak-ng`")
    return exe


def espeak_version(exe: str) -> str:
    """First line of ``espeak-ng --version`` (recorded in synth.json)."""
    out = subprocess.run([exe, "--version"], capture_output=True, text=True, check=True).stdout
    return out.strip().splitlines()[0] if out.strip() else "unknown"


def installed_variants(exe: str) -> set[str]:
    """Variant file names listed by ``espeak-ng --voices=variant`` (e.g. ``m3``, ``Andy``)."""
    out = subprocess.run([exe, "--voices=variant"], capture_output=True, text=True, check=True).stdout
    return set(re.findall(r"!v/(\S+)", out))


def espeak_wav(exe: str, voice: str, speed: int, pitch: int, txt: str) -> tuple[np.ndarray, int]:
    """Run espeak-ng and decode its WAV output.

    The text is one argv element after ``--`` (no shell, and a leading '-' is not an option).

    Returns:
        (float64 mono samples in [-1, 1], sample rate).
    """
    cmd = [exe, "-v", voice, "-s", str(speed), "-p", str(pitch), "--stdout", "--", txt]
    proc = subprocess.run(cmd, capture_output=True)
    if proc.returncode != 0 or len(proc.stdout) <= 44:
        err = proc.stderr.decode("utf-8", "replace").strip()
        raise RuntimeError(f"espeak-ng failed (rc={proc.returncode}) for voice {voice!r} "
                           f"on {txt[:60]!r}: {err or 'no audio'}")
    # espeak writes a streaming header with bogus sizes; libsndfile reads up to the real end.
    wav, sr = sf.read(io.BytesIO(proc.stdout), dtype="float64", always_2d=True)
    return wav.mean(axis=1), sr


def heldout_variant(variant: str) -> bool:
    """The fixed held-out fifth of the espeak-ng variants (by a stable hash of the name; never the plain voice)."""
    return bool(variant) and zlib.crc32(variant.encode()) % 5 == 0


def select_voices(voices: dict[str, list[str]], voice_set: str) -> dict[str, list[str]]:
    """Voices of one `SynthConfig.voice_set`; an empty selection for a language is an error naming it."""
    if voice_set == "all":
        return voices
    keep = {lang: [v for v in vs if heldout_variant(v.partition("+")[2]) == (voice_set == "heldout")]
            for lang, vs in voices.items()}
    empty = [lang for lang, vs in keep.items() if not vs]
    if empty:
        raise RuntimeError(f"voice_set={voice_set!r} leaves no espeak-ng voice for {empty}")
    return keep


def available_voices(exe: str, langs: list[str]) -> dict[str, list[str]]:
    """Verified voice strings per language: each base voice alone and with every variant.

    Each base voice is probed once (exit code and non-empty audio); variants are checked
    against the installed list because espeak-ng accepts unknown variants silently.
    """
    variants = [v for v in VARIANTS if v in installed_variants(exe)]
    voices: dict[str, list[str]] = {}
    for lang in langs:
        bases = []
        for base in BASE_VOICES[lang]:
            try:
                espeak_wav(exe, base, 150, 50, "ok")
                bases.append(base)
            except RuntimeError as e:
                logger.warning("skipping espeak-ng voice %s: %s", base, e)
        if not bases:
            raise RuntimeError(f"no working espeak-ng voice for {lang!r} (tried {BASE_VOICES[lang]})")
        voices[lang] = list(bases) + [f"{b}+{v}" for b in bases for v in variants]
    return voices


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


def _estimate_seconds(utt: Utterance) -> float:
    """Rough duration guess, used only to avoid submitting far more work than needed."""
    return len(utt.text.split()) * 60.0 / utt.speed + 0.4


# ----------------------------------------------------------------------------- rendering


def render(utt: Utterance, seed: int, exe: str, sample_rate: int) -> tuple[bytes, int]:
    """Synthesize, resample, augment and FLAC-encode one utterance.

    Returns:
        (16-bit FLAC file bytes, number of samples).
    """
    wav, sr = espeak_wav(exe, utt.voice, utt.speed, utt.pitch, utt.text)
    x = augment.resample(wav, sr, sample_rate)
    rng = np.random.default_rng([seed, task_id(utt.task), utt.index, 1])
    if utt.rt60 is not None:
        x = augment.add_reverb(x, utt.rt60, sample_rate, rng)
    if utt.noise is not None:
        x = augment.add_noise(x, utt.noise, utt.snr_db, sample_rate, rng)
    pcm = augment.to_pcm16(augment.peak_normalize(x, 0.9))
    buf = io.BytesIO()
    sf.write(buf, pcm, sample_rate, format="FLAC", subtype="PCM_16")
    return buf.getvalue(), len(pcm)


def _render_chunk(args: tuple[list[Utterance], int, str, int]) -> list[tuple[bytes, int]]:
    """Pool entry point: render a list of utterances in order."""
    utts, seed, exe, sample_rate = args
    return [render(u, seed, exe, sample_rate) for u in utts]


class _Inline:
    """Stand-in for ``AsyncResult`` when running without a pool (computes on ``get``)."""

    def __init__(self, args: tuple) -> None:
        self._args = args

    def get(self) -> list[tuple[bytes, int]]:
        return _render_chunk(self._args)


# ----------------------------------------------------------------------------- running


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


def _records(utt: Utterance, n_samples: int, sample_rate: int) -> list[dict]:
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


def _run_task(cfg: SynthConfig, task: str, target_s: float, voices: dict[str, list[str]], exe: str,
              pool: Any, bar: tqdm) -> dict:
    """Synthesize ``task`` until its audio first reaches ``target_s``; writes audio + manifest.

    Work is submitted as chunks through a bounded window of ``apply_async`` calls and consumed
    in index order. (``Pool.imap`` would drain an open-ended plan generator eagerly, and the
    stop point is only known from real durations.) Results beyond the stop point are dropped.
    """
    task_dir = cfg.out / task
    (task_dir / "audio").mkdir(parents=True, exist_ok=True)
    inline = pool is None
    window = 1 if inline else 2 * cfg.workers
    chunk = 1 if inline else cfg.chunk_size
    pending: deque = deque()
    next_index, in_flight_est, done_samples = 0, 0.0, 0
    target_samples = target_s * cfg.sample_rate
    lines: list[dict] = []
    voices_used: Counter = Counter()
    n_audio = 0
    while done_samples < target_samples:
        # Keep the workers busy, but stop queueing once the guesses say we are well past target.
        while len(pending) < window and (
                not pending or done_samples / cfg.sample_rate + in_flight_est < 1.2 * target_s):
            utts = [make_plan(cfg, task, next_index + j, voices) for j in range(chunk)]
            next_index += chunk
            args = (utts, cfg.seed, exe, cfg.sample_rate)
            res = _Inline(args) if inline else pool.apply_async(_render_chunk, (args,))
            est = sum(_estimate_seconds(u) for u in utts)
            pending.append((utts, res, est))
            in_flight_est += est
        utts, res, est = pending.popleft()
        in_flight_est -= est
        for utt, (flac, n) in zip(utts, res.get()):
            if done_samples >= target_samples:
                break
            (task_dir / "audio" / f"{utt.uid}.flac").write_bytes(flac)
            lines.extend(_records(utt, n, cfg.sample_rate))
            voices_used[utt.voice] += 1
            n_audio += 1
            done_samples += n
            bar.update(n / cfg.sample_rate)
    tmp = task_dir / "manifest.jsonl.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        for line in lines:
            f.write(json.dumps(line, ensure_ascii=False) + "\n")
    os.replace(tmp, task_dir / "manifest.jsonl")
    hours = done_samples / cfg.sample_rate / 3600.0
    logger.info("%s: %d files, %d lines, %.3f h (target %.3f h)", task, n_audio, len(lines), hours,
                target_s / 3600.0)
    return {"manifest": f"{task}/manifest.jsonl", "lines": len(lines), "audio_files": n_audio,
            "hours": round(hours, 6), "target_hours": round(target_s / 3600.0, 6),
            "voices": dict(sorted(voices_used.items()))}


def _prepare_out(cfg: SynthConfig) -> None:
    """Create ``cfg.out``; refuse a non-empty one unless ``overwrite`` (then clear our outputs only)."""
    out = cfg.out
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"output path {out} exists and is not a directory")
    if out.exists() and any(out.iterdir()):
        if not cfg.overwrite:
            raise FileExistsError(f"output directory {out} is not empty; pass --overwrite to replace "
                                  "earlier synth outputs (asr-*/, st/, sqa/, synth.json)")
        # Only what this tool writes is removed: --out pointing at a wrong directory must not
        # wipe unrelated files.
        for name in [f"asr-{lang}" for lang in BASE_VOICES] + ["st", "sqa"]:
            if (out / name).is_dir():
                shutil.rmtree(out / name)
        (out / "synth.json").unlink(missing_ok=True)
    out.mkdir(parents=True, exist_ok=True)


def _config_dict(cfg: SynthConfig) -> dict:
    d = asdict(cfg)
    d["out"] = str(cfg.out)
    return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}


def synthesize(cfg: SynthConfig) -> dict:
    """Build the corpus described by ``cfg``.

    Returns:
        The summary also written to ``cfg.out / "synth.json"``.

    Raises:
        RuntimeError: espeak-ng is missing or has no working voice for a language.
        FileExistsError: ``cfg.out`` is not empty and ``cfg.overwrite`` is False.
    """
    exe = find_espeak()
    _prepare_out(cfg)
    targets = cfg.task_targets()
    langs = sorted({TASK_LANG.get(t, t[4:]) for t in targets})
    voices = select_voices(available_voices(exe, langs), cfg.voice_set)
    logger.info("espeak-ng voices: %s", ", ".join(f"{lang}={len(v)}" for lang, v in voices.items()))
    t0 = time.perf_counter()
    # The pool is forked before tqdm starts its monitor thread.
    pool = None
    if cfg.workers > 1:
        import multiprocessing as mp
        pool = mp.Pool(cfg.workers)
    bar = tqdm(total=round(sum(targets.values())), unit="s", desc="audio", disable=None,
               bar_format="{l_bar}{bar}| {n:.0f}/{total_fmt} s [{elapsed}<{remaining}]")
    stats = {}
    try:
        for task, target_s in targets.items():
            stats[task] = _run_task(cfg, task, target_s, voices, exe, pool, bar)
    finally:
        bar.close()
        if pool is not None:
            pool.terminate()  # drops results computed beyond the stop points
            pool.join()
    wall = time.perf_counter() - t0
    audio_h = sum(s["hours"] for s in stats.values())
    n_audio = sum(s["audio_files"] for s in stats.values())
    summary = {
        "config": _config_dict(cfg),
        "espeak": espeak_version(exe),
        "manifests": stats,
        "total_hours": round(audio_h, 6),
        "total_audio_files": n_audio,
        "wall_s": round(wall, 3),
        "realtime_factor": round(wall / (audio_h * 3600.0), 5) if audio_h > 0 else None,
        "voices_used": sorted({v for s in stats.values() for v in s["voices"]}),
        "voices_available": voices,
    }
    with open(cfg.out / "synth.json", "w", encoding="utf-8") as f:
        json.dump(summary, f, ensure_ascii=False, indent=2)
    logger.info("done: %.3f h in %d files, wall %.1f s, realtime factor %.4f (%.0fx faster than real time)",
                audio_h, n_audio, wall, summary["realtime_factor"] or 0.0,
                1.0 / summary["realtime_factor"] if summary["realtime_factor"] else 0.0)
    return summary


# ----------------------------------------------------------------------------- CLI


def _pair(s: str) -> tuple[float, float]:
    """argparse type for ``low,high`` (a single value means a fixed setting)."""
    parts = [p for p in s.split(",") if p.strip()]
    if len(parts) == 1:
        parts = parts * 2
    if len(parts) != 2:
        raise argparse.ArgumentTypeError(f"expected LOW,HIGH, got {s!r}")
    try:
        return float(parts[0]), float(parts[1])
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected two numbers LOW,HIGH, got {s!r}") from None


def _weights(s: str) -> dict[str, float]:
    """argparse type for ``en=2,ru=1``."""
    try:
        return {k.strip(): float(v) for k, v in (kv.split("=") for kv in s.split(",") if kv.strip())}
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected LANG=WEIGHT,..., got {s!r}") from None


def parse_args(argv: list[str] | None = None) -> SynthConfig:
    """Parse the command line into a ``SynthConfig``; unset options keep the dataclass defaults."""
    fields = SynthConfig.__dataclass_fields__

    def d(name: str) -> str:
        f = fields[name]
        return f"(default {f.default_factory() if callable(f.default_factory) else f.default})"

    p = argparse.ArgumentParser(prog="python -m data.synth", description=__doc__.split("\n")[0])
    p.add_argument("--out", required=True, type=Path, help="output directory")
    p.add_argument("--hours", required=True, type=float, help="total ASR hours over all --langs")
    p.add_argument("--langs", help=f"comma-separated ASR languages of {','.join(SUPPORTED_LANGS)} {d('langs')}")
    p.add_argument("--seed", type=int, help=f"random seed {d('seed')}")
    p.add_argument("--st-hours", type=float, help=f"hours of ST data {d('st_hours')}")
    p.add_argument("--sqa-hours", type=float, help=f"hours of SQA passages {d('sqa_hours')}")
    p.add_argument("--lang-weights", type=_weights, help="ASR share per language, e.g. en=2,ru=1,de=1")
    p.add_argument("--noise-prob", type=float, help=f"additive noise probability {d('noise_prob')}")
    p.add_argument("--snr-db", type=_pair, help=f"SNR range LOW,HIGH in dB {d('snr_db')}")
    p.add_argument("--reverb-prob", type=float, help=f"reverb probability {d('reverb_prob')}")
    p.add_argument("--rt60", type=_pair, help=f"RT60 range LOW,HIGH in s {d('rt60')}")
    p.add_argument("--speed", type=_pair, help=f"speaking rate range in words/min {d('speed')}")
    p.add_argument("--pitch", type=_pair, help=f"espeak pitch range 0-99 {d('pitch')}")
    p.add_argument("--voice-set", choices=["all", "train", "heldout"],
                   help=f"speakers: all, or the fixed train / held-out split of the variants {d('voice_set')}")
    p.add_argument("--workers", type=int, help=f"synthesis processes {d('workers')}")
    p.add_argument("--chunk-size", type=int, help=f"utterances per worker task {d('chunk_size')}")
    p.add_argument("--overwrite", action="store_true", help="replace earlier outputs in a non-empty --out")
    p.add_argument("--log-level", default="INFO", help="logging level (default INFO)")
    args = p.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(name)s %(levelname)s %(message)s")
    kwargs = {k: v for k, v in vars(args).items() if v is not None and k != "log_level"}
    try:
        return SynthConfig(**kwargs)
    except ValueError as e:
        p.error(str(e))


def main(argv: list[str] | None = None) -> int:
    """CLI entry point; returns the process exit status."""
    cfg = parse_args(argv)
    try:
        synthesize(cfg)
    except (RuntimeError, FileExistsError, NotADirectoryError) as e:
        logger.error("%s", e)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
