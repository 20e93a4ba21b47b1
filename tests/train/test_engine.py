"""Tests for train/engine.py without building an engine: the bundled ds_configs/ JSONs, name/path resolution, the
numbers filled in from the dataclasses, precision and offload on CPU vs GPU, and the refusal of owned keys."""

from __future__ import annotations

import json

import pytest

from train.engine import DS_CONFIG_DIR, EngineConfig, deepspeed_config, resolve_ds_config_path, zero_stage

BUNDLED = sorted(p.stem for p in DS_CONFIG_DIR.glob("*.json"))
# What a bundled JSON may decide: ZeRO (stage, buckets, offload), precision, and letting our torch AdamW run on the
# offloaded CPU copy (zero_force_ds_cpu_optimizer belongs to offload).
ALLOWED = {"zero_optimization", "bf16", "fp16", "zero_force_ds_cpu_optimizer"}
OWNED = ("train_batch_size", "train_micro_batch_size_per_gpu", "gradient_accumulation_steps", "gradient_clipping",
         "optimizer", "scheduler")


def test_bundled_names():
    assert {"zero1", "zero2", "zero3", "zero2_offload", "zero3_offload"} <= set(BUNDLED)


@pytest.mark.parametrize("name", BUNDLED)
def test_bundled_json_holds_only_zero_offload_and_precision(name):
    ds = json.loads((DS_CONFIG_DIR / f"{name}.json").read_text())
    assert set(ds) <= ALLOWED, f"{name}.json sets {set(ds) - ALLOWED}"
    assert not set(ds) & set(OWNED)
    assert ds["bf16"]["enabled"] is True  # the recipe's precision on GPUs
    stage = int(name[len("zero")])
    assert zero_stage(ds) == stage
    offload = {k for k in ("offload_optimizer", "offload_param") if k in ds["zero_optimization"]}
    assert bool(offload) == name.endswith("_offload")
    if name == "zero3_offload":
        assert offload == {"offload_optimizer", "offload_param"}


@pytest.mark.parametrize("name", BUNDLED)
def test_every_bundled_config_fills_in(name):
    ds = deepspeed_config(EngineConfig(ds_config=name, grad_accum=2), micro_batch_size=4, clip_grad_norm=1.0,
                          world_size=3, cuda=False)
    assert zero_stage(ds) == int(name[len("zero")])
    assert (ds["train_micro_batch_size_per_gpu"], ds["gradient_accumulation_steps"]) == (4, 2)
    assert ds["train_batch_size"] == 4 * 2 * 3
    assert ds["gradient_clipping"] == 1.0
    assert ds["zero_allow_untested_optimizer"] is True  # our torch AdamW is handed in as an object
    assert "optimizer" not in ds and "scheduler" not in ds
    json.dumps(ds)  # DeepSpeed accepts a dict; it must still be plain JSON data


def test_batch_accumulation_clip_and_world():
    ds = deepspeed_config(EngineConfig(grad_accum=5), micro_batch_size=7, clip_grad_norm=0.0, world_size=16,
                          cuda=True)
    assert ds["train_batch_size"] == 7 * 5 * 16
    assert ds["gradient_clipping"] == 0.0  # 0 = off, passed through


def test_resolve_names_and_paths(tmp_path):
    assert resolve_ds_config_path("zero2") == DS_CONFIG_DIR / "zero2.json"
    assert resolve_ds_config_path("zero3.json") == DS_CONFIG_DIR / "zero3.json"
    own = tmp_path / "mine.json"
    own.write_text(json.dumps({"zero_optimization": {"stage": 1}}))
    assert resolve_ds_config_path(str(own)) == own
    assert resolve_ds_config_path(str(DS_CONFIG_DIR / "zero1.json")) == DS_CONFIG_DIR / "zero1.json"
    with pytest.raises(ValueError, match="does not exist"):  # a mistyped path never becomes the bundled file
        resolve_ds_config_path(str(tmp_path / "typo" / "zero3.json"))


@pytest.mark.parametrize("name", ["zero4", "nonexistent.json", "ds_configs"])
def test_unknown_name_lists_the_bundled_ones(name):
    with pytest.raises(ValueError, match="neither a file nor one of ds_configs") as e:
        resolve_ds_config_path(name)
    for bundled in BUNDLED:
        assert bundled in str(e.value)
    with pytest.raises(ValueError, match="zero2_offload"):
        EngineConfig(ds_config=name)  # caught when the config is built, before any model is loaded


