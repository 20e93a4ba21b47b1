"""Compare evaluated systems: the paper's Table 1 as markdown, a per-target detail table, and a bar chart.

Reads the ``results.json`` that ``python -m eval.run`` writes per system (or the directory holding it). Every score is
a percentage, as in the paper. Below the table the report states what makes numbers comparable (the WER normaliser and
the sacreBLEU signature of each run) and says so loudly when runs disagree, lists each run's checkpoint, and repeats
the runs' notes (e.g. "COMET skipped"), so that a pasted table never hides how it was computed.

    python -m eval.report runs/a/eval runs/b/eval/results.json [--out report.md] [--plot report.png]
    python -m eval.report runs/*/results --bounds runs/x/results-cascade-whisper runs/x/results-cascade-reference \
        --st-metric bleu                      # normalized average between two evaluated systems, BLEU for COMET

``--bounds LOWER UPPER`` replaces the paper's bounds of the normalized average (Eq. 3) by the scores of two evaluated
systems, typically the Whisper -> LLM cascade (lower) and the gold-transcript cascade (upper), and recomputes
``normalized/*`` and ``normalized_average`` of every run from its own WER, COMET (or BLEU) and F1 (`renormalize`).
The footnote names both systems and their scores.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from matplotlib import colormaps
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from core.errors import entry_point, user_errors
from eval.metrics import ST_METRICS, NormalizedAverageConfig, normalized_average

__all__ = [
    "DETAIL_COLUMNS",
    "SUPPORTED_FORMATS",
    "TABLE_COLUMNS",
    "Column",
    "detail_table",
    "load_results",
    "main",
    "markdown_table",
    "plot_comparison",
    "renormalize",
    "report_markdown",
]

SUPPORTED_FORMATS = (1,)
"""``results.json`` format versions this reader understands."""
MISSING = "–"  # en dash, as the paper's tables print an absent score
_LANGS = ("de", "fr", "es", "it")  # the paper's ST targets, listed first and in this order
_PER_TARGET = re.compile(r"^st/([a-z]{2,3})/(bleu|chrf|comet)$")


@dataclass(frozen=True)
class Column:
    """One table column: where its value lives in ``results["metrics"]`` and how to print and rank it."""

    key: str
    """Key in ``metrics``."""
    label: str
    """Header text without the direction arrow."""
    decimals: int
    """Digits after the point; 0 prints an integer (sample counts)."""
    higher_is_better: bool | None = None
    """Ranking direction; None for columns that are not scores (counts, chance level): never bold, no arrow."""

    @property
    def header(self) -> str:
        arrow = {True: " ↑", False: " ↓", None: ""}[self.higher_is_better]
        return self.label + arrow

    def format(self, value: float | None) -> str:
        return MISSING if value is None else f"{value:.{self.decimals}f}"


# The paper's Table 1, in its order. Decimals follow its appendix: COMET and the normalized average carry 3.
TABLE_COLUMNS: tuple[Column, ...] = (
    Column("asr/wer", "WER", 2, False),
    Column("st/bleu", "BLEU", 2, True),
    Column("st/comet", "COMET", 3, True),
    Column("sqa/em", "EM", 2, True),
    Column("sqa/f1", "F1", 2, True),
    Column("contrastive/cos", "contr. loss cos", 3, False),
    Column("contrastive/wasser", "contr. loss wasser", 3, False),
    Column("normalized_average", "norm. avg.", 3, True),
)

# Fixed columns of the detail table; the per-target ST columns are discovered from the runs (see _detail_columns).
DETAIL_COLUMNS: tuple[Column, ...] = (
    Column("asr/wer_utt_mean", "WER (mean of per-utterance WERs, as the public code reports)", 2, False),
    Column("st/chrf", "chrF", 2, True),
    Column("normalized/wer", "norm. WER", 3, True),
    Column("normalized/comet", "norm. COMET", 3, True),
    Column("normalized/bleu", "norm. BLEU", 3, True),
    Column("normalized/f1", "norm. F1", 3, True),
    Column("para/accuracy", "paraling. acc.", 2, True),
    Column("retrieval/r@1", "R@1", 2, True),
    Column("retrieval/chance_r@1", "chance R@1", 2),
    Column("asr/n", "ASR n", 0),
    Column("st/n", "ST n", 0),
    Column("sqa/n", "SQA n", 0),
    Column("para/n", "paraling. n", 0),
)

# ---------------------------------------------------------------------------------------------------------- loading


def load_results(path: str | Path) -> dict:
    """Read one ``results.json``.

    Args:
        path: the file, or a directory containing ``results.json``.

    Returns:
        The parsed dict; ``name`` defaults to the directory name and ``metrics`` to ``{}``.

    Raises:
        FileNotFoundError: no such file.
        ValueError: not JSON, not an object, or an unknown ``format``.
    """
    p = Path(path)
    if p.is_dir():
        p = p / "results.json"
    if not p.is_file():
        raise FileNotFoundError(f"{p}: no results file (`python -m eval.run` writes results.json per system)")
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ValueError(f"{p}: not valid JSON ({e})") from e
    if not isinstance(data, dict):
        raise ValueError(f"{p}: expected a JSON object, got {type(data).__name__}")
    if data.get("format") not in SUPPORTED_FORMATS:
        raise ValueError(f"{p}: unknown results format {data.get('format')!r}; this reader knows {SUPPORTED_FORMATS}")
    data.setdefault("name", p.parent.name)  # a hand-made file without a name still gets a distinct row label
    if not isinstance(data.get("metrics"), dict):
        data["metrics"] = {}
    return data


def _value(result: dict, key: str) -> float | None:
    """The metric as a float, or None when absent, null, non-numeric or non-finite (a NaN must not win a column)."""
    v = (result.get("metrics") or {}).get(key)
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        return None
    return float(v)


def _label(result: dict) -> str:
    name = str(result.get("name") or "?")
    return name + " (cascade)" if result.get("kind") == "cascade" else name


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")  # a pipe in a run name would split the row


# ------------------------------------------------------------------------------------- bounds from evaluated systems

_BOUND_METRICS = {"wer": "asr/wer", "comet": "st/comet", "bleu": "st/bleu", "f1": "sqa/f1"}
_STALE_NOTE = "normalized average"  # eval.run's notes on its own average (missing, or over BLEU) no longer apply


def renormalize(results: Sequence[dict], lower: dict, upper: dict, st_metric: str = "comet",
                allow_degenerate: bool = False) -> list[dict]:
    """Every run's normalized average recomputed between two evaluated systems instead of the paper's bounds.

    Args:
        results: dicts as returned by :func:`load_results` (not modified).
        lower: the lower-bound system's results (e.g. the Whisper -> LLM cascade): normalized scores of 0.
        upper: the upper-bound system's results (e.g. the gold-transcript cascade): normalized scores of 100.
        st_metric: ST metric of the average, ``"comet"`` (the paper's) or ``"bleu"``.
        allow_degenerate: bounds with the same score on a task leave every ``normalized_average`` None (recorded
            for the footnote) instead of raising: the raw metrics still make a table.

    Returns:
        Copies of ``results`` whose ``normalized/*`` and ``normalized_average`` come from their own ``asr/wer``,
        ``st/<st_metric>`` and ``sqa/f1`` (``normalized_average`` None when one is missing), whose notes about
        eval.run's own average are dropped, and whose ``normalization`` entry records the bounds for the footnote.

    Raises:
        ValueError: unknown ``st_metric``, a bound system without one of the three scores, or the same score in both
            (the normalisation would divide by zero).
    """
    if st_metric not in ST_METRICS:
        raise ValueError(f"st_metric must be comet or bleu, got {st_metric!r}")
    tasks = ("wer", st_metric, "f1")
    bounds: dict[str, dict] = {}
    for role, system in (("lower", lower), ("upper", upper)):
        values = {t: _value(system, _BOUND_METRICS[t]) for t in tasks}
        if missing := [_BOUND_METRICS[t] for t, v in values.items() if v is None]:
            raise ValueError(f"{role} bound {_label(system)!r} has no {', '.join(missing)} score; a bound system "
                             f"needs WER, {st_metric.upper()} and F1")
        bounds[role] = {"name": _label(system), **values}
    if equal := [t.upper() for t in tasks if bounds["lower"][t] == bounds["upper"][t]]:
        problem = (f"lower bound {bounds['lower']['name']!r} and upper bound {bounds['upper']['name']!r} have the "
                   f"same {', '.join(equal)}; the normalisation would divide by zero")
        if not allow_degenerate:
            raise ValueError(problem)
        return [{**r, "metrics": {k: v for k, v in (r.get("metrics") or {}).items() if not k.startswith("normalized")}
                 | {"normalized_average": None},
                 "notes": [n for n in r.get("notes") or [] if not str(n).startswith(_STALE_NOTE)],
                 "normalization": {"st_metric": st_metric, **bounds, "degenerate": problem}} for r in results]
    cfg = NormalizedAverageConfig(
        st_metric=st_metric, **{f"{t}_{role}": bounds[role][t] for t in tasks for role in ("lower", "upper")})
    out = []
    for r in results:
        metrics = {k: v for k, v in (r.get("metrics") or {}).items()
                   if not k.startswith("normalized/") and k != "normalized_average"}
        scores = {t: _value(r, _BOUND_METRICS[t]) for t in tasks}
        if all(v is not None for v in scores.values()):
            metrics.update(normalized_average(scores, cfg))
        else:
            metrics["normalized_average"] = None
        notes = [n for n in r.get("notes") or [] if not str(n).startswith(_STALE_NOTE)]
        out.append({**r, "metrics": metrics, "notes": notes,
                    "normalization": {"st_metric": st_metric, **bounds}})
    return out


def _bounds_footnote(results: Sequence[dict]) -> str:
    norm = next((r["normalization"] for r in results if r.get("normalization")), None)
    if norm is None:
        return ""
    st = norm["st_metric"]

    def system(b: dict) -> str:
        return f"`{_cell(b['name'])}` (WER {b['wer']:.2f}, {st.upper()} {b[st]:.2f}, F1 {b['f1']:.2f})"

    if norm.get("degenerate"):
        return (f"- norm. avg. not computed: {norm['degenerate']} (lower {system(norm['lower'])}, upper "
                f"{system(norm['upper'])}); the table gives the raw metrics.")
    text = (f"- norm. avg. between evaluated systems, not the paper's bounds: lower {system(norm['lower'])}, upper "
            f"{system(norm['upper'])}")
    return text + ("; BLEU replaces COMET in the average (not comparable with the paper's normalized averages)."
                   if st == "bleu" else ".")


# ----------------------------------------------------------------------------------------------------------- tables


def _best(values: list[float | None], column: Column) -> set[int]:
    """Indices of the best value(s) of a column; empty with fewer than 2 values, all equal, or no direction.

    Values are compared as printed, so two cells that read the same are both bold rather than one of them by a digit
    the reader cannot see.
    """
    if column.higher_is_better is None:
        return set()
    shown = {i: round(v, column.decimals) for i, v in enumerate(values) if v is not None}
    if len(shown) < 2:
        return set()
    if len(set(shown.values())) == 1:  # every run the same: nothing stands out
        return set()
    target = max(shown.values()) if column.higher_is_better else min(shown.values())
    return {i for i, v in shown.items() if v == target}


def _table(results: Sequence[dict], columns: Sequence[Column], bold_best: bool) -> str:
    lines = ["| " + " | ".join(["Model"] + [c.header for c in columns]) + " |",
             "|" + "|".join([" --- "] + [" ---: "] * len(columns)) + "|"]
    cells = [[_cell(_label(r))] for r in results]
    for column in columns:
        values = [_value(r, column.key) for r in results]
        best = _best(values, column) if bold_best else set()
        for i, v in enumerate(values):
            cells[i].append(f"**{column.format(v)}**" if i in best else column.format(v))
    lines += ["| " + " | ".join(row) + " |" for row in cells]
    return "\n".join(lines)


def _group(results: Sequence[dict], values: Sequence[str], n_runs: int) -> str:
    """``value (run, run); value (run)`` in first-seen order, or ``value (all runs)``."""
    by_value: dict[str, list[str]] = {}
    for r, v in zip(results, values):
        by_value.setdefault(v, []).append(_label(r))
    if len(by_value) == 1 and len(results) == n_runs > 1:
        return f"`{values[0]}` (all runs)"
    return "; ".join(f"`{v}` ({', '.join(names)})" for v, names in by_value.items())


def _signature_footnote(results: Sequence[dict], metric_key: str, sig_key: str, what: str) -> tuple[str, str | None]:
    """(footnote, not-comparable sentence or None) for one signature, over the runs that report the metric.

    A run with the score but no recorded signature counts as its own value: its comparability cannot be checked.
    """
    scored = [r for r in results if _value(r, metric_key) is not None]
    sigs = [str((r.get("signatures") or {}).get(sig_key) or "unrecorded") for r in scored]
    if not scored:
        return "", None
    grouped = _group(scored, sigs, len(results))
    footnote = f"- {what}: {grouped}"
    clash = f"the {what} differs between runs: {grouped}." if len(set(sigs)) > 1 else None
    return footnote, clash


def _provenance(result: dict) -> str:
    ckpt = result.get("checkpoint") or {}
    sha = ckpt.get("sha256")
    if sha:
        text = f"checkpoint `{str(sha)[:12]}`"
        text += f" step {ckpt['step']}" if ckpt.get("step") is not None else ""
        text += f" ({ckpt['objective']})" if ckpt.get("objective") else ""
    else:
        text = "no checkpoint" + (" (untrained projector)" if result.get("kind") != "cascade" else "")
    if result.get("config_sha256"):
        text += f", eval config `{str(result['config_sha256'])[:12]}`"
    return f"{_label(result)}: {text}"


def markdown_table(results: Sequence[dict], bold_best: bool = True) -> str:
    """The paper's Table 1 for these runs, in GitHub markdown, followed by footnotes.

    Args:
        results: dicts as returned by :func:`load_results`, one row each in this order.
        bold_best: bold the best value of each column (lowest for ↓, highest for ↑; ties all bold; a column with
            fewer than 2 values is left plain).

    Returns:
        The table, a "**Not comparable:**" line when runs disagree on the WER normaliser or the BLEU signature, then
        footnotes: normaliser and BLEU signature(s), the missing normalized average, checkpoints and notes.
    """
    out = [_table(results, TABLE_COLUMNS, bold_best)]
    footnotes, clashes = [], []
    for metric_key, sig_key, what in (("asr/wer", "wer", "WER normaliser"), ("st/bleu", "bleu", "BLEU signature")):
        footnote, clash = _signature_footnote(results, metric_key, sig_key, what)
        footnotes.append(footnote)
        clashes += [clash] if clash else []
    if any((r.get("signatures") or {}).get("comet") for r in results):  # listed, not checked: paths differ per machine
        footnotes.append(_signature_footnote(results, "st/comet", "comet", "COMET model")[0])
    if clashes:
        out.append("**Not comparable:** " + " ".join(c[0].upper() + c[1:] for c in clashes))
    footnotes.append(_bounds_footnote(results))
    st = next((r["normalization"]["st_metric"] for r in results if r.get("normalization")), "comet")
    degenerate = any((r.get("normalization") or {}).get("degenerate") for r in results)  # said by the bounds note
    if not degenerate and (lacking := [_label(r) for r in results if _value(r, "normalized_average") is None]):
        footnotes.append(f"- norm. avg. missing for {', '.join(lacking)}: needs WER, {st.upper()} and F1"
                         + ("; COMET needs a local checkpoint, see README." if st == "comet" else "."))
    footnotes += ["- " + _provenance(r) for r in results]
    notes: dict[str, list[str]] = {}
    for r in results:
        for note in r.get("notes") or []:
            notes.setdefault(str(note), []).append(_label(r))
    footnotes += [f"- Note: {note} ({'all runs' if len(names) == len(results) > 1 else ', '.join(names)})"
                  for note, names in notes.items()]
    out.append("\n".join(f for f in footnotes if f))
    return "\n\n".join(part for part in out if part)


def _detail_columns(results: Sequence[dict]) -> list[Column]:
    keys = {k for r in results for k in (r.get("metrics") or {}) if _value(r, k) is not None}
    langs = {m.group(1) for k in keys if (m := _PER_TARGET.match(k))}
    ordered = [l for l in _LANGS if l in langs] + sorted(langs - set(_LANGS))
    per_target = [Column(f"st/{l}/{m}", f"{l} {name}", d, True)
                  for l in ordered for m, name, d in (("bleu", "BLEU", 2), ("chrf", "chrF", 2), ("comet", "COMET", 3))]
    return [c for c in (*per_target, *DETAIL_COLUMNS) if c.key in keys]


def detail_table(results: Sequence[dict], bold_best: bool = True) -> str:
    """Per-target ST scores, the per-utterance WER mean, normalized task scores, retrieval and sample counts.

    Only columns that at least one run has are shown; returns ``""`` when there are none.
    """
    columns = _detail_columns(results)
    return _table(results, columns, bold_best) if columns else ""


def report_markdown(results: Sequence[dict]) -> str:
    """Both tables with headings, as the CLI prints them."""
    parts = ["## Table 1", markdown_table(results)]
    if detail := detail_table(results):
        parts += ["## Details", detail]
    return "\n\n".join(parts) + "\n"


# ------------------------------------------------------------------------------------------------------------- plot


def plot_comparison(results: Sequence[dict], out_png: str | Path) -> Path:
    """Bar chart: one subplot per Table-1 metric that any run has, one bar per run, direction in the title.

    Returns:
        The written path.

    Raises:
        ValueError: when no run has any Table-1 metric.
    """
    columns = [c for c in TABLE_COLUMNS if any(_value(r, c.key) is not None for r in results)]
    if not columns:
        raise ValueError("no run has any Table-1 metric to plot")
    ncols = min(4, len(columns))
    nrows = math.ceil(len(columns) / ncols)
    fig = Figure(figsize=(3.6 * ncols, 3.4 * nrows + 0.8), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    cmap = colormaps["tab10"]
    colors = [cmap(i % 10) for i in range(len(results))]  # one colour per run, the same in every subplot
    for ax, column in zip(axes, columns):
        values = [_value(r, column.key) for r in results]
        xs = range(len(results))
        bars = ax.bar(xs, [math.nan if v is None else v for v in values], color=colors)
        ax.bar_label(bars, labels=[column.format(v) if v is not None else "" for v in values], fontsize="x-small")
        for x, v in zip(xs, values):
            if v is None:  # say "missing" rather than let an absent bar read as a zero
                ax.text(x, 0, MISSING, ha="center", va="bottom", color="gray")
        direction = "higher is better" if column.higher_is_better else "lower is better"
        ax.set_title(f"{column.header} ({direction})", fontsize="medium")
        ax.set_xticks(list(xs), [""] * len(results))
        ax.set_xlim(-0.6, len(results) - 0.4)  # NaN bars do not count for autoscaling: keep every run's slot
        ax.axhline(0, color="black", lw=0.6)
        ax.grid(axis="y", alpha=0.3)
    for ax in axes[len(columns):]:
        ax.set_visible(False)
    handles = [Patch(color=c) for c in colors]
    fig.legend(handles, [_label(r) for r in results], loc="outside lower center", ncol=min(len(results), 4),
               fontsize="small")
    out = Path(out_png)
    suffix = out.suffix.lstrip(".") or "png"
    _atomic_write(out, lambda fh: fig.savefig(fh, format=suffix, dpi=110))
    return out


# -------------------------------------------------------------------------------------------------------------- CLI


def _atomic_write(path: Path, write) -> None:
    """Write through a temp file in the same directory, then rename: a reader never sees a half-written report."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@entry_point
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m eval.report", description=__doc__.split("\n")[0])
    parser.add_argument("results", nargs="+", type=Path, help="results.json files or directories holding one")
    parser.add_argument("--out", type=Path, help="also write the markdown here")
    parser.add_argument("--plot", type=Path, help="write a bar chart of the Table-1 metrics here (PNG)")
    parser.add_argument("--bounds", nargs=2, type=Path, metavar=("LOWER", "UPPER"),
                        help="normalized average between these two systems' results (e.g. the Whisper -> LLM and "
                             "the gold-transcript cascades) instead of the paper's bounds")
    parser.add_argument("--st-metric", choices=ST_METRICS,
                        help="ST metric of the normalized average with --bounds (default: comet, the paper's)")
    args = parser.parse_args(argv)
    if args.st_metric and not args.bounds:
        parser.error("--st-metric needs --bounds (the paper's bounds exist for COMET only)")
    with user_errors(OSError, ValueError):  # an unreadable or invalid results file, bounds that cannot work
        results = [load_results(p) for p in args.results]
        if args.bounds:
            lower, upper = (load_results(p) for p in args.bounds)
            results = renormalize(results, lower, upper, args.st_metric or "comet", allow_degenerate=True)
            if degenerate := results[0]["normalization"].get("degenerate"):
                print(f"warning: no normalized average: {degenerate}", file=sys.stderr)
    text = report_markdown(results)
    print(text, end="")
    if args.out:
        _atomic_write(args.out, lambda fh: fh.write(text.encode("utf-8")))
        print(f"wrote {args.out}", file=sys.stderr)
    if args.plot:
        with user_errors(ValueError):  # no Table-1 metric to plot
            print(f"wrote {plot_comparison(results, args.plot)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
