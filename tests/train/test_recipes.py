"""Every recipe in train/configs/ loads into PretrainConfig, and the paper's recipes say what the paper did."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from data.stream import StreamConfig
from train.config import load_config
from train.pretrain import PretrainConfig

CONFIGS = Path(__file__).resolve().parents[2] / "train" / "configs"
RECIPES = sorted(p for p in CONFIGS.glob("*.yaml")
                 if p.name != "demo_stream.yaml" and not p.name.startswith(("finetune-", "eval-")))
PAPER = [f"contr-{k}-{layers}{asr}" for k in ("cos", "wasser") for layers in ("emb", "all") for asr in ("", "-asr")]


def test_the_issue_recipes_exist():
    names = {p.stem for p in RECIPES}
    assert set(PAPER) | {"asr-pretrain", "whisper-gemma-mlp", "whisper-linear", "demo"} <= names


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.stem)
def test_recipe_loads(path):
    cfg = load_config(PretrainConfig, path)
    assert cfg.run_dir.endswith(path.stem) and cfg.data.sources


@pytest.mark.parametrize("name", PAPER + ["asr-pretrain", "contr-cos-all-1400h"])
def test_paper_recipes_follow_the_paper(name):
    cfg = load_config(PretrainConfig, CONFIGS / f"{name}.yaml")
    assert (cfg.data.batch_size, cfg.engine.grad_accum, cfg.train.epochs) == (10, 2, 5)
    assert (cfg.optim.lr, cfg.optim.warmup_ratio, cfg.optim.schedule, cfg.optim.clip_grad_norm) == \
        (1e-4, 0.03, "cosine", 1.0)
    assert cfg.projector.kind == "qformer" and cfg.data.max_duration == 45.0
    assert "hubert-large" in cfg.encoder.name_or_path and "Llama-3.1-8B" in cfg.llm.name_or_path
    if name == "asr-pretrain":
        assert cfg.loss.objective == "asr"
        return
    if name.endswith("1400h"):  # MuST-C en + GigaSpeech M, mixed by hours
        assert [s.path for s in cfg.data.sources] == ["shards/mustc-en-train", "shards/gigaspeech-m"]
        assert cfg.data.mix_by == "hours"
    kind, layers = name.split("-")[1:3]
    assert cfg.loss.objective == kind + ("+asr" if name.endswith("-asr") else "")
    assert cfg.llm.layers == layers and cfg.loss.temperature == 0.1 and cfg.loss.direction == "t2s"
    if name.endswith("-asr"):
        assert cfg.loss.contrastive_weight == 0.1


def test_demo_stream_is_a_stream_config():
    assert load_config(StreamConfig, CONFIGS / "demo_stream.yaml").sources


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("finetune-*.yaml")), ids=lambda p: p.stem)
def test_finetune_recipe_loads(path):
    from train.finetune import FinetuneConfig

    cfg = load_config(FinetuneConfig, path)
    assert cfg.data.sources and cfg.run_dir.startswith(("demo_out/runs/", "repro_out/runs/", "runs/"))


def test_the_papers_finetuning_and_test_recipes():
    from eval.run import EvalConfig
    from train.finetune import FinetuneConfig

    cfg = load_config(FinetuneConfig, CONFIGS / "finetune-paper.yaml")
    assert [s.path for s in cfg.data.sources] == ["shards/mustc-train", "shards/spoken-squad-train"]
    assert (cfg.data.subset_fraction, cfg.data.batch_size, cfg.engine.grad_accum, cfg.train.epochs) == (0.1, 10, 2, 2)
    assert (cfg.optim.lr, cfg.data.max_duration, cfg.tasks.st_asr_share) == (1e-4, 150.0, 0.5)
    assert cfg.projector.kind == "qformer" and "Llama-3.1-8B" in cfg.llm.name_or_path
    test = load_config(EvalConfig, CONFIGS / "eval-paper.yaml")
    assert test.tasks.st_test_asr and test.tasks.st_test_targets == ["de"]
    assert [s.path for s in test.test] == ["shards/mustc-tst-common", "shards/spoken-squad-test"]


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("eval-*.yaml")), ids=lambda p: p.stem)
def test_eval_config_loads(path):
    from eval.run import EvalConfig

    cfg = load_config(EvalConfig, path)
    assert cfg.test and cfg.checkpoint is None and cfg.cascade is None


def _prepare_commands(text: str) -> list[list[str]]:
    """The `python -m data.prepare ...` / `slurm/prepare.sh ...` commands in a recipe's header comments."""
    comments = "\n".join(line.lstrip("# ").rstrip() for line in text.splitlines() if line.startswith("#"))
    joined = comments.replace("\\\n", " ")
    commands = []
    for line in joined.splitlines():
        for marker in ("python -m data.prepare ", "slurm/prepare.sh "):
            if marker in line:
                commands.append(shlex.split(line.split(marker, 1)[1].split("  (")[0]))
    return commands


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*.yaml")), ids=lambda p: p.stem)
def test_the_shard_commands_in_recipe_headers_parse_and_make_the_recipes_sources(path):
    """Recipe headers say how to build their shard sets; each command must be valid for data.prepare, and every
    shards/ path a real-corpus recipe reads must be made by one of them."""
    from data.prepare import build_parser

    parser, _ = build_parser()
    text = path.read_text()
    outs = set()
    for command in _prepare_commands(text):
        args = parser.parse_args(command)
        outs.add(str(args.out))
    used = set(re.findall(r"path: (shards/[\w.-]+)", text))
    assert used <= outs, f"{path.name}: no data.prepare command in its header makes {sorted(used - outs)}"
