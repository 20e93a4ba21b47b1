"""score_rows (eval/score.py) against independent references: jiwer and sacreBLEU called directly on the same strings,
SQuAD EM/F1 over every gold answer, COMET's skip path and a stubbed COMET, the paper's normalized average rebuilt from
rows, the CER option and config checks."""

from __future__ import annotations

import math

import jiwer
import pytest
import sacrebleu
from sacrebleu.metrics import BLEU, CHRF

import eval.score
from eval.metrics import (
    BASIC_NORMALIZER_VERSION,
    NORMALIZER_VERSION,
    NormalizedAverageConfig,
    normalize_basic,
    normalize_english,
    normalized_average,
    squad_em_f1,
)
from eval.score import ScoringConfig, score_rows


def _row(task: str, hypothesis: str, reference: str, target: str | None = None, transcript: str = "",
         meta: dict | None = None, key: str = "k") -> dict:
    return {"key": key, "source": "test", "task": task, "target": target, "hypothesis": hypothesis,
            "reference": reference, "transcript": transcript or reference, "meta": {} if meta is None else meta}


ASR_REFS = ["The cat sat on the mat.", "I don't know what you mean!", "Hello, World", "[noise]", "we're here"]
ASR_HYPS = ["the cat sat on a mat", "i do not know what you mean", "hello there world", "something", "we are"]
ST = {"de": [("Wie lange dauert die Fahrt?", "Wie lange dauert die Reise?", "How long does the journey take?"),
             ("Der Hund schläft im Garten.", "Der Hund schläft im Garten.", "The dog sleeps in the garden.")],
      "fr": [("Combien de temps dure le voyage ?", "Le voyage dure combien ?", "How long does the journey take?"),
             ("Le chien dort dans le jardin.", "Un chat mange du pain.", "The dog sleeps in the garden.")]}


def _st_rows() -> list[dict]:
    """ST rows of both targets, interleaved (reference, hypothesis, transcript)."""
    rows = []
    for i in range(2):
        for t in ("fr", "de"):
            ref, hyp, src = ST[t][i]
            rows.append(_row("st", hyp, ref, target=t, transcript=src, key=f"{t}{i}"))
    return rows


# ---------------------------------------------------------------------------------------------------------------- ASR


def test_asr_wer_and_utterance_mean_equal_jiwer_after_the_same_normaliser():
    rows = [_row("asr", h, r, key=str(i)) for i, (h, r) in enumerate(zip(ASR_HYPS, ASR_REFS))]
    results = {}
    for name, fn, version in (("english", normalize_english, NORMALIZER_VERSION),
                              ("basic", normalize_basic, BASIC_NORMALIZER_VERSION)):
        metrics, signatures, notes = score_rows(rows, ScoringConfig(wer_normalizer=name))
        pairs = [(fn(r), fn(h)) for r, h in zip(ASR_REFS, ASR_HYPS) if fn(r)]
        refs, hyps = [r for r, _ in pairs], [h for _, h in pairs]
        assert metrics["asr/wer"] == pytest.approx(100 * jiwer.wer(refs, hyps))
        assert metrics["asr/wer_utt_mean"] == pytest.approx(100 * sum(jiwer.wer(r, h) for r, h in pairs) / len(pairs))
        assert metrics["asr/n"] == len(pairs) == 4 and signatures["wer"] == version
        assert "ASR: 1 samples with an empty normalised reference not scored" in notes
        results[name] = metrics["asr/wer"]
    assert results["english"] < results["basic"]  # "don't" = "do not" only for the English normaliser


