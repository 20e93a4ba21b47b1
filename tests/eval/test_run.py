"""`python -m eval.run` end to end: a finetuned projector against the untrained one, results.json provenance, the
cascaded baselines (gold transcripts; the model's own ASR on two ranks) and clear errors."""

from __future__ import annotations

import hashlib
import json

from eval.generate import read_results
from tests.eval.conftest import FINETUNE_STEPS, launch, model_overrides, results_of
from tests.train.conftest import rows
from train.tasks import TEST_PROMPTS


def _sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _untrained(world) -> dict:
    out = world["root"] / "results-untrained"
    if not (out / "results.json").is_file():
        launch(["eval.run", "--config", str(world["eval_config"]), f"out_dir={out}"] + model_overrides(world))
    return results_of(out)


_FINETUNED: dict = {}


def _finetuned(world) -> tuple[dict, str]:
    """Evaluated once per session (three tests read it)."""
    if _FINETUNED:
        return _FINETUNED["results"], _FINETUNED["log"]
    _untrained(world)  # printed alongside
    out = world["finetune"] / "results"
    log = launch(["eval.run", "--config", str(world["eval_config"]), "--checkpoint", str(world["finetune"]),
                  f"compare=[{world['root'] / 'results-untrained'}]"])
    _FINETUNED.update(results=results_of(out), log=log)
    return _FINETUNED["results"], log


def test_finetuning_makes_the_frozen_llm_hear(reader_world):
    """The Done-when of stage 2: finetuning lowers the loss and improves every task's metric over the untrained
    projector on held-out speech (new sentences; the reader LLM stays frozen)."""
    losses = [r["loss/answer"] for r in rows(reader_world["finetune"] / "metrics.jsonl")]
    assert len(losses) == FINETUNE_STEPS
    assert sum(losses[-20:]) / 20 < 0.5 * sum(losses[:10]) / 10
    before = _untrained(reader_world)["metrics"]
    after, log = _finetuned(reader_world)
    m = after["metrics"]
    assert m["asr/wer"] < before["asr/wer"] - 25, (before["asr/wer"], m["asr/wer"])
    assert m["st/bleu"] > before["st/bleu"] + 3, (before["st/bleu"], m["st/bleu"])
    assert m["sqa/f1"] > before["sqa/f1"] + 30, (before["sqa/f1"], m["sqa/f1"])
    assert m["contrastive/cos"] is not None and m["retrieval/n"] == 48
    # the printed table holds both rows, the finetuned one bold in the WER column
    table = log[log.index("| Model |"):]
    assert f"| finetune | **{m['asr/wer']:.2f}** |" in table and "| untrained projector |" in table


def test_results_json_records_what_was_evaluated(reader_world):
    results, _ = _finetuned(reader_world)
    projector = reader_world["finetune"] / "projector"
    assert results["kind"] == "speech" and results["name"] == "finetune"
    assert results["checkpoint"] == {"path": str(projector), "sha256": _sha256(projector / "projector.safetensors"),
                                     "step": FINETUNE_STEPS, "objective": "finetune"}
    assert results["training_config_sha256"] == _sha256(reader_world["finetune"] / "config.yaml")
    assert len(results["config_sha256"]) == 64
    assert results["signatures"]["wer"] == "basic-v1" and results["signatures"]["bleu"].startswith("nrefs:1|")
    assert results["metrics"]["st/comet"] is None and results["metrics"]["normalized_average"] is None
    assert any("COMET skipped" in n for n in results["notes"])
    m = results["metrics"]
    assert (m["asr/n"], m["st/n"], m["sqa/n"]) == (16, 16, 16) and m["st/de/bleu"] == m["st/bleu"]
    hyps = {task: read_results(path) for task, path in results["hypotheses"].items()}
    assert sorted(hyps) == ["asr", "sqa", "st_de"]
    assert {r["prompt"] for r in hyps["asr"]} == {TEST_PROMPTS["asr"]}
    assert {r["prompt"] for r in hyps["st_de"]} == {"Can you translate this audio from English into German?"}
    assert {r["prompt"] for r in hyps["sqa"]} == {"Listen to the audio and answer this question: Which word comes "
                                                  "first?"}
    for r in hyps["st_de"]:  # the reference is the translation; the spoken transcript is kept for COMET
        assert r["reference"] == " ".join(reversed(r["transcript"].split()))
    assert (reader_world["finetune"] / "results" / "config.yaml").is_file()


def test_cascade_with_gold_transcripts(reader_world):
    out = reader_world["root"] / "results-gold"
    launch(["eval.run", "--config", str(reader_world["eval_config"]), "cascade=reference", f"out_dir={out}"]
           + model_overrides(reader_world))
    results = results_of(out)
    assert results["kind"] == "cascade" and results["name"] == "gold transcript -> LLM"
    assert results["metrics"]["asr/wer"] == 0.0 and "contrastive/cos" not in results["metrics"]
    for r in read_results(results["hypotheses"]["sqa"]):  # the transcript stands where the speech would be
        assert r["prompt"] == f"{r['transcript']}\n{TEST_PROMPTS['sqa'].format(question='Which word comes first?')}"
    # the reader answers "which word comes first" from text almost always: the cascade's upper end works
    assert results["metrics"]["sqa/f1"] > 80


