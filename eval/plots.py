"""PNG plots of a training run directory: losses, held-out retrieval, and a 2-D map of the pooled embeddings.

Reads what the trainer writes (``metrics.jsonl``, ``eval.jsonl``, ``eval/embeddings_step_<step>.npz``) and writes
``run_dir/plots/{losses,retrieval,embedding_map}.png``. Usable while a run is still going or after it was killed:
truncated JSONL lines are skipped, missing keys are skipped, and a step logged twice (a resume from a checkpoint
re-runs the steps after it) keeps its last value.

    python -m eval.plots RUN_DIR
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib import colormaps
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from core.errors import UserError, entry_point

log = logging.getLogger(__name__)

MAX_PAIRS = 64  # pairs drawn per embedding panel: beyond that the joining lines become an unreadable mesh
_STEP_NPZ = re.compile(r"embeddings_step_(\d+)\.npz$")


def read_jsonl(path: str | Path) -> list[dict]:
    """Read one JSON object per line, skipping (with a warning) lines that do not parse, e.g. a killed run's last."""
    rows: list[dict] = []
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            where = "truncated last line" if i == len(lines) - 1 else f"unparsable line {i + 1}"
            log.warning("%s: skipping %s", path, where)
            continue
        if isinstance(row, dict):
            rows.append(row)
    return rows


def _read_optional(path: Path) -> list[dict]:
    return read_jsonl(path) if path.is_file() else []


def _series(rows: list[dict], key: str) -> tuple[np.ndarray, np.ndarray]:
    """(steps, values) of ``key`` sorted by step; rows lacking it or a finite value are skipped, last write wins."""
    by_step: dict[int, float] = {}
    for row in rows:
        value, step = row.get(key), row.get("step")
        if isinstance(value, (int, float)) and isinstance(step, (int, float)) and np.isfinite(value):
            by_step[int(step)] = float(value)
    steps = np.array(sorted(by_step), dtype=np.int64)
    return steps, np.array([by_step[s] for s in steps], dtype=np.float64)


def _layers(rows: list[dict], prefix: str) -> list[int]:
    """Sorted layer indices ``l`` of the keys ``{prefix}layer_{l}`` present in any row."""
    pattern = re.compile(re.escape(prefix) + r"layer_(\d+)$")
    return sorted({int(m.group(1)) for row in rows for k in row if (m := pattern.match(k))})


def _layer_colors(layers: Sequence[int]) -> dict[int, tuple]:
    # one colour per layer index, shared by every panel, so a layer reads the same in the loss and retrieval plots
    cmap = colormaps["viridis"]
    span = max(len(layers) - 1, 1)
    return {l: cmap(0.9 * i / span) for i, l in enumerate(sorted(layers))}


def _ema(x: np.ndarray) -> np.ndarray:
    """Exponential moving average whose window grows with the run (~5% of the points, at most ~20 steps)."""
    beta = float(np.clip(1.0 - 20.0 / max(len(x), 1), 0.0, 0.95))
    out = np.empty_like(x)
    acc = x[0] if len(x) else 0.0  # start at the first value, not 0, so the curve does not ramp up from nothing
    for i, v in enumerate(x):
        acc = beta * acc + (1.0 - beta) * v
        out[i] = acc
    return out


def _save(fig: Figure, out_png: str | Path) -> Path:
    out = Path(out_png)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)  # a bare Figure renders with Agg: no pyplot, no display, no global backend switch
    return out


