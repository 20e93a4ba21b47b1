"""Transcribe test shard sets with a real Whisper model: the ASR half of the cascaded baseline (Whisper -> LLM).

    python -m eval.transcribe --model pypi:whisper-base --test shards/test-asr --test shards/test-sqa \
        --out runs/cascade/whisper-base.jsonl [--batch-size 8] [--max-samples N] [--language en]
    python -m eval.run --config ... cascade=runs/cascade/whisper-base.jsonl     # the LLM reads these transcripts

Samples are read with eval.run's own loader (`eval.generate.build_eval_loader`, shard order, the same duration
filters, ``max_samples`` per source and the same reference normalisation), so the file holds exactly the keys
``eval.run`` asks for. The output is one ``{"key": ..., "text": ...}`` row per sample, sorted by key, written
atomically; it does not depend on the batch size (every short utterance is padded to Whisper's 30 s window anyway).

Decoding is greedy, task "transcribe", without timestamps. A multilingual model is told each sample's language (its
manifest ``lang`` field, else ``--language``); an English-only model (``*.en``) gets no language token. Utterances
longer than Whisper's 30 s window (long SQA contexts) go through transformers' sequential long-form decoding, which
needs timestamp tokens internally; they are dropped from the text.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import torch
from tqdm.auto import tqdm

from core.errors import entry_point, user_errors
from data.audio import TARGET_SAMPLE_RATE
from data.stream import SourceCatalog, SourceConfig, StreamConfig
from eval.generate import build_eval_loader, write_results

__all__ = ["TranscribeConfig", "Whisper", "load_whisper", "transcribe_batches", "transcribe", "main"]

log = logging.getLogger("eval.transcribe")

SAMPLE_RATE = TARGET_SAMPLE_RATE
"""The eval loader's rate (16 kHz, every sample resampled to it), which is also Whisper's input rate."""
WINDOW_S = 30.0
"""Whisper's input window: longer audio is decoded segment by segment (long-form)."""


