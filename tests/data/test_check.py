"""`python -m data.check`: a YAML data config with CLI overrides streamed end to end, and its errors."""

from __future__ import annotations

import json

import pytest

from data.check import main, measure
from data.stream import StreamConfig, StreamLoader
from tests.conftest import make_shard_set


@pytest.fixture(scope="module")
def two_sources(tmp_path_factory):
    root = tmp_path_factory.mktemp("check")
    return make_shard_set(root / "a", 60, seed=1, prefix="a"), make_shard_set(root / "b", 60, seed=2, prefix="b")


def test_yaml_plus_overrides_report(tmp_path, two_sources):
    a, b = two_sources
    config = tmp_path / "data.yaml"
    config.write_text(f"sources:\n  - {{path: {a}, name: a, weight: 3}}\n  - {{path: {b}, name: b, weight: 1}}\n"
                      "batch_size: 4\nnum_workers: 0\n")
    report = tmp_path / "report.json"
    assert main(["--config", str(config), "--batches", "20", "--json", str(report), "batch_size=5",
                 "shuffle_buffer=10"]) == 0
    got = json.loads(report.read_text())
    assert got["batches"] == 20 and got["samples"] == 100  # batch_size=5 from the command line won over the YAML
    assert got["stats"]["bad"] == {} and 0 <= got["padding_fraction"] < 0.5
    assert set(got["source_shares"]) == {"a", "b"} and got["source_shares"]["a"] > got["source_shares"]["b"]


def test_explicit_weights_are_normalised_and_measured(two_sources):
    a, b = two_sources
    cfg = StreamConfig(sources=[{"path": str(a), "name": "a", "weight": 3.0}, {"path": str(b), "name": "b",
                                                                                "weight": 1.0}],
                       batch_size=4, num_workers=0, samples_per_epoch=800)
    loader = StreamLoader(cfg)
    assert loader.weights == (0.75, 0.25)
    report = measure(loader, 200, progress=False)
    assert report.samples == 800 and abs(report.sources["a"] / 800 - 0.75) < 0.05  # ~3.3 sigma


def test_config_errors_name_the_key(tmp_path, two_sources, capsys):
    config = tmp_path / "data.yaml"
    config.write_text(f"sources:\n  - {{path: {two_sources[0]}}}\n")
    assert main(["--config", str(config), "batch_sise=3"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ERROR python -m data.check: ") and "did you mean 'batch_size'" in err
    with pytest.raises(ValueError, match="set `weight` on every source or on none"):
        StreamConfig(sources=[{"path": "x", "weight": 1.0}, {"path": "y"}])