def test_cer_option_scores_characters_and_labels_the_signature():
    rows = [_row("asr", "我 爱 南京。", "我爱北京"), _row("asr", "你好", "你好!")]
    metrics, signatures, _ = score_rows(rows, ScoringConfig(asr_metric="cer", wer_normalizer="basic"))
    assert metrics["asr/wer"] == pytest.approx(100 * jiwer.cer(["我爱北京", "你好"], ["我爱南京", "你好"]))
    assert metrics["asr/wer"] == pytest.approx(100 / 6) and metrics["asr/wer_utt_mean"] == pytest.approx(12.5)
    assert signatures["wer"] == f"cer:{BASIC_NORMALIZER_VERSION}+chars"
    _, english, _ = score_rows(rows, ScoringConfig(asr_metric="cer", wer_normalizer="english"))
    assert english["wer"] == f"cer:{NORMALIZER_VERSION}+chars"
    _, default, _ = score_rows(rows, ScoringConfig(asr_metric="cer"))  # CER defaults to the basic normaliser
    assert default["wer"] == f"cer:{BASIC_NORMALIZER_VERSION}+chars"


def test_cer_with_default_settings_keeps_japanese_voicing_marks():
    metrics, _, _ = score_rows([_row("asr", "かっこう", "がっこう")], ScoringConfig(asr_metric="cer"))
    assert metrics["asr/wer"] == pytest.approx(25.0)


# ----------------------------------------------------------------------------------------------------------------- ST


@pytest.mark.parametrize("tokenize", ["13a", "char"])
def test_st_scores_per_target_equal_sacrebleu_and_average_over_targets(tokenize):
    metrics, signatures, notes = score_rows(_st_rows(), ScoringConfig(bleu_tokenize=tokenize))
    for t, triples in ST.items():
        refs, hyps = [r for r, _, _ in triples], [h for _, h, _ in triples]
        assert metrics[f"st/{t}/bleu"] == pytest.approx(sacrebleu.corpus_bleu(hyps, [refs], tokenize=tokenize).score)
        assert metrics[f"st/{t}/chrf"] == pytest.approx(sacrebleu.corpus_chrf(hyps, [refs]).score)
        assert metrics[f"st/{t}/n"] == 2 and metrics[f"st/{t}/comet"] is None
    assert metrics["st/de/bleu"] != metrics["st/fr/bleu"]
    for m in ("bleu", "chrf"):
        assert metrics[f"st/{m}"] == pytest.approx((metrics[f"st/de/{m}"] + metrics[f"st/fr/{m}"]) / 2)
    assert metrics["st/n"] == 4
    refs, hyps = [r for r, _, _ in ST["de"]], [h for _, h, _ in ST["de"]]
    for key, metric in (("bleu", BLEU(tokenize=tokenize)), ("chrf", CHRF())):
        metric.corpus_score(hyps, [refs])
        assert signatures[key] == str(metric.get_signature())
    assert f"tok:{tokenize}" in signatures["bleu"] and "nrefs:1" in signatures["chrf"]
    # no checkpoint: COMET is None everywhere, and a note says why
    assert metrics["st/comet"] is None and signatures["comet"] is None
    assert any("COMET skipped" in n and "comet_checkpoint" in n for n in notes)


def test_comet_gets_each_targets_transcripts_and_settings(monkeypatch):
    calls = []

    def fake_comet(sources, hypotheses, references, checkpoint, batch_size, gpus):
        calls.append((list(sources), list(hypotheses), list(references), checkpoint, batch_size, gpus))
        return 80.0 if references[0].startswith("Wie") else 70.0

    monkeypatch.setattr(eval.score, "comet_score", fake_comet)
    cfg = ScoringConfig(comet_checkpoint="/models/comet/model.ckpt", comet_batch_size=4, comet_gpus=1)
    metrics, signatures, notes = score_rows(_st_rows(), cfg)
    expected = [([s for _, _, s in ST[t]], [h for _, h, _ in ST[t]], [r for r, _, _ in ST[t]],
                 "/models/comet/model.ckpt", 4, 1) for t in ("de", "fr")]
    assert calls == expected  # one call per target, sorted, with the spoken transcripts as COMET sources
    assert (metrics["st/de/comet"], metrics["st/fr/comet"], metrics["st/comet"]) == (80.0, 70.0, 75.0)
    assert signatures["comet"] == "/models/comet/model.ckpt" and not any("COMET" in n for n in notes)


