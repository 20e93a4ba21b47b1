"""Tests of data.synth.augment (exact maths) and the data.synth corpus (determinism, schema, refusal).

The synth tests run espeak-ng for real on a few seconds of audio per task; they fail (rather
than skip) without it, because a machine without espeak-ng cannot build the corpus.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from scipy import signal

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # repo root, for `import data`

from data.synth import augment, corpus, speech, tasks  # noqa: E402
from data.synth.config import SynthConfig  # noqa: E402

SR = 16000


def _speech_like(seconds: float = 2.0, seed: int = 0) -> np.ndarray:
    """Harmonic bursts separated by true silence (like TTS output with pauses)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    x = 0.3 * np.sin(2 * np.pi * 180 * t) + 0.1 * np.sin(2 * np.pi * 720 * t)
    x *= 1.0 + 0.2 * rng.standard_normal(t.size)
    gate = (np.floor(t * 5) % 2 == 0)  # 200 ms on, 200 ms off
    return x * gate


# ----------------------------------------------------------------------------- augment


@pytest.mark.parametrize("color", augment.NOISE_COLORS)
@pytest.mark.parametrize("snr_db", [-5.0, 0.0, 12.5, 30.0])
def test_mix_at_snr_is_exact(color: str, snr_db: float) -> None:
    speech = _speech_like()
    mixed = augment.add_noise(speech, color, snr_db, SR, np.random.default_rng(1))
    noise = mixed - speech
    measured = 10 * np.log10(augment.active_power(speech, SR) / np.mean(noise**2))
    assert abs(measured - snr_db) < 0.1


def test_active_power_ignores_silence() -> None:
    x = _speech_like()
    on = x[np.abs(x) > 0]
    # Half the signal is silence: whole-signal power would be ~3 dB lower than the active power.
    assert augment.active_power(x, SR) == pytest.approx(np.mean(on**2), rel=0.05)
    assert augment.active_power(x, SR) > 1.8 * np.mean(x**2)
    assert augment.active_power(np.zeros(1000), SR) == 0.0


def test_reverb_keeps_full_tail_and_decays_at_rt60() -> None:
    rt60 = 0.5
    x = _speech_like(1.0)
    rng = np.random.default_rng(3)
    y = augment.add_reverb(x, rt60, SR, rng)
    ir = augment.synthetic_rir(rt60, SR, np.random.default_rng(3))
    assert y.size == x.size + ir.size - 1 > x.size
    assert np.max(np.abs(y)) == pytest.approx(np.max(np.abs(x)))  # no clipping growth
    assert np.sum(y[x.size:] ** 2) > 0  # the tail after the dry signal is kept
    assert ir[0] == 1.0
    # Decay: energy envelope of the tail in dB vs time should fall 60 dB per rt60.
    tail = ir[int(0.003 * SR):]
    frame = int(0.02 * SR)
    env = np.array([np.sum(tail[i:i + frame] ** 2) for i in range(0, tail.size - frame, frame)])
    t = (np.arange(env.size) * frame + frame / 2) / SR
    slope_db_per_s = np.polyfit(t, 10 * np.log10(env), 1)[0]
    assert -60 / slope_db_per_s == pytest.approx(rt60, rel=0.15)


def test_resample_length_and_frequency() -> None:
    assert augment.resample(np.zeros(22050), 22050, 16000).size == 16000
    n = 12345
    assert augment.resample(np.zeros(n), 22050, 16000).size == int(np.ceil(n * 16000 / 22050))
    t = np.arange(22050) / 22050
    y = augment.resample(np.sin(2 * np.pi * 1000 * t), 22050, 16000)
    spec = np.abs(np.fft.rfft(y))
    assert np.argmax(spec) * 16000 / y.size == pytest.approx(1000, abs=2)
    assert np.array_equal(augment.resample(y, 16000, 16000), y)


@pytest.mark.parametrize("color,slope,tol", [("white", 0.0, 0.15), ("pink", -1.0, 0.15),
                                             ("brown", -2.0, 0.2)])
def test_noise_color_spectral_slope(color: str, slope: float, tol: float) -> None:
    n = augment.colored_noise(2**17, color, np.random.default_rng(0))
    assert np.sqrt(np.mean(n**2)) == pytest.approx(1.0)
    f, psd = signal.welch(n, fs=SR, nperseg=4096)
    band = (f >= 50) & (f <= 5000)
    fitted = np.polyfit(np.log10(f[band]), np.log10(psd[band]), 1)[0]
    assert abs(fitted - slope) < tol
    if slope < 0:  # power must fall with frequency
        assert psd[(f > 100) & (f < 200)].mean() > 5 * psd[(f > 4000) & (f < 5000)].mean()


