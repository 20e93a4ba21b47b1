"""Teach a tiny random LLM to read, so that a projector has a listener to feed.

    python -m model.tiny --out demo_out/tiny --manifest ... reading.steps=600        # via TinyConfig.reading
    loss = teach_reading(llm, tokenizer, read_lessons(manifests), ReadingConfig(steps=600))

Why: a random-weight LLM is deaf. Its answer positions carry their own token embeddings through the residual
stream and attend almost uniformly to the rest, so no projector output can steer what it says (measured on the
word-tone language of the tests: 150 finetuning steps moved the answer loss from 5.69 to 5.37 and WER from 102 % to
111 %). Real instruct LLMs read; a tiny one can be taught in a minute on CPU, and then finetuning the projector is
the paper's setting in miniature: the frozen LLM knows how to transcribe, translate and answer from *text*, and the
projector must make speech look like that text.

Lessons are the text form of the finetuning tasks. Each manifest record becomes one chat turn whose user content is
``"<source text>\\n<instruction>"`` - exactly where `SpeechLLM` splices speech (``"<speech>\\n<instruction>"``) - and
whose answer is the task's answer (`train.tasks.training_example`: transcript, translation or answer span, with the
same sampled prompts). Source words are stuttered (each repeated 1 to ``max_repeat`` times, like the several
projector tokens that cover one spoken word), so the reader learns to collapse repeats instead of copying them.
"""

from __future__ import annotations

import json
import logging
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

__all__ = ["ReadingConfig", "Lesson", "read_lessons", "teach_reading", "lesson_ids"]

log = logging.getLogger(__name__)
IGNORE_INDEX = -100


@dataclass
class ReadingConfig:
    steps: int = 0
    """Optimizer steps of reading lessons (0: the LLM keeps its random weights)."""
    lr: float = 3.0e-3
    """AdamW learning rate (constant after a 5 % warmup)."""
    batch_size: int = 32
    """Lessons per step."""
    max_repeat: int = 3
    """Each source word appears 1..max_repeat times in the lesson's input (1: plain text)."""
    max_source_words: int = 120
    """Longer sources (SQA passages) are cut to this many words, keeping the answer inside."""

    def __post_init__(self):
        if self.steps < 0 or self.lr <= 0 or self.batch_size < 1 or self.max_repeat < 1 or self.max_source_words < 1:
            raise ValueError(f"reading settings out of range: {self}")


@dataclass(frozen=True)
class Lesson:
    key: str
    """Sample id (with the epoch it fixes the sampled prompt, as in finetuning)."""
    meta: dict
    """The manifest record (task fields)."""
    source: str
    """The text that stands where the speech will be: transcript or spoken passage."""


def read_lessons(manifests: Iterable[str | Path]) -> list[Lesson]:
    """One lesson per manifest line that has a non-empty ``text`` (ASR, ST, SQA records of data/synth/)."""
    out = []
    for path in manifests:
        for n, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            rec = json.loads(line)
            text = rec.get("text")
            if isinstance(text, str) and text.strip():
                out.append(Lesson(str(rec.get("id", f"{Path(path).name}:{n}")), rec, text.strip()))
    return out


