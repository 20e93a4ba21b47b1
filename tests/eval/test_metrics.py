"""Task metrics against independent references: jiwer and sacreBLEU called directly, hand-computed WER/CER, SQuAD
EM/F1 and ROUGE-L, the normalisers on tricky strings, the paper's normalized-average rows, and COMET's skip paths."""

from __future__ import annotations

import logging
import math

import jiwer
import pytest
import sacrebleu

from eval.metrics import (
    NORMALIZER_VERSION,
    NormalizedAverageConfig,
    accuracy,
    bleu,
    cer,
    chrf,
    comet_score,
    normalize_basic,
    normalize_english,
    normalize_squad,
    normalized_average,
    normalized_score,
    rouge_l,
    squad_em_f1,
    wer,
)

# ---------------------------------------------------------------------------------------------------------- normaliser


@pytest.mark.parametrize(("text", "expected"), [
    ("Hello, World!", "hello world"),
    ("THE   End.\n", "the end"),
    ("I [laughter] went <unk> home (inaudible) today", "i went home today"),
    ("It\u2019s John's o'clock", "it's john's o'clock"),  # curly apostrophe mapped; in-word apostrophes kept
    ("'quoted' words' end", "quoted words end"),  # quote marks and trailing apostrophes are not in-word
    ("We won't, they're, I'll, I've, I'm, he'd, don't", "we will not they are i will i have i am he would do not"),
    ("well-known state-of-the-art", "well known state of the art"),
    ("uh so um hmm yes", "so yes"),
    ("Café naïve", "cafe naive"),
    ("  ...  ", ""),
])
def test_english_normalizer(text, expected):
    assert normalize_english(text) == expected


def test_basic_normalizer_keeps_scripts_and_marks():
    assert normalize_basic("你好，世界！") == "你好 世界"
    assert normalize_basic("Ça VA? [noise] «oui»") == "ça va oui"
    assert normalize_basic("हिन्दी।") == "हिन्दी"  # the virama (a combining mark) survives, the danda does not


# ---------------------------------------------------------------------------------------------------------------- WER


def test_wer_hand_computed_and_versioned():
    out = wer(["the cat sat"], ["the cat sat down"])
    assert out.wer == pytest.approx(100 / 3) and out.wer_utt_mean == pytest.approx(100 / 3)
    assert out.normalizer == NORMALIZER_VERSION and out.n == 1 and out.n_skipped_empty == 0
    # normalisation makes casing and punctuation free
    assert wer(["The cat, sat."], ["the CAT sat"]).wer == 0.0


def test_wer_matches_jiwer_corpus():
    refs = ["the quick brown fox jumps over the lazy dog", "hello world", "a b c d e f"]
    hyps = ["the quick brown fox jumped over a lazy dog", "hello there world", "a c d x f g h"]
    expected = 100 * jiwer.wer(refs, hyps)
    assert wer(refs, hyps, normalizer="none").wer == pytest.approx(expected)


def test_utterance_mean_differs_from_corpus():
    # 1 error in a 1-word utterance (100 %) and 0 errors in a 9-word one: corpus 1/10 = 10 %, mean of (100, 0) = 50 %
    long = "one two three four five six seven eight nine"
    refs, hyps = ["yes", long], ["no", long]
    out = wer(refs, hyps)
    assert out.wer == pytest.approx(10.0) and out.wer_utt_mean == pytest.approx(50.0)


def test_empty_references_are_skipped_and_counted(caplog):
    with caplog.at_level(logging.WARNING, logger="eval.metrics"):
        out = wer(["", "[noise]", "a b"], ["something", "", "a c"])
    assert out.n == 1 and out.n_skipped_empty == 2 and out.wer == pytest.approx(50.0)
    assert "empty normalised reference" in caplog.text
    everything_empty = wer([""], ["x"])
    assert math.isnan(everything_empty.wer) and math.isnan(everything_empty.wer_utt_mean) and everything_empty.n == 0
    # an empty hypothesis is fine: every reference word is a deletion
    assert wer(["a b c"], [""]).wer == pytest.approx(100.0)


def test_input_checks():
    with pytest.raises(ValueError, match="references"):
        wer(["a"], ["a", "b"])
    with pytest.raises(ValueError, match="unknown normalizer"):
        wer(["a"], ["a"], normalizer="klingon")


# ---------------------------------------------------------------------------------------------------------------- CER