def test_augment_is_deterministic_per_generator() -> None:
    x = _speech_like(0.5)

    def run(seed: int) -> np.ndarray:
        rng = np.random.default_rng(seed)
        return augment.add_noise(augment.add_reverb(x, 0.3, SR, rng), "pink", 10.0, SR, rng)

    assert np.array_equal(run(7), run(7))
    assert not np.array_equal(run(7), run(8))


def test_levels_and_pcm() -> None:
    x = np.array([0.0, 0.5, -2.0, 1.0])
    assert np.max(np.abs(augment.peak_normalize(x, 0.9))) == pytest.approx(0.9)
    assert np.array_equal(augment.protect_clipping(x * 0.1), x * 0.1)
    assert np.max(np.abs(augment.protect_clipping(x))) == pytest.approx(0.999)
    assert augment.to_pcm16(np.array([1.5, -1.5, 0.5])).tolist() == [32767, -32768, 16384]
    with pytest.raises(ValueError, match="unknown noise color"):
        augment.colored_noise(10, "blue", np.random.default_rng(0))


# ----------------------------------------------------------------------------- synth

TINY = dict(hours=0.005, langs=("en", "ru", "de"), st_hours=0.002, sqa_hours=0.003,
            noise_prob=0.5, reverb_prob=0.5)


def _run(out: Path, seed: int = 0, workers: int = 2) -> dict:
    return corpus.synthesize(SynthConfig(out=out, seed=seed, workers=workers, **TINY))


