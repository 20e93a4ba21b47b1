"""Comparison report over results.json files: Table-1 columns and formatting, bold on the best cell per direction, the
comparability warnings and footnotes, the per-target detail table, loading errors, the plot, the CLI end to end, and
the normalized average between two evaluated systems (``--bounds``, BLEU for COMET).
The realistic fixture is two rows of the paper's Table 1 (contr-cos-all 10 % and no-pretraining 10 %)."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from eval.report import (
    MISSING,
    TABLE_COLUMNS,
    detail_table,
    load_results,
    main,
    markdown_table,
    plot_comparison,
    renormalize,
    report_markdown,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
BLEU_SIG = "nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:2.5.1"
HEADER = ("| Model | WER ↓ | BLEU ↑ | COMET ↑ | EM ↑ | F1 ↑ | contr. loss cos ↓ | contr. loss wasser ↓ | "
          "norm. avg. ↑ |")


def result(name: str, metrics: dict, kind: str = "speech", wer_sig: str = "en-whisperlike-v1",
           bleu_sig: str = BLEU_SIG, notes: tuple[str, ...] = (), sha: str | None = "ab12cd34ef56" + "0" * 52,
           step: int | None = 120) -> dict:
    """A results dict as eval.run writes it."""
    return {
        "format": 1, "name": name, "kind": kind, "created": "2026-11-22T10:00:00+00:00",
        "checkpoint": {"path": None if sha is None else "runs/x/projector", "sha256": sha, "step": step,
                       "objective": "finetune"},
        "config_sha256": "f" * 64, "training_config_sha256": None,
        "metrics": metrics,
        "signatures": {"wer": wer_sig, "bleu": bleu_sig, "chrf": "nrefs:1|case:mixed|eff:yes|nc:6|nw:0|version:2.5.1",
                       "comet": None},
        "notes": list(notes),
    }


@pytest.fixture
def paper_rows() -> list[dict]:
    """The paper's Table 1 rows for contr-cos-all 10 % and no pretraining 10 % (scores it prints)."""
    return [
        result("contr-cos-all 10%", {"asr/wer": 13.06, "st/comet": 78.285, "sqa/f1": 73.9,
                                     "normalized_average": 67.388, "asr/n": 100, "st/n": 100, "sqa/n": 50}),
        result("no pretrain 10%", {"asr/wer": 23.78, "st/comet": 69.722, "sqa/f1": 41.859,
                                   "normalized_average": -57.401, "asr/n": 100, "st/n": 100, "sqa/n": 50},
               sha=None, step=None),
    ]


def rows(table: str) -> list[list[str]]:
    """Cells of each body row of the first markdown table in ``table`` (header and separator dropped)."""
    lines = [l for l in table.split("\n\n")[0].splitlines() if l.startswith("|")]
    return [[c.strip() for c in l.strip("|").split(" | ")] for l in lines[2:]]


def column(table: str, header: str) -> list[str]:
    head = [c.strip() for c in table.splitlines()[0].strip("|").split(" | ")]
    return [r[head.index(header)] for r in rows(table)]


def write(root: Path, res: dict) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "results.json").write_text(json.dumps(res), encoding="utf-8")
    return root


# ------------------------------------------------------------------------------------------------------ main table


def test_columns_in_paper_order_with_header_text():
    assert [c.key for c in TABLE_COLUMNS] == ["asr/wer", "st/bleu", "st/comet", "sqa/em", "sqa/f1", "contrastive/cos",
                                              "contrastive/wasser", "normalized_average"]
    table = markdown_table([result("a", {})])
    assert table.splitlines()[0] == HEADER
    assert table.splitlines()[1] == "| --- |" + " ---: |" * len(TABLE_COLUMNS)


def test_paper_rows_formatting_and_bold(paper_rows):
    table = markdown_table(paper_rows)
    best, worst = rows(table)
    assert best == ["contr-cos-all 10%", "**13.06**", MISSING, "**78.285**", MISSING, "**73.90**", MISSING, MISSING,
                    "**67.388**"]
    assert worst == ["no pretrain 10%", "23.78", MISSING, "69.722", MISSING, "41.86", MISSING, MISSING, "-57.401"]
    assert "**" not in " ".join(rows(markdown_table(paper_rows, bold_best=False))[0])
    assert "Not comparable" not in table
    assert "norm. avg. missing" not in table


