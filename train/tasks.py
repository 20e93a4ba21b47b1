"""Finetuning tasks: which task a sample belongs to, its chat prompt and the answer the LLM must produce.

Test prompts are the paper's (arXiv 2412.15712): ASR "Can you transcribe this audio?", SQA "Listen to the audio
and answer this question: <question>", ST "Can you translate this audio from <source> into <target>?". Training
samples a prompt from a per-task list, ST prompts also written in the target language (the paper's fr/it/es/de
variants), so the projector does not overfit one wording.

Paralinguistic labels (optional, task "para"): a sample whose manifest carries ``labels`` ({"gender": "female",
"speaking_rate": "fast", ...}: mls-eng-speaker-descriptions style; data.synth writes them from its voices and
prosody) is asked about one of them with probability ``paralinguistic``, instead of its own task; evaluation asks
every attribute of ``para_test_attributes`` the sample has, scored by accuracy.

Sampling is a pure function of (seed, epoch, sample key): no global RNG is touched, so resumed runs draw the same
prompts and the same ST target languages as uninterrupted ones, whatever the number of ranks or workers.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, field
from typing import Literal

__all__ = ["TaskConfig", "TaskExample", "TASKS", "LANGUAGE_NAMES", "PARA_QUESTIONS", "task_of", "training_example",
           "eval_examples"]

TASKS = ("asr", "st", "sqa", "para")
LANGUAGE_NAMES = {"en": "English", "de": "German", "fr": "French", "es": "Spanish", "it": "Italian", "ru": "Russian"}

TEST_PROMPTS = {
    "asr": "Can you transcribe this audio?",
    "st": "Can you translate this audio from {source} into {target}?",
    "sqa": "Listen to the audio and answer this question: {question}",
}
TRAIN_PROMPTS = {
    "asr": ["Can you transcribe this audio?", "Transcribe the speech.", "What is being said in this recording?",
            "Write down exactly what the speaker says.", "Please provide a transcript of this audio."],
    "st": ["Can you translate this audio from {source} into {target}?", "Translate the speech into {target}.",
           "What does the speaker say, in {target}?", "Please translate this {source} recording into {target}."],
    "sqa": ["Listen to the audio and answer this question: {question}",
            "Answer the question about the recording: {question}",
            "Based on what you hear, {question}", "{question} Answer from the audio."],
}
# Paralinguistic questions per label attribute (the answer is the label, e.g. "female", "fast"); an attribute not
# listed is asked as "What is the <attribute> of the speech in this audio?".
PARA_QUESTIONS = {
    "gender": "Is the speaker male or female?",
    "speaking_rate": "How fast does the speaker talk: slow, normal or fast?",
    "noise": "Is the recording clean or noisy?",
    "reverberation": "Does the recording sound dry or reverberant?",
    "pitch": "Is the speaker's voice low, medium or high pitched?",
    "monotony": "Does the speaker sound monotone or expressive?",
    "emotion": "What emotion does the speaker express?",
    "age": "How old does the speaker sound?",
    "accent": "What accent does the speaker have?",
    # mls-eng-speaker-descriptions (data.prepare mls-speaker-descriptions): graded labels such as "quite fast",
    # "very clear", "slightly noisy", so the questions do not offer choices.
    "speech_monotony": "How monotone or expressive does the speaker sound?",
    "sdr_noise": "How noisy is the recording?",
    "pesq_speech_quality": "How good is the speech quality of the recording?",
}
# ST prompts written in the target language (paper: fr/it/es/de variants of the test prompt).
TRAIN_PROMPTS_IN_TARGET = {
    "de": "Kannst du dieses Audio vom Englischen ins Deutsche übersetzen?",
    "fr": "Peux-tu traduire cet audio de l'anglais vers le français ?",
    "es": "¿Puedes traducir este audio del inglés al español?",
    "it": "Puoi tradurre questo audio dall'inglese all'italiano?",
}


@dataclass
class TaskConfig:
    st_targets: list[str] = field(default_factory=lambda: ["de", "fr", "es", "it"])
    """ST target languages to train on (each ST sample draws one that it has a translation for)."""
    st_test_targets: list[str] = field(default_factory=lambda: ["de"])
    """ST target languages to evaluate (one test example per sample and target)."""
    target_language_prompts: float = 0.25
    """Share of ST training prompts written in the target language instead of English."""
    seed: int = 0
    """Seeds prompt and target sampling (together with the epoch and the sample key)."""
    paralinguistic: float = 0.0
    """Share of labelled training samples (manifest ``labels``) asked about a label instead of their own task."""
    para_attributes: list[str] = field(default_factory=list)
    """Label attributes to train on (empty: every attribute a sample has)."""
    para_test_attributes: list[str] = field(default_factory=list)
    """Label attributes to evaluate (one test example per attribute a sample has; empty: none)."""
    st_asr_share: float = 0.0
    """Share of ST training samples trained as ASR of their source transcript instead: one corpus (MuST-C) then
    serves both tasks, as in the paper's finetuning."""
    st_test_asr: bool = False
    """Also ask ST test samples for their transcript (ASR scored on the same audio, e.g. MuST-C tst-COMMON)."""

    def __post_init__(self):
        for name in ("st_targets", "st_test_targets"):
            unknown = [t for t in getattr(self, name) if t not in LANGUAGE_NAMES]
            if unknown or not getattr(self, name):
                raise ValueError(f"{name} must be a non-empty list of {sorted(LANGUAGE_NAMES)}, got "
                                 f"{getattr(self, name)}")
        if not 0 <= self.target_language_prompts <= 1:
            raise ValueError(f"target_language_prompts must be in [0, 1], got {self.target_language_prompts}")
        for name in ("paralinguistic", "st_asr_share"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")


@dataclass(frozen=True)
class TaskExample:
    task: Literal["asr", "st", "sqa"]
    prompt: str
    """The instruction (the speech placeholder is added by SpeechLLM)."""
    answer: str
    """What the LLM must produce: transcript, translation or answer span."""
    target: str | None = None
    """ST target language code; for "para" the label attribute."""


def task_of(meta: dict) -> str:
    """The sample's task from its manifest fields ("task", else inferred; plain transcripts are ASR)."""
    task = meta.get("task")
    if task in TASKS:
        return task
    if "question" in meta and "answer" in meta:
        return "sqa"
    return "st" if meta.get("translations") else "asr"


def _rng(seed: int, epoch: int, key: str) -> random.Random:
    digest = hashlib.sha256(f"{seed}:{epoch}:{key}".encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "little"))


