"""One prepared GPU check: `make gpu-check` (``python3 -m tests.gpu.check``), and the same path on CPU at tiny sizes.

Why this shape: a GPU is lent to this project now and then, for ~15 minutes, with no network. So the check is one
command that needs only the machine's own python3 (torch, transformers, triton, pytest are there) plus the wheels
carried in gpu_wheels/ (`make gpu-wheels`, run where PyPI is reachable), that ends within a fixed budget (default
285 s), and that reports as it goes. Stages, each a subprocess with its own time limit (its allotment plus whatever
earlier stages left unused; later stages always keep theirs), so one hang cannot eat the rest:

  install     the carried wheels into a local target dir (.gpu-site, first on the stages' PYTHONPATH; torch and
              transformers are never touched) - tests/gpu/wheels.py
  smoke       CUDA visible, one tiny bf16 forward + backward through the training module (tests/gpu/stack.py);
              if this fails nothing else runs
  tests       ``pytest -m gpu tests/gpu``: compiled Triton kernels vs the torch references, a bf16 pretraining
              step, SDPA's flash path, a one-rank NCCL DeepSpeed engine with checkpoint save/load
  sinkhorn    tests/bench/test_sinkhorn_bench.py with its kernel column (section "sinkhorn_gpu" on a GPU)
  throughput  the paper-size stack with random weights, one-rank DeepSpeed ZeRO-2, bf16 (tests/gpu/throughput.py)

Every stage appends JSON lines to OUT/records.jsonl the moment it has a figure (`record`); after each stage the
driver rewrites its BENCHMARKS.md sections (gpu_check: the summary; gpu_tests; gpu_throughput) from those lines and
copies BENCHMARKS.md and the stage logs' state into OUT, so a run cut off at the machine's limit still reports.

``--tiny`` runs the very same stages on CPU (GPUs hidden) at tiny sizes: gloo instead of NCCL, the kernels under
TRITON_INTERPRET, fp32 engine; BENCHMARKS.md is left alone (the sections go to OUT/BENCHMARKS.md). `make test` runs
it (tests/gpu/test_check_tiny.py), so the path cannot rot between GPU loans. This module imports only the standard
library at the top: it runs before the wheels are installed.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tests.gpu import summary

REPO = Path(__file__).resolve().parents[2]
OUT_ENV = "SPEECHLLM_GPU_CHECK_OUT"
"""records.jsonl that the stages append to (unset: `record` does nothing, e.g. under plain pytest)."""
MODE_ENV = "SPEECHLLM_GPU_CHECK"
""""gpu" or "tiny": the tiny mode lets the gpu-marked tests run on CPU and shrinks the Sinkhorn bench."""
BENCH_ENV = "SPEECHLLM_BENCHMARKS_MD"
"""Where the benchmark sections go (tiny: OUT/BENCHMARKS.md, never the repo's)."""
SITE_ENV = "SPEECHLLM_GPU_SITE"
"""The target dir the wheels were installed into (first on the stages' PYTHONPATH)."""
REPO_PACKAGES = {"data", "model", "train", "eval", "tests", "conftest", "__main__", "__mp_main__"}


@dataclass(frozen=True)
class Stage:
    name: str
    seconds: float
    """Allotment on the GPU machine; the allotments sum to the default budget."""
    tiny_seconds: float
    """Allotment in the tiny CPU run (2 shared cores in CI)."""


# GPU allotments (285 s): pip ~5 s; smoke ~15 s of imports and CUDA init; tests ~30 Triton compiles plus an
# engine; the bench's geomloss loop (256 calls x 3 runs x 2 widths); throughput's 8B init, engine and ~18 steps.
STAGES = (Stage("install", 20, 40), Stage("smoke", 40, 60), Stage("tests", 85, 120), Stage("sinkhorn", 55, 60),
          Stage("throughput", 85, 90))


# ------------------------------------------------------------------------------------------------ records
def record(stage: str, event: str, **data) -> None:
    """Append one JSON line to the check's records (no-op outside a check run)."""
    path = os.environ.get(OUT_ENV)
    if path:
        with open(path, "a") as f:
            f.write(json.dumps({"stage": stage, "event": event, "time": round(time.time(), 1), **data},
                               default=str) + "\n")


def loaded_distributions() -> tuple[list[str], list[str]]:
    """``(distributions, unmapped top-level modules)`` this process has imported, outside the standard library and
    this repo: what the GPU image or the carried wheels must provide (tests/gpu/test_check_tiny.py checks it)."""
    from importlib.metadata import packages_distributions

    by_module = packages_distributions()
    tops = {name.split(".")[0] for name in list(sys.modules)}
    dists, unmapped = set(), set()
    for top in tops:
        if top in sys.stdlib_module_names or top in REPO_PACKAGES or top in sys.builtin_module_names:
            continue
        if top in by_module:
            dists.update(re.sub(r"[-_.]+", "-", d).lower() for d in by_module[top])
        elif not top.startswith("_"):
            unmapped.add(top)
    return sorted(dists), sorted(unmapped)


def record_imports(stage: str) -> None:
    if os.environ.get(OUT_ENV):
        dists, unmapped = loaded_distributions()
        record(stage, "imports", dists=dists, unmapped=unmapped)


def read_records(path: Path) -> list[dict]:
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except ValueError:  # a line cut by a killed stage
            continue
    return rows


# ------------------------------------------------------------------------------------------------ stages
def stage_command(name: str, args: argparse.Namespace) -> list[str]:
    py, tiny = sys.executable, ["--tiny"] if args.tiny else []
    # own basetemp: never numbered beside (and cleaned up with) an outer pytest's, as in the CI run
    pytest = [py, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rfEs", f"--basetemp={args.out / f'tmp-{name}'}"]
    return {
        "install": [py, "-m", "tests.gpu.wheels", "install", "--wheels", str(args.wheels), "--site", str(args.site)],
        "smoke": [py, "-m", "tests.gpu.stack", *tiny],
        "tests": [*pytest, "-m", "gpu", "-o", "timeout=120", "tests/gpu"],
        "sinkhorn": [*pytest, "-s", "-m", "bench", "tests/bench/test_sinkhorn_bench.py"],
        "throughput": [py, "-m", "tests.gpu.throughput", *tiny,
                       *(["--peak-tflops", str(args.peak_tflops)] if args.peak_tflops else [])],
    }[name]


def stage_env(args: argparse.Namespace, records: Path, md: Path) -> dict[str, str]:
    env = dict(os.environ)
    path = [str(args.site), str(REPO), *filter(None, env.get("PYTHONPATH", "").split(os.pathsep))]
    env.update({MODE_ENV: "tiny" if args.tiny else "gpu", OUT_ENV: str(records), BENCH_ENV: str(md),
                SITE_ENV: str(args.site), "PYTHONPATH": os.pathsep.join(path), "PYTHONUNBUFFERED": "1",
                "TOKENIZERS_PARALLELISM": "false"})
    if args.tiny:  # the CPU path even on a machine with a GPU; kernels in Triton's interpreter
        env.update(CUDA_VISIBLE_DEVICES="", TRITON_INTERPRET="1", DS_ACCELERATOR="cpu")
    else:  # compiled kernels even where tests/conftest.py cannot see /dev/nvidia0; NCCL over loopback (one rank)
        env.update(DS_ACCELERATOR="cuda", TRITON_INTERPRET="0")
        env.setdefault("NCCL_SOCKET_IFNAME", "lo")
        env.setdefault("NCCL_DEBUG", "WARN")
    return env


def run_stage(argv: list[str], env: dict[str, str], limit: float, log: Path,
              tick=None) -> tuple[str, int | None]:
    """Runs one stage in its own process group; ``(status, exit code)`` with status passed / failed / timeout.
    `tick` is called every ~15 s while it runs (the driver rewrites the report: a run killed from outside, at the
    machine's limit, still leaves the figures of the stage it was in)."""
    deadline = time.monotonic() + limit
    with open(log, "w") as out:
        proc = subprocess.Popen(argv, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
        try:
            while True:
                try:
                    rc = proc.wait(timeout=max(0.1, min(15.0, deadline - time.monotonic())))
                    break
                except subprocess.TimeoutExpired:
                    if time.monotonic() >= deadline:
                        raise
                    if tick is not None:
                        tick()
        except subprocess.TimeoutExpired:
            for sig, grace in ((signal.SIGTERM, 10), (signal.SIGKILL, 10)):
                try:
                    os.killpg(proc.pid, sig)  # the stage and whatever it started (pytest, NCCL helpers)
                    proc.wait(timeout=grace)
                    break
                except (ProcessLookupError, subprocess.TimeoutExpired):
                    continue
            return "timeout", None
    return ("passed" if rc == 0 else "failed"), rc


def _tail(log: Path, lines: int = 30) -> str:
    text = log.read_text(errors="replace").splitlines() if log.exists() else []
    return "\n".join("    " + line[:300] for line in text[-lines:])


# ------------------------------------------------------------------------------------------------ reports
@functools.lru_cache(maxsize=1)
def _machine(report) -> Callable[[], str]:
    """`report.machine`, computed once per run (it asks nvidia-smi) instead of once per section and tick."""
    text = report.machine()
    return lambda: text


def write_sections(md: Path, rows: list[dict], command: str) -> None:
    """(Re)writes the check's sections of `md` from the records; the Sinkhorn bench writes its own."""
    from unittest import mock

    from tests.bench import report

    with mock.patch.object(report, "BENCHMARKS_MD", md), mock.patch.object(report, "machine", _machine(report)):
        for name, title, body in summary.sections(rows):
            report.write_section(name, title, body, command)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--tiny", action="store_true", help="the same stages on CPU at tiny sizes (CI)")
    p.add_argument("--out", type=Path, default=REPO / "runs" / "gpu_check", help="records, logs, BENCHMARKS.md copy")
    p.add_argument("--wheels", type=Path, default=REPO / "gpu_wheels", help="carried wheels (make gpu-wheels)")
    p.add_argument("--site", type=Path, default=REPO / ".gpu-site", help="where the wheels are installed")
    p.add_argument("--budget", type=float, default=None, help="seconds for all stages (default: their allotments)")
    p.add_argument("--peak-tflops", type=float, default=None, help="dense bf16 peak if the GPU's name is unknown")
    p.add_argument("--stages", nargs="+", default=[s.name for s in STAGES], choices=[s.name for s in STAGES])
    p.add_argument("--benchmarks-md", type=Path, default=None,
                   help="where the sections go (default: BENCHMARKS.md on a GPU, OUT/BENCHMARKS.md with --tiny)")
    args = p.parse_args(argv)
    args.out, args.wheels, args.site = args.out.resolve(), args.wheels.resolve(), args.site.resolve()
    stages = [s for s in STAGES if s.name in args.stages]
    allot = {s.name: s.tiny_seconds if args.tiny else s.seconds for s in stages}
    budget = args.budget or sum(allot.values())
    args.out.mkdir(parents=True, exist_ok=True)
    records = args.out / "records.jsonl"
    records.unlink(missing_ok=True)
    md = (args.benchmarks_md or (args.out / "BENCHMARKS.md" if args.tiny else REPO / "BENCHMARKS.md")).resolve()
    if args.tiny and args.benchmarks_md is None:
        md.unlink(missing_ok=True)
    env = stage_env(args, records, md)
    os.environ[OUT_ENV] = str(records)  # the driver's own records (stage ends) go to the same file
    command = f"make gpu-check  (python3 -m tests.gpu.check{' --tiny' if args.tiny else ''})"
    start = time.monotonic()
    deadline = start + budget
    print(f"gpu check ({'tiny, CPU' if args.tiny else 'GPU'}): stages {', '.join(allot)}; budget {budget:.0f} s; "
          f"records {records}", flush=True)

    def report() -> None:
        write_sections(md, read_records(records), command)
        if md != args.out / "BENCHMARKS.md":
            shutil.copy(md, args.out / "BENCHMARKS.md")  # the device tool returns only what is under OUT

    stop = None
    for i, stage in enumerate(stages):
        if stop:
            record(stage.name, "end", status="not run", reason=stop, seconds=0, limit=0)
            continue
        later = sum(allot[s.name] for s in stages[i + 1:])
        limit = max(5.0, min(deadline - time.monotonic() - later, budget))
        log = args.out / f"{stage.name}.log"
        print(f"[{time.monotonic() - start:5.0f} s] {stage.name} (limit {limit:.0f} s) ...", flush=True)
        t0 = time.monotonic()
        # no report while the Sinkhorn bench runs: it rewrites BENCHMARKS.md itself, and two writers could race
        status, rc = run_stage(stage_command(stage.name, args), env, limit, log,
                               tick=None if stage.name == "sinkhorn" else report)
        seconds = time.monotonic() - t0
        if stage.name == "install" and any(r.get("skipped") for r in read_records(records) if r["stage"] == "install"):
            status = "skipped"
        record(stage.name, "end", status=status, rc=rc, seconds=round(seconds, 1), limit=round(limit))
        print(f"[{time.monotonic() - start:5.0f} s] {stage.name}: {status} in {seconds:.1f} s (log {log})", flush=True)
        if status in ("failed", "timeout"):
            print(_tail(log), flush=True)
            if stage.name == "smoke":
                stop = "the smoke stage failed"
        report()
    report()
    rows = read_records(records)
    print(summary.text(rows, time.monotonic() - start, budget), flush=True)
    ends = [r for r in rows if r["event"] == "end"]
    return 0 if all(r["status"] in ("passed", "skipped") for r in ends) else 1


if __name__ == "__main__":
    sys.exit(main())