def _files(root: Path) -> dict[str, bytes]:
    """All manifests and FLAC files under root (synth.json holds wall time, so it is left out)."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and p.suffix in (".jsonl", ".flac")}


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("synth")
    dirs = {"a": base / "a", "b": base / "b", "one_worker": base / "w1", "seed1": base / "s1"}
    _run(dirs["a"])
    _run(dirs["b"])
    _run(dirs["one_worker"], workers=1)
    _run(dirs["seed1"], seed=1)
    return dirs


def test_same_seed_gives_identical_bytes(runs: dict[str, Path]) -> None:
    a, b = _files(runs["a"]), _files(runs["b"])
    assert len(a) > 5 and a.keys() == b.keys()
    for name in a:
        assert a[name] == b[name], name


def test_worker_count_does_not_change_output(runs: dict[str, Path]) -> None:
    a, w1 = _files(runs["a"]), _files(runs["one_worker"])
    assert a.keys() == w1.keys()
    assert all(a[k] == w1[k] for k in a)


def test_different_seed_differs(runs: dict[str, Path]) -> None:
    a = (runs["a"] / "asr-en" / "manifest.jsonl").read_text()
    s1 = (runs["seed1"] / "asr-en" / "manifest.jsonl").read_text()
    assert a != s1


REQUIRED = {"id", "audio", "text", "lang", "duration", "voice", "speed", "pitch", "noise", "snr_db",
            "rt60", "task", "labels"}


def test_manifest_schema(runs: dict[str, Path]) -> None:
    out = runs["a"]
    summary = json.loads((out / "synth.json").read_text(encoding="utf-8"))
    assert set(summary["manifests"]) == {"asr-en", "asr-ru", "asr-de", "st", "sqa"}
    ids: set[str] = set()
    seen_noise = seen_reverb = False
    for name, stats in summary["manifests"].items():
        mdir = out / name
        lines = [json.loads(s) for s in (mdir / "manifest.jsonl").read_text(encoding="utf-8").splitlines()]
        assert len(lines) == stats["lines"] > 0
        seconds = {}
        for rec in lines:
            assert rec.keys() >= REQUIRED, rec.keys()
            assert rec["id"] not in ids and "." not in rec["id"]
            ids.add(rec["id"])
            assert rec["task"] == name.split("-")[0]
            assert rec["voice"] in summary["voices_available"][rec["lang"]]
            assert (rec["noise"] is None) == (rec["snr_db"] is None)
            assert rec["noise"] in (None, *augment.NOISE_COLORS)
            labels = rec["labels"]
            assert labels["noise"] == ("clean" if rec["noise"] is None else "noisy")
            assert labels["reverberation"] == ("dry" if rec["rt60"] is None else "reverberant")
            assert labels["speaking_rate"] == ("slow" if rec["speed"] <= 145 else "fast" if rec["speed"] >= 175
                                               else "normal")
            seen_noise |= rec["noise"] is not None
            seen_reverb |= rec["rt60"] is not None
            info = sf.info(str(mdir / rec["audio"]))
            assert (info.samplerate, info.channels, info.format, info.subtype) == (16000, 1, "FLAC", "PCM_16")
            assert abs(rec["duration"] - info.frames / info.samplerate) <= 0.001
            seconds[rec["audio"]] = info.frames / info.samplerate
            if name.startswith("asr-"):
                assert rec["lang"] == name[4:]
            else:
                assert rec["lang"] == "en"
            if name == "st":
                assert set(rec["translations"]) == {"de", "fr", "es", "it"}
                assert all(v.strip() for v in rec["translations"].values())
            if name == "sqa":
                start, ans = rec["answer_start"], rec["answer"]
                assert rec["question"].strip() and ans
                assert rec["text"][start:start + len(ans)] == ans
                assert rec["audio"] == f"audio/{rec['passage_id']}.flac"
        assert sum(seconds.values()) / 3600 >= stats["target_hours"]
        assert len(seconds) == stats["audio_files"]
    assert summary["total_hours"] >= TINY["hours"] + TINY["st_hours"] + TINY["sqa_hours"]
    assert seen_noise and seen_reverb


def test_refuses_non_empty_out_dir(tmp_path: Path) -> None:
    (tmp_path / "keep.txt").write_text("x")
    cfg = SynthConfig(out=tmp_path, hours=0.001, langs="en", workers=1)
    with pytest.raises(FileExistsError, match="--overwrite"):
        corpus.synthesize(cfg)
    assert corpus.main(["--out", str(tmp_path), "--hours", "0.001", "--workers", "1"]) == 2  # one ERROR line
    cfg.overwrite = True
    corpus.synthesize(cfg)
    assert (tmp_path / "asr-en" / "manifest.jsonl").exists() and (tmp_path / "keep.txt").exists()


def test_missing_espeak_message(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(speech.shutil, "which", lambda name: None)
    with pytest.raises(RuntimeError, match="apt-get install espeak-ng"):
        corpus.synthesize(SynthConfig(out=tmp_path / "o", hours=0.001, workers=1))


def test_config_validation_and_cli() -> None:
    with pytest.raises(ValueError, match="supported"):
        SynthConfig(out="x", hours=1, langs="en,xx")
    with pytest.raises(ValueError, match="pitch"):
        SynthConfig(out="x", hours=1, pitch=(10, 120))
    with pytest.raises(ValueError, match="nothing to do"):
        SynthConfig(out="x", hours=0)
    cfg = corpus.parse_args(["--out", "o", "--hours", "2", "--langs", "en,ru", "--snr-db", "5,30",
                            "--speed", "130,180", "--lang-weights", "en=3,ru=1", "--workers", "3"])
    assert cfg.langs == ("en", "ru") and cfg.snr_db == (5.0, 30.0) and cfg.speed == (130, 180)
    assert cfg.workers == 3 and cfg.seed == 0 and cfg.noise_prob == 0.3
    assert cfg.task_targets() == {"asr-en": 5400.0, "asr-ru": 1800.0}


def test_gender_labels_only_where_the_voice_says_it() -> None:
    def gender(voice: str):
        utt = tasks.Utterance(task="asr-en", index=0, uid="u", text="hi", lang="en", voice=voice, speed=160,
                              pitch=50, noise=None, snr_db=None, rt60=None)
        return tasks.paralinguistic_labels(utt).get("gender")

    assert [gender(v) for v in ("en-us", "en-us+m3", "en-gb+f2", "de+f5", "en-us+Annie", "en-us+klatt2")] == [
        "male", "male", "female", "female", None, None]


def test_voice_sets_split_the_speakers() -> None:
    voices = {"en": ["en-us", "en-us+m1", "en-us+m2", "en-gb+m1", "en-gb+f2", "en-gb+f3"], "de": ["de+m2", "de+f1"]}
    train, heldout = speech.select_voices(voices, "train"), speech.select_voices(voices, "heldout")
    assert speech.select_voices(voices, "all") == voices
    assert heldout == {"en": ["en-us+m1", "en-gb+m1", "en-gb+f3"], "de": ["de+f1"]}  # a speaker in every accent
    assert train == {"en": ["en-us", "en-us+m2", "en-gb+f2"], "de": ["de+m2"]}  # plain voices train
    assert 0.2 < sum(map(speech.heldout_variant, speech.VARIANTS)) / len(speech.VARIANTS) < 0.35
    with pytest.raises(RuntimeError, match="no espeak-ng voice for \\['ru'\\]"):
        speech.select_voices({"ru": ["ru+m1"]}, "train")
    with pytest.raises(ValueError, match="voice_set"):
        SynthConfig(out=Path("x"), hours=1, voice_set="test")
