"""data.corpora.gigaspeech: the decrypted GigaSpeech release (GigaSpeech.json + long Opus files): segments cut at
their offsets (checked by tone frequency and duration, stored as 16 kHz FLAC), subset selection by the json's tags,
garbage-tag drops, punctuation tags, the streaming json reader, and the errors of a broken download."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest
import soundfile as sf

from data.corpora.common import Drop
from data.corpora.gigaspeech import iter_audios, normalize_text, scan
from tests.data.corpora.conftest import dominant_freq, read_shard_set, tone, write_audio

OPUS_RATE = 48_000  # what Opus decodes to; the writer must store 16 kHz
TRAIN = ["{XL}", "{L}", "{M}", "{S}", "{XS}"]


def segment(sid, begin, end, text, subsets):
    return {"sid": sid, "speaker": "N/A", "begin_time": begin, "end_time": end, "text_tn": text, "subsets": subsets}


def audio_entry(aid, source, folder, duration, subsets, segments):
    return {"title": f"episode {aid}", "url": f"https://example.org/{aid}", "aid": aid,
            "path": f"audio/{source}/{folder}/{aid}.opus", "source": source, "md5": "0" * 32, "format": "opus",
            "sample_rate": 16000, "channels": 1,
            "duration": duration, "subsets": subsets, "segments": segments}


AUDIOS = [
    # Two tones in one file: 440 Hz for 0-2 s, 880 Hz for 2-4 s, so a segment's tone tells its offset.
    audio_entry("POD0000000001", "podcast", "P0000", 4.0, TRAIN, [
        segment("POD0000000001_S0000001", 0.2, 1.8,
                "AS THEY'RE LEAVING <COMMA> CAN KASH PULL ZAHRA ASIDE REALLY QUICKLY <QUESTIONMARK>", TRAIN),
        segment("POD0000000001_S0000002", 2.2, 3.8, "I SEE <PERIOD> WOW <EXCLAMATIONPOINT>", ["{XL}", "{L}", "{M}"]),
        segment("POD0000000001_S0000003", 1.0, 1.5, "ONLY IN XL", ["{XL}"]),
        segment("POD0000000001_S0000004", 3.0, 3.5, "<COMMA> <PERIOD>", ["{XL}", "{L}", "{M}"]),
    ]),
    audio_entry("YOU0000000002", "youtube", "P0001", 3.0, ["{XL}", "{L}", "{M}"], [
        segment("YOU0000000002_S0000001", 0.5, 2.5, "HELLO   WORLD", ["{XL}", "{L}", "{M}"]),
        segment("YOU0000000002_S0000002", 2.5, 3.0, "<NOISE>", ["{XL}", "{L}", "{M}"]),
        segment("YOU0000000002_S0000003", 0.0, 0.5, "UH <OTHER>", ["{XL}", "{L}", "{M}"]),
    ]),
    # Its audio was never downloaded (XL only): the other subsets must not even look for it.
    audio_entry("AUD0000000003", "audiobook", "P0000", 1.0, ["{XL}"], [
        segment("AUD0000000003_S0000001", 0.0, 1.0, "CHAPTER ONE", ["{XL}"]),
    ]),
    audio_entry("POD0000000004", "podcast", "P0002", 2.0, ["{DEV}"], [
        segment("POD0000000004_S0000001", 0.0, 1.5, "THE DEV SET <PERIOD>", ["{DEV}"]),
        segment("POD0000000004_S0000002", 1.5, 2.0, "<SIL>", ["{DEV}"]),
    ]),
]
# key -> (text, tone Hz, seconds) of the M subset.
EXPECTED_M = {
    "POD0000000001_S0000001": ("AS THEY'RE LEAVING, CAN KASH PULL ZAHRA ASIDE REALLY QUICKLY?", 440, 1.6),
    "POD0000000001_S0000002": ("I SEE. WOW!", 880, 1.6),
    "YOU0000000002_S0000001": ("HELLO WORLD", 660, 2.0),
}


def make_gigaspeech(root):
    """The release after the official tool decrypted it: GigaSpeech.json next to audio/<source>/<folder>/."""
    metadata = {"dataset": "GigaSpeech", "language": "EN", "version": "v1.0.0",
                "description": 'a string that mentions "audios": [ {} ] to fool a naive reader',
                "audios": AUDIOS, "size": 12345.678, "license": "non-commercial research"}
    root.mkdir(parents=True)
    (root / "GigaSpeech.json").write_text(json.dumps(metadata, indent=1), encoding="utf-8")
    first = np.concatenate([tone(2.0, OPUS_RATE, 440), tone(2.0, OPUS_RATE, 880)])
    path = root / "audio/podcast/P0000/POD0000000001.opus"
    path.parent.mkdir(parents=True)
    sf.write(path, first, OPUS_RATE, format="OGG", subtype="OPUS")
    write_audio(root / "audio/youtube/P0001/YOU0000000002.opus", 3.0, rate=OPUS_RATE, freq=660)
    write_audio(root / "audio/podcast/P0002/POD0000000004.opus", 2.0, rate=OPUS_RATE, freq=330)
    (root / "audio/podcast/P0000.tgz.aes").write_bytes(b"Salted__leftover archive")  # ignored
    return root


@pytest.fixture
def giga(tmp_path):
    return make_gigaspeech(tmp_path / "GigaSpeech")


def namespace(root, subset):
    return argparse.Namespace(root=root, subset=subset)


def test_default_subset_m_cuts_segments_at_their_offsets(giga, tmp_path, run_prepare):
    out = tmp_path / "out"
    # Half the M segments are unusable on purpose (one empty transcript counts as bad).
    run_prepare("gigaspeech", "--root", giga, "--out", out, "--workers", "1", "--max-bad-fraction", "0.5")
    samples = read_shard_set(out)
    assert set(samples) == set(EXPECTED_M)
    for key, (text, freq, seconds) in EXPECTED_M.items():
        meta, audio, rate = samples[key]
        aid = key.split("_")[0]
        assert meta["text"] == text
        assert (meta["lang"], meta["task"], meta["split"], meta["corpus"]) == ("en", "asr", "m", "gigaspeech")
        assert meta["aid"] == aid and meta["source"] == {"POD": "podcast", "YOU": "youtube"}[aid[:3]]
        assert "speaker" not in meta
        assert rate == 16_000
        assert len(audio) / rate == pytest.approx(seconds, abs=0.01)
        assert meta["duration"] == pytest.approx(seconds, abs=0.01)
        assert dominant_freq(audio, rate) == pytest.approx(freq, abs=10)
    report = json.loads((out / "report.json").read_text())
    assert report["dropped"] == {"empty_transcript": 1, "garbage_utterance": 2}  # XL-only segments: not counted
    assert report["splits"] == {"m": {"samples": 3, "hours": pytest.approx(5.2 / 3600, abs=1e-5)}}


def test_dev_subset_and_lower_case_option(giga, tmp_path, run_prepare):
    out = tmp_path / "dev"
    run_prepare("gigaspeech", "--root", giga, "--out", out, "--workers", "1", "--subset", "dev")
    samples = read_shard_set(out)
    assert list(samples) == ["POD0000000004_S0000001"]
    meta, audio, rate = samples["POD0000000004_S0000001"]
    assert (meta["text"], meta["split"], rate) == ("THE DEV SET.", "dev", 16_000)
    assert dominant_freq(audio, rate) == pytest.approx(330, abs=10)
    assert json.loads((out / "report.json").read_text())["dropped"] == {"garbage_utterance": 1}


@pytest.mark.parametrize("subset, items, drops", [
    ("XS", {"POD0000000001_S0000001"}, {}),
    ("S", {"POD0000000001_S0000001"}, {}),
    ("L", set(EXPECTED_M), {"empty_transcript": 1, "garbage_utterance": 2}),
    ("XL", set(EXPECTED_M) | {"POD0000000001_S0000003"},
     {"empty_transcript": 1, "garbage_utterance": 2, "missing_audio": 1}),
    ("TEST", set(), {}),
])
def test_subset_filtering(giga, subset, items, drops):
    entries = list(scan(namespace(giga, subset)))
    assert {e.key for e in entries if not isinstance(e, Drop)} == items
    reasons = [e.reason for e in entries if isinstance(e, Drop)]
    assert {r: reasons.count(r) for r in set(reasons)} == drops
    for entry in entries:
        if not isinstance(entry, Drop):
            (span,) = entry.audio.segments
            assert span.path.is_file() and span.path.suffix == ".opus"
            assert entry.meta["split"] == subset.lower()


def test_missing_audio_names_the_encrypted_archive(giga):
    (giga / "audio/youtube/P0001/YOU0000000002.opus").unlink()
    (giga / "audio/youtube/P0001.tgz.aes").write_bytes(b"Salted__")
    drops = [e for e in scan(namespace(giga, "M")) if isinstance(e, Drop) and e.reason == "missing_audio"]
    assert [d.key for d in drops] == ["YOU0000000002_S0000001"]
    assert "audio/youtube/P0001.tgz.aes must be decrypted" in drops[0].detail


def test_two_workers_give_the_same_samples(giga, tmp_path, run_prepare):
    outs = {}
    for workers in ("1", "2"):
        outs[workers] = tmp_path / f"w{workers}"
        run_prepare("gigaspeech", "--root", giga, "--out", outs[workers], "--workers", workers,
                    "--utts-per-shard", "1", "--max-bad-fraction", "0.5")
    one, two = read_shard_set(outs["1"]), read_shard_set(outs["2"])
    assert set(one) == set(two) == set(EXPECTED_M)
    for key in one:
        assert one[key][0] == two[key][0]
        np.testing.assert_array_equal(one[key][1], two[key][1])


@pytest.mark.parametrize("text_tn, text", [
    ("HELLO <COMMA> WORLD <PERIOD>", "HELLO, WORLD."),
    ("WHAT <QUESTIONMARK> NO <EXCLAMATIONPOINT>", "WHAT? NO!"),
    ("<COMMA> LEADING MARK", "LEADING MARK"),
    ("  SPACED   OUT  ", "SPACED OUT"),
    ("<PERIOD>", ""),
    ("DON'T STOP", "DON'T STOP"),
])
def test_normalize_text(text_tn, text):
    assert normalize_text(text_tn) == text


@pytest.mark.parametrize("chunk_chars", [1, 3, 7, 64, 2**20])
def test_streaming_reader_matches_json_load(giga, chunk_chars):
    path = giga / "GigaSpeech.json"
    assert list(iter_audios(path, chunk_chars=chunk_chars)) == json.loads(path.read_text())["audios"]


def test_broken_layouts_exit_2(tmp_path, run_prepare, capsys):
    out = tmp_path / "out"
    run_prepare("gigaspeech", "--root", tmp_path / "absent", "--out", out, expect=2)
    encrypted = tmp_path / "encrypted"
    encrypted.mkdir()
    (encrypted / "GigaSpeech.json.gz.aes").write_bytes(b"Salted__")
    capsys.readouterr()
    run_prepare("gigaspeech", "--root", encrypted, "--out", out, expect=2)
    assert "GigaSpeech.json.gz.aes, which must be decrypted" in capsys.readouterr().err  # the ERROR line
    for name, body in [("no_audios", '{"dataset": "GigaSpeech"}'), ("truncated", '{"audios": [{"aid": "X", '),
                       ("not_gigaspeech", '{"audios": [{"id": 1}]}'), ("a_list", "[1, 2]")]:
        (tmp_path / name).mkdir()
        (tmp_path / name / "GigaSpeech.json").write_text(body, encoding="utf-8")
        run_prepare("gigaspeech", "--root", tmp_path / name, "--out", out, expect=2)
        assert "GigaSpeech.json" in capsys.readouterr().err, name
    with pytest.raises(SystemExit):  # argparse rejects an unknown subset before anything is read
        run_prepare("gigaspeech", "--root", tmp_path, "--out", out, "--subset", "XXL")
