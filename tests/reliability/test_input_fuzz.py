"""Property-based fuzzing of the paths bad audio and bad transcripts take: decode, import, prepare, stream, collate.

Issue "Reliability: bad inputs ... nothing lost". The contract checked for every generated input:

* a valid sample comes out right: mono float32, 16 kHz, finite, its length within one frame of the source's
  duration, its values those of the source (downmixed and resampled), its transcript verbatim;
* anything else is skipped and counted under a named reason with its key named (a warning, the loader's drop
  counters, index.json["skipped"]), or stops the job with a clear error;
* never an exception of another type (a crashed job), never a silently shortened or altered sample.

Layers: (1) data.audio.decode_audio, (2) data.corpora.common.load_item_audio, (3) data.prepare.build_from_manifest,
(4) data.stream.StreamLoader over shards written with ShardWriter directly (bypassing prepare's checks), plus
data.collate.collate. Hypothesis runs derandomized (the same examples on every run and machine) with the example
budgets in EXAMPLES; each property asserts that it ran its whole budget, so the numbers can be quoted.

Bugs the fuzzing found outside the decode/collate/stream path (corpus importers, prepare, the tar indexer) are plain
regression tests at the end of the file.
"""

from __future__ import annotations

import io
import json
import logging
import math
import struct
import tarfile
import tempfile
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.signal import resample_poly

from data.audio import TARGET_SAMPLE_RATE, BadSample, DecodedAudio, decode_audio
from data.collate import TEXT_NORMS, LoadedSample, collate, normalize_text
from data.corpora.common import AudioRef, load_item_audio
from data.prepare import build_from_manifest
from data.prepare import main as prepare_main
from data.shards import INDEX_NAME, TABLE_SUFFIX, SampleTable, ShardWriter, index_shard_set, read_index
from data.stream import StreamConfig, StreamLoader
from tests.conftest import WORDS

# Examples per property (Hypothesis max_examples). Each property asserts it ran exactly this many, so these are the
# numbers to quote. Sized for about a minute for the whole file on 2 busy CPU cores.
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


# ------------------------------------------------------------------------------------------------ layer 1: decode

def test_decode_valid_audio_comes_out_right():
    """Every format x rate x channel count, 1 frame to 0.6 s: right length, values, fixes; mono float32 16 kHz."""
    ran = []

    @fuzz("decode_valid")
    @given(clip=clips())
    def check(clip):
        check_clip_decoded(decode_audio(clip.data), clip)
        ran.append(1)

    check()
    assert_budget("decode_valid", ran)


def test_decode_truncated_audio_is_rejected():
    """A file cut at any byte (header, sample data, FLAC frame) is a bad sample, never a shorter valid one."""
    ran = []

    @fuzz("decode_truncated")
    @given(case=truncated_clips())
    def check(case):
        clip, data = case
        with pytest.raises(BadSample) as info:
            decode_audio(data)
        assert info.value.reason in ("corrupt_audio", "empty_audio"), info.value
        ran.append(1)

    check()
    assert_budget("decode_truncated", ran)


def test_decode_bit_flips_are_rejected_or_self_consistent():
    """Flipped bits anywhere: a named bad sample or audio that agrees with its own header. Flips inside integer
    WAV sample data change values only, so that audio must keep its length."""
    ran = []

    @fuzz("decode_bitflip")
    @given(case=flipped_clips())
    def check(case):
        clip, data, flips = case
        out = decode_self_consistent(data)
        region = clip.data_region()
        in_data = region is not None and all(region[0] <= p < region[1] for p, _ in flips)
        if in_data and clip.subtype not in ("FLOAT", "DOUBLE"):
            assert isinstance(out, DecodedAudio), out
            check_decoded(out, clip.frames, clip.rate)
        ran.append(1)

    check()
    assert_budget("decode_bitflip", ran)


def test_decode_random_junk_is_rejected_or_self_consistent():
    """Random bytes, some behind real magic numbers (RIFF/WAVE, fLaC, OggS, ID3, AIFF, .snd)."""
    ran = []

    @fuzz("decode_junk")
    @given(data=junk)
    def check(data):
        decode_self_consistent(data)
        ran.append(1)

    check()
    assert_budget("decode_junk", ran)


def test_decode_nan_and_inf_are_rejected():
    ran = []

    @fuzz("decode_non_finite")
    @given(data=non_finite_clips())
    def check(data):
        with pytest.raises(BadSample, match="non_finite_audio"):
            decode_audio(data)
        ran.append(1)

    check()
    assert_budget("decode_non_finite", ran)


