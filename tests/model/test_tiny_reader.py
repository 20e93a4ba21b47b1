"""Reading lessons for the tiny LLM (model/tiny_reader.py) and their use by model/tiny.py.

What is checked: one lesson per manifest record with a text, its meta kept; the token layout of a lesson decoded back
(stuttered source, a finetuning prompt of the task, the task's answer closed by EOS, answer-only tokens after
``n_prompt``); long SQA passages cut around the answer; `teach_reading` lowers the loss, is deterministic per seed and
leaves a frozen model; `write_tiny_models` / `ensure_tiny_models` / the CLI train, record and rehash the lessons.
"""

from __future__ import annotations

import copy
import json
import math
import random
from itertools import groupby
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from model.tiny import MARKER, TinyConfig, ensure_tiny_models, main, read_texts, write_tiny_models
from model.tiny_reader import Lesson, ReadingConfig, lesson_ids, read_lessons, teach_reading
from train.tasks import TRAIN_PROMPTS, TRAIN_PROMPTS_IN_TARGET, TaskConfig, training_example

ASR = [{"id": "a0", "audio": "audio/a0.flac", "text": "the quick brown fox jumps over a lazy dog", "duration": 2.1},
       {"id": "a1", "audio": "audio/a1.flac", "text": "", "duration": 0.4},
       {"id": "a2", "audio": "audio/a2.flac", "text": "   ", "duration": 0.3},
       {"audio": "audio/a3.flac", "text": "  seven small birds sing near an old river bank ", "duration": 1.8}]
ST = [{"id": "s0", "audio": "audio/s0.flac", "text": "How long does the journey take?", "lang": "en", "task": "st",
       "duration": 1.5, "translations": {"de": "Wie lange dauert die Fahrt?"}}]
SQA = [{"id": f"q-q0{i}", "passage_id": "q", "audio": "audio/q.flac", "text": "Paul was born in Singapore in spring.",
        "lang": "en", "task": "sqa", "duration": 2.0, "question": question, "answer": answer, "answer_start": start}
       for i, (question, answer, start) in enumerate([("Where was Paul born?", "Singapore", 17),
                                                      ("Who was born in Singapore?", "Paul", 0)])]
SMALL = dict(llm_layers=2, encoder_layers=1, vocab_size=300)


def _write(path: Path, records: list[dict], blank_lines: bool = False) -> Path:
    sep = "\n\n" if blank_lines else "\n"
    path.write_text(sep.join(json.dumps(r, ensure_ascii=False) for r in records) + "\n", "utf-8")
    return path


@pytest.fixture(scope="module")
def manifests(tmp_path_factory) -> list[Path]:
    root = tmp_path_factory.mktemp("manifests")
    return [_write(root / "asr.jsonl", ASR, blank_lines=True), _write(root / "st.jsonl", ST),
            _write(root / "sqa.jsonl", SQA)]


@pytest.fixture(scope="module")
def lessons(manifests) -> list[Lesson]:
    return read_lessons(manifests)


@pytest.fixture(scope="module")
def base(tmp_path_factory, manifests) -> dict:
    """A small random LLM written by write_tiny_models without lessons, loaded once (copy it before training)."""
    out = tmp_path_factory.mktemp("tiny")
    paths = write_tiny_models(out, TinyConfig(**SMALL), read_texts(manifests))
    llm = AutoModelForCausalLM.from_pretrained(paths["llm"], local_files_only=True, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(paths["llm"], local_files_only=True)
    return {"dir": out, "llm": llm.eval(), "tokenizer": tokenizer}


def _template(tokenizer):
    def render(messages, add_generation_prompt):
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt)

    def ids(text):
        return tokenizer(text, add_special_tokens=False)["input_ids"]

    return render, ids


