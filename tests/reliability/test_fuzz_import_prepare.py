"""Input fuzzing, layers 2-3: a corpus importer's audio (data.corpora.common.load_item_audio) and `data.prepare
manifest` over manifests mixing good lines with broken audio, missing files, broken JSON and odd transcripts; and the
regressions for the bugs the fuzzing found there (contract: tests/reliability/fuzz_audio.py)."""

from __future__ import annotations

import io
import json
import tarfile
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from hypothesis import given
from hypothesis import strategies as st

from data.audio import BadSample
from data.corpora.common import AudioRef, load_item_audio
from data.prepare import build_from_manifest
from data.prepare import main as prepare_main
from data.shards import INDEX_NAME, index_shard_set, read_index
from tests.conftest import WORDS
from tests.reliability.fuzz_audio import (
    AUDIO_REASONS,
    FORMATS,
    TRICKY,
    ZERO_WIDTH,
    Clip,
    assert_budget,
    bad_rates,
    captured,
    clips,
    encode,
    flipped_clips,
    fuzz,
    good_text,
    junk,
    non_finite_clips,
    truncated_clips,
)

# ------------------------------------------------------------------------------------------------ layer 2: import

def check_imported(result, clip: Clip) -> None:
    """(flac bytes, seconds) that hold exactly the source: same frames, rate, channels, values (float -> 24 bit)."""
    flac, seconds = result
    info = sf.info(io.BytesIO(flac))
    assert info.format == "FLAC" and info.samplerate == clip.rate and info.channels == clip.channels
    assert info.frames == clip.frames and seconds == pytest.approx(clip.seconds)
    if clip.subtype in ("PCM_16", "PCM_24", "PCM_S8"):
        assert info.subtype == clip.subtype  # integer PCM keeps its depth
    stored, _ = sf.read(io.BytesIO(flac), dtype="float64", always_2d=True)
    source, _ = sf.read(io.BytesIO(clip.data), dtype="float64", always_2d=True)
    assert np.abs(stored - source).max() <= 2.0**-23  # lossless, or 24-bit rounding of a float / 32-bit source


@st.composite
def import_cases(draw):
    """(bytes, file suffix, clip to expect or None, allowed bad reasons); truncated files of both containers."""
    kind = draw(st.sampled_from(["valid", "truncated_flac", "truncated_wav", "flipped_flac", "junk", "empty", "nan",
                                 "bad_rate"]))
    flac_only = [f for f in FORMATS if f[0] == "FLAC"]
    if kind == "truncated_wav":
        clip, data = draw(truncated_clips(formats=[f for f in FORMATS if f[0] == "WAV"]))
        return data, "wav", None, {"corrupt_audio", "empty_audio"}
    if kind == "valid":
        clip = draw(clips())
        return clip.data, clip.ext, clip, None
    if kind == "truncated_flac":
        clip, data = draw(truncated_clips(formats=flac_only))
        return data, "flac", None, {"corrupt_audio", "empty_audio"}
    if kind == "flipped_flac":
        clip, data, _ = draw(flipped_clips(formats=flac_only))
        return data, "flac", "self", AUDIO_REASONS
    if kind == "junk":
        return draw(junk), draw(st.sampled_from(["wav", "flac"])), "self", AUDIO_REASONS
    if kind == "empty":  # a 0-byte .flac path is read as FLAC and reported as corrupt_audio: named all the same
        return b"", draw(st.sampled_from(["wav", "flac"])), None, {"empty_audio", "corrupt_audio"}
    if kind == "nan":
        return draw(non_finite_clips()), "wav", None, {"non_finite_audio"}
    rate = draw(bad_rates)
    return encode(np.zeros(100, dtype=np.float32), rate, "WAV", "PCM_16"), "wav", None, {"bad_sample_rate"}


