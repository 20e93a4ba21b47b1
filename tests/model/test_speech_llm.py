"""SpeechLLM on tiny models: a tiny HuBERT encoder, the real projectors and tiny Llama / Gemma3 / Qwen2 LLMs with a
word-level tokenizer and a small chat template. Checks freezing, hidden states, prompt splicing, position shift,
logits and greedy generation."""

from __future__ import annotations

import pytest
import torch
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import (
    Gemma3ForCausalLM,
    Gemma3TextConfig,
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedTokenizerFast,
    Qwen2Config,
    Qwen2ForCausalLM,
)

from model.encoders import EncoderConfig, build_encoder
from model.llm import LLMConfig, decoder_of, llm_hidden_states, load_llm, position_ids_from_mask
from model.projectors import ProjectorConfig, build_projector
from model.speech_llm import IGNORE_INDEX, SpeechLLM
from tests.model.test_encoders import tiny_hubert

SPECIAL = ["<pad>", "<unk>", "<s>", "</s>", "<|user|>", "<|assistant|>", "<|end|>"]
WORDS = ("Can you transcribe this audio ? Listen to the and answer question : quick brown fox jumps over a lazy dog "
         "translate from English into German").split()
TEMPLATE = ("{{ bos_token }}{% for m in messages %}<|{{ m['role'] }}|> {{ m['content'] }} <|end|>{% endfor %}"
            "{% if add_generation_prompt %}<|assistant|>{% endif %}")
ASR = "Can you transcribe this audio?"
HIDDEN = 32
AUDIO_LENGTHS = (8000, 5000, 2400)  # samples at 16 kHz -> 24, 15, 7 HuBERT frames -> 6, 4, 2 tokens (stack 4)


def tiny_tokenizer(chat_template: bool = True) -> PreTrainedTokenizerFast:
    vocab = {t: i for i, t in enumerate(SPECIAL + WORDS)}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", unk_token="<unk>", bos_token="<s>",
                                   eos_token="</s>", additional_special_tokens=SPECIAL[4:])
    if chat_template:
        fast.chat_template = TEMPLATE
    return fast


def tiny_llm(arch: str, vocab: int):
    torch.manual_seed(0)
    common = dict(vocab_size=vocab, hidden_size=HIDDEN, intermediate_size=64, num_attention_heads=4,
                  num_key_value_heads=2, attn_implementation="sdpa", pad_token_id=0, eos_token_id=[3, 6])
    if arch == "llama":
        return LlamaForCausalLM(LlamaConfig(num_hidden_layers=6, **common))
    if arch == "gemma3":
        return Gemma3ForCausalLM(Gemma3TextConfig(num_hidden_layers=7, head_dim=8, sliding_window=4,
                                                  final_logit_softcapping=30.0, **common))
    return Qwen2ForCausalLM(Qwen2Config(num_hidden_layers=6, use_sliding_window=True, sliding_window=4,
                                        max_window_layers=2, **common))


def build(arch: str = "llama", projector: str = "linear", chat_template: bool = True, **llm_kwargs) -> SpeechLLM:
    torch.manual_seed(0)
    encoder = build_encoder(EncoderConfig(), model=tiny_hubert("layer"))  # layer norm, as hubert-large
    proj_cfg = ProjectorConfig(kind=projector, downsample=4, hidden=32, heads=2, ffn=64, layers=1)
    proj = build_projector(proj_cfg, encoder.dim, HIDDEN, encoder.frame_rate)
    tok = tiny_tokenizer(chat_template)
    cfg = LLMConfig(**llm_kwargs)
    llm, tok = load_llm(cfg, model=tiny_llm(arch, len(tok)), tokenizer=tok)
    return SpeechLLM(encoder, proj, llm, tok, cfg)


