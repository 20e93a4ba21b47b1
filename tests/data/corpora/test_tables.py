"""data.corpora.tables: audio cells of parquet/arrow files, DisfluencySpeech (HF parquet), MLS English joined with
parler-tts/mls-eng-speaker-descriptions, and HF save_to_disk directories built with the real `datasets` library."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from data.audio import BadSample
from data.corpora import tables
from tests.data.corpora.conftest import audio_bytes, dominant_freq, read_shard_set, write_audio

AUDIO_TYPE = pa.struct([("bytes", pa.binary()), ("path", pa.string())])  # datasets.Audio's storage type
ARROW_TYPES = {"string": pa.string(), "float64": pa.float64(), "float32": pa.float32()}


def _hf_parquet(path, columns: dict, features: dict, row_group_size: int | None = None):
    """A parquet file as `datasets` pushes it to the Hub: Arrow types plus the features in the schema metadata."""
    path.parent.mkdir(parents=True, exist_ok=True)
    features = {k: f for k, f in features.items() if k in columns}
    types = [(k, AUDIO_TYPE if f["_type"] == "Audio" else ARROW_TYPES[f["dtype"]]) for k, f in features.items()]
    schema = pa.schema(types, metadata={"huggingface": json.dumps({"info": {"features": features}})})
    pq.write_table(pa.table({k: columns[k] for k in features}, schema=schema), path, row_group_size=row_group_size)


def _freq(sample):
    _, audio, rate = sample
    return round(dominant_freq(audio, rate))


# ---- read_audio_cell ------------------------------------------------------------------------------------------------

def test_audio_cells_of_parquet_row_groups_and_arrow_files(tmp_path, monkeypatch):
    cells = [{"bytes": bytes([i]) * 4, "path": f"{i}.wav"} for i in range(5)]
    (tmp_path / "side.wav").write_bytes(b"from the file")
    cells[3] = {"bytes": None, "path": "side.wav"}  # relative paths resolve next to the table
    cells[4] = {"bytes": None, "path": None}
    table = pa.table({"audio": pa.array(cells, AUDIO_TYPE), "raw": pa.array([b"r%d" % i for i in range(5)])})
    pq.write_table(table, tmp_path / "t.parquet", row_group_size=2)
    reads = []
    original = pq.ParquetFile.read_row_group
    monkeypatch.setattr(pq.ParquetFile, "read_row_group",
                        lambda self, i, **kw: reads.append(i) or original(self, i, **kw))
    tables._files.clear()
    tables._row_groups.clear()
    assert [tables.read_audio_cell(tmp_path / "t.parquet", r, "audio") for r in (0, 1, 2)] == [
        b"\0" * 4, b"\1" * 4, b"\2" * 4]
    assert tables.read_audio_cell(tmp_path / "t.parquet", 3, "audio") == b"from the file"
    assert tables.read_audio_cell(tmp_path / "t.parquet", 1, "raw") == b"r1"
    assert reads == [0, 1, 0]  # one read per row group and column, then the cached one
    monkeypatch.setattr(tables, "CACHED_ROW_GROUP_BYTES", 1)  # over budget: only the newest row group stays
    assert tables.read_audio_cell(tmp_path / "t.parquet", 2, "raw") == b"r2"
    assert tables.read_audio_cell(tmp_path / "t.parquet", 0, "audio") == b"\0" * 4
    assert reads == [0, 1, 0, 1, 0]
    with pytest.raises(BadSample) as err:
        tables.read_audio_cell(tmp_path / "t.parquet", 4, "audio")
    assert err.value.reason == "missing_audio"
    with pytest.raises(BadSample) as err:
        tables.read_audio_cell(tmp_path / "t.parquet", 9, "audio")
    assert err.value.reason == "corrupt_table"
    with pytest.raises(BadSample) as err:
        tables.read_audio_cell(tmp_path / "gone.parquet", 0, "audio")
    assert err.value.reason == "missing_audio"
    for name, writer in (("s.arrow", pa.ipc.new_stream), ("f.arrow", pa.ipc.new_file)):
        with pa.OSFile(str(tmp_path / name), "wb") as sink, writer(sink, table.schema) as out:
            out.write_table(table, max_chunksize=2)
        assert tables.read_audio_cell(tmp_path / name, 2, "audio") == b"\2" * 4
        assert tables.read_audio_cell(tmp_path / name, 3, "audio") == b"from the file"


# ---- DisfluencySpeech -----------------------------------------------------------------------------------------------

DISFLUENCY_FEATURES = {"audio": {"_type": "Audio"}, **{c: {"dtype": "string", "_type": "Value"} for c in (
    "transcript_annotated", "transcript_a", "transcript_b", "transcript_c")}}


def _disfluency_rows(split, n, first):
    rows = {"audio": [], **{c: [] for c in DISFLUENCY_FEATURES if c != "audio"}}
    for i in range(first, first + n):
        rows["audio"].append({"bytes": audio_bytes(0.5 + 0.25 * i, 22_050, 300 + 50 * i), "path": f"{split}_{i}.wav"})
        rows["transcript_annotated"].append(f"{{F uh, }} [ I + I ] said {i} <laughter>")
        rows["transcript_a"].append(f"uh, I I said {i}")
        rows["transcript_b"].append(f"I I said {i}")
        rows["transcript_c"].append(f"I said {i}")
    return rows


@pytest.fixture
def disfluency_root(tmp_path):
    root = tmp_path / "DisfluencySpeech"
    _hf_parquet(root / "data" / "train-00000-of-00002.parquet", _disfluency_rows("train", 3, 0), DISFLUENCY_FEATURES,
                row_group_size=2)
    second = _disfluency_rows("train", 2, 3)
    second["transcript_a"][1] = " "
    _hf_parquet(root / "data" / "train-00001-of-00002.parquet", second, DISFLUENCY_FEATURES)
    validation = _disfluency_rows("validation", 2, 5)
    side = tmp_path / "side.wav"
    side.write_bytes(validation["audio"][0]["bytes"])
    validation["audio"] = [{"bytes": None, "path": str(side)}, {"bytes": None, "path": "gone.wav"}]
    _hf_parquet(root / "data" / "validation-00000-of-00001.parquet", validation, DISFLUENCY_FEATURES)
    _hf_parquet(root / "data" / "test-00000-of-00001.parquet", _disfluency_rows("test", 1, 7), DISFLUENCY_FEATURES)
    return root


def test_disfluency_speech(disfluency_root, tmp_path, run_prepare):
    out = tmp_path / "out"
    run_prepare("disfluency-speech", "--root", disfluency_root, "--out", out, "--workers", "1",
                "--utts-per-shard", "3", "--max-bad-fraction", "0.5")
    samples = read_shard_set(out)
    expected = {"train_00000": 0, "train_00001": 1, "train_00002": 2, "train_00003": 3, "validation_00000": 5,
                "test_00000": 7}
    assert sorted(samples) == sorted(expected)
    for key, i in expected.items():
        meta, audio, rate = samples[key]
        assert meta["text"] == f"uh, I I said {i}" and meta["transcripts"]["c"] == f"I said {i}"
        assert (meta["lang"], meta["task"], meta["split"]) == ("en", "asr", key.split("_")[0])
        assert rate == 22_050 and abs(meta["duration"] - (0.5 + 0.25 * i)) < 1e-3
        assert abs(_freq(samples[key]) - (300 + 50 * i)) <= 3
    report = json.loads((out / "report.json").read_text())
    assert report["dropped"] == {"empty_transcript": 1, "missing_audio": 1}
    assert list(report["dropped_examples"]["missing_audio"]) == ["validation_00001"]
    assert report["splits"]["train"]["samples"] == 4

    run_prepare("disfluency-speech", "--root", disfluency_root, "--out", tmp_path / "c", "--workers", "1",
                "--splits", "test", "--transcript", "c")
    assert {k: m["text"] for k, (m, _, _) in read_shard_set(tmp_path / "c").items()} == {"test_00000": "I said 7"}


def test_disfluency_speech_with_two_workers_gives_the_same_samples(disfluency_root, tmp_path, run_prepare):
    for workers in ("1", "2"):
        run_prepare("disfluency-speech", "--root", disfluency_root, "--out", tmp_path / workers, "--workers", workers,
                    "--utts-per-shard", "2", "--max-bad-fraction", "0.5")
    one, two = read_shard_set(tmp_path / "1"), read_shard_set(tmp_path / "2")
    assert one.keys() == two.keys() and len(one) == 6
    assert all(one[k][0] == two[k][0] and np.array_equal(one[k][1], two[k][1]) for k in one)


def test_disfluency_speech_layout_errors(disfluency_root, tmp_path, run_prepare):
    run_prepare("disfluency-speech", "--root", tmp_path / "nowhere", "--out", tmp_path / "o1", expect=2)
    run_prepare("disfluency-speech", "--root", tmp_path, "--out", tmp_path / "o2", expect=2)  # no data/*.parquet
    rows = _disfluency_rows("test", 1, 0)
    del rows["transcript_b"]
    _hf_parquet(disfluency_root / "data" / "test-00000-of-00001.parquet", rows, DISFLUENCY_FEATURES)
    run_prepare("disfluency-speech", "--root", disfluency_root, "--out", tmp_path / "o3", "--splits", "test", expect=2)


# ---- mls-eng-speaker-descriptions + MLS English ---------------------------------------------------------------------

MLS_COLUMNS = {"original_path": "string", "begin_time": "float64", "end_time": "float64", "original_text": "string",
               "audio_duration": "float64", "speaker_id": "string", "book_id": "string", "snr": "float32",
               "c50": "float32", "speech_duration": "float64", "speaking_rate": "string", "phonemes": "string",
               "stoi": "float64", "si-sdr": "float64", "pesq": "float64", "text": "string",
               "utterance_pitch_mean": "float64", "utterance_pitch_std": "float64", "gender": "string",
               "pitch": "string", "noise": "string", "reverberation": "string", "speech_monotony": "string",
               "sdr_noise": "string", "pesq_speech_quality": "string", "text_description": "string"}
MLS_FEATURES = {k: {"dtype": t, "_type": "Value"} for k, t in MLS_COLUMNS.items()}
LABELS = {"gender": "female", "pitch": "slightly low pitch", "speaking_rate": "quite fast", "noise": "very clear",
          "reverberation": "very confined sounding", "speech_monotony": "quite monotone",
          "sdr_noise": "slightly noisy", "pesq_speech_quality": "great speech quality"}
URL = "http://www.archive.org/download/{0}_librivox/{0}_01_author_64kb.mp3"


def _mls_parquet(path, rows):
    """rows: (speaker, book, url, begin, end, text) -> the descriptions' parquet with all 26 published columns."""
    full = [{"original_path": url, "begin_time": b, "end_time": e, "original_text": text.lower().strip(".,"),
             "audio_duration": e - b, "speaker_id": s, "book_id": k, "snr": 41.5, "c50": 58.0, "speech_duration": 1.0,
             "phonemes": "h@loU", "stoi": 0.99, "si-sdr": 21.25, "pesq": 3.5, "text": text,
             "utterance_pitch_mean": 180.0, "utterance_pitch_std": 22.0, **LABELS,
             "text_description": f"A woman reads {s}/{k} quite fast."} for s, k, url, b, e, text in rows]
    _hf_parquet(path, {c: [r[c] for r in full] for c in MLS_COLUMNS}, MLS_FEATURES)


