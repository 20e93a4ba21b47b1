"""Tests for train/config.py: defaults -> YAML -> CLI merging, coercion, errors, dump/load, docs and CLI."""

from __future__ import annotations

import dataclasses
import enum
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Optional

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # repo root; tests run without an installed package

from train import config as C  # noqa: E402
from train.config import ConfigError, load_config, parse_overrides  # noqa: E402


class Speed(enum.Enum):
    FAST = "fast"
    SLOW = "slow"


@dataclass
class DataCfg:
    batch_size: int = 8
    """Per-device batch size."""
    langs: list[str] = field(default_factory=lambda: ["en"])
    """Languages to mix,
    one per source."""
    weights: dict[str, float] | None = None
    """Per-source sampling weights."""
    mode: Literal["a", "b"] = "a"
    """Bucketing mode."""
    root: Path = Path("data")
    """Shard root."""
    max_seconds: Optional[float] = 45.0  # noqa: UP045 (Optional[X] support is under test)
    """Drop longer utterances."""
    name: str = "mix"
    shuffle: bool = True
    speed: Speed = Speed.FAST


@dataclass
class OptimCfg:
    lr: float = 1e-4
    """Peak learning rate."""
    betas: tuple[float, float] = (0.9, 0.999)
    """AdamW betas."""

    def __post_init__(self):
        if self.lr <= 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")


@dataclass
class AuxCfg:
    k: int = 1
    tags: tuple[str, ...] = ()
    label: int | str = 0


@dataclass
class TopCfg:
    data: DataCfg = field(default_factory=DataCfg)
    """Data stream."""
    optim: OptimCfg = field(default_factory=lambda: OptimCfg(lr=3e-4))
    """Optimiser."""
    seed: int = 0
    """Global seed."""
    aux: AuxCfg | None = None
    """Optional extra section."""


@dataclass
class NeedsCfg:
    out: Path
    """Where to write."""
    optim: OptimCfg
    steps: int = 10
    stages: list[OptimCfg] = field(default_factory=list)


def write_yaml(path: Path, data) -> Path:
    path.write_text(yaml.safe_dump(data) if not isinstance(data, str) else data)
    return path


def test_defaults_only():
    cfg = load_config(TopCfg)
    assert cfg == TopCfg()
    assert cfg.optim.lr == 3e-4  # the parent's default_factory, not OptimCfg's own default


def test_yaml_merges_over_defaults_and_keeps_parent_defaults(tmp_path):
    path = write_yaml(tmp_path / "c.yaml", {"data": {"batch_size": 16, "langs": ["en", "ru"]},
                                            "optim": {"betas": [0.8, 0.9]}})
    cfg = load_config(TopCfg, path)
    assert cfg.data.batch_size == 16 and cfg.data.langs == ["en", "ru"] and cfg.data.mode == "a"
    assert cfg.optim.betas == (0.8, 0.9) and cfg.optim.lr == 3e-4


def test_cli_wins_over_yaml_and_nested_overrides(tmp_path):
    path = write_yaml(tmp_path / "c.yaml", {"data": {"batch_size": 16}, "seed": 1})
    cfg = load_config(TopCfg, path, ["data.batch_size=4", "seed=7", "optim.lr=0.01"])
    assert (cfg.data.batch_size, cfg.seed, cfg.optim.lr) == (4, 7, 0.01)


def test_empty_yaml_and_empty_section_are_harmless(tmp_path):
    assert load_config(TopCfg, write_yaml(tmp_path / "e.yaml", "")) == TopCfg()
    assert load_config(TopCfg, write_yaml(tmp_path / "s.yaml", "data:\n")) == TopCfg()


def test_coercion_of_containers_optional_literal_path_enum():
    cfg = load_config(TopCfg, None, [
        "data.weights={en: 1, ru: 2}", "optim.betas=[0.5, 1]", "data.max_seconds=null", "data.root=/tmp/x",
        "data.mode=b", "data.langs=[en, ru]", "data.speed=slow", "aux.tags=[x, y]"])
    assert cfg.data.weights == {"en": 1.0, "ru": 2.0} and all(type(v) is float for v in cfg.data.weights.values())
    assert cfg.optim.betas == (0.5, 1.0) and isinstance(cfg.optim.betas, tuple)
    assert cfg.data.max_seconds is None
    assert cfg.data.root == Path("/tmp/x") and isinstance(cfg.data.root, Path)
    assert cfg.data.mode == "b" and cfg.data.langs == ["en", "ru"] and cfg.data.speed is Speed.SLOW
    assert cfg.aux == AuxCfg(k=1, tags=("x", "y"))  # an optional section is created by setting one of its keys