def test_cer_chinese():
    # one substituted character out of four; spaces and punctuation in the hypothesis cost nothing
    out = cer(["我爱北京"], ["我 爱 南京。"])
    assert out.wer == pytest.approx(25.0) and out.n == 1
    assert out.wer == pytest.approx(100 * jiwer.cer("我爱北京", "我爱南京"))
    # corpus CER weights by length: 1 error / (4 + 2) chars
    assert cer(["我爱北京", "你好"], ["我爱南京", "你好"]).wer == pytest.approx(100 / 6)


# -------------------------------------------------------------------------------------------------------- BLEU / chrF


def test_bleu_equals_sacrebleu_and_reports_signature():
    hyps = ["the cat sat on the mat", "there is a dog in the garden"]
    refs = ["the cat sat on a mat", "a dog is in the garden"]
    out = bleu(hyps, refs)
    assert out["bleu"] == pytest.approx(sacrebleu.corpus_bleu(hyps, [refs]).score)
    assert "nrefs:1" in out["signature"] and "tok:13a" in out["signature"]
    assert bleu(["完全一样的句子"], ["完全一样的句子"], tokenize="zh")["bleu"] == pytest.approx(100.0)
    assert "tok:zh" in bleu(["你好"], ["你好"], tokenize="zh")["signature"]


def test_chrf_equals_sacrebleu():
    hyps, refs = ["the cat sat on the mat"], ["the cat sat on a mat"]
    out = chrf(hyps, refs)
    assert out["chrf"] == pytest.approx(sacrebleu.corpus_chrf(hyps, [refs]).score)
    assert "nrefs:1" in out["signature"]
    assert chrf(["identical"], ["identical"])["chrf"] == pytest.approx(100.0)


# ------------------------------------------------------------------------------------------------------------ SQuAD


def test_squad_normalization():
    assert normalize_squad("The  Eiffel-Tower, in Paris!") == "eiffeltower in paris"
    assert normalize_squad("an apple a day") == "apple day"


def test_squad_em_f1_hand_computed():
    # q1: "the Eiffel tower" normalises to "eiffel tower" = gold 1 -> EM 1, F1 1
    # q2: pred "in paris france" vs gold "Paris": P = 1/3, R = 1 -> F1 0.5; vs "paris, france": P = 2/3, R = 1 -> 0.8
    # q3: pred "blue" vs "red" -> 0, 0
    out = squad_em_f1(["the Eiffel tower", "in Paris France", "blue"],
                      [["Eiffel Tower", "tower"], ["Paris", "Paris, France"], "red"])
    assert out["n"] == 3
    assert out["em"] == pytest.approx(100 / 3)
    assert out["f1"] == pytest.approx(100 * (1 + 0.8 + 0) / 3)


def test_squad_articles_and_punctuation_only():
    assert squad_em_f1(["A dog."], ["the dog"]) == {"em": 100.0, "f1": 100.0, "n": 1}
    assert squad_em_f1(["the"], ["a"])["f1"] == 0.0  # SQuAD v1.1: nothing left to overlap scores 0, not 1
    with pytest.raises(ValueError, match="gold answer"):
        squad_em_f1(["x"], [[]])


# ------------------------------------------------------------------------------------------------ ROUGE-L, accuracy


def test_rouge_l_hand_computed():
    # hyp "the cat was found under the bed" (7), ref "the cat was under the bed" (6): LCS 6 -> P 6/7, R 1
    f = 2 * (6 / 7) * 1 / (6 / 7 + 1)
    assert rouge_l(["The cat was found under the bed."], ["the cat was under the bed"]) == pytest.approx(100 * f)
    # LCS is order-aware: "a b c d" vs "d c b a" shares only 1 in order -> P = R = 1/4
    assert rouge_l(["a b c d"], ["d c b a"]) == pytest.approx(25.0)
    # mean over pairs, empty side scores 0
    assert rouge_l(["x y", ""], ["x y", "z"]) == pytest.approx(50.0)


def test_accuracy():
    assert accuracy([" Happy", "sad ", "ANGRY", "neutral"], ["happy", "Sad", "angry", "sad"]) == pytest.approx(75.0)
    with pytest.raises(ValueError):
        accuracy([], [])


# ----------------------------------------------------------------------------------------------- normalized average


@pytest.mark.parametrize(("scores", "paper"), [
    ({"wer": 13.06, "comet": 78.285, "f1": 73.9}, 67.388),  # contr-cos-all, 10 % of the finetuning data
    ({"wer": 23.78, "comet": 69.722, "f1": 41.859}, -57.401),  # no pretraining, 10 %
])
def test_normalized_average_reproduces_paper(scores, paper):
    out = normalized_average(scores)
    assert out["normalized_average"] == pytest.approx(paper, abs=0.05)
    assert out["normalized_average"] == pytest.approx(
        (out["normalized/wer"] + out["normalized/comet"] + out["normalized/f1"]) / 3)


