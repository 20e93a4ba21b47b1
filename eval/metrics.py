"""Task metrics for stage-2 evaluation: WER/CER, BLEU/chrF, COMET, SQuAD EM/F1, ROUGE-L, accuracy, normalized average.

Pure functions over lists of strings; every score is in percent (the paper's tables are). ASR text goes through a
versioned normaliser before scoring (``NORMALIZER_VERSION`` is returned with every WER so that numbers computed with
different normalisers are never compared silently). Conventions, documented once here:

* WER / CER are corpus-level: total edits / total reference units (jiwer's definition). The paper's public code reports
  the *mean of per-utterance* WERs instead; it is returned too, under its own key, because it weights short utterances
  much more (one wrong word in a 2-word reference is 50 %).
* A pair whose reference is empty *after normalisation* has no defined WER; it is skipped and counted in
  ``n_skipped_empty``. If every pair is skipped the scores are ``nan`` (never a division by zero).
* COMET runs only from a local checkpoint and never downloads; without one it returns ``None`` and logs how to
  enable it.
"""

from __future__ import annotations

import logging
import math
import re
import string
import unicodedata
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import jiwer
from sacrebleu.metrics import BLEU, CHRF

log = logging.getLogger(__name__)

NORMALIZER_VERSION = "en-whisperlike-v1"
"""Version of :func:`normalize_english`; bump it whenever its output changes for any input."""
BASIC_NORMALIZER_VERSION = "basic-v1"
"""Version of :func:`normalize_basic`."""

# --------------------------------------------------------------------------------------------------- text normalisers

_BRACKETS = re.compile(r"[<\[][^>\]]*[>\]]|\([^)]*\)")  # <unk>, [laughter], (inaudible): annotations, not speech
_FILLERS = re.compile(r"\b(?:hmm+|mm+|mhm|uh+|um+)\b")
# Whisper's EnglishTextNormalizer contraction rules (subset). "'s" is left alone: it is possessive as often as "is".
_CONTRACTIONS = [(re.compile(p), r) for p, r in [
    (r"\bwon't\b", "will not"), (r"\bcan't\b", "can not"), (r"\blet's\b", "let us"), (r"\bain't\b", "aint"),
    (r"\by'all\b", "you all"), (r"\bwanna\b", "want to"), (r"\bgotta\b", "got to"), (r"\bgonna\b", "going to"),
    (r"\bi'ma\b", "i am going to"), (r"\bimma\b", "i am going to"), (r"n't\b", " not"), (r"'re\b", " are"),
    (r"'ll\b", " will"), (r"'ve\b", " have"), (r"'m\b", " am"), (r"'d\b", " would"),
]]
_QUOTES = str.maketrans({"\u2018": "'", "\u2019": "'", "\u02bc": "'", "`": "'"})


def _strip_symbols(text: str, keep: str = "") -> str:
    """Replace every Unicode punctuation (P*) and symbol (S*) character not in ``keep`` by a space."""
    return "".join(" " if c not in keep and unicodedata.category(c)[0] in "PS" else c for c in text)


def normalize_english(text: str) -> str:
    """Whisper-style English normaliser (version ``NORMALIZER_VERSION``).

    Steps: lowercase; drop ``[...]``, ``<...>`` and ``(...)`` spans and the fillers hmm/mm/mhm/uh/um; map curly
    apostrophes to ``'``; expand common contractions (won't -> will not, n't -> not, 're -> are, 'll, 've, 'm, 'd);
    strip diacritics; replace punctuation and symbols by spaces except apostrophes inside a word (``o'clock``,
    possessive ``john's``); collapse whitespace. Unlike Whisper's normaliser it does not spell out or standardise
    numbers and has no British->American spelling map: both would need large tables and neither matters for
    comparing systems on the same references.
    """
    s = text.lower().translate(_QUOTES)
    s = _BRACKETS.sub(" ", s)
    s = _FILLERS.sub(" ", s)
    for pattern, repl in _CONTRACTIONS:
        s = pattern.sub(repl, s)
    s = "".join(c for c in unicodedata.normalize("NFKD", s) if unicodedata.category(c) != "Mn")
    s = _strip_symbols(s, keep="'")
    s = re.sub(r"(?<!\w)'|'(?!\w)", " ", s)  # an apostrophe survives only between two word characters
    return " ".join(s.split())


