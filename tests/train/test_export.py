"""Tests for train/export.py: exporting the trainable projector weights (prefix stripped, frozen ones left out),
rebuilding the projector from the export, the errors for missing or mismatched files, and the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from model.projectors import ProjectorConfig, build_projector
from train import config as C
from train.export import META, WEIGHTS, export_projector, load_projector

REPO = Path(__file__).resolve().parents[2]
IN, OUT, RATE = 8, 12, 50.0
PCFG = ProjectorConfig(kind="mlp", mlp_hidden=16)
META_DICT = {"projector": C.to_dict(PCFG), "in_dim": IN, "out_dim": OUT, "frame_rate": RATE, "step": 3}


class _SpeechLLM(nn.Module):
    def __init__(self, projector: nn.Module):
        super().__init__()
        self.projector = projector
        self.encoder = nn.Linear(4, IN).requires_grad_(False)  # frozen, like HuBERT and the LLM


class _PretrainModule(nn.Module):
    """The shape of train's PretrainModule as far as the export sees it."""

    def __init__(self, projector: nn.Module):
        super().__init__()
        self.speech_llm = _SpeechLLM(projector)
        self.objective = nn.Module()
        self.objective.log_temperature = nn.Parameter(torch.tensor(2.5))  # learned, saved under objective.*


def _projector(seed: int = 0):
    torch.manual_seed(seed)
    return build_projector(PCFG, IN, OUT, RATE).eval()


def _inputs():
    g = torch.Generator().manual_seed(1)
    feats = torch.randn(2, 23, IN, generator=g)
    mask = torch.arange(23)[None] < torch.tensor([23, 11])[:, None]
    return feats, mask


@pytest.fixture
def exported(tmp_path):
    proj = _projector()
    out = export_projector(_PretrainModule(proj), tmp_path / "export", META_DICT)
    assert out == tmp_path / "export"
    return proj, out


def test_export_writes_trainable_weights_with_short_keys(exported):
    proj, out = exported
    assert sorted(p.name for p in out.iterdir()) == sorted([WEIGHTS, META])
    tensors = load_file(str(out / WEIGHTS))
    expected = {k for k, _ in proj.named_parameters()} | {"objective.log_temperature"}
    assert set(tensors) == expected  # no speech_llm.projector. prefix, no frozen encoder weights
    assert not any(k.startswith(("speech_llm.", "encoder.")) for k in tensors)
    for k, p in proj.named_parameters():
        assert tensors[k].dtype == torch.float32
        torch.testing.assert_close(tensors[k], p.detach())
    assert tensors["objective.log_temperature"].item() == pytest.approx(2.5)
    assert json.loads((out / META).read_text()) == META_DICT


def test_frozen_projector_parameters_are_not_exported(tmp_path):
    proj = _projector()
    proj.proj[0].requires_grad_(False)
    export_projector(proj, tmp_path, META_DICT)  # a bare projector: keys are its own
    assert set(load_file(str(tmp_path / WEIGHTS))) == {"proj.2.weight", "proj.2.bias"}


def test_export_casts_to_float32(tmp_path):
    proj = _projector().to(torch.bfloat16)
    export_projector(proj, tmp_path, META_DICT)
    assert {t.dtype for t in load_file(str(tmp_path / WEIGHTS)).values()} == {torch.float32}


def test_load_rebuilds_equal_weights_and_outputs(exported):
    proj, out = exported
    loaded, meta = load_projector(out)
    assert meta == META_DICT
    assert type(loaded) is type(proj) and loaded.cfg == PCFG
    for (k, a), (k2, b) in zip(proj.state_dict().items(), loaded.state_dict().items()):
        assert k == k2
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    loaded.eval()
    with torch.no_grad():
        (e1, m1), (e2, m2) = proj(*_inputs()), loaded(*_inputs())
    torch.testing.assert_close(e1, e2, rtol=0, atol=0)
    assert torch.equal(m1, m2)


def test_load_missing_files(tmp_path, exported):
    with pytest.raises(FileNotFoundError, match="python -m train.export"):
        load_projector(tmp_path / "nowhere")
    _, out = exported
    (out / META).unlink()  # half an export is no export
    with pytest.raises(FileNotFoundError, match="projector.json"):
        load_projector(out)


def test_load_mismatched_weights(tmp_path, exported):
    proj, out = exported
    tensors = load_file(str(out / WEIGHTS))
    tensors["extra.weight"] = torch.zeros(2)
    del tensors["proj.0.bias"]
    save_file(tensors, str(out / WEIGHTS))
    with pytest.raises(ValueError, match=r"does not match.*proj\.0\.bias.*extra\.weight"):
        load_projector(out)


def test_load_wrong_shapes(exported):
    _, out = exported
    meta = json.loads((out / META).read_text())
    meta["in_dim"] = IN + 1  # the JSON describes a different projector than the weights
    (out / META).write_text(json.dumps(meta))
    with pytest.raises(ValueError, match=r"(?s)does not match its projector\.json.*size mismatch"):
        load_projector(out)


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "train.export", *map(str, args)], cwd=REPO, capture_output=True,
                          text=True, timeout=120)


def test_cli_copies_and_summarises(tmp_path, exported):
    proj, ckpt = exported
    (ckpt / "mp_rank_00_model_states.pt").write_bytes(b"deepspeed files are not copied")
    out = tmp_path / "shared" / "projector"
    res = _cli(ckpt, out)
    assert res.returncode == 0, res.stderr
    assert sorted(p.name for p in out.iterdir()) == sorted([WEIGHTS, META])
    for name in (WEIGHTS, META):
        assert (out / name).read_bytes() == (ckpt / name).read_bytes()
    n = sum(p.numel() for p in proj.parameters())
    assert res.stdout.strip() == f"exported mlp projector ({n:,} parameters, step 3) to {out}"

    empty = tmp_path / "not_a_checkpoint"
    empty.mkdir()
    res = _cli(empty, tmp_path / "out2")
    assert res.returncode == 2
    assert "holds no exported projector" in res.stderr and not (tmp_path / "out2").exists()

    meta = json.loads((ckpt / META).read_text())
    meta["out_dim"] = OUT + 4  # weights of another shape: an error message, not a traceback
    (ckpt / META).write_text(json.dumps(meta))
    res = _cli(ckpt, tmp_path / "out3")
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert res.stderr.startswith("ERROR python -m train.export: ") and res.stderr.count("\n") == 1
    assert not (tmp_path / "out3").exists()