def _mls_split(audio_root, split, segments, audio):
    """segments.txt / transcripts.txt lines and the audio files {utt id: (seconds, freq)} of one MLS split."""
    split_dir = audio_root / split
    split_dir.mkdir(parents=True)
    (split_dir / "segments.txt").write_text("".join(f"{u}\t{url}\t{b}\t{e}\n" for u, url, b, e in segments))
    (split_dir / "transcripts.txt").write_text("".join(f"{u}\tsome words\n" for u, *_ in segments))
    suffix = ".opus" if audio_root.name.endswith("_opus") else ".flac"
    for utt, (seconds, freq) in audio.items():
        speaker, book, _ = utt.split("_")
        write_audio(split_dir / "audio" / speaker / book / f"{utt}{suffix}", seconds, freq=freq)


@pytest.fixture
def mls(tmp_path):
    desc, audio_root = tmp_path / "mls-eng-speaker-descriptions", tmp_path / "corpora" / "mls_english"
    u1, u2, u3 = URL.format("one"), URL.format("two"), URL.format("three")
    # 000000 and 000002 start and end at the same times in two mp3s of one book: told apart by original_path.
    _mls_split(audio_root, "dev", [("1001_2002_000000", u1, "0.5", "3.25"), ("1001_2002_000001", u1, "3.25", "5.0"),
                                   ("1001_2002_000002", u2, "0.5", "3.25"), ("1001_2002_000003", u2, "4.1", "6.0")],
               {"1001_2002_000000": (1.0, 300), "1001_2002_000001": (1.2, 350), "1001_2002_000002": (1.4, 400)})
    _mls_split(audio_root, "test", [("3003_4004_000000", u3, "1.0", "2.5"), ("3003_4004_000001", u3, "2.5", "4.0")],
               {"3003_4004_000000": (1.1, 450)})
    (audio_root / "metainfo.txt").write_text("SPEAKER |   GENDER   | PARTITION  |  MINUTES   |  BOOK ID   |  TITLE\n")
    _mls_parquet(desc / "data" / "dev-00000-of-00001.parquet", [
        ("1001", "2002", u1, 0.5, 3.25, "Hello, world."), ("1001", "2002", u1, 3.2500001, 5.0, "Second one."),
        ("1001", "2002", u2, 0.5, 3.25, "Third one!"), ("1001", "2002", u1, 9.0, 10.0, "Not in segments."),
        ("1001", "2002", u2, 4.1, 6.0, "Audio file lost."), ("1001", "2002", "http://elsewhere.mp3", 0.5, 3.25, "?")])
    _mls_parquet(desc / "data" / "test-00000-of-00001.parquet",
                 [("3003", "4004", u3, 1.0, 2.5, "Test, one."), ("3003", "4004", u3, 2.5, 4.0, "")])
    return desc, audio_root


