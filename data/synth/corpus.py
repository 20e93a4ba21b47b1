"""Synthetic multilingual speech corpus (ASR / ST / SQA) made with espeak-ng.

    python -m data.synth --out DIR --hours 1 --langs en,ru,de --seed 0 [--st-hours 0.5 --sqa-hours 0.5]

The corpus writer and its command line: :func:`synthesize` plans utterances (:mod:`data.synth.tasks`), renders them
in a process pool (:mod:`data.synth.speech`) and writes the audio, the manifests and ``synth.json``. Utterances are
kept in index order until the cumulative duration first reaches the task's target; results computed ahead in
parallel are discarded, so the output is the same for any worker count.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import time
from collections import Counter, deque
from dataclasses import asdict
from pathlib import Path
from typing import Any

from tqdm import tqdm

from core.errors import entry_point, user_errors
from data.synth.config import SUPPORTED_LANGS, SynthConfig
from data.synth.speech import BASE_VOICES, available_voices, espeak_version, find_espeak, render, select_voices
from data.synth.tasks import TASK_LANG, Utterance, make_plan, manifest_records

logger = logging.getLogger("data.synth")


# ----------------------------------------------------------------------------- running


def _estimate_seconds(utt: Utterance) -> float:
    """Rough duration guess, used only to avoid submitting far more work than needed."""
    return len(utt.text.split()) * 60.0 / utt.speed + 0.4


def _render_chunk(args: tuple[list[Utterance], int, str, int]) -> list[tuple[bytes, int]]:
    """Pool entry point: render a list of utterances in order."""
    utts, seed, exe, sample_rate = args
    return [render(u, seed, exe, sample_rate) for u in utts]


class _Inline:
    """Stand-in for ``AsyncResult`` when running without a pool (computes on ``get``)."""

    def __init__(self, args: tuple) -> None:
        self._args = args

    def get(self) -> list[tuple[bytes, int]]:
        return _render_chunk(self._args)


def _run_task(cfg: SynthConfig, task: str, target_s: float, voices: dict[str, list[str]], exe: str,
              pool: Any, bar: tqdm) -> dict:
    """Synthesize ``task`` until its audio first reaches ``target_s``; writes audio + manifest.

    Work is submitted as chunks through a bounded window of ``apply_async`` calls and consumed
    in index order. (``Pool.imap`` would drain an open-ended plan generator eagerly, and the
    stop point is only known from real durations.) Results beyond the stop point are dropped.
    """
    task_dir = cfg.out / task
    (task_dir / "audio").mkdir(parents=True, exist_ok=True)
    inline = pool is None
    window = 1 if inline else 2 * cfg.workers
    chunk = 1 if inline else cfg.chunk_size
    pending: deque = deque()
    next_index, in_flight_est, done_samples = 0, 0.0, 0
    target_samples = target_s * cfg.sample_rate
    lines: list[dict] = []
    voices_used: Counter = Counter()
    n_audio = 0
    while done_samples < target_samples:
        # Keep the workers busy, but stop queueing once the guesses say we are well past target.
        while len(pending) < window and (
                not pending or done_samples / cfg.sample_rate + in_flight_est < 1.2 * target_s):
            utts = [make_plan(cfg, task, next_index + j, voices) for j in range(chunk)]
            next_index += chunk
            args = (utts, cfg.seed, exe, cfg.sample_rate)
            res = _Inline(args) if inline else pool.apply_async(_render_chunk, (args,))
            est = sum(_estimate_seconds(u) for u in utts)
            pending.append((utts, res, est))
            in_flight_est += est
        utts, res, est = pending.popleft()
        in_flight_est -= est
        for utt, (flac, n) in zip(utts, res.get()):
            if done_samples >= target_samples:
                break
            (task_dir / "audio" / f"{utt.uid}.flac").write_bytes(flac)
            lines.extend(manifest_records(utt, n, cfg.sample_rate))
            voices_used[utt.voice] += 1
            n_audio += 1
            done_samples += n
            bar.update(n / cfg.sample_rate)
    tmp = task_dir / "manifest.jsonl.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        for line in lines:
            f.write(json.dumps(line, ensure_ascii=False) + "\n")
    os.replace(tmp, task_dir / "manifest.jsonl")
    hours = done_samples / cfg.sample_rate / 3600.0
    logger.info("%s: %d files, %d lines, %.3f h (target %.3f h)", task, n_audio, len(lines), hours,
                target_s / 3600.0)
    return {"manifest": f"{task}/manifest.jsonl", "lines": len(lines), "audio_files": n_audio,
            "hours": round(hours, 6), "target_hours": round(target_s / 3600.0, 6),
            "voices": dict(sorted(voices_used.items()))}


def _prepare_out(cfg: SynthConfig) -> None:
    """Create ``cfg.out``; refuse a non-empty one unless ``overwrite`` (then clear our outputs only)."""
    out = cfg.out
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"output path {out} exists and is not a directory")
    if out.exists() and any(out.iterdir()):
        if not cfg.overwrite:
            raise FileExistsError(f"output directory {out} is not empty; pass --overwrite to replace "
                                  "earlier synth outputs (asr-*/, st/, sqa/, synth.json)")
        # Only what this tool writes is removed: --out pointing at a wrong directory must not
        # wipe unrelated files.
        for name in [f"asr-{lang}" for lang in BASE_VOICES] + ["st", "sqa"]:
            if (out / name).is_dir():
                shutil.rmtree(out / name)
        (out / "synth.json").unlink(missing_ok=True)
    out.mkdir(parents=True, exist_ok=True)


def _config_dict(cfg: SynthConfig) -> dict:
    d = asdict(cfg)
    d["out"] = str(cfg.out)
    return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}


def synthesize(cfg: SynthConfig) -> dict:
    """Build the corpus described by ``cfg``.

    Returns:
        The summary also written to ``cfg.out / "synth.json"``.

    Raises:
        RuntimeError: espeak-ng is missing or has no working voice for a language.
        FileExistsError: ``cfg.out`` is not empty and ``cfg.overwrite`` is False.
    """
    exe = find_espeak()
    _prepare_out(cfg)
    targets = cfg.task_targets()
    langs = sorted({TASK_LANG.get(t, t[4:]) for t in targets})
    voices = select_voices(available_voices(exe, langs), cfg.voice_set)
    logger.info("espeak-ng voices: %s", ", ".join(f"{lang}={len(v)}" for lang, v in voices.items()))
    t0 = time.perf_counter()
    # The pool is forked before tqdm starts its monitor thread.
    pool = None
    if cfg.workers > 1:
        import multiprocessing as mp
        pool = mp.Pool(cfg.workers)
    bar = tqdm(total=round(sum(targets.values())), unit="s", desc="audio", disable=None,
               bar_format="{l_bar}{bar}| {n:.0f}/{total_fmt} s [{elapsed}<{remaining}]")
    stats = {}
    try:
        for task, target_s in targets.items():
            stats[task] = _run_task(cfg, task, target_s, voices, exe, pool, bar)
    finally:
        bar.close()
        if pool is not None:
            pool.terminate()  # drops results computed beyond the stop points
            pool.join()
    wall = time.perf_counter() - t0
    audio_h = sum(s["hours"] for s in stats.values())
    n_audio = sum(s["audio_files"] for s in stats.values())
    summary = {
        "config": _config_dict(cfg),
        "espeak": espeak_version(exe),
        "manifests": stats,
        "total_hours": round(audio_h, 6),
        "total_audio_files": n_audio,
        "wall_s": round(wall, 3),
        "realtime_factor": round(wall / (audio_h * 3600.0), 5) if audio_h > 0 else None,
        "voices_used": sorted({v for s in stats.values() for v in s["voices"]}),
        "voices_available": voices,
    }
    with open(cfg.out / "synth.json", "w", encoding="utf-8") as f:
        json.dump(summary, f, ensure_ascii=False, indent=2)
    logger.info("done: %.3f h in %d files, wall %.1f s, realtime factor %.4f (%.0fx faster than real time)",
                audio_h, n_audio, wall, summary["realtime_factor"] or 0.0,
                1.0 / summary["realtime_factor"] if summary["realtime_factor"] else 0.0)
    return summary


# ----------------------------------------------------------------------------- CLI


def _pair(s: str) -> tuple[float, float]:
    """argparse type for ``low,high`` (a single value means a fixed setting)."""
    parts = [p for p in s.split(",") if p.strip()]
    if len(parts) == 1:
        parts = parts * 2
    if len(parts) != 2:
        raise argparse.ArgumentTypeError(f"expected LOW,HIGH, got {s!r}")
    try:
        return float(parts[0]), float(parts[1])
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected two numbers LOW,HIGH, got {s!r}") from None


def _weights(s: str) -> dict[str, float]:
    """argparse type for ``en=2,ru=1``."""
    try:
        return {k.strip(): float(v) for k, v in (kv.split("=") for kv in s.split(",") if kv.strip())}
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected LANG=WEIGHT,..., got {s!r}") from None


def parse_args(argv: list[str] | None = None) -> SynthConfig:
    """Parse the command line into a ``SynthConfig``; unset options keep the dataclass defaults."""
    fields = SynthConfig.__dataclass_fields__

    def d(name: str) -> str:
        f = fields[name]
        return f"(default {f.default_factory() if callable(f.default_factory) else f.default})"

    p = argparse.ArgumentParser(prog="python -m data.synth", description=__doc__.split("\n")[0])
    p.add_argument("--out", required=True, type=Path, help="output directory")
    p.add_argument("--hours", required=True, type=float, help="total ASR hours over all --langs")
    p.add_argument("--langs", help=f"comma-separated ASR languages of {','.join(SUPPORTED_LANGS)} {d('langs')}")
    p.add_argument("--seed", type=int, help=f"random seed {d('seed')}")
    p.add_argument("--st-hours", type=float, help=f"hours of ST data {d('st_hours')}")
    p.add_argument("--sqa-hours", type=float, help=f"hours of SQA passages {d('sqa_hours')}")
    p.add_argument("--lang-weights", type=_weights, help="ASR share per language, e.g. en=2,ru=1,de=1")
    p.add_argument("--noise-prob", type=float, help=f"additive noise probability {d('noise_prob')}")
    p.add_argument("--snr-db", type=_pair, help=f"SNR range LOW,HIGH in dB {d('snr_db')}")
    p.add_argument("--reverb-prob", type=float, help=f"reverb probability {d('reverb_prob')}")
    p.add_argument("--rt60", type=_pair, help=f"RT60 range LOW,HIGH in s {d('rt60')}")
    p.add_argument("--speed", type=_pair, help=f"speaking rate range in words/min {d('speed')}")
    p.add_argument("--pitch", type=_pair, help=f"espeak pitch range 0-99 {d('pitch')}")
    p.add_argument("--voice-set", choices=["all", "train", "heldout"],
                   help=f"speakers: all, or the fixed train / held-out split of the variants {d('voice_set')}")
    p.add_argument("--workers", type=int, help=f"synthesis processes {d('workers')}")
    p.add_argument("--chunk-size", type=int, help=f"utterances per worker task {d('chunk_size')}")
    p.add_argument("--overwrite", action="store_true", help="replace earlier outputs in a non-empty --out")
    p.add_argument("--log-level", default="INFO", help="logging level (default INFO)")
    args = p.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(name)s %(levelname)s %(message)s")
    kwargs = {k: v for k, v in vars(args).items() if v is not None and k != "log_level"}
    try:
        return SynthConfig(**kwargs)
    except ValueError as e:
        p.error(str(e))


@entry_point(prog="python -m data.synth")
def main(argv: list[str] | None = None) -> int:
    """CLI entry point; returns the process exit status (2 with one ERROR line on an expected failure: no
    espeak-ng, an espeak-ng that fails, an output directory in the way)."""
    cfg = parse_args(argv)
    with user_errors(RuntimeError):  # espeak-ng missing or failing (data/synth/speech.py)
        synthesize(cfg)
    return 0
