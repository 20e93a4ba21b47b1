"""Configuration checks that need no model weights, run before any are loaded.

Loading an 8B LLM takes minutes on every rank, and a job that then dies on a typo has also waited in the queue.
`preflight` reads only the models' config.json files (and the caches' manifests) and stops with one line that names
the setting and the fix:

* an encoder or LLM that is neither a local directory, a model in the HF cache, nor a known ``pypi:`` spec;
* ``llm.layers`` beyond the LLM's depth;
* a contrastive batch with nothing to contrast against (fewer than 2 samples per rank without
  ``loss.gather_negatives``), or an ``engine.global_batch_size`` (the number of contrastive candidates with GradCache)
  that is no whole number of micro-batches on this many ranks;
* a text cache built for another LLM, other layers or other text settings.

The full checks (tokenizer fingerprint, encoder cache spec) still run after loading, where they need the models.
"""

from __future__ import annotations

import copy
import logging
from pathlib import Path

from model.llm import resolve_layers
from train.config import ConfigError
from train.engine import resolve_grad_accum

log = logging.getLogger(__name__)


def preflight(cfg, world_size: int = 1) -> None:
    """Raises ConfigError for the first setting of ``cfg`` (a pretraining or finetuning config) that cannot work."""
    model_config("encoder.name_or_path", cfg.encoder.name_or_path)
    llm_config = model_config("llm.name_or_path", cfg.llm.name_or_path)
    depth = num_hidden_layers(llm_config)
    try:
        layers = resolve_layers(cfg.llm.layers, depth)
    except ValueError as exc:
        raise ConfigError(f"llm.layers={cfg.llm.layers!r}: {exc}; {cfg.llm.name_or_path} has {depth} layers, so "
                          f"hidden states 0..{depth} exist") from None
    try:  # on a copy: the runner sets grad_accum itself
        resolve_grad_accum(copy.copy(cfg.engine), cfg.data.batch_size, world_size)
    except ValueError as exc:
        raise ConfigError(f"engine.global_batch_size={cfg.engine.global_batch_size}: {exc}") from None
    loss = getattr(cfg, "loss", None)
    if loss is not None and loss.contrastive_kind is not None:
        negatives = cfg.data.batch_size * (world_size if loss.gather_negatives else 1) - 1
        if negatives < 1:
            raise ConfigError(f"data.batch_size={cfg.data.batch_size} leaves the {loss.objective} InfoNCE loss no "
                              f"negatives to contrast against (it needs >= 2 samples per batch): raise "
                              f"data.batch_size, or set loss.gather_negatives=true on several ranks")
    text_cache = getattr(cfg.data, "text_cache", None)
    if text_cache and loss is not None:
        _check_text_cache(cfg, text_cache, layers)


def model_config(setting: str, name_or_path: str):
    """The HF config of a model spec, from local files only; ConfigError naming ``setting`` when there is none."""
    from transformers import AutoConfig

    from model.pretrained import resolve_model

    try:
        path = resolve_model(name_or_path)  # pypi: specs are converted once here, as loading would
        return AutoConfig.from_pretrained(path, local_files_only=True)
    except (OSError, ValueError) as exc:
        hub_name = "/" in name_or_path and not Path(name_or_path).is_absolute() and not name_or_path.startswith(".")
        hint = (f"a model in the HF cache (download it where the network is: `huggingface-cli download "
                f"{name_or_path}`) or a local directory" if hub_name else "a local directory with config.json")
        raise ConfigError(f"{setting}={name_or_path!r} cannot be found: nothing is downloaded at run time, so it must "
                          f"be {hint} (cause: {' '.join(str(exc).split())[:300]})") from None


def num_hidden_layers(config) -> int:
    """Decoder layers of a causal LM config (Gemma 3 and other multimodal configs keep them in text_config)."""
    text = getattr(config, "text_config", None) or config
    return int(text.num_hidden_layers)


def _check_text_cache(cfg, text_cache: str, layers: list[int]) -> None:
    from data.text_cache import llm_fingerprint, read_manifest

    try:
        saved = read_manifest(text_cache)["spec"]
    except (OSError, ValueError) as exc:
        raise ConfigError(f"data.text_cache={text_cache}: {exc}") from None
    rebuild = "rebuild it with slurm/cache_text.sh for this config, or unset data.text_cache"
    fingerprint = llm_fingerprint(cfg.llm.name_or_path)  # as train.cache_text.cache_spec computes it
    if saved.get("llm") != cfg.llm.name_or_path or saved.get("llm_fingerprint") not in (None, fingerprint):
        raise ConfigError(f"data.text_cache={text_cache} was built for the LLM {saved.get('llm')!r}, this run uses "
                          f"llm.name_or_path={cfg.llm.name_or_path!r} (or its files changed): {rebuild}")
    if list(saved.get("layers", layers)) != layers:
        raise ConfigError(f"data.text_cache={text_cache} holds layers {list(saved['layers'])}, llm.layers="
                          f"{cfg.llm.layers!r} needs {layers}: {rebuild}")
    for key in ("text_norm", "add_special_tokens"):
        if key in saved and saved[key] != getattr(cfg.data, key):
            raise ConfigError(f"data.text_cache={text_cache} was built with data.{key}={saved[key]!r}, this run has "
                              f"{getattr(cfg.data, key)!r}: {rebuild}")
