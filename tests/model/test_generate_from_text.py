"""SpeechLLM.generate_from_text: the LLM alone answering text-only user turns (cascaded baselines).

A tiny LLM taught to read (model/tiny_reader.py) so that answers are words that stop at the end-of-turn marker, or
run into max_new_tokens. Checked: a batch of prompts of different lengths (left padding) gives each prompt's answer
alone; every answer equals HF ``generate`` on the chat-template-rendered prompt ids, with the stop and pad ids that
`generate_from_embeds` uses; the default length is ``LLMConfig.max_new_tokens``.
"""

from __future__ import annotations

import json

import pytest
import torch

from model.encoders import EncoderConfig
from model.llm import LLMConfig
from model.projectors import ProjectorConfig
from model.tiny import TinyConfig, read_texts, write_tiny_models
from model.tiny_reader import ReadingConfig, read_lessons
from train.pretrain_model import build_speech_llm

TEXTS = ["the quick brown fox jumps over the lazy dog", "seven small birds sing", "children walk slowly to school",
         "an old river bank under bright morning light"]
PROMPTS = ["hi", f"{TEXTS[0]}\nCan you transcribe this audio?", f"{TEXTS[1]}\nTranscribe the speech.",
           "children walk\nWhat is being said in this recording?", f"{TEXTS[3]} {TEXTS[3]}\nWrite it down."]
MAX_NEW = 16


@pytest.fixture(scope="module")
def tiny_dirs(tmp_path_factory):
    root = tmp_path_factory.mktemp("reader")
    manifest = root / "manifest.jsonl"
    manifest.write_text("".join(json.dumps({"id": f"u{i}", "audio": f"audio/u{i}.flac", "text": t, "duration": 1.0})
                                + "\n" for i, t in enumerate(TEXTS)), "utf-8")
    cfg = TinyConfig(llm_layers=2, encoder_layers=1, vocab_size=300, reading=ReadingConfig(steps=60, batch_size=8))
    return write_tiny_models(root / "tiny", cfg, read_texts([manifest]), read_lessons([manifest]))


def _speech_llm(dirs, **llm_kw):
    return build_speech_llm(EncoderConfig(name_or_path=str(dirs["encoder"])),
                            ProjectorConfig(kind="mlp", mlp_hidden=32),
                            LLMConfig(name_or_path=str(dirs["llm"]), dtype="float32", **llm_kw))


@pytest.fixture(scope="module")
def speech_llm(tiny_dirs):
    return _speech_llm(tiny_dirs)


def _reference(speech_llm, content: str, max_new_tokens: int) -> list[int]:
    """New token ids of HF generate on the rendered prompt's ids (no padding, no embeddings)."""
    tok = speech_llm.tokenizer
    text = tok.apply_chat_template([{"role": "user", "content": content}], tokenize=False, add_generation_prompt=True)
    ids = tok(text, add_special_tokens=False)["input_ids"]
    assert ids.count(tok.bos_token_id) == 1 and ids[0] == tok.bos_token_id  # the template's BOS, not a second one
    out = speech_llm.llm.generate(input_ids=torch.tensor([ids]), attention_mask=torch.ones_like(torch.tensor([ids])),
                                  do_sample=False, num_beams=1, max_new_tokens=max_new_tokens,
                                  eos_token_id=[tok.eos_token_id], pad_token_id=tok.pad_token_id)
    return out[0, len(ids):].tolist()


def test_batch_answers_equal_single_prompt_answers(speech_llm):
    lengths = {len(speech_llm._ids(speech_llm._render([{"role": "user", "content": p}], True))) for p in PROMPTS}
    assert len(lengths) == len(PROMPTS)  # every row is padded differently
    batch = speech_llm.generate_from_text(PROMPTS, MAX_NEW)
    assert batch == [speech_llm.generate_from_text([p], MAX_NEW)[0] for p in PROMPTS]
    assert batch == speech_llm.generate_from_text(PROMPTS[::-1], MAX_NEW)[::-1]
    assert len(set(batch)) > 1 and all(batch)


def test_answers_equal_hf_generate_on_the_rendered_prompt(speech_llm):
    tok = speech_llm.tokenizer
    assert speech_llm._stop_ids() == [tok.eos_token_id]
    refs = [_reference(speech_llm, p, MAX_NEW) for p in PROMPTS]
    # both ways of ending are covered: the end-of-turn marker before the limit, and the limit itself
    assert any(r[-1] == tok.eos_token_id and len(r) < MAX_NEW for r in refs)
    assert any(len(r) == MAX_NEW and tok.eos_token_id not in r for r in refs)
    expected = [tok.decode(r, skip_special_tokens=True).strip() for r in refs]
    assert speech_llm.generate_from_text(PROMPTS, MAX_NEW) == expected
    assert TEXTS[1] in expected  # taught to read: the transcription prompt is answered with its text


def test_default_length_is_the_configs_max_new_tokens(tiny_dirs, speech_llm):
    short = _speech_llm(tiny_dirs, max_new_tokens=3)
    tok = short.tokenizer
    expected = [tok.decode(_reference(short, p, 3), skip_special_tokens=True).strip() for p in PROMPTS]
    assert short.generate_from_text(PROMPTS) == expected == speech_llm.generate_from_text(PROMPTS, 3)
    assert expected != speech_llm.generate_from_text(PROMPTS, MAX_NEW)
