"""Finetuning tasks: task detection, the paper's test prompts, deterministic training prompts and ST targets."""

from __future__ import annotations

import random

import pytest

from train.tasks import TaskConfig, eval_examples, task_of, training_example

ASR = {"text": "Hello there.", "lang": "en"}
ST = {"text": "How long does the journey take?", "lang": "en", "task": "st",
      "translations": {"de": "Wie lange dauert die Fahrt?", "fr": "Combien de temps dure le voyage?",
                       "es": "¿Cuánto dura el viaje?", "it": "Quanto dura il viaggio?"}}
SQA = {"text": "Paul was born in Singapore.", "lang": "en", "task": "sqa", "question": "Where was Paul born?",
       "answer": "Singapore"}


def test_task_detection():
    assert [task_of(m) for m in (ASR, ST, SQA)] == ["asr", "st", "sqa"]
    assert task_of({"question": "q?", "answer": "a"}) == "sqa" and task_of({"translations": {"de": "x"}}) == "st"


def test_eval_prompts_are_the_papers():
    cfg = TaskConfig(st_test_targets=["de", "fr"])
    assert eval_examples(ASR, "Hello there.", "a", cfg)[0].prompt == "Can you transcribe this audio?"
    sqa = eval_examples(SQA, SQA["text"], "q", cfg)
    assert sqa[0].prompt == "Listen to the audio and answer this question: Where was Paul born?"
    assert sqa[0].answer == "Singapore"
    st = eval_examples(ST, ST["text"], "s", cfg)
    assert [(e.prompt, e.answer, e.target) for e in st] == [
        ("Can you translate this audio from English into German?", "Wie lange dauert die Fahrt?", "de"),
        ("Can you translate this audio from English into French?", "Combien de temps dure le voyage?", "fr")]


def test_training_choices_depend_only_on_seed_epoch_and_key():
    cfg = TaskConfig()
    random.seed(1)
    first = [training_example(ST, ST["text"], f"k{i}", 0, cfg) for i in range(40)]
    random.seed(2)  # the global RNG plays no part
    assert first == [training_example(ST, ST["text"], f"k{i}", 0, cfg) for i in range(40)]
    assert first != [training_example(ST, ST["text"], f"k{i}", 1, cfg) for i in range(40)]  # new epoch, new draws
    assert {e.target for e in first} == {"de", "fr", "es", "it"}
    assert all(e.answer == ST["translations"][e.target] for e in first)
    assert any("Deutsche" in e.prompt or "français" in e.prompt for e in first)  # target-language prompts
    assert len({e.prompt for e in first}) > 4
    asr = {training_example(ASR, "Hello there.", f"k{i}", 0, cfg).prompt for i in range(40)}
    assert len(asr) > 2 and all(training_example(ASR, "x", "k", 0, cfg).answer == "x" for _ in range(2))
    sqa = training_example(SQA, SQA["text"], "k", 0, cfg)
    assert "Where was Paul born?" in sqa.prompt and sqa.answer == "Singapore"


def test_st_targets_restrict_the_draws():
    cfg = TaskConfig(st_targets=["it"], target_language_prompts=0.0)
    examples = [training_example(ST, ST["text"], f"k{i}", 0, cfg) for i in range(10)]
    assert {e.target for e in examples} == {"it"} and all("Italian" in e.prompt for e in examples)


def test_broken_samples_name_the_key():
    cfg = TaskConfig()
    with pytest.raises(ValueError, match="'bad'.*question"):
        training_example({"task": "sqa", "answer": "x"}, "", "bad", 0, cfg)
    with pytest.raises(ValueError, match="no translation"):
        training_example({"task": "st", "translations": {"ru": "x"}}, "", "bad", 0, cfg)
    with pytest.raises(ValueError, match="empty transcript"):
        training_example(ASR, "", "bad", 0, cfg)
    with pytest.raises(ValueError, match="st_targets"):
        TaskConfig(st_targets=["xx"])
