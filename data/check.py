"""Stream a data config and report what training would see: throughput, padding, mix, bad data.

    python -m data.check --config train/configs/demo_stream.yaml [key=value ...] [--batches N]

Useful before a long run (is the mix right? are shards intact? will the loader keep up?) and used by the
loader benchmark. Writes nothing; prints a progress bar and a summary, optionally a JSON report.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from core.errors import entry_point
from data.stream import StreamConfig, StreamLoader

log = logging.getLogger("data.check")


@dataclass
class StreamReport:
    batches: int = 0
    samples: int = 0
    audio_seconds: float = 0.0
    padded_seconds: float = 0.0
    wall_seconds: float = 0.0
    startup_seconds: float = 0.0
    sources: Counter = field(default_factory=Counter)

    @property
    def hours_per_second(self) -> float:
        return self.audio_seconds / 3600 / max(self.wall_seconds, 1e-9)

    @property
    def padding_fraction(self) -> float:
        """Share of the audio tensor that is padding (what length buckets keep small)."""
        return 1 - self.audio_seconds / max(self.padded_seconds, 1e-9)

    def to_json(self) -> dict:
        return {"batches": self.batches, "samples": self.samples, "audio_hours": self.audio_seconds / 3600,
                "wall_seconds": self.wall_seconds, "startup_seconds": self.startup_seconds,
                "audio_hours_per_second": self.hours_per_second, "padding_fraction": self.padding_fraction,
                "source_shares": {k: v / max(self.samples, 1) for k, v in self.sources.items()}}


def measure(loader: StreamLoader, batches: int, progress: bool = True) -> StreamReport:
    """Pull `batches` batches through the loader, timing from the first request (worker start-up included)."""
    report = StreamReport()
    rate = loader.cfg.sample_rate
    started = time.perf_counter()
    it = iter(loader)
    with tqdm(total=batches, desc="stream", unit="batch", disable=not progress) as bar:
        for _ in range(batches):
            batch = next(it)
            if report.batches == 0:
                report.startup_seconds = time.perf_counter() - started
            report.batches += 1
            report.samples += batch["size"]
            report.audio_seconds += float(batch["audio_lengths"].sum()) / rate
            report.padded_seconds += batch["audio"].shape[0] * batch["audio"].shape[1] / rate
            report.sources.update(batch["sources"])
            bar.update()
            bar.set_postfix(audio_h_per_s=f"{report.audio_seconds / 3600 / (time.perf_counter() - started):.4f}")
    report.wall_seconds = time.perf_counter() - started
    return report


@entry_point
def main(argv=None) -> int:
    from train.config import load_config

    parser = argparse.ArgumentParser(prog="python -m data.check", description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", type=Path, help="YAML with StreamConfig fields")
    parser.add_argument("--batches", type=int, default=50)
    parser.add_argument("--json", type=Path, help="also write the report here")
    parser.add_argument("overrides", nargs="*", help="key=value, e.g. batch_size=16 num_workers=4")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    cfg = load_config(StreamConfig, args.config, args.overrides)
    loader = StreamLoader(cfg)
    report = measure(loader, min(args.batches, 10 * loader.batches_per_epoch))
    log.info("%d batches, %d samples, %.4f h of audio in %.1f s: %.4f audio h/s (first batch after %.1f s), "
             "%.1f%% padding, %d workers", report.batches, report.samples, report.audio_seconds / 3600,
             report.wall_seconds, report.hours_per_second, report.startup_seconds, 100 * report.padding_fraction,
             cfg.num_workers)
    log.info("source shares %s vs weights %s", {k: round(v, 3) for k, v in report.to_json()["source_shares"].items()},
             {c.name: round(w, 3) for c, w in zip(loader.catalogs, loader.weights)})
    log.info("data: %s", loader.summary())
    if args.json:
        args.json.write_text(json.dumps({**report.to_json(), "stats": loader.stats.state_dict()}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