def test_int_for_float_and_yaml_scientific_notation():
    cfg = load_config(TopCfg, None, ["optim.lr=1"])
    assert cfg.optim.lr == 1.0 and type(cfg.optim.lr) is float
    assert load_config(TopCfg, None, ["optim.lr=1e-4"]).optim.lr == 1e-4  # YAML 1.1 reads 1e-4 as a string
    assert load_config(TopCfg, None, ["data.batch_size=1e2"]).data.batch_size == 100
    with pytest.raises(ConfigError, match="expected int"):
        load_config(TopCfg, None, ["data.batch_size=2.5"])


def test_cli_raw_text_for_str_fields():
    assert load_config(TopCfg, None, ["data.name=1.10"]).data.name == "1.10"
    assert load_config(TopCfg, None, ["data.name=no"]).data.name == "no"
    assert load_config(TopCfg, None, ["data.name=en,ru"]).data.name == "en,ru"


def test_dotted_keys_update_dict_entries_but_mapping_replaces(tmp_path):
    path = write_yaml(tmp_path / "c.yaml", {"data": {"weights": {"en": 1, "ru": 1}}})
    assert load_config(TopCfg, path, ["data.weights.ru=3"]).data.weights == {"en": 1.0, "ru": 3.0}
    assert load_config(TopCfg, path, ["data.weights={ru: 3}"]).data.weights == {"ru": 3.0}


def test_optional_section_can_be_nulled(tmp_path):
    path = write_yaml(tmp_path / "c.yaml", {"aux": {"k": 5}})
    assert load_config(TopCfg, path).aux == AuxCfg(k=5)
    assert load_config(TopCfg, path, ["aux=null"]).aux is None


def test_unknown_key_in_yaml_names_key_suggestion_and_file(tmp_path):
    path = write_yaml(tmp_path / "c.yaml", {"data": {"batch_sise": 3}})
    with pytest.raises(ConfigError) as e:
        load_config(TopCfg, path)
    msg = str(e.value)
    assert "'data.batch_sise'" in msg and "did you mean 'data.batch_size'" in msg and str(path) in msg
    assert "valid keys under 'data'" in msg and "langs" in msg


def test_unknown_key_on_cli_names_source_and_finds_deeper_keys():
    with pytest.raises(ConfigError) as e:
        load_config(TopCfg, None, ["optim.lrr=0.1"])
    assert "'optim.lrr'" in str(e.value) and "'optim.lr'" in str(e.value) and "command line" in str(e.value)
    with pytest.raises(ConfigError, match=r"did you mean 'data\.batch_size'"):
        load_config(TopCfg, None, ["batch_size=3"])


def test_wrong_type_messages():
    with pytest.raises(ConfigError) as e:
        load_config(TopCfg, None, ["data.batch_size=abc"])
    msg = str(e.value)
    assert "'data.batch_size'" in msg and "expected int" in msg and "'abc'" in msg and "command line" in msg
    with pytest.raises(ConfigError, match=r"'data\.shuffle'.*expected bool.*got 1"):
        load_config(TopCfg, None, ["data.shuffle=1"])
    with pytest.raises(ConfigError, match=r"'data\.langs'.*expected list\[str\].*\[a, b\]"):
        load_config(TopCfg, None, ["data.langs=en,ru"])
    with pytest.raises(ConfigError, match=r"'optim\.betas'.*exactly 2 items"):
        load_config(TopCfg, None, ["optim.betas=[0.1, 0.2, 0.3]"])
    with pytest.raises(ConfigError, match=r"'data\.weights\.en'.*expected float"):
        load_config(TopCfg, None, ["data.weights={en: x}"])