def test_import_item_audio_from_bytes_and_paths(tmp_path_factory):
    """load_item_audio(AudioRef(data=...)) and AudioRef(path=...): exact FLAC of the source, or a named BadSample."""
    root = tmp_path_factory.mktemp("import")
    ran = []

    @fuzz("import_item_audio")
    @given(case=import_cases(), by_path=st.booleans())
    def check(case, by_path):
        data, suffix, expect, reasons = case
        path = root / f"item-{len(ran)}.{suffix}"
        if by_path:
            path.write_bytes(data)
        ref = AudioRef(path=path) if by_path else AudioRef(data=data)
        try:
            result = load_item_audio(ref)
        except BadSample as exc:
            assert reasons is not None and exc.reason in reasons, (exc, reasons)
        else:
            assert expect is not None, f"{reasons} expected, got a valid sample"
            if isinstance(expect, Clip):
                check_imported(result, expect)
                if by_path and suffix == "flac":
                    assert result[0] == data  # FLAC is stored byte for byte
            else:  # damaged but decodable: what is stored must be what the damaged file says
                flac, seconds = result
                info, stored = sf.info(io.BytesIO(data)), sf.info(io.BytesIO(flac))
                assert (stored.frames, stored.samplerate) == (info.frames, info.samplerate)
                assert seconds == pytest.approx(info.frames / info.samplerate)
        ran.append(1)

    check()
    assert_budget("import_item_audio", ran)


def test_import_missing_file_is_named():
    with pytest.raises(BadSample, match="missing_audio.*nowhere.wav"):
        load_item_audio(AudioRef(path=Path("/nonexistent/nowhere.wav")))


# ------------------------------------------------------------------------------------------------ layer 3: prepare





@dataclass
class Line:
    """One manifest line and what prepare must do with it."""

    key: str
    text: object
    audio: bytes | None
    suffix: str
    clip: Clip | None = None
    reasons: set[str] = field(default_factory=set)
    """Empty: must be written. Else the allowed skip reasons."""
    raw: str | None = None
    """The line as written when it is not a JSON record."""


@st.composite
def manifest_lines(draw, key: str) -> Line:
    kind = draw(st.sampled_from(["valid", "valid", "valid", "truncated", "flipped", "junk", "empty_audio", "nan",
                                 "bad_rate", "many_channels", "no_text", "blank_text", "odd_text", "missing_file",
                                 "not_json", "huge_text", "zero_width_text"]))
    if kind in ("valid", "huge_text", "zero_width_text"):
        clip = draw(clips(max_seconds=0.3))
        text = {"valid": good_text(draw), "huge_text": " ".join(WORDS) * 2000,  # about 230 KB
                "zero_width_text": draw(st.sampled_from(ZERO_WIDTH)) * 3}[kind]
        return Line(key, text, clip.data, clip.ext, clip)  # kept verbatim: the loader filters transcripts
    text = good_text(draw)
    if kind == "truncated":
        clip, data = draw(truncated_clips(max_seconds=0.3))
        return Line(key, text, data, clip.ext, reasons={"corrupt_audio", "empty_audio"})
    if kind == "flipped":
        clip, data, _ = draw(flipped_clips(max_seconds=0.3))
        return Line(key, text, data, clip.ext, reasons=AUDIO_REASONS | {"self"})
    if kind == "junk":
        return Line(key, text, draw(junk), draw(st.sampled_from(["wav", "flac"])), reasons=AUDIO_REASONS | {"self"})
    if kind == "empty_audio":
        return Line(key, text, b"", "wav", reasons={"empty_audio"})
    if kind == "nan":
        return Line(key, text, draw(non_finite_clips()), "wav", reasons={"non_finite_audio"})
    if kind == "bad_rate":
        data = encode(np.zeros(100, dtype=np.float32), draw(bad_rates), "WAV", "PCM_16")
        return Line(key, text, data, "wav", reasons={"bad_sample_rate"})
    if kind == "many_channels":  # FLAC holds at most 8: prepare must skip the file, not die
        data = encode(np.zeros((200, draw(st.integers(9, 16))), dtype=np.float32), 16_000, "WAV", "PCM_16")
        return Line(key, text, data, "wav", reasons={"unsupported_audio"})
    clip = draw(clips(max_seconds=0.2))
    if kind == "no_text":
        return Line(key, draw(st.sampled_from([None, 5, ["a"], {"t": "x"}])), clip.data, clip.ext,
                    reasons={"empty_transcript"})
    if kind == "blank_text":
        return Line(key, draw(st.sampled_from(["", " ", "\t\n", "\u00a0 \u3000"])), clip.data, clip.ext,
                    reasons={"empty_transcript"})
    if kind == "odd_text":
        text = "".join(draw(st.lists(st.sampled_from(TRICKY), min_size=1, max_size=8))) + "x"
        return Line(key, text, clip.data, clip.ext, clip)
    if kind == "missing_file":
        return Line(key, text, None, "flac", reasons={"missing_audio"})
    raw = draw(st.sampled_from(['{"audio": "x.flac", "text": ', "[1, 2]", '"str"', "{oops}", '{"text": "no audio"}']))
    return Line(key, text, None, "flac", reasons={"bad_manifest_line"}, raw=raw)