def _require(meta: dict, key: str, fields: tuple[str, ...]) -> None:
    missing = [f for f in fields if not meta.get(f)]
    if missing:
        raise ValueError(f"sample {key!r} has no {missing} for its task {task_of(meta)!r}; fix its manifest entry")


def para_question(attribute: str) -> str:
    return PARA_QUESTIONS.get(attribute, f"What is the {attribute.replace('_', ' ')} of the speech in this audio?")


def _labels(meta: dict, attributes: list[str]) -> dict[str, str]:
    """The sample's non-empty labels, restricted to `attributes` when given, as strings."""
    labels = meta.get("labels") or {}
    return {k: str(v) for k, v in labels.items() if v not in (None, "") and (not attributes or k in attributes)}


def _source_name(meta: dict) -> str:
    return LANGUAGE_NAMES.get(meta.get("lang", "en"), meta.get("lang", "English"))


def training_example(meta: dict, transcript: str, key: str, epoch: int, cfg: TaskConfig) -> TaskExample:
    """A sampled prompt and the answer for one training sample.

    Args:
        meta: the sample's manifest fields (batch["meta"][i]).
        transcript: its transcript (batch["texts"][i]: ASR answer; for SQA the spoken passage, unused).
        key: the sample key; with `epoch` and `cfg.seed` it fixes every random choice.
    """
    rng = _rng(cfg.seed, epoch, key)
    task = task_of(meta)
    if cfg.paralinguistic and (labels := _labels(meta, cfg.para_attributes)):
        para_rng = _rng(cfg.seed, epoch, f"para:{key}")  # own stream: other tasks' draws stay as without labels
        if task == "para" or para_rng.random() < cfg.paralinguistic:
            attribute = para_rng.choice(sorted(labels))
            return TaskExample("para", para_question(attribute), labels[attribute], attribute)
    if task == "para":
        raise ValueError(f"sample {key!r} is a paralinguistic sample but has no labels among "
                         f"{cfg.para_attributes or 'any attribute'} (or tasks.paralinguistic is 0)")
    if task == "asr":
        if not transcript:
            raise ValueError(f"sample {key!r} has an empty transcript")
        return TaskExample("asr", rng.choice(TRAIN_PROMPTS["asr"]), transcript)
    if task == "sqa":
        _require(meta, key, ("question", "answer"))
        prompt = rng.choice(TRAIN_PROMPTS["sqa"]).format(question=meta["question"])
        return TaskExample("sqa", prompt, meta["answer"])
    # Own stream, like the paralinguistic draw: with st_asr_share 0 every other choice is as before.
    if cfg.st_asr_share and transcript and _rng(cfg.seed, epoch, f"asr:{key}").random() < cfg.st_asr_share:
        return TaskExample("asr", rng.choice(TRAIN_PROMPTS["asr"]), transcript)
    _require(meta, key, ("translations",))
    targets = [t for t in cfg.st_targets if meta["translations"].get(t)]
    if not targets:
        raise ValueError(f"ST sample {key!r} has no translation into any of st_targets={cfg.st_targets}")
    target = rng.choice(targets)
    if target in TRAIN_PROMPTS_IN_TARGET and rng.random() < cfg.target_language_prompts:
        prompt = TRAIN_PROMPTS_IN_TARGET[target]
    else:
        prompt = rng.choice(TRAIN_PROMPTS["st"]).format(source=_source_name(meta), target=LANGUAGE_NAMES[target])
    return TaskExample("st", prompt, meta["translations"][target], target)


def eval_examples(meta: dict, transcript: str, key: str, cfg: TaskConfig) -> list[TaskExample]:
    """The fixed test prompt(s) and references of one sample (ST: one per `st_test_targets` it has; plus one
    paralinguistic question per `para_test_attributes` label it has)."""
    task = task_of(meta)
    labels = _labels(meta, cfg.para_test_attributes) if cfg.para_test_attributes else {}
    para = [TaskExample("para", para_question(a), labels[a], a) for a in cfg.para_test_attributes if a in labels]
    if task == "para":
        return para
    if task == "asr":
        return [TaskExample("asr", TEST_PROMPTS["asr"], transcript)] + para
    if task == "sqa":
        _require(meta, key, ("question", "answer"))
        return [TaskExample("sqa", TEST_PROMPTS["sqa"].format(question=meta["question"]), meta["answer"])] + para
    _require(meta, key, ("translations",))
    asr = [TaskExample("asr", TEST_PROMPTS["asr"], transcript)] if cfg.st_test_asr and transcript else []
    return asr + [TaskExample("st", TEST_PROMPTS["st"].format(source=_source_name(meta), target=LANGUAGE_NAMES[t]),
                              meta["translations"][t], t)
                  for t in cfg.st_test_targets if meta["translations"].get(t)] + para
