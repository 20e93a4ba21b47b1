"""Audio decoding for the loader and the shard writer: bytes -> 16 kHz mono float32, or a named reason why not.

Everything that can be wrong with a real corpus file is classified here, so the loader can skip and count it
(`BadSample.reason`) or repair it and say so (`DecodedAudio.fixes`): corrupt or truncated files, zero-length
audio, absurd sample rates, NaN/Inf samples are bad; other sample rates are resampled and multi-channel audio is
downmixed, both counted.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass, field

import numpy as np
import soundfile as sf
from scipy.signal import resample_poly

TARGET_SAMPLE_RATE = 16_000
# Below 4 kHz there is no intelligible speech left to resample; above 384 kHz the header is almost surely garbage.
MIN_SAMPLE_RATE = 4_000
MAX_SAMPLE_RATE = 384_000
AUDIO_EXTENSIONS = ("flac", "wav", "ogg", "opus", "mp3")
# Writers streaming to a pipe cannot seek back to fill in the RIFF sizes and leave a placeholder (sox 0x7ffff000,
# ffmpeg 0xffffffff): a declared data size this large means "unknown", not "truncated".
WAV_UNKNOWN_SIZE = 0x7FFF_F000
FLAC_MAX_CHANNELS = 8


class BadSample(Exception):
    """A sample that cannot be used. `reason` is a short stable code used for counting and thresholds."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass
class DecodedAudio:
    samples: np.ndarray
    """float32 mono waveform at `rate`."""
    rate: int
    """Sample rate of `samples` (the target rate, or the file's when no target was given)."""
    source_rate: int
    """Sample rate stored in the file."""
    source_channels: int
    """Channel count stored in the file."""
    fixes: list[str] = field(default_factory=list)
    """Repairs applied ("resampled", "downmixed"), counted by the loader."""

    @property
    def seconds(self) -> float:
        return len(self.samples) / self.rate


def resample(samples: np.ndarray, source_rate: int, target_rate: int = TARGET_SAMPLE_RATE) -> np.ndarray:
    """Polyphase resampling (exact rational ratio, deterministic); returns float32."""
    if source_rate == target_rate:
        return samples.astype(np.float32, copy=False)
    g = math.gcd(source_rate, target_rate)
    out = resample_poly(samples, target_rate // g, source_rate // g, axis=0)
    return out.astype(np.float32, copy=False)


def decode_audio(data: bytes, target_rate: int | None = TARGET_SAMPLE_RATE) -> DecodedAudio:
    """Decode any soundfile-readable bytes to a mono float32 waveform at `target_rate` (None: keep the file's).

    Raises:
        BadSample: reason one of corrupt_audio (also a truncated WAV), empty_audio, bad_sample_rate,
            non_finite_audio (also finite samples that overflow when downmixed or resampled).
    """
    if not data:
        raise BadSample("empty_audio", "the audio member has 0 bytes")
    try:
        samples, rate = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
    except Exception as exc:  # soundfile raises LibsndfileError, RuntimeError or TypeError for garbage
        raise BadSample("corrupt_audio", f"soundfile cannot decode it ({type(exc).__name__}: {exc})") from None
    truncated = wav_truncation(data)
    if truncated:
        raise BadSample("corrupt_audio", truncated)
    if samples.shape[0] == 0:
        raise BadSample("empty_audio", "the file decodes to 0 frames (truncated or empty recording)")
    if not MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE:
        raise BadSample("bad_sample_rate", f"sample rate {rate} Hz outside [{MIN_SAMPLE_RATE}, {MAX_SAMPLE_RATE}]")
    if not np.isfinite(samples).all():
        bad = int((~np.isfinite(samples)).sum())
        raise BadSample("non_finite_audio", f"{bad} NaN/Inf samples")
    fixes = []
    channels = samples.shape[1]
    if channels > 1:
        fixes.append("downmixed")
    with np.errstate(over="ignore", invalid="ignore"):  # an overflow is reported below as a bad sample instead
        mono = samples.mean(axis=1) if channels > 1 else samples[:, 0]
        if target_rate is not None and rate != target_rate:
            fixes.append("resampled")
            mono = resample(mono, rate, target_rate)
    # Finite samples near the float32 limit (garbage in a float WAV) still overflow when channels are summed or the
    # resampling filter overshoots; the output promise is finite values.
    if not np.isfinite(mono).all():
        peak = float(np.abs(samples).max())
        raise BadSample("non_finite_audio", f"samples up to {peak:.3g} overflow to Inf when downmixed or resampled")
    out_rate = int(rate) if target_rate is None else target_rate
    return DecodedAudio(np.ascontiguousarray(mono, dtype=np.float32), out_rate, int(rate), int(channels), fixes)


def wav_truncation(data: bytes) -> str | None:
    """Why a RIFF/WAVE file is cut short (its data chunk declares more bytes than follow), else None.

    libsndfile quietly decodes such a file to the frames that are present, which would pair a cut-off recording
    with its whole transcript; FLAC needs no such check (libsndfile fails on a truncated FLAC stream).
    """
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        return None
    offset = 12
    while offset + 8 <= len(data):
        chunk, size = data[offset:offset + 4], int.from_bytes(data[offset + 4:offset + 8], "little")
        if chunk == b"data":
            present = len(data) - offset - 8
            if present < size < WAV_UNKNOWN_SIZE:
                return f"truncated WAV: the data chunk declares {size} bytes, the file holds {present}"
            return None
        offset += 8 + size + (size & 1)  # chunks are padded to an even length
    return None  # no data chunk reached: libsndfile decides (corrupt or empty)


def audio_info(data: bytes) -> tuple[float, int, int]:
    """(duration seconds, sample rate, channels) from the header only; BadSample if unreadable."""
    try:
        info = sf.info(io.BytesIO(data))
    except Exception as exc:
        raise BadSample("corrupt_audio", f"soundfile cannot read the header ({type(exc).__name__}: {exc})") from None
    if info.samplerate <= 0:
        raise BadSample("bad_sample_rate", f"sample rate {info.samplerate} Hz")
    return info.frames / info.samplerate, int(info.samplerate), int(info.channels)


def to_flac(data: bytes) -> bytes:
    """Losslessly re-encode any readable audio to FLAC at its own rate and channel count.

    Integer PCM keeps its bit depth; float input becomes 24-bit, FLAC's deepest integer format.

    Raises:
        BadSample: corrupt_audio, non_finite_audio, or unsupported_audio (e.g. more than 8 channels).
    """
    try:
        info = sf.info(io.BytesIO(data))
        samples, rate = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
    except Exception as exc:
        raise BadSample("corrupt_audio", f"soundfile cannot decode it ({type(exc).__name__}: {exc})") from None
    if not np.isfinite(samples).all():
        raise BadSample("non_finite_audio", "NaN/Inf samples cannot be stored as FLAC")
    if samples.shape[1] > FLAC_MAX_CHANNELS:  # libsndfile would fail with a bare "Format not recognised"
        raise BadSample("unsupported_audio", f"{samples.shape[1]} channels; FLAC stores at most {FLAC_MAX_CHANNELS} "
                                             f"(downmix or split the file before preparing it)")
    subtype = info.subtype if info.subtype in ("PCM_16", "PCM_24", "PCM_S8") else "PCM_24"
    out = io.BytesIO()
    try:
        sf.write(out, samples, rate, format="FLAC", subtype=subtype)
    except Exception as exc:  # any other combination FLAC cannot hold: skip the sample, not the whole job
        raise BadSample("unsupported_audio", f"cannot be stored as FLAC ({type(exc).__name__}: {exc})") from None
    return out.getvalue()
