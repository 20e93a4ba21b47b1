"""data.corpora.kaldi: Kaldi data directories (files, pipes, segments, drops) and the AISHELL-2 release layout."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tests.data.corpora.conftest import dominant_freq, read_shard_set, tone, write_audio

LENIENT = ("--max-bad-fraction", "0.9")  # the fixtures hold as many broken utterances as good ones


def _write_lines(path: Path, lines: list[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
    return path


def _two_tones(path: Path, first: float, second: float, seconds: float = 2.0) -> Path:
    """A recording whose first half is a ``first`` Hz tone and second half a ``second`` Hz tone."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, np.concatenate([tone(seconds, freq=first), tone(seconds, freq=second)]), 16_000)
    return path


def _report(out: Path) -> dict:
    return json.loads((out / "report.json").read_text(encoding="utf-8"))


def _assert_tone(sample, freq: float) -> None:
    _, audio, rate = sample
    assert abs(dominant_freq(audio, rate) - freq) < 15


@pytest.fixture
def plain_dir(tmp_path):
    """data/train without segments: a relative file, an absolute flac, a cat pipe, a failing pipe, broken lines."""
    root = tmp_path / "data" / "train"
    write_audio(root / "wav" / "a.wav", 1.0, freq=300)
    flac = write_audio(tmp_path / "elsewhere" / "b.flac", 1.5, freq=500)
    piped = write_audio(tmp_path / "elsewhere" / "c.wav", 2.0, freq=700)
    write_audio(root / "wav" / "f.wav", 1.0, freq=900)
    _write_lines(root / "wav.scp", ["spk1-a wav/a.wav", f"spk1-b {flac}", f"spk2-c cat {piped} |",
                                    f"spk2-d cat {tmp_path / 'gone.wav'} |", "spk2-f wav/f.wav", "spk2-g wav/a.wav"])
    _write_lines(root / "text", ["spk1-a HELLO WORLD", "spk1-b <UNK> again", "spk2-c bonjour le monde",
                                 "spk2-d never read", "spk2-e no audio at all", "spk2-g"])
    _write_lines(root / "utt2spk", ["spk1-a spk1", "spk1-b spk1", "spk2-c spk2", "spk2-d spk2", "spk2-e spk2"])
    _write_lines(root / "utt2lang", ["spk2-c fr"])
    return root


def test_kaldi_files_and_pipes(plain_dir, tmp_path, run_prepare, caplog):
    out = tmp_path / "out"
    with caplog.at_level(logging.INFO, logger="data.prepare"):
        run_prepare("kaldi", "--root", plain_dir, "--out", out, "--workers", "1", "--lang", "de", *LENIENT)
    samples = read_shard_set(out)
    assert set(samples) == {"spk1-a", "spk1-b", "spk2-c"}
    meta = {k: v[0] for k, v in samples.items()}
    assert [meta[k]["text"] for k in sorted(meta)] == ["HELLO WORLD", "<UNK> again", "bonjour le monde"]
    assert [meta[k]["lang"] for k in sorted(meta)] == ["de", "de", "fr"]
    assert [meta[k]["duration"] for k in sorted(meta)] == [1.0, 1.5, 2.0]
    assert {m["split"] for m in meta.values()} == {"train"}
    assert {(m["task"], m["corpus"]) for m in meta.values()} == {("asr", "kaldi")}
    assert meta["spk1-a"]["speaker"] == "spk1" and meta["spk2-c"]["speaker"] == "spk2"
    for key, freq in (("spk1-a", 300), ("spk1-b", 500), ("spk2-c", 700)):
        _assert_tone(samples[key], freq)
    report = _report(out)
    assert report["dropped"] == {"empty_transcript": 1, "missing_audio": 1, "pipe_failed": 1}
    assert "spk2-d" in report["dropped_examples"]["pipe_failed"]
    assert "spk2-e" in report["dropped_examples"]["missing_audio"]
    assert "1 utterances of wav.scp have no line in text" in caplog.text  # spk2-f