def test_decode_huge_finite_floats_never_come_out_non_finite():
    """Samples near float32's limit overflow when channels are summed or resampled: bad, or finite if untouched."""
    ran = []

    @fuzz("decode_huge_floats")
    @given(case=huge_float_clips())
    def check(case):
        clip, data = case
        try:
            out = decode_audio(data)
        except BadSample as exc:
            assert exc.reason == "non_finite_audio"
        else:
            check_decoded(out, clip.frames, clip.rate)
        ran.append(1)

    check()
    assert_budget("decode_huge_floats", ran)


def test_decode_absurd_sample_rates_are_rejected():
    ran = []

    @fuzz("decode_bad_rate")
    @given(rate=bad_rates, frames=st.integers(1, 400))
    def check(rate, frames):
        data = encode(np.zeros(frames, dtype=np.float32), rate, "WAV", "PCM_16")
        with pytest.raises(BadSample, match="bad_sample_rate"):
            decode_audio(data)
        ran.append(1)

    check()
    assert_budget("decode_bad_rate", ran)


@pytest.mark.parametrize("container, subtype", [(c, s) for c, s, _ in FORMATS])
def test_decode_zero_length_audio_is_empty(container, subtype):
    data = encode(np.zeros((0, 1), dtype=np.float32), 16_000, container, subtype)
    with pytest.raises(BadSample, match="empty_audio"):
        decode_audio(data)


@pytest.mark.parametrize("rate", RATES)
@pytest.mark.parametrize("container, subtype", [(c, s) for c, s, _ in FORMATS])
def test_decode_a_single_frame(container, subtype, rate):
    signal = np.full((1, 2), 0.5)
    clip = Clip(encode(signal.astype(np.float32), rate, container, subtype), container, subtype, rate, signal,
                dict((f[1], f[2]) for f in FORMATS if f[0] == container)[subtype])
    check_clip_decoded(decode_audio(clip.data), clip)


def test_decode_ten_minutes_at_8khz():
    """The longest case, within reason for speed: 10 min at 8 kHz -> exactly 9.6 M frames at 16 kHz."""
    rate, frames = 8_000, 8_000 * 600
    t = np.arange(frames) / rate
    x = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    out = decode_audio(encode(x, rate, "WAV", "PCM_16"))
    check_decoded(out, frames, rate)
    assert len(out.samples) == 9_600_000 and out.fixes == ["resampled"]
    # The last second is the tone in phase (440 Hz x 599 s is whole periods): nothing cut or shifted. Its final
    # few frames are left out: the resampling filter runs into the end of the signal there.
    ref = 0.3 * np.sin(2 * np.pi * 440 * np.arange(16_000) / 16_000)
    assert np.abs(out.samples[-16_000:-64] - ref[:-64]).max() < 2e-3


def test_decode_many_channel_wav_is_downmixed():
    signal = np.tile(np.linspace(-0.5, 0.5, 12), (800, 1))  # 12 channels averaging to 0
    clip = Clip(encode(signal.astype(np.float32), 16_000, "WAV", "FLOAT"), "WAV", "FLOAT", 16_000, signal, 0.0)
    check_clip_decoded(decode_audio(clip.data), clip)


def test_decode_streamed_wav_with_placeholder_sizes_is_read_whole():
    """sox and ffmpeg writing to a pipe leave 0x7ffff000 / 0xffffffff as sizes: not truncated (Kaldi wav.scp)."""
    x = np.linspace(-0.5, 0.5, 1600).astype(np.float32)
    data = bytearray(encode(x, 16_000, "WAV", "PCM_16"))
    start, _ = wav_data_region(bytes(data))
    for placeholder in (0x7FFFF000, 0xFFFFFFFF):
        data[4:8] = struct.pack("<I", (placeholder + 36) & 0xFFFFFFFF)
        data[start - 4:start] = struct.pack("<I", placeholder)
        out = decode_audio(bytes(data))
        assert len(out.samples) == 1600 and np.abs(out.samples - x).max() < 1e-4


# ------------------------------------------------------------------------------------------------ layer 2: import

def check_imported(result, clip: Clip) -> None:
    """(flac bytes, seconds) that hold exactly the source: same frames, rate, channels, values (float -> 24 bit)."""
    flac, seconds = result
    info = sf.info(io.BytesIO(flac))
    assert info.format == "FLAC" and info.samplerate == clip.rate and info.channels == clip.channels
    assert info.frames == clip.frames and seconds == pytest.approx(clip.seconds)
    if clip.subtype in ("PCM_16", "PCM_24", "PCM_S8"):
        assert info.subtype == clip.subtype  # integer PCM keeps its depth
    stored, _ = sf.read(io.BytesIO(flac), dtype="float64", always_2d=True)
    source, _ = sf.read(io.BytesIO(clip.data), dtype="float64", always_2d=True)
    assert np.abs(stored - source).max() <= 2.0**-23  # lossless, or 24-bit rounding of a float / 32-bit source


