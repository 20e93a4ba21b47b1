"""Stage-2 evaluation: answer every test example, score ASR / ST / SQA, write results.json and the paper's table.

    python -m eval.run --config train/configs/eval-demo.yaml --checkpoint demo_out/runs/finetune/projector
    python -m eval.run --config ... --checkpoint runs/ft/checkpoints/step_00000400 name="contr-cos-all 10%"
    python -m eval.run --config ... --checkpoint runs/asr-ft cascade=asr         # cascade: own ASR -> LLM as text
    python -m eval.run --config ... --checkpoint runs/asr-ft cascade=reference   # gold transcript -> LLM (topline)
    python -m eval.run --config ... cascade=whisper_transcripts.jsonl            # any external ASR system's output
    torchrun --nproc_per_node=8 -m eval.run ...                                   # generation split over ranks

Each test sample's task comes from its manifest fields (train/tasks.py) and is asked with the paper's test prompt;
ST samples once per ``tasks.st_test_targets`` language. Generation is greedy and sharded over ranks with results that
do not depend on the number of ranks or the batch size (eval/generate.py). Rank 0 scores (eval/score.py), writes
``out_dir/results.json`` (metrics, signatures, normaliser version, checkpoint and config hashes), one JSONL of
hypotheses per task under ``out_dir/hyps/``, and prints the paper-style table (eval/report.py), next to the results
given in ``compare``. With ``contrastive.sources`` set it also reports the test contrastive losses (cos and wasser,
summed over the aligned LLM layers like the training loss) and speech->text retrieval, as pretraining's held-out
evaluation computes them.

The cascaded baseline (the paper's lower bound) gives the LLM a transcript as text where the speech would be
(``cascade_template``), with the same test instruction: ``cascade=asr`` transcribes every test sample with the
checkpoint's own ASR, ``cascade=reference`` uses the gold transcripts, a ``.jsonl`` path (``{"key", "text"}`` rows)
takes any other ASR system's output.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sys
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import torch
import yaml
from torch import nn

from core.errors import entry_point, user_errors
from data.stream import SourceConfig, StreamConfig
from eval.generate import GenerateConfig, build_eval_loader, generate_sharded, merge_rows, write_results
from eval.score import ScoringConfig, score_rows
from model.encoders import EncoderConfig
from model.llm import LLMConfig
from model.losses import LossConfig
from model.pretrained import sha256_file
from model.projectors import ProjectorConfig
from train import distributed as tdist
from train.checkpoint import write_atomic
from train.config import from_dict, parse_cli, to_dict
from train.export import META, WEIGHTS, load_adapters, load_projector
from train.heldout import HeldoutConfig, HeldoutEvaluator
from train.pretrain_model import build_speech_llm
from train.runner import setup_logging
from train.tasks import TEST_PROMPTS, TaskConfig, TaskExample, eval_examples

__all__ = ["EvalConfig", "evaluate", "resolve_checkpoint", "main"]

log = logging.getLogger("eval.run")
RESULTS_FORMAT = 1


@dataclass
class EvalConfig:
    checkpoint: str | None = None
    """Projector to evaluate: an export (projector/), a checkpoints/step_XXXXXXXX directory, or a run directory (its
    projector/); None evaluates a freshly initialised projector (the "untrained" reference row)."""
    name: str | None = None
    """Row label in the table (default: the run directory's name, "untrained projector", or the cascade mode)."""
    out_dir: str | None = None
    """Where results.json and hyps/ go (default: <run dir>/results, or <run dir>/results-cascade-<mode>)."""
    seed: int = 0
    """Seeds a fresh projector (checkpoint unset)."""
    test: list[SourceConfig] = field(default_factory=list)
    """Test shard sets; ASR, ST and SQA samples may be mixed (task from each sample's manifest fields)."""
    text_norm: str = "none"
    """Normalisation of the references as loaded (keep "none": the metrics apply their own, versioned ones)."""
    cascade: str | None = None
    """None (speech in), "asr", "reference", or a JSONL of transcripts: the cascaded baseline (see module doc)."""
    cascade_template: str = "{transcript}\n{instruction}"
    """The cascade's user turn: the transcript stands where SpeechLLM puts the speech."""
    compare: list[str] = field(default_factory=list)
    """Other results.json files (or their directories) printed in the same table."""
    tasks: TaskConfig = field(default_factory=TaskConfig)
    generate: GenerateConfig = field(default_factory=GenerateConfig)
    scoring: ScoringConfig = field(default_factory=ScoringConfig)
    contrastive: HeldoutConfig = field(default_factory=HeldoutConfig)
    """Test contrastive losses and retrieval (pretraining's held-out evaluation); empty sources: skipped."""
    loss: LossConfig = field(default_factory=LossConfig)
    """Temperature, blur and direction of the test contrastive losses."""
    encoder: EncoderConfig | None = None
    """Speech encoder; None: the one the checkpoint's training run used (its config.yaml)."""
    projector: ProjectorConfig = field(default_factory=ProjectorConfig)
    """Used for a fresh projector only; a checkpoint brings its own (projector.json)."""
    llm: LLMConfig | None = None
    """LLM; None: the training run's."""

    def __post_init__(self):
        self.test = [s if isinstance(s, SourceConfig) else SourceConfig(**s) for s in self.test]
        if not self.test:
            raise ValueError("test: give at least one test shard set, e.g. test=[{path: shards/test}]")
        if "{transcript}" not in self.cascade_template or "{instruction}" not in self.cascade_template:
            raise ValueError(f"cascade_template needs {{transcript}} and {{instruction}}: {self.cascade_template!r}")


def resolve_checkpoint(path: str | Path) -> Path:
    """The directory holding projector.safetensors + projector.json for a checkpoint, export or run directory."""
    p = Path(path)
    for candidate in (p, p / "projector"):
        if (candidate / META).is_file() and (candidate / WEIGHTS).is_file():
            return candidate
    raise FileNotFoundError(f"checkpoint={path}: no {WEIGHTS} + {META} there or in {p / 'projector'}; give a run's "
                            f"projector/ directory, a checkpoints/step_XXXXXXXX directory, or a run directory")


def _run_dir_of(projector_dir: Path) -> Path:
    return projector_dir.parent.parent if projector_dir.parent.name == "checkpoints" else projector_dir.parent


def _complete_model_sections(cfg: EvalConfig, projector_dir: Path | None) -> Path | None:
    """Fills encoder/llm from the training run's config.yaml when unset; returns that file (or None)."""
    training = _run_dir_of(projector_dir) / "config.yaml" if projector_dir else None
    if training is not None and not training.is_file():
        training = None
    if cfg.encoder is not None and cfg.llm is not None:
        return training
    if training is None:
        raise ValueError("set encoder.name_or_path and llm.name_or_path: "
                         + ("no checkpoint given" if projector_dir is None else
                            f"no training config.yaml found next to {projector_dir}"))
    saved = yaml.safe_load(training.read_text())
    if cfg.encoder is None:
        cfg.encoder = from_dict(EncoderConfig, saved["encoder"], source=str(training))
    if cfg.llm is None:
        cfg.llm = from_dict(LLMConfig, saved["llm"], source=str(training))
    return training


def _default_name_and_out(cfg: EvalConfig, projector_dir: Path | None) -> None:
    mode = None if cfg.cascade is None else Path(cfg.cascade).stem if cfg.cascade.endswith(".jsonl") else cfg.cascade
    if cfg.name is None:
        base = _run_dir_of(projector_dir).name if projector_dir else "untrained projector"
        cfg.name = {None: base, "reference": "gold transcript -> LLM", "asr": f"{base} ASR -> LLM"}.get(
            mode, f"{mode} -> LLM")
    if cfg.out_dir is None:
        if projector_dir is None:
            raise ValueError("out_dir: set where results go (no checkpoint to put them next to)")
        cfg.out_dir = str(_run_dir_of(projector_dir) / ("results" if mode is None else f"results-cascade-{mode}"))


# ------------------------------------------------------------------------------------------------------ test examples

def _example(sample: dict, target: str | None, cfg: TaskConfig) -> TaskExample | None:
    """The sample's test example in the pass `target`: None is the first pass (ASR, SQA, the first ST target), an
    ST language code a further ST target, "para:<attribute>" a paralinguistic question."""
    examples = eval_examples(sample["meta"], sample["text"], sample["key"], cfg)
    if target is not None and target.startswith("para:"):
        return next((e for e in examples if e.task == "para" and e.target == target[5:]), None)
    examples = [e for e in examples if e.task != "para"]
    if examples and examples[0].task == "st":
        return next((e for e in examples if e.target == (target or cfg.st_test_targets[0])), None)
    return examples[0] if examples and target is None else None


def _passes(cfg: TaskConfig) -> list[str | None]:
    """One generation pass per ST test target (ASR and SQA samples are in the first) and per paralinguistic
    attribute: each pass asks every sample at most one question."""
    return [None] + cfg.st_test_targets[1:] + [f"para:{a}" for a in cfg.para_test_attributes]


def _annotate(rows: list[dict], target: str | None, cfg: TaskConfig) -> list[dict]:
    """Rows of the pass for ST `target`, with the example's task, target and reference (the spoken text kept as
    ``transcript``); samples the pass does not ask about are left out."""
    out = []
    for r in rows:
        ex = _example({"meta": r["meta"], "text": r["reference"], "key": r["key"]}, target, cfg)
        if ex is None:
            continue
        out.append({**r, "task": ex.task, "target": ex.target, "transcript": r["reference"], "reference": ex.answer})
    return out


def _speech_rows(speech_llm, cfg: EvalConfig) -> list[dict]:
    rows = []
    for target in _passes(cfg.tasks):
        def prompt_for(sample, target=target):
            ex = _example(sample, target, cfg.tasks)
            return None if ex is None else ex.prompt

        rows += _annotate(generate_sharded(speech_llm, cfg.test, prompt_for, cfg.generate, cfg.text_norm), target,
                          cfg.tasks)
    return rows


# ----------------------------------------------------------------------------------------------------------- cascade

def _transcripts(speech_llm, cfg: EvalConfig, samples: list[dict]) -> dict[tuple[str, str], str]:
    """(source, key) -> the text the cascade's LLM reads for that sample."""
    if cfg.cascade == "reference":
        return {(s["source"], s["key"]): s["reference"] for s in samples}
    if cfg.cascade == "asr":
        rows = generate_sharded(speech_llm, cfg.test, TEST_PROMPTS["asr"], cfg.generate, cfg.text_norm)
        return {(r["source"], r["key"]): r["hypothesis"] for r in rows}
    path = Path(cfg.cascade)
    if path.suffix != ".jsonl" or not path.is_file():
        raise FileNotFoundError(f"cascade={cfg.cascade}: expected asr, reference or an existing .jsonl of "
                                f'{{"key": ..., "text": ...}} rows')
    found = {}
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.strip():
            row = json.loads(line)
            text = row.get("text", row.get("hypothesis"))
            if "key" not in row or not isinstance(text, str):
                raise ValueError(f"{path}:{n}: a transcript row needs 'key' and 'text' (or 'hypothesis')")
            found[row["key"]] = text
    missing = [s["key"] for s in samples if s["key"] not in found]
    if missing:
        raise ValueError(f"{path} has no transcript for {len(missing)} test samples, e.g. {missing[:3]}")
    return {(s["source"], s["key"]): found[s["key"]] for s in samples}


def _cascade_rows(speech_llm, cfg: EvalConfig) -> list[dict]:
    """Every test example answered by the LLM from a transcript; ASR examples are the transcript itself."""
    samples = [{"key": k, "source": s, "reference": t, "meta": m, "prompt": None, "hypothesis": None}
               for b in build_eval_loader(cfg.test, None, cfg.generate.batch_size, cfg.generate.max_samples,
                                          text_norm=cfg.text_norm)
               for k, s, t, m in zip(b["keys"], b["sources"], b["texts"], b["meta"])]
    transcripts = _transcripts(speech_llm, cfg, samples)
    rows = []
    for target in _passes(cfg.tasks):
        rows += [r for r in _annotate(samples, target, cfg.tasks) if r["task"] != "asr" or target is None]
    d = tdist.discover()
    mine, size = [], cfg.generate.batch_size
    local = rows[d.rank::d.world_size]
    for i in range(0, len(local), size):
        chunk = local[i:i + size]
        asked = [r for r in chunk if r["task"] != "asr"]
        contents = [cfg.cascade_template.format(transcript=transcripts[r["source"], r["key"]], instruction=_example(
            {"meta": r["meta"], "text": r["transcript"], "key": r["key"]}, r["target"], cfg.tasks).prompt)
            for r in asked]
        answers = dict(zip(map(id, asked), zip(contents, speech_llm.generate_from_text(
            contents, cfg.generate.max_new_tokens)))) if asked else {}
        for r in chunk:
            content, hyp = answers.get(id(r), ("(the transcript is the answer)", transcripts[r["source"], r["key"]]))
            mine.append({**r, "prompt": content, "hypothesis": hyp})
    return merge_rows(tdist.all_gather_object(mine))


# ------------------------------------------------------------------------------------------------ contrastive, main

class _Holder(nn.Module):
    """What HeldoutEvaluator expects: a module with a ``speech_llm``."""

    def __init__(self, speech_llm):
        super().__init__()
        self.speech_llm = speech_llm


def _contrastive(speech_llm, cfg: EvalConfig, out_dir: Path) -> dict[str, float]:
    data = StreamConfig(sources=cfg.contrastive.sources, tokenizer=cfg.llm.name_or_path, text_norm="basic")
    raw = HeldoutEvaluator(cfg.contrastive, data, cfg.loss, out_dir).evaluate(_Holder(speech_llm), step=0)
    out = {}
    for kind in ("cos", "wasser"):
        layers = [v for k, v in raw.items() if k.startswith(f"eval/{kind}/layer_") and v is not None]
        out[f"contrastive/{kind}"] = sum(layers) if layers else None  # summed over layers, as the training loss
    out.update({"retrieval/r@1": 100 * raw["eval/r@1/mean"], "retrieval/r@5": 100 * raw["eval/r@5/mean"],
                "retrieval/chance_r@1": 100 * raw["eval/chance_r@1"], "retrieval/n": int(raw["eval/samples"])})
    return out


def evaluate(cfg: EvalConfig) -> dict | None:
    """Runs the whole evaluation on every rank; rank 0 writes and returns the results (other ranks: None)."""
    projector_dir = resolve_checkpoint(cfg.checkpoint) if cfg.checkpoint else None
    training_config = _complete_model_sections(cfg, projector_dir)
    _default_name_and_out(cfg, projector_dir)
    out_dir = Path(cfg.out_dir)
    meta = None
    if projector_dir is not None:
        projector, meta = load_projector(projector_dir)
        cfg.projector = from_dict(ProjectorConfig, meta["projector"], source=str(projector_dir / META))
    speech_llm = build_speech_llm(cfg.encoder, cfg.projector, cfg.llm, seed=cfg.seed)
    if projector_dir is not None:
        if (meta["in_dim"], meta["out_dim"]) != (speech_llm.encoder.dim, speech_llm.hidden_size):
            raise ValueError(f"{projector_dir} maps {meta['in_dim']} -> {meta['out_dim']} dims; "
                             f"{cfg.encoder.name_or_path} + {cfg.llm.name_or_path} need {speech_llm.encoder.dim} -> "
                             f"{speech_llm.hidden_size}")
        speech_llm.projector.load_state_dict(projector.state_dict())
        if adapters := load_adapters(projector_dir, speech_llm):
            log.info("LoRA adapters from %s: %d tensors (settings %s)", projector_dir, adapters, meta["lora"])
    if torch.cuda.is_available():
        speech_llm.to(torch.device("cuda", torch.cuda.current_device()))
    speech_llm.eval()
    log.info("evaluating %s: %s on %s", cfg.name, projector_dir or "fresh projector",
             ", ".join(s.path for s in cfg.test))
    rows = _speech_rows(speech_llm, cfg) if cfg.cascade is None else _cascade_rows(speech_llm, cfg)
    extra = _contrastive(speech_llm, cfg, out_dir) if cfg.contrastive.enabled and cfg.cascade is None else {}
    if not tdist.is_main():
        return None
    metrics, signatures, notes = score_rows(rows, cfg.scoring)
    metrics.update(extra)
    results = {
        "format": RESULTS_FORMAT, "name": cfg.name, "kind": "speech" if cfg.cascade is None else "cascade",
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "checkpoint": {"path": str(projector_dir) if projector_dir else None,
                       "sha256": sha256_file(projector_dir / WEIGHTS) if projector_dir else None,
                       "step": (meta or {}).get("step"), "objective": (meta or {}).get("objective")},
        "config_sha256": hashlib.sha256(json.dumps(to_dict(cfg), sort_keys=True).encode()).hexdigest(),
        "training_config_sha256": sha256_file(training_config) if training_config else None,
        "metrics": metrics, "signatures": signatures, "notes": notes, "hypotheses": {},
    }
    def file_of(r: dict) -> str:
        return r["task"] if r["task"] not in ("st", "para") else f"{r['task']}_{r['target']}"

    for name in sorted({file_of(r) for r in rows}):
        part = [r for r in rows if file_of(r) == name]
        results["hypotheses"][name] = str(write_results(part, out_dir / "hyps" / f"{name}.jsonl"))
    out_dir.mkdir(parents=True, exist_ok=True)
    write_atomic(out_dir / "results.json", json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    (out_dir / "config.yaml").write_text(yaml.safe_dump(to_dict(cfg), sort_keys=False, allow_unicode=True))
    return results


def _flags_to_overrides(argv: list[str]) -> list[str]:
    """``--checkpoint X`` / ``--name X`` / ``--out_dir X`` as spellings of ``checkpoint=X`` etc."""
    out, it = [], iter(argv)
    for a in it:
        if a in ("--checkpoint", "--name", "--out_dir", "--out-dir"):
            out.append(f"{a[2:].replace('-', '_')}={next(it, '')}")
        else:
            out.append(a)
    return out


@entry_point
def main(argv: list[str] | None = None) -> int:
    from eval.report import load_results, report_markdown

    argv = _flags_to_overrides(list(sys.argv[1:] if argv is None else argv))
    cfg = parse_cli(EvalConfig, argv, prog="python -m eval.run", description=__doc__.split("\n\n")[0],
                    exit_on_error=False)
    setup_logging(tdist.discover().rank)
    with user_errors(ValueError):  # a results file to compare with that is no results file
        compare = [load_results(c) for c in cfg.compare]
        if cfg.checkpoint:
            resolve_checkpoint(cfg.checkpoint)
    if tdist.discover().world_size > 1:  # one process needs no process group (and no DeepSpeed import)
        tdist.setup()
    with user_errors(ValueError):  # settings that do not fit the checkpoint, the models or the test data
        results = evaluate(cfg)
    if results is not None:
        print(report_markdown([results] + compare))
        log.info("results: %s | hypotheses: %s", Path(cfg.out_dir) / "results.json", Path(cfg.out_dir) / "hyps")
    tdist.teardown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