def normalize_basic(text: str) -> str:
    """Language-agnostic normaliser (version ``BASIC_NORMALIZER_VERSION``): NFKC, lowercase, drop bracketed spans,
    replace Unicode punctuation and symbols by spaces, collapse whitespace. Combining marks are kept (they carry
    meaning in Devanagari, Thai, ...)."""
    s = _BRACKETS.sub(" ", unicodedata.normalize("NFKC", text).lower())
    return " ".join(_strip_symbols(s).split())


_NORMALIZERS = {
    "english": (normalize_english, NORMALIZER_VERSION),
    "basic": (normalize_basic, BASIC_NORMALIZER_VERSION),
    "none": (lambda s: " ".join(s.split()), "none"),
}


def _get_normalizer(name: str):
    if name not in _NORMALIZERS:
        raise ValueError(f"unknown normalizer {name!r}, expected one of {sorted(_NORMALIZERS)}")
    return _NORMALIZERS[name]


# ------------------------------------------------------------------------------------------------------------ WER/CER


@dataclass
class ErrorRate:
    """Result of :func:`wer` / :func:`cer`, all rates in percent."""

    wer: float
    """Corpus error rate: total edits / total reference units (words for WER, characters for CER)."""
    wer_utt_mean: float
    """Mean of per-utterance error rates (what the paper's public code reports); not comparable to ``wer``."""
    normalizer: str
    """Version string of the text normaliser applied to both sides."""
    n: int
    """Number of scored pairs."""
    n_skipped_empty: int
    """Pairs skipped because the normalised reference was empty."""

    def as_dict(self) -> dict[str, float | int | str]:
        return dict(self.__dict__)


def _error_rate(references: Sequence[str], hypotheses: Sequence[str], normalizer: str, chars: bool) -> ErrorRate:
    if len(references) != len(hypotheses):
        raise ValueError(f"got {len(references)} references and {len(hypotheses)} hypotheses")
    fn, version = _get_normalizer(normalizer)
    edits = units = skipped = 0
    per_utt: list[float] = []
    for ref, hyp in zip(references, hypotheses):
        r, h = fn(ref), fn(hyp)
        if chars:  # CER ignores spaces: Chinese/Japanese are not space-delimited, and the models insert them at random
            r, h = " ".join(r.replace(" ", "")), " ".join(h.replace(" ", ""))
        if not r:
            skipped += 1
            continue
        out = jiwer.process_words(r, h)
        e = out.substitutions + out.deletions + out.insertions
        n_ref = out.substitutions + out.deletions + out.hits
        edits, units = edits + e, units + n_ref
        per_utt.append(e / n_ref)
    if skipped:
        log.warning("%d of %d pairs have an empty normalised reference; skipped", skipped, len(references))
    corpus = 100.0 * edits / units if units else math.nan
    mean = 100.0 * sum(per_utt) / len(per_utt) if per_utt else math.nan
    return ErrorRate(corpus, mean, f"{version}+chars" if chars else version, len(per_utt), skipped)


def wer(references: Sequence[str], hypotheses: Sequence[str], normalizer: str = "english") -> ErrorRate:
    """Word error rate of ``hypotheses`` against ``references`` after normalising both.

    Args:
        references: gold transcripts.
        hypotheses: system outputs, same order.
        normalizer: ``"english"`` (:func:`normalize_english`), ``"basic"`` (:func:`normalize_basic`) or ``"none"``
            (whitespace only).

    Returns:
        :class:`ErrorRate` with corpus WER and mean per-utterance WER in percent.
    """
    return _error_rate(references, hypotheses, normalizer, chars=False)


def cer(references: Sequence[str], hypotheses: Sequence[str], normalizer: str = "basic") -> ErrorRate:
    """Character error rate (Chinese, Japanese): normalise, remove all whitespace, align characters.

    Same conventions and return type as :func:`wer` (the rates are character rates despite the field names).
    """
    return _error_rate(references, hypotheses, normalizer, chars=True)


# ------------------------------------------------------------------------------------------------------ BLEU / chrF