def test_mls_speaker_descriptions(mls, tmp_path, run_prepare):
    desc, audio_root = mls
    out = tmp_path / "out"
    run_prepare("mls-speaker-descriptions", "--root", desc, "--audio-root", audio_root.parent, "--out", out,
                "--workers", "1", "--splits", "dev,test", "--max-bad-fraction", "0.9")
    samples = read_shard_set(out)
    expected = {"1001_2002_000000": ("Hello, world.", 1.0, 300), "1001_2002_000001": ("Second one.", 1.2, 350),
                "1001_2002_000002": ("Third one!", 1.4, 400), "3003_4004_000000": ("Test, one.", 1.1, 450)}
    assert sorted(samples) == sorted(expected)
    for key, (text, seconds, freq) in expected.items():
        meta = samples[key][0]
        assert (meta["text"], meta["lang"], meta["task"], meta["mls_id"]) == (text, "en", "asr", key)
        assert meta["labels"] == LABELS and meta["speaker"] == key.split("_")[0]
        assert meta["description"] == f"A woman reads {key.split('_')[0]}/{key.split('_')[1]} quite fast."
        assert meta["measures"]["si_sdr"] == 21.25 and meta["original_text"] == text.lower().strip(".,")
        assert abs(meta["duration"] - seconds) < 1e-3 and abs(_freq(samples[key]) - freq) <= 3
    assert samples["3003_4004_000000"][0]["split"] == "test"
    report = json.loads((out / "report.json").read_text())
    assert report["dropped"] == {"ambiguous_segment": 1, "empty_transcript": 1, "missing_audio": 2}
    assert "1001_2002_000003" in report["dropped_examples"]["missing_audio"]  # listed, but its flac is gone