def plot_losses(run_dir: str | Path, out_png: str | Path) -> Path | None:
    """Training loss per layer (EMA over the faint raw curve) and total loss; held-out cos/wasser loss per layer.

    Args:
        run_dir: run directory holding ``metrics.jsonl`` and optionally ``eval.jsonl``.
        out_png: where to write the figure.

    Returns:
        The written path, or None when neither file has a loss to draw.
    """
    train, evals = _read_optional(Path(run_dir) / "metrics.jsonl"), _read_optional(Path(run_dir) / "eval.jsonl")
    kinds = ("cos", "wasser")
    train_layers = {k: _layers(train, f"{k}/") for k in kinds}
    eval_layers = {k: _layers(evals, f"eval/{k}/") for k in kinds}
    totals = [k for k in ("loss/total", "loss/contrastive", "loss/asr") if len(_series(train, k)[0])]
    has_train = bool(totals or any(train_layers.values()))
    has_eval = any(eval_layers.values())
    if not (has_train or has_eval):
        return None
    colors = _layer_colors(sorted({l for d in (train_layers, eval_layers) for ls in d.values() for l in ls}))

    fig = Figure(figsize=(7 * (has_train + has_eval), 4.8), layout="constrained")
    axes = list(fig.subplots(1, has_train + has_eval, squeeze=False)[0])
    if has_train:
        ax = axes.pop(0)
        for kind, style in zip(kinds, ("-", "--")):
            for l in train_layers[kind]:
                steps, y = _series(train, f"{kind}/layer_{l}")
                ax.plot(steps, y, color=colors[l], alpha=0.2, lw=0.8)
                ax.plot(steps, _ema(y), color=colors[l], ls=style, lw=1.5, label=f"{kind} layer {l}")
        for key, style in zip(totals, ("-", ":", "-.")):
            steps, y = _series(train, key)
            ax.plot(steps, y, color="black", alpha=0.15, lw=0.8)
            ax.plot(steps, _ema(y), color="black", ls=style, lw=1.8, label=key)
        ax.set(title="training loss (EMA; raw faint)", xlabel="step", ylabel="loss")
        ax.legend(fontsize="small", ncol=2)
        ax.grid(alpha=0.3)
    if has_eval:
        ax = axes.pop(0)
        for kind, style in zip(kinds, ("-", "--")):
            for l in eval_layers[kind]:
                steps, y = _series(evals, f"eval/{kind}/layer_{l}")
                ax.plot(steps, y, color=colors[l], ls=style, marker="o", ms=3, label=f"{kind} layer {l}")
        ax.set(title="held-out contrastive loss (cos solid, wasser dashed)", xlabel="step", ylabel="loss")
        ax.legend(fontsize="small", ncol=2)
        ax.grid(alpha=0.3)
    return _save(fig, out_png)


def plot_retrieval(run_dir: str | Path, out_png: str | Path) -> Path | None:
    """Held-out speech->text R@1 per layer over steps, mean R@5 faint, chance level dashed.

    Returns:
        The written path, or None when ``eval.jsonl`` is missing or holds no R@1.
    """
    evals = _read_optional(Path(run_dir) / "eval.jsonl")
    layers = _layers(evals, "eval/r@1/")
    if not layers:
        return None
    colors = _layer_colors(layers)
    fig = Figure(figsize=(7.5, 4.8), layout="constrained")
    ax = fig.subplots()
    for l in layers:
        ax.plot(*_series(evals, f"eval/r@1/layer_{l}"), color=colors[l], marker="o", ms=3, label=f"R@1 layer {l}")
    steps, r5 = _series(evals, "eval/r@5/mean")
    if len(steps):
        ax.plot(steps, r5, color="gray", alpha=0.45, lw=2, marker=".", label="R@5 mean over layers")
    for key, alpha in (("eval/chance_r@1", 0.8), ("eval/chance_r@5", 0.35)):
        _, chance = _series(evals, key)
        if len(chance):
            ax.axhline(chance[-1], color="red", ls="--", lw=1, alpha=alpha, label=f"chance {key.split('_')[-1]}")
    _, n = _series(evals, "eval/samples")
    ax.set(title="held-out speech->text retrieval" + (f" (N={int(n[-1])})" if len(n) else ""),
           xlabel="step", ylabel="recall", ylim=(-0.02, 1.02))
    ax.legend(fontsize="small", ncol=2)
    ax.grid(alpha=0.3)
    return _save(fig, out_png)


