"""Audio decoding, resampling and text normalisation units."""

from __future__ import annotations

import io

import numpy as np
import pytest
import soundfile as sf

from data.audio import BadSample, audio_info, decode_audio, resample, to_flac
from data.collate import normalize_text


def _encode(x, rate, fmt="FLAC", subtype="PCM_16") -> bytes:
    buf = io.BytesIO()
    sf.write(buf, x, rate, format=fmt, subtype=subtype)
    return buf.getvalue()


def test_decode_plain_16k_mono_is_untouched():
    x = (0.5 * np.sin(np.linspace(0, 100, 16000))).astype(np.float32)
    out = decode_audio(_encode(x, 16000))
    assert out.fixes == [] and out.rate == 16000 and out.seconds == 1.0
    assert np.abs(out.samples - x).max() < 1e-4  # 16-bit quantisation only


def test_resample_preserves_duration_and_a_tone():
    rate = 44100
    t = np.arange(rate * 2) / rate
    out = decode_audio(_encode(np.sin(2 * np.pi * 440 * t).astype(np.float32) * 0.5, rate))
    assert out.fixes == ["resampled"] and len(out.samples) == 32000
    spectrum = np.abs(np.fft.rfft(out.samples))
    assert abs(np.argmax(spectrum) * 16000 / len(out.samples) - 440) < 1.0
    assert len(resample(np.zeros(22050, dtype=np.float32), 22050)) == 16000


def test_stereo_is_averaged():
    left = np.full(1600, 0.5, dtype=np.float32)
    out = decode_audio(_encode(np.stack([left, 0 * left], 1), 16000))
    assert out.fixes == ["downmixed"] and np.allclose(out.samples, 0.25, atol=1e-4)


@pytest.mark.parametrize("data, reason", [
    (b"", "empty_audio"),
    (b"RIFF\x00\x00garbage" * 10, "corrupt_audio"),
])
def test_garbage_is_classified(data, reason):
    with pytest.raises(BadSample) as info:
        decode_audio(data)
    assert info.value.reason == reason


def test_nan_and_absurd_rates_are_bad():
    x = np.zeros(1000, dtype=np.float32)
    x[10] = np.nan
    with pytest.raises(BadSample, match="non_finite_audio"):
        decode_audio(_encode(x, 16000, "WAV", "FLOAT"))
    with pytest.raises(BadSample, match="bad_sample_rate"):
        decode_audio(_encode(np.zeros(100, dtype=np.float32), 1000, "WAV", "PCM_16"))
    with pytest.raises(BadSample, match="empty_audio"):
        decode_audio(_encode(np.zeros(0, dtype=np.float32), 16000, "WAV", "PCM_16"))


def test_to_flac_is_lossless_for_pcm16_and_info_reads_header():
    x = np.random.default_rng(0).integers(-2000, 2000, (8000, 2)).astype(np.int16)
    wav = _encode(x, 22050, "WAV", "PCM_16")
    flac = to_flac(wav)
    y, rate = sf.read(io.BytesIO(flac), dtype="int16")
    assert rate == 22050 and np.array_equal(x, y)
    assert audio_info(flac) == (pytest.approx(8000 / 22050), 22050, 2)


@pytest.mark.parametrize("mode, text, expected", [
    ("none", "  Hello,  World! ", "  Hello,  World! "),
    ("basic", "  Hello,\u00a0 World! ", "Hello, World!"),
    ("lower", "Hello, World! It's a well-known 'fact' - ok?", "hello world it's a well-known fact ok"),
    ("lower", "Ｆｕｌｌ　ｗｉｄｔｈ", "full width"),
    ("lower", "Привет, мир!", "привет мир"),
])
def test_normalize_text(mode, text, expected):
    assert normalize_text(text, mode) == expected


def test_normalize_text_rejects_unknown_modes():
    with pytest.raises(ValueError, match="unknown text normalisation"):
        normalize_text("x", "upper")