@dataclass
class TranscribeConfig:
    """What `transcribe` reads, with which model, and where it writes."""

    model: str = "pypi:whisper-base"
    """Whisper model: a ``pypi:`` spec, a local HF directory or a hub name already in the local cache (never
    downloaded; see model/pretrained.py)."""
    test: list[str] = field(default_factory=list)
    """Test shard-set directories, as listed under eval.run's ``test:``."""
    out: str = ""
    """Output JSONL of ``{"key", "text"}`` rows (eval.run's ``cascade=FILE.jsonl``)."""
    batch_size: int = 8
    """Utterances per Whisper call."""
    max_samples: int | None = None
    """First N samples of each source, in shard order (eval.run's ``generate.max_samples``; None = all)."""
    language: str = "en"
    """Language of samples whose manifest has no ``lang`` (multilingual models only)."""
    max_new_tokens: int = 200
    """Greedy decoding stops after this many tokens (per 30 s segment); Whisper's decoder holds 448 positions."""
    text_norm: str = "none"
    """Reference normalisation of the loader (must equal eval.run's ``text_norm``: a reference that normalises to
    nothing drops its sample, so a different setting could select different samples)."""

    def __post_init__(self):
        if not self.test:
            raise ValueError("test: give at least one test shard-set directory")
        if not self.out.endswith(".jsonl"):
            raise ValueError(f"out must be a .jsonl file (eval.run's cascade= reads only those), got {self.out!r}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.max_samples is not None and self.max_samples < 1:
            raise ValueError(f"max_samples must be >= 1 or None, got {self.max_samples}")
        if not 1 <= self.max_new_tokens <= 440:
            raise ValueError(f"max_new_tokens must be in 1..440 (the decoder's 448 positions hold the prompt too), "
                             f"got {self.max_new_tokens}")
        self.language = _lang_code(self.language)


def _lang_code(lang: str) -> str:
    """``en``, ``EN``, ``en-US``, ``en_us`` -> ``en``: Whisper knows languages, not regions."""
    code = str(lang).strip().replace("_", "-").split("-")[0].lower()
    if not code:
        raise ValueError(f"empty language code {lang!r}")
    return code


@dataclass
class Whisper:
    """A loaded Whisper model with its feature extractor and tokenizer."""

    model: torch.nn.Module
    """transformers' WhisperForConditionalGeneration, float32, eval mode, on the GPU when there is one."""
    features: object
    """Its WhisperFeatureExtractor."""
    tokenizer: object
    """Its tokenizer."""
    spec: str
    """The model spec it was loaded from (for logs)."""

    @property
    def multilingual(self) -> bool:
        return bool(getattr(self.model.generation_config, "is_multilingual", False))

    def check_language(self, code: str) -> None:
        """Raises ValueError when a multilingual model has no token for language ``code``."""
        if self.multilingual and f"<|{code}|>" not in self.model.generation_config.lang_to_id:
            raise ValueError(f"{self.spec} has no language token for {code!r}")


def _length_warning(record: logging.LogRecord) -> bool:
    """Drops transformers' "both max_new_tokens and max_length" warning: Whisper's generate sets max_length itself
    (448 from its generation config) whatever the caller passes, so it would repeat on every batch."""
    return "`max_new_tokens` will take precedence" not in record.getMessage()


def load_whisper(spec: str) -> Whisper:
    """Loads a Whisper model offline from ``model.pretrained.resolve_model(spec)``."""
    from transformers import AutoFeatureExtractor, AutoTokenizer, WhisperForConditionalGeneration

    from model.pretrained import resolve_model

    gen_log = logging.getLogger("transformers.generation.utils")
    if _length_warning not in gen_log.filters:
        gen_log.addFilter(_length_warning)
    path = resolve_model(spec)
    model = WhisperForConditionalGeneration.from_pretrained(path, local_files_only=True, dtype=torch.float32).eval()
    if torch.cuda.is_available():
        model.to(torch.device("cuda", torch.cuda.current_device()))
    return Whisper(model, AutoFeatureExtractor.from_pretrained(path, local_files_only=True),
                   AutoTokenizer.from_pretrained(path, local_files_only=True), spec)


@torch.inference_mode()
def _decode(whisper: Whisper, waves: list, languages: list[str], max_new_tokens: int) -> list[str]:
    """Greedy transcripts of waves that are all short (<= 30 s) or all long (long-form, with attention mask)."""
    long_form = max(len(w) for w in waves) > WINDOW_S * SAMPLE_RATE
    kw = {"truncation": False, "padding": "longest"} if long_form else {}
    inputs = whisper.features(waves, sampling_rate=SAMPLE_RATE, return_tensors="pt", return_attention_mask=True,
                              **kw)
    dev = whisper.model.device
    # the mask tells long-form decoding where each utterance ends (short-form: it only silences a warning)
    gen = {"input_features": inputs.input_features.to(dev), "attention_mask": inputs.attention_mask.to(dev),
           "do_sample": False, "num_beams": 1, "max_new_tokens": max_new_tokens}
    if long_form:  # transformers decodes > 30 s segment by segment, guided by timestamp tokens
        gen.update(return_timestamps=True, condition_on_prev_tokens=False)
    else:
        gen.update(return_timestamps=False)
    if whisper.multilingual:
        gen.update(language=languages, task="transcribe")
    ids = whisper.model.generate(**gen)
    ids = ids["sequences"] if isinstance(ids, dict) else ids
    return [" ".join(t.split()) for t in whisper.tokenizer.batch_decode(ids, skip_special_tokens=True)]


def transcribe_batches(whisper: Whisper, batches: Iterable[dict], cfg: TranscribeConfig,
                       progress: tqdm | None = None) -> list[dict]:
    """Transcripts of every sample of loader `batches`, in batch order: ``{"key", "source", "text", "seconds"}``."""
    rows: list[dict] = []
    foreign = 0
    for batch in batches:
        lengths = batch["audio_mask"].sum(-1).tolist()
        waves = [batch["audio"][i, :n].numpy() for i, n in enumerate(lengths)]
        langs = [_lang_code(m.get("lang") or cfg.language) for m in batch["meta"]]
        if whisper.multilingual:
            for lang in set(langs):
                whisper.check_language(lang)
        else:
            foreign += sum(lang != "en" for lang in langs)
        texts: list[str | None] = [None] * len(waves)
        for long_form in (False, True):  # one call per kind: a long sample must not put short ones in long-form
            idx = [i for i, n in enumerate(lengths) if (n > WINDOW_S * SAMPLE_RATE) == long_form]
            if idx:
                out = _decode(whisper, [waves[i] for i in idx], [langs[i] for i in idx], cfg.max_new_tokens)
                for i, text in zip(idx, out):
                    texts[i] = text
        rows += [{"key": k, "source": s, "text": t, "seconds": n / SAMPLE_RATE}
                 for k, s, t, n in zip(batch["keys"], batch["sources"], texts, lengths)]
        if progress is not None:
            progress.update(len(waves))
    if foreign:
        log.warning("%d samples are not English but %s is an English-only model", foreign, whisper.spec)
    return rows


def _planned(sources: Sequence[str], cfg: TranscribeConfig) -> int:
    """Samples the loader will yield (for the progress bar): duration-filtered catalog sizes, capped."""
    total = 0
    for path in sources:
        src = SourceConfig(path=path)
        n = len(SourceCatalog(src, StreamConfig(sources=[src], text_norm=cfg.text_norm)))
        total += n if cfg.max_samples is None else min(n, cfg.max_samples)
    return total


def transcribe(cfg: TranscribeConfig, whisper: Whisper | None = None) -> list[dict]:
    """Transcribes every test sample eval.run would read and writes ``cfg.out``.

    Args:
        cfg: what to read and write.
        whisper: an already loaded model (tests reuse one); None loads ``cfg.model``.

    Returns:
        The written rows ``{"key", "text"}``, sorted by key.

    Raises:
        ValueError: the same key in two test sources (eval.run's transcript file is keyed by key alone), or a
            sample language the model has no token for.
    """
    total = _planned(cfg.test, cfg)  # before the model loads: a wrong shard path fails at once
    whisper = whisper or load_whisper(cfg.model)
    whisper.check_language(cfg.language)
    batches = build_eval_loader(cfg.test, None, cfg.batch_size, cfg.max_samples, text_norm=cfg.text_norm)
    start = time.perf_counter()
    with tqdm(total=total, unit="utt", desc=f"transcribing ({whisper.spec})") as bar:
        rows = transcribe_batches(whisper, batches, cfg, progress=bar)
    elapsed = max(time.perf_counter() - start, 1e-9)
    rows.sort(key=lambda r: (r["key"], r["source"]))
    dup = sorted({a["key"] for a, b in zip(rows, rows[1:]) if a["key"] == b["key"]})
    if dup:
        raise ValueError(f"{len(dup)} keys occur in more than one test source, e.g. {dup[:3]}: eval.run's cascade "
                         f"file is keyed by sample key alone; give the sources distinct keys")
    out = [{"key": r["key"], "text": r["text"]} for r in rows]
    write_results(out, cfg.out)
    audio = sum(r["seconds"] for r in rows)
    log.info("%s: %d utterances (%.1f min of audio) in %.1f s: %.2f utterances/s, %.1fx real time -> %s",
             whisper.spec, len(rows), audio / 60, elapsed, len(rows) / elapsed, audio / elapsed, cfg.out)
    return out


@entry_point
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m eval.transcribe", description=__doc__.split("\n")[0])
    parser.add_argument("--model", default=TranscribeConfig.model, help="Whisper spec (default: %(default)s)")
    parser.add_argument("--test", action="extend", nargs="+", required=True, metavar="PATH",
                        help="test shard-set directory (repeat or list several)")
    parser.add_argument("--out", required=True, help="output .jsonl for eval.run cascade=FILE.jsonl")
    parser.add_argument("--batch-size", type=int, default=TranscribeConfig.batch_size)
    parser.add_argument("--max-samples", type=int, default=None, help="first N samples of each source")
    parser.add_argument("--language", default=TranscribeConfig.language,
                        help="language of samples without a manifest lang (multilingual models)")
    parser.add_argument("--max-new-tokens", type=int, default=TranscribeConfig.max_new_tokens)
    parser.add_argument("--text-norm", default=TranscribeConfig.text_norm, help="must match eval.run's text_norm")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    with user_errors(OSError, ValueError):  # OSError: a model not in the local cache; ValueError: bad settings
        cfg = TranscribeConfig(model=args.model, test=args.test, out=args.out, batch_size=args.batch_size,
                               max_samples=args.max_samples, language=args.language,
                               max_new_tokens=args.max_new_tokens, text_norm=args.text_norm)
        transcribe(cfg)
    return 0


if __name__ == "__main__":
    sys.exit(main())