def _load_npz(path: str | Path) -> tuple[dict[str, np.ndarray], list[int]]:
    with np.load(path, allow_pickle=False) as z:
        data = {k: z[k] for k in z.files}
    layers = sorted({int(k.rsplit("_", 1)[1]) for k in data if re.fullmatch(r"speech/layer_\d+", k)}
                    & {int(k.rsplit("_", 1)[1]) for k in data if re.fullmatch(r"text/layer_\d+", k)})
    return data, layers


def _project(points: np.ndarray, method: str) -> np.ndarray:
    """[P, D] -> [P, 2]; PCA is centred SVD, padded with zeros when the points span fewer than 2 directions."""
    x = points.astype(np.float64)
    if method == "tsne":
        from sklearn.manifold import TSNE

        return TSNE(n_components=2, perplexity=float(min(30, max(2, (len(x) - 1) // 3))), init="pca",
                    random_state=0).fit_transform(x)
    x = x - x.mean(axis=0)
    u, s, _ = np.linalg.svd(x, full_matrices=False)
    xy = np.zeros((len(x), 2))
    r = min(2, len(s))
    xy[:, :r] = u[:, :r] * s[:r]
    return xy


def _unit(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.float64)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def _collapse_stats(speech: np.ndarray, text: np.ndarray) -> tuple[float, float]:
    """Mean cosine of matched pairs and mean pairwise distance between (unit) speech points."""
    s, t = _unit(speech), _unit(text)
    matched = float((s * t).sum(axis=1).mean())
    n = len(s)
    if n < 2:
        return matched, 0.0
    dist = np.sqrt(np.maximum(2.0 - 2.0 * (s @ s.T), 0.0))  # unit vectors: |a-b|^2 = 2 - 2 a.b, no [N,N,D] tensor
    return matched, float(dist.sum() / (n * (n - 1)))


def _draw_panel(ax, data: dict[str, np.ndarray], layer: int, label: str, method: str) -> None:
    speech, text = data[f"speech/layer_{layer}"], data[f"text/layer_{layer}"]
    matched, spread = _collapse_stats(speech, text)
    n = len(speech)
    idx = np.sort(np.random.default_rng(0).choice(n, MAX_PAIRS, replace=False)) if n > MAX_PAIRS else np.arange(n)
    xy = _project(np.concatenate([speech[idx], text[idx]]), method)
    s_xy, t_xy = xy[: len(idx)], xy[len(idx):]
    sources = data["sources"][idx] if "sources" in data else None
    handles = [Line2D([], [], color="gray", marker="o", ls="", label="speech"),
               Line2D([], [], color="gray", marker="x", ls="", label="text")]
    if sources is not None and len(set(sources.tolist())) > 1:
        names = sorted(set(sources.tolist()))
        cmap = colormaps["tab10"]
        colors = [cmap(names.index(s) % 10) for s in sources]
        handles += [Line2D([], [], color=cmap(i % 10), marker="s", ls="", label=s) for i, s in enumerate(names)]
    else:
        colors = [colormaps["hsv"](i / max(len(idx), 1)) for i in range(len(idx))]  # colour by pair
    ax.add_collection(LineCollection(np.stack([s_xy, t_xy], axis=1), colors="gray", linewidths=0.4, alpha=0.5))
    ax.scatter(s_xy[:, 0], s_xy[:, 1], c=colors, marker="o", s=22, edgecolors="black", linewidths=0.3)
    ax.scatter(t_xy[:, 0], t_xy[:, 1], c=colors, marker="x", s=26, linewidths=1.2)
    ax.set_title(f"{label}, layer {layer} ({len(idx)}/{n} pairs)\n"
                 f"matched cos {matched:.3f} | speech spread {spread:.3f}", fontsize="medium")
    ax.set(xlabel=f"{method} 1", ylabel=f"{method} 2")
    ax.legend(handles=handles, fontsize="x-small", loc="best")
    ax.grid(alpha=0.3)


def _npz_label(path: Path, fallback: str) -> str:
    m = _STEP_NPZ.search(path.name)
    return f"{fallback} (step {int(m.group(1))})" if m else fallback


def plot_embedding_map(before_npz: str | Path, after_npz: str | Path | None, out_png: str | Path,
                       layers: Sequence[int] | None = None, method: str = "pca") -> Path:
    """2-D map of paired speech (circles) and text (crosses) pooled embeddings, before and after training.

    Each panel projects the union of its speech and text points and joins each speech point to its transcript; the
    title reports the mean matched cosine and the speech spread, which together show a collapse (a tight speech blob
    far from the text) at a glance.

    Args:
        before_npz: embeddings file of the first evaluation.
        after_npz: embeddings file of a later evaluation, or None for a single column.
        out_png: where to write the figure.
        layers: layers to draw (one row each, at most 3); default the first and last layer present.
        method: "pca" (numpy SVD) or "tsne" (needs scikit-learn).

    Returns:
        The written path.

    Raises:
        ImportError: for ``method="tsne"`` without scikit-learn.
        ValueError: for an unknown method, too many layers, or a layer missing from a file.
    """
    if method not in ("pca", "tsne"):
        raise ValueError(f"method must be 'pca' or 'tsne', got {method!r}")
    if method == "tsne":
        try:
            import sklearn  # noqa: F401
        except ImportError as e:
            raise ImportError("method='tsne' needs scikit-learn (pip install scikit-learn); use method='pca'") from e
    files = [(Path(before_npz), "before")] + ([(Path(after_npz), "after")] if after_npz is not None else [])
    loaded = [(_load_npz(p), _npz_label(p, name)) for p, name in files]
    common = sorted(set.intersection(*(set(ls) for (_, ls), _ in loaded)))
    if not common:
        raise ValueError(f"no layer has both speech/ and text/ embeddings in every file: {[str(p) for p, _ in files]}")
    chosen = list(dict.fromkeys(layers if layers is not None else (common[0], common[-1])))
    if len(chosen) > 3:
        raise ValueError(f"at most 3 layers fit one figure, got {chosen}")
    if missing := [l for l in chosen if l not in common]:
        raise ValueError(f"layers {missing} are not in every file; available: {common}")

    fig = Figure(figsize=(6 * len(loaded), 5.2 * len(chosen)), layout="constrained")
    axes = fig.subplots(len(chosen), len(loaded), squeeze=False)
    for row, layer in enumerate(chosen):
        for col, ((data, _), label) in enumerate(loaded):
            _draw_panel(axes[row, col], data, layer, label, method)
    return _save(fig, out_png)


def make_plots(run_dir: str | Path) -> list[Path]:
    """Write ``run_dir/plots/{losses,retrieval,embedding_map}.png``, skipping those without data.

    The embedding map compares the first and last ``eval/embeddings_step_*.npz`` (a single file is drawn alone).

    Returns:
        The written paths.
    """
    run_dir = Path(run_dir)
    out = run_dir / "plots"
    written = [plot_losses(run_dir, out / "losses.png"), plot_retrieval(run_dir, out / "retrieval.png")]
    npzs = sorted((p for p in (run_dir / "eval").glob("embeddings_step_*.npz") if _STEP_NPZ.search(p.name)),
                  key=lambda p: int(_STEP_NPZ.search(p.name).group(1)))
    if npzs:
        after = npzs[-1] if len(npzs) > 1 else None
        written.append(plot_embedding_map(npzs[0], after, out / "embedding_map.png"))
    return [p for p in written if p is not None]


@entry_point
def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m eval.plots", description=__doc__.split("\n")[0])
    parser.add_argument("run_dir", type=Path)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if not args.run_dir.is_dir():
        raise UserError(f"not a directory: {args.run_dir}", fix="give a run directory (run_dir of train.pretrain or "
                        "train.finetune)")
    paths = make_plots(args.run_dir)
    for p in paths:
        print(p)
    if not paths:
        print(f"nothing to plot in {args.run_dir}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