def bleu(hypotheses: Sequence[str], references: Sequence[str], tokenize: str = "13a") -> dict[str, float | str]:
    """Corpus BLEU with sacreBLEU (one reference per segment).

    Args:
        hypotheses: system translations.
        references: one reference per hypothesis, same order.
        tokenize: sacreBLEU tokeniser: ``"13a"`` (default, WMT standard), ``"zh"`` for Chinese, ``"ja-mecab"`` for
            Japanese (needs ``mecab-python3`` and ``ipadic``), ``"intl"``, ``"char"``, ``"none"``.

    Returns:
        ``{"bleu": score, "signature": "nrefs:1|case:mixed|eff:no|tok:13a|..."}``; report the signature with the score.
    """
    if len(references) != len(hypotheses):
        raise ValueError(f"got {len(references)} references and {len(hypotheses)} hypotheses")
    metric = BLEU(tokenize=tokenize)
    score = metric.corpus_score(list(hypotheses), [list(references)])
    return {"bleu": score.score, "signature": str(metric.get_signature())}


def chrf(hypotheses: Sequence[str], references: Sequence[str], word_order: int = 0) -> dict[str, float | str]:
    """Corpus chrF (``word_order=0``) or chrF++ (``word_order=2``) with sacreBLEU; same return shape as :func:`bleu`."""
    if len(references) != len(hypotheses):
        raise ValueError(f"got {len(references)} references and {len(hypotheses)} hypotheses")
    metric = CHRF(word_order=word_order)
    score = metric.corpus_score(list(hypotheses), [list(references)])
    return {"chrf": score.score, "signature": str(metric.get_signature())}


# ------------------------------------------------------------------------------------------------------------- COMET

_COMET_HELP = ("to enable COMET: `pip install unbabel-comet`, download Unbabel/wmt22-comet-da once on a machine with "
               "network access, and pass the local path of its checkpoints/model.ckpt (the encoder's tokenizer, "
               "xlm-roberta-large, must be in the local Hugging Face cache as well)")


def comet_score(sources: Sequence[str], hypotheses: Sequence[str], references: Sequence[str],
                checkpoint: str | None, batch_size: int = 16, gpus: int = 0) -> float | None:
    """System-level COMET (x 100, the paper's scale: 0.78285 is reported as 78.285) from a local checkpoint.

    Never downloads. Skips (returns ``None`` and logs how to enable it) when ``checkpoint`` is ``None`` or the
    ``unbabel-comet`` package is not installed: COMET is optional in this project. A configured path that does not
    exist is a misconfiguration and raises instead of silently producing a table without COMET.

    Args:
        sources: source-language transcripts.
        hypotheses: system translations.
        references: reference translations.
        checkpoint: path to e.g. ``.../wmt22-comet-da/checkpoints/model.ckpt``, or ``None`` to skip.
        batch_size: COMET prediction batch size.
        gpus: number of GPUs for COMET (0 = CPU).

    Raises:
        FileNotFoundError: if ``checkpoint`` is given but does not exist.
        ValueError: if the three lists differ in length.
    """
    if not len(sources) == len(hypotheses) == len(references):
        raise ValueError(f"got {len(sources)} sources, {len(hypotheses)} hypotheses and {len(references)} references")
    if checkpoint is None:
        log.warning("COMET skipped: no checkpoint configured; %s", _COMET_HELP)
        return None
    if not Path(checkpoint).is_file():
        raise FileNotFoundError(f"COMET checkpoint {checkpoint!r} does not exist; {_COMET_HELP}")
    try:
        from comet import load_from_checkpoint  # optional dependency, imported only when asked for
    except ImportError:
        log.warning("COMET skipped: package unbabel-comet is not installed; %s", _COMET_HELP)
        return None
    try:  # comet >= 2.2 can be told to stay offline; older versions only read the local cache anyway
        model = load_from_checkpoint(str(checkpoint), local_files_only=True)
    except TypeError:
        model = load_from_checkpoint(str(checkpoint))
    data = [{"src": s, "mt": h, "ref": r} for s, h, r in zip(sources, hypotheses, references)]
    out = model.predict(data, batch_size=batch_size, gpus=gpus, progress_bar=False)
    return 100.0 * float(out.system_score)


# ------------------------------------------------------------------------------------------ SQuAD, ROUGE-L, accuracy


_SQUAD_PUNCT = frozenset(string.punctuation)