@pytest.fixture
def segmented_dir(tmp_path):
    """egs/demo/s5/data/dev with segments; wav.scp paths are relative to the recipe directory, as Kaldi writes them."""
    recipe = tmp_path / "egs" / "demo" / "s5"
    root = recipe / "data" / "dev"
    _two_tones(recipe / "corpus" / "rec1.wav", 300, 600)
    _two_tones(recipe / "corpus" / "rec2.wav", 800, 1000)
    _write_lines(root / "wav.scp", ["rec1 corpus/rec1.wav", "rec2 cat corpus/rec2.wav |"])
    _write_lines(root / "segments", [
        "u1 rec1 0.00 2.00", "u2 rec1 2.00 -1", "u3 rec2 0.50 1.50", "u4 rec2 2.00 -1",  # good
        "u5 rec9 0.00 1.00",  # recording not in wav.scp
        "u6 rec1 3.00 2.00",  # empty span
        "u7 rec1 0.00 1.00 1",  # channel column
        "u8 rec2 10.00 12.00",  # past the end of a piped recording
        "u9 rec1 10.00 12.00",  # past the end of a file
        "u10 rec1 0.00 1.00",  # no transcript
    ])
    _write_lines(root / "text", [f"u{i} segment number {i}" for i in range(1, 10)])
    return root


def test_kaldi_segments(segmented_dir, tmp_path, run_prepare):
    out = tmp_path / "out"
    run_prepare("kaldi", "--root", segmented_dir, "--out", out, "--workers", "1", "--split", "valid", *LENIENT)
    samples = read_shard_set(out)
    assert set(samples) == {"u1", "u2", "u3", "u4"}
    expected = {"u1": (300, 2.0), "u2": (600, 2.0), "u3": (800, 1.0), "u4": (1000, 2.0)}
    for key, (freq, duration) in expected.items():
        meta = samples[key][0]
        assert meta["duration"] == duration and meta["text"] == f"segment number {key[1:]}"
        assert meta["split"] == "valid" and meta["lang"] == "en" and "speaker" not in meta
        _assert_tone(samples[key], freq)
    report = _report(out)
    assert report["dropped"] == {"bad_segment": 2, "missing_audio": 1, "pipe_failed": 1, "unsupported_channel": 1}
    assert set(report["dropped_examples"]["bad_segment"]) == {"u6", "u9"}
    assert "is outside the 4.000 s recording" in report["dropped_examples"]["pipe_failed"]["u8"]


def test_kaldi_workers_give_the_same_samples(segmented_dir, tmp_path, run_prepare):
    one, two = tmp_path / "one", tmp_path / "two"
    run_prepare("kaldi", "--root", segmented_dir, "--out", one, "--workers", "1", "--utts-per-shard", "2", *LENIENT)
    run_prepare("kaldi", "--root", segmented_dir, "--out", two, "--workers", "2", "--utts-per-shard", "2", *LENIENT)
    a, b = read_shard_set(one), read_shard_set(two)
    assert set(a) == set(b) == {"u1", "u2", "u3", "u4"}
    for key in a:
        assert a[key][0] == b[key][0]
        np.testing.assert_array_equal(a[key][1], b[key][1])
    assert _report(one)["dropped"] == _report(two)["dropped"]


def test_kaldi_audio_base_option(tmp_path, run_prepare):
    root = tmp_path / "dir"
    write_audio(tmp_path / "audio" / "x.wav", 1.0, freq=440)
    _write_lines(root / "wav.scp", ["x x.wav"])
    _write_lines(root / "text", ["x some words"])
    out = tmp_path / "out"
    run_prepare("kaldi", "--root", root, "--out", out, "--workers", "1", "--audio-base", tmp_path / "audio")
    samples = read_shard_set(out)
    assert samples["x"][0]["split"] == "dir"
    _assert_tone(samples["x"], 440)


def test_kaldi_layout_errors(tmp_path, run_prepare, capsys):
    run_prepare("kaldi", "--root", tmp_path / "missing", "--out", tmp_path / "o1", expect=2)
    _write_lines(tmp_path / "only_wav" / "wav.scp", ["a a.wav"])
    capsys.readouterr()
    run_prepare("kaldi", "--root", tmp_path / "only_wav", "--out", tmp_path / "o2", expect=2)
    assert "has no text" in capsys.readouterr().err  # the ERROR line


def _aishell2_dir(directory: Path, rows: list[tuple[str, str, str | None, float]]) -> None:
    """wav.scp + trans.txt + wav/<spk>/<utt>.wav; rows are (utt, speaker, transcript or None, tone Hz)."""
    scp, trans = [], []
    for utt, speaker, text, freq in rows:
        write_audio(directory / "wav" / speaker / f"{utt}.wav", 1.0, freq=freq)
        scp.append(f"{utt}\twav/{speaker}/{utt}.wav")
        if text is not None:
            trans.append(f"{utt}\t{text}")
    _write_lines(directory / "wav.scp", scp)
    _write_lines(directory / "trans.txt", trans)


