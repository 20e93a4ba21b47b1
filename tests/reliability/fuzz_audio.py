"""Shared pieces of the input fuzzing (tests/reliability/test_fuzz_*.py): example budgets, generated audio in every
format, Hypothesis strategies, and the checks a decoded sample must pass.

The contract checked for every generated input:

* a valid sample comes out right: mono float32, 16 kHz, finite, its length within one frame of the source's
  duration, its values those of the source (downmixed and resampled), its transcript verbatim;
* anything else is skipped and counted under a named reason with its key named (a warning, the loader's drop
  counters, index.json["skipped"]), or stops the job with a clear error;
* never an exception of another type (a crashed job), never a silently shortened or altered sample.

Hypothesis runs derandomized (the same examples on every run and machine) with the example budgets in EXAMPLES; each
property asserts that it ran its whole budget, so the numbers can be quoted (RELIABILITY.md).
"""

from __future__ import annotations

import io
import logging
import math
import struct
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import soundfile as sf
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from scipy.signal import resample_poly

from data.audio import TARGET_SAMPLE_RATE, BadSample, DecodedAudio, decode_audio
from tests.conftest import WORDS

# Examples per property (Hypothesis max_examples). Each property asserts it ran exactly this many, so these are the
# numbers to quote (RELIABILITY.md). Sized for about half a minute for all three files on 2 CPU cores.
EXAMPLES = {
    "decode_valid": 1000,
    "decode_truncated": 600,
    "decode_bitflip": 800,
    "decode_junk": 2000,
    "decode_non_finite": 200,
    "decode_huge_floats": 200,
    "decode_bad_rate": 100,
    "import_item_audio": 500,
    "prepare_manifest": 150,
    "stream_epoch": 150,
    "collate": 300,
}

# (container, subtype, quantisation step of a full-scale sample): 8-, 16-, 24-, 32-bit integer and float formats.
FORMATS = (
    ("WAV", "PCM_U8", 2.0**-7), ("WAV", "PCM_16", 2.0**-15), ("WAV", "PCM_24", 2.0**-23), ("WAV", "PCM_32", 2.0**-31),
    ("WAV", "FLOAT", 0.0), ("WAV", "DOUBLE", 0.0),
    ("FLAC", "PCM_S8", 2.0**-7), ("FLAC", "PCM_16", 2.0**-15), ("FLAC", "PCM_24", 2.0**-23),
)
RATES = (8_000, 16_000, 22_050, 44_100, 48_000)
CHANNELS = (1, 2, 3, 6, 8)  # FLAC's limit is 8; WAV with more is tested on its own (decode) and as a known gap (import)
AUDIO_REASONS = frozenset({"corrupt_audio", "empty_audio", "bad_sample_rate", "non_finite_audio"})
# Magic numbers that get junk past libsndfile's format sniffing and into the parsers proper.
MAGICS = (b"", b"RIFF", b"RIFF\x24\x00\x00\x00WAVEfmt ", b"RIFF\xff\xff\xff\xffWAVEfmt \x10\x00\x00\x00\x01\x00",
          b"fLaC", b"fLaC\x00\x00\x00\x22", b"OggS\x00\x02", b"ID3\x04\x00", b"FORM\x00\x00\x00\x00AIFF", b".snd")
# Characters that trip text handling: whitespace variants, zero-width and control characters, combining marks,
# CJK, emoji, line separators. Drawn from a list rather than st.text() so Hypothesis needs no Unicode cache on disk.
TRICKY = (" ", "\t", "\n", "\u00a0", "\u3000", "\u2028", "\u200b", "\u200d", "\ufeff", "\x00", "\x1f", "\x7f", "é",
          "e\u0301", "ß", "İ", "東京", "😀", "'", "-", ".", ",", "?", '"', "\\", "\ufffd")
ZERO_WIDTH = "\u200b\u200c\u200d\ufeff"