def test_bold_direction_ties_and_single_value():
    runs = [result("a", {"asr/wer": 10.0, "st/bleu": 20.0, "contrastive/cos": 2.0, "sqa/em": 50.0}),
            result("b", {"asr/wer": 12.0, "st/bleu": 30.0, "contrastive/cos": 2.0}),
            result("c", {"asr/wer": 10.004, "st/bleu": None, "contrastive/cos": 2.5})]
    table = markdown_table(runs)
    assert column(table, "WER ↓") == ["**10.00**", "12.00", "**10.00**"]  # lowest wins; equal as printed -> both bold
    assert column(table, "BLEU ↑") == ["20.00", "**30.00**", MISSING]  # highest wins; null prints as a dash
    assert column(table, "contr. loss cos ↓") == ["**2.000**", "**2.000**", "2.500"]  # exact tie: both bold
    assert column(table, "EM ↑") == ["50.00", MISSING, MISSING]  # a lone value is not "best"
    same = markdown_table([result("a", {"asr/wer": 100.0}), result("b", {"asr/wer": 100.0})])
    assert column(same, "WER ↓") == ["100.00", "100.00"]  # all equal: nothing stands out


def test_non_finite_and_non_numeric_values_print_as_missing():
    runs = [result("a", {"asr/wer": float("nan"), "st/bleu": "n/a", "sqa/f1": True}), result("b", {"asr/wer": 5.0})]
    table = markdown_table(runs)
    assert column(table, "WER ↓") == [MISSING, "5.00"]
    assert column(table, "BLEU ↑") == [MISSING, MISSING]
    assert column(table, "F1 ↑") == [MISSING, MISSING]


def test_cascade_marked_and_pipe_escaped():
    table = markdown_table([result("hubert+llama", {"asr/wer": 18.38}, kind="cascade", sha=None), result("a|b", {})])
    assert [r[0] for r in rows(table)] == ["hubert+llama (cascade)", "a\\|b"]
    assert "hubert+llama (cascade): no checkpoint" in table


@pytest.mark.parametrize(("wer_sig", "bleu_sig", "differs"), [
    ("en-whisperlike-v1", BLEU_SIG, None),
    ("basic-v1", BLEU_SIG, "WER normaliser"),
    ("en-whisperlike-v1", BLEU_SIG.replace("13a", "intl"), "BLEU signature"),
])
def test_not_comparable_only_when_signatures_differ(wer_sig, bleu_sig, differs):
    runs = [result("a", {"asr/wer": 10.0, "st/bleu": 20.0}),
            result("b", {"asr/wer": 11.0, "st/bleu": 21.0}, wer_sig=wer_sig, bleu_sig=bleu_sig)]
    table = markdown_table(runs)
    if differs is None:
        assert "Not comparable" not in table
        assert "- WER normaliser: `en-whisperlike-v1` (all runs)" in table
        assert f"- BLEU signature: `{BLEU_SIG}` (all runs)" in table
    else:
        line = next(l for l in table.splitlines() if l.startswith("**Not comparable:**"))
        assert differs in line and "(a)" in line and "(b)" in line
        assert ("WER normaliser" in line) != ("BLEU signature" in line)  # only the differing one is named


def test_signature_of_a_run_without_the_score_is_ignored():
    # b evaluated no ASR: its (different) normaliser string says nothing about a comparable WER
    runs = [result("a", {"asr/wer": 10.0}), result("b", {"sqa/f1": 50.0}, wer_sig="basic-v1")]
    assert "Not comparable" not in markdown_table(runs)


