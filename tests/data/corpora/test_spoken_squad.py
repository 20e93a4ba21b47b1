"""Spoken-SQuAD importer: SQuAD-format JSON + one wav per sentence, concatenated into one passage per question."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.data.corpora.conftest import dominant_freq, read_shard_set, write_audio

RATE = 24_000  # the released wavs are 24 kHz
SHORT_SENTENCES = 12  # more than 10 sentences: the order must be numeric (2 before 10), not by file name


def _qa(qid: str, question: str, *answers: tuple[str, int]) -> dict:
    return {"id": qid, "question": question, "answers": [{"text": t, "answer_start": s} for t, s in answers]}


def _sentences(n: int) -> str:
    """An ASR context of ``n`` sentences, each ending in the period that joined the per-sentence transcripts."""
    return " ".join(f"sentence {i} words." for i in range(n))


# Topic 0 paragraph 0 is the main passage; its context mirrors the released files (lower case, numbers spelled out).
MAIN_CONTEXT = "super bowl fifty was a game. the denver broncos won. it was played in santa clara."


def _build(root: Path) -> dict[str, tuple[float, ...]]:
    """A Spoken-SQuAD root; returns {passage: sentence durations} of the passages that must be written."""
    train = {"version": "1.1", "data": [
        {"title": "Super_Bowl_50", "paragraphs": [
            {"context": MAIN_CONTEXT, "qas": [
                _qa("q-main-1", "Who won Super Bowl 50?", ("denver broncos", 33), ("the denver broncos", 29),
                    ("broncos", 40)),
                _qa("q-main-2", "Where was it played?", ("santa clara", 71)),
                _qa("q-noans", "What is unanswerable?"),
            ]},
            # sentence 1 of 3 is missing: a gap in the sentence numbers
            {"context": _sentences(3), "qas": [_qa("q-gap-1", "Gap?", ("words", 11)), _qa("q-gap-2", "Gap 2?",
                                                                                          ("words", 11))]},
            # the context has 3 sentences but only 2 wavs exist: the last one is missing
            {"context": _sentences(3), "qas": [_qa("q-tail", "Tail?", ("words", 11))]},
        ]},
        {"title": "Long_Topic", "paragraphs": [
            {"context": _sentences(2), "qas": [_qa("q-long-1", "Long?", ("words", 11)),
                                               _qa("q-long-2", "Long 2?", ("sentence", 0))]},
            {"context": _sentences(SHORT_SENTENCES), "qas": [_qa("q-many", "Many?", ("sentence 1", 16))]},
        ]},
    ]}
    test = {"version": "1.1", "data": [
        {"title": "Normans", "paragraphs": [
            {"context": "the normans were people.", "qas": [_qa("q-test", "Who were the Normans?", ("people", 18))]},
        ]},
    ]}
    (root / "spoken_train-v1.1.json").write_text(json.dumps(train), encoding="utf-8")
    (root / "spoken_test-v1.1.json").write_text(json.dumps(test), encoding="utf-8")
    train_wav, dev_wav = root / "Spoken-SQuAD_audio" / "train_wav", root / "Spoken-SQuAD_audio" / "dev_wav"
    main = (0.5, 0.7, 0.4)
    for s, (seconds, freq) in enumerate(zip(main, (300.0, 600.0, 900.0))):
        write_audio(train_wav / f"0_0_{s}.wav", seconds, RATE, freq)
    for s in (0, 2):
        write_audio(train_wav / f"0_1_{s}.wav", 0.3, RATE, 400.0)
    for s in (0, 1):
        write_audio(train_wav / f"0_2_{s}.wav", 0.3, RATE, 400.0)
    long = (1.5, 1.5)
    for s, seconds in enumerate(long):
        write_audio(train_wav / f"1_0_{s}.wav", seconds, RATE, 500.0)
    many = tuple([0.2] * SHORT_SENTENCES)
    for s in range(SHORT_SENTENCES):
        write_audio(train_wav / f"1_1_{s}.wav", 0.2, RATE, 200.0 + 100.0 * s)
    # the test json's audio is dev_wav/; the same stem in train_wav/ has another tone
    write_audio(dev_wav / "0_0_0.wav", 0.6, RATE, 1200.0)
    return {"train-0_0": main, "train-1_0": long, "train-1_1": many, "test-0_0": (0.6,)}


@pytest.fixture
def corpus(tmp_path):
    root = tmp_path / "Spoken-SQuAD"
    root.mkdir()
    return root, _build(root)


def _report(out: Path) -> dict:
    return json.loads((out / "report.json").read_text(encoding="utf-8"))


def test_questions_become_passage_items(corpus, tmp_path, run_prepare):
    root, durations = corpus
    out = tmp_path / "out"
    run_prepare("spoken-squad", "--root", root, "--out", out, "--workers", "1", "--max-duration", "2.5",
                "--max-bad-fraction", "1")
    samples = read_shard_set(out)
    assert sorted(samples) == ["test-q-test", "train-q-main-1", "train-q-main-2", "train-q-many"]

    meta, audio, rate = samples["train-q-main-1"]
    assert rate == RATE
    assert meta["text"] == MAIN_CONTEXT
    assert meta["question"] == "Who won Super Bowl 50?"
    assert meta["answer"] == "denver broncos" and meta["answer_start"] == 33
    assert MAIN_CONTEXT[33:33 + len("denver broncos")] == "denver broncos"
    assert meta["answers"] == ["denver broncos", "the denver broncos", "broncos"]
    assert (meta["task"], meta["lang"], meta["split"], meta["corpus"]) == ("sqa", "en", "train", "spoken-squad")
    assert meta["passage_id"] == "train-0_0" and meta["title"] == "Super_Bowl_50"
    assert meta["duration"] == pytest.approx(sum(durations["train-0_0"]), abs=1e-3)
    assert len(audio) == round(sum(durations["train-0_0"]) * RATE)
    # the sentences are concatenated in order: 300 Hz, then 600 Hz, then 900 Hz
    bounds = np.cumsum((0.0, *durations["train-0_0"])) * RATE
    freqs = [dominant_freq(audio[int(a):int(b)], rate) for a, b in zip(bounds[:-1], bounds[1:])]
    assert freqs == pytest.approx([300.0, 600.0, 900.0], abs=5)

    # both questions of a passage carry the same audio
    assert np.array_equal(samples["train-q-main-2"][1], audio)
    assert samples["train-q-main-2"][0]["answers"] == ["santa clara"]

    meta, audio, rate = samples["train-q-many"]
    step = int(0.2 * RATE)
    freqs = [dominant_freq(audio[i * step:(i + 1) * step], rate) for i in range(SHORT_SENTENCES)]
    assert freqs == pytest.approx([200.0 + 100.0 * s for s in range(SHORT_SENTENCES)], abs=5)
    assert meta["duration"] == pytest.approx(0.2 * SHORT_SENTENCES, abs=1e-3)

    meta, audio, rate = samples["test-q-test"]
    assert (meta["split"], meta["passage_id"], meta["answer"]) == ("test", "test-0_0", "people")
    assert dominant_freq(audio, rate) == pytest.approx(1200.0, abs=5)

    report = _report(out)
    assert report["dropped"] == {"missing_audio": 3, "no_answer": 1, "too_long": 2}
    assert set(report["dropped_examples"]["missing_audio"]) == {"train-q-gap-1", "train-q-gap-2", "train-q-tail"}
    assert "0_1_1.wav" in report["dropped_examples"]["missing_audio"]["train-q-gap-1"]
    assert "0_2_2.wav" in report["dropped_examples"]["missing_audio"]["train-q-tail"]
    assert set(report["dropped_examples"]["too_long"]) == {"train-q-long-1", "train-q-long-2"}
    assert report["splits"]["train"]["samples"] == 3 and report["splits"]["test"]["samples"] == 1


def test_defaults_and_two_workers_give_the_same_samples(corpus, tmp_path, run_prepare):
    root, _ = corpus
    one, two = tmp_path / "one", tmp_path / "two"
    run_prepare("spoken-squad", "--root", root, "--out", one, "--workers", "1", "--max-bad-fraction", "1")
    run_prepare("spoken-squad", "--root", root, "--out", two, "--workers", "2", "--max-bad-fraction", "1")
    a, b = read_shard_set(one), read_shard_set(two)
    assert sorted(a) == sorted(b)
    for key in a:
        assert a[key][0] == b[key][0]
        assert np.array_equal(a[key][1], b[key][1])
    # the corpus defaults: 150 s passages pass (the 3 s passage is kept), 500 questions per shard
    options = _report(one)["options"]
    assert options["max_duration"] == 150.0 and options["utts_per_shard"] == 500
    assert {"train-q-long-1", "train-q-long-2"} <= set(a)
    assert "too_long" not in _report(one)["dropped"]


def test_one_split_and_unpacked_audio_directly_under_root(corpus, tmp_path, run_prepare):
    root, _ = corpus
    (root / "Spoken-SQuAD_audio").rename(tmp_path / "audio")
    (tmp_path / "audio" / "dev_wav").rename(root / "dev_wav")
    (root / "spoken_train-v1.1.json").unlink()
    out = tmp_path / "out"
    run_prepare("spoken-squad", "--root", root, "--out", out, "--workers", "1", "--splits", "test")
    assert sorted(read_shard_set(out)) == ["test-q-test"]


def test_clear_errors(corpus, tmp_path, run_prepare):
    root, _ = corpus
    run_prepare("spoken-squad", "--root", tmp_path / "absent", "--out", tmp_path / "o1", expect=2)
    empty = tmp_path / "empty"
    empty.mkdir()
    run_prepare("spoken-squad", "--root", empty, "--out", tmp_path / "o2", expect=2)  # no json files
    (root / "spoken_test-v1.1.json").write_text('{"version": "1.1"}', encoding="utf-8")
    run_prepare("spoken-squad", "--root", root, "--out", tmp_path / "o3", "--splits", "test", expect=2)  # no data
    (root / "Spoken-SQuAD_audio" / "train_wav").rename(root / "elsewhere")
    run_prepare("spoken-squad", "--root", root, "--out", tmp_path / "o4", "--splits", "train", expect=2)  # no wavs
