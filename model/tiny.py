"""Tiny random-init speech encoder + LLM saved as real local HF model directories.

    python -m model.tiny --out demo_out/tiny --manifest demo_out/corpus/asr-en/manifest.jsonl [key=value ...]
    paths = write_tiny_models("demo_out/tiny", TinyConfig(llm="gemma3"), read_texts(manifests))
    build_encoder(EncoderConfig(name_or_path=str(paths["encoder"])))         # the normal loading code, unchanged

Why: nothing can be downloaded from a model hub on the machines that run the demo and the trainer's tests, yet the
whole path - ``AutoModel.from_pretrained(..., local_files_only=True)`` for the encoder, ``AutoModelForCausalLM`` +
``AutoTokenizer`` for the LLM, chat templates, pad/bos/eos handling, layer selection - must run for real. So we
write small models of the real architectures (HuBERT with hubert-large's layer-norm front end and its 320-sample
stride, or Whisper with 80 mel bins; Llama, Gemma3 or Qwen2 with 11 layers so that the "all" preset gives 4 layers)
and a byte-level BPE tokenizer trained on the corpus transcripts, so any UTF-8 text (Russian, German) encodes
without unknown tokens. The weights are random: enough for the plumbing, and a fixed random LLM still gives text
states that a contrastive projector can measurably learn to match, but these are not speech models and their
WER/BLEU mean nothing. With ``reading.steps > 0`` the LLM is first taught to read the manifests' tasks from text
(model/tiny_reader.py), which makes finetuning a projector measurably teach it to hear.

Layout of ``out_dir``: ``encoder/`` (config.json, model.safetensors, preprocessor_config.json), ``llm/`` (config.json,
generation_config.json, model.safetensors, tokenizer.json, tokenizer_config.json, chat_template.jinja) and
``tiny.json`` (the config and a hash of the texts; the CLI skips rebuilding when they match).
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import logging
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import torch

from core.errors import entry_point
from model.tiny_reader import Lesson, ReadingConfig, read_lessons, teach_reading

__all__ = ["TinyConfig", "train_tokenizer", "read_texts", "write_tiny_models", "ensure_tiny_models", "CHAT_TEMPLATE",
           "SPECIAL_TOKENS", "MARKER"]

log = logging.getLogger(__name__)

SPECIAL_TOKENS = ("<pad>", "<s>", "</s>")
# Same shape as the templates of instruct LLMs: BOS, "role: content" turns closed by EOS, an assistant header to
# generate after. SpeechLLM takes the answer labels as whatever the full chat renders after the generation prompt.
CHAT_TEMPLATE = ("{{ bos_token }}{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}{{ eos_token }}{% endfor %}"
                 "{% if add_generation_prompt %}assistant:{% endif %}")
MARKER = "tiny.json"
_MIN_VOCAB = 256 + len(SPECIAL_TOKENS)
MAX_POSITIONS = 4096  # room for 150 s SQA speech at ~12 queries/s plus text and a 400 position shift
_FORMAT = 1  # bump when the files written for the same config change, so old directories are rebuilt
_ENCODER_HEADS = 4
_CONV_DIM = 32  # hubert-large: 512; the CNN front end dominates CPU time on raw audio
# Qwen2's pre-tokenizer split (transformers' PRETOKENIZE_REGEX), see train_tokenizer.
_SPLIT_REGEX = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+"
                r"|\s+(?!\S)|\s+")
# Manifest fields holding text the LLM sees: transcripts/passages, ST targets, SQA questions and answers.
_TEXT_FIELDS = ("text", "context", "translation", "target", "question", "answer")


@dataclass
class TinyConfig:
    encoder: Literal["hubert", "whisper"] = "hubert"
    """Encoder architecture: HuBERT on the waveform (layer-norm CNN, stride 320) or Whisper on 80-bin log-mels."""
    llm: Literal["llama", "gemma3", "qwen2"] = "llama"
    """Causal LM architecture (Gemma3 is its text-only model, as used for the LLM side)."""
    encoder_dim: int = 64
    """Encoder width (HuBERT hidden_size / Whisper d_model); 4 attention heads, FFN twice as wide."""
    encoder_layers: int = 2
    """Encoder transformer layers."""
    llm_hidden: int = 64
    """LLM hidden size."""
    llm_layers: int = 11
    """LLM decoder layers; 11 makes the "all" preset [0, 5, 10, 11], i.e. 4 aligned layers."""
    llm_heads: int = 4
    """LLM attention heads (head_dim = llm_hidden / llm_heads, must be even for rotary embeddings)."""
    llm_kv_heads: int = 2
    """LLM key/value heads (grouped-query attention); must divide llm_heads."""
    llm_intermediate: int = 128
    """LLM MLP width."""
    vocab_size: int = 1000
    """Target size of the trained byte-level BPE vocabulary (at least 256 bytes + 3 specials); small corpora stop
    earlier, and the LLM's vocabulary is the tokenizer's actual size."""
    seed: int = 0
    """Seed for the weight init; the same config and texts give byte-identical files."""
    reading: ReadingConfig = field(default_factory=ReadingConfig)
    """Reading lessons for the LLM (model/tiny_reader.py): with steps > 0 the LLM learns to transcribe, translate
    and answer from text, so that finetuning a projector can make it hear; 0 keeps the random weights."""

    def __post_init__(self):
        if self.encoder not in ("hubert", "whisper"):
            raise ValueError(f"encoder must be 'hubert' or 'whisper', got {self.encoder!r}")
        if self.llm not in ("llama", "gemma3", "qwen2"):
            raise ValueError(f"llm must be one of 'llama', 'gemma3', 'qwen2', got {self.llm!r}")
        for name in ("encoder_dim", "encoder_layers", "llm_hidden", "llm_layers", "llm_heads", "llm_kv_heads",
                     "llm_intermediate"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.encoder_dim % (2 * _ENCODER_HEADS):
            raise ValueError(f"encoder_dim must be a multiple of {2 * _ENCODER_HEADS} ({_ENCODER_HEADS} heads, "
                             f"conv position groups), got {self.encoder_dim}")
        if self.llm_hidden % self.llm_heads or (self.llm_hidden // self.llm_heads) % 2:
            raise ValueError(f"llm_hidden ({self.llm_hidden}) / llm_heads ({self.llm_heads}) must be an even integer")
        if self.llm_heads % self.llm_kv_heads:
            raise ValueError(f"llm_kv_heads ({self.llm_kv_heads}) must divide llm_heads ({self.llm_heads})")
        if self.vocab_size < _MIN_VOCAB:
            raise ValueError(f"vocab_size must be >= {_MIN_VOCAB} (byte alphabet + specials), got {self.vocab_size}")
        if self.seed < 0:
            raise ValueError(f"seed must be >= 0, got {self.seed}")


def _clean(texts: Iterable[str]) -> list[str]:
    """Non-empty texts in sorted order, so that training and hashing do not depend on manifest order."""
    out = sorted(t for t in texts if isinstance(t, str) and t.strip())
    if not out:
        raise ValueError("no text to train the tokenizer on (give manifests or a text file with transcripts)")
    return out


def train_tokenizer(texts: Iterable[str], vocab_size: int = 1000):
    """Trains a byte-level BPE tokenizer with ``<pad>``, ``<s>``, ``</s>`` and a chat template.

    Args:
        texts: training texts (any UTF-8; order does not matter, duplicates count as frequency).
        vocab_size: maximum vocabulary size including the specials; merges stop earlier on small corpora.

    Returns:
        A ``PreTrainedTokenizerFast`` (ids: pad 0, bos 1, eos 2, no unk) that adds BOS when
        ``add_special_tokens=True`` and decodes any encoded (NFC) text back exactly.
    """
    if vocab_size < _MIN_VOCAB:
        raise ValueError(f"vocab_size must be >= {_MIN_VOCAB} (byte alphabet + specials), got {vocab_size}")
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    # Qwen2's pipeline (NFC, GPT-4-style split, bytes): transformers 5 rebuilds exactly this on loading a qwen2
    # directory, whatever tokenizer.json says, so using it for every family keeps one tokenization everywhere.
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(_SPLIT_REGEX), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=list(SPECIAL_TOKENS), show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(_clean(texts), trainer=trainer)
    bos = SPECIAL_TOKENS[1]
    tok.post_processor = processors.TemplateProcessing(single=f"{bos} $A", pair=f"{bos} $A {bos} $B:1",
                                                       special_tokens=[(bos, tok.token_to_id(bos))])
    # unk_token=None is written out: Qwen2Tokenizer would otherwise add an "<|endoftext|>" unk beyond the vocab.
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", bos_token="<s>", eos_token="</s>",
                                   unk_token=None, clean_up_tokenization_spaces=False, model_max_length=MAX_POSITIONS)
    fast.chat_template = CHAT_TEMPLATE
    return fast


def read_texts(manifests: Iterable[str | os.PathLike]) -> list[str]:
    """Texts the LLM will see, from JSONL manifests of data/synth/ or data/prepare.py.

    Takes ``text`` (transcript, SQA passage), ``translations`` (ST: ``{lang: text}``), ``question``, ``answer`` and
    the generic ``context``/``translation``/``target`` fields. Unique strings, in first-seen order (an SQA passage
    repeats on every question line).

    Raises:
        ValueError: a line is not a JSON object (the message names the file and line).
    """
    seen: dict[str, None] = {}
    for path in manifests:
        with open(path, encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError as e:
                    raise ValueError(f"{path}:{n}: not valid JSON: {e}") from e
                if not isinstance(rec, dict):
                    raise ValueError(f"{path}:{n}: expected a JSON object, got {type(rec).__name__}")
                values = [rec.get(k) for k in _TEXT_FIELDS]
                if isinstance(rec.get("translations"), dict):
                    values += [rec["translations"][k] for k in sorted(rec["translations"])]
                seen.update((v, None) for v in values if isinstance(v, str) and v.strip())
    return list(seen)


def _texts_hash(texts: list[str]) -> str:
    h = hashlib.sha256()
    for t in texts:
        b = t.encode("utf-8")
        h.update(len(b).to_bytes(8, "little") + b)  # length prefix: ["ab", "c"] != ["a", "bc"]
    return h.hexdigest()


def _lessons_hash(cfg: TinyConfig, lessons: list[Lesson] | None) -> str | None:
    if not cfg.reading.steps:
        return None
    return _texts_hash([json.dumps([x.key, x.source, x.meta], sort_keys=True, ensure_ascii=False)
                        for x in lessons or []])


def _record(cfg: TinyConfig, texts: list[str], lessons: list[Lesson] | None = None) -> dict:
    return {"format": _FORMAT, "config": dataclasses.asdict(cfg), "texts_sha256": _texts_hash(texts),
            "num_texts": len(texts), "lessons_sha256": _lessons_hash(cfg, lessons)}


def _save_encoder(path: Path, cfg: TinyConfig) -> None:
    from transformers import (
        HubertConfig,
        HubertModel,
        Wav2Vec2FeatureExtractor,
        WhisperConfig,
        WhisperFeatureExtractor,
        WhisperModel,
    )

    d = cfg.encoder_dim
    torch.manual_seed(cfg.seed)
    if cfg.encoder == "hubert":
        # hubert-large's front end (kernels/strides -> 320 samples per frame, layer norm + stable layer norm, so
        # features are batch-invariant with an attention mask), only narrower. Dropouts off: the encoder is frozen.
        model = HubertModel(HubertConfig(
            hidden_size=d, num_hidden_layers=cfg.encoder_layers, num_attention_heads=_ENCODER_HEADS,
            intermediate_size=2 * d, conv_dim=(_CONV_DIM,) * 7, conv_stride=(5, 2, 2, 2, 2, 2, 2),
            conv_kernel=(10, 3, 3, 3, 3, 2, 2), conv_bias=True, feat_extract_norm="layer", do_stable_layer_norm=True,
            num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=_ENCODER_HEADS, hidden_dropout=0.0,
            attention_dropout=0.0, activation_dropout=0.0, feat_proj_dropout=0.0, layerdrop=0.0, vocab_size=32))
        fe = Wav2Vec2FeatureExtractor(feature_size=1, sampling_rate=16_000, padding_value=0.0, do_normalize=True,
                                      return_attention_mask=True)
    else:
        # model/encoders.py keeps only the encoder; the decoder is the smallest valid one. 1500 source positions
        # stay: the encoder only accepts the full 30 s (3000 mel frames) window.
        model = WhisperModel(WhisperConfig(
            d_model=d, encoder_layers=cfg.encoder_layers, encoder_attention_heads=_ENCODER_HEADS,
            encoder_ffn_dim=2 * d, decoder_layers=1, decoder_attention_heads=_ENCODER_HEADS, decoder_ffn_dim=2 * d,
            num_mel_bins=80, vocab_size=64, max_target_positions=64, pad_token_id=0, bos_token_id=1,
            eos_token_id=2, decoder_start_token_id=1, begin_suppress_tokens=None))
        fe = WhisperFeatureExtractor(feature_size=80, sampling_rate=16_000)
    model.save_pretrained(path)
    fe.save_pretrained(path)


def _save_llm(path: Path, cfg: TinyConfig, tokenizer, texts: list[str], lessons: list[Lesson] | None) -> list[float]:
    from transformers import AutoModelForCausalLM, Gemma3TextConfig, LlamaConfig, Qwen2Config

    common = dict(vocab_size=len(tokenizer), hidden_size=cfg.llm_hidden, intermediate_size=cfg.llm_intermediate,
                  num_hidden_layers=cfg.llm_layers, num_attention_heads=cfg.llm_heads,
                  num_key_value_heads=cfg.llm_kv_heads, max_position_embeddings=MAX_POSITIONS,
                  pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
                  eos_token_id=tokenizer.eos_token_id)
    if cfg.llm == "llama":
        config = LlamaConfig(**common, tie_word_embeddings=False)
    elif cfg.llm == "qwen2":
        config = Qwen2Config(**common, tie_word_embeddings=False)
    else:
        head_dim = cfg.llm_hidden // cfg.llm_heads
        config = Gemma3TextConfig(**common, head_dim=head_dim, query_pre_attn_scalar=head_dim, sliding_window=512)
    torch.manual_seed(cfg.seed)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    losses = teach_reading(model, tokenizer, lessons or [], cfg.reading, seed=cfg.seed)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    _check_tokenizer_reload(path, tokenizer, texts[:32])
    return losses


def _check_tokenizer_reload(path: Path, tokenizer, texts: list[str]) -> None:
    """AutoTokenizer may swap in a model-specific class on load (transformers 5 forces Qwen2Tokenizer for qwen2);
    make sure what `load_llm` will get tokenizes exactly as what was trained and fits the embedding table."""
    from transformers import AutoTokenizer

    loaded = AutoTokenizer.from_pretrained(path, local_files_only=True)
    keys = ("pad_token_id", "bos_token_id", "eos_token_id", "unk_token_id")
    problems = [f"{k} {getattr(loaded, k)} != {getattr(tokenizer, k)}" for k in keys
                if getattr(loaded, k) != getattr(tokenizer, k)]
    if len(loaded) != len(tokenizer):
        problems.append(f"vocabulary {len(loaded)} != {len(tokenizer)}")
    if loaded(texts)["input_ids"] != tokenizer(texts)["input_ids"]:
        problems.append("different token ids for the training texts")
    if problems:
        raise RuntimeError(f"{path}: the tokenizer reloads as {type(loaded).__name__} and differs from the trained "
                           f"one ({'; '.join(problems)})")


def _write_json(path: Path, data: dict) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def write_tiny_models(out_dir: str | os.PathLike, cfg: TinyConfig, texts: Iterable[str],
                      lessons: list[Lesson] | None = None) -> dict[str, Path]:
    """Builds and saves the tiny encoder and LLM (with its trained tokenizer); always rebuilds.

    Both models are written into a temp directory inside ``out_dir`` and then renamed into place, and ``tiny.json``
    is removed before and rewritten after the swap: an interrupted run never leaves a half-written model directory,
    and never a marker that claims stale models are current.

    Args:
        out_dir: directory to hold ``encoder/``, ``llm/`` and ``tiny.json`` (created if missing).
        cfg: architecture and size settings.
        texts: texts to train the tokenizer on (see `read_texts`).
        lessons: reading lessons for the LLM (see `model.tiny_reader.read_lessons`); needed when
            ``cfg.reading.steps > 0``.

    Returns:
        ``{"encoder": out_dir / "encoder", "llm": out_dir / "llm"}``.

    Raises:
        ValueError: no non-empty text, or reading steps without lessons.
    """
    texts, out_dir = _clean(texts), Path(out_dir)
    if cfg.reading.steps and not lessons:
        raise ValueError("reading.steps > 0 needs reading lessons: pass manifests with transcripts")
    out_dir.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=".tiny-", dir=out_dir))
    try:
        tokenizer = train_tokenizer(texts, cfg.vocab_size)
        _save_encoder(stage / "encoder", cfg)
        losses = _save_llm(stage / "llm", cfg, tokenizer, texts, lessons)
        (out_dir / MARKER).unlink(missing_ok=True)
        for name in ("encoder", "llm"):
            if (out_dir / name).exists():
                os.replace(out_dir / name, stage / f"old-{name}")
            os.replace(stage / name, out_dir / name)
        reading = {"first_loss": losses[0], "last_loss": sum(losses[-10:]) / len(losses[-10:])} if losses else None
        _write_json(out_dir / MARKER, {**_record(cfg, texts, lessons), "vocab_size_actual": len(tokenizer),
                                       "reading": reading})
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    log.info("tiny %s + %s (vocab %d) written to %s", cfg.encoder, cfg.llm, len(tokenizer), out_dir)
    return {"encoder": out_dir / "encoder", "llm": out_dir / "llm"}


def ensure_tiny_models(out_dir: str | os.PathLike, cfg: TinyConfig, texts: Iterable[str],
                       overwrite: bool = False, lessons: list[Lesson] | None = None) -> tuple[dict[str, Path], bool]:
    """Like `write_tiny_models`, but keeps ``out_dir`` when its ``tiny.json`` matches ``cfg`` and ``texts``.

    Returns:
        ``(paths, built)``; ``built`` is False when the existing models were kept.
    """
    texts, out_dir = _clean(texts), Path(out_dir)
    paths = {"encoder": out_dir / "encoder", "llm": out_dir / "llm"}
    if not overwrite and all((p / "config.json").is_file() for p in paths.values()):
        try:
            old = json.loads((out_dir / MARKER).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            old = {}
        keys = ("format", "config", "texts_sha256", "num_texts", "lessons_sha256")
        if {k: old.get(k) for k in keys} == _record(cfg, texts, lessons):
            return paths, False
    return write_tiny_models(out_dir, cfg, texts, lessons), True


_OVERRIDE = re.compile(r"^[A-Za-z_][\w.]*=")


@entry_point
def main(argv: list[str] | None = None) -> int:
    import transformers

    from train.config import format_help, load_config

    parser = argparse.ArgumentParser(
        prog="python -m model.tiny", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Write a tiny random-init encoder + LLM (tokenizer trained on the texts) as local HF models.",
        epilog="config keys (key=value):\n" + "\n".join("  " + line for line in format_help(TinyConfig).splitlines()))
    parser.add_argument("--out", required=True, type=Path, help="directory for encoder/, llm/ and tiny.json")
    parser.add_argument("--manifest", nargs="+", action="extend", default=[], metavar="M",
                        help="JSONL manifests whose text fields train the tokenizer (repeatable)")
    parser.add_argument("--text-file", nargs="+", action="extend", default=[], metavar="F",
                        help="UTF-8 files with one text per line (repeatable)")
    parser.add_argument("--config", "-c", metavar="FILE", help="YAML file with TinyConfig fields")
    parser.add_argument("--overwrite", action="store_true", help="rebuild even when tiny.json matches")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="TinyConfig overrides, e.g. llm=gemma3")
    transformers.utils.logging.disable_progress_bar()  # "Writing model shards" bars for a 100 KB file are noise
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    # nargs="+" swallows overrides that follow --manifest: an argument shaped key=value that is no file is one.
    for opt in ("manifest", "text_file"):
        values = getattr(args, opt)
        moved = [v for v in values if _OVERRIDE.match(v) and not os.path.exists(v)]
        setattr(args, opt, [v for v in values if v not in moved])
        args.overrides += moved
    cfg = load_config(TinyConfig, args.config, args.overrides)
    if not args.manifest and not args.text_file:
        parser.error("give at least one --manifest or --text-file to train the tokenizer on")
    texts = read_texts(args.manifest)
    for path in args.text_file:
        texts += Path(path).read_text(encoding="utf-8").splitlines()
    lessons = read_lessons(args.manifest) if cfg.reading.steps else None
    paths, built = ensure_tiny_models(args.out, cfg, texts, overwrite=args.overwrite, lessons=lessons)
    print(f"{'built' if built else 'up to date, kept'}: {args.out} ({cfg.encoder} + {cfg.llm})", file=sys.stderr)
    print(f"encoder: {paths['encoder']}\nllm: {paths['llm']}")
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    sys.exit(main())
