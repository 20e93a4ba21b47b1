"""Helpers of tests/train/test_bf16.py: run the real entry points (`train.pretrain.main`, `train.finetune.main`)
inside the test process, one gloo rank on DeepSpeed's CPU accelerator, and look inside the engine while it runs.

Why in-process: a `python -m train.pretrain` subprocess spends most of its few seconds importing torch, DeepSpeed
and transformers, and the bf16 matrix runs 26 jobs. `gloo_rank` holds one process group for all of them and
restores the environment afterwards, so subprocess tests later in the same pytest worker inherit no RANK or
MASTER_PORT.

`EngineProbe` wraps `train.runner.build_engine`, so the job trains exactly as it would on a GPU and the probe only
reads: at the first optimizer-step boundary it copies every trainable gradient (DeepSpeed's fp32 view of the
reduced gradient, `safe_get_full_grad`), and right after that step it records the dtypes DeepSpeed keeps (module
weights, fp32 master weights, Adam moments). `LossDtypeProbe` records the dtypes that reach the loss reductions.
"""

from __future__ import annotations

import contextlib
import os
from collections import defaultdict
from pathlib import Path

import torch
import yaml
from safetensors.torch import load_file

from data.prepare import build_from_manifest
from model.tiny import TinyConfig, read_texts, write_tiny_models
from tests.conftest import make_word_tone_manifest

LAUNCHER_VARS = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT", "DS_ACCELERATOR")


def build_world(root: Path) -> dict:
    """32 word-tone utterances in shards of 16 and a tiny HuBERT + 6-layer Llama ("all" layers = [0, 5, 6])."""
    manifest = make_word_tone_manifest(root / "corpus", 32, seed=3)
    build_from_manifest(manifest, root / "shards", max_samples=16, workers=1)
    models = write_tiny_models(root / "tiny", TinyConfig(vocab_size=300, llm_layers=6), read_texts([manifest]))
    return {"root": root, "shards": root / "shards", **models}


def job_config(world: dict, run_dir: Path, precision: str, zero: str, **sections) -> dict:
    """A pretraining or finetuning config: batch 8 x accumulation 2 (the paper's accumulation; for contrastive
    objectives a GradCache step), frozen encoder and LLM loaded in the precision the engine computes in."""
    dtype = {"bf16": "bfloat16", "fp32": "float32"}[precision]
    cfg = {"run_dir": str(run_dir), "plots": False, "tensorboard": False,
           "data": {"sources": [{"path": str(world["shards"]), "name": "tone"}], "batch_size": 8, "num_workers": 0,
                    "shuffle_buffer": 0},
           "encoder": {"name_or_path": str(world["encoder"]), "dtype": dtype},
           "projector": {"kind": "mlp", "mlp_hidden": 64},
           "llm": {"name_or_path": str(world["llm"]), "dtype": dtype},
           "optim": {"lr": 3e-3},
           "engine": {"ds_config": zero, "precision": precision, "grad_accum": 2},
           "train": {"max_steps": 4, "log_every": 4}, "checkpoint": {"every_steps": 2, "keep_last": 0}}
    for section, values in sections.items():
        cfg[section] = {**cfg[section], **values} if isinstance(values, dict) and section in cfg else values
    return cfg


class EngineProbe:
    """Wraps `train.runner.build_engine` for one job; see the module docstring."""

    def __init__(self):
        self.grads: dict[str, torch.Tensor] = {}
        self.masters: dict[str, torch.Tensor] = {}
        """DeepSpeed's fp32 master of each trainable parameter after the latest step."""
        self.dtypes: dict[str, set[torch.dtype]] = defaultdict(set)
        self.optimizer = ""

    def wrap(self, build_engine):
        def build(module, optimizer, scheduler, ds):
            engine = build_engine(module, optimizer, scheduler, ds)
            self._instrument(engine, module)
            return engine
        return build

    def _instrument(self, engine, module) -> None:
        from deepspeed.utils import safe_get_full_fp32_param, safe_get_full_grad

        step = engine.step
        trainable = [(n, p) for n, p in module.named_parameters() if p.requires_grad]

        def probed_step(*args, **kwargs):
            boundary = engine.is_gradient_accumulation_boundary()
            first = boundary and not self.grads
            if first:
                self.grads = {n: safe_get_full_grad(p).float().clone() for n, p in trainable}
            out = step(*args, **kwargs)
            if boundary:
                self.masters = {n: safe_get_full_fp32_param(p).clone() for n, p in trainable}
            if first:
                self.optimizer = type(engine.optimizer).__name__
                for _, p in trainable:
                    self.dtypes["module weights"].add(p.dtype)
                    self.dtypes["master weights"].add(safe_get_full_fp32_param(p).dtype)
                # our torch AdamW, stepping DeepSpeed's flat master partitions (ZeRO-3 puts them into its
                # param_groups only for the duration of the step, so read its state)
                state = engine.optimizer.optimizer.state
                for master, moments in state.items():
                    self.dtypes["optimized tensors"].add(master.dtype)
                    for key in ("exp_avg", "exp_avg_sq"):
                        self.dtypes[f"adam {key}"].add(moments[key].dtype)
                self.dtypes["frozen weights"] = {p.dtype for p in module.parameters() if not p.requires_grad}
            return out

        engine.step = probed_step


