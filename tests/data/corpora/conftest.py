"""Helpers for the corpus importer tests: tiny audio files in real formats, and reading a written shard set back."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from data.prepare import main as prepare_main
from data.shards import read_index


def tone(seconds: float, rate: int = 16_000, freq: float = 220.0, channels: int = 1) -> np.ndarray:
    """A quiet sine (float32, frames x channels) whose frequency identifies the file in tests."""
    t = np.arange(int(round(seconds * rate))) / rate
    x = (0.25 * np.sin(2 * np.pi * freq * t)).astype(np.float32)
    return np.repeat(x[:, None], channels, axis=1)


def write_audio(path: Path, seconds: float, rate: int = 16_000, freq: float = 220.0, fmt: str | None = None,
                subtype: str | None = None, channels: int = 1) -> Path:
    """Write a tone to ``path`` in the format its suffix implies (flac, wav, opus via OGG/OPUS); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".opus" and fmt is None:
        fmt, subtype = "OGG", "OPUS"
    sf.write(path, tone(seconds, rate, freq, channels), rate, format=fmt, subtype=subtype)
    return path


def audio_bytes(seconds: float, rate: int = 16_000, freq: float = 220.0, fmt: str = "WAV") -> bytes:
    """Encoded tone bytes (e.g. a parquet/arrow audio cell)."""
    out = io.BytesIO()
    sf.write(out, tone(seconds, rate, freq), rate, format=fmt)
    return out.getvalue()


def read_shard_set(out: Path) -> dict[str, tuple[dict, np.ndarray, int]]:
    """Every sample of a shard set: key -> (json meta, decoded float32 mono audio, sample rate)."""
    index = read_index(out)
    samples = {}
    for shard in index["shards"]:
        with tarfile.open(Path(out) / shard["name"]) as tar:
            members = {m.name: tar.extractfile(m).read() for m in tar.getmembers()}
        for name, payload in members.items():
            key, ext = name.split(".", 1)
            if ext != "json":
                continue
            audio, rate = sf.read(io.BytesIO(members[f"{key}.flac"]), dtype="float32")
            samples[key] = (json.loads(payload), audio, rate)
    return samples


def dominant_freq(audio: np.ndarray, rate: int) -> float:
    """The strongest frequency of a (mono or multi-channel) tone, to tell which source file a segment came from."""
    mono = audio.mean(axis=1) if audio.ndim > 1 else audio
    spectrum = np.abs(np.fft.rfft(mono * np.hanning(len(mono))))
    return float(np.fft.rfftfreq(len(mono), 1 / rate)[int(np.argmax(spectrum))])


@pytest.fixture
def run_prepare():
    """Run ``python -m data.prepare <args>`` in-process; asserts exit status 0 unless ``expect`` says otherwise."""

    def run(*args: str, expect: int = 0) -> int:
        rc = prepare_main([str(a) for a in args])
        assert rc == expect, f"data.prepare {' '.join(map(str, args))} exited {rc}, expected {expect}"
        return rc

    return run
