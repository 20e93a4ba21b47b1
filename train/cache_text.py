"""Runs the frozen LLM once over every transcript and stores the hidden states that pretraining would recompute.

    python -m train.cache_text --config train/configs/contr-cos-all.yaml data.text_cache=/cache/contr-cos-all
    python -m train.cache_text --config ... data.text_cache=... --part 3 --parts 16     # one job-array task
    sbatch --array=0-15 slurm/cache_text.sh train/configs/contr-cos-all.yaml data.text_cache=/cache/x

It reads the *training* config, so the cache holds exactly what training needs: the sources of ``data``, its text
normalisation and tokenizer settings, the LLM and its ``llm.layers``, pooled states for the cosine objective and
full token sequences for the Wasserstein one (``--pooling`` overrides). Part p of n handles the shards whose
position (over all sources) is p mod n; finished shard files are kept, so a rerun only fills in what is missing.
Then train with the same config and ``data.text_cache`` set: the loader joins the states by key and the text-side
LLM forward is skipped.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections import defaultdict
from pathlib import Path

import torch
from tqdm.auto import tqdm

from core.errors import entry_point, user_errors
from data.collate import TextTokenizer, normalize_text
from data.shards import ShardReader
from data.stream import SourceCatalog
from data.text_cache import (
    CACHE_DTYPES,
    CacheSpec,
    llm_fingerprint,
    shard_file,
    tokenizer_fingerprint,
    write_manifest,
    write_shard,
)
from model.llm import llm_hidden_states, load_llm, num_llm_layers, position_ids_from_mask, resolve_layers

__all__ = ["cache_spec", "shards_to_build", "build_cache", "main"]

log = logging.getLogger("train.cache_text")


def cache_spec(cfg, llm, tokenizer, pooling: str, dtype: str) -> CacheSpec:
    """The spec a training config implies (training checks its cache against this)."""
    if cfg.llm.position_shift_max:
        raise ValueError(f"llm.position_shift_max={cfg.llm.position_shift_max}: text states with random position "
                         f"shifts cannot be cached; set llm.position_shift_max=0 or unset data.text_cache")
    return CacheSpec(llm=cfg.llm.name_or_path, llm_fingerprint=llm_fingerprint(cfg.llm.name_or_path),
                     tokenizer_sha256=tokenizer_fingerprint(tokenizer),
                     layers=tuple(resolve_layers(cfg.llm.layers, num_llm_layers(llm))), pooling=pooling,
                     dtype=dtype, text_norm=cfg.data.text_norm, add_special_tokens=cfg.data.add_special_tokens)


def default_pooling(cfg) -> str:
    return "none" if cfg.loss.objective.startswith("wasser") else "mean"


@torch.no_grad()
def text_states(llm, ids: list[list[int]], layers: list[int], pad_id: int, pooled: bool) -> list[torch.Tensor]:
    """Per transcript: ``[layers, D]`` (masked mean) or ``[L, layers, D]``, as SpeechLLM.text_hidden_states computes
    them without a position shift (float32)."""
    device = llm.get_input_embeddings().weight.device
    longest = max(len(i) for i in ids)
    tokens = torch.full((len(ids), longest), pad_id, dtype=torch.long, device=device)
    mask = torch.zeros(len(ids), longest, dtype=torch.bool, device=device)
    for row, i in enumerate(ids):
        tokens[row, :len(i)] = torch.tensor(i, device=device)
        mask[row, :len(i)] = True
    embeds = llm.get_input_embeddings()(tokens)
    states = llm_hidden_states(llm, embeds, mask, layers, position_ids=position_ids_from_mask(mask))
    stacked = torch.stack([states[layer].float() for layer in layers], dim=2)  # [B, L, layers, D]
    out = []
    for row, i in enumerate(ids):
        seq = stacked[row, :len(i)]
        out.append(seq.mean(dim=0) if pooled else seq)
    return out


def shards_to_build(cfg, cache_dir: Path, part: int, parts: int, overwrite: bool, counts: dict, what: str):
    """``(catalog, items, out_file)`` for every shard of ``cfg.data.sources`` that this part builds: part p of n
    takes the shards whose position over all sources is p mod n, and skips those whose file exists (unless
    ``overwrite``), counting both in ``counts``. Shared by the text and encoder caches."""
    position = 0
    for source in cfg.data.sources:
        catalog = SourceCatalog(source, cfg.data)
        items = defaultdict(list)
        for item in range(len(catalog)):
            items[catalog.shard_path(item)].append(item)
        for shard, shard_items in tqdm(items.items(), desc=f"{what} {source.name}", unit="shard"):
            mine, position = position % parts == part, position + 1
            out = shard_file(cache_dir, catalog.name, shard)
            if not mine or (out.is_file() and not overwrite):
                counts["shards_skipped" if mine else "shards_other_parts"] += 1
                continue
            yield catalog, shard_items, out


def build_cache(cfg, part: int = 0, parts: int = 1, pooling: str | None = None, dtype: str = "bfloat16",
                batch_size: int = 32, overwrite: bool = False) -> dict:
    """Writes this part's shard files and the manifest; returns counts."""
    cache_dir = Path(cfg.data.text_cache)
    llm, tokenizer = load_llm(cfg.llm)
    if torch.cuda.is_available():  # load_llm loads onto the CPU; the job has a GPU (cache_encoder moves its model too)
        llm = llm.cuda()
    pooling = pooling or default_pooling(cfg)
    spec = cache_spec(cfg, llm, tokenizer, pooling, dtype)
    write_manifest(cache_dir, spec, {s.name: s.path for s in cfg.data.sources})
    tok = TextTokenizer(tokenizer, add_special_tokens=cfg.data.add_special_tokens)
    pad_id = tok.pad_id()
    reader, counts = ShardReader(), defaultdict(int)
    for catalog, shard_items, out in shards_to_build(cfg, cache_dir, part, parts, overwrite, counts, "text cache"):
        keys, ids = [], []
        for item in shard_items:
            meta = json.loads(catalog.read(reader, item)[1])
            text = normalize_text(meta.get("text") or "", cfg.data.text_norm)
            token_ids = tok.encode(text) if text else []
            if not token_ids or len(token_ids) > cfg.data.max_text_tokens:
                counts["samples_without_text"] += 1  # the loader drops these samples too
                continue
            keys.append(catalog.keys[item])
            ids.append(token_ids)
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))  # similar lengths per batch: less padding
        states: list[torch.Tensor | None] = [None] * len(ids)
        for start in range(0, len(order), batch_size):
            chunk = order[start:start + batch_size]
            for i, s in zip(chunk, text_states(llm, [ids[i] for i in chunk], list(spec.layers), pad_id,
                                               pooling == "mean")):
                states[i] = s.to(CACHE_DTYPES[dtype]).cpu()
        write_shard(out, keys, states, pooling == "mean")
        counts["shards_written"] += 1
        counts["samples"] += len(keys)
    log.info("text cache %s (part %d of %d): %s", cache_dir, part, parts, dict(counts))
    return dict(counts)