# ---------------------------------------------------------------------------------------------------------------- SQA


def test_sqa_scores_against_every_gold_answer():
    rows = [_row("sqa", "Paris, France", "Paris", meta={"answers": ["Paris", "Paris, France"]}),
            _row("sqa", "in 1889", "1889", meta={"answers": [{"text": "1889"}, {"text": "in 1889"}]}),
            _row("sqa", "blue", "red"),  # no gold list: the reference
            _row("sqa", "the dog", "dog", meta={"answers": []})]  # empty gold list: the reference
    metrics, _, _ = score_rows(rows, ScoringConfig())
    golds = [["Paris", "Paris, France"], ["1889", "in 1889"], ["red"], ["dog"]]
    expected = squad_em_f1([r["hypothesis"] for r in rows], golds)
    assert {k: metrics[f"sqa/{k}"] for k in ("em", "f1", "n")} == expected
    assert expected["em"] == pytest.approx(75.0)
    # scoring the reference alone would miss the two multi-answer matches
    assert squad_em_f1([r["hypothesis"] for r in rows], [r["reference"] for r in rows])["em"] == pytest.approx(25.0)


# ------------------------------------------------------------------------------------------------- normalized average


def _paper_rows() -> list[dict]:
    """Rows whose corpus WER is exactly 13.06 % (653 edits / 5000 words) and SQA F1 73.9 %, as the paper's
    contr-cos-all 10 % row, plus one ST row."""
    words = [f"w{i}" for i in range(100)]
    subs = [100] * 6 + [53] + [0] * 43
    asr = [_row("asr", " ".join(["x"] * s + words[s:]), " ".join(words), key=f"a{i}") for i, s in enumerate(subs)]
    gold = " ".join(f"t{i}" for i in range(11))
    partial = " ".join(f"t{i}" for i in range(9))  # precision 1, recall 9/11: F1 0.9
    sqa = ([_row("sqa", "Singapore", "Singapore", key=f"e{i}") for i in range(73)] + [_row("sqa", partial, gold)]
           + [_row("sqa", "nothing", "Singapore", key=f"n{i}") for i in range(26)])
    return asr + sqa + [_row("st", "Wie lange dauert die Reise?", "Wie lange dauert die Fahrt?", target="de")]


def test_normalized_average_is_none_without_comet_and_names_what_is_missing():
    metrics, _, notes = score_rows(_paper_rows(), ScoringConfig())
    assert metrics["normalized_average"] is None and "normalized/wer" not in metrics
    assert "normalized average not computed: no COMET score" in notes
    asr_only = [r for r in _paper_rows() if r["task"] == "asr"]
    metrics, _, notes = score_rows(asr_only, ScoringConfig())
    assert metrics["normalized_average"] is None
    assert "normalized average not computed: no COMET, F1 score" in notes


def test_normalized_average_reproduces_the_paper_with_comet(monkeypatch):
    monkeypatch.setattr(eval.score, "comet_score", lambda *args, **kw: 78.285)
    metrics, _, notes = score_rows(_paper_rows(), ScoringConfig())
    assert metrics["asr/wer"] == pytest.approx(13.06) and metrics["sqa/f1"] == pytest.approx(73.9)
    assert metrics["st/comet"] == 78.285 and not any("normalized" in n for n in notes)
    expected = normalized_average({"wer": 13.06, "comet": 78.285, "f1": 73.9})
    for k, v in expected.items():
        assert metrics[k] == pytest.approx(v)
    assert metrics["normalized_average"] == pytest.approx(67.388, abs=0.05)
    custom = NormalizedAverageConfig(wer_lower=20.0, wer_upper=10.0)
    metrics, _, _ = score_rows(_paper_rows(), ScoringConfig(normalized=custom))
    assert metrics["normalized_average"] == pytest.approx(
        normalized_average({"wer": 13.06, "comet": 78.285, "f1": 73.9}, custom)["normalized_average"])
    assert metrics["normalized/wer"] == pytest.approx(69.4)