def test_normalized_score_bounds_and_direction():
    cfg = NormalizedAverageConfig()
    assert normalized_score(cfg.wer_lower, cfg.wer_lower, cfg.wer_upper) == pytest.approx(0.0)
    assert normalized_score(cfg.wer_upper, cfg.wer_lower, cfg.wer_upper) == pytest.approx(100.0)
    # the paper's WER form 100 * (L - m) / (L - U) is the same number
    assert normalized_score(10.0, 18.38, 6.54) == pytest.approx(100 * (18.38 - 10.0) / (18.38 - 6.54))
    assert normalized_average({"wer": 6.54, "comet": 80.02, "f1": 77.10})["normalized_average"] == pytest.approx(100)


def test_normalized_average_checks():
    with pytest.raises(ValueError, match="comet"):
        normalized_average({"wer": 10.0, "comet": None, "f1": 60.0})
    with pytest.raises(ValueError, match="divide"):
        NormalizedAverageConfig(f1_lower=50.0, f1_upper=50.0)
    custom = NormalizedAverageConfig(wer_lower=20.0, wer_upper=10.0)
    assert normalized_average({"wer": 15.0, "comet": 73.92, "f1": 54.76}, custom)["normalized/wer"] == 50.0


def test_normalized_average_with_bleu_instead_of_comet():
    cfg = NormalizedAverageConfig(st_metric="bleu", wer_lower=40.0, wer_upper=0.0, bleu_lower=10.0, bleu_upper=30.0,
                                  f1_lower=20.0, f1_upper=60.0)
    assert cfg.bounds() == {"wer": (40.0, 0.0), "bleu": (10.0, 30.0), "f1": (20.0, 60.0)}
    out = normalized_average({"wer": 30.0, "bleu": 25.0, "f1": 70.0, "comet": 1.0}, cfg)  # COMET is ignored
    # WER 100 * (40 - 30) / 40 = 25; BLEU 100 * (25 - 10) / 20 = 75; F1 100 * (70 - 20) / 40 = 125
    assert out == pytest.approx({"normalized/wer": 25.0, "normalized/bleu": 75.0, "normalized/f1": 125.0,
                                 "normalized_average": 75.0})
    with pytest.raises(ValueError, match=r"missing \['bleu'\]"):
        normalized_average({"wer": 30.0, "comet": 78.0, "f1": 70.0}, cfg)
    assert "comet" in NormalizedAverageConfig().bounds() and "bleu" not in NormalizedAverageConfig().bounds()


@pytest.mark.parametrize("kw,match", [
    ({"st_metric": "chrf"}, "st_metric"),
    ({"st_metric": "bleu"}, "bleu_lower and bleu_upper"),
    ({"st_metric": "bleu", "bleu_lower": 10.0}, "bleu_lower and bleu_upper"),
    ({"st_metric": "bleu", "bleu_lower": 10.0, "bleu_upper": 10.0}, "bleu: .*divide"),
])
def test_bleu_bounds_are_checked(kw, match):
    with pytest.raises(ValueError, match=match):
        NormalizedAverageConfig(**kw)


# -------------------------------------------------------------------------------------------------------------- COMET


def test_comet_skips_without_checkpoint(caplog):
    with caplog.at_level(logging.WARNING, logger="eval.metrics"):
        assert comet_score(["src"], ["hyp"], ["ref"], checkpoint=None) is None
    assert "pip install unbabel-comet" in caplog.text and "model.ckpt" in caplog.text


def test_comet_missing_checkpoint_raises(tmp_path):
    with pytest.raises(FileNotFoundError, match="unbabel-comet"):
        comet_score(["src"], ["hyp"], ["ref"], checkpoint=str(tmp_path / "missing" / "model.ckpt"))


def test_comet_skips_when_package_missing(tmp_path, monkeypatch, caplog):
    ckpt = tmp_path / "model.ckpt"
    ckpt.write_bytes(b"not a real checkpoint")
    monkeypatch.setitem(__import__("sys").modules, "comet", None)  # makes `import comet` raise ImportError
    with caplog.at_level(logging.WARNING, logger="eval.metrics"):
        assert comet_score(["src"], ["hyp"], ["ref"], checkpoint=str(ckpt)) is None
    assert "not installed" in caplog.text


def test_comet_length_check():
    with pytest.raises(ValueError, match="sources"):
        comet_score(["a", "b"], ["a"], ["a"], checkpoint=None)
