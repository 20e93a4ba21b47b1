"""Settings of one synthetic corpus run: :class:`SynthConfig` (``python -m data.synth``) and its validation."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from data.synth import text
from data.synth.speech import BASE_VOICES

SUPPORTED_LANGS: tuple[str, ...] = tuple(lang for lang in text.ASR_LANGS if lang in BASE_VOICES)
"""Languages that have both a text generator and espeak-ng voices."""


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
    """Uniform SNR range in dB (active speech power vs noise power, see ``data.synth.augment``)."""
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