def test_normalized_average_over_bleu_when_configured():
    # _paper_rows: WER 13.06, F1 73.9, and one ST row "Wie lange dauert die Reise ?" for "... Fahrt ?" (13a splits
    # off the "?"): n-gram precisions 5/6, 3/5, 2/4, 1/3, same length, so BLEU = 100 * (1/12)^(1/4) = 53.73
    rows = _paper_rows()
    bleu = 100 * (1 / 12) ** 0.25
    cfg = NormalizedAverageConfig(st_metric="bleu", wer_lower=20.0, wer_upper=0.0, bleu_lower=0.0, bleu_upper=2 * bleu,
                                  f1_lower=50.0, f1_upper=100.0)
    metrics, _, notes = score_rows(rows, ScoringConfig(normalized=cfg))
    assert metrics["st/bleu"] == pytest.approx(bleu) and metrics["st/comet"] is None
    # WER 100 * (20 - 13.06) / 20 = 34.7; BLEU 50; F1 100 * (73.9 - 50) / 50 = 47.8
    assert metrics["normalized/wer"] == pytest.approx(34.7) and metrics["normalized/bleu"] == pytest.approx(50.0)
    assert metrics["normalized/f1"] == pytest.approx(47.8) and "normalized/comet" not in metrics
    assert metrics["normalized_average"] == pytest.approx((34.7 + 50.0 + 47.8) / 3)
    assert any("BLEU replaces the paper's COMET" in n and "WER 20 -> 0" in n for n in notes)
    assert not any("not computed" in n for n in notes)
    no_st = [r for r in rows if r["task"] != "st"]
    metrics, _, notes = score_rows(no_st, ScoringConfig(normalized=cfg))
    assert metrics["normalized_average"] is None
    assert "normalized average not computed: no BLEU score" in notes


def test_normalized_average_is_none_when_no_asr_pair_could_be_scored(monkeypatch):
    monkeypatch.setattr(eval.score, "comet_score", lambda *args, **kw: 78.285)
    rows = [r for r in _paper_rows() if r["task"] != "asr"] + [_row("asr", "something", "[noise]")]
    metrics, _, notes = score_rows(rows, ScoringConfig())
    assert math.isnan(metrics["asr/wer"])
    assert metrics["normalized_average"] is None
    assert any("normalized average not computed" in n for n in notes)


# ------------------------------------------------------------------------------------------------------------- config


@pytest.mark.parametrize("kw,match", [({"asr_metric": "ter"}, "asr_metric"),
                                      ({"wer_normalizer": "klingon"}, "wer_normalizer")])
def test_invalid_config_values_raise(kw, match):
    with pytest.raises(ValueError, match=match):
        ScoringConfig(**kw)


@pytest.mark.parametrize("kw", [{"bleu_tokenize": "klingon"}, {"comet_batch_size": 0}, {"comet_gpus": -1}])
def test_invalid_bleu_and_comet_settings_raise(kw):
    with pytest.raises(ValueError):
        ScoringConfig(**kw)


def test_paralinguistic_accuracy_per_attribute_and_mean():
    rows = [_row("para", "Female.", "female", target="gender", key="a"),
            _row("para", "male", "female", target="gender", key="b"),
            _row("para", " FAST", "fast", target="speaking_rate", key="a"),
            _row("asr", "hello", "hello")]
    metrics, _, _ = score_rows(rows, ScoringConfig())
    assert metrics["para/gender/accuracy"] == 50.0 and metrics["para/speaking_rate/accuracy"] == 100.0
    assert metrics["para/accuracy"] == 75.0 and metrics["para/n"] == 3 and metrics["para/gender/n"] == 2
    assert metrics["asr/wer"] == 0.0