def test_mls_speaker_descriptions_opus_and_original_text(mls, tmp_path, run_prepare):
    desc, audio_root = mls
    opus_root = tmp_path / "opus" / "mls_english_opus"
    _mls_split(opus_root, "test", [("3003_4004_000000", URL.format("three"), "1.0", "2.5")],
               {"3003_4004_000000": (1.1, 450)})
    out = tmp_path / "out"
    run_prepare("mls-speaker-descriptions", "--root", desc, "--audio-root", opus_root, "--out", out, "--workers", "1",
                "--splits", "test", "--text-column", "original_text", "--max-bad-fraction", "0.9")
    (key, (meta, audio, rate)), = read_shard_set(out).items()
    assert key == "3003_4004_000000" and meta["text"] == "test, one" and rate == 16_000
    assert abs(dominant_freq(audio, rate) - 450) <= 5


def test_mls_speaker_descriptions_layout_errors(mls, tmp_path, run_prepare):
    desc, audio_root = mls
    common = ("--workers", "1", "--splits", "dev")
    run_prepare("mls-speaker-descriptions", "--root", desc, "--out", tmp_path / "o1", *common, expect=2)
    run_prepare("mls-speaker-descriptions", "--root", desc, "--audio-root", tmp_path / "none", "--out", tmp_path / "o2",
                *common, expect=2)
    run_prepare("mls-speaker-descriptions", "--root", desc, "--audio-root", audio_root, "--out", tmp_path / "o3",
                "--splits", "train", expect=2)  # neither train parquet nor train audio
    (audio_root / "dev" / "segments.txt").write_text("1001_2002_000000 only-one-field\n")
    run_prepare("mls-speaker-descriptions", "--root", desc, "--audio-root", audio_root, "--out", tmp_path / "o4",
                *common, expect=2)
    table = pq.read_table(desc / "data" / "test-00000-of-00001.parquet").drop_columns(["text_description"])
    pq.write_table(table, desc / "data" / "test-00000-of-00001.parquet")
    run_prepare("mls-speaker-descriptions", "--root", desc, "--audio-root", audio_root, "--out", tmp_path / "o5",
                "--splits", "test", expect=2)


