"""Scores generated rows per task: ASR WER, ST BLEU/chrF/COMET per target language, SQA EM/F1, normalized average.

    metrics, signatures, notes = score_rows(rows, ScoringConfig())

A row is one test example (see eval/run.py): ``{"key", "source", "task", "target", "hypothesis", "reference",
"transcript", "meta", ...}`` where ``reference`` is what the task expects (transcript, translation, answer span) and
``transcript`` is the spoken text (COMET's source side). Metric keys are the ones `eval.report` lays out:
``asr/wer``, ``st/<lang>/bleu`` and their mean over targets ``st/bleu``, ``sqa/f1``, ``para/<attribute>/accuracy``
and their mean ``para/accuracy``, ``normalized/<wer|comet|bleu|f1>``, ``normalized_average``, ...
"""

from __future__ import annotations

import logging
import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

from eval.metrics import (
    NormalizedAverageConfig,
    accuracy,
    bleu,
    cer,
    chrf,
    comet_score,
    normalized_average,
    squad_em_f1,
    wer,
)

__all__ = ["ScoringConfig", "score_rows"]

log = logging.getLogger(__name__)


@dataclass
class ScoringConfig:
    asr_metric: str = "wer"
    """"wer", or "cer" for languages written without spaces (Chinese, Japanese); reported under asr/wer."""
    wer_normalizer: str | None = None
    """Text normaliser before WER/CER: "english" (Whisper-style, versioned; strips accents), "basic" (lowercase, no
    punctuation, keeps every letter); None: english for WER, basic for CER (keeps Japanese voicing marks)."""
    bleu_tokenize: str = "13a"
    """sacreBLEU tokenizer ("13a"; "zh" / "ja-mecab" for those targets)."""
    comet_checkpoint: str | None = None
    """Local COMET checkpoint (e.g. .../wmt22-comet-da/checkpoints/model.ckpt); None skips COMET (never a download)."""
    comet_batch_size: int = 16
    """COMET prediction batch size."""
    comet_gpus: int = 0
    """GPUs for COMET (0 = CPU)."""
    normalized: NormalizedAverageConfig = field(default_factory=NormalizedAverageConfig)
    """Bounds of the normalized average (default: the paper's cascade and specialised models) and its ST metric
    (``normalized.st_metric``: COMET, or BLEU with bounds of your own)."""

    def __post_init__(self):
        if self.asr_metric not in ("wer", "cer"):
            raise ValueError(f"asr_metric must be wer or cer, got {self.asr_metric!r}")
        if self.wer_normalizer is None:
            self.wer_normalizer = "english" if self.asr_metric == "wer" else "basic"
        if self.wer_normalizer not in ("english", "basic"):
            raise ValueError(f"wer_normalizer must be english or basic, got {self.wer_normalizer!r}")
        from sacrebleu.metrics.bleu import _TOKENIZERS  # the names BLEU(tokenize=...) accepts

        if self.bleu_tokenize not in _TOKENIZERS:
            raise ValueError(f"bleu_tokenize must be one of {sorted(_TOKENIZERS)}, got {self.bleu_tokenize!r}")
        if self.comet_batch_size < 1 or self.comet_gpus < 0:
            raise ValueError(f"comet_batch_size must be >= 1 and comet_gpus >= 0, got {self.comet_batch_size}, "
                             f"{self.comet_gpus}")


def _mean(values: Sequence[float | None]) -> float | None:
    values = [v for v in values if v is not None]
    return sum(values) / len(values) if values else None


def _golds(row: dict) -> list[str]:
    """SQuAD scores against every gold answer a sample has (Spoken-SQuAD dev has several)."""
    answers = row["meta"].get("answers")
    if isinstance(answers, list) and answers:
        return [a["text"] if isinstance(a, dict) else str(a) for a in answers]
    return [row["reference"]]


