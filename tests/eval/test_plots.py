"""Run-directory plots on a synthetic run: PNGs written and non-trivial, missing data skipped, a killed run's truncated
JSONL line tolerated, a collapsed embedding set still projected, and the `python -m eval.plots` CLI."""

from __future__ import annotations

import importlib.util
import json
import logging
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from matplotlib.image import imread

from eval.plots import (
    _project,
    _series,
    make_plots,
    plot_embedding_map,
    plot_losses,
    plot_retrieval,
    read_jsonl,
)

REPO = Path(__file__).resolve().parents[2]
LAYERS = (0, 5, 11)
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _write_jsonl(path: Path, rows: list[dict], tail: str = "") -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows) + tail, encoding="utf-8")


def _embeddings(n: int, d: int = 16, seed: int = 0, collapsed: bool = False, sources: bool = True) -> dict:
    rng = np.random.default_rng(seed)
    out: dict[str, np.ndarray] = {"keys": np.array([f"utt-{i:04d}" for i in range(n)])}
    if sources:
        out["sources"] = np.array(["en", "de", "fr"])[np.arange(n) % 3]
    for l in LAYERS:
        text = rng.standard_normal((n, d))
        speech = np.tile(rng.standard_normal(d), (n, 1)) if collapsed else text + 0.3 * rng.standard_normal((n, d))
        for name, x in (("speech", speech), ("text", text)):
            out[f"{name}/layer_{l}"] = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    return out


def make_run(root: Path, steps: int = 60, evals: tuple[int, ...] = (0, 30, 60), n: int = 24,
             kind: str = "cos") -> Path:
    """A run directory as the trainer writes it: metrics.jsonl, eval.jsonl and one embeddings file per evaluation."""
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    metrics = []
    for s in range(1, steps + 1):
        row = {"step": s, "epoch": 0, "samples": 8 * s, "grad_norm": 1.0, "lr": 1e-4}
        for l in LAYERS:
            row[f"{kind}/layer_{l}"] = 3.0 * np.exp(-s / 30) + 0.1 * l / 11 + 0.05 * rng.random()
        row["loss/total"] = row["loss/contrastive"] = sum(row[f"{kind}/layer_{l}"] for l in LAYERS) / len(LAYERS)
        metrics.append(row)
    _write_jsonl(root / "metrics.jsonl", metrics)
    rows = []
    for i, s in enumerate(evals):
        row = {"step": s, "eval/samples": n, "eval/chance_r@1": 1 / n, "eval/chance_r@5": 5 / n}
        for l in LAYERS:
            row |= {f"eval/cos/layer_{l}": 3.0 - i, f"eval/wasser/layer_{l}": 2.0 - 0.5 * i,
                    f"eval/r@1/layer_{l}": 0.1 + 0.3 * i, f"eval/r@5/layer_{l}": 0.3 + 0.3 * i}
        row["eval/r@5/mean"] = 0.3 + 0.3 * i
        rows.append(row)
        (root / "eval").mkdir(exist_ok=True)
        np.savez(root / "eval" / f"embeddings_step_{s:08d}.npz", **_embeddings(n, seed=i, collapsed=i == 0))
    _write_jsonl(root / "eval.jsonl", rows)
    return root


def assert_png(path: Path, min_side: int = 200) -> None:
    assert path.is_file()
    assert path.read_bytes()[:8] == PNG_MAGIC
    img = imread(path)
    assert img.ndim == 3 and min(img.shape[:2]) >= min_side
    assert img[..., :3].std() > 0.01  # something was drawn, not a blank canvas


def test_make_plots_writes_all_three(tmp_path):
    run = make_run(tmp_path / "run")
    paths = make_plots(run)
    assert [p.name for p in paths] == ["losses.png", "retrieval.png", "embedding_map.png"]
    assert all(p.parent == run / "plots" for p in paths)
    for p in paths:
        assert_png(p)
    # the embedding map holds 2 layers x (before, after): taller and wider than a single panel
    h, w = imread(run / "plots" / "embedding_map.png").shape[:2]
    assert h > 800 and w > 1000


def test_wasserstein_run_and_missing_keys(tmp_path):
    run = make_run(tmp_path / "run", kind="wasser", evals=())
    rows = read_jsonl(run / "metrics.jsonl")
    for r in rows[::3]:
        r.pop("wasser/layer_5")  # rows with missing values are skipped, not fatal
    _write_jsonl(run / "metrics.jsonl", rows + [{"step": 999}])
    assert_png(plot_losses(run, tmp_path / "l.png"))