def normalize_squad(text: str) -> str:
    """Official SQuAD v1.1 answer normalisation: lowercase, drop ASCII punctuation, drop articles, fix whitespace."""
    s = "".join(c for c in text.lower() if c not in _SQUAD_PUNCT)
    s = re.sub(r"\b(a|an|the)\b", " ", s)
    return " ".join(s.split())


def _squad_f1(prediction: str, gold: str) -> float:
    pred, ref = normalize_squad(prediction).split(), normalize_squad(gold).split()
    common = sum((Counter(pred) & Counter(ref)).values())
    if common == 0:  # v1.1 semantics: also 0 when both normalise to nothing
        return 0.0
    precision, recall = common / len(pred), common / len(ref)
    return 2 * precision * recall / (precision + recall)


def squad_em_f1(predictions: Sequence[str], golds: Sequence[str | Sequence[str]]) -> dict[str, float]:
    """SQuAD v1.1 exact match and token F1, max over each question's gold answers, averaged, in percent.

    Args:
        predictions: one answer per question.
        golds: per question, one gold answer or a list of them.

    Returns:
        ``{"em": ..., "f1": ..., "n": ...}``.
    """
    if len(predictions) != len(golds):
        raise ValueError(f"got {len(predictions)} predictions and {len(golds)} gold entries")
    if not predictions:
        raise ValueError("squad_em_f1 needs at least one question")
    em = f1 = 0.0
    for pred, gold in zip(predictions, golds):
        answers = [gold] if isinstance(gold, str) else list(gold)
        if not answers:
            raise ValueError("every question needs at least one gold answer")
        em += max(float(normalize_squad(pred) == normalize_squad(a)) for a in answers)
        f1 += max(_squad_f1(pred, a) for a in answers)
    n = len(predictions)
    return {"em": 100.0 * em / n, "f1": 100.0 * f1 / n, "n": n}


def _lcs_length(a: Sequence[str], b: Sequence[str]) -> int:
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0]
        for j, y in enumerate(b):
            cur.append(prev[j] + 1 if x == y else max(prev[j + 1], cur[j]))
        prev = cur
    return prev[-1]


def rouge_l(hypotheses: Sequence[str], references: Sequence[str], normalizer: str = "basic") -> float:
    """Mean sentence-level ROUGE-L F1 (LCS over whitespace tokens of normalised text), in percent.

    A pair where either side normalises to nothing scores 0 (as in Google's ``rouge-score``).
    """
    if len(references) != len(hypotheses):
        raise ValueError(f"got {len(references)} references and {len(hypotheses)} hypotheses")
    if not references:
        raise ValueError("rouge_l needs at least one pair")
    fn, _ = _get_normalizer(normalizer)
    total = 0.0
    for hyp, ref in zip(hypotheses, references):
        h, r = fn(hyp).split(), fn(ref).split()
        lcs = _lcs_length(h, r) if h and r else 0
        if lcs:
            p, rec = lcs / len(h), lcs / len(r)
            total += 2 * p * rec / (p + rec)
    return 100.0 * total / len(references)


def accuracy(predictions: Sequence[str], labels: Sequence[str]) -> float:
    """Exact-match accuracy of paralinguistic labels (emotion, gender, ...) after strip + lowercase, in percent."""
    if len(predictions) != len(labels):
        raise ValueError(f"got {len(predictions)} predictions and {len(labels)} labels")
    if not labels:
        raise ValueError("accuracy needs at least one label")
    hits = sum(p.strip().lower() == l.strip().lower() for p, l in zip(predictions, labels))
    return 100.0 * hits / len(labels)


# ------------------------------------------------------------------------------------------------ normalized average


ST_METRICS = ("comet", "bleu")