@st.composite
def import_cases(draw):
    """(bytes, file suffix, clip to expect or None, allowed bad reasons); truncated files of both containers."""
    kind = draw(st.sampled_from(["valid", "truncated_flac", "truncated_wav", "flipped_flac", "junk", "empty", "nan",
                                 "bad_rate"]))
    flac_only = [f for f in FORMATS if f[0] == "FLAC"]
    if kind == "truncated_wav":
        clip, data = draw(truncated_clips(formats=[f for f in FORMATS if f[0] == "WAV"]))
        return data, "wav", None, {"corrupt_audio", "empty_audio"}
    if kind == "valid":
        clip = draw(clips())
        return clip.data, clip.ext, clip, None
    if kind == "truncated_flac":
        clip, data = draw(truncated_clips(formats=flac_only))
        return data, "flac", None, {"corrupt_audio", "empty_audio"}
    if kind == "flipped_flac":
        clip, data, _ = draw(flipped_clips(formats=flac_only))
        return data, "flac", "self", AUDIO_REASONS
    if kind == "junk":
        return draw(junk), draw(st.sampled_from(["wav", "flac"])), "self", AUDIO_REASONS
    if kind == "empty":  # a 0-byte .flac path is read as FLAC and reported as corrupt_audio: named all the same
        return b"", draw(st.sampled_from(["wav", "flac"])), None, {"empty_audio", "corrupt_audio"}
    if kind == "nan":
        return draw(non_finite_clips()), "wav", None, {"non_finite_audio"}
    rate = draw(bad_rates)
    return encode(np.zeros(100, dtype=np.float32), rate, "WAV", "PCM_16"), "wav", None, {"bad_sample_rate"}


def test_import_item_audio_from_bytes_and_paths(tmp_path_factory):
    """load_item_audio(AudioRef(data=...)) and AudioRef(path=...): exact FLAC of the source, or a named BadSample."""
    root = tmp_path_factory.mktemp("import")
    ran = []

    @fuzz("import_item_audio")
    @given(case=import_cases(), by_path=st.booleans())
    def check(case, by_path):
        data, suffix, expect, reasons = case
        path = root / f"item-{len(ran)}.{suffix}"
        if by_path:
            path.write_bytes(data)
        ref = AudioRef(path=path) if by_path else AudioRef(data=data)
        try:
            result = load_item_audio(ref)
        except BadSample as exc:
            assert reasons is not None and exc.reason in reasons, (exc, reasons)
        else:
            assert expect is not None, f"{reasons} expected, got a valid sample"
            if isinstance(expect, Clip):
                check_imported(result, expect)
                if by_path and suffix == "flac":
                    assert result[0] == data  # FLAC is stored byte for byte
            else:  # damaged but decodable: what is stored must be what the damaged file says
                flac, seconds = result
                info, stored = sf.info(io.BytesIO(data)), sf.info(io.BytesIO(flac))
                assert (stored.frames, stored.samplerate) == (info.frames, info.samplerate)
                assert seconds == pytest.approx(info.frames / info.samplerate)
        ran.append(1)

    check()
    assert_budget("import_item_audio", ran)


def test_import_missing_file_is_named():
    with pytest.raises(BadSample, match="missing_audio.*nowhere.wav"):
        load_item_audio(AudioRef(path=Path("/nonexistent/nowhere.wav")))


# ------------------------------------------------------------------------------------------------ layer 3: prepare

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


@dataclass
class Line:
    """One manifest line and what prepare must do with it."""

    key: str
    text: object
    audio: bytes | None
    suffix: str
    clip: Clip | None = None
    reasons: set[str] = field(default_factory=set)
    """Empty: must be written. Else the allowed skip reasons."""
    raw: str | None = None
    """The line as written when it is not a JSON record."""