def test_yaml_boolean_for_str_gets_quote_hint(tmp_path):
    path = write_yaml(tmp_path / "c.yaml", "data:\n  name: no\n")
    with pytest.raises(ConfigError, match=r"'data\.name'.*quote it") as e:
        load_config(TopCfg, path)
    assert str(path) in str(e.value)


def test_literal_and_enum_violations_list_allowed_values():
    with pytest.raises(ConfigError, match=r"'data\.mode'.*'c' is not one of 'a', 'b'"):
        load_config(TopCfg, None, ["data.mode=c"])
    with pytest.raises(ConfigError, match=r"'data\.speed'.*'fast', 'slow'"):
        load_config(TopCfg, None, ["data.speed=medium"])


def test_section_given_a_scalar():
    with pytest.raises(ConfigError, match=r"'data'.*section \(DataCfg\).*data\.batch_size="):
        load_config(TopCfg, None, ["data=3"])


def test_post_init_error_is_prefixed_with_section_path():
    with pytest.raises(ConfigError) as e:
        load_config(TopCfg, None, ["optim.lr=-1"])
    assert str(e.value).startswith("optim: lr must be > 0")
    assert isinstance(e.value, ValueError)


def test_union_prefers_exact_type_and_lists_of_sections_validate(tmp_path):
    path = write_yaml(tmp_path / "c.yaml", 'aux:\n  label: "3"\n')
    assert load_config(TopCfg, path).aux.label == "3"
    assert load_config(TopCfg, path, ["aux.label=3"]).aux.label == 3
    cfg = load_config(NeedsCfg, None, ["out=o", "stages=[{lr: 0.1}, {betas: [0.1, 0.2]}]"])
    assert cfg.stages == [OptimCfg(lr=0.1), OptimCfg(betas=(0.1, 0.2))]
    with pytest.raises(ConfigError, match=r"^stages\[1\]: lr must be > 0"):
        load_config(NeedsCfg, None, ["out=o", "stages=[{lr: 0.1}, {lr: -1}]"])


def test_missing_required_key_and_required_section_defaults(tmp_path):
    with pytest.raises(ConfigError, match=r"missing required key 'out'"):
        load_config(NeedsCfg)
    cfg = load_config(NeedsCfg, None, ["out=/tmp/o"])
    assert cfg.out == Path("/tmp/o") and cfg.optim == OptimCfg()


def test_duplicate_yaml_key_and_bad_files(tmp_path):
    with pytest.raises(ConfigError, match="duplicate key 'seed'"):
        load_config(TopCfg, write_yaml(tmp_path / "d.yaml", "seed: 1\nseed: 2\n"))
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_config(TopCfg, tmp_path / "missing.yaml")
    with pytest.raises(ConfigError, match="mapping at the top level"):
        load_config(TopCfg, write_yaml(tmp_path / "l.yaml", "- 1\n- 2\n"))


def test_dump_load_round_trip_is_equal_valid_yaml_and_ordered(tmp_path):
    cfg = load_config(TopCfg, None, ["data.weights={en: 0.25}", "data.root=/x/y", "optim.betas=[0.1, 0.2]",
                                     "data.speed=slow", "aux.tags=[a]", "data.name=yes", "seed=3"])
    path = C.dump_config(cfg, tmp_path / "run")
    assert path == tmp_path / "run" / "config.yaml"
    text = path.read_text()
    assert text.startswith("# Resolved")
    loaded = yaml.safe_load(text)
    assert list(loaded) == ["data", "optim", "seed", "aux"]  # declaration order, not alphabetical
    assert list(loaded["data"])[:3] == ["batch_size", "langs", "weights"]
    assert loaded["data"]["root"] == "/x/y" and loaded["optim"]["betas"] == [0.1, 0.2]
    assert loaded["data"]["name"] == "yes"  # quoted on dump, so it stays a string
    assert load_config(TopCfg, path) == cfg
    assert C.from_dict(TopCfg, C.to_dict(cfg)) == cfg
    assert os.listdir(tmp_path / "run") == ["config.yaml"]  # no temp file left behind