@dataclass
class NormalizedAverageConfig:
    """Bounds of the paper's normalized average (Eq. 3); defaults are the paper's (percent scale for every metric).

    The paper scores ST with COMET. Where COMET cannot run (no checkpoint) or the paper's bounds mean nothing (a small
    LLM on synthetic speech), ``st_metric="bleu"`` averages BLEU instead, between bounds measured on evaluated
    systems (``bleu_lower`` / ``bleu_upper``, e.g. from `eval.report --bounds`); such an average is not comparable
    with the paper's numbers.
    """

    st_metric: str = "comet"
    """ST metric of the average: "comet" (the paper's) or "bleu" (needs bleu_lower and bleu_upper)."""
    wer_lower: float = 18.38
    """WER of the lower bound: cascaded HuBERT ASR + Llama."""
    wer_upper: float = 6.54
    """WER of the upper bound: specialised models."""
    comet_lower: float = 73.92
    """COMET (x 100) of the cascade."""
    comet_upper: float = 80.02
    """COMET (x 100) of the specialised models."""
    bleu_lower: float | None = None
    """BLEU of the lower-bound system; the paper has none (it reports COMET), so it must be set for st_metric=bleu."""
    bleu_upper: float | None = None
    """BLEU of the upper-bound system; required for st_metric=bleu."""
    f1_lower: float = 54.76
    """SQA F1 of the cascade."""
    f1_upper: float = 77.10
    """SQA F1 of the specialised models."""

    def __post_init__(self) -> None:
        if self.st_metric not in ST_METRICS:
            raise ValueError(f"st_metric must be one of {ST_METRICS}, got {self.st_metric!r}")
        if self.st_metric == "bleu" and (self.bleu_lower is None or self.bleu_upper is None):
            raise ValueError("st_metric=bleu needs bleu_lower and bleu_upper (the paper gives no BLEU bounds; take "
                             "them from evaluated systems, e.g. `python -m eval.report --bounds LOWER UPPER`)")
        for task, (lo, up) in self.bounds().items():
            if lo == up:
                raise ValueError(f"{task}: lower and upper bound are both {lo}; the normalisation would divide by 0")

    def bounds(self) -> dict[str, tuple[float, float]]:
        """Task metric -> (lower, upper): ``wer``, ``comet`` or ``bleu`` (``st_metric``), ``f1``; for WER the upper
        bound is the smaller number."""
        st = (self.comet_lower, self.comet_upper) if self.st_metric == "comet" else (self.bleu_lower, self.bleu_upper)
        return {"wer": (self.wer_lower, self.wer_upper), self.st_metric: st, "f1": (self.f1_lower, self.f1_upper)}


def normalized_score(value: float, lower: float, upper: float) -> float:
    """``100 * (value - lower) / (upper - lower)``: 0 at the lower bound, 100 at the upper bound.

    One formula covers both directions: for WER (lower is better) ``upper < lower`` and it equals the paper's
    ``100 * (L - m) / (L - U)``. Scores below the cascade are negative, above the specialised models exceed 100.
    With the paper's bounds and its printed (rounded) task scores this gives 67.389 for contr-cos-all 10 % (paper
    67.388) and -57.392 for no-pretraining 10 % (paper -57.401), likely because the paper averaged unrounded scores.
    """
    return 100.0 * (value - lower) / (upper - lower) + 0.0  # + 0.0: the lower bound of WER is 0, not "-0.000"


def normalized_average(scores: Mapping[str, float | None],
                       cfg: NormalizedAverageConfig | None = None) -> dict[str, float]:
    """The paper's normalized average over ASR (WER), ST (COMET, or BLEU per ``cfg.st_metric``) and SQA (F1).

    Args:
        scores: ``{"wer": ..., "comet": ..., "f1": ...}`` in percent (COMET x 100; ``"bleu"`` instead of
            ``"comet"`` when ``cfg.st_metric == "bleu"``); extra keys are ignored.
        cfg: bounds; the paper's by default.

    Returns:
        ``{"normalized/wer": ..., "normalized/<st_metric>": ..., "normalized/f1": ..., "normalized_average": ...}``.

    Raises:
        ValueError: if a task is missing or ``None`` (e.g. COMET skipped): an average over fewer tasks is not
            comparable with the paper's and must not be reported under the same name.
    """
    cfg = cfg or NormalizedAverageConfig()
    missing = [t for t in cfg.bounds() if scores.get(t) is None]
    if missing:
        raise ValueError(f"normalized average needs scores for {sorted(cfg.bounds())}; missing {missing}")
    out = {f"normalized/{t}": normalized_score(float(scores[t]), lo, up) for t, (lo, up) in cfg.bounds().items()}
    out["normalized_average"] = sum(out.values()) / len(out)
    return out