@st.composite
def manifest_lines(draw, key: str) -> Line:
    kind = draw(st.sampled_from(["valid", "valid", "valid", "truncated", "flipped", "junk", "empty_audio", "nan",
                                 "bad_rate", "many_channels", "no_text", "blank_text", "odd_text", "missing_file",
                                 "not_json", "huge_text", "zero_width_text"]))
    if kind in ("valid", "huge_text", "zero_width_text"):
        clip = draw(clips(max_seconds=0.3))
        text = {"valid": good_text(draw), "huge_text": " ".join(WORDS) * 2000,  # about 230 KB
                "zero_width_text": draw(st.sampled_from(ZERO_WIDTH)) * 3}[kind]
        return Line(key, text, clip.data, clip.ext, clip)  # kept verbatim: the loader filters transcripts
    text = good_text(draw)
    if kind == "truncated":
        clip, data = draw(truncated_clips(max_seconds=0.3))
        return Line(key, text, data, clip.ext, reasons={"corrupt_audio", "empty_audio"})
    if kind == "flipped":
        clip, data, _ = draw(flipped_clips(max_seconds=0.3))
        return Line(key, text, data, clip.ext, reasons=AUDIO_REASONS | {"self"})
    if kind == "junk":
        return Line(key, text, draw(junk), draw(st.sampled_from(["wav", "flac"])), reasons=AUDIO_REASONS | {"self"})
    if kind == "empty_audio":
        return Line(key, text, b"", "wav", reasons={"empty_audio"})
    if kind == "nan":
        return Line(key, text, draw(non_finite_clips()), "wav", reasons={"non_finite_audio"})
    if kind == "bad_rate":
        data = encode(np.zeros(100, dtype=np.float32), draw(bad_rates), "WAV", "PCM_16")
        return Line(key, text, data, "wav", reasons={"bad_sample_rate"})
    if kind == "many_channels":  # FLAC holds at most 8: prepare must skip the file, not die
        data = encode(np.zeros((200, draw(st.integers(9, 16))), dtype=np.float32), 16_000, "WAV", "PCM_16")
        return Line(key, text, data, "wav", reasons={"unsupported_audio"})
    clip = draw(clips(max_seconds=0.2))
    if kind == "no_text":
        return Line(key, draw(st.sampled_from([None, 5, ["a"], {"t": "x"}])), clip.data, clip.ext,
                    reasons={"empty_transcript"})
    if kind == "blank_text":
        return Line(key, draw(st.sampled_from(["", " ", "\t\n", "\u00a0 \u3000"])), clip.data, clip.ext,
                    reasons={"empty_transcript"})
    if kind == "odd_text":
        text = "".join(draw(st.lists(st.sampled_from(TRICKY), min_size=1, max_size=8))) + "x"
        return Line(key, text, clip.data, clip.ext, clip)
    if kind == "missing_file":
        return Line(key, text, None, "flac", reasons={"missing_audio"})
    raw = draw(st.sampled_from(['{"audio": "x.flac", "text": ', "[1, 2]", '"str"', "{oops}", '{"text": "no audio"}']))
    return Line(key, text, None, "flac", reasons={"bad_manifest_line"}, raw=raw)


def test_prepare_manifest_writes_the_good_and_counts_the_bad():
    """build_from_manifest over fuzzed files and lines: every good line written exactly as it was (audio values,
    rate, channels, transcript), every bad one skipped, named in a warning and counted in index["skipped"]."""
    ran = []

    @fuzz("prepare_manifest")
    @given(lines=st.integers(2, 8).flatmap(lambda n: st.tuples(*[manifest_lines(f"k{i:02d}") for i in range(n)])))
    def check(lines):
        with tempfile.TemporaryDirectory() as tmp, captured("data.prepare") as records:
            root = Path(tmp)
            (root / "audio").mkdir()
            rows = []
            for line in lines:
                if line.raw is not None:
                    rows.append(line.raw)
                    continue
                rel = f"audio/{line.key}.{line.suffix}"
                if line.audio is not None:
                    (root / rel).write_bytes(line.audio)
                rec = {"id": line.key, "audio": rel, "lang": "en"}
                if line.text is not None:
                    rec["text"] = line.text
                # Both escaped and raw UTF-8 (raw line separators such as U+2028 included).
                rows.append(json.dumps(rec, ensure_ascii=not len(rows) % 2))
            (root / "m.jsonl").write_text("\n".join(rows) + "\n", encoding="utf-8")
            try:
                index = build_from_manifest(root / "m.jsonl", root / "out", max_bad_fraction=1.0, workers=1)
            except RuntimeError as exc:  # nothing usable: a clear error and no index, never for a good line
                assert "unusable" in str(exc) and all(line.reasons for line in lines), exc
                assert not (root / "out" / INDEX_NAME).exists()
                ran.append(1)
                return
            skipped = {int(r.args[0].rsplit(":", 1)[1]) - 1: r.args[1].reason for r in records
                       if r.msg.startswith("skipping")}
            assert Counter(skipped.values()) == Counter(index["skipped"])
            written = stored_samples(root / "out")
            for i, line in enumerate(lines):
                if not line.reasons:
                    assert line.key in written and i not in skipped, f"{line.key} lost"
                elif i in skipped:
                    assert skipped[i] in line.reasons, (line.key, skipped[i], line.reasons)
                    assert line.key not in written
                else:  # only damaged audio that still decodes may pass, stored as its header says
                    assert "self" in line.reasons and line.key in written, (line.key, line.reasons)
            assert index["samples"] == len(written) == len(lines) - len(skipped)
            for key, (flac, meta) in written.items():
                line = next(ln for ln in lines if ln.key == key)
                assert meta["text"] == line.text and meta["lang"] == "en"  # verbatim, however odd or long
                if line.clip is not None:
                    check_imported((flac, line.clip.seconds), line.clip)
                    assert meta["duration"] == round(line.clip.seconds, 3)
                else:  # damaged but decodable: stored as the damaged file's own header says
                    info, stored = sf.info(io.BytesIO(line.audio)), sf.info(io.BytesIO(flac))
                    assert (stored.frames, stored.samplerate, stored.channels) == \
                        (info.frames, info.samplerate, info.channels)
        ran.append(1)

    check()
    assert_budget("prepare_manifest", ran)


