"""Synthetic corpus speed: wall time per hour of audio (the issue's bar: 1 h in under 5 min on 2 cores).

Run with `make bench`; figures go to BENCHMARKS.md (section "synth").
"""

from __future__ import annotations

import time

import pytest

from data.synth.config import SynthConfig
from data.synth.corpus import synthesize
from tests.bench.report import write_section

pytestmark = pytest.mark.bench
HOURS = 0.5


def test_synth_speed(tmp_path):
    rows = []
    for workers in (1, 2):
        t0 = time.perf_counter()
        summary = synthesize(SynthConfig(out=tmp_path / f"w{workers}", hours=HOURS, langs=("en", "ru", "de"),
                                         seed=0, workers=workers))
        wall = time.perf_counter() - t0
        hours = summary["total_hours"]
        rows.append(f"| {workers} | {hours:.3f} | {wall:.1f} | {wall / hours / 60:.2f} | {3600 * hours / wall:.0f}x |")
    body = (f"`data.synth` with --hours {HOURS} --langs en,ru,de (espeak-ng, 30 % noise, 20 % reverb, 16 kHz FLAC), "
            "wall time including voice checks and start-up.\n\n"
            "| workers | audio h | wall s | minutes per audio hour | faster than real time |\n|---|---|---|---|---|\n"
            + "\n".join(rows))
    write_section("synth", "Synthetic corpus speed", body,
                  "make bench  (pytest -m bench tests/bench/test_synth_speed.py)")