def test_normalized_average_note_and_provenance(paper_rows):
    paper_rows[1]["metrics"]["normalized_average"] = None
    paper_rows[1]["metrics"]["st/comet"] = None
    paper_rows[0]["notes"] = ["COMET skipped: no checkpoint configured", "shared note"]
    paper_rows[1]["notes"] = ["shared note"]
    table = markdown_table(paper_rows)
    note = next(l for l in table.splitlines() if "norm. avg. missing" in l)
    assert "no pretrain 10%" in note and "contr-cos-all" not in note
    assert "needs WER, COMET and F1; COMET needs a local checkpoint, see README" in note
    assert "- contr-cos-all 10%: checkpoint `ab12cd34ef56` step 120 (finetune)" in table
    assert "- no pretrain 10%: no checkpoint (untrained projector)" in table
    assert "- Note: COMET skipped: no checkpoint configured (contr-cos-all 10%)" in table
    assert table.count("shared note") == 1 and "- Note: shared note (all runs)" in table


# ---------------------------------------------------------------------------------------------------- detail table


def test_detail_table_shows_only_present_columns(paper_rows):
    table = detail_table(paper_rows)
    head = table.splitlines()[0]
    assert "de BLEU" not in head and "R@1" not in head
    assert "ASR n" in head and column(table, "SQA n") == ["50", "50"]

    a, b = copy.deepcopy(paper_rows)
    a["metrics"].update({"st/fr/bleu": 30.0, "st/de/bleu": 22.1, "st/de/chrf": 50.3, "st/de/comet": 78.285,
                         "asr/wer_utt_mean": 14.2, "retrieval/r@1": 41.0, "retrieval/chance_r@1": 1.0})
    b["metrics"].update({"st/de/bleu": 2.5, "retrieval/r@1": 3.0})
    table = detail_table([a, b])
    head = [c.strip() for c in table.splitlines()[0].strip("|").split(" | ")]
    assert head[:5] == ["Model", "de BLEU ↑", "de chrF ↑", "de COMET ↑", "fr BLEU ↑"]  # de before fr, as the paper
    assert "fr chrF ↑" not in head and "es BLEU ↑" not in head
    assert "WER (mean of per-utterance WERs, as the public code reports) ↓" in head
    assert column(table, "de BLEU ↑") == ["**22.10**", "2.50"]
    assert column(table, "de COMET ↑") == ["78.285", MISSING]
    assert column(table, "chance R@1") == ["1.00", MISSING]  # no direction: never bold
    assert detail_table([result("a", {"asr/wer": 1.0})]) == ""


# --------------------------------------------------------------------------------------------------------- loading


def test_load_results_from_directory_and_file(tmp_path, paper_rows):
    d = write(tmp_path / "run_a", paper_rows[0])
    assert load_results(d) == load_results(d / "results.json")
    assert load_results(d)["metrics"]["asr/wer"] == 13.06
    unnamed = dict(paper_rows[0])
    del unnamed["name"]
    assert load_results(write(tmp_path / "run_b", unnamed))["name"] == "run_b"


def test_load_results_errors(tmp_path, paper_rows):
    with pytest.raises(FileNotFoundError, match=r"nowhere.*python -m eval\.run"):
        load_results(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match=r"results\.json.*python -m eval\.run"):
        load_results(tmp_path)  # a directory without results.json
    bad = dict(paper_rows[0], format=2)
    with pytest.raises(ValueError, match="unknown results format 2"):
        load_results(write(tmp_path / "v2", bad))
    (tmp_path / "broken.json").write_text('{"format": 1, ', encoding="utf-8")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_results(tmp_path / "broken.json")


# ------------------------------------------------------------------------------------------------------ plot + CLI


def test_plot_skips_metrics_nobody_has(tmp_path, paper_rows):
    out = plot_comparison(paper_rows, tmp_path / "sub" / "cmp.png")
    assert out == tmp_path / "sub" / "cmp.png" and out.read_bytes().startswith(PNG_MAGIC)
    assert [p.name for p in out.parent.iterdir()] == ["cmp.png"]  # no temp file left behind
    with pytest.raises(ValueError, match="no run has any Table-1 metric"):
        plot_comparison([result("a", {"asr/n": 3})], tmp_path / "empty.png")


