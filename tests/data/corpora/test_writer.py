"""data.corpora.writer: parts shared by array tasks, resume without rewriting, plan pinning, drop accounting, and
every kind of audio source (whole files, segments, pipes, inline bytes, lossy codecs)."""

from __future__ import annotations

import argparse
import io
import json

import numpy as np
import pytest
import soundfile as sf

from data.corpora import registry
from data.corpora.common import AudioRef, Corpus, Drop, Item, Segment, load_item_audio
from data.corpora.writer import PARTS_DIR, plan_parts, write_corpus
from tests.data.corpora.conftest import audio_bytes, dominant_freq, read_shard_set, write_audio

EXPECTED_CORPORA = {"librispeech", "mls", "ruls", "gigaspeech", "mustc", "spoken-squad", "disfluency-speech",
                    "mls-speaker-descriptions", "hf-disk", "kaldi", "aishell2"}


def _corpus(root, n=10, extra=()):
    """A corpus of n one-second FLAC files (tone 200 + 20 i Hz), plus `extra` entries, as a Corpus."""
    files = [write_audio(root / f"u{i:02d}.flac", 1.0, freq=200 + 20 * i) for i in range(n)]

    def scan(args):
        for i, f in enumerate(files):
            yield Item(f"u{i:02d}", AudioRef(path=f), {"text": f"utterance {i}", "split": "a" if i % 2 else "b"})
        yield from extra

    return Corpus("toy", "a toy corpus", scan)


def _args(root):
    return argparse.Namespace(root=root)


def _tars(out):
    return {p.name: p.read_bytes() for p in sorted(out.glob("shard-*.tar"))}


def test_every_importer_is_registered():
    assert set(registry()) == EXPECTED_CORPORA


def test_array_tasks_share_the_parts_and_the_last_one_writes_the_index(tmp_path):
    corpus = _corpus(tmp_path / "c")
    single = write_corpus(corpus, _args(tmp_path), tmp_path / "one", utts_per_shard=3)
    assert single["samples"] == 10 and len(single["shards"]) == 4
    assert write_corpus(corpus, _args(tmp_path), tmp_path / "two", utts_per_shard=3, task_index=0, num_tasks=2) is None
    assert not (tmp_path / "two" / "index.json").exists()
    assert sorted(p.name for p in (tmp_path / "two").glob("shard-*.tar")) == ["shard-000000.tar", "shard-000002.tar"]
    index = write_corpus(corpus, _args(tmp_path), tmp_path / "two", utts_per_shard=3, task_index=1, num_tasks=2)
    assert index["shards"] == single["shards"]
    assert _tars(tmp_path / "two") == _tars(tmp_path / "one")  # byte-identical whatever the task split
    assert (tmp_path / "two" / "report.json").read_text() == (tmp_path / "one" / "report.json").read_text()
    write_corpus(corpus, _args(tmp_path), tmp_path / "pool", utts_per_shard=3, workers=2)
    assert _tars(tmp_path / "pool") == _tars(tmp_path / "one")
    samples = read_shard_set(tmp_path / "one")
    assert {k: m["text"] for k, (m, _, _) in samples.items()} == {f"u{i:02d}": f"utterance {i}" for i in range(10)}
    assert all(abs(m["duration"] - 1.0) < 1e-3 for m, _, _ in samples.values())
    report = json.loads((tmp_path / "one" / "report.json").read_text())
    assert report["splits"] == {"a": {"samples": 5, "hours": round(5 / 3600, 6)},
                                "b": {"samples": 5, "hours": round(5 / 3600, 6)}}


