"""The module DeepSpeed finetunes: SpeechLLM on chat prompts, next-token loss on the answer tokens only.

Same interface as `train.pretrain_model.PretrainModule` (``forward(batch) -> (loss, metrics)``, `pop_timings`,
`trainable_parameters`), so the pretraining engine, loop, checkpoints and export serve finetuning unchanged.
Each sample's task (ASR / ST / SQA) comes from its manifest fields; prompts and ST targets are drawn by
`train.tasks.training_example` from (seed, epoch, key), so a resumed run sees the same prompts.
"""

from __future__ import annotations

from collections import Counter

import torch
from torch import nn

from model.loss_functions import asr_loss, check_finite
from model.speech_llm import SpeechLLM
from train.pretrain_model import StageTimer, encode
from train.tasks import TaskConfig, training_example

__all__ = ["FinetuneModule"]


class FinetuneModule(StageTimer, nn.Module):
    """SpeechLLM + the answer-only loss over a mixed ASR / ST / SQA batch.

    Args:
        speech_llm: the model (its projector trains; encoder and LLM are frozen).
        tasks: prompt and ST-target settings.
        nonfinite: "raise" or "skip" (return None as the loss so every rank skips the micro-batch).
        profile: synchronise CUDA around each stage for exact stage timings.
    """

    stage = "finetune"
    """Name on the progress bar."""

    def __init__(self, speech_llm: SpeechLLM, tasks: TaskConfig, nonfinite: str = "raise", profile: bool = False):
        super().__init__()
        self._init_timer(profile)
        self.speech_llm = speech_llm
        self.tasks = tasks
        self.nonfinite = nonfinite

    def trainable_parameters(self) -> list[nn.Parameter]:
        return [p for p in self.parameters() if p.requires_grad]

    def forward(self, batch: dict) -> tuple[torch.Tensor | None, dict[str, torch.Tensor]]:
        m = self.speech_llm
        epoch = int(batch.get("epoch", 0))
        examples = [training_example(meta, text, key, epoch, self.tasks)
                    for meta, text, key in zip(batch["meta"], batch["texts"], batch["keys"])]
        with self._timed("encoder"):
            enc = encode(m, batch)
        with self._timed("projector"):
            embeds, speech_mask = m.projector(enc.features, enc.mask)
        with self._timed("llm_answer"):
            prompt = m.build_prompt_embeds(embeds.to(m.embed_dtype), speech_mask.bool(), [e.prompt for e in examples],
                                           [e.answer for e in examples])
            logits, labels = m.answer_logits(prompt)
        with self._timed("loss"):
            loss = check_finite(asr_loss(logits, labels), "answer", batch["keys"], mode=self.nonfinite)
        tasks = Counter(e.task for e in examples)
        metrics = {f"count/task_{t}": torch.tensor(float(n)) for t, n in tasks.items()}
        metrics["count/speech_tokens"] = speech_mask.sum().detach().float()
        metrics["count/answer_tokens"] = torch.tensor(float(labels.numel()))
        if loss is None:
            return None, metrics
        metrics["loss/total"] = metrics["loss/answer"] = loss.detach()
        return loss, metrics
