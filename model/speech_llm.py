"""SpeechLLM: frozen speech encoder -> trainable projector -> frozen LLM.

Three uses share this module: the contrastive pretraining (hidden states of speech and of the bare transcript at
selected LLM layers, `paired_hidden_states`), the ASR / finetuning losses (speech spliced into a chat prompt,
`build_prompt_embeds` + `lm_logits` / `answer_logits`) and evaluation (`generate`). Only the projector trains.

The encoder and projector are duck-typed: ``encoder(audio [B,T], audio_mask [B,T])`` returns an object with
``features [B,F,D]`` and ``mask [B,F]``; ``projector(features, mask)`` returns ``(embeds [B,N,D_llm], mask [B,N])``.
Masks are bool, True on real frames / tokens.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Literal, NamedTuple

import torch
from torch import nn

from model.llm import (
    LLMConfig,
    checkpointed_layers,
    decoder_of,
    freeze,
    llm_hidden_states,
    num_llm_layers,
    position_ids_from_mask,
    resolve_layers,
)
from model.packing import VARLEN_ATTENTION, packed_inputs, unpack

__all__ = ["SpeechLLM", "PromptBatch", "IGNORE_INDEX"]

log = logging.getLogger(__name__)

IGNORE_INDEX = -100  # label of every position that is not an answer token (the PyTorch cross-entropy default)

HiddenStates = dict[int, torch.Tensor]


class PromptBatch(NamedTuple):
    """A batch of chat prompts with speech spliced in, ready for the LLM."""

    inputs_embeds: torch.Tensor
    """[B, S, D] prompt embeddings (zeros on padding)."""
    attention_mask: torch.Tensor
    """[B, S] bool, True on real positions."""
    labels: torch.Tensor
    """[B, S] answer token ids, IGNORE_INDEX everywhere else (prompt, speech, padding)."""
    speech_start: torch.Tensor
    """[B] position of the first speech embedding in each row."""
    speech_length: torch.Tensor
    """[B] number of speech embeddings in each row."""


class SpeechLLM(nn.Module):
    """Frozen encoder and LLM around a trainable projector.

    Args:
        encoder: frozen speech encoder (see the module docstring for the call signature).
        projector: trainable module mapping encoder features to LLM input embeddings.
        llm: HF causal LM (frozen here, whatever it was before).
        tokenizer: the LLM's tokenizer; its chat template builds the finetuning prompts.
        cfg: the LLM config (layers, position shift, placeholder).
    """

    def __init__(self, encoder: nn.Module, projector: nn.Module, llm: nn.Module, tokenizer, cfg: LLMConfig):
        super().__init__()
        self.encoder = freeze(encoder)
        self.projector = projector
        self.llm = freeze(llm)
        self.tokenizer = tokenizer
        self.cfg = cfg
        self.num_layers = num_llm_layers(llm)
        self.layers = resolve_layers(cfg.layers, self.num_layers)  # default indices: cfg.layers for this LLM
        self._prompt_cache: dict[str, tuple[list[int], list[int], str]] = {}

    # ------------------------------------------------------------------------------------------ frozen / trainable
    def train(self, mode: bool = True) -> SpeechLLM:
        """Sets the projector's mode; encoder and LLM always stay in eval (no dropout, frozen statistics)."""
        super().train(mode)
        self.encoder.eval()
        self.llm.eval()
        return self

    def trainable_parameters(self) -> list[nn.Parameter]:
        """The parameters the optimizer updates: the projector's (those requiring grad)."""
        return [p for p in self.projector.parameters() if p.requires_grad]

    @property
    def hidden_size(self) -> int:
        """Width of the LLM's hidden states (the projector's output width)."""
        return self.llm.get_input_embeddings().embedding_dim

    @property
    def embed_dtype(self) -> torch.dtype:
        return self.llm.get_input_embeddings().weight.dtype

    @property
    def device(self) -> torch.device:
        return self.llm.get_input_embeddings().weight.device

    # ------------------------------------------------------------------------------------------ hidden states
    def speech_embeds(self, audio: torch.Tensor, audio_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Encoder (no grad) -> projector; returns ``(embeds [B,N,D_llm] in the LLM's dtype, mask [B,N] bool)``."""
        with torch.no_grad():
            enc = self.encoder(audio, audio_mask)
        embeds, mask = self.projector(enc.features, enc.mask)
        return embeds.to(self.embed_dtype), mask.bool()

    def draw_position_shift(self, batch_size: int) -> torch.Tensor | None:
        """Random per-sample position offsets in [0, position_shift_max] while training, else None.

        Drawn from the CPU generator so the draw is the same on any device and is covered by the CPU RNG state that
        checkpoints save.
        """
        if not self.training or self.cfg.position_shift_max == 0:
            return None
        return torch.randint(0, self.cfg.position_shift_max + 1, (batch_size,))

    def states_from_embeds(self, embeds: torch.Tensor, mask: torch.Tensor, layers=None, shift=None) -> HiddenStates:
        """LLM hidden states at `layers` (default ``cfg.layers``) of an embedded sequence; ``shift`` None draws the
        training position shift. The building block of the two methods below, public so that the trainer can time
        encoder, projector and LLM separately."""
        layers = self.layers if layers is None else resolve_layers(layers, self.num_layers)
        if shift is None:
            shift = self.draw_position_shift(embeds.shape[0])
        mode = self.packing_mode
        with self._checkpointing():
            if mode != "off":
                plan, inputs = packed_inputs(self.llm, embeds, mask, shift, mode, self.cfg.pack_capacity)
                states = llm_hidden_states(self.llm, layers=layers, early_stop=self.cfg.early_stop, **inputs)
                return {layer: unpack(h, mask, plan) for layer, h in states.items()}
            position_ids = position_ids_from_mask(mask, None if shift is None
                                                  else torch.as_tensor(shift).to(mask.device))
            return llm_hidden_states(self.llm, embeds, mask, layers, position_ids=position_ids,
                                     early_stop=self.cfg.early_stop)

    def _checkpointing(self):
        """Activation checkpointing of the LLM's decoder layers (``cfg.activation_checkpointing``) for one call."""
        return checkpointed_layers(self.llm, self.cfg.activation_checkpointing)

    @property
    def packing_mode(self) -> str:
        """"off", "rows" or "varlen": `LLMConfig.packing` with "auto" resolved for this model's attention."""
        if self.cfg.packing != "auto":
            return self.cfg.packing
        return "varlen" if self.llm.config._attn_implementation in VARLEN_ATTENTION else "rows"

    def speech_hidden_states(self, audio: torch.Tensor, audio_mask: torch.Tensor,
                             layers: str | Sequence[int] | None = None,
                             position_shift: torch.Tensor | int | None = None) -> tuple[HiddenStates, torch.Tensor]:
        """LLM hidden states with the projected speech as the whole input sequence (no prompt).

        Gradients flow through the frozen LLM into the projector.

        Args:
            audio: [B, T] waveforms; audio_mask: [B, T] bool.
            layers: layer spec or indices; default ``cfg.layers``.
            position_shift: int or [B] offsets added to the position ids; None draws them (training only).

        Returns:
            ``({layer: [B, N, D]}, mask [B, N])``.
        """
        embeds, mask = self.speech_embeds(audio, audio_mask)
        return self.states_from_embeds(embeds, mask, layers, position_shift), mask

    @torch.no_grad()
    def text_hidden_states(self, text_ids: torch.Tensor, text_mask: torch.Tensor,
                           layers: str | Sequence[int] | None = None,
                           position_shift: torch.Tensor | int | None = None) -> tuple[HiddenStates, torch.Tensor]:
        """Frozen-LLM hidden states of bare transcript tokens (no prompt or template), without grad.

        Returns:
            ``({layer: [B, L, D]}, mask [B, L] bool)``.
        """
        text_mask = text_mask.bool()
        embeds = self.llm.get_input_embeddings()(text_ids)
        return self.states_from_embeds(embeds, text_mask, layers, position_shift), text_mask

    def paired_hidden_states(self, audio, audio_mask, text_ids, text_mask, layers=None):
        """Speech and text hidden states for contrastive training, drawing the position shift once per sample when
        ``cfg.position_shift_shared`` (the paper shifts both sequences), else once per side.

        Returns:
            ``(speech_states, speech_mask, text_states, text_mask)``.
        """
        shift = self.draw_position_shift(audio.shape[0])
        speech, speech_mask = self.speech_hidden_states(audio, audio_mask, layers, position_shift=shift)
        text_shift = shift if self.cfg.position_shift_shared else self.draw_position_shift(audio.shape[0])
        text, text_mask = self.text_hidden_states(text_ids, text_mask, layers, position_shift=text_shift)
        return speech, speech_mask, text, text_mask

    # ------------------------------------------------------------------------------------------ chat prompts
    def _user_content(self, instruction: str) -> str:
        ph = self.cfg.speech_placeholder
        content = instruction if ph in instruction else f"{ph}\n{instruction}"
        if content.count(ph) != 1:
            raise ValueError(f"prompt must contain the speech placeholder {ph!r} at most once: {instruction!r}")
        return content

    def _prompt_pieces(self, instruction: str) -> tuple[list[int], list[int], str]:
        """Token ids before and after the placeholder in the rendered generation prompt, and the prompt text.

        Prompts come from short lists, so each is rendered and tokenized once.
        """
        if instruction not in self._prompt_cache:
            ph = self.cfg.speech_placeholder
            text = self._render([{"role": "user", "content": self._user_content(instruction)}], True)
            if text.count(ph) != 1:
                raise ValueError(f"the chat template dropped or repeated the placeholder {ph!r}: {text!r}")
            before, after = text.split(ph)
            self._prompt_cache[instruction] = (self._ids(before), self._ids(after), text)
        return self._prompt_cache[instruction]

    def _render(self, messages: list[dict], add_generation_prompt: bool) -> str:
        tok = self.tokenizer
        if getattr(tok, "chat_template", None):
            return tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt)
        # Base LLMs ship no chat template: fall back to "<bos>user text\n" + answer + eos.
        text = (tok.bos_token or "") + messages[0]["content"] + "\n"
        return text + (messages[1]["content"] + (tok.eos_token or "") if len(messages) > 1 else "")

    def _ids(self, text: str) -> list[int]:
        # The rendered template already holds BOS and role markers, so the tokenizer must not add its own.
        return self.tokenizer(text, add_special_tokens=False)["input_ids"] if text else []

    def _answer_ids(self, instruction: str, prompt_text: str, answer: str) -> list[int]:
        """Tokens the model must produce after the prompt: the answer plus the template's end-of-turn marker,
        taken as whatever the full conversation renders after the generation prompt (template-agnostic)."""
        messages = [{"role": "user", "content": self._user_content(instruction)},
                    {"role": "assistant", "content": answer}]
        full = self._render(messages, add_generation_prompt=False)
        tail = full[len(prompt_text):] if full.startswith(prompt_text) else answer + (self.tokenizer.eos_token or "")
        return self._ids(tail)

    def build_prompt_embeds(self, speech: torch.Tensor, speech_mask: torch.Tensor, prompts: Sequence[str],
                            answers: Sequence[str] | None = None,
                            padding_side: Literal["left", "right"] | None = None) -> PromptBatch:
        """Renders one user turn per sample with the chat template and splices the speech in at the placeholder.

        Args:
            speech: [B, N, D] projected speech; speech_mask: [B, N] bool. Sample i contributes its
                ``speech_mask[i].sum()`` real embeddings, so rows have different lengths before padding.
            prompts: B instructions; the placeholder is prepended (with a newline) when absent.
            answers: B target answers (training: labels cover the answer and the end-of-turn marker), or None.
            padding_side: default right with answers (training) and left without (generation).

        Returns:
            A `PromptBatch`; grads flow from ``inputs_embeds`` into ``speech``.
        """
        b = speech.shape[0]
        if len(prompts) != b or (answers is not None and len(answers) != b):
            raise ValueError(f"got {len(prompts)} prompts / {None if answers is None else len(answers)} answers "
                             f"for {b} speech samples")
        side = padding_side or ("right" if answers is not None else "left")
        embed = self.llm.get_input_embeddings()
        dev, speech = self.device, speech.to(self.embed_dtype)
        rows, labels, starts, lengths = [], [], [], []
        for i in range(b):
            before, after, text = self._prompt_pieces(prompts[i])
            answer = self._answer_ids(prompts[i], text, answers[i]) if answers is not None else []
            sp = speech[i][speech_mask[i].bool()]
            ids = torch.tensor(before + after + answer, dtype=torch.long, device=dev)
            tok = embed(ids)
            nb, na = len(before), len(after)
            rows.append(torch.cat([tok[:nb], sp, tok[nb:]], dim=0))
            labels.append([IGNORE_INDEX] * (nb + len(sp) + na) + answer)
            starts.append(nb)
            lengths.append(len(sp))
        longest = max(len(r) for r in rows)
        inputs = speech.new_zeros(b, longest, speech.shape[-1])
        mask = torch.zeros(b, longest, dtype=torch.bool, device=dev)
        label_t = torch.full((b, longest), IGNORE_INDEX, dtype=torch.long, device=dev)
        pads = [longest - len(r) if side == "left" else 0 for r in rows]
        for i, row in enumerate(rows):
            sl = slice(pads[i], pads[i] + len(row))
            inputs[i, sl] = row  # index assignment keeps the autograd link to `speech`
            mask[i, sl] = True
            label_t[i, sl] = torch.tensor(labels[i], dtype=torch.long, device=dev)
        start_t = torch.tensor(starts, device=dev) + torch.tensor(pads, device=dev)
        return PromptBatch(inputs, mask, label_t, start_t, torch.tensor(lengths, device=dev))

    # ------------------------------------------------------------------------------------------ LM outputs
    def lm_logits(self, inputs_embeds: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Full LLM forward ([B, S, V] logits) with padding-independent position ids (as `generate` uses).

        No position shift here: prompts must look at training time as they do at inference.
        """
        with self._checkpointing():
            out = self.llm(inputs_embeds=inputs_embeds, attention_mask=attention_mask,
                           position_ids=position_ids_from_mask(attention_mask), use_cache=False)
        return out.logits

    def answer_logits(self, batch: PromptBatch) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits only where a label follows ([M, V]) and those targets ([M]): the LM head runs on M answer
        positions instead of B*S, which saves most of the logits memory (vocabularies reach 128k-256k).

        Equals ``lm_logits`` gathered at those positions (the final-logit soft-capping of Gemma-style configs is
        applied as HF applies it).
        """
        n = self.num_layers
        position_ids = position_ids_from_mask(batch.attention_mask)
        with self._checkpointing():
            hidden = llm_hidden_states(self.llm, batch.inputs_embeds, batch.attention_mask, [n], position_ids)[n]
        targets = batch.labels[:, 1:]
        keep = targets != IGNORE_INDEX
        logits = self.llm.get_output_embeddings()(hidden[:, :-1][keep])
        cap = getattr(decoder_of(self.llm).config, "final_logit_softcapping", None)
        if cap:
            logits = torch.tanh(logits / cap) * cap
        return logits, targets[keep]

    def _stop_ids(self) -> list[int]:
        ids = getattr(getattr(self.llm, "generation_config", None), "eos_token_id", None)
        ids = [] if ids is None else [ids] if isinstance(ids, int) else list(ids)
        if self.tokenizer.eos_token_id is not None and self.tokenizer.eos_token_id not in ids:
            ids.append(self.tokenizer.eos_token_id)
        return ids

    @torch.no_grad()
    def generate_from_embeds(self, inputs_embeds: torch.Tensor, attention_mask: torch.Tensor,
                             max_new_tokens: int | None = None, **kwargs) -> torch.Tensor:
        """Greedy decoding with HF ``generate`` from left-padded prompt embeddings.

        Returns:
            [B, T] new token ids only; rows that stopped early are filled with the pad id.
        """
        stop = self._stop_ids()
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else (stop or [0])[0]
        options = dict(do_sample=False, num_beams=1, max_new_tokens=max_new_tokens or self.cfg.max_new_tokens,
                       eos_token_id=stop or None, pad_token_id=pad)
        options.update(kwargs)
        return self.llm.generate(inputs_embeds=inputs_embeds, attention_mask=attention_mask, **options)

    @torch.no_grad()
    def generate(self, audio: torch.Tensor, audio_mask: torch.Tensor, prompts: Sequence[str],
                 max_new_tokens: int | None = None, **kwargs) -> torch.Tensor:
        """Greedy answers to ``prompts`` about ``audio``; returns [B, T] new token ids (see `generate_text`)."""
        embeds, mask = self.speech_embeds(audio, audio_mask)
        batch = self.build_prompt_embeds(embeds, mask, prompts, padding_side="left")
        return self.generate_from_embeds(batch.inputs_embeds, batch.attention_mask, max_new_tokens, **kwargs)

    def generate_text(self, audio: torch.Tensor, audio_mask: torch.Tensor, prompts: Sequence[str],
                      max_new_tokens: int | None = None, **kwargs) -> list[str]:
        """`generate`, decoded without special tokens and stripped."""
        ids = self.generate(audio, audio_mask, prompts, max_new_tokens, **kwargs)
        return [t.strip() for t in self.tokenizer.batch_decode(ids, skip_special_tokens=True)]

    @torch.no_grad()
    def generate_from_text(self, contents: Sequence[str], max_new_tokens: int | None = None, **kwargs) -> list[str]:
        """Greedy answers of the LLM alone to user turns given as text (cascaded baselines: a transcript stands
        where the speech would be); same chat template, left padding and stopping as `generate_text`."""
        rows = [self._ids(self._render([{"role": "user", "content": c}], True)) for c in contents]
        longest = max(len(r) for r in rows)
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        ids = torch.full((len(rows), longest), pad, dtype=torch.long, device=self.device)
        mask = torch.zeros(len(rows), longest, dtype=torch.bool, device=self.device)
        for i, r in enumerate(rows):
            ids[i, longest - len(r):] = torch.tensor(r, dtype=torch.long, device=self.device)
            mask[i, longest - len(r):] = True
        embeds = self.llm.get_input_embeddings()(ids)
        out = self.generate_from_embeds(embeds, mask, max_new_tokens, **kwargs)
        return [t.strip() for t in self.tokenizer.batch_decode(out, skip_special_tokens=True)]
