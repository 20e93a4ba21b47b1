"""Shard writing, indexing and the prepare CLI: round trip, plain-tar/WebDataset compatibility, bad manifest lines."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import webdataset as wds

from data.prepare import build_from_manifest, main, parse_size
from data.shards import INDEX_NAME, TABLE_SUFFIX, ShardReader, index_shard_set, load_table, read_index, scan_tar
from tests.conftest import REPO, make_manifest


def _records(manifest: Path) -> dict[str, dict]:
    return {r["id"]: r for r in map(json.loads, manifest.read_text().splitlines())}


def test_round_trip_bytes_and_fields(tmp_path):
    manifest = make_manifest(tmp_path / "c", 40)
    index = build_from_manifest(manifest, tmp_path / "s", max_samples=15)
    records = _records(manifest)
    assert index["samples"] == 40 and [s["samples"] for s in index["shards"]] == [15, 15, 10]
    seen = {}
    for shard in index["shards"]:
        with tarfile.open(tmp_path / "s" / shard["name"]) as tf:
            for m in tf.getmembers():
                seen[m.name] = tf.extractfile(m).read()
    for uid, rec in records.items():
        assert seen[f"{uid}.flac"] == (manifest.parent / rec["audio"]).read_bytes()
        assert json.loads(seen[f"{uid}.json"]) == {k: v for k, v in rec.items() if k != "audio"}
    assert len(seen) == 80
    hours = sum(sf.info(manifest.parent / r["audio"]).duration for r in records.values()) / 3600
    assert index["hours"] == pytest.approx(hours, rel=1e-3)


def test_readable_by_webdataset_and_tar(shard_set):
    index = read_index(shard_set)
    urls = [str(shard_set / s["name"]) for s in index["shards"]]
    samples = list(wds.WebDataset(urls, shardshuffle=False))
    assert len(samples) == index["samples"]
    first = samples[0]
    meta = json.loads(first["json"])
    audio, rate = sf.read(io.BytesIO(first["flac"]))
    assert rate == 16000 and abs(len(audio) / rate - meta["duration"]) < 2e-3
    listing = subprocess.run(["tar", "-tf", urls[0]], capture_output=True, text=True, check=True).stdout.split()
    assert len(listing) == 2 * index["shards"][0]["samples"]
    assert all(name.endswith((".flac", ".json")) for name in listing)


def test_sample_table_offsets_read_exact_members(shard_set):
    index = read_index(shard_set)
    table, problems = load_table(shard_set, index["shards"][1])
    assert not problems and len(table) == index["shards"][1]["samples"]
    reader = ShardReader()
    path = str(shard_set / table.shard)
    with tarfile.open(path) as tf:
        for i, key in enumerate(table.keys):
            assert reader.read(path, table.audio_offset[i], table.audio_size[i]) == \
                tf.extractfile(f"{key}.flac").read()
            meta = json.loads(reader.read(path, table.json_offset[i], table.json_size[i]))
            assert meta["id"] == key and meta["duration"] == pytest.approx(table.duration[i], abs=1e-3)


def test_shards_are_deterministic_and_size_bounded(tmp_path):
    manifest = make_manifest(tmp_path / "c", 30)
    a = build_from_manifest(manifest, tmp_path / "a", max_bytes=parse_size("300KB"))
    b = build_from_manifest(manifest, tmp_path / "b", max_bytes=parse_size("300KB"))
    assert len(a["shards"]) > 1
    for sa, sb in zip(a["shards"], b["shards"]):
        assert (tmp_path / "a" / sa["name"]).read_bytes() == (tmp_path / "b" / sb["name"]).read_bytes()
    # a shard closes at the first sample that crosses the limit: never more than one sample over it
    biggest = max((manifest.parent / r["audio"]).stat().st_size for r in _records(manifest).values())
    assert all(s["bytes"] <= 300_000 + biggest + 4096 for s in a["shards"])


def test_index_foreign_tars_and_truncation(tmp_path):
    manifest = make_manifest(tmp_path / "c", 12)
    out = tmp_path / "foreign"
    out.mkdir()
    with wds.TarWriter(str(out / "part-0.tar")) as sink:
        for uid, rec in _records(manifest).items():
            sink.write({"__key__": uid, "flac": (manifest.parent / rec["audio"]).read_bytes(),
                        "json": {"text": rec["text"]}})  # no duration field: read from the audio header
    index = index_shard_set(out)
    assert index["samples"] == 12 and (out / ("part-0.tar" + TABLE_SUFFIX)).exists()
    table, _ = scan_tar(out / "part-0.tar")
    durs = {r["id"]: r["duration"] for r in _records(manifest).values()}
    assert all(abs(d - durs[k]) < 2e-3 for k, d in zip(table.keys, table.duration))
    # cut the tar in the middle of the 8th sample's audio: the 7 complete ones stay readable
    data = (out / "part-0.tar").read_bytes()
    (out / "part-0.tar").write_bytes(data[: table.audio_offset[7] + 100])
    table2, problems = load_table(out, index["shards"][0])
    assert len(table2) == 7 and table2.keys == table.keys[:7]
    assert any("truncated" in p for p in problems)


def _write_bad_manifest(root: Path) -> Path:
    manifest = make_manifest(root, 20)
    lines = manifest.read_text().splitlines()
    recs = [json.loads(x) for x in lines]
    (root / "audio" / "corrupt.flac").write_bytes(b"fLaC" + bytes(range(256)) * 4)
    good = (root / recs[1]["audio"]).read_bytes()
    (root / "audio" / "cut.flac").write_bytes(good[: len(good) // 3])
    wav = root / "audio" / "stereo44k.wav"
    sf.write(wav, np.zeros((44100, 2), dtype=np.int16), 44100, subtype="PCM_16")
    extra = [
        {"id": "missing", "audio": "audio/nowhere.flac", "text": "hello"},
        {"id": "empty", "audio": recs[0]["audio"], "text": "   "},
        {"id": "corrupt", "audio": "audio/corrupt.flac", "text": "hello"},
        {"id": "cut", "audio": "audio/cut.flac", "text": "hello"},
        {"id": recs[2]["id"], "audio": recs[2]["audio"], "text": "duplicate id"},
        {"id": "wav.with.dots", "audio": "audio/stereo44k.wav", "text": "converted"},
    ]
    manifest.write_text("\n".join(lines + [json.dumps(e) for e in extra] + ["{not json"]) + "\n")
    return manifest


def test_prepare_skips_and_counts_bad_lines(tmp_path, caplog):
    manifest = _write_bad_manifest(tmp_path / "c")
    index = build_from_manifest(manifest, tmp_path / "s", max_bad_fraction=0.5)
    assert index["skipped"] == {"missing_audio": 1, "empty_transcript": 1, "corrupt_audio": 2,
                                "duplicate_id": 1, "bad_manifest_line": 1}
    assert index["samples"] == 21
    log = caplog.text
    assert "nowhere.flac" in log and "corrupt_audio" in log and "duplicate_id" in log
    table, _ = load_table(tmp_path / "s", index["shards"][0])
    assert "wav_with_dots" in table.keys  # key made dot-free, original id kept in the json
    i = table.keys.index("wav_with_dots")
    flac = ShardReader().read(str(tmp_path / "s" / table.shard), table.audio_offset[i], table.audio_size[i])
    info = sf.info(io.BytesIO(flac))
    assert (info.format, info.samplerate, info.channels, info.frames) == ("FLAC", 44100, 2, 44100)


def test_prepare_threshold_stops_with_clear_message(tmp_path):
    manifest = _write_bad_manifest(tmp_path / "c")
    with pytest.raises(RuntimeError, match=r"max-bad-fraction=0\.1.*fix the manifest"):
        build_from_manifest(manifest, tmp_path / "s", max_bad_fraction=0.1)
    assert not (tmp_path / "s" / INDEX_NAME).exists()
    assert not list((tmp_path / "s").glob("*.tar"))  # only a .partial shard may remain, never a valid-looking one


def test_prepare_cli_and_refuses_non_empty_out(tmp_path):
    manifest = make_manifest(tmp_path / "c", 5)
    cmd = [sys.executable, "-m", "data.prepare", "manifest", "--manifest", str(manifest), "--out",
           str(tmp_path / "s"), "--max-shard-size", "1MB"]
    subprocess.run(cmd, cwd=REPO, check=True, capture_output=True)
    assert read_index(tmp_path / "s")["samples"] == 5
    again = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    assert again.returncode == 2 and "--overwrite" in again.stderr
    assert main(["index", str(tmp_path / "s")]) == 0
    with pytest.raises(FileNotFoundError, match="data.prepare manifest"):
        read_index(tmp_path / "nothing")