@pytest.fixture
def aishell2_root(tmp_path):
    """AISHELL-2/iOS/data plus AISHELL-DEV-TEST-SET/{iOS,Android}/{dev,test} inside it (the ESPnet layout)."""
    root = tmp_path / "AISHELL-2"
    _aishell2_dir(root / "iOS" / "data", [("IC0001W0001", "C0001", "打开 爱芒果电视", 300),
                                          ("IC0001W0002", "C0001", "帮我放一首歌Let's go", 400),
                                          ("IC0803W0380", "C0803", "坏的", 500),
                                          ("IC0002W0001", "C0002", None, 600)])
    _write_lines(root / "iOS" / "data" / "trans.txt",
                 (root / "iOS" / "data" / "trans.txt").read_text(encoding="utf-8").splitlines()
                 + ["IC0002W0009\t没有音频"])
    dev_test = root / "AISHELL-DEV-TEST-SET"
    for device, letter, freq in (("iOS", "I", 700), ("Android", "A", 900)):
        _aishell2_dir(dev_test / device / "dev", [(f"{letter}D0011W0001", "D0011", "今天天气怎么样", freq)])
        _aishell2_dir(dev_test / device / "test", [(f"{letter}T0011W0001", "T0011", "换一首歌", freq + 100)])
    return root


def test_aishell2(aishell2_root, tmp_path, run_prepare):
    out = tmp_path / "out"
    run_prepare("aishell2", "--root", aishell2_root, "--out", out, "--workers", "1", *LENIENT)
    samples = read_shard_set(out)
    assert set(samples) == {"train_iOS_IC0001W0001", "train_iOS_IC0001W0002", "dev_iOS_ID0011W0001",
                            "test_iOS_IT0011W0001"}
    first = samples["train_iOS_IC0001W0001"][0]
    assert first == {"text": "打开爱芒果电视", "lang": "zh", "task": "asr", "split": "train", "corpus": "aishell2",
                     "speaker": "C0001", "device": "iOS", "duration": 1.0}
    assert samples["train_iOS_IC0001W0002"][0]["text"] == "帮我放一首歌Let's go"
    assert samples["test_iOS_IT0011W0001"][0]["text"] == "换一首歌"
    assert samples["dev_iOS_ID0011W0001"][0]["speaker"] == "D0011"
    for key, freq in (("train_iOS_IC0001W0001", 300), ("train_iOS_IC0001W0002", 400), ("dev_iOS_ID0011W0001", 700),
                      ("test_iOS_IT0011W0001", 800)):
        _assert_tone(samples[key], freq)
    report = _report(out)
    assert report["dropped"] == {"known_bad_utterance": 1, "missing_audio": 1}
    assert set(report["splits"]) == {"train", "dev", "test"}


def test_aishell2_devices_and_sibling_dev_test_set(aishell2_root, tmp_path, run_prepare):
    # The wenet/lhotse layout: AISHELL-DEV-TEST-SET next to AISHELL-2 instead of inside it.
    (aishell2_root / "AISHELL-DEV-TEST-SET").rename(tmp_path / "AISHELL-DEV-TEST-SET")
    out = tmp_path / "out"
    run_prepare("aishell2", "--root", aishell2_root, "--out", out, "--workers", "1", "--splits", "dev", "test",
                "--devices", "iOS", "Android")
    samples = read_shard_set(out)
    assert set(samples) == {"dev_iOS_ID0011W0001", "test_iOS_IT0011W0001", "dev_Android_AD0011W0001",
                            "test_Android_AT0011W0001"}
    assert samples["test_Android_AT0011W0001"][0]["device"] == "Android"
    _assert_tone(samples["test_Android_AT0011W0001"], 1000)


def test_aishell2_layout_errors(tmp_path, run_prepare, capsys):
    run_prepare("aishell2", "--root", tmp_path / "missing", "--out", tmp_path / "o1", expect=2)
    root = tmp_path / "AISHELL-2"
    _aishell2_dir(root / "iOS" / "data", [("IC0001W0001", "C0001", "你好", 300)])
    packed = root / "AISHELL-DEV-TEST-SET" / "iOS" / "test.tar.gz"
    packed.parent.mkdir(parents=True)
    packed.write_bytes(b"not unpacked")
    capsys.readouterr()
    run_prepare("aishell2", "--root", root, "--out", tmp_path / "o2", "--splits", "train", "test", expect=2)
    assert f"unpack {packed}" in capsys.readouterr().err  # the ERROR line
    run_prepare("aishell2", "--root", root, "--out", tmp_path / "o3", "--workers", "1", "--splits", "train")
    assert set(read_shard_set(tmp_path / "o3")) == {"train_iOS_IC0001W0001"}