def stored_samples(shard_dir: Path) -> dict[str, tuple[bytes, dict]]:
    """key -> (audio bytes, meta) of every sample in a shard set, read back with tarfile."""
    out = {}
    for shard in read_index(shard_dir)["shards"]:
        with tarfile.open(shard_dir / shard["name"]) as tar:
            members = {m.name: tar.extractfile(m).read() for m in tar.getmembers()}
        for name, payload in members.items():
            key, ext = name.split(".", 1)
            if ext != "json":
                out[key] = (payload, json.loads(members[f"{key}.json"]))
    return out


def test_prepare_non_utf8_manifest_is_a_clear_error(tmp_path, caplog):
    """A manifest that is not UTF-8 stops `python -m data.prepare manifest` with exit code 2 and the codec error
    (naming the byte offset), before any shard is written."""
    sf.write(tmp_path / "a.flac", np.zeros(1600, dtype=np.float32), 16_000)
    (tmp_path / "m.jsonl").write_bytes(b'{"id": "a", "audio": "a.flac", "text": "caf\xe9"}\n')
    caplog.set_level(logging.ERROR)
    assert prepare_main(["manifest", "--manifest", str(tmp_path / "m.jsonl"), "--out", str(tmp_path / "out")]) == 2
    assert "utf-8" in caplog.text and "position" in caplog.text
    assert not (tmp_path / "out").exists()


# ------------------------------------------------------------------------------------------------ layer 4: stream

_TOKENIZER = None


def tokenizer():
    """The conftest's word-level tokenizer over WORDS plus a BERT-style normaliser, which deletes control and format
    characters: a transcript of zero-width spaces then survives normalize_text yet tokenises to nothing."""
    global _TOKENIZER
    if _TOKENIZER is None:
        from tokenizers import Tokenizer, models, normalizers, pre_tokenizers
        from transformers import PreTrainedTokenizerFast

        vocab = {"<pad>": 0, "<unk>": 1, "<s>": 2, "</s>": 3}
        for w in WORDS:
            vocab.setdefault(w, len(vocab))
        tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
        tok.normalizer = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=False, strip_accents=False,
                                                    lowercase=False)
        tok.pre_tokenizer = pre_tokenizers.Whitespace()
        _TOKENIZER = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", unk_token="<unk>",
                                             bos_token="<s>", eos_token="</s>")
    return _TOKENIZER


@dataclass
class Member:
    """One sample written into a shard, and what the loader must make of it."""

    key: str
    audio: bytes
    ext: str
    duration: float
    """What the index says (the source's duration, as prepare would have recorded it)."""
    text: object = None
    raw_json: bytes | None = None
    """Json member bytes that ShardWriter could not produce itself: patched into the shard after writing."""
    clip: Clip | None = None
    reasons: frozenset[str] = frozenset()
    """Empty: must come out valid. Else the drop reasons allowed ("self": may also come out, header-consistent)."""


def json_garbage(draw) -> tuple[bytes, set[str]]:
    kind = draw(st.sampled_from(["non_utf8", "deep", "not_object", "junk", "surrogates", "truncated"]))
    if kind == "non_utf8":
        bad = draw(st.sampled_from([b"\xff", b"\xfe\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\xe9", b"\x80\x80"]))
        return b'{"duration": 1.0, "text": "the fox ' + bad + b' dog"}', {"corrupt_json"}
    if kind == "deep":  # nesting deeper than Python's recursion limit
        depth = draw(st.integers(2_000, 100_000))
        return draw(st.sampled_from([b"[", b'{"a":'])) * depth, {"corrupt_json"}
    if kind == "not_object":
        return draw(st.sampled_from([b"null", b"[1, 2]", b'"the fox"', b"5", b"true"])), {"corrupt_json"}
    if kind == "junk":
        return draw(st.binary(max_size=300)), {"corrupt_json", "empty_transcript"}
    if kind == "surrogates":  # valid JSON escapes of unpaired UTF-16 halves; "lower" strips them like punctuation
        return b'{"text": "\\udfff\\ud800"}', {"corrupt_json", "empty_transcript"}
    return b'{"duration": 1.0, "text": "the quick br', {"corrupt_json"}


