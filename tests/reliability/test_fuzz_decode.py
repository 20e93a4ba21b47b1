"""Input fuzzing, layer 1: data.audio.decode_audio on valid, truncated, bit-flipped, junk, NaN/Inf, overflowing,
odd-rate, zero-length, single-frame, very long and many-channel audio (contract: tests/reliability/fuzz_audio.py)."""

from __future__ import annotations

import struct

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from data.audio import BadSample, DecodedAudio, decode_audio
from tests.reliability.fuzz_audio import (
    FORMATS,
    RATES,
    Clip,
    assert_budget,
    bad_rates,
    check_clip_decoded,
    check_decoded,
    clips,
    decode_self_consistent,
    encode,
    flipped_clips,
    fuzz,
    huge_float_clips,
    junk,
    non_finite_clips,
    truncated_clips,
    wav_data_region,
)

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