@pytest.mark.parametrize("name", ["zero2", "zero3_offload"])
def test_auto_precision_is_fp32_on_cpu_and_bf16_on_gpu(name):
    cpu = deepspeed_config(EngineConfig(ds_config=name), 2, 1.0, 1, cuda=False)
    assert cpu["bf16"] == {"enabled": False} and cpu["fp16"]["enabled"] is False
    gpu = deepspeed_config(EngineConfig(ds_config=name), 2, 1.0, 1, cuda=True)
    assert gpu["bf16"] == {"enabled": True} and gpu["fp16"]["enabled"] is False


def test_auto_precision_follows_a_user_json_on_gpu(tmp_path):
    for setting, expected in [({"fp16": {"enabled": True}}, "fp16"), ({}, "fp32")]:
        path = tmp_path / f"{expected}.json"
        path.write_text(json.dumps({"zero_optimization": {"stage": 1}, **setting}))
        ds = deepspeed_config(EngineConfig(ds_config=str(path)), 2, 1.0, 1, cuda=True)
        assert (ds["bf16"]["enabled"], ds["fp16"]["enabled"]) == (False, expected == "fp16")


@pytest.mark.parametrize("cuda", [False, True])
@pytest.mark.parametrize("precision", ["bf16", "fp16", "fp32"])
def test_explicit_precision_overrides_json_and_device(precision, cuda):
    ds = deepspeed_config(EngineConfig(ds_config="zero2", precision=precision), 2, 1.0, 1, cuda=cuda)
    assert ds["bf16"]["enabled"] is (precision == "bf16")
    assert ds["fp16"]["enabled"] is (precision == "fp16")
    assert ("initial_scale_power" in ds["fp16"]) is (precision == "fp16")  # dynamic loss scaling only for fp16


def test_offload_pin_memory_off_without_cuda():
    cpu = deepspeed_config(EngineConfig(ds_config="zero3_offload"), 2, 1.0, 1, cuda=False)
    zero = cpu["zero_optimization"]
    assert zero["offload_optimizer"] == {"device": "cpu", "pin_memory": False}
    assert zero["offload_param"] == {"device": "cpu", "pin_memory": False}
    gpu = deepspeed_config(EngineConfig(ds_config="zero3_offload"), 2, 1.0, 1, cuda=True)
    assert gpu["zero_optimization"]["offload_optimizer"]["pin_memory"] is True
    assert gpu["zero_optimization"]["offload_param"]["pin_memory"] is True
    # the file on disk is untouched (each call starts from the JSON again)
    again = deepspeed_config(EngineConfig(ds_config="zero3_offload"), 2, 1.0, 1, cuda=True)
    assert again["zero_optimization"]["offload_param"]["pin_memory"] is True


def test_cuda_defaults_to_availability():
    import torch

    ds = deepspeed_config(EngineConfig(), 2, 1.0, 1)
    assert ds["bf16"]["enabled"] is torch.cuda.is_available()


@pytest.mark.parametrize("key", OWNED)
def test_user_json_setting_an_owned_key_is_refused(tmp_path, key):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"zero_optimization": {"stage": 2}, key: {"type": "AdamW"} if key in (
        "optimizer", "scheduler") else 8}))
    cfg = EngineConfig(ds_config=str(path))  # resolving is fine; the contents are checked when filled in
    with pytest.raises(ValueError, match=key) as e:
        deepspeed_config(cfg, 2, 1.0, 1, cuda=False)
    assert "remove them" in str(e.value) and str(path) in str(e.value)


def test_invalid_json_is_a_value_error(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text('{"zero_optimization": {"stage": 2},}')
    with pytest.raises(ValueError, match="not valid JSON"):
        deepspeed_config(EngineConfig(ds_config=str(path)), 2, 1.0, 1, cuda=False)


@pytest.mark.parametrize(("kw", "match"), [
    ({"precision": "fp8"}, "precision"),
    ({"grad_accum": 0}, "grad_accum"),
    ({"ds_config": "zero9"}, "zero9"),
])
def test_engine_config_validation(kw, match):
    with pytest.raises(ValueError, match=match):
        EngineConfig(**kw)


def test_zero_stage_defaults_to_zero():
    assert zero_stage({}) == 0 and zero_stage({"zero_optimization": {"stage": "3"}}) == 3


@pytest.mark.parametrize("name", ["zero2", "zero3"])
def test_checkpoints_leave_out_tied_frozen_weights(tmp_path, name):
    """A frozen embedding tied to the output layer (Gemma 3) is not saved under its second name."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    probe = Path(__file__).with_name("tied_probe.py")
    env = {**os.environ, "DS_ACCELERATOR": "cpu", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, str(probe), str(tmp_path), name], env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    keys = json.loads(proc.stdout.strip().splitlines()[-1])
    assert keys == ["adapter.bias", "adapter.weight"]