# ---- HF save_to_disk directories -------------------------------------------------------------------------------------

def _hf_dataset(rows, audio_feature: bool):
    """A datasets.Dataset of {id, audio {bytes, path}, sentence, speaker} rows; the audio column cast to
    Audio(decode=False) (what load_dataset gives for audio) or left a plain struct (no torchcodec needed either way)."""
    datasets = pytest.importorskip("datasets")
    features = datasets.Features({"id": datasets.Value("string"), "audio": {"bytes": datasets.Value("binary"),
                                  "path": datasets.Value("string")}, "sentence": datasets.Value("string"),
                                  "speaker": datasets.Value("string")})
    ds = datasets.Dataset.from_dict({k: [r[k] for r in rows] for k in features}, features=features)
    return ds.cast_column("audio", datasets.Audio(decode=False)) if audio_feature else ds


def _row(uid, sentence, audio, speaker="spk1"):
    return {"id": uid, "audio": audio, "sentence": sentence, "speaker": speaker}


def test_hf_disk_dataset_dict(tmp_path, run_prepare):
    datasets = pytest.importorskip("datasets")
    side = tmp_path / "side.wav"
    side.write_bytes(audio_bytes(0.7, freq=550))
    train = _hf_dataset([_row("spk1-utt0", "hello there", {"bytes": audio_bytes(0.6, freq=500), "path": None}),
                         _row("spk1-utt1", "from a file", {"bytes": None, "path": str(side)}),
                         _row("spk2-utt2", "", {"bytes": audio_bytes(0.5), "path": None}, "spk2")], True)
    test = _hf_dataset([_row("spk3.utt3", "a test", {"bytes": audio_bytes(0.8, freq=600), "path": "x.wav"}, "spk3")],
                       True)
    root = tmp_path / "my_corpus"
    datasets.DatasetDict({"train": train, "test": test}).save_to_disk(str(root))
    assert sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()) == [
        "dataset_dict.json", "test/data-00000-of-00001.arrow", "test/dataset_info.json", "test/state.json",
        "train/data-00000-of-00001.arrow", "train/dataset_info.json", "train/state.json"]
    side.unlink()  # save_to_disk embedded the file's bytes in the arrow cell
    out = tmp_path / "out"
    run_prepare("hf-disk", "--root", root, "--out", out, "--workers", "1", "--lang", "en", "--text-column", "sentence",
                "--id-column", "id", "--keep-columns", "speaker", "--max-bad-fraction", "0.5")
    samples = read_shard_set(out)
    expected = {"spk1-utt0": ("hello there", "train", 0.6, 500), "spk1-utt1": ("from a file", "train", 0.7, 550),
                "spk3_utt3": ("a test", "test", 0.8, 600)}
    assert sorted(samples) == sorted(expected)
    for key, (text, split, seconds, freq) in expected.items():
        meta = samples[key][0]
        assert (meta["text"], meta["split"], meta["lang"], meta["task"], meta["corpus"]) == (
            text, split, "en", "asr", "my_corpus")
        assert meta["speaker"] == key[:4] and abs(meta["duration"] - seconds) < 1e-3
        assert abs(_freq(samples[key]) - freq) <= 3
    assert json.loads((out / "report.json").read_text())["dropped"] == {"empty_transcript": 1}
    run_prepare("hf-disk", "--root", root, "--out", tmp_path / "o2", "--lang", "en", "--splits", "dev", expect=2)
    run_prepare("hf-disk", "--root", root, "--out", tmp_path / "o3", "--lang", "en", expect=2)  # no "text" column
    run_prepare("hf-disk", "--root", tmp_path, "--out", tmp_path / "o4", "--lang", "en", expect=2)  # not a dataset