@entry_point
def main(argv: list[str] | None = None) -> int:
    from train.config import ConfigError, load_config
    from train.pretrain import PretrainConfig

    parser = argparse.ArgumentParser(prog="python -m train.cache_text", description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", "-c", required=True, help="the training config (YAML)")
    parser.add_argument("--part", type=int, default=0, help="this task's part (job-array index)")
    parser.add_argument("--parts", type=int, default=1, help="number of parts (job-array size)")
    parser.add_argument("--pooling", choices=["mean", "none"], help="default: mean for cos, none for wasser")
    parser.add_argument("--dtype", choices=sorted(CACHE_DTYPES), default="bfloat16")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--overwrite", action="store_true", help="recompute shard files that exist")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="training-config overrides")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    cfg = load_config(PretrainConfig, args.config, args.overrides)
    if not cfg.data.text_cache:
        raise ConfigError("set data.text_cache=DIR (where the cache goes; training reads it from the same setting)",
                          "data.text_cache")
    if not 0 <= args.part < args.parts:
        parser.error(f"--part must be in [0, --parts), got {args.part} of {args.parts}")
    if cfg.data.tokenizer is None:
        cfg.data.tokenizer = cfg.llm.name_or_path
    with user_errors(ValueError):  # a cache built for other settings, sources that do not fit it
        build_cache(cfg, args.part, args.parts, args.pooling, args.dtype, args.batch_size, args.overwrite)
    return 0


if __name__ == "__main__":
    sys.exit(main())
