"""data.corpora.librispeech: LibriSpeech, MLS and RuLS read from tiny copies of their published layouts."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.data.corpora.conftest import dominant_freq, read_shard_set, write_audio

SPEAKERS_TXT = """\
; Some pipe(|) separated metadata about all LibriVox readers, whose work was used
; in the corpus.
;
; reader_id: the ID of the reader in the LibriVox's database
; gender: 'F' for female, 'M' for male
;
;ID  |SEX| SUBSET           |MINUTES| NAME
60   | M | train-clean-100  | 20.18 | |CBW|Simon
84   | F | dev-clean        | 8.02  | Christie Nowak
1089 | M | test-clean       | 8.03  | Peter Eastman
"""

MLS_METAINFO = """\
 SPEAKER   |   GENDER   | PARTITION  |  MINUTES   |  BOOK ID   |             TITLE              |            CHAPTER
  1844     |     F      |   train    |   17.148   |    931     | Some | Ch. II: A | B
  3503     |     M      |    dev     |   9.347    |    2194    | Other Book | One
"""


def _report(out):
    return json.loads((out / "report.json").read_text(encoding="utf-8"))


def _freqs(samples):
    return {k: round(dominant_freq(audio, rate)) for k, (_, audio, rate) in samples.items()}


# --- LibriSpeech -------------------------------------------------------------------------------------------------


def _librispeech(root):
    """dev-clean (speaker 84, two utterances), test-clean (one good, one empty, one without flac), train-clean-100."""
    base = root / "LibriSpeech"
    base.mkdir(parents=True)
    (base / "SPEAKERS.TXT").write_text(SPEAKERS_TXT, encoding="utf-8")
    chapters = {
        ("dev-clean", "84", "121123"): [("0000", "GO DO YOU HEAR", 300, 1.0),
                                        ("0001", "BUT IN LESS THAN FIVE", 400, 1.5)],
        ("test-clean", "1089", "134686"): [("0000", "HE HOPED THERE WOULD BE STEW", 500, 2.0), ("0001", "", 600, 1.0),
                                           ("0002", "NO AUDIO HERE", None, 0)],
        ("train-clean-100", "60", "121082"): [("0000", "A TRAINING LINE", 700, 1.0)],
    }
    for (subset, speaker, chapter), utts in chapters.items():
        chapter_dir = base / subset / speaker / chapter
        chapter_dir.mkdir(parents=True)
        lines = []
        for seq, text, freq, seconds in utts:
            utt_id = f"{speaker}-{chapter}-{seq}"
            lines.append(f"{utt_id} {text}".rstrip())
            if freq is not None:
                write_audio(chapter_dir / f"{utt_id}.flac", seconds, freq=freq)
        (chapter_dir / f"{speaker}-{chapter}.trans.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return base


def test_librispeech_imports_every_present_subset(tmp_path, run_prepare):
    _librispeech(tmp_path / "corpus")
    out = tmp_path / "out"
    run_prepare("librispeech", "--root", tmp_path / "corpus", "--out", out, "--workers", "1",
                "--max-bad-fraction", "0.5")
    samples = read_shard_set(out)
    assert set(samples) == {"84-121123-0000", "84-121123-0001", "1089-134686-0000", "60-121082-0000"}
    meta = samples["84-121123-0001"][0]
    assert meta == {"text": "BUT IN LESS THAN FIVE", "lang": "en", "task": "asr", "split": "dev-clean",
                    "corpus": "librispeech", "speaker": "84", "chapter": "121123", "labels": {"gender": "female"},
                    "duration": 1.5}
    assert samples["60-121082-0000"][0]["labels"] == {"gender": "male"}  # the name column holds '|' itself
    assert samples["60-121082-0000"][0]["split"] == "train-clean-100"
    assert _freqs(samples) == {"84-121123-0000": 300, "84-121123-0001": 400, "1089-134686-0000": 500,
                               "60-121082-0000": 700}
    assert all(rate == 16_000 for _, _, rate in samples.values())
    report = _report(out)
    assert report["dropped"] == {"empty_transcript": 1, "missing_audio": 1}
    assert "1089-134686-0001" in report["dropped_examples"]["empty_transcript"]
    assert set(report["splits"]) == {"dev-clean", "test-clean", "train-clean-100"}


def test_librispeech_subsets_option_and_parallel_workers_agree(tmp_path, run_prepare):
    base = _librispeech(tmp_path / "corpus")
    runs = {}
    for workers in ("1", "2"):
        out = tmp_path / f"out{workers}"
        run_prepare("librispeech", "--root", base, "--out", out, "--workers", workers, "--utts-per-shard", "1",
                    "--subsets", "dev-clean,train-clean-100")
        runs[workers] = read_shard_set(out)
    assert set(runs["1"]) == {"84-121123-0000", "84-121123-0001", "60-121082-0000"}
    assert set(runs["2"]) == set(runs["1"])
    for key, (meta, audio, rate) in runs["1"].items():
        assert runs["2"][key][0] == meta and runs["2"][key][2] == rate
        np.testing.assert_array_equal(runs["2"][key][1], audio)
    assert _report(tmp_path / "out1")["dropped"] == {}


def test_librispeech_without_speakers_txt_has_no_labels(tmp_path, run_prepare):
    base = _librispeech(tmp_path / "corpus")
    (base / "SPEAKERS.TXT").unlink()
    run_prepare("librispeech", "--root", base, "--out", tmp_path / "out", "--workers", "1", "--subsets", "dev-clean")
    assert all("labels" not in meta for meta, _, _ in read_shard_set(tmp_path / "out").values())


def test_librispeech_layout_errors(tmp_path, run_prepare):
    base = _librispeech(tmp_path / "corpus")
    out = tmp_path / "out"
    run_prepare("librispeech", "--root", tmp_path / "nowhere", "--out", out, expect=2)
    run_prepare("librispeech", "--root", base / "dev-clean", "--out", out, expect=2)  # a subset, not the corpus
    run_prepare("librispeech", "--root", base, "--out", out, "--subsets", "train-other-500", expect=2)
    (base / "dev-other").mkdir()  # a subset directory without the speaker/chapter tree
    run_prepare("librispeech", "--root", base, "--out", out, "--subsets", "dev-other", expect=2)
    assert not out.exists()


# --- Multilingual LibriSpeech ------------------------------------------------------------------------------------


def _mls_language(lang_dir, utterances, suffix, metainfo=MLS_METAINFO):
    """utterances: {split: [(id, text, freq or None, seconds)]} written as transcripts.txt + audio tree."""
    lang_dir.mkdir(parents=True)
    (lang_dir / "metainfo.txt").write_text(metainfo, encoding="utf-8")
    for split, utts in utterances.items():
        (lang_dir / split).mkdir()
        lines, segments = [], []
        for utt_id, text, freq, seconds in utts:
            lines.append(f"{utt_id}\t{text}")
            segments.append(f"{utt_id}\thttp://www.archive.org/download/x/y_64kb.mp3\t10.0\t{10 + seconds:.2f}")
            if freq is not None:
                speaker, book, _ = utt_id.split("_")
                write_audio(lang_dir / split / "audio" / speaker / book / f"{utt_id}{suffix}", seconds, freq=freq)
        (lang_dir / split / "transcripts.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
        (lang_dir / split / "segments.txt").write_text("\n".join(segments) + "\n", encoding="utf-8")


def _mls(root):
    german = {"train": [("1844_931_000000", "und so weiter", 300, 1.0), ("1844_931_000001", "", 350, 1.0)],
              "dev": [("3503_2194_000012", "guten tag", 400, 1.5)],
              "test": [("3503_2194_000013", "das ende", 450, 1.0), ("badid", "kein format", None, 0)]}
    _mls_language(root / "mls_german", german, ".flac")
    # The Opus release of the same language: the FLAC one must win (other tones tell them apart).
    _mls_language(root / "mls_german_opus", {s: [(i, t, f and f + 1000, d) for i, t, f, d in u]
                                             for s, u in german.items()}, ".opus")
    polish = {"train": [("6892_10350_000003", "dzień dobry", 500, 1.2)], "dev": [("8758_8338_000001", "tak", 600, 1.0)],
              "test": []}
    _mls_language(root / "mls_polish_opus", polish, ".opus", metainfo=" SPEAKER | GENDER\n 6892 | M\n")
    (root / "mls_lm_german").mkdir()  # language-model archive: not a language directory
    return root


def test_mls_reads_every_language_under_a_parent(tmp_path, run_prepare):
    _mls(tmp_path / "corpus")
    out = tmp_path / "out"
    run_prepare("mls", "--root", tmp_path / "corpus", "--out", out, "--workers", "1", "--max-bad-fraction", "0.5")
    samples = read_shard_set(out)
    assert set(samples) == {"de_1844_931_000000", "de_3503_2194_000012", "de_3503_2194_000013",
                            "pl_6892_10350_000003", "pl_8758_8338_000001"}
    assert samples["de_3503_2194_000012"][0] == {
        "text": "guten tag", "lang": "de", "task": "asr", "split": "dev", "corpus": "mls", "book": "2194",
        "speaker": "3503", "labels": {"gender": "male"}, "duration": 1.5}
    assert samples["de_1844_931_000000"][0]["labels"] == {"gender": "female"}
    assert samples["pl_6892_10350_000003"][0]["text"] == "dzień dobry"
    assert samples["pl_6892_10350_000003"][0]["labels"] == {"gender": "male"}
    assert "labels" not in samples["pl_8758_8338_000001"][0]  # speaker absent from metainfo.txt
    assert _freqs(samples) == {"de_1844_931_000000": 300, "de_3503_2194_000012": 400, "de_3503_2194_000013": 450,
                               "pl_6892_10350_000003": 500, "pl_8758_8338_000001": 600}
    opus_meta, _, opus_rate = samples["pl_6892_10350_000003"]
    assert opus_rate == 16_000 and abs(opus_meta["duration"] - 1.2) < 0.03  # Opus decodes at 48 kHz, stored at 16
    report = _report(out)
    assert report["dropped"] == {"bad_transcript_line": 1, "empty_transcript": 1}
    assert set(report["splits"]) == {"train", "dev", "test"}


def test_mls_language_directory_splits_and_language_filter(tmp_path, run_prepare):
    root = _mls(tmp_path / "corpus")
    run_prepare("mls", "--root", root / "mls_german_opus", "--out", tmp_path / "a", "--workers", "1",
                "--splits", "dev")
    samples = read_shard_set(tmp_path / "a")
    assert set(samples) == {"de_3503_2194_000012"} and _freqs(samples) == {"de_3503_2194_000012": 1400}
    run_prepare("mls", "--root", root, "--out", tmp_path / "b", "--workers", "1", "--languages", "pl")
    assert set(read_shard_set(tmp_path / "b")) == {"pl_6892_10350_000003", "pl_8758_8338_000001"}
    renamed = root / "mls_polish_opus"
    renamed.rename(root / "polish")  # a renamed directory: the language must be given
    run_prepare("mls", "--root", root / "polish", "--out", tmp_path / "c", "--workers", "1", expect=2)
    run_prepare("mls", "--root", root / "polish", "--out", tmp_path / "c", "--workers", "1", "--languages", "polish")
    assert {m["lang"] for m, _, _ in read_shard_set(tmp_path / "c").values()} == {"pl"}


def test_mls_layout_errors(tmp_path, run_prepare):
    root = _mls(tmp_path / "corpus")
    out = tmp_path / "out"
    run_prepare("mls", "--root", tmp_path / "nowhere", "--out", out, expect=2)
    run_prepare("mls", "--root", root / "mls_lm_german", "--out", out, expect=2)
    run_prepare("mls", "--root", root, "--out", out, "--languages", "french", expect=2)
    run_prepare("mls", "--root", root, "--out", out, "--languages", "klingon", expect=2)
    run_prepare("mls", "--root", root, "--out", out, "--splits", "validation", expect=2)
    assert not out.exists()


# --- Russian LibriSpeech -----------------------------------------------------------------------------------------


def _ruls(root):
    """ruls_data/{train,dev,test}/manifest.json (NeMo JSON lines) with a bad line, an empty text, a missing wav."""
    base = root / "ruls_data"
    entries = {
        "train": [("audio/8086/7771/chekhov_0001.wav", "карл иваныч", 300, 1.0, -0.8),
                  ("audio/9014/8641/tolstoy_0002.wav", "мама сидела в гостиной", 400, 2.0, -1.5),
                  ("audio/9014/8641/tolstoy_0003.wav", "", 450, 1.0, -1.0)],
        "dev": [("audio/5397/2145/pushkin_0001.wav", "я помню чудное мгновенье", 500, 1.5, -0.2)],
        "test": [("audio/2826/2145/gogol_0001.wav", "нет файла", None, 1.0, -0.1)],
    }
    for split, rows in entries.items():
        lines = []
        for rel, text, freq, seconds, score in rows:
            if freq is not None:
                write_audio(base / split / rel, seconds, freq=freq)
            lines.append(json.dumps({"audio_filepath": rel, "text": text, "duration": seconds,
                                     "text_no_preprocessing": text.capitalize() + ".", "score": score},
                                    ensure_ascii=False))
        if split == "train":
            lines.append("{not json")
        (base / split / "manifest.json").parent.mkdir(parents=True, exist_ok=True)
        (base / split / "manifest.json").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return base


def test_ruls_reads_the_nemo_manifests(tmp_path, run_prepare):
    _ruls(tmp_path / "corpus")
    out = tmp_path / "out"
    run_prepare("ruls", "--root", tmp_path / "corpus", "--out", out, "--workers", "1", "--max-bad-fraction", "0.8")
    samples = read_shard_set(out)
    assert set(samples) == {"train_8086_7771_chekhov_0001", "train_9014_8641_tolstoy_0002",
                            "dev_5397_2145_pushkin_0001"}
    assert samples["train_9014_8641_tolstoy_0002"][0] == {
        "text": "мама сидела в гостиной", "lang": "ru", "task": "asr", "split": "train", "corpus": "ruls",
        "book": "8641", "text_no_preprocessing": "Мама сидела в гостиной.", "alignment_score": -1.5,
        "speaker": "9014", "duration": 2.0}
    assert _freqs(samples) == {"train_8086_7771_chekhov_0001": 300, "train_9014_8641_tolstoy_0002": 400,
                               "dev_5397_2145_pushkin_0001": 500}
    assert _report(out)["dropped"] == {"bad_manifest_line": 1, "empty_transcript": 1, "missing_audio": 1}


def test_ruls_split_option_root_and_errors(tmp_path, run_prepare):
    base = _ruls(tmp_path / "corpus")
    run_prepare("ruls", "--root", base, "--out", tmp_path / "dev", "--workers", "1", "--splits", "dev")
    assert set(read_shard_set(tmp_path / "dev")) == {"dev_5397_2145_pushkin_0001"}
    out = tmp_path / "out"
    run_prepare("ruls", "--root", tmp_path / "nowhere", "--out", out, expect=2)
    run_prepare("ruls", "--root", base / "train" / "audio", "--out", out, expect=2)
    (base / "test" / "manifest.json").unlink()
    run_prepare("ruls", "--root", base, "--out", out, expect=2)  # a default split lost its manifest
    assert not out.exists()


@pytest.mark.parametrize("name", ["librispeech", "mls", "ruls"])
def test_help_names_the_layout(name, capsys):
    from data.prepare import main

    with pytest.raises(SystemExit):
        main([name, "--help"])
    assert "openslr" in capsys.readouterr().out