def audio_batch(lengths=AUDIO_LENGTHS, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    audio = torch.randn(len(lengths), max(lengths), generator=g) * 0.1
    mask = torch.arange(max(lengths))[None] < torch.tensor(lengths)[:, None]
    return audio * mask, mask


def text_batch(tok, texts, side: str = "right"):
    tok.padding_side = side
    enc = tok(texts, add_special_tokens=False, padding=True, return_tensors="pt")
    return enc["input_ids"], enc["attention_mask"].bool()


@pytest.fixture(scope="module")
def llama():
    return build("llama", layers="all")


# ------------------------------------------------------------------------------------------------ frozen parts
def test_only_projector_trains(llama):
    model = llama
    model.train()
    assert model.projector.training
    assert not any(m.training for m in model.encoder.modules()) and not any(m.training for m in model.llm.modules())
    assert {id(p) for p in model.trainable_parameters()} == {id(p) for p in model.projector.parameters()}
    model.projector.zero_grad(set_to_none=True)
    audio, mask = audio_batch()
    states, smask = model.speech_hidden_states(audio, mask)
    assert sorted(states) == [0, 5, 6] and smask.sum(1).tolist() == [6, 4, 2]
    loss = sum((s * smask[..., None]).pow(2).mean() for s in states.values())
    loss.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.projector.parameters())
    assert all(p.grad is None for p in model.encoder.parameters())
    assert all(p.grad is None for p in model.llm.parameters())
    model.eval()


def test_speech_hidden_states_equal_full_llm_forward(llama):
    audio, mask = audio_batch()
    with torch.no_grad():
        states, smask = llama.speech_hidden_states(audio, mask, layers=[0, 3, 6])
        embeds, emask = llama.speech_embeds(audio, mask)
        full = llama.llm(inputs_embeds=embeds, attention_mask=emask, position_ids=position_ids_from_mask(emask),
                         output_hidden_states=True).hidden_states
    assert torch.equal(smask, emask)
    for i in (0, 3, 6):  # on the real tokens (the packed default forward leaves zeros at padding)
        assert (states[i] - full[i])[smask].abs().max() <= 1e-5
    # right-padded speech: a sample alone gives the same states on its real tokens as inside the batch
    with torch.no_grad():
        alone, _ = llama.speech_hidden_states(audio[2:, :AUDIO_LENGTHS[2]], mask[2:, :AUDIO_LENGTHS[2]], layers=[6])
    assert torch.allclose(alone[6][0], states[6][2, :2], atol=1e-5)


@pytest.mark.parametrize("arch", ["llama", "gemma3", "qwen2"])
def test_text_hidden_states_match_input_ids_forward_and_ignore_padding_side(arch):
    model = build(arch, layers="all")
    tok = model.tokenizer
    texts = ["the quick brown fox jumps over a lazy dog", "a lazy dog", "the fox"]
    ids_r, mask_r = text_batch(tok, texts, "right")
    ids_l, mask_l = text_batch(tok, texts, "left")
    states_r, _ = model.text_hidden_states(ids_r, mask_r)
    states_l, _ = model.text_hidden_states(ids_l, mask_l)
    assert not any(s.requires_grad for s in states_r.values())
    with torch.no_grad():  # HF from input_ids (Gemma3 scales its embeddings inside embed_tokens)
        full = model.llm(input_ids=ids_r, attention_mask=mask_r, output_hidden_states=True).hidden_states
    for i, s in states_r.items():  # real tokens only: pads get position 0 here, HF's default gives them arange
        assert (s - full[i])[mask_r].abs().max() <= 1e-5, (arch, i)
        for b in range(len(texts)):  # same positions whatever the padding side
            assert torch.allclose(s[b][mask_r[b]], states_l[i][b][mask_l[b]], atol=1e-5), (arch, i, b)


# ------------------------------------------------------------------------------------------------ prompts
def _expected_pieces(tok, instruction):
    content = instruction if "<speech>" in instruction else f"<speech>\n{instruction}"
    text = tok.apply_chat_template([{"role": "user", "content": content}], tokenize=False, add_generation_prompt=True)
    before, after = text.split("<speech>")
    return (tok(before, add_special_tokens=False)["input_ids"], tok(after, add_special_tokens=False)["input_ids"])