def test_a_rerun_only_writes_the_unfinished_parts(tmp_path):
    corpus, out = _corpus(tmp_path / "c"), tmp_path / "out"
    write_corpus(corpus, _args(tmp_path), out, utts_per_shard=3)
    before = {p.name: p.stat().st_mtime_ns for p in out.glob("shard-*.tar")}
    # A task killed while writing part 1: its marker never appeared, a partial tar is left behind.
    (out / PARTS_DIR / "part-000001.json").unlink()
    (out / "shard-000001.tar").rename(out / "shard-000001.tar.partial")
    (out / "index.json").unlink()
    index = write_corpus(corpus, _args(tmp_path), out, utts_per_shard=3)
    assert index["samples"] == 10 and not list(out.glob("*.partial"))
    after = {p.name: p.stat().st_mtime_ns for p in out.glob("shard-*.tar")}
    assert [n for n in before if after[n] != before[n]] == ["shard-000001.tar"]
    # A part whose tar no longer has its recorded size is not finished either.
    with open(out / "shard-000002.tar", "ab") as fh:
        fh.write(b"\0" * 512)
    write_corpus(corpus, _args(tmp_path), out, utts_per_shard=3)
    assert (out / "shard-000002.tar").stat().st_size == index["shards"][2]["bytes"]


def test_output_planned_from_other_input_is_refused_until_overwrite(tmp_path):
    out = tmp_path / "out"
    write_corpus(_corpus(tmp_path / "c"), _args(tmp_path), out, utts_per_shard=3)
    with pytest.raises(FileExistsError, match="planned from other input"):
        write_corpus(_corpus(tmp_path / "c", n=11), _args(tmp_path), out, utts_per_shard=3)
    with pytest.raises(FileExistsError, match="--overwrite"):
        write_corpus(_corpus(tmp_path / "c"), _args(tmp_path), out, utts_per_shard=4)
    with pytest.raises(ValueError, match="delete each other's shards"):
        write_corpus(_corpus(tmp_path / "c"), _args(tmp_path), out, overwrite=True, num_tasks=2)
    index = write_corpus(_corpus(tmp_path / "c", n=11), _args(tmp_path), out, utts_per_shard=4, overwrite=True)
    assert index["samples"] == 11 and len(list(out.glob("shard-*.tar"))) == 3


def test_drops_are_counted_by_reason_and_only_broken_items_count_as_bad(tmp_path):
    root = tmp_path / "c"
    root.mkdir()
    (root / "garbage.wav").write_bytes(b"RIFF\0\0\0\0WAVEfmt not really")
    long = write_audio(root / "long.flac", 3.0)
    extra = [Drop("e1", "empty_transcript", "no text"), Drop("g1", "garbage_utterance", "<MUSIC>"),
             Item("u00", AudioRef(path=long), {"text": "duplicate key"}),
             Item("missing", AudioRef(path=root / "nope.flac"), {"text": "x"}),
             Item("garbage", AudioRef(path=root / "garbage.wav"), {"text": "x"}),
             Item("long", AudioRef(path=long), {"text": "three seconds"})]
    corpus = _corpus(root, n=20, extra=extra)
    index = write_corpus(corpus, _args(tmp_path), tmp_path / "out", max_duration=2.0, max_bad_fraction=0.2)
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["dropped"] == {"corrupt_audio": 1, "duplicate_id": 1, "empty_transcript": 1,
                                 "garbage_utterance": 1, "missing_audio": 1, "too_long": 1}
    assert "nope.flac" in report["dropped_examples"]["missing_audio"]["missing"]
    assert index["samples"] == 20 and index["skipped"] == report["dropped"]
    assert read_shard_set(tmp_path / "out")["u00"][0]["text"] == "utterance 0"  # the first of a duplicate is kept
    # 3 broken of 23 is above 10 %: no index, and the message points at the report.
    with pytest.raises(RuntimeError, match="report.json"):
        write_corpus(corpus, _args(tmp_path), tmp_path / "strict", max_duration=2.0, max_bad_fraction=0.1)
    assert not (tmp_path / "strict" / "index.json").exists()


def test_no_usable_utterance_is_an_error_naming_the_root(tmp_path):
    corpus = Corpus("empty", "nothing", lambda args: iter([Drop("x", "empty_transcript")]))
    with pytest.raises(RuntimeError, match=f"no usable utterances under {tmp_path}"):
        write_corpus(corpus, _args(tmp_path), tmp_path / "out")


