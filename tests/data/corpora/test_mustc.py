"""data.corpora.mustc: MuST-C v1 pairs en-de and en-fr in the released layout, segments cut by the yaml offsets
(checked by tone frequency and duration), merging of segments the pairs share, split/pair selection, and the
errors of a broken download."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest
import soundfile as sf
import yaml

from data.corpora.mustc import scan
from tests.data.corpora.conftest import dominant_freq, read_shard_set, tone

RATE = 16_000
# The fixture drops 1-2 of ~12 segments on purpose, far above the 5 % a real download may lose.
TOLERATE = ("--max-bad-fraction", "0.5")
# Talk wav -> consecutive (seconds, tone Hz) regions; a segment cut at the right offset is one pure tone.
TALKS = {
    "ted_1": [(1.0, 300), (1.5, 500), (1.5, 700)],
    "ted_2": [(0.5, 200), (1.0, 900)],
    "ted_3": [(2.0, 1100)],
    "ted_10": [(1.0, 1300), (1.0, 1500)],
    "ted_20": [(1.2, 1700), (0.8, 1900)],
    "ted_30": [(1.0, 2100)],
    "ted_31": [(1.0, 2300)],
}
# (pair, split) -> (talk, offset, duration, English line, target line), in yaml order.
SEGMENTS = {
    ("de", "train"): [("ted_1", 0.0, 1.0, "One.", "Eins."), ("ted_1", 1.0, 1.5, "Two.", "Zwei."),
                      ("ted_1", 2.5, 1.5, "Three.", ""), ("ted_2", 0.5, 1.0, "Talk two.", "Rede zwei.")],
    ("fr", "train"): [("ted_1", 0.0, 1.0, "One.", "Un."), ("ted_1", 1.0004, 1.5, "Two.", "Deux."),
                      ("ted_1", 2.5, 1.5, "Three.", "Trois."), ("ted_3", 0.0, 2.0, "", "Vide.")],
    ("de", "dev"): [("ted_10", 0.0, 1.0, "Dev one.", "Dev eins."), ("ted_10", 1.0, 1.0, "Dev two.", "Dev zwei.")],
    ("fr", "dev"): [("ted_10", 0.0, 1.0, "Dev one.", "Dev un."), ("ted_10", 1.0, 0.9, "Dev two.", "Dev deux.")],
    ("de", "tst-COMMON"): [("ted_20", 0.0, 1.2, "Common one.", "Gemein eins."),
                           ("ted_20", 1.2, 0.8, "Common two.", "Gemein zwei.")],
    ("fr", "tst-COMMON"): [("ted_20", 0.0, 1.2, "Common one.", "Commun un."),
                           ("ted_20", 1.2, 0.8, "Common two.", "Commun deux.")],
    ("de", "tst-HE"): [("ted_30", 0.0, 1.0, "He de.", "HE deutsch.")],
    ("fr", "tst-HE"): [("ted_31", 0.0, 1.0, "He fr.", "HE francais.")],
}
# Merged key -> (split, English, translations, tone Hz, duration s).
MERGED = {
    "train_ted_1_0_1000": ("train", "One.", {"de": "Eins.", "fr": "Un."}, 300, 1.0),
    "train_ted_1_1000_1500": ("train", "Two.", {"de": "Zwei.", "fr": "Deux."}, 500, 1.5),
    "train_ted_1_2500_1500": ("train", "Three.", {"fr": "Trois."}, 700, 1.5),
    "train_ted_2_500_1000": ("train", "Talk two.", {"de": "Rede zwei."}, 900, 1.0),
    "dev_ted_10_0_1000": ("dev", "Dev one.", {"de": "Dev eins.", "fr": "Dev un."}, 1300, 1.0),
    "dev_ted_10_1000_1000": ("dev", "Dev two.", {"de": "Dev zwei."}, 1500, 1.0),
    "dev_ted_10_1000_900": ("dev", "Dev two.", {"fr": "Dev deux."}, 1500, 0.9),
    "tst-COMMON_ted_20_0_1200": ("tst-COMMON", "Common one.", {"de": "Gemein eins.", "fr": "Commun un."}, 1700, 1.2),
    "tst-COMMON_ted_20_1200_800": ("tst-COMMON", "Common two.", {"de": "Gemein zwei.", "fr": "Commun deux."}, 1900,
                                   0.8),
    "tst-HE_ted_30_0_1000": ("tst-HE", "He de.", {"de": "HE deutsch."}, 2100, 1.0),
    "tst-HE_ted_31_0_1000": ("tst-HE", "He fr.", {"fr": "HE francais."}, 2300, 1.0),
}


def make_mustc(root):
    """en-de/ and en-fr/ as unpacked from MUSTC_v1.0_en-<tgt>.tar.gz, each with its own copy of its talks."""
    for (tgt, split), rows in SEGMENTS.items():
        base = root / f"en-{tgt}" / "data" / split
        (base / "txt").mkdir(parents=True, exist_ok=True)
        (base / "wav").mkdir(parents=True, exist_ok=True)
        for talk in sorted({row[0] for row in rows}):
            audio = np.concatenate([tone(seconds, RATE, freq) for seconds, freq in TALKS[talk]])
            sf.write(base / "wav" / f"{talk}.wav", audio, RATE, subtype="PCM_16")
        yaml_lines = [f"- {{duration: {dur:.6f}, offset: {off:.6f}, rW: 2, uW: 0, speaker_id: spk.{talk[4:]}, "
                      f"wav: {talk}.wav}}" for talk, off, dur, _, _ in rows]
        (base / "txt" / f"{split}.yaml").write_text("\n".join(yaml_lines) + "\n", encoding="utf-8")
        (base / "txt" / f"{split}.en").write_text("".join(f"{r[3]}\n" for r in rows), encoding="utf-8")
        (base / "txt" / f"{split}.{tgt}").write_text("".join(f"{r[4]}\n" for r in rows), encoding="utf-8")
    return root


@pytest.fixture
def mustc(tmp_path):
    return make_mustc(tmp_path / "mustc")


def _report(out):
    return json.loads((out / "report.json").read_text(encoding="utf-8"))


def _check_audio(meta, audio, rate, freq, duration):
    assert rate == RATE
    assert len(audio) == round(duration * RATE)
    assert meta["duration"] == pytest.approx(duration, abs=1e-3)
    assert dominant_freq(audio, rate) == pytest.approx(freq, abs=15)


def test_merged_pairs_cut_by_offsets(mustc, tmp_path, run_prepare):
    out = tmp_path / "out"
    run_prepare("mustc", "--root", mustc, "--out", out, "--workers", "1", "--utts-per-shard", "4",
                *TOLERATE)
    samples = read_shard_set(out)
    assert set(samples) == set(MERGED)
    for key, (split, english, translations, freq, duration) in MERGED.items():
        meta, audio, rate = samples[key]
        assert (meta["text"], meta["translations"], meta["split"]) == (english, translations, split)
        assert (meta["lang"], meta["task"], meta["corpus"]) == ("en", "st", "mustc")
        talk = key.split("_ted_")[1].split("_")[0]
        assert (meta["talk"], meta["speaker"]) == (f"ted_{talk}", f"spk.{talk}")
        _check_audio(meta, audio, rate, freq, duration)
    report = _report(out)
    # ted_3 has no English line; ted_1 at 2.5 s keeps its French translation although the German line is empty.
    assert report["dropped"] == {"empty_transcript": 1}
    assert "train_ted_3_0_2000" in report["dropped_examples"]["empty_transcript"]
    assert {s: v["samples"] for s, v in report["splits"].items()} == {"train": 4, "dev": 3, "tst-COMMON": 2,
                                                                       "tst-HE": 2}


def test_no_merge_keeps_pairs_apart(mustc, tmp_path, run_prepare):
    out = tmp_path / "out"
    run_prepare("mustc", "--root", mustc, "--out", out, "--workers", "1", "--no-merge-pairs", *TOLERATE)
    samples = read_shard_set(out)
    expected = {}
    for (tgt, split), rows in SEGMENTS.items():
        for talk, off, dur, english, target in rows:
            key = f"en-{tgt}_{split}_{talk}_{round(off * 1000)}_{round(dur * 1000)}"
            if english and target:
                expected[key] = (english, {tgt: target}, TALKS[talk], off, dur)
    assert set(samples) == set(expected) and len(expected) == 16
    for key, (english, translations, regions, off, dur) in expected.items():
        meta, audio, rate = samples[key]
        assert (meta["text"], meta["translations"]) == (english, translations)
        region_starts = np.cumsum([0.0] + [s for s, _ in regions])
        freq = regions[int(np.searchsorted(region_starts, off + 0.01)) - 1][1]
        _check_audio(meta, audio, rate, freq, dur)
    assert _report(out)["dropped"] == {"empty_transcript": 1, "missing_translation": 1}
    assert "en-de_train_ted_1_2500_1500" in _report(out)["dropped_examples"]["missing_translation"]


def test_pair_dir_root_and_split_selection(mustc, tmp_path, run_prepare):
    out = tmp_path / "fr"
    run_prepare("mustc", "--root", mustc / "en-fr", "--out", out, "--workers", "1",
                "--splits", "tst-COMMON", "tst-HE")
    samples = read_shard_set(out)
    assert set(samples) == {"tst-COMMON_ted_20_0_1200", "tst-COMMON_ted_20_1200_800", "tst-HE_ted_31_0_1000"}
    assert samples["tst-COMMON_ted_20_0_1200"][0]["translations"] == {"fr": "Commun un."}
    out = tmp_path / "de"
    run_prepare("mustc", "--root", mustc, "--out", out, "--workers", "1", "--pairs", "en-de", "--splits", "tst-HE")
    samples = read_shard_set(out)
    assert set(samples) == {"tst-HE_ted_30_0_1000"}
    _check_audio(samples["tst-HE_ted_30_0_1000"][0], *samples["tst-HE_ted_30_0_1000"][1:], 2100, 1.0)


def test_merged_item_reads_another_pairs_copy_of_a_missing_talk(mustc, tmp_path, run_prepare):
    (mustc / "en-de" / "data" / "tst-COMMON" / "wav" / "ted_20.wav").unlink()
    out = tmp_path / "out"
    run_prepare("mustc", "--root", mustc, "--out", out, "--workers", "1", "--splits", "tst-COMMON")
    samples = read_shard_set(out)
    assert set(samples) == {"tst-COMMON_ted_20_0_1200", "tst-COMMON_ted_20_1200_800"}
    _check_audio(*samples["tst-COMMON_ted_20_1200_800"], 1900, 0.8)
    assert _report(out)["dropped"] == {}


def test_line_count_mismatch_names_the_files(mustc, tmp_path, run_prepare):
    with open(mustc / "en-fr" / "data" / "train" / "txt" / "train.fr", "a", encoding="utf-8") as f:
        f.write("Une ligne de trop.\n")
    args = argparse.Namespace(root=mustc, pairs=None, splits=["train"], merge_pairs=True)
    with pytest.raises(ValueError, match=r"train\.yaml has 4 segments .*train\.en has 4 lines .*train\.fr has 5"):
        list(scan(args))
    run_prepare("mustc", "--root", mustc, "--out", tmp_path / "out", "--workers", "1", expect=2)


def test_line_separators_inside_a_sentence_do_not_shift_lines(mustc):
    path = mustc / "en-de" / "data" / "tst-HE" / "txt" / "tst-HE.en"
    path.write_text("He\u2028de\x0c.\r\n", encoding="utf-8")  # U+2028, a form feed and a CRLF ending
    args = argparse.Namespace(root=mustc, pairs=["de"], splits=["tst-HE"], merge_pairs=True)
    (item,) = list(scan(args))
    assert item.meta["text"] == "He\u2028de\x0c."


def test_yaml_in_another_style_reads_the_same(mustc):
    """The per-line fast reader and the YAML parser (for any other style of the same list) agree."""
    args = argparse.Namespace(root=mustc, pairs=None, splits=["tst-COMMON", "train"], merge_pairs=True)
    flow = list(scan(args))
    for tgt in ("de", "fr"):
        path = mustc / f"en-{tgt}" / "data" / "train" / "txt" / "train.yaml"
        path.write_text(yaml.safe_dump(yaml.safe_load(path.read_text(encoding="utf-8")), default_flow_style=False),
                        encoding="utf-8")
    assert "\n  offset:" in path.read_text(encoding="utf-8")  # block style now
    assert list(scan(args)) == flow


def test_layout_errors(mustc, tmp_path, run_prepare):
    out = tmp_path / "out"
    run_prepare("mustc", "--root", tmp_path / "absent", "--out", out, "--workers", "1", expect=2)
    (tmp_path / "empty").mkdir()
    run_prepare("mustc", "--root", tmp_path / "empty", "--out", out, "--workers", "1", expect=2)
    run_prepare("mustc", "--root", mustc, "--out", out, "--workers", "1", "--pairs", "es", expect=2)
    with pytest.raises(FileNotFoundError, match="en-es/data"):
        list(scan(argparse.Namespace(root=mustc, pairs=["es"], splits=["dev"], merge_pairs=True)))
    (mustc / "en-fr" / "data" / "tst-HE" / "txt" / "tst-HE.fr").unlink()
    with pytest.raises(FileNotFoundError, match=r"tst-HE\.fr"):
        list(scan(argparse.Namespace(root=mustc, pairs=None, splits=["tst-HE"], merge_pairs=True)))
    (mustc / "en-fr" / "data" / "dev" / "txt" / "dev.yaml").write_text("duration: 1\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"dev\.yaml is not a MuST-C segment list"):
        list(scan(argparse.Namespace(root=mustc, pairs=None, splits=["dev"], merge_pairs=True)))


def test_two_workers_write_the_same_samples(mustc, tmp_path, run_prepare):
    one, two = tmp_path / "one", tmp_path / "two"
    run_prepare("mustc", "--root", mustc, "--out", one, "--workers", "1", "--utts-per-shard", "3", *TOLERATE)
    run_prepare("mustc", "--root", mustc, "--out", two, "--workers", "2", "--utts-per-shard", "3", *TOLERATE)
    a, b = read_shard_set(one), read_shard_set(two)
    assert set(a) == set(b) == set(MERGED)
    for key in a:
        assert a[key][0] == b[key][0]
        np.testing.assert_array_equal(a[key][1], b[key][1])