def test_hf_disk_plain_struct_dataset_in_two_files(tmp_path, run_prepare):
    side = tmp_path / "side.wav"
    side.write_bytes(audio_bytes(0.7, freq=650))
    ds = _hf_dataset([_row("a", "zero", {"bytes": audio_bytes(0.6, freq=500), "path": "a.wav"}),
                      _row("b", "one", {"bytes": None, "path": str(side)}),
                      _row("c", "two", {"bytes": None, "path": None}),
                      _row("d", "three", {"bytes": audio_bytes(0.9, freq=700), "path": None})], False)
    root = tmp_path / "plain"
    ds.save_to_disk(str(root), num_shards=2)
    assert sorted(p.name for p in root.iterdir()) == ["data-00000-of-00002.arrow", "data-00001-of-00002.arrow",
                                                      "dataset_info.json", "state.json"]
    out = tmp_path / "out"
    run_prepare("hf-disk", "--root", root, "--out", out, "--workers", "2", "--lang", "de", "--text-column",
                "sentence", "--splits", "train", "--max-bad-fraction", "0.5")
    samples = read_shard_set(out)
    assert {k: (m["text"], m["lang"], _freq(samples[k])) for k, m in ((k, v[0]) for k, v in samples.items())} == {
        "train_0": ("zero", "de", 500), "train_1": ("one", "de", 650), "train_3": ("three", "de", 700)}
    report = json.loads((out / "report.json").read_text())
    assert report["dropped"] == {"missing_audio": 1}  # row 2: neither bytes nor a path
    assert list(report["dropped_examples"]["missing_audio"]) == ["train_2"]
