"""espeak-ng speech: the voices (language voice x speaker variant) and the rendering of one utterance to FLAC.

A voice string is ``<language voice>[+<variant>]`` (``en-gb+f3``); :func:`available_voices` lists the ones that
work on this machine, :func:`select_voices` keeps the train or held-out speakers, and :func:`render` turns a planned
:class:`~data.synth.tasks.Utterance` into 16-bit FLAC bytes (espeak-ng -> resample -> reverb -> noise -> peak
normalisation), its augmentation noise seeded by the utterance alone.
"""

from __future__ import annotations

import io
import logging
import re
import shutil
import subprocess
import zlib

import numpy as np
import soundfile as sf

from data.synth import augment
from data.synth.tasks import Utterance, task_id

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

ESPEAK_RATE = 22050
"""Native output rate of espeak-ng voices."""


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