@pytest.mark.parametrize("side", ["left", "right"])
def test_build_prompt_embeds_splices_speech(llama, side):
    tok, emb = llama.tokenizer, llama.llm.get_input_embeddings()
    speech = torch.randn(3, 6, HIDDEN, requires_grad=True)
    smask = torch.zeros(3, 6, dtype=torch.bool)
    for i, n in enumerate((6, 3, 1)):
        smask[i, :n] = True
    prompts = [ASR, "Listen to the <speech> and answer this question: the fox ?", ASR]
    answers = ["the quick brown fox", "a dog", "fox"]
    batch = llama.build_prompt_embeds(speech, smask, prompts, answers, padding_side=side)
    for i in range(3):
        before, after = _expected_pieces(tok, prompts[i])
        answer = tok(answers[i] + " <|end|>", add_special_tokens=False)["input_ids"]
        n_i = int(smask[i].sum())
        length = len(before) + n_i + len(after) + len(answer)
        real = batch.attention_mask[i].nonzero().squeeze(1)
        assert len(real) == length and real[-1] - real[0] == length - 1  # contiguous, padded on one side only
        assert (real[0] == 0) if side == "right" else (real[-1] == batch.attention_mask.shape[1] - 1)
        row, labels = batch.inputs_embeds[i, real], batch.labels[i, real]
        s0 = int(batch.speech_start[i]) - int(real[0])
        assert s0 == len(before) and int(batch.speech_length[i]) == n_i
        assert torch.equal(row[s0:s0 + n_i], speech[i, :n_i])  # exactly N_i speech embeddings at the placeholder
        ids = torch.tensor(before + after + answer)
        assert torch.equal(torch.cat([row[:s0], row[s0 + n_i:]]), emb(ids))
        assert (labels[: length - len(answer)] == IGNORE_INDEX).all() and labels[-len(answer):].tolist() == answer
        assert tok.decode(labels[labels != IGNORE_INDEX], skip_special_tokens=True) == answers[i]
        assert (batch.labels[i][~batch.attention_mask[i]] == IGNORE_INDEX).all()
    assert (batch.inputs_embeds[~batch.attention_mask] == 0).all()
    batch.inputs_embeds.sum().backward()
    assert torch.equal(speech.grad, smask[..., None].float().expand_as(speech))


def test_prompt_defaults_and_errors(llama):
    speech, smask = torch.randn(2, 3, HIDDEN), torch.ones(2, 3, dtype=torch.bool)
    smask[1, 2] = False
    gen = llama.build_prompt_embeds(speech, smask, [ASR, ASR])  # no answers: left padding, no labels
    assert gen.attention_mask[:, -1].all() and not gen.attention_mask[1, 0] and (gen.labels == IGNORE_INDEX).all()
    train = llama.build_prompt_embeds(speech, smask, [ASR, ASR], ["fox", "dog"])  # answers: right padding
    assert train.attention_mask[:, 0].all() and not train.attention_mask[1, -1]
    with pytest.raises(ValueError, match="at most once"):
        llama.build_prompt_embeds(speech, smask, ["<speech> <speech> ?", ASR])
    with pytest.raises(ValueError, match="prompts"):
        llama.build_prompt_embeds(speech, smask, [ASR])


def test_prompt_without_chat_template():
    model = build("llama", chat_template=False)
    batch = model.build_prompt_embeds(torch.randn(1, 2, HIDDEN), torch.ones(1, 2, dtype=torch.bool), [ASR], ["fox"])
    labels = batch.labels[0][batch.labels[0] != IGNORE_INDEX].tolist()
    assert labels == model.tokenizer("fox</s>", add_special_tokens=False)["input_ids"]
    assert int(batch.speech_start[0]) == 1  # "<s>" then the speech


# ------------------------------------------------------------------------------------------------ position shift
def _capture_positions(model):
    seen = []
    handle = decoder_of(model.llm).rotary_emb.register_forward_pre_hook(
        lambda _m, args, kwargs: seen.append((args[1] if len(args) > 1 else kwargs["position_ids"]).clone()),
        with_kwargs=True)
    return seen, handle


def test_position_shift_training_only_and_shared():
    model = build("llama", layers=[2], position_shift_max=400, packing="off")  # positions as [B, N] rows
    audio, amask = audio_batch()
    ids, tmask = text_batch(model.tokenizer, ["the quick fox", "a dog", "fox"])
    seen, handle = _capture_positions(model)
    try:
        model.eval()
        _, smask = model.speech_hidden_states(audio, amask)
        assert seen[-1][:, 0].tolist() == [0, 0, 0]  # no shift in eval
        model.train()
        torch.manual_seed(3)
        states, smask = model.speech_hidden_states(audio, amask)
        shift = seen[-1][:, 0]
        assert shift.max() > 0 and (seen[-1] == position_ids_from_mask(smask, shift)).all()
        with torch.no_grad():  # same as an explicit position_ids call
            ref = llm_hidden_states(model.llm, model.speech_embeds(audio, amask)[0], smask, [2],
                                    position_ids=position_ids_from_mask(smask, shift))
        assert torch.allclose(states[2], ref[2], atol=1e-6)
        model.paired_hidden_states(audio, amask, ids, tmask)  # shared: one draw for both sides
        assert torch.equal(seen[-2][:, 0], seen[-1][:, 0])
        model.cfg.position_shift_shared = False
        model.paired_hidden_states(audio, amask, ids, tmask)
        assert not torch.equal(seen[-2][:, 0], seen[-1][:, 0])
        model.speech_hidden_states(audio, amask, position_shift=7)  # explicit shift wins
        assert seen[-1][:, 0].tolist() == [7, 7, 7]
    finally:
        handle.remove()
        model.eval()


