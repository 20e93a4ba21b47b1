"""The module DeepSpeed trains: SpeechLLM + objective, one batch in, (loss, metrics) out.

`build_speech_llm` loads the frozen encoder and LLM from their configs and builds the projector between them;
`PretrainModule.forward` runs encoder -> projector -> LLM (speech) and LLM (text) -> objective, timing each stage
so the trainer can report where a step's time goes. With ``profile=True`` the timers synchronise the GPU (exact
shares, slightly slower steps); on CPU they are exact anyway.
"""

from __future__ import annotations

import time
from collections import defaultdict
from contextlib import contextmanager

import torch
from torch import nn

from model.encoders import EncoderConfig, build_encoder
from model.llm import LLMConfig, load_llm
from model.losses import AlignmentObjective, LossConfig
from model.projectors import ProjectorConfig, build_projector
from model.speech_llm import SpeechLLM

__all__ = ["build_speech_llm", "PretrainModule", "StageTimer", "STAGES"]

STAGES = ("encoder", "projector", "llm_speech", "llm_text", "llm_asr", "loss")


def build_speech_llm(encoder_cfg: EncoderConfig, projector_cfg: ProjectorConfig, llm_cfg: LLMConfig,
                     seed: int = 0) -> SpeechLLM:
    """Frozen encoder and LLM from local files, a freshly initialised projector (seeded: same on every rank)."""
    encoder = build_encoder(encoder_cfg)
    llm, tokenizer = load_llm(llm_cfg)
    torch.manual_seed(seed)
    hidden = llm.get_input_embeddings().embedding_dim
    projector = build_projector(projector_cfg, encoder.dim, hidden, encoder.frame_rate)
    projector.to(next(llm.parameters()).device)
    return SpeechLLM(encoder, projector, llm, tokenizer, llm_cfg)


class StageTimer:
    """Mixin for training modules: wall time per named stage of the forward, collected by the trainer each step."""

    def _init_timer(self, profile: bool) -> None:
        self.profile = profile
        self.timings: dict[str, float] = defaultdict(float)

    @contextmanager
    def _timed(self, stage: str):
        cuda = self.profile and torch.cuda.is_available()
        if cuda:
            torch.cuda.synchronize()
        start = time.perf_counter()
        yield
        if cuda:
            torch.cuda.synchronize()
        self.timings[stage] += time.perf_counter() - start

    def pop_timings(self) -> dict[str, float]:
        out, self.timings = dict(self.timings), defaultdict(float)
        return out


class PretrainModule(StageTimer, nn.Module):
    """SpeechLLM and the objective as one module, so that DeepSpeed sees every parameter (ZeRO-3 partitions the
    frozen ones) and the learned temperature, when configured, trains with the projector.

    Args:
        speech_llm: the model.
        loss_cfg: objective settings.
        asr_prompt: instruction of the ASR term (objectives with "asr"); the transcript is the answer.
        profile: synchronise CUDA around each stage so the stage timings are exact.
    """

    stage = "pretrain"
    """Name on the progress bar."""

    def __init__(self, speech_llm: SpeechLLM, loss_cfg: LossConfig, asr_prompt: str = "Can you transcribe this audio?",
                 profile: bool = False):
        super().__init__()
        self._init_timer(profile)
        self.speech_llm = speech_llm
        self.objective = AlignmentObjective(loss_cfg)
        self.asr_prompt = asr_prompt

    def trainable_parameters(self) -> list[nn.Parameter]:
        return [p for p in self.parameters() if p.requires_grad]

    def _text_states(self, batch: dict, shift) -> tuple[dict[int, torch.Tensor], torch.Tensor]:
        """Text-side hidden states: from the text cache when the batch carries them (no LLM forward), else computed.

        Pooled cache entries become one-token sequences: the cosine objective's masked mean over one token is the
        cached mean itself.
        """
        m, device = self.speech_llm, self.speech_llm.device
        if "text_pooled" in batch or "text_states" in batch:
            if "text_pooled" in batch:
                cached = batch["text_pooled"].to(device)[:, None]  # [B, 1, layers, D]
                mask = torch.ones(cached.shape[:2], dtype=torch.bool, device=device)
            else:
                cached, mask = batch["text_states"].to(device), batch["text_mask"].to(device).bool()
            cached = cached.to(m.embed_dtype)
            return {layer: cached[:, :, i] for i, layer in enumerate(m.layers)}, mask
        text_shift = shift if m.cfg.position_shift_shared else m.draw_position_shift(batch["audio"].shape[0])
        return m.text_hidden_states(batch["text_ids"].to(device), batch["text_mask"].to(device),
                                    position_shift=text_shift)

    def forward(self, batch: dict) -> tuple[torch.Tensor | None, dict[str, torch.Tensor]]:
        """One micro-batch: ``(total loss or None when a non-finite loss is skipped, metrics)``.

        The metrics add ``count/speech_tokens`` and ``count/text_tokens`` (this rank's, for throughput).
        """
        m = self.speech_llm
        device = m.device
        audio, audio_mask = batch["audio"].to(device), batch["audio_mask"].to(device)
        with self._timed("encoder"), torch.no_grad():
            enc = m.encoder(audio, audio_mask)
        with self._timed("projector"):
            embeds, speech_mask = m.projector(enc.features, enc.mask)
            embeds, speech_mask = embeds.to(m.embed_dtype), speech_mask.bool()
        counts = {"count/speech_tokens": speech_mask.sum()}
        speech = text = text_mask = logits = labels = None
        if self.objective.contrastive is not None:
            if "text_ids" not in batch:
                raise ValueError("contrastive pretraining needs text_ids: set data.tokenizer (train.pretrain sets it "
                                 "to the LLM's directory by default)")
            shift = m.draw_position_shift(audio.shape[0])
            with self._timed("llm_speech"):
                speech = m.states_from_embeds(embeds, speech_mask, shift=shift)
            with self._timed("llm_text"):
                text, text_mask = self._text_states(batch, shift)
            counts["count/text_tokens"] = batch["text_mask"].sum()
        if self.objective.cfg.uses_asr:
            with self._timed("llm_asr"):
                prompt = m.build_prompt_embeds(embeds, speech_mask, [self.asr_prompt] * audio.shape[0], batch["texts"])
                logits, labels = m.answer_logits(prompt)
            counts["count/answer_tokens"] = torch.tensor(labels.numel())
        with self._timed("loss"):
            total, metrics = self.objective(speech, speech_mask, text, text_mask, logits, labels, keys=batch["keys"])
        return total, {**metrics, **{k: v.detach().float() for k, v in counts.items()}}