@st.composite
def stream_members(draw, key: str) -> Member:
    kind = draw(st.sampled_from(["valid", "valid", "valid", "truncated", "flipped", "junk", "zero_bytes",
                                 "zero_frames", "nan", "huge", "bad_rate", "raw_json", "raw_json", "raw_json",
                                 "no_text", "blank_text", "zero_width_text", "huge_text", "odd_text"]))
    text = good_text(draw)
    if kind in ("valid", "odd_text"):
        clip = draw(clips(channels=CHANNELS + (12,)))
        if kind == "odd_text":
            text = "".join(draw(st.lists(st.sampled_from(TRICKY), max_size=6))) + " " + draw(st.sampled_from(WORDS))
        return Member(key, clip.data, clip.ext, clip.seconds, text, clip=clip)
    if kind == "truncated":
        clip, data = draw(truncated_clips())
        return Member(key, data, clip.ext, clip.seconds, text, reasons=frozenset({"corrupt_audio", "empty_audio"}))
    if kind == "flipped":
        clip, data, _ = draw(flipped_clips())
        return Member(key, data, clip.ext, clip.seconds, text,
                      reasons=AUDIO_REASONS | {"duration_mismatch", "self"})
    if kind == "junk":
        return Member(key, draw(junk), draw(st.sampled_from(["wav", "flac"])), 1.0, text,
                      reasons=AUDIO_REASONS | {"duration_mismatch", "self"})
    if kind == "zero_bytes":
        return Member(key, b"", "flac", 1.0, text, reasons=frozenset({"empty_audio"}))
    if kind == "zero_frames":
        data = encode(np.zeros((0, 1), dtype=np.float32), 16_000, "WAV", "PCM_16")
        return Member(key, data, "wav", 1.0, text, reasons=frozenset({"empty_audio"}))
    if kind == "nan":
        return Member(key, draw(non_finite_clips()), "wav", 0.5, text, reasons=frozenset({"non_finite_audio"}))
    if kind == "huge":
        clip, data = draw(huge_float_clips())
        return Member(key, data, "wav", clip.seconds, text, reasons=frozenset({"non_finite_audio", "self"}))
    if kind == "bad_rate":
        data = encode(np.zeros(100, dtype=np.float32), draw(bad_rates), "WAV", "PCM_16")
        return Member(key, data, "wav", 0.5, text, reasons=frozenset({"bad_sample_rate"}))
    clip = draw(clips(max_seconds=0.3))
    if kind == "raw_json":
        raw, reasons = json_garbage(draw)
        return Member(key, clip.data, clip.ext, clip.seconds, raw_json=raw, reasons=frozenset(reasons))
    if kind == "no_text":
        return Member(key, clip.data, clip.ext, clip.seconds, draw(st.sampled_from([None, 5, ["the"], {"a": 1}])),
                      reasons=frozenset({"empty_transcript"}))
    if kind == "blank_text":
        return Member(key, clip.data, clip.ext, clip.seconds, draw(st.sampled_from(["", " ", "\t\n", "\u3000 \u00a0"])),
                      reasons=frozenset({"empty_transcript"}))
    if kind == "zero_width_text":
        return Member(key, clip.data, clip.ext, clip.seconds, "".join(draw(st.lists(
            st.sampled_from(ZERO_WIDTH), min_size=1, max_size=5))), reasons=frozenset({"empty_transcript"}))
    # huge_text: over max_text_tokens (1024), and a json member of about 120 KB: filtered, not bad
    return Member(key, clip.data, clip.ext, clip.seconds, " ".join(WORDS) * 1_000,
                  reasons=frozenset({"text_too_long"}))


def write_members(root: Path, members: list[Member], per_shard: int) -> None:
    """ShardWriter directly (no prepare checks); json garbage is patched into the tar after the index is built,
    byte for byte in place of a same-length placeholder - like bit rot after indexing."""
    writer = ShardWriter(root, max_samples=per_shard)
    patches = {}
    for m in members:
        meta = {"duration": round(m.duration, 4)}
        if m.raw_json is not None:
            base = len(json.dumps({**meta, "text": ""}, ensure_ascii=False, sort_keys=True).encode())
            patches[m.key] = m.raw_json + b" " * max(0, base - len(m.raw_json))  # JSON allows trailing blanks
            meta["text"] = "a" * (len(patches[m.key]) - base)
        elif m.text is not None:
            meta["text"] = m.text
        writer.write(m.key, m.audio, m.ext, meta, m.duration)
    writer.close()
    for tar in sorted(root.glob("*.tar")):
        table = SampleTable.from_json(json.loads(tar.with_name(tar.name + TABLE_SUFFIX).read_text()))
        with open(tar, "r+b") as fh:
            for i, key in enumerate(table.keys):
                if key in patches:
                    assert table.json_size[i] == len(patches[key])
                    fh.seek(table.json_offset[i])
                    fh.write(patches[key])


