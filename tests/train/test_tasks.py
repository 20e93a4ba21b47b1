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


def test_st_samples_can_also_train_and_test_asr_without_changing_other_draws():
    plain, mixed = TaskConfig(), TaskConfig(st_asr_share=0.4, st_test_asr=True)
    examples = [training_example(ST, ST["text"], f"k{i}", 0, mixed) for i in range(200)]
    asr = [e for e in examples if e.task == "asr"]
    assert 0.3 < len(asr) / len(examples) < 0.5 and all(e.answer == ST["text"] for e in asr)
    for i, e in enumerate(examples):  # the ST draws that remain are exactly those without st_asr_share
        if e.task == "st":
            assert e == training_example(ST, ST["text"], f"k{i}", 0, plain)
    assert training_example(ST, "", "k0", 0, TaskConfig(st_asr_share=1.0)).task == "st"  # no transcript, no ASR
    tests = eval_examples(ST, ST["text"], "k", mixed)
    assert [(e.task, e.prompt, e.answer) for e in tests[:1]] == [("asr", "Can you transcribe this audio?", ST["text"])]
    assert [e.task for e in tests] == ["asr", "st"] and [e.task for e in eval_examples(ST, ST["text"], "k", plain)] == [
        "st"]
    with pytest.raises(ValueError, match="st_asr_share"):
        TaskConfig(st_asr_share=1.5)


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


LABELLED = {**ASR, "labels": {"gender": "female", "speaking_rate": "fast", "noise": None}}


def test_paralinguistic_questions_replace_the_task_at_the_configured_rate():
    off = TaskConfig()
    on = TaskConfig(paralinguistic=0.5)
    keys = [f"u{i}" for i in range(400)]
    # off (the default): a labelled sample is its own task, with the same draws as without labels
    assert all(training_example(LABELLED, "Hello there.", k, 0, off) == training_example(ASR, "Hello there.", k, 0, off)
               for k in keys[:50])
    examples = [training_example(LABELLED, "Hello there.", k, 0, on) for k in keys]
    para = [e for e in examples if e.task == "para"]
    assert 0.4 < len(para) / len(keys) < 0.6
    assert {e.target for e in para} == {"gender", "speaking_rate"}  # None-valued labels are never asked
    assert all(e.answer == LABELLED["labels"][e.target] for e in para)
    assert {e.prompt for e in para} == {"Is the speaker male or female?",
                                        "How fast does the speaker talk: slow, normal or fast?"}
    # the non-para draws are the draws the sample gets without labels
    assert all(e == training_example(ASR, "Hello there.", k, 0, on) for k, e in zip(keys, examples) if e.task == "asr")
    only = TaskConfig(paralinguistic=1.0, para_attributes=["speaking_rate"])
    assert {training_example(LABELLED, "x", k, 0, only).target for k in keys[:20]} == {"speaking_rate"}
    with pytest.raises(ValueError, match="no labels"):
        training_example({"task": "para", "labels": {}}, "", "k", 0, on)
    with pytest.raises(ValueError, match="paralinguistic must be in"):
        TaskConfig(paralinguistic=1.5)


def test_paralinguistic_test_questions_follow_the_main_task():
    cfg = TaskConfig(para_test_attributes=["gender", "age"])
    examples = eval_examples(LABELLED, "Hello there.", "a", cfg)
    assert [(e.task, e.target, e.answer) for e in examples] == [("asr", None, "Hello there."),
                                                              ("para", "gender", "female")]
    assert eval_examples({"task": "para", "labels": {"age": "adult"}}, "", "b", cfg)[0].prompt == (
        "How old does the speaker sound?")
    assert [e.task for e in eval_examples(LABELLED, "Hello there.", "a", TaskConfig())] == ["asr"]