def test_cli_end_to_end(tmp_path, paper_rows, capsys):
    a = write(tmp_path / "a", paper_rows[0])
    b = write(tmp_path / "b", paper_rows[1]) / "results.json"
    out, png = tmp_path / "report" / "report.md", tmp_path / "report.png"
    assert main([str(a), str(b), "--out", str(out), "--plot", str(png)]) == 0
    printed = capsys.readouterr().out
    assert HEADER in printed and "| contr-cos-all 10% | **13.06** |" in printed
    assert "## Details" in printed and "SQA n" in printed
    assert out.read_text(encoding="utf-8") == printed
    assert png.read_bytes().startswith(PNG_MAGIC)


def test_cli_exit_2_on_missing_or_invalid_file(tmp_path, paper_rows, capsys):
    a = write(tmp_path / "a", paper_rows[0])
    assert main([str(a), str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("ERROR python -m eval.report: ") and "missing" in err and "\n" not in err
    (tmp_path / "bad.json").write_text("[1, 2]", encoding="utf-8")
    assert main([str(tmp_path / "bad.json")]) == 2
    assert capsys.readouterr().err.startswith("ERROR python -m eval.report: ")
    assert not (tmp_path / "report.md").exists()


# ---------------------------------------------------------------------------------- --bounds: renormalize


@pytest.fixture
def bounded() -> dict:
    """A Whisper -> LLM cascade (lower bound), the gold-transcript cascade (upper) and two runs, as eval.run writes
    them without a COMET checkpoint (its note on the missing average included)."""
    stale = "normalized average not computed: no COMET score"
    return {
        "lower": result("whisper-base -> LLM", {"asr/wer": 40.0, "st/bleu": 10.0, "st/comet": 70.0, "sqa/f1": 20.0},
                        kind="cascade", sha=None),
        "upper": result("gold transcript -> LLM", {"asr/wer": 0.0, "st/bleu": 30.0, "st/comet": 80.0,
                                                   "sqa/f1": 60.0}, kind="cascade", sha=None),
        "run": result("contr-cos", {"asr/wer": 30.0, "st/bleu": 25.0, "st/comet": None, "sqa/f1": 70.0,
                                    "normalized/wer": 1.0, "normalized_average": None},
                      notes=("COMET skipped: no local checkpoint configured (scoring.comet_checkpoint)", stale)),
        "other": result("no pretrain", {"asr/wer": 20.0, "st/bleu": 12.0, "st/comet": 75.0, "sqa/f1": 40.0}),
    }


def test_renormalize_with_bleu_hand_computed(bounded):
    original = copy.deepcopy(bounded)
    runs = [bounded[k] for k in ("run", "other", "lower", "upper")]
    out = renormalize(runs, bounded["lower"], bounded["upper"], "bleu")
    assert bounded == original  # the inputs are not modified
    m = out[0]["metrics"]
    # WER 100 * (40 - 30) / (40 - 0) = 25; BLEU 100 * (25 - 10) / (30 - 10) = 75; F1 100 * (70 - 20) / (60 - 20) = 125
    assert (m["normalized/wer"], m["normalized/bleu"], m["normalized/f1"]) == pytest.approx((25.0, 75.0, 125.0))
    assert m["normalized_average"] == pytest.approx(75.0)
    # no pretrain: WER 50, BLEU 10, F1 50
    assert out[1]["metrics"]["normalized_average"] == pytest.approx((50.0 + 10.0 + 50.0) / 3)
    assert [r["metrics"]["normalized_average"] for r in out[2:]] == pytest.approx([0.0, 100.0])
    assert all("normalized/comet" not in r["metrics"] for r in out)
    assert out[0]["notes"] == [original["run"]["notes"][0]]  # eval.run's note on its own average is stale
    table = markdown_table(out)
    assert column(table, "norm. avg. ↑") == ["75.000", "36.667", "0.000", "**100.000**"]
    footnote = next(l for l in table.splitlines() if "between evaluated systems" in l)
    assert ("lower `whisper-base -> LLM (cascade)` (WER 40.00, BLEU 10.00, F1 20.00), upper "
            "`gold transcript -> LLM (cascade)` (WER 0.00, BLEU 30.00, F1 60.00)") in footnote
    assert "BLEU replaces COMET" in footnote
    assert "norm. avg. missing" not in table
    assert column(detail_table(out), "norm. BLEU ↑")[0] == "75.000"
    assert column(detail_table(out), "norm. WER ↑")[2] == "0.000"  # not "-0.000" (the upper bound's WER is 0)


def test_renormalize_with_comet_needs_every_runs_comet(bounded):
    out = renormalize([bounded["run"], bounded["other"]], bounded["lower"], bounded["upper"])
    assert out[0]["metrics"]["normalized_average"] is None and "normalized/wer" not in out[0]["metrics"]
    # no pretrain: WER 50, COMET 100 * (75 - 70) / 10 = 50, F1 50
    assert out[1]["metrics"]["normalized/comet"] == pytest.approx(50.0)
    assert out[1]["metrics"]["normalized_average"] == pytest.approx(50.0)
    table = markdown_table(out)
    assert "(WER 40.00, COMET 70.00, F1 20.00)" in table and "BLEU replaces" not in table
    assert "norm. avg. missing for contr-cos: needs WER, COMET and F1; COMET needs a local checkpoint" in table


def test_renormalize_errors(bounded):
    lower, upper = bounded["lower"], bounded["upper"]
    no_bleu = copy.deepcopy(upper)
    del no_bleu["metrics"]["st/bleu"]
    with pytest.raises(ValueError, match=r"upper bound 'gold transcript -> LLM \(cascade\)' has no st/bleu"):
        renormalize([bounded["run"]], lower, no_bleu, "bleu")
    same = copy.deepcopy(upper)
    same["metrics"]["sqa/f1"] = 20.0
    with pytest.raises(ValueError, match="same F1.*divide by zero"):
        renormalize([bounded["run"]], lower, same, "bleu")
    (kept,) = renormalize([bounded["run"]], lower, same, "bleu", allow_degenerate=True)
    assert kept["metrics"]["normalized_average"] is None and kept["metrics"]["sqa/f1"] == bounded["run"]["metrics"][
        "sqa/f1"] and not [k for k in kept["metrics"] if k.startswith("normalized/")]
    table = report_markdown([kept])
    assert "norm. avg. not computed: lower bound" in table and "same F1" in table and "raw metrics" in table
    assert "norm. avg. missing" not in table  # the runs have their scores: the bounds are what is missing
    with pytest.raises(ValueError, match="st_metric"):
        renormalize([bounded["run"]], lower, upper, "chrf")


def test_cli_bounds(tmp_path, bounded, capsys):
    paths = {k: write(tmp_path / k, v) for k, v in bounded.items()}
    assert main([str(paths["run"]), str(paths["other"]), "--bounds", str(paths["lower"]), str(paths["upper"]),
                 "--st-metric", "bleu"]) == 0
    printed = capsys.readouterr().out
    assert column(printed.split("\n\n", 1)[1], "norm. avg. ↑") == ["**75.000**", "36.667"]  # after "## Table 1"
    assert "BLEU replaces COMET" in printed and "`whisper-base -> LLM (cascade)` (WER 40.00" in printed
    bad = copy.deepcopy(bounded["upper"])
    bad["metrics"]["asr/wer"] = 40.0
    write(tmp_path / "bad", bad)
    # Bounds that tie on a task: the raw table still comes out, with the reason there is no normalized average.
    assert main([str(paths["run"]), "--bounds", str(paths["lower"]), str(tmp_path / "bad")]) == 0
    out = capsys.readouterr()
    assert out.err.startswith("warning: no normalized average") and "same WER" in out.err
    assert "norm. avg. not computed" in out.out
    with pytest.raises(SystemExit) as exit_info:
        main([str(paths["run"]), "--st-metric", "bleu"])
    assert exit_info.value.code == 2 and "--st-metric needs --bounds" in capsys.readouterr().err
