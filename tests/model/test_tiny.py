"""Tiny random-init models written as real HF directories and loaded by the project's normal loading code."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from model.encoders import EncoderConfig, build_encoder
from model.llm import LLMConfig, llm_hidden_states, load_llm, num_llm_layers, resolve_layers
from model.tiny import (
    MARKER,
    TinyConfig,
    ensure_tiny_models,
    main,
    read_texts,
    train_tokenizer,
    write_tiny_models,
)

REPO = Path(__file__).resolve().parents[2]
RUSSIAN = "Съешь же ещё этих мягких французских булок, да выпей чаю."
GERMAN = "Zwölf Boxkämpfer jagen Viktor quer über den großen Sylter Deich."
SENTENCES = [
    "the quick brown fox jumps over the lazy dog", "she sells sea shells by the sea shore",
    "a journey of a thousand miles begins with a single step", "how much wood would a woodchuck chuck",
    "the rain in spain stays mainly in the plain", "all that glitters is not gold",
    "seven small birds sing near an old river bank", "children walk slowly to school in the morning",
    "the meeting starts at half past nine on tuesday", "please turn off the lights when you leave",
    "it's 2024 and we've got 3 new models", "what time does the last train leave tonight?",
    RUSSIAN, "Москва — столица России.", "Мы пошли в парк и долго гуляли у реки.", "Сколько стоит этот билет?",
    "Я люблю читать книги по вечерам.", "Завтра будет тёплый и солнечный день.", "Где находится ближайшая аптека?",
    "Он работает инженером на большом заводе.", "Кошка спит на подоконнике.", "Пожалуйста, закройте дверь.",
    GERMAN, "Die Straße ist heute sehr ruhig.", "Wir fahren morgen früh nach München.", "Könnten Sie mir bitte helfen?",
    "Der Bäcker öffnet um sechs Uhr.", "Ich höre gern Musik beim Kochen.", "Das Wetter wird am Wochenende schön.",
    "Grüße aus Köln und Düsseldorf!", "Die Kinder spielen im Garten.", "Äpfel, Birnen und Pflaumen sind reif.",
]
ONE_SECOND = 16_000


@pytest.fixture(scope="module")
def build(tmp_path_factory):
    """Builds (once per config) a tiny encoder + LLM; returns the {"encoder", "llm"} paths."""
    cache: dict[tuple, dict[str, Path]] = {}

    def make(**kw) -> dict[str, Path]:
        key = tuple(sorted(kw.items()))
        if key not in cache:
            cache[key] = write_tiny_models(tmp_path_factory.mktemp("tiny"), TinyConfig(**kw), SENTENCES)
        return cache[key]

    return make


@pytest.mark.parametrize("encoder,frames", [("hubert", 49), ("whisper", 50)])
def test_encoder_loads_through_build_encoder(build, encoder, frames):
    path = build(encoder=encoder)["encoder"]
    assert {"config.json", "model.safetensors", "preprocessor_config.json"} <= {p.name for p in path.iterdir()}
    enc = build_encoder(EncoderConfig(name_or_path=str(path)))
    assert enc.kind == encoder and enc.frame_rate == 50.0 and enc.dim == 64
    # hubert: do_normalize from preprocessor_config.json, layer-norm front end -> attention mask; whisper: no norm
    assert enc.normalize == (encoder == "hubert")
    if encoder == "hubert":
        assert enc.use_attention_mask
    audio = 0.1 * torch.randn(2, ONE_SECOND, generator=torch.Generator().manual_seed(0))
    mask = torch.ones_like(audio, dtype=torch.bool)
    mask[1, ONE_SECOND // 2:] = False
    out = enc(audio, mask)
    assert out.features.shape == (2, frames, 64) and torch.isfinite(out.features).all()
    assert out.mask[0].all() and int(out.mask[1].sum()) == frames // 2


@pytest.mark.parametrize("llm,cls", [("llama", "LlamaForCausalLM"), ("gemma3", "Gemma3ForCausalLM"),
                                     ("qwen2", "Qwen2ForCausalLM")])
def test_llm_loads_through_load_llm(build, llm, cls):
    path = build(llm=llm)["llm"]
    model, tok = load_llm(LLMConfig(name_or_path=str(path), dtype="float32"))
    assert type(model).__name__ == cls and not any(p.requires_grad for p in model.parameters())
    cfg = model.config
    assert cfg.vocab_size == len(tok) <= 1000 and model.get_input_embeddings().num_embeddings == len(tok)
    assert (cfg.pad_token_id, cfg.bos_token_id, cfg.eos_token_id) == (tok.pad_token_id, tok.bos_token_id,
                                                                      tok.eos_token_id) == (0, 1, 2)
    assert tok.unk_token_id is None  # byte-level: nothing is unknown
    n = num_llm_layers(model)
    assert n == 11 and resolve_layers("all", n) == [0, 5, 10, 11]
    batch = tok([RUSSIAN, GERMAN], padding=True, return_tensors="pt")
    with torch.no_grad():
        logits = model(**batch).logits
    assert logits.shape == (*batch["input_ids"].shape, len(tok)) and torch.isfinite(logits).all()
    states = llm_hidden_states(model, model.get_input_embeddings()(batch["input_ids"]), batch["attention_mask"],
                               resolve_layers("all", n))
    assert sorted(states) == [0, 5, 10, 11] and states[11].shape[-1] == 64


def test_tokenizer_bytes_roundtrip_and_chat_template(build):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(build()["llm"], local_files_only=True)
    for text in (RUSSIAN, GERMAN, "Ωμέγα 日本語 😀 — unseen scripts still encode"):
        ids = tok(text, add_special_tokens=False)["input_ids"]
        assert tok.decode(ids) == text
    assert len(tok(RUSSIAN, add_special_tokens=False)["input_ids"]) < len(RUSSIAN.encode())  # merges were learnt
    assert tok(RUSSIAN)["input_ids"][0] == tok.bos_token_id  # add_special_tokens: BOS, as Llama tokenizers do
    messages = [{"role": "user", "content": "<speech>\nCan you transcribe this audio?"}]
    prompt = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert prompt == "<s>user: <speech>\nCan you transcribe this audio?</s>assistant:"
    full = tok.apply_chat_template(messages + [{"role": "assistant", "content": "hello"}], tokenize=False)
    assert full == prompt + " hello</s>"
    ids = tok(full, add_special_tokens=False)["input_ids"]
    assert ids[0] == tok.bos_token_id and ids[-1] == tok.eos_token_id and ids.count(tok.eos_token_id) == 2


def test_train_tokenizer_is_order_independent_and_sized():
    a, b = train_tokenizer(SENTENCES, 300), train_tokenizer(SENTENCES[::-1], 300)
    assert a.backend_tokenizer.to_str() == b.backend_tokenizer.to_str()
    assert len(a) == 300
    with pytest.raises(ValueError, match="no text"):
        train_tokenizer(["", "  "], 300)


def test_deterministic_bytes(tmp_path):
    cfg = TinyConfig(encoder="whisper", llm="gemma3")
    first = write_tiny_models(tmp_path / "a", cfg, SENTENCES)
    second = write_tiny_models(tmp_path / "b", cfg, list(reversed(SENTENCES)))
    for name in ("encoder", "llm"):
        for file in ("model.safetensors", "config.json"):
            assert (first[name] / file).read_bytes() == (second[name] / file).read_bytes(), (name, file)
    assert (first["llm"] / "tokenizer.json").read_bytes() == (second["llm"] / "tokenizer.json").read_bytes()
    other = write_tiny_models(tmp_path / "c", TinyConfig(encoder="whisper", llm="gemma3", seed=1), SENTENCES)
    assert (other["llm"] / "model.safetensors").read_bytes() != (first["llm"] / "model.safetensors").read_bytes()
    assert not [p for p in (tmp_path / "a").iterdir() if p.name.startswith(".")]  # the staging dir is gone


def test_ensure_skips_when_unchanged_and_rebuilds_otherwise(tmp_path):
    cfg = TinyConfig(encoder_layers=1, llm_layers=2)
    paths, built = ensure_tiny_models(tmp_path, cfg, SENTENCES)
    weights = paths["llm"] / "model.safetensors"
    stamp = weights.stat().st_mtime_ns
    assert built and json.loads((tmp_path / MARKER).read_text())["config"]["llm_layers"] == 2
    assert ensure_tiny_models(tmp_path, cfg, SENTENCES[::-1]) == (paths, False)
    assert weights.stat().st_mtime_ns == stamp
    assert ensure_tiny_models(tmp_path, cfg, SENTENCES[:-1])[1]  # other texts
    assert ensure_tiny_models(tmp_path, TinyConfig(encoder_layers=1, llm_layers=3), SENTENCES)[1]  # other config
    assert ensure_tiny_models(tmp_path, TinyConfig(encoder_layers=1, llm_layers=3), SENTENCES, overwrite=True)[1]
    (tmp_path / MARKER).unlink()  # e.g. a run interrupted during the swap: never trusted
    assert ensure_tiny_models(tmp_path, TinyConfig(encoder_layers=1, llm_layers=3), SENTENCES)[1]


def test_read_texts_takes_every_llm_text_field(tmp_path):
    asr = [{"id": "a", "audio": "audio/a.flac", "text": "hello there", "lang": "en", "task": "asr"},
           {"id": "b", "audio": "audio/b.flac", "text": RUSSIAN, "lang": "ru", "task": "asr"}]
    st = [{"id": "s", "audio": "audio/s.flac", "text": "good morning", "lang": "en", "task": "st",
           "translations": {"fr": "bonjour", "de": "Guten Morgen"}}]
    sqa = [{"id": f"q-q0{i}", "passage_id": "q", "audio": "audio/q.flac", "text": "Anna lives in Berlin.",
            "task": "sqa", "question": question, "answer": answer, "answer_start": 14}
           for i, (question, answer) in enumerate([("Where does Anna live?", "Berlin"), ("Who lives there?", "Anna")])]
    paths = []
    for name, lines in (("asr", asr), ("st", st), ("sqa", sqa)):
        paths.append(tmp_path / f"{name}.jsonl")
        paths[-1].write_text("".join(json.dumps(x, ensure_ascii=False) + "\n" for x in lines) + "\n", "utf-8")
    assert read_texts(paths) == ["hello there", RUSSIAN, "good morning", "Guten Morgen", "bonjour",
                                 "Anna lives in Berlin.", "Where does Anna live?", "Berlin", "Who lives there?",
                                 "Anna"]
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "ok"}\n[1, 2]\n', "utf-8")
    with pytest.raises(ValueError, match=r"bad.jsonl:2"):
        read_texts([bad])


@pytest.mark.parametrize("kw,match", [
    ({"encoder": "wav2vec2"}, "encoder"), ({"llm": "gpt2"}, "llm"), ({"encoder_dim": 60}, "encoder_dim"),
    ({"llm_hidden": 66}, "llm_hidden"), ({"llm_heads": 4, "llm_kv_heads": 3}, "llm_kv_heads"),
    ({"llm_layers": 0}, "llm_layers"), ({"vocab_size": 100}, "vocab_size"), ({"seed": -1}, "seed"),
])
def test_bad_config_values(kw, match):
    with pytest.raises(ValueError, match=match):
        TinyConfig(**kw)


def test_cli_errors_look_like_the_project(capsys, tmp_path):
    assert main(["--out", str(tmp_path), "--text-file", str(tmp_path / "none.txt"), "llm=gpt2"]) == 2
    err = capsys.readouterr().err  # a config error: the commands' one ERROR line (core.errors)
    assert err.startswith("ERROR python -m model.tiny: ") and "'llm'" in err
    with pytest.raises(SystemExit) as e:
        main(["--out", str(tmp_path), "llm_layers=3"])
    assert e.value.code == 2 and "--manifest" in capsys.readouterr().err


def test_cli_builds_then_skips(tmp_path):
    manifest = tmp_path / "manifest.jsonl"
    manifest.write_text("".join(json.dumps({"audio": f"{i}.flac", "text": t}, ensure_ascii=False) + "\n"
                                for i, t in enumerate(SENTENCES)), "utf-8")
    extra = tmp_path / "extra.txt"
    extra.write_text("one more line\nund noch eine\n", "utf-8")
    out = tmp_path / "tiny"
    cmd = [sys.executable, "-m", "model.tiny", "--out", str(out), "--manifest", str(manifest), "llm=qwen2",
           "--text-file", str(extra), "llm_layers=5", "encoder_layers=1"]

    def run():
        proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
        return proc

    def paths(proc) -> list[str]:
        # the directories are the last lines: a library may print before them (with accelerate installed,
        # transformers imports DeepSpeed, whose accelerator detection logs a line to stdout)
        return proc.stdout.splitlines()[-2:]

    first = run()
    assert paths(first) == [f"encoder: {out / 'encoder'}", f"llm: {out / 'llm'}"]
    record = json.loads((out / MARKER).read_text())
    assert record["config"]["llm"] == "qwen2" and record["config"]["llm_layers"] == 5
    assert record["num_texts"] == len(SENTENCES) + 2
    stamp = (out / "llm" / "model.safetensors").stat().st_mtime_ns
    second = run()
    assert "up to date" in second.stderr and paths(second) == paths(first)
    assert (out / "llm" / "model.safetensors").stat().st_mtime_ns == stamp
    model, _ = load_llm(LLMConfig(name_or_path=str(out / "llm"), dtype="float32"))
    assert num_llm_layers(model) == 5
    # another process, the same bytes: tokenizer training and weight init do not depend on the process
    here = write_tiny_models(tmp_path / "here", TinyConfig(llm="qwen2", llm_layers=5, encoder_layers=1),
                             read_texts([manifest]) + ["one more line", "und noch eine"])
    for name in ("encoder", "llm"):
        assert (here[name] / "model.safetensors").read_bytes() == (out / name / "model.safetensors").read_bytes()
    assert (here["llm"] / "tokenizer.json").read_bytes() == (out / "llm" / "tokenizer.json").read_bytes()