def test_dump_is_atomic_when_the_replace_fails(tmp_path, monkeypatch):
    path = C.dump_config(TopCfg(), tmp_path)
    before = path.read_text()

    def boom(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(C.os, "replace", boom)
    with pytest.raises(OSError, match="disk full"):
        C.dump_config(load_config(TopCfg, None, ["seed=9"]), tmp_path)
    assert path.read_text() == before and os.listdir(tmp_path) == ["config.yaml"]


def test_to_dict_is_plain():
    d = C.to_dict(TopCfg(aux=AuxCfg(tags=("t",))))
    assert d["data"]["root"] == "data" and d["data"]["speed"] == "fast" and d["optim"]["betas"] == [0.9, 0.999]
    assert d["aux"] == {"k": 1, "tags": ["t"], "label": 0}
    assert yaml.safe_load(yaml.safe_dump(d)) == d


def test_config_diff_lists_changed_leaves():
    cfg = load_config(TopCfg, None, ["optim.lr=0.01", "data.langs=[en, ru]"])
    assert C.config_diff(cfg) == {"data.langs": (["en"], ["en", "ru"]), "optim.lr": (3e-4, 0.01)}
    assert C.config_diff(TopCfg()) == {}


def test_parse_overrides_values_and_edge_cases():
    got = parse_overrides(["a.b=3", "a.c=0.1", "t=true", "l=[1,2]", "m={a: 1}", "n=null", "s=en,ru", "e=x=y"])
    assert got == {"a": {"b": 3, "c": 0.1}, "t": True, "l": [1, 2], "m": {"a": 1}, "n": None, "s": "en,ru",
                   "e": "x=y"}
    assert parse_overrides(["x=1", "x=2"]) == {"x": 2}  # later arguments win
    with pytest.raises(ValueError) as e:
        parse_overrides(["data.batch_size"])
    assert "'data.batch_size'" in str(e.value) and "e.g." in str(e.value)
    with pytest.raises(ValueError, match="key=value"):
        parse_overrides(["a..b=1"])
    with pytest.raises(ValueError, match="conflicts"):
        parse_overrides(["a=1", "a.b=2"])
    with pytest.raises(ConfigError, match="key=value"):
        load_config(TopCfg, None, ["seed"])


def test_field_docs_extracts_docstrings_and_survives_missing_source():
    docs = C.field_docs(DataCfg)
    assert docs["batch_size"] == "Per-device batch size."
    assert docs["langs"] == "Languages to mix,\none per source."
    assert "name" not in docs
    assert C.field_docs(dataclasses.make_dataclass("Made", [("x", int, 1)])) == {}


def test_format_help_lists_nested_keys_with_types_defaults_and_docs():
    text = C.format_help(TopCfg)
    lines = text.splitlines()
    assert "data (DataCfg section): Data stream." in lines
    assert "data.batch_size (int, default=8): Per-device batch size." in lines
    assert "data.langs (list[str], default=['en']): Languages to mix, one per source." in lines
    assert "data.mode (Literal['a', 'b'], default='a'): Bucketing mode." in lines
    assert "optim.lr (float, default=0.0003): Peak learning rate." in lines
    assert "aux (AuxCfg | None, default=None): Optional extra section." in lines
    assert "aux.k (int, default=1)" in lines
    assert "out (Path, required): Where to write." in C.format_help(NeedsCfg).splitlines()


def test_parse_cli(tmp_path, capsys):
    path = write_yaml(tmp_path / "c.yaml", {"seed": 1, "optim": {"lr": 0.5}})
    cfg = C.parse_cli(TopCfg, ["--config", str(path), "optim.lr=0.01", "--data.batch_size=2"])
    assert (cfg.seed, cfg.optim.lr, cfg.data.batch_size) == (1, 0.01, 2)
    with pytest.raises(SystemExit) as e:
        C.parse_cli(TopCfg, ["-h"], prog="pretrain")
    assert e.value.code == 0 and "data.batch_size (int, default=8)" in capsys.readouterr().out
    with pytest.raises(SystemExit) as e:
        C.parse_cli(TopCfg, ["seedd=1"], prog="pretrain")
    assert e.value.code == 2 and "did you mean 'seed'" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="unknown option '--fast'"):
        C.parse_cli(TopCfg, ["--fast"], exit_on_error=False)
