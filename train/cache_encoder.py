"""Runs the frozen speech encoder once over every utterance and stores its features, for runs of many epochs.

    python -m train.cache_encoder --config train/configs/demo.yaml data.encoder_cache=/cache/demo-encoder
    python -m train.cache_encoder --config ... data.encoder_cache=... --part 3 --parts 16      # one job-array task
    sbatch --array=0-15 slurm/cache_encoder.sh CONFIG data.encoder_cache=/cache/x

The encoder is frozen and the loader's audio is deterministic (decode + resample, no augmentation), so its output
for an utterance is the same every epoch. This writes, per audio shard, the ``[frames, D]`` features of each sample
(the same layout and reader as the text cache, data/text_cache.py) with a manifest recording the encoder (path and
a fingerprint of its weights), its settings (kind, layer, dtype, waveform normalisation), the sample rate and the
stored precision; training with ``data.encoder_cache`` set refuses a cache built for anything else. Each utterance
is encoded in length-sorted batches with its attention mask, as training does; for encoders without one
(group-norm wav2vec2/HuBERT) padded batches change the features slightly, and the cache holds the less padded
version.

Disk: frames x D x bytes per utterance (50 Hz: 6 s of HuBERT-large in fp16 is 300 x 1024 x 2 B = 600 KB, about
360 GB per 1,000 h; Whisper base (D=512) half that).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import torch

from core.errors import entry_point, user_errors
from data.audio import BadSample, decode_audio
from data.shards import ShardReader
from data.text_cache import CACHE_DTYPES, check_spec, llm_fingerprint, write_manifest, write_shard
from model.encoders import build_encoder
from train.cache_text import shards_to_build

__all__ = ["EncoderCacheSpec", "encoder_cache_spec", "check_encoder_cache", "build_cache", "main"]

log = logging.getLogger("train.cache_encoder")


@dataclass(frozen=True)
class EncoderCacheSpec:
    encoder: str
    """Encoder name or path the features came from."""
    encoder_fingerprint: str
    """sha256 over the encoder's config.json and its weight files' names and sizes."""
    settings: dict
    """The encoder config (kind, layer, dtype, normalize_waveform)."""
    sample_rate: int
    """Rate the audio was resampled to (data.sample_rate)."""
    dtype: str
    """Stored precision (a key of CACHE_DTYPES)."""


def encoder_cache_spec(cfg, dtype: str) -> EncoderCacheSpec:
    """The spec a training config implies (training checks its cache against this)."""
    settings = {k: v for k, v in dataclasses.asdict(cfg.encoder).items() if k != "name_or_path"}
    return EncoderCacheSpec(encoder=cfg.encoder.name_or_path, encoder_fingerprint=llm_fingerprint(
        cfg.encoder.name_or_path), settings=settings, sample_rate=cfg.data.sample_rate, dtype=dtype)


def check_encoder_cache(cfg) -> dict:
    """Refuses a cache built for other settings; returns its manifest."""
    from data.text_cache import read_manifest

    saved = read_manifest(cfg.data.encoder_cache, "cache_encoder", "data.encoder_cache")["spec"]
    return check_spec(cfg.data.encoder_cache, encoder_cache_spec(cfg, saved.get("dtype", "")), "cache_encoder",
                      "data.encoder_cache")


@torch.no_grad()
def encoder_features(encoder, waves: list[torch.Tensor]) -> list[torch.Tensor]:
    """Per waveform, its ``[frames, D]`` features from one padded batch with masks (float32)."""
    device = next(encoder.parameters()).device
    longest = max(w.shape[0] for w in waves)
    audio = torch.zeros(len(waves), longest, device=device)
    mask = torch.zeros(len(waves), longest, dtype=torch.bool, device=device)
    for row, w in enumerate(waves):
        audio[row, :w.shape[0]] = w.to(device)
        mask[row, :w.shape[0]] = True
    out = encoder(audio, mask)
    return [out.features[row, out.mask[row]].float().cpu() for row in range(len(waves))]


def build_cache(cfg, part: int = 0, parts: int = 1, dtype: str = "float16", batch_size: int = 16,
                overwrite: bool = False) -> dict:
    """Writes this part's shard files and the manifest; returns counts."""
    cache_dir = Path(cfg.data.encoder_cache)
    encoder = build_encoder(cfg.encoder)
    if torch.cuda.is_available():
        encoder = encoder.cuda()
    write_manifest(cache_dir, encoder_cache_spec(cfg, dtype), {s.name: s.path for s in cfg.data.sources})
    reader, counts = ShardReader(), defaultdict(int)
    for catalog, shard_items, out in shards_to_build(cfg, cache_dir, part, parts, overwrite, counts, "encoder cache"):
        keys, waves = [], []
        for item in shard_items:
            try:
                audio = decode_audio(catalog.read(reader, item)[0], cfg.data.sample_rate)
            except BadSample as exc:  # the loader skips and counts the same samples
                counts[f"skipped_{exc.reason}"] += 1
                log.warning("%s: %s: not cached (%s: %s)", out.name, catalog.keys[item], exc.reason, exc.detail)
                continue
            keys.append(catalog.keys[item])
            waves.append(torch.as_tensor(audio.samples, dtype=torch.float32))
        order = sorted(range(len(waves)), key=lambda i: waves[i].shape[0])  # similar lengths per batch
        features: list[torch.Tensor | None] = [None] * len(waves)
        for start in range(0, len(order), batch_size):
            chunk = order[start:start + batch_size]
            for i, f in zip(chunk, encoder_features(encoder, [waves[i] for i in chunk])):
                features[i] = f.to(CACHE_DTYPES[dtype])
        write_shard(out, keys, features, pooled=False)
        counts["shards_written"] += 1
        counts["samples"] += len(keys)
    log.info("encoder cache %s (part %d of %d): %s", cache_dir, part, parts, dict(counts))
    return dict(counts)


@entry_point
def main(argv: list[str] | None = None) -> int:
    from train.config import ConfigError, load_config
    from train.pretrain import PretrainConfig

    parser = argparse.ArgumentParser(prog="python -m train.cache_encoder", description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", "-c", required=True, help="the training config (YAML)")
    parser.add_argument("--part", type=int, default=0, help="this task's part (job-array index)")
    parser.add_argument("--parts", type=int, default=1, help="number of parts (job-array size)")
    parser.add_argument("--dtype", choices=sorted(CACHE_DTYPES), default="float16")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--overwrite", action="store_true", help="recompute shard files that exist")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="training-config overrides")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    cfg = load_config(PretrainConfig, args.config, args.overrides)
    if not cfg.data.encoder_cache:
        raise ConfigError("set data.encoder_cache=DIR (where the cache goes; training reads it from the same "
                          "setting)", "data.encoder_cache")
    if not 0 <= args.part < args.parts:
        parser.error(f"--part must be in [0, --parts), got {args.part} of {args.parts}")
    with user_errors(ValueError, OSError):  # a cache built for other settings, a model that is not on disk
        build_cache(cfg, args.part, args.parts, args.dtype, args.batch_size, args.overwrite)
    print(json.dumps({"cache": cfg.data.encoder_cache}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