def test_prepare_manifest_writes_the_good_and_counts_the_bad():
    """build_from_manifest over fuzzed files and lines: every good line written exactly as it was (audio values,
    rate, channels, transcript), every bad one skipped, named in a warning and counted in index["skipped"]."""
    ran = []

    @fuzz("prepare_manifest")
    @given(lines=st.integers(2, 8).flatmap(lambda n: st.tuples(*[manifest_lines(f"k{i:02d}") for i in range(n)])))
    def check(lines):
        with tempfile.TemporaryDirectory() as tmp, captured("data.prepare") as records:
            root = Path(tmp)
            (root / "audio").mkdir()
            rows = []
            for line in lines:
                if line.raw is not None:
                    rows.append(line.raw)
                    continue
                rel = f"audio/{line.key}.{line.suffix}"
                if line.audio is not None:
                    (root / rel).write_bytes(line.audio)
                rec = {"id": line.key, "audio": rel, "lang": "en"}
                if line.text is not None:
                    rec["text"] = line.text
                # Both escaped and raw UTF-8 (raw line separators such as U+2028 included).
                rows.append(json.dumps(rec, ensure_ascii=not len(rows) % 2))
            (root / "m.jsonl").write_text("\n".join(rows) + "\n", encoding="utf-8")
            try:
                index = build_from_manifest(root / "m.jsonl", root / "out", max_bad_fraction=1.0, workers=1)
            except RuntimeError as exc:  # nothing usable: a clear error and no index, never for a good line
                assert "unusable" in str(exc) and all(line.reasons for line in lines), exc
                assert not (root / "out" / INDEX_NAME).exists()
                ran.append(1)
                return
            skipped = {int(r.args[0].rsplit(":", 1)[1]) - 1: r.args[1].reason for r in records
                       if r.msg.startswith("skipping")}
            assert Counter(skipped.values()) == Counter(index["skipped"])
            written = stored_samples(root / "out")
            for i, line in enumerate(lines):
                if not line.reasons:
                    assert line.key in written and i not in skipped, f"{line.key} lost"
                elif i in skipped:
                    assert skipped[i] in line.reasons, (line.key, skipped[i], line.reasons)
                    assert line.key not in written
                else:  # only damaged audio that still decodes may pass, stored as its header says
                    assert "self" in line.reasons and line.key in written, (line.key, line.reasons)
            assert index["samples"] == len(written) == len(lines) - len(skipped)
            for key, (flac, meta) in written.items():
                line = next(ln for ln in lines if ln.key == key)
                assert meta["text"] == line.text and meta["lang"] == "en"  # verbatim, however odd or long
                if line.clip is not None:
                    check_imported((flac, line.clip.seconds), line.clip)
                    assert meta["duration"] == round(line.clip.seconds, 3)
                else:  # damaged but decodable: stored as the damaged file's own header says
                    info, stored = sf.info(io.BytesIO(line.audio)), sf.info(io.BytesIO(flac))
                    assert (stored.frames, stored.samplerate, stored.channels) == \
                        (info.frames, info.samplerate, info.channels)
        ran.append(1)

    check()
    assert_budget("prepare_manifest", ran)