def test_missing_files_are_skipped(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert make_plots(empty) == []
    assert not (empty / "plots").exists()

    only_train = make_run(tmp_path / "only_train", evals=())
    assert [p.name for p in make_plots(only_train)] == ["losses.png"]

    # an eval.jsonl with losses but no retrieval still gives the eval loss panel, and no retrieval plot
    run = make_run(tmp_path / "no_r1", evals=(0, 30))
    rows = [{k: v for k, v in r.items() if "r@" not in k} for r in read_jsonl(run / "eval.jsonl")]
    _write_jsonl(run / "eval.jsonl", rows)
    (run / "metrics.jsonl").unlink()
    assert plot_retrieval(run, tmp_path / "r.png") is None
    assert_png(plot_losses(run, tmp_path / "l.png"))


def test_truncated_last_line_is_tolerated(tmp_path, caplog):
    run = make_run(tmp_path / "run", evals=(0, 30))
    text = (run / "eval.jsonl").read_text()
    (run / "eval.jsonl").write_text(text + '{"step": 60, "eval/r@1/lay')
    with (run / "metrics.jsonl").open("a") as fh:
        fh.write('{"step": 61, "cos/lay')
    with caplog.at_level(logging.WARNING, logger="eval.plots"):
        assert len(read_jsonl(run / "eval.jsonl")) == 2
        paths = make_plots(run)
    assert "truncated last line" in caplog.text
    assert [p.name for p in paths] == ["losses.png", "retrieval.png", "embedding_map.png"]


def test_series_sorts_skips_and_keeps_last_write():
    rows = [{"step": 3, "x": 1.0}, {"step": 1, "x": 5.0}, {"step": 2}, {"step": 4, "x": float("nan")},
            {"step": 3, "x": 2.0}, {"x": 7.0}, {"step": 5, "x": "bad"}]
    steps, values = _series(rows, "x")
    assert steps.tolist() == [1, 3] and values.tolist() == [5.0, 2.0]


def test_collapsed_embeddings_project(tmp_path):
    data = _embeddings(10, collapsed=True)
    xy = _project(np.concatenate([data["speech/layer_0"], data["text/layer_0"]]), "pca")
    assert xy.shape == (20, 2) and np.isfinite(xy).all()
    assert np.ptp(xy[:10], axis=0).max() < 1e-9  # identical speech points land on one spot
    # fully degenerate: every point identical (rank 0), and a 1-D embedding (rank <= 1)
    assert np.array_equal(_project(np.ones((6, 4)), "pca"), np.zeros((6, 2)))
    assert _project(np.arange(5.0)[:, None], "pca").shape == (5, 2)

    np.savez(tmp_path / "collapsed.npz", **data)
    assert_png(plot_embedding_map(tmp_path / "collapsed.npz", None, tmp_path / "map.png"))


def test_embedding_map_options(tmp_path):
    np.savez(tmp_path / "a.npz", **_embeddings(200, seed=1))  # > 64 pairs: sampled
    np.savez(tmp_path / "b.npz", **_embeddings(200, seed=2, sources=False))  # coloured by pair
    out = plot_embedding_map(tmp_path / "a.npz", tmp_path / "b.npz", tmp_path / "m.png", layers=[0, 5, 11])
    assert_png(out)
    with pytest.raises(ValueError, match="not in every file"):
        plot_embedding_map(tmp_path / "a.npz", tmp_path / "b.npz", tmp_path / "m.png", layers=[3])
    with pytest.raises(ValueError, match="at most 3"):
        plot_embedding_map(tmp_path / "a.npz", None, tmp_path / "m.png", layers=[0, 5, 11, 0, 4])
    with pytest.raises(ValueError, match="method"):
        plot_embedding_map(tmp_path / "a.npz", None, tmp_path / "m.png", method="umap")


@pytest.mark.skipif(importlib.util.find_spec("sklearn") is not None, reason="scikit-learn is installed")
def test_tsne_without_sklearn_names_the_package(tmp_path):
    np.savez(tmp_path / "a.npz", **_embeddings(8))
    with pytest.raises(ImportError, match="scikit-learn"):
        plot_embedding_map(tmp_path / "a.npz", None, tmp_path / "m.png", method="tsne")


def test_single_embeddings_file(tmp_path):
    run = make_run(tmp_path / "run", evals=(0,))
    paths = make_plots(run)
    assert [p.name for p in paths] == ["losses.png", "retrieval.png", "embedding_map.png"]
    h, w = imread(paths[-1]).shape[:2]
    assert w < h * 1.5  # one column only


def test_cli(tmp_path):
    run = make_run(tmp_path / "run", steps=20, evals=(0, 20))
    res = subprocess.run([sys.executable, "-m", "eval.plots", str(run)], cwd=REPO, capture_output=True, text=True,
                         timeout=300)
    assert res.returncode == 0, res.stderr
    printed = [Path(line) for line in res.stdout.split()]
    assert [p.name for p in printed] == ["losses.png", "retrieval.png", "embedding_map.png"]
    for p in printed:
        assert_png(p)
    bad = subprocess.run([sys.executable, "-m", "eval.plots", str(tmp_path / "nope")], cwd=REPO, capture_output=True,
                         text=True, timeout=300)
    assert bad.returncode == 2 and "not a directory" in bad.stderr