def fuzz(name: str):
    """Deterministic Hypothesis settings with the example budget of `name`, and no example database."""
    return settings(max_examples=EXAMPLES[name], derandomize=True, deadline=None, database=None, print_blob=False,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def assert_budget(name: str, ran: list) -> None:
    """The property really ran its whole budget (not cut short by an exhausted or filtered search space)."""
    assert len(ran) == EXAMPLES[name], f"{name}: ran {len(ran)} of {EXAMPLES[name]} examples"


# ------------------------------------------------------------------------------------------------ generated audio

def encode(x: np.ndarray, rate: int, container: str, subtype: str) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, x, rate, format=container, subtype=subtype)
    return buf.getvalue()


@dataclass
class Clip:
    """A valid recording as written, and what decoding it must give back."""

    data: bytes
    container: str
    subtype: str
    rate: int
    signal: np.ndarray
    """[frames, channels] float64 before encoding."""
    quant: float

    @property
    def frames(self) -> int:
        return self.signal.shape[0]

    @property
    def channels(self) -> int:
        return self.signal.shape[1]

    @property
    def seconds(self) -> float:
        return self.frames / self.rate

    @property
    def ext(self) -> str:
        return self.container.lower()

    def expected_16k(self) -> np.ndarray:
        """The source downmixed and resampled in float64, independently of data.audio's float32 path."""
        mono = self.signal.mean(axis=1)
        if self.rate == TARGET_SAMPLE_RATE:
            return mono
        g = math.gcd(self.rate, TARGET_SAMPLE_RATE)
        return resample_poly(mono, TARGET_SAMPLE_RATE // g, self.rate // g)

    def tolerance(self) -> float:
        # Quantisation error (at most one step) passes through the resampling filter, whose taps for one output
        # sum to at most 2.24 in absolute value (8 -> 16 kHz; 1.7-1.9 from 22.05-48 kHz); the rest is float32
        # rounding in the decoder's own arithmetic.
        return 2.5 * self.quant + 2e-4

    def data_region(self) -> tuple[int, int] | None:
        """Byte range of a WAV's sample data (flipping bytes there changes values, never the length)."""
        return wav_data_region(self.data) if self.container == "WAV" else None


def wav_data_region(data: bytes) -> tuple[int, int] | None:
    offset = 12
    while offset + 8 <= len(data):
        chunk, size = data[offset:offset + 4], struct.unpack("<I", data[offset + 4:offset + 8])[0]
        if chunk == b"data":
            return offset + 8, offset + 8 + size
        offset += 8 + size + (size & 1)
    return None


@st.composite
def clips(draw, formats=FORMATS, rates=RATES, channels=CHANNELS, max_seconds: float = 0.6, min_frames: int = 1):
    """A valid encoded clip: any format x rate x channel count, 1 frame to `max_seconds`, noise of any level."""
    container, subtype, quant = draw(st.sampled_from(formats))
    rate = draw(st.sampled_from(rates))
    n_channels = draw(st.sampled_from([c for c in channels if container == "WAV" or c <= 8]))  # FLAC: 8 at most
    longest = max(min_frames, int(rate * max_seconds))
    # Hypothesis favours boundary values; drawing a length scale first keeps long clips as common as 1-frame ones.
    scale = min(draw(st.sampled_from([64, rate // 10, longest])), longest)
    frames = draw(st.integers(min_frames if scale == 64 else max(min_frames, scale // 2), max(min_frames, scale)))
    amplitude = draw(st.sampled_from([0.0, 1e-3, 0.3, 0.99]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    signal = rng.uniform(-amplitude, amplitude, (frames, n_channels))
    data = encode(signal.astype(np.float32), rate, container, subtype)
    return Clip(data, container, subtype, rate, signal, quant)


def flip(data: bytes, flips: list[tuple[int, int]]) -> bytes:
    out = bytearray(data)
    for pos, bit in flips:
        out[pos % len(out)] ^= 1 << bit
    return bytes(out)


@st.composite
def truncated_clips(draw, **kw) -> tuple[Clip, bytes]:
    """A clip cut at any byte before its last sample ends (a WAV's trailing pad byte is not audio)."""
    clip = draw(clips(**kw))
    region = clip.data_region()
    end = region[1] if region else len(clip.data)
    return clip, clip.data[:draw(st.integers(0, end - 1))]


@st.composite
def flipped_clips(draw, **kw) -> tuple[Clip, bytes, list[tuple[int, int]]]:
    clip = draw(clips(**kw))
    # Half the examples flip only inside a WAV's sample data, the rest anywhere (headers, FLAC frames, CRCs).
    region = clip.data_region() if draw(st.booleans()) else None
    lo, hi = region if region and region[1] > region[0] else (0, len(clip.data))
    flips = draw(st.lists(st.tuples(st.integers(lo, hi - 1), st.integers(0, 7)), min_size=1, max_size=8))
    return clip, flip(clip.data, flips), flips


junk = st.builds(lambda magic, body: magic + body, st.sampled_from(MAGICS), st.binary(max_size=2048))


@st.composite
def non_finite_clips(draw) -> bytes:
    """A float WAV with NaN / +Inf / -Inf at some positions."""
    clip = draw(clips(formats=[f for f in FORMATS if f[1] in ("FLOAT", "DOUBLE")]))
    x = clip.signal.copy()
    n = draw(st.integers(1, 5))
    for _ in range(n):
        i = draw(st.integers(0, x.size - 1))
        x.flat[i] = draw(st.sampled_from([np.nan, np.inf, -np.inf]))
    return encode(x.astype(np.float32), clip.rate, clip.container, clip.subtype)


@st.composite
def huge_float_clips(draw) -> tuple[Clip, bytes]:
    """A float WAV whose finite samples sit near float32's limit (garbage that is not NaN)."""
    clip = draw(clips(formats=[("WAV", "FLOAT", 0.0)]))
    scale = draw(st.sampled_from([1e30, 1e37, 3.0e38, 3.4e38]))
    x = np.clip(np.sign(clip.signal) + (clip.signal == 0), -1, 1) * scale  # every sample at +-scale
    return clip, encode(x.astype(np.float32), clip.rate, "WAV", "FLOAT")


bad_rates = st.one_of(st.integers(1, 3_999), st.integers(384_001, 4_000_000))


# ------------------------------------------------------------------------------------------------ checks

def check_decoded(out: DecodedAudio, frames: int, rate: int) -> None:
    """What every decoded sample promises: mono float32 at 16 kHz, finite, length within 1 frame of the source."""
    assert isinstance(out, DecodedAudio)
    assert out.samples.dtype == np.float32 and out.samples.ndim == 1 and out.samples.flags.c_contiguous
    assert out.rate == TARGET_SAMPLE_RATE and out.source_rate == rate
    assert abs(len(out.samples) - frames * TARGET_SAMPLE_RATE / rate) < 1, (len(out.samples), frames, rate)
    assert np.isfinite(out.samples).all()


def check_clip_decoded(out: DecodedAudio, clip: Clip) -> None:
    check_decoded(out, clip.frames, clip.rate)
    assert out.source_channels == clip.channels
    assert out.fixes == (["downmixed"] if clip.channels > 1 else []) + (["resampled"] if clip.rate != 16_000 else [])
    expected = clip.expected_16k()
    assert len(out.samples) == len(expected)
    err = float(np.abs(out.samples - expected).max())
    assert err <= clip.tolerance(), f"{clip.container}/{clip.subtype} {clip.rate} Hz x{clip.channels}: error {err}"


def decode_self_consistent(data: bytes) -> DecodedAudio | BadSample:
    """decode_audio's outcome for arbitrary bytes: a named BadSample, or audio consistent with the file's own header.

    Any other exception type propagates and fails the property: that is a crash of the loading job.
    """
    try:
        out = decode_audio(data)
    except BadSample as exc:
        assert exc.reason in AUDIO_REASONS, exc.reason
        return exc
    info = sf.info(io.BytesIO(data))
    check_decoded(out, info.frames, info.samplerate)
    return out


@contextmanager
def captured(logger: str):
    """WARNING records of `logger` (Hypothesis cannot share pytest's function-scoped caplog between examples)."""
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record):
            records.append(record)

    handler = Keep(logging.WARNING)
    log = logging.getLogger(logger)
    log.addHandler(handler)
    try:
        yield records
    finally:
        log.removeHandler(handler)


def good_text(draw) -> str:
    words = draw(st.lists(st.sampled_from(WORDS), min_size=1, max_size=12))
    extra = draw(st.lists(st.sampled_from(TRICKY), max_size=4))
    return " ".join(words) + "".join(extra)
