"""Configuration faults: each is one error line naming the setting and the fix, raised by train.preflight from the
models' config.json files and the caches' manifests - before any model weights are loaded."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest

from tests.conftest import REPO
from tests.train.conftest import tone_world, write_config  # noqa: F401  (fixture)
from train.config import ConfigError, load_config
from train.preflight import preflight
from train.pretrain import PretrainConfig


def _cfg(world, tmp_path, **sections) -> PretrainConfig:
    return load_config(PretrainConfig, write_config(world, tmp_path / "run", **sections))


def test_a_good_config_passes(tone_world, tmp_path):  # noqa: F811
    preflight(_cfg(tone_world, tmp_path))


@pytest.mark.parametrize("section,key,value,needle", [
    ("llm", "name_or_path", "no-such-org/no-such-llm", "llm.name_or_path='no-such-org/no-such-llm' cannot be found"),
    ("encoder", "name_or_path", "/no/such/encoder", "encoder.name_or_path='/no/such/encoder' cannot be found"),
    ("llm", "name_or_path", "pypi:whisper-huge", "llm.name_or_path='pypi:whisper-huge' cannot be found"),
])
def test_a_model_that_is_not_here_is_named(tone_world, tmp_path, section, key, value, needle):  # noqa: F811
    with pytest.raises(ConfigError, match="nothing is downloaded at run time") as info:
        preflight(_cfg(tone_world, tmp_path, **{section: {key: value}}))
    assert needle in str(info.value)
    if value.startswith("no-such-org"):
        assert "huggingface-cli download no-such-org/no-such-llm" in str(info.value)


def test_layers_beyond_the_llms_depth(tone_world, tmp_path):  # noqa: F811
    depth = json.loads((tone_world["llm"] / "config.json").read_text())["num_hidden_layers"]
    with pytest.raises(ConfigError, match=rf"llm.layers=\[0, 99\]: layer 99 out of range .* has {depth} layers"):
        preflight(_cfg(tone_world, tmp_path, llm={"layers": [0, 99]}))
    preflight(_cfg(tone_world, tmp_path, llm={"layers": [0, depth]}))


def test_a_contrastive_batch_without_negatives(tone_world, tmp_path):  # noqa: F811
    cfg = _cfg(tone_world, tmp_path, data={"batch_size": 1})
    with pytest.raises(ConfigError, match="data.batch_size=1 leaves the cos InfoNCE loss no negatives"):
        preflight(cfg)
    preflight(_cfg(tone_world, tmp_path, data={"batch_size": 1}, loss={"objective": "asr"}))  # no contrast: fine
    gathered = _cfg(tone_world, tmp_path, data={"batch_size": 1}, loss={"gather_negatives": True})
    preflight(gathered, world_size=4)  # negatives from the other ranks


def test_a_global_batch_that_is_no_whole_number_of_micro_batches(tone_world, tmp_path):  # noqa: F811
    cfg = _cfg(tone_world, tmp_path, engine={"global_batch_size": 12})  # data.batch_size 8
    with pytest.raises(ConfigError, match="engine.global_batch_size=12: "):
        preflight(cfg)
    preflight(_cfg(tone_world, tmp_path, engine={"global_batch_size": 32}), world_size=2)


def test_a_text_cache_built_for_another_llm(tone_world, tmp_path):  # noqa: F811
    from data.text_cache import write_manifest
    from train.cache_text import CacheSpec

    cache = tmp_path / "cache"
    spec = CacheSpec(llm="some/other-llm", llm_fingerprint="0" * 64, tokenizer_sha256="", layers=(0, 2),
                     pooling="mean", dtype="float16", text_norm="basic", add_special_tokens=False)
    write_manifest(cache, spec, {})
    cfg = _cfg(tone_world, tmp_path, data={"text_cache": str(cache)}, llm={"position_shift_max": 0})
    with pytest.raises(ConfigError, match="was built for the LLM 'some/other-llm'.*rebuild it with slurm/cache_text"):
        preflight(cfg)


def test_the_job_stops_with_exit_2_and_one_line_before_loading_any_model(tone_world, tmp_path):  # noqa: F811
    config = write_config(tone_world, tmp_path / "run", llm={"layers": [0, 99]})
    proc = subprocess.run([sys.executable, "-m", "train.pretrain", "--config", str(config)], cwd=REPO,
                          env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True, timeout=300)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 2, log[-3000:]
    errors = [line for line in log.splitlines() if line.startswith("ERROR ") or " ERROR " in line]
    assert len(errors) == 1 and "llm.layers=[0, 99]" in errors[0], errors
    assert not re.search(r"LLM \S+: \d+ layers, attention", log) and "Traceback" not in log  # load_llm's log line