def test_cascade_through_the_models_own_asr_on_two_ranks(reader_world):
    """cascade=asr transcribes with the checkpoint's own ASR, split over 2 ranks: its ASR rows equal the 1-rank
    speech evaluation's, and every ST/SQA prompt holds that transcript."""
    speech, _ = _finetuned(reader_world)
    launch(["eval.run", "--config", str(reader_world["eval_config"]), "--checkpoint", str(reader_world["finetune"]),
            "cascade=asr"], nproc=2)
    cascade = results_of(reader_world["finetune"] / "results-cascade-asr")
    assert cascade["kind"] == "cascade" and cascade["name"] == "finetune ASR -> LLM"
    asr_speech = {r["key"]: r["hypothesis"] for r in read_results(speech["hypotheses"]["asr"])}
    asr_cascade = {r["key"]: r["hypothesis"] for r in read_results(cascade["hypotheses"]["asr"])}
    assert asr_cascade == asr_speech and cascade["metrics"]["asr/wer"] == speech["metrics"]["asr/wer"]
    st = read_results(cascade["hypotheses"]["st_de"])
    assert len(st) == 16 and all(r["prompt"].split("\n")[0] for r in st)


def test_errors_name_the_setting(reader_world, tmp_path):
    config = str(reader_world["eval_config"])
    log = launch(["eval.run", "--config", config, "--checkpoint", str(tmp_path / "nowhere")], expect=2)
    assert "no projector.safetensors + projector.json" in log
    log = launch(["eval.run", "--config", config, f"out_dir={tmp_path}"], expect=2)
    assert "set encoder.name_or_path and llm.name_or_path" in log
    transcripts = tmp_path / "asr.jsonl"
    transcripts.write_text(json.dumps({"key": "tone1-00000", "text": "the quick"}) + "\n")
    log = launch(["eval.run", "--config", config, f"cascade={transcripts}", f"out_dir={tmp_path / 'c'}"]
                 + model_overrides(reader_world), expect=2)
    assert "has no transcript for 47 test samples" in log


def test_st_samples_are_asked_once_per_test_target():
    from eval.run import _annotate, _passes
    from train.tasks import TaskConfig

    cfg = TaskConfig(st_test_targets=["de", "fr"])
    samples = [{"key": "a", "reference": "one two", "meta": {}},
               {"key": "b", "reference": "three four", "meta": {"task": "st", "translations": {"de": "d", "fr": "f"}}},
               {"key": "c", "reference": "five", "meta": {"task": "st", "translations": {"de": "d2"}}},
               {"key": "d", "reference": "six", "meta": {"task": "sqa", "question": "q?", "answer": "six"}}]
    passes = {t: [(r["key"], r["task"], r["target"], r["reference"]) for r in _annotate(samples, t, cfg)]
              for t in _passes(cfg)}
    assert passes == {None: [("a", "asr", None, "one two"), ("b", "st", "de", "d"), ("c", "st", "de", "d2"),
                             ("d", "sqa", None, "six")],
                      "fr": [("b", "st", "fr", "f")]}


def test_paralinguistic_questions_get_their_own_pass():
    from eval.run import _annotate, _passes
    from train.tasks import TaskConfig

    cfg = TaskConfig(para_test_attributes=["gender", "speaking_rate"])
    samples = [{"key": "a", "reference": "one two", "meta": {"labels": {"gender": "male", "speaking_rate": "fast"}}},
               {"key": "b", "reference": "three", "meta": {"task": "sqa", "question": "q?", "answer": "three",
                                                           "labels": {"gender": "female"}}},
               {"key": "c", "reference": "four", "meta": {}}]
    passes = {t: [(r["key"], r["task"], r["target"], r["reference"]) for r in _annotate(samples, t, cfg)]
              for t in _passes(cfg)}
    assert passes == {None: [("a", "asr", None, "one two"), ("b", "sqa", None, "three"), ("c", "asr", None, "four")],
                      "para:gender": [("a", "para", "gender", "male"), ("b", "para", "gender", "female")],
                      "para:speaking_rate": [("a", "para", "speaking_rate", "fast")]}


def test_paralinguistic_evaluation_end_to_end(reader_world, tmp_path):
    """Labelled test shards with tasks.para_test_attributes: one generation pass per attribute, the question as the
    prompt, accuracy per attribute in results.json and its own hypotheses file."""
    from data.prepare import build_from_manifest
    from tests.conftest import make_word_tone_manifest

    manifest = make_word_tone_manifest(tmp_path / "labelled", 6, seed=3)
    lines = [json.loads(line) for line in manifest.read_text().splitlines()]
    for i, rec in enumerate(lines):
        rec["labels"] = {"pitch": "high" if i % 2 else "low"}
    manifest.write_text("".join(json.dumps(r) + "\n" for r in lines))
    build_from_manifest(manifest, tmp_path / "shards", workers=1)
    out = tmp_path / "results"
    launch(["eval.run", "--config", str(reader_world["eval_config"]), f"test=[{{path: {tmp_path / 'shards'}}}]",
            "contrastive.sources=[]", "tasks.para_test_attributes=[pitch]", "generate.max_new_tokens=3",
            f"out_dir={out}"] + model_overrides(reader_world))
    results = results_of(out)
    m = results["metrics"]
    assert m["para/pitch/n"] == m["para/n"] == 6 and m["asr/n"] == 6 and 0 <= m["para/accuracy"] <= 100
    rows = read_results(results["hypotheses"]["para_pitch"])
    assert [r["reference"] for r in rows] == ["low", "high"] * 3
    assert all(r["prompt"] == "Is the speaker's voice low, medium or high pitched?" for r in rows)