def score_rows(rows: Sequence[dict], cfg: ScoringConfig) -> tuple[dict, dict, list[str]]:
    """Every metric the rows allow.

    Returns:
        ``(metrics, signatures, notes)``: metrics in percent (None where a metric was skipped), the WER normaliser
        version and sacreBLEU signatures, and human-readable notes on what was skipped and why.
    """
    by_task: dict[str, list[dict]] = defaultdict(list)
    for r in rows:
        by_task[r["task"] if r["task"] not in ("st", "para") else f"{r['task']}/{r['target']}"].append(r)
    metrics: dict[str, float | int | None] = {}
    signatures: dict[str, str | None] = {}
    notes: list[str] = []

    if asr := by_task.get("asr"):
        norm = cfg.wer_normalizer
        score = (wer if cfg.asr_metric == "wer" else cer)([r["reference"] for r in asr],
                                                          [r["hypothesis"] for r in asr], normalizer=norm)
        metrics["asr/wer"], metrics["asr/wer_utt_mean"], metrics["asr/n"] = score.wer, score.wer_utt_mean, score.n
        signatures["wer"] = score.normalizer if cfg.asr_metric == "wer" else f"cer:{score.normalizer}"
        if score.n_skipped_empty:
            notes.append(f"ASR: {score.n_skipped_empty} samples with an empty normalised reference not scored")

    targets = sorted(k.split("/", 1)[1] for k in by_task if k.startswith("st/"))
    for t in targets:
        st = by_task[f"st/{t}"]
        hyps, refs = [r["hypothesis"] for r in st], [r["reference"] for r in st]
        b, c = bleu(hyps, refs, tokenize=cfg.bleu_tokenize), chrf(hyps, refs)
        metrics[f"st/{t}/bleu"], metrics[f"st/{t}/chrf"], metrics[f"st/{t}/n"] = b["bleu"], c["chrf"], len(st)
        signatures["bleu"], signatures["chrf"] = b["signature"], c["signature"]
        metrics[f"st/{t}/comet"] = comet_score([r["transcript"] for r in st], hyps, refs, cfg.comet_checkpoint,
                                               cfg.comet_batch_size, cfg.comet_gpus)
    if targets:
        for m in ("bleu", "chrf", "comet"):
            metrics[f"st/{m}"] = _mean([metrics[f"st/{t}/{m}"] for t in targets])
        metrics["st/n"] = sum(metrics[f"st/{t}/n"] for t in targets)
        signatures["comet"] = cfg.comet_checkpoint
        if metrics["st/comet"] is None:
            notes.append("COMET skipped: no local checkpoint configured (scoring.comet_checkpoint)")

    if sqa := by_task.get("sqa"):
        metrics.update({f"sqa/{k}": v for k, v in squad_em_f1([r["hypothesis"] for r in sqa],
                                                              [_golds(r) for r in sqa]).items()})

    attributes = sorted(k.split("/", 1)[1] for k in by_task if k.startswith("para/"))
    for a in attributes:  # labels are short words: exact match after strip + lowercase, trailing period ignored
        para = by_task[f"para/{a}"]
        metrics[f"para/{a}/accuracy"] = accuracy([r["hypothesis"].strip().rstrip(".") for r in para],
                                                 [r["reference"] for r in para])
        metrics[f"para/{a}/n"] = len(para)
    if attributes:
        metrics["para/accuracy"] = _mean([metrics[f"para/{a}/accuracy"] for a in attributes])
        metrics["para/n"] = sum(metrics[f"para/{a}/n"] for a in attributes)

    st = cfg.normalized.st_metric  # "comet" (the paper's) or "bleu"
    scores = {"wer": metrics.get("asr/wer"), st: metrics.get(f"st/{st}"), "f1": metrics.get("sqa/f1")}
    scores = {k: None if v is None or math.isnan(v) else v for k, v in scores.items()}  # NaN: nothing was scorable
    if all(v is not None for v in scores.values()):
        metrics.update(normalized_average(scores, cfg.normalized))
        if st != "comet":  # the table must not pass this average off as the paper's
            bounds = ", ".join(f"{k.upper()} {lo:g} -> {up:g}" for k, (lo, up) in cfg.normalized.bounds().items())
            notes.append(f"normalized average over WER, {st.upper()} and F1: {st.upper()} replaces the paper's COMET "
                         f"(bounds lower -> upper: {bounds})")
    else:
        metrics["normalized_average"] = None
        missing = [k.upper() for k, v in scores.items() if v is None]
        notes.append(f"normalized average not computed: no {', '.join(missing)} score")
    return metrics, signatures, notes