@st.composite
def shard_sets(draw):
    members = [draw(stream_members(f"s{i:02d}")) for i in range(draw(st.integers(4, 12)))]
    batch_size = draw(st.integers(1, 4))
    # The epoch must end on a batch that is yielded (an all-bad batch is skipped): pad with valid samples to a
    # whole number of batches and end on one, so the last batch of the epoch holds a valid sample.
    n_pad = 1 + (-(len(members) + 1)) % batch_size
    for i in range(n_pad):
        clip = draw(clips(max_seconds=0.2))
        members.append(Member(f"zz{i}", clip.data, clip.ext, clip.seconds, good_text(draw), clip=clip))
    return members, batch_size, draw(st.integers(2, 6)), draw(st.sampled_from(TEXT_NORMS))


def test_stream_epoch_yields_only_valid_samples_and_names_every_drop():
    """A shard set holding fuzzed audio and broken json/transcripts among valid samples: one epoch completes,
    every batch holds only valid samples (right length at 16 kHz, finite, mono float32, the transcript's tokens),
    and every other key is dropped, named in a warning with its reason and counted by the loader."""
    tok = tokenizer()
    ran = []

    @fuzz("stream_epoch")
    @given(case=shard_sets())
    def check(case):
        members, batch_size, per_shard, norm = case
        with tempfile.TemporaryDirectory() as tmp, captured("data.stream") as records:
            root = Path(tmp) / "shards"
            write_members(root, members, per_shard)
            cfg = StreamConfig(sources=[{"path": str(root), "name": "fuzz"}], batch_size=batch_size, num_workers=0,
                               shuffle_buffer=0, shuffle_shards=False, bucket_edges=[45.0], min_duration=0.0,
                               text_norm=norm, max_bad_fraction=1.0, bad_grace_samples=0)
            loader = StreamLoader(cfg, tokenizer=tok)
            assert len(loader.catalogs[0]) == len(members) and loader.catalogs[0].lost == 0
            out: dict[str, tuple] = {}
            last = None
            for batch in loader:
                assert batch["epoch"] == 0
                check_batch(batch, tok)
                for i, key in enumerate(batch["keys"]):
                    assert key not in out, f"{key} twice in one epoch"
                    n = int(batch["audio_lengths"][i])
                    out[key] = (batch["audio"][i, :n].numpy(), batch["texts"][i])
                last = batch["batch_index"]
                if loader.epoch == 1:
                    break
            assert last == loader.batches_per_epoch - 1  # the epoch completed
            dropped = {r.args[0]: r.args[2] for r in records if r.msg.startswith("skipping")}
            for m in members:
                if not m.reasons:
                    assert m.key in out, f"valid {m.key} lost ({dropped.get(m.key)})"
                    audio, text = out[m.key]
                    expected = m.clip.expected_16k()
                    assert len(audio) == len(expected)
                    assert float(np.abs(audio - expected).max()) <= m.clip.tolerance()
                    assert text == normalize_text(m.text, norm)
                elif m.key in dropped:
                    assert dropped[m.key] in m.reasons, (m.key, dropped[m.key], m.reasons)
                else:
                    assert "self" in m.reasons and m.key in out, f"{m.key} neither loaded nor named as dropped"
            assert set(out) | set(dropped) == {m.key for m in members} and not set(out) & set(dropped)
            st_ = loader.stats
            assert st_.samples == len(out)
            assert st_.bad + st_.filtered == Counter(dropped.values())
            assert set(st_.filtered) <= {"text_too_long"}
        ran.append(1)

    check()
    assert_budget("stream_epoch", ran)


def check_batch(batch: dict, tok) -> None:
    """A training batch as the model sees it: padded float32 audio with exact masks, non-empty token targets."""
    b, lengths = batch["size"], batch["audio_lengths"]
    assert b == len(batch["keys"]) > 0
    assert batch["audio"].dtype == torch.float32 and batch["audio"].shape == (b, int(lengths.max()))
    assert torch.isfinite(batch["audio"]).all() and (lengths > 0).all()
    assert batch["audio_mask"].sum(1).tolist() == lengths.tolist()
    assert not batch["audio"][~batch["audio_mask"]].any()  # padding is zeros
    for i, text in enumerate(batch["texts"]):
        ids = tok(text, add_special_tokens=False)["input_ids"]
        n = int(batch["text_mask"][i].sum())
        assert n == len(ids) > 0 and batch["text_ids"][i, :n].tolist() == ids