# ------------------------------------------------------------------------------------------------ logits, generate
@pytest.mark.parametrize("arch", ["llama", "gemma3"])
def test_answer_logits_equal_gathered_lm_logits_and_padding_side(arch):
    model = build(arch)
    speech, smask = torch.randn(2, 4, HIDDEN), torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0]], dtype=torch.bool)
    answers = ["the quick brown fox", "dog"]
    right = model.build_prompt_embeds(speech, smask, [ASR, ASR], answers, padding_side="right")
    left = model.build_prompt_embeds(speech, smask, [ASR, ASR], answers, padding_side="left")
    with torch.no_grad():
        logits_r = model.lm_logits(right.inputs_embeds, right.attention_mask)
        logits_l = model.lm_logits(left.inputs_embeds, left.attention_mask)
        ans, targets = model.answer_logits(right)
    keep = right.labels[:, 1:] != IGNORE_INDEX
    assert torch.equal(targets, right.labels[:, 1:][keep])
    assert (ans - logits_r[:, :-1][keep]).abs().max() <= 1e-5
    for b in range(2):
        assert torch.allclose(logits_r[b][right.attention_mask[b]], logits_l[b][left.attention_mask[b]], atol=1e-5)


def test_greedy_generate_equals_manual_argmax_loop(llama):
    audio, amask = audio_batch()
    prompts = [ASR, "Listen to the audio and answer this question: the fox ?", ASR]
    steps = 6
    got = llama.generate(audio, amask, prompts, max_new_tokens=steps)
    with torch.no_grad():
        embeds, smask = llama.speech_embeds(audio, amask)
        batch = llama.build_prompt_embeds(embeds, smask, prompts)
        x, m = batch.inputs_embeds, batch.attention_mask
        emb, stop, done = llama.llm.get_input_embeddings(), {3, 6}, torch.zeros(3, dtype=torch.bool)
        manual = []
        for _ in range(steps):
            nxt = llama.lm_logits(x, m)[:, -1].argmax(-1)
            nxt = torch.where(done, llama.tokenizer.pad_token_id, nxt)  # HF pads rows that finished
            manual.append(nxt)
            done |= torch.isin(nxt, torch.tensor(sorted(stop)))
            x = torch.cat([x, emb(nxt)[:, None]], 1)
            m = torch.cat([m, torch.ones(3, 1, dtype=torch.bool)], 1)
            if done.all():
                break
    manual = torch.stack(manual, 1)
    assert torch.equal(got, manual), (got, manual)
    texts = llama.generate_text(audio, amask, prompts, max_new_tokens=steps)
    assert texts == [t.strip() for t in llama.tokenizer.batch_decode(manual, skip_special_tokens=True)]


def test_qformer_projector_end_to_end():
    model = build("qwen2", projector="qformer", layers=[0, 3])
    model.train()
    audio, amask = audio_batch()
    ids, tmask = text_batch(model.tokenizer, ["the quick fox", "a dog", "fox"])
    speech, smask, text, tmask = model.paired_hidden_states(audio, amask, ids, tmask)
    pooled = {i: (speech[i] * smask[..., None]).sum(1) / smask.sum(1, keepdim=True) for i in speech}
    target = {i: (text[i] * tmask[..., None]).sum(1) / tmask.sum(1, keepdim=True) for i in text}
    loss = sum(1 - torch.cosine_similarity(pooled[i], target[i], dim=-1).mean() for i in pooled)
    loss.backward()
    assert all(p.grad is not None for p in model.trainable_parameters())
    assert all(p.grad is None for p in model.llm.parameters())
