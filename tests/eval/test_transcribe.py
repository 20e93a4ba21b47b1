"""eval.transcribe with the real Whisper tiny.en on espeak-ng speech: the file holds exactly the samples eval.run reads
(same keys, same max_samples selection, sorted by key, whatever the batch size), Whisper hears the sentences (short
and > 30 s long-form), eval.run's cascade reader accepts the file, and the CLI's errors. Config checks need no model."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import soundfile as sf

from eval.generate import build_eval_loader
from eval.metrics import wer
from eval.transcribe import TranscribeConfig, load_whisper, main, transcribe

MODEL = "pypi:whisper-tiny.en"
SENTENCES = {
    "utt-c": "the quick brown fox jumps over the lazy dog",
    "utt-a": "the weather is nice today so we walk to the park",
    # ~95 words at 130 words per minute (~35 s): longer than Whisper's 30 s window, decoded long-form
    "utt-b": ("my brother lives in a small house near the river. every morning he walks his dog along the water "
              "and buys fresh bread from the baker on the corner. in the afternoon he works in the garden where he "
              "grows tomatoes, beans and potatoes. on sunday his friends come to visit and they cook dinner together. "
              "after dinner they sit outside and talk about books, music and the weather until it gets dark. then "
              "everybody goes home and the house is quiet again. the next day the sun is shining and he goes to "
              "the market."),
}


@pytest.fixture(scope="module", autouse=True)
def offline():
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HUB_OFFLINE", "1")
        yield


@pytest.fixture(scope="module")
def shards(tmp_path_factory) -> Path:
    """The three sentences spoken by espeak-ng, in one shard set (keys not in manifest order)."""
    from data.prepare import build_from_manifest
    from data.synth.speech import espeak_wav, find_espeak

    root = tmp_path_factory.mktemp("espeak")
    (root / "audio").mkdir()
    exe, lines = find_espeak(), []
    for key, text in SENTENCES.items():
        wav, sr = espeak_wav(exe, "en", 130, 50, text)
        sf.write(root / "audio" / f"{key}.flac", wav, sr, subtype="PCM_16")
        lines.append(json.dumps({"id": key, "audio": f"audio/{key}.flac", "text": text, "lang": "en",
                                 "duration": round(len(wav) / sr, 3)}))
    (root / "manifest.jsonl").write_text("\n".join(lines) + "\n")
    build_from_manifest(root / "manifest.jsonl", root / "shards", workers=1)
    return root / "shards"


@pytest.fixture(scope="module")
def whisper():
    return load_whisper(MODEL)


def eval_run_samples(shards: Path, max_samples: int | None) -> list[dict]:
    """The samples eval.run's cascade reads (eval/run.py `_cascade_rows`), as it builds them."""
    return [{"key": k, "source": s, "reference": t}
            for b in build_eval_loader([str(shards)], None, 8, max_samples, text_norm="none")
            for k, s, t in zip(b["keys"], b["sources"], b["texts"])]


@pytest.mark.real_models
@pytest.mark.espeak
def test_transcripts_cover_eval_runs_samples_and_hear_the_speech(shards, whisper, tmp_path):
    from eval.run import _transcripts

    out = tmp_path / "whisper" / "tiny.jsonl"
    rows = transcribe(TranscribeConfig(model=MODEL, test=[str(shards)], out=str(out), batch_size=2), whisper)
    samples = eval_run_samples(shards, None)
    assert [r["key"] for r in rows] == sorted(s["key"] for s in samples) == sorted(SENTENCES)
    written = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert written == rows and all(set(r) == {"key", "text"} for r in written)
    assert [p.name for p in out.parent.iterdir()] == ["tiny.jsonl"]  # nothing else next to it
    for r in rows:  # each one heard, the long-form one included
        assert wer([SENTENCES[r["key"]]], [r["text"]]).wer < 50, r
    assert wer([SENTENCES[r["key"]] for r in rows], [r["text"] for r in rows]).wer < 25
    # eval.run's cascade=FILE.jsonl reader maps every sample it reads to its transcript
    found = _transcripts(None, SimpleNamespace(cascade=str(out)), samples)
    assert found == {(s["source"], s["key"]): next(r["text"] for r in rows if r["key"] == s["key"])
                     for s in samples}
    # the two short sentences shared a batch above; one at a time gives the same file
    one = tmp_path / "one_by_one.jsonl"
    assert transcribe(TranscribeConfig(model=MODEL, test=[str(shards)], out=str(one), batch_size=1), whisper) == rows


@pytest.mark.real_models
@pytest.mark.espeak
def test_cli_max_samples_selects_what_eval_run_selects(shards, tmp_path, capsys):
    out = tmp_path / "one.jsonl"
    assert main(["--model", MODEL, "--test", str(shards), "--out", str(out), "--max-samples", "1"]) == 0
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [r["key"] for r in rows] == [s["key"] for s in eval_run_samples(shards, 1)]
    # the same shard set twice: every key twice, which eval.run's key -> text file cannot hold
    assert main(["--model", MODEL, "--test", str(shards), str(shards), "--out", str(tmp_path / "dup.jsonl"),
                 "--max-samples", "1"]) == 2
    err = capsys.readouterr().err
    assert "more than one test source" in err and not (tmp_path / "dup.jsonl").exists()


@pytest.mark.parametrize("kw,match", [({"test": []}, "test"), ({"out": "x.json"}, r"\.jsonl"),
                                      ({"batch_size": 0}, "batch_size"), ({"max_samples": 0}, "max_samples"),
                                      ({"max_new_tokens": 441}, "max_new_tokens"), ({"language": " "}, "language")])
def test_config_checks(kw, match):
    with pytest.raises(ValueError, match=match):
        TranscribeConfig(**{"test": ["shards"], "out": "t.jsonl", **kw})


def test_language_codes_lose_their_region():
    assert TranscribeConfig(test=["s"], out="t.jsonl", language="en-US").language == "en"
    assert TranscribeConfig(test=["s"], out="t.jsonl", language="DE_at").language == "de"