def _decode_lesson(tokenizer, lesson: Lesson, epoch: int, rng: random.Random, cfg: ReadingConfig):
    """(spoken source, instruction, answer text) of one lesson, checking the frame of the chat template."""
    render, ids = _template(tokenizer)
    row, n_prompt = lesson_ids(lesson, epoch, rng, cfg, render, ids)
    prompt, answer = tokenizer.decode(row[:n_prompt]), tokenizer.decode(row[n_prompt:])
    assert prompt.startswith("<s>user: ") and prompt.endswith("</s>assistant:"), prompt
    assert row[-1] == tokenizer.eos_token_id and answer.startswith(" ") and answer.endswith("</s>"), answer
    spoken, instruction = prompt[len("<s>user: "):-len("</s>assistant:")].split("\n")
    return spoken, instruction, answer[1:-len("</s>")]


def _runs(spoken: str) -> list[tuple[str, int]]:
    return [(w, len(list(g))) for w, g in groupby(spoken.split())]


def _state(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


# ------------------------------------------------------------------------------------------------------ read_lessons


def test_read_lessons_takes_records_with_text_and_keeps_their_meta(manifests, lessons):
    # empty lines and records whose text is empty or blank give no lesson; a missing id becomes "<file>:<line>"
    assert [x.key for x in lessons] == ["a0", "asr.jsonl:7", "s0", "q-q00", "q-q01"]
    assert [x.source for x in lessons] == ["the quick brown fox jumps over a lazy dog",
                                           "seven small birds sing near an old river bank",
                                           "How long does the journey take?", "Paul was born in Singapore in spring.",
                                           "Paul was born in Singapore in spring."]
    assert lessons[2].meta == ST[0] and lessons[2].meta["translations"] == {"de": "Wie lange dauert die Fahrt?"}
    assert [(x.meta["question"], x.meta["answer"]) for x in lessons[3:]] == [("Where was Paul born?", "Singapore"),
                                                                            ("Who was born in Singapore?", "Paul")]
    assert read_lessons([manifests[0]]) == lessons[:2]


# ------------------------------------------------------------------------------------------------------ lesson_ids


def _allowed_prompts(lesson: Lesson) -> set[str]:
    meta = lesson.meta
    if meta.get("task") == "sqa":
        return {p.format(question=meta["question"]) for p in TRAIN_PROMPTS["sqa"]}
    if meta.get("task") == "st":
        return {p.format(source="English", target="German") for p in TRAIN_PROMPTS["st"]} | \
            {TRAIN_PROMPTS_IN_TARGET["de"]}
    return set(TRAIN_PROMPTS["asr"])


def _answer(lesson: Lesson) -> str:
    """Transcript for ASR, the German translation for ST, the answer span for SQA."""
    task = lesson.meta.get("task")
    return lesson.meta["answer"] if task == "sqa" else lesson.meta["translations"]["de"] if task == "st" else \
        lesson.source


def test_lesson_ids_layout_stuttered_source_prompt_and_answer(base, lessons):
    tok, cfg = base["tokenizer"], ReadingConfig(max_repeat=3)
    rng = random.Random(0)
    for lesson in lessons:
        run_lengths, prompts = set(), set()
        for epoch in range(8):
            spoken, instruction, answer = _decode_lesson(tok, lesson, epoch, rng, cfg)
            runs = _runs(spoken)
            assert [w for w, _ in runs] == lesson.source.split()  # collapsing repeats gives the source back
            assert all(1 <= n <= cfg.max_repeat for _, n in runs)
            run_lengths.update(n for _, n in runs)
            # the finetuning prompt of this key and epoch, from the task's training prompts, and the task's answer
            assert instruction == training_example(lesson.meta, lesson.source, lesson.key, epoch, TaskConfig()).prompt
            assert instruction in _allowed_prompts(lesson)
            assert answer == _answer(lesson)
            prompts.add(instruction)
        assert run_lengths == {1, 2, 3}, lesson.key  # words do get stuttered, up to max_repeat
        assert len(prompts) > 1, lesson.key  # prompts are sampled per epoch, not fixed


def test_lesson_ids_with_max_repeat_one_is_the_plain_source(base, lessons):
    tok = base["tokenizer"]
    for lesson in lessons:
        spoken, _, _ = _decode_lesson(tok, lesson, 0, random.Random(1), ReadingConfig(max_repeat=1))
        assert spoken == lesson.source


def test_lesson_ids_prompt_count_splits_prompt_and_answer_tokens(base, lessons):
    tok = base["tokenizer"]
    render, ids = _template(tok)
    lesson = lessons[0]
    row, n_prompt = lesson_ids(lesson, 0, random.Random(0), ReadingConfig(max_repeat=1), render, ids)
    prompt = render([{"role": "user", "content": f"{lesson.source}\n"
                      f"{training_example(lesson.meta, lesson.source, lesson.key, 0, TaskConfig()).prompt}"}], True)
    assert row[:n_prompt] == ids(prompt) and row[0] == tok.bos_token_id
    assert row[n_prompt:] == ids(f" {lesson.source}</s>")


def _sqa_lesson(passage: str, answer: str) -> Lesson:
    meta = {"id": "p-q00", "text": passage, "task": "sqa", "question": "What is it?", "answer": answer,
            "answer_start": passage.index(answer)}
    return Lesson("p-q00", meta, passage)


def _filler(n: int, tag: str) -> list[str]:
    return [f"{tag}{i}" for i in range(n)]


@pytest.mark.parametrize("before,after", [(30, 30), (0, 50), (50, 0), (3, 4)])
def test_long_sqa_passage_is_cut_around_the_answer(base, before, after):
    answer = "Port Elizabeth harbour"
    words = _filler(before, "w") + answer.split() + _filler(after, "v")
    lesson = _sqa_lesson(" ".join(words), answer)
    cfg = ReadingConfig(max_repeat=1, max_source_words=12)
    spoken, _, decoded_answer = _decode_lesson(base["tokenizer"], lesson, 0, random.Random(0), cfg)
    kept = spoken.split()
    assert len(kept) == min(12, len(words)) and f" {answer} " in f" {spoken} " and decoded_answer == answer
    start = words.index(kept[0])
    assert words[start:start + len(kept)] == kept  # one contiguous window of the passage


@pytest.mark.parametrize("passage,answer", [
    (" ".join(_filler(30, "w") + ["moved", "to", "Berlin,", "where"] + _filler(10, "v")), "Berlin"),
    (" ".join(["the", "start"] + _filler(30, "w") + ["the", "old", "mill", "stood"] + _filler(5, "v")),
     "the old mill"),
], ids=["answer-before-punctuation", "answer-first-word-occurs-earlier"])
def test_long_sqa_passage_cut_keeps_an_answer_next_to_punctuation_or_a_common_word(base, passage, answer):
    cfg = ReadingConfig(max_repeat=1, max_source_words=10)
    spoken, _, _ = _decode_lesson(base["tokenizer"], _sqa_lesson(passage, answer), 0, random.Random(0), cfg)
    assert len(spoken.split()) == 10
    assert answer in spoken


@pytest.mark.parametrize("kw", [{"steps": -1}, {"lr": 0.0}, {"batch_size": 0}, {"max_repeat": 0},
                                {"max_source_words": 0}])
def test_reading_config_rejects_out_of_range_values(kw):
    with pytest.raises(ValueError, match="reading settings"):
        ReadingConfig(**kw)


# ---------------------------------------------------------------------------------------------------- teach_reading


def test_teach_reading_without_steps_changes_nothing(base, lessons):
    llm = copy.deepcopy(base["llm"])
    before = _state(llm)
    assert teach_reading(llm, base["tokenizer"], lessons, ReadingConfig(steps=0)) == []
    assert teach_reading(llm, base["tokenizer"], [], ReadingConfig(steps=0)) == []
    after = _state(llm)
    assert all(torch.equal(before[k], after[k]) for k in before)
    with pytest.raises(ValueError, match="no reading lessons"):
        teach_reading(llm, base["tokenizer"], [], ReadingConfig(steps=3))


def test_teach_reading_lowers_the_loss_deterministically_and_freezes(base, lessons):
    cfg = ReadingConfig(steps=30, batch_size=8)
    runs = []
    for seed in (0, 0, 1):
        llm = copy.deepcopy(base["llm"])
        losses = teach_reading(llm, base["tokenizer"], lessons, cfg, seed=seed)
        assert not llm.training and not any(p.requires_grad for p in llm.parameters())
        runs.append((losses, _state(llm)))
    losses, state = runs[0]
    assert len(losses) == 30 and all(math.isfinite(x) for x in losses)
    assert sum(losses[-5:]) / 5 < sum(losses[:5]) / 5
    initial = _state(base["llm"])
    assert any(not torch.equal(state[k], initial[k]) for k in state)  # every weight trains, not a no-op
    # same seed: identical losses and weights; another seed: other lessons, stutters and prompts
    assert runs[1][0] == losses and all(torch.equal(runs[1][1][k], state[k]) for k in state)
    assert runs[2][0] != losses and any(not torch.equal(runs[2][1][k], state[k]) for k in state)


# ------------------------------------------------------------------------------------------ write / ensure / the CLI


def test_write_tiny_models_needs_lessons_when_reading(tmp_path, manifests):
    cfg = TinyConfig(**SMALL, reading=ReadingConfig(steps=3))
    for lessons in (None, []):
        with pytest.raises(ValueError, match="reading lessons"):
            write_tiny_models(tmp_path, cfg, read_texts(manifests), lessons=lessons)
    assert not (tmp_path / MARKER).exists()


def test_write_records_reading_and_ensure_rehashes_lessons(tmp_path, base, manifests, lessons):
    cfg = TinyConfig(**SMALL, reading=ReadingConfig(steps=5, batch_size=4))
    texts = read_texts(manifests)
    paths, built = ensure_tiny_models(tmp_path, cfg, texts, lessons=lessons)
    record = json.loads((tmp_path / MARKER).read_text())
    assert built and record["config"]["reading"]["steps"] == 5 and isinstance(record["lessons_sha256"], str)
    assert set(record["reading"]) == {"first_loss", "last_loss"} and all(math.isfinite(v)
                                                                         for v in record["reading"].values())
    # the saved LLM is the untaught one after teach_reading with the config's seed
    expected = copy.deepcopy(base["llm"])
    losses = teach_reading(expected, base["tokenizer"], lessons, cfg.reading, seed=cfg.seed)
    assert record["reading"] == {"first_loss": losses[0], "last_loss": sum(losses[-10:]) / len(losses[-10:])}
    saved = AutoModelForCausalLM.from_pretrained(paths["llm"], local_files_only=True, dtype=torch.float32)
    want = expected.state_dict()
    assert saved.state_dict().keys() == want.keys()
    for name, got in saved.state_dict().items():
        torch.testing.assert_close(got, want[name], msg=name)
    untaught = json.loads((base["dir"] / MARKER).read_text())
    assert untaught["reading"] is None and untaught["lessons_sha256"] is None

    stamp = (paths["llm"] / "model.safetensors").stat().st_mtime_ns
    assert ensure_tiny_models(tmp_path, cfg, texts, lessons=read_lessons(manifests)) == (paths, False)
    assert (paths["llm"] / "model.safetensors").stat().st_mtime_ns == stamp
    changed = [lessons[0], Lesson(lessons[1].key, lessons[1].meta, lessons[1].source + " again"), *lessons[2:]]
    assert ensure_tiny_models(tmp_path, cfg, texts, lessons=changed)[1]
    assert json.loads((tmp_path / MARKER).read_text())["lessons_sha256"] != record["lessons_sha256"]


def test_cli_reads_lessons_from_the_manifests(tmp_path, manifests, capsys):
    out = tmp_path / "tiny"
    assert main(["--out", str(out), "--manifest", *map(str, manifests), "reading.steps=5", "reading.batch_size=4",
                 "llm_layers=2", "encoder_layers=1", "vocab_size=300"]) == 0
    assert "built" in capsys.readouterr().err
    record = json.loads((out / MARKER).read_text())
    assert record["config"]["reading"]["steps"] == 5 and record["config"]["llm_layers"] == 2
    assert record["reading"] is not None and record["reading"]["first_loss"] > 0
    # the CLI hashed the lessons of every manifest: the library call with the same lessons keeps the directory
    cfg = TinyConfig(**SMALL, reading=ReadingConfig(steps=5, batch_size=4))
    assert not ensure_tiny_models(out, cfg, read_texts(manifests), lessons=read_lessons(manifests))[1]