def test_the_plan_is_a_seeded_shuffle_of_the_sorted_keys(tmp_path):
    corpus = _corpus(tmp_path / "c")
    parts, _ = plan_parts(corpus, _args(tmp_path), 4, seed=0)
    again, _ = plan_parts(corpus, _args(tmp_path), 4, seed=0)
    other, _ = plan_parts(corpus, _args(tmp_path), 4, seed=1)
    keys = [[i.key for i in p] for p in parts]
    assert [len(p) for p in parts] == [4, 4, 2] and keys == [[i.key for i in p] for p in again]
    assert keys != [[i.key for i in p] for p in other] and sorted(sum(keys, [])) == [f"u{i:02d}" for i in range(10)]


def test_audio_sources_segments_pipes_bytes_and_lossy_codecs(tmp_path):
    a = write_audio(tmp_path / "a.wav", 4.0, rate=16_000, freq=300)
    b = write_audio(tmp_path / "b.wav", 2.0, rate=16_000, freq=700, subtype="PCM_24")
    flac, seconds = load_item_audio(AudioRef(segments=(Segment(a, 1.0, 2.5), Segment(b, 0.5, None))))
    audio, rate = sf.read(io.BytesIO(flac), dtype="float32")
    assert rate == 16_000 and seconds == pytest.approx(3.0) and len(audio) == 48_000
    assert dominant_freq(audio[:24_000], rate) == pytest.approx(300, abs=2)
    assert dominant_freq(audio[24_000:], rate) == pytest.approx(700, abs=2)
    assert sf.info(io.BytesIO(flac)).subtype == "PCM_24"  # 16- and 24-bit pieces: the deeper one
    opus = write_audio(tmp_path / "c.opus", 2.0, rate=48_000, freq=500)
    flac, seconds = load_item_audio(AudioRef(segments=(Segment(opus, 0.5, 1.5),)))
    info = sf.info(io.BytesIO(flac))
    assert info.samplerate == 16_000 and seconds == pytest.approx(1.0)  # lossy source: stored at 16 kHz
    flac, seconds = load_item_audio(AudioRef(path=opus))
    assert sf.info(io.BytesIO(flac)).samplerate == 16_000 and seconds == pytest.approx(2.0, abs=0.03)
    flac, seconds = load_item_audio(AudioRef(command=f"cat {b}"))
    assert seconds == pytest.approx(2.0) and sf.info(io.BytesIO(flac)).subtype == "PCM_24"
    flac, seconds = load_item_audio(AudioRef(data=audio_bytes(1.5, rate=8_000)))
    assert seconds == pytest.approx(1.5) and sf.info(io.BytesIO(flac)).samplerate == 8_000
    for ref, reason in [(AudioRef(segments=(Segment(a, 5.0, 6.0),)), "bad_segment"),
                        (AudioRef(segments=(Segment(a, 1.0, 2.0), Segment(write_audio(
                            tmp_path / "d.wav", 1.0, rate=8_000), 0.0, None))), "mixed_sample_rates"),
                        (AudioRef(command="exit 3"), "pipe_failed"), (AudioRef(data=b"not audio"), "corrupt_audio"),
                        (AudioRef(segments=(Segment(tmp_path / "none.wav"),)), "missing_audio")]:
        with pytest.raises(Exception) as info:
            load_item_audio(ref)
        assert getattr(info.value, "reason", None) == reason, (ref, info.value)
    nan = tmp_path / "nan.wav"
    sf.write(nan, np.full(1600, np.nan, np.float32), 16_000, subtype="FLOAT")
    with pytest.raises(Exception, match="non_finite_audio"):
        load_item_audio(AudioRef(path=nan))


def test_cli_reports_errors_with_exit_code_2(tmp_path, run_prepare):
    run_prepare("kaldi", "--root", tmp_path / "absent", "--out", tmp_path / "out", expect=2)
    assert not (tmp_path / "out" / "index.json").exists()
