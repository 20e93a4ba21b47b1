"""Frozen-LLM text hidden states computed once (`python -m train.cache_text`), stored beside the audio shards and
joined by sample key when training, so that no step runs the LLM over transcripts it has seen before. The frozen
encoder's features (`python -m train.cache_encoder`, ``data.encoder_cache``) use the same layout, files and reader,
with ``[frames, D]`` per sample in "tokens".

Layout of a cache directory (``data.text_cache``)::

    manifest.json                          what the states are (`CacheSpec`) and which shards are done
    <source name>/<shard file stem>.safetensors
        "pooled"  [n, layers, D]           masked mean over the transcript tokens (cosine InfoNCE), or
        "tokens"  [sum of lengths, layers, D] + "offsets" [n + 1]  every token (Sinkhorn InfoNCE)
        metadata  {"keys": JSON list}      row i is the sample with key keys[i]

The states depend on the LLM weights, the tokenizer, the layers, the transcript normalisation and the position ids,
so the manifest records all of them and training refuses a cache whose spec differs from its own config (never a
silent reuse of stale numbers). Position shifts (``llm.position_shift_max > 0``) make text states random per step
and cannot be cached.

Disk cost per utterance: layers x D x bytes pooled (7 x 4096 x 2 B = 57 KB for Llama-3.1-8B "all" in bf16: about
27 GB per 1,000 h of ~6 s utterances); full sequences multiply that by the transcript length in tokens (~20 for a
6 s utterance: about 0.55 TB per 1,000 h).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import torch

from core.errors import UserError

__all__ = ["CacheSpec", "CacheMismatchError", "TextCacheReader", "write_shard", "shard_file", "read_manifest",
           "write_manifest", "check_spec", "llm_fingerprint", "tokenizer_fingerprint", "MANIFEST", "CACHE_DTYPES"]

MANIFEST = "manifest.json"
FORMAT = 1
CACHE_DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32}


class CacheMismatchError(UserError, ValueError):
    """A text or encoder cache was built for other settings than this run's; an expected error (core.errors)."""


@dataclass(frozen=True)
class CacheSpec:
    llm: str
    """LLM name or path the states came from."""
    llm_fingerprint: str
    """sha256 over the LLM's config.json and its weight files' names and sizes (a changed checkpoint differs)."""
    tokenizer_sha256: str
    """sha256 of the tokenizer's full serialisation (vocabulary, merges, normalisers)."""
    layers: tuple[int, ...]
    """Hidden-state indices, in order (0 = embeddings)."""
    pooling: str
    """"mean" (one vector per layer) or "none" (every token)."""
    dtype: str
    """Stored precision (a key of CACHE_DTYPES)."""
    text_norm: str
    """Transcript normalisation applied before tokenising (data.text_norm)."""
    add_special_tokens: bool
    """Whether the tokenizer added BOS/EOS (data.add_special_tokens)."""
    position_policy: str = "positions 0..L-1, no shift"
    """How position ids were set; training must use the same (llm.position_shift_max = 0)."""


def llm_fingerprint(name_or_path: str) -> str:
    path = Path(name_or_path)
    h = hashlib.sha256(str(name_or_path).encode() if not path.is_dir() else b"")
    if path.is_dir():
        if (path / "config.json").is_file():
            h.update((path / "config.json").read_bytes())
        for f in sorted(path.glob("*.safetensors")) + sorted(path.glob("*.bin")):
            h.update(f"{f.name}:{f.stat().st_size}".encode())
    return h.hexdigest()


def tokenizer_fingerprint(tokenizer) -> str:
    backend = getattr(tokenizer, "backend_tokenizer", None)
    text = backend.to_str() if backend is not None else json.dumps(sorted(tokenizer.get_vocab().items()))
    return hashlib.sha256(text.encode()).hexdigest()


def read_manifest(cache_dir: str | Path, builder: str = "cache_text", setting: str = "data.text_cache") -> dict:
    """The manifest of a cache directory; ``builder`` and ``setting`` name the command that builds it in errors
    (the encoder feature cache, train/cache_encoder.py, shares this layout)."""
    path = Path(cache_dir) / MANIFEST
    if not path.is_file():
        raise FileNotFoundError(f"{path} missing: build the cache with `python -m train.{builder} --config CONFIG "
                                f"{setting}={cache_dir}` (or slurm/{builder}.sh)")
    return json.loads(path.read_text())