def _cut(source: str, answer: str, limit: int, answer_start: int | None) -> list[str]:
    """At most `limit` words of `source`, centred on the answer (SQA passages): at ``answer_start`` (the character
    offset manifests carry), else its first occurrence; the first `limit` words when it is not in the passage."""
    words = source.split()
    if len(words) <= limit:
        return words
    at = answer_start if isinstance(answer_start, int) and source[answer_start:].startswith(answer) else \
        source.find(answer) if answer else -1
    if at < 0:
        return words[:limit]
    first, n = len(source[:at].split()), max(1, len(answer.split()))
    if source[:at] and not source[:at][-1].isspace():  # the answer starts inside a word ("(Berlin")
        first -= 1
    start = max(0, min(first + n // 2 - limit // 2, len(words) - limit))
    return words[start:start + limit]


def lesson_ids(lesson: Lesson, epoch: int, rng: random.Random, cfg: ReadingConfig, render, ids) -> tuple[list[int],
                                                                                                          int]:
    """Token ids of the whole turn and the number of prompt tokens (the rest is the answer to learn).

    Args:
        render: ``(messages, add_generation_prompt) -> str`` (the LLM's chat template).
        ids: ``text -> token ids`` without special tokens (the template holds them).
    """
    from train.tasks import TaskConfig, training_example  # the finetuning prompts; pure functions, no launcher code

    example = training_example(lesson.meta, lesson.source, lesson.key, epoch, TaskConfig())
    start = lesson.meta.get("answer_start") if example.task == "sqa" else None
    words = _cut(lesson.source, example.answer, cfg.max_source_words, start)
    spoken = " ".join(w for w in words for _ in range(rng.randint(1, cfg.max_repeat)))
    user = {"role": "user", "content": f"{spoken}\n{example.prompt}"}
    prompt = render([user], True)
    full = render([user, {"role": "assistant", "content": example.answer}], False)
    if not full.startswith(prompt):
        raise ValueError("the chat template renders the prompt differently inside a full conversation")
    prompt_ids = ids(prompt)
    return prompt_ids + ids(full[len(prompt):]), len(prompt_ids)


def _batch(rows: Sequence[tuple[list[int], int]], pad_id: int) -> tuple[torch.Tensor, ...]:
    longest = max(len(r) for r, _ in rows)
    ids = torch.full((len(rows), longest), pad_id, dtype=torch.long)
    labels = torch.full_like(ids, IGNORE_INDEX)
    mask = torch.zeros_like(ids)
    for i, (row, n_prompt) in enumerate(rows):
        ids[i, :len(row)] = torch.tensor(row)
        mask[i, :len(row)] = 1
        labels[i, n_prompt:len(row)] = ids[i, n_prompt:len(row)]
    return ids, mask, labels


def teach_reading(llm, tokenizer, lessons: Sequence[Lesson], cfg: ReadingConfig, seed: int = 0) -> list[float]:
    """Trains every LLM weight on the lessons in place; returns the loss of each step.

    Deterministic for a given seed (lesson draws, stutters, prompts). The model is left in eval mode with
    ``requires_grad`` off, as a frozen LLM.
    """
    if cfg.steps == 0:
        return []
    if not lessons:
        raise ValueError("no reading lessons: the manifests hold no record with a non-empty text")
    from tqdm.auto import tqdm

    def render(messages, add_generation_prompt):
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt)

    def ids(text):
        return tokenizer(text, add_special_tokens=False)["input_ids"]

    torch.manual_seed(seed)
    rng = random.Random(seed)
    llm.train()
    for p in llm.parameters():
        p.requires_grad_(True)
    optimizer = torch.optim.AdamW(llm.parameters(), lr=cfg.lr, weight_decay=0.0)
    warmup = max(1, cfg.steps // 20)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min(1.0, (s + 1) / warmup))
    losses: list[float] = []
    bar = tqdm(range(cfg.steps), desc="reading lessons", unit="step", mininterval=2.0)
    for step in bar:
        epoch = step * cfg.batch_size // len(lessons)
        rows = [lesson_ids(rng.choice(lessons), epoch, rng, cfg, render, ids) for _ in range(cfg.batch_size)]
        input_ids, mask, labels = _batch(rows, tokenizer.pad_token_id)
        loss = llm(input_ids=input_ids, attention_mask=mask, labels=labels).loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(llm.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        losses.append(float(loss.detach()))
        if step % 50 == 0 or step == cfg.steps - 1:
            bar.set_postfix(loss=f"{sum(losses[-50:]) / len(losses[-50:]):.3f}")
    for p in llm.parameters():
        p.requires_grad_(False)
    llm.eval()
    tail = losses[-max(1, cfg.steps // 10):]
    log.info("reading lessons: answer loss %.3f -> %.3f over %d steps (%d lessons)", losses[0],
             sum(tail) / len(tail), cfg.steps, len(lessons))
    return losses