def stored_samples(shard_dir: Path) -> dict[str, tuple[bytes, dict]]:
    """key -> (audio bytes, meta) of every sample in a shard set, read back with tarfile."""
    out = {}
    for shard in read_index(shard_dir)["shards"]:
        with tarfile.open(shard_dir / shard["name"]) as tar:
            members = {m.name: tar.extractfile(m).read() for m in tar.getmembers()}
        for name, payload in members.items():
            key, ext = name.split(".", 1)
            if ext != "json":
                out[key] = (payload, json.loads(members[f"{key}.json"]))
    return out


def test_prepare_non_utf8_manifest_is_a_clear_error(tmp_path, capsys):
    """A manifest that is not UTF-8 stops `python -m data.prepare manifest` with exit code 2 and the codec error
    (naming the byte offset) in its ERROR line, before any shard is written."""
    sf.write(tmp_path / "a.flac", np.zeros(1600, dtype=np.float32), 16_000)
    (tmp_path / "m.jsonl").write_bytes(b'{"id": "a", "audio": "a.flac", "text": "caf\xe9"}\n')
    assert prepare_main(["manifest", "--manifest", str(tmp_path / "m.jsonl"), "--out", str(tmp_path / "out")]) == 2
    [line] = [line for line in capsys.readouterr().err.splitlines() if line.startswith("ERROR ")]
    assert line.startswith("ERROR python -m data.prepare: ") and "utf-8" in line and "position" in line
    assert not (tmp_path / "out").exists()



# ------------------------------------------------------------------------------------------------ found by fuzzing
# Cases the properties above found in the corpus importers, prepare and the tar indexer, kept as plain regressions.

def test_import_truncated_wav_is_rejected():
    clip_data = encode(np.full(16_000, 0.25, dtype=np.float32), 16_000, "WAV", "PCM_16")
    with pytest.raises(BadSample, match="corrupt_audio"):
        load_item_audio(AudioRef(data=clip_data[: len(clip_data) // 2]))


def test_import_wav_with_more_than_8_channels_is_skipped():
    data = encode(np.zeros((100, 10), dtype=np.float32), 16_000, "WAV", "PCM_16")
    with pytest.raises(BadSample):
        load_item_audio(AudioRef(data=data))


def test_prepare_lone_surrogate_transcript_is_skipped(tmp_path):
    sf.write(tmp_path / "a.flac", np.zeros(1600, dtype=np.float32), 16_000)
    sf.write(tmp_path / "b.flac", np.zeros(1600, dtype=np.float32), 16_000)
    (tmp_path / "m.jsonl").write_text('{"id": "a", "audio": "a.flac", "text": "the \\ud800"}\n'
                                      '{"id": "b", "audio": "b.flac", "text": "the fox"}\n')
    index = build_from_manifest(tmp_path / "m.jsonl", tmp_path / "out", max_bad_fraction=1.0, workers=1)
    assert index["samples"] == 1 and sum(index["skipped"].values()) == 1


def test_prepare_raw_line_separator_in_a_transcript_keeps_the_sample(tmp_path):
    sf.write(tmp_path / "a.flac", np.zeros(1600, dtype=np.float32), 16_000)
    rec = {"id": "a", "audio": "a.flac", "text": "the fox\u2028the dog"}
    (tmp_path / "m.jsonl").write_text(json.dumps(rec, ensure_ascii=False) + "\n", encoding="utf-8")
    index = build_from_manifest(tmp_path / "m.jsonl", tmp_path / "out", max_bad_fraction=1.0, workers=1)
    assert index["samples"] == 1 and not index["skipped"]
    assert stored_samples(tmp_path / "out")["a"][1]["text"] == rec["text"]


def test_index_tar_with_deeply_nested_json(tmp_path):
    audio = encode(np.zeros(1600, dtype=np.float32), 16_000, "FLAC", "PCM_16")
    with tarfile.open(tmp_path / "other.tar", "w") as tar:
        for name, payload in (("a.flac", audio), ("a.json", b"[" * 100_000)):
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    index = index_shard_set(tmp_path)
    assert index["samples"] == 1  # duration from the audio header; the loader then drops it as corrupt_json

