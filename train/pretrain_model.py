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

from model.encoders import EncoderConfig, EncoderOutput, build_encoder
from model.llm import LLMConfig, load_llm
from model.loss_functions import asr_loss
from model.losses import AlignmentObjective, LossConfig
from model.projectors import ProjectorConfig, build_projector
from model.speech_llm import SpeechLLM

__all__ = ["build_speech_llm", "encode", "PretrainModule", "StageTimer", "STAGES"]

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


def encode(speech_llm: SpeechLLM, batch: dict) -> EncoderOutput:
    """The frozen encoder's output for a batch: its cached features (``data.encoder_cache``) when the batch
    carries them, else the encoder run on the audio, without grad either way."""
    m = speech_llm
    if "encoder_features" in batch:
        return EncoderOutput(batch["encoder_features"].to(m.device, m.encoder.dtype),
                             batch["encoder_mask"].to(m.device))
    with torch.no_grad():
        return m.encoder(batch["audio"].to(m.device), batch["audio_mask"].to(m.device))


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
            # Never below the cache's precision: a float32 cache of means pooled in fp32 from a bf16 LLM's states,
            # rounded to bf16 here, would no longer equal the uncached run's fp32 pooling (the loss upcasts anyway).
            cached = cached.to(torch.promote_types(cached.dtype, m.embed_dtype))
            return {layer: cached[:, :, i] for i, layer in enumerate(m.layers)}, mask
        text_shift = shift if m.cfg.position_shift_shared else m.draw_position_shift(batch["audio"].shape[0])
        return m.text_hidden_states(batch["text_ids"].to(device), batch["text_mask"].to(device),
                                    position_shift=text_shift)

    def forward(self, batch: dict | None = None, mode: str = "loss", **kwargs):
        """One micro-batch: ``(total loss or None when a non-finite loss is skipped, metrics)``.

        The metrics add ``count/speech_tokens`` and ``count/text_tokens`` (this rank's, for throughput). The other
        modes are passes of a GradCache step (`train.grad_cache`) that run through the DeepSpeed engine:
        ``"features"`` (see `features`), ``"replay"`` (see `replay`), and ``"global_loss"`` (see `global_loss`,
        which GradCache calls directly instead).
        """
        if mode == "features":
            return self.features(batch)
        if mode == "global_loss":
            return self.global_loss(**kwargs)
        if mode == "replay":
            return self.replay(batch, **kwargs)
        if mode != "loss":
            raise ValueError(f"unknown mode {mode!r}")
        speech, speech_mask, embeds, shift, counts = self._speech_states(batch)
        text = text_mask = logits = labels = None
        if speech is not None:
            text, text_mask = self._text_side(batch, shift, counts)
        if self.objective.cfg.uses_asr:
            logits, labels = self._asr_logits(batch, embeds, speech_mask, counts)
        with self._timed("loss"):
            total, metrics = self.objective(speech, speech_mask, text, text_mask, logits, labels, keys=batch["keys"])
        return total, {**metrics, **{k: v.detach().float() for k, v in counts.items()}}

    # ------------------------------------------------------------------------------------------ stages
    def _speech_states(self, batch: dict):
        """encoder -> projector (-> LLM over the speech when the objective is contrastive): ``(states or None,
        speech mask, projected embeddings (for the ASR term), position shift, counts)``. Draws the RNG (dropout, then
        the position shift) in a fixed order, which GradCache's replay relies on."""
        m = self.speech_llm
        with self._timed("encoder"):
            enc = encode(m, batch)
        with self._timed("projector"):
            embeds, speech_mask = m.projector(enc.features, enc.mask)
            embeds, speech_mask = embeds.to(m.embed_dtype), speech_mask.bool()
        counts = {"count/speech_tokens": speech_mask.sum()}
        if self.objective.contrastive is None:
            return None, speech_mask, embeds, None, counts
        if "text_ids" not in batch:
            raise ValueError("contrastive pretraining needs text_ids: set data.tokenizer (train.pretrain sets it "
                             "to the LLM's directory by default)")
        shift = m.draw_position_shift(embeds.shape[0])
        with self._timed("llm_speech"):
            speech = m.states_from_embeds(embeds, speech_mask, shift=shift)
        return speech, speech_mask, embeds, shift, counts

    def _text_side(self, batch: dict, shift, counts: dict):
        with self._timed("llm_text"):
            text, text_mask = self._text_states(batch, shift)
        counts["count/text_tokens"] = batch["text_mask"].sum()
        return text, text_mask

    def _asr_logits(self, batch: dict, embeds, speech_mask, counts: dict):
        m = self.speech_llm
        with self._timed("llm_asr"):
            prompt = m.build_prompt_embeds(embeds, speech_mask, [self.asr_prompt] * embeds.shape[0], batch["texts"])
            logits, labels = m.answer_logits(prompt)
        counts["count/answer_tokens"] = torch.tensor(labels.numel())
        return logits, labels

    # ------------------------------------------------------------------------------------------ GradCache passes
    def features(self, batch: dict) -> dict:
        """GradCache pass 1 (the caller disables grad): the contrastive `features` of both sides of one micro-batch,
        the ASR term's value when the objective has one (so that a non-finite micro-batch is known before any
        backward), and the token counts."""
        speech, speech_mask, embeds, shift, counts = self._speech_states(batch)
        text, text_mask = self._text_side(batch, shift, counts)
        contrastive = self.objective.contrastive
        out = {"speech": contrastive.features(speech, speech_mask), "speech_mask": speech_mask,
               "text": contrastive.features(text, text_mask), "text_mask": text_mask.bool(), "counts": counts}
        if self.objective.cfg.uses_asr:
            logits, labels = self._asr_logits(batch, embeds, speech_mask, counts)
            out["asr"] = asr_loss(logits, labels)
        return out

    def global_loss(self, speech: dict, speech_mask, text: dict, text_mask, keys: list[str]):
        """GradCache pass 2: the contrastive loss over the features of every micro-batch of the step (this rank's;
        other ranks' are gathered as negatives as usual). ``(loss or None, per-layer metrics)``."""
        contrastive = self.objective.contrastive
        with self._timed("loss"):
            loss, metrics = contrastive(speech, speech_mask, text, text_mask, keys, from_features=True)
        if contrastive.log_logit_scale is not None:
            metrics["contrastive/temperature"] = torch.exp(-contrastive.log_logit_scale.detach()[0])
        return loss, metrics

    def replay(self, batch: dict, speech_grads: dict, temperature_term: dict | None = None,
               temperature_scale: float = 1.0):
        """GradCache pass 3, with grad: the speech side of one micro-batch again (the caller restores the RNG state
        of pass 1, so dropout and position shifts repeat exactly) and the surrogate loss whose gradient is the
        full-batch loss's: ``sum(features * d loss / d features)``, plus the micro-batch's ASR term and, once per
        step with a learned temperature, the full-batch loss over detached features (``temperature_term``: the
        `global_loss` arguments) times ``temperature_scale``, whose only gradient is the temperature's."""
        speech, speech_mask, embeds, _, counts = self._speech_states(batch)
        feats = self.objective.contrastive.features(speech, speech_mask)
        surrogate = sum((feats[l] * g).sum() for l, g in speech_grads.items())
        if self.objective.cfg.uses_asr:
            logits, labels = self._asr_logits(batch, embeds, speech_mask, counts)
            value = asr_loss(logits, labels)
            if not bool(torch.isfinite(value)):  # pass 1 saw a finite value: only nondeterminism gets here
                raise FloatingPointError(f"the ASR loss of batch {batch['keys'][:3]} was finite in GradCache's first "
                                         f"pass but not in its replay: nondeterministic kernels?")
            surrogate = surrogate + self.objective.cfg.asr_weight * value
        if temperature_term is not None:
            loss, _ = self.global_loss(**temperature_term)
            surrogate = surrogate + self.objective.cfg.contrastive_weight * temperature_scale * loss
        return surrogate