# ------------------------------------------------------------------------------------------------ collate

def test_collate_pads_any_mix_of_lengths_exactly():
    ran = []

    @fuzz("collate")
    @given(lengths=st.lists(st.integers(1, 5_000), max_size=6), seed=st.integers(0, 2**32 - 1),
           with_text=st.booleans(), pad_id=st.integers(0, 5))
    def check(lengths, seed, with_text, pad_id):
        rng = np.random.default_rng(seed)
        samples = [LoadedSample(f"k{i}", "src", rng.uniform(-1, 1, n).astype(np.float32), "t", {})
                   for i, n in enumerate(lengths)]
        ids = [rng.integers(6, 50, int(rng.integers(1, 20))).tolist() for _ in lengths] if with_text else None
        batch = collate(samples, ids, pad_id)
        b, t = len(lengths), max(lengths, default=0)
        assert batch["size"] == b and batch["audio"].shape == (b, t) and batch["audio"].dtype == torch.float32
        assert batch["audio_lengths"].tolist() == lengths and batch["audio_mask"].sum(1).tolist() == lengths
        for i, s in enumerate(samples):
            assert np.array_equal(batch["audio"][i, :lengths[i]].numpy(), s.audio)
            assert not batch["audio"][i, lengths[i]:].any()
        if with_text:
            for i, row in enumerate(ids):
                assert batch["text_ids"][i, :len(row)].tolist() == row and batch["text_mask"][i].sum() == len(row)
                assert (batch["text_ids"][i, len(row):] == pad_id).all()
        else:
            assert "text_ids" not in batch
        ran.append(1)

    check()
    assert_budget("collate", ran)


# ------------------------------------------------------------------------------------------------ found by fuzzing
# Cases the properties above found in the corpus importers, prepare and the tar indexer, kept as plain regressions.

def test_import_truncated_wav_is_rejected():
    clip_data = encode(np.full(16_000, 0.25, dtype=np.float32), 16_000, "WAV", "PCM_16")
    with pytest.raises(BadSample, match="corrupt_audio"):
        load_item_audio(AudioRef(data=clip_data[: len(clip_data) // 2]))


def test_import_wav_with_more_than_8_channels_is_skipped():
    data = encode(np.zeros((100, 10), dtype=np.float32), 16_000, "WAV", "PCM_16")
    with pytest.raises(BadSample):
        load_item_audio(AudioRef(data=data))


def test_prepare_lone_surrogate_transcript_is_skipped(tmp_path):
    sf.write(tmp_path / "a.flac", np.zeros(1600, dtype=np.float32), 16_000)
    sf.write(tmp_path / "b.flac", np.zeros(1600, dtype=np.float32), 16_000)
    (tmp_path / "m.jsonl").write_text('{"id": "a", "audio": "a.flac", "text": "the \\ud800"}\n'
                                      '{"id": "b", "audio": "b.flac", "text": "the fox"}\n')
    index = build_from_manifest(tmp_path / "m.jsonl", tmp_path / "out", max_bad_fraction=1.0, workers=1)
    assert index["samples"] == 1 and sum(index["skipped"].values()) == 1


def test_prepare_raw_line_separator_in_a_transcript_keeps_the_sample(tmp_path):
    sf.write(tmp_path / "a.flac", np.zeros(1600, dtype=np.float32), 16_000)
    rec = {"id": "a", "audio": "a.flac", "text": "the fox\u2028the dog"}
    (tmp_path / "m.jsonl").write_text(json.dumps(rec, ensure_ascii=False) + "\n", encoding="utf-8")
    index = build_from_manifest(tmp_path / "m.jsonl", tmp_path / "out", max_bad_fraction=1.0, workers=1)
    assert index["samples"] == 1 and not index["skipped"]
    assert stored_samples(tmp_path / "out")["a"][1]["text"] == rec["text"]


def test_index_tar_with_deeply_nested_json(tmp_path):
    audio = encode(np.zeros(1600, dtype=np.float32), 16_000, "FLAC", "PCM_16")
    with tarfile.open(tmp_path / "other.tar", "w") as tar:
        for name, payload in (("a.flac", audio), ("a.json", b"[" * 100_000)):
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    index = index_shard_set(tmp_path)
    assert index["samples"] == 1  # duration from the audio header; the loader then drops it as corrupt_json