def write_manifest(cache_dir: str | Path, spec, sources: dict) -> None:
    """Atomically (re)writes the manifest: the spec and, per source, its path and finished shard files."""
    path = Path(cache_dir) / MANIFEST
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{MANIFEST}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps({"format": FORMAT, "spec": dataclasses.asdict(spec), "sources": sources}, indent=2))
    os.replace(tmp, path)


def check_spec(cache_dir: str | Path, expected, builder: str = "cache_text", setting: str = "data.text_cache") -> dict:
    """The manifest, after checking it describes exactly `expected` (a spec dataclass).

    Raises:
        CacheMismatchError (a ValueError): naming every field that differs and how to fix it.
    """
    manifest = read_manifest(cache_dir, builder, setting)
    saved = manifest.get("spec", {})
    want = json.loads(json.dumps(dataclasses.asdict(expected)))  # tuples -> lists, as the manifest stores them
    diff = {k: (saved.get(k), v) for k, v in want.items() if saved.get(k) != v}
    if diff:
        lines = ", ".join(f"{k}: cache {a!r} vs config {b!r}" for k, (a, b) in diff.items())
        raise CacheMismatchError(f"{setting.split('.')[-1].replace('_', ' ')} {cache_dir} was built for other "
                                 f"settings ({lines}); rebuild it with `python -m train.{builder} --config CONFIG "
                                 f"{setting}={cache_dir}` or unset {setting}")
    return manifest


def shard_file(cache_dir: str | Path, source: str, shard_path: str | Path) -> Path:
    return Path(cache_dir) / source / f"{Path(shard_path).name.split('.')[0]}.safetensors"


def write_shard(path: Path, keys: list[str], states: list[torch.Tensor], pooled: bool) -> None:
    """One shard's states, atomically: ``states[i]`` is ``[layers, D]`` (pooled) or ``[L_i, layers, D]``."""
    from safetensors.torch import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    if pooled:
        tensors = {"pooled": torch.stack(states).contiguous()}
    else:
        lengths = torch.tensor([0] + [s.shape[0] for s in states], dtype=torch.int64)
        tensors = {"tokens": torch.cat(states).contiguous(), "offsets": lengths.cumsum(0)}
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    save_file(tensors, str(tmp), metadata={"keys": json.dumps(keys)})
    os.replace(tmp, path)


class TextCacheReader:
    """Looks up one sample's cached states; keeps the few most recent shard files open (memory-mapped)."""

    def __init__(self, cache_dir: str | Path, open_files: int = 4):
        self.cache_dir = Path(cache_dir)
        manifest = read_manifest(cache_dir)
        self.pooled = manifest["spec"].get("pooling") == "mean"  # encoder features are always per frame
        self._open: OrderedDict[Path, tuple] = OrderedDict()
        self.open_files = open_files

    def _file(self, path: Path):
        if path not in self._open:
            from safetensors import safe_open

            if not path.is_file():
                self._open[path] = (None, {})
            else:
                handle = safe_open(str(path), framework="pt")
                keys = json.loads(handle.metadata()["keys"])
                self._open[path] = (handle, {k: i for i, k in enumerate(keys)})
            while len(self._open) > self.open_files:
                self._open.popitem(last=False)
        self._open.move_to_end(path)
        return self._open[path]

    def lookup(self, source: str, shard_path: str | Path, key: str) -> torch.Tensor | None:
        """``[layers, D]`` (pooled) or ``[L, layers, D]`` (``[frames, D]`` for encoder features); None when the
        shard file or the key is missing."""
        handle, rows = self._file(shard_file(self.cache_dir, source, shard_path))
        row = rows.get(key)
        if handle is None or row is None:
            return None
        if self.pooled:
            return handle.get_slice("pooled")[row:row + 1][0]
        offsets = handle.get_slice("offsets")[row:row + 2]
        return handle.get_slice("tokens")[int(offsets[0]):int(offsets[1])]