class LossDtypeProbe:
    """Records ``{reduction: {input/output dtypes}}`` for the functions through which every loss value passes:
    masked mean-pooling, the Sinkhorn divergence matrix, InfoNCE and every cross-entropy (InfoNCE's and the
    next-token loss's). Patched by name where they are looked up at call time."""

    def __init__(self, monkeypatch):
        import torch.nn.functional as F

        import model.losses as losses
        import model.sinkhorn as sinkhorn

        self.seen: dict[str, set[str]] = defaultdict(set)
        for owner, name in ((losses, "masked_mean_pool"), (losses, "info_nce"), (F, "cross_entropy"),
                            (sinkhorn, "sinkhorn_divergence_matrix")):
            monkeypatch.setattr(owner, name, self._recording(name, getattr(owner, name)))

    def _recording(self, name, fn):
        def recorded(*args, **kwargs):
            out = fn(*args, **kwargs)
            first = args[0]
            self.seen[name].add(f"{str(first.dtype)[6:]}->{str(out.dtype)[6:]}")
            return out
        return recorded


@contextlib.contextmanager
def gloo_rank():
    """One gloo rank on DeepSpeed's CPU accelerator for several jobs in this process; the environment (launcher
    variables that `train.distributed.setup` writes) is restored afterwards.

    One process group serves every job: `run_in_process` skips the jobs' own teardown, because DeepSpeed caches its
    world group (``deepspeed.utils.groups._WORLD_GROUP``) on first use and a job after a destroy/re-init cycle would
    broadcast over the destroyed group ("Group ... is not registered"). A job per process, as in production, never
    meets this.
    """
    import torch.distributed as dist

    from train import distributed as tdist

    saved = {k: os.environ.get(k) for k in LAUNCHER_VARS}
    for key in LAUNCHER_VARS:
        os.environ.pop(key, None)
    os.environ["DS_ACCELERATOR"] = "cpu"  # what train.distributed.setup sets without CUDA, before DeepSpeed's import
    try:
        tdist.setup()
        yield
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
        import deepspeed.utils.groups as ds_groups

        ds_groups._WORLD_GROUP = None  # the cache described above: a later in-process job starts clean
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def run_in_process(main, cfg: dict, monkeypatch, *overrides: str, probe: EngineProbe | None = None) -> int:
    """Writes `cfg` next to its run directory and runs ``main(["--config", path, *overrides])`` inside `gloo_rank`."""
    import train.runner
    from train import distributed as tdist

    path = Path(cfg["run_dir"]).with_suffix(".yaml")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(cfg))
    with monkeypatch.context() as patch:
        patch.setattr(tdist, "teardown", lambda: None)  # see gloo_rank
        if probe is not None:
            patch.setattr(train.runner, "build_engine", probe.wrap(train.runner.build_engine))
        return main(["--config", str(path), *overrides])


def rows(run_dir: Path) -> list[dict]:
    import json

    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def logged_losses(row: dict) -> dict[str, float]:
    """The loss values and the optimizer's view of a step in a metrics.jsonl row."""
    return {k: v for k, v in row.items()
            if k.startswith(("loss/", "cos/", "wasser/", "contrastive/")) or k in ("lr", "grad_norm", "samples")}


def checkpoint_tensors(step_dir: Path) -> dict[str, torch.Tensor]:
    """Every tensor DeepSpeed wrote into a checkpoint (module weights, fp32 master partitions, Adam moments), keyed
    by file and path inside the saved object, plus the exported projector."""
    out = {f"projector/{k}": v for k, v in load_file(str(step_dir / "projector.safetensors")).items()}
    for file in sorted(step_dir.glob("*.pt")):
        _collect(torch.load(file, map_location="cpu", weights_only=False), file.name, out)
    return out


def _collect(obj, prefix: str, out: dict) -> None:
    if isinstance(obj, torch.Tensor):
        out[prefix] = obj
    elif isinstance(obj, dict):
        for k, v in obj.items():
            _collect(v, f"{prefix}/{k}", out)
    elif isinstance(obj, list | tuple):
        for i, v in enumerate(obj):
            _collect(v, f"{prefix}/{i}", out)


def flat(grads: dict[str, torch.Tensor]) -> torch.Tensor:
    return torch.cat([grads[k].flatten().double() for k in sorted(grads)])


def gradient_error(bf16: dict[str, torch.Tensor], fp32: dict[str, torch.Tensor]) -> tuple[float, float]:
    """(relative L2 error, cosine similarity) of the flattened bf16 gradient against the fp32 one."""
    assert bf16.keys() == fp32.keys()
    a, b = flat(bf16), flat(fp32)
    return float((a - b).norm() / b.norm()), float(torch.nn.functional.cosine_similarity(a, b, dim=0))
