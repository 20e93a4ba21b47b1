"""The GPU check's CPU run, in `make test`: so that the one command a lent GPU runs cannot rot between loans.

`python -m tests.gpu.check --tiny` runs every stage of `make gpu-check` (wheel install, smoke, the gpu-marked
tests, the Sinkhorn bench with its kernel column, the throughput run with its DeepSpeed engine and memory-model
hook) on CPU at tiny sizes; this test runs it as a subprocess (~40-60 s on 2 cores) and checks that each stage ran,
passed and reported, that the report went to its own file and not into BENCHMARKS.md, and that nothing the stages
imported is missing from the GPU image or the carried wheels. Plus the pieces a GPU run depends on that the tiny run
cannot show: the paper-size configs equal `train.throughput.paper_stack`'s, and the wheel list is installable there.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

from tests.gpu import wheels
from tests.gpu.check import STAGES, read_records

REPO = Path(__file__).resolve().parents[2]
OPTIONAL_IMPORTS = {"dill"}
"""Imported here only because this venv has them, by code that runs without them (torch.utils.data: `import_dill`)."""


def _fake_wheel(directory: Path, name: str = "gpu_check_probe", version: str = "1.0") -> Path:
    """A minimal pure-Python wheel: what `make gpu-wheels` would carry, without the network."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}-{version}-py3-none-any.whl"
    info = f"{name}-{version}.dist-info"
    files = {f"{name}/__init__.py": "PROBE = True\n",
             f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
             f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"}
    with zipfile.ZipFile(path, "w") as z:
        for arc, text in files.items():
            z.writestr(arc, text)
        z.writestr(f"{info}/RECORD", "".join(f"{arc},,\n" for arc in [*files, f"{info}/RECORD"]))
    return path


def _allowed_distributions() -> set[str]:
    """The GPU image's packages, the carried wheels, everything those require (as installed here), and what
    setuptools (in the image) vendors: it puts its _vendor folder on sys.path, so jaraco & co. import as top-level
    modules wherever setuptools is imported (torch's cpp_extension, DeepSpeed)."""
    import importlib.util
    from importlib.metadata import PackageNotFoundError, distributions, requires

    from packaging.requirements import Requirement

    vendor = Path(importlib.util.find_spec("setuptools").origin).parent / "_vendor"
    vendored = [d.metadata["Name"] for d in distributions(path=[str(vendor)])]
    seen, todo = set(), [*wheels.GPU_IMAGE, *wheels.pins(), *vendored]
    while todo:
        name = wheels.normalize(todo.pop())
        if name in seen:
            continue
        seen.add(name)
        try:
            reqs = requires(name) or []
        except PackageNotFoundError:
            continue
        for line in reqs:
            req = Requirement(line)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                todo.append(req.name)
    return seen


@pytest.mark.slow
def test_tiny_check_runs_every_stage_and_reports(tmp_path):
    _fake_wheel(tmp_path / "wheels")
    repo_md = hashlib.sha256((REPO / "BENCHMARKS.md").read_bytes()).hexdigest()
    out = tmp_path / "out"
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "tests.gpu.check", "--tiny", "--out", str(out), "--wheels",
                           str(tmp_path / "wheels"), "--site", str(tmp_path / "site")], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=400)
    seconds = time.perf_counter() - start
    logs = "\n".join(f"--- {p.name}\n{p.read_text()[-3000:]}" for p in sorted(out.glob("*.log")))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:] + logs
    rows = read_records(out / "records.jsonl")

    def of(stage: str, event: str) -> list[dict]:
        return [r for r in rows if r["stage"] == stage and r["event"] == event]

    assert [(r["stage"], r["status"]) for r in rows if r["event"] == "end"] == [(s.name, "passed") for s in STAGES]
    install = of("install", "figures")[-1]
    assert (install["wheels"], install["already"]) == (1, False)
    assert (tmp_path / "site" / "gpu_check_probe" / "__init__.py").is_file()
    smoke = of("smoke", "figures")[-1]
    assert smoke["site_on_path"] and smoke["loss"] > 0
    tests = of("tests", "test")
    assert len(tests) >= 20 and {t["outcome"] for t in tests} == {"passed"}, tests
    for name in ("softmin_pairs", "last_softmin", "masked_mean_pool", "sinkhorn_divergence", "bf16_pretraining",
                 "flash_attention", "deepspeed_engine"):
        assert any(name in t["test"] for t in tests), name
    sinkhorn = of("sinkhorn", "row")
    assert sinkhorn and sinkhorn[0]["kernel_ms"] is not None  # the kernel column's code ran (interpreter)
    setup, variants = of("throughput", "setup")[-1], of("throughput", "variant")
    assert [v["packing"] for v in variants] == ["rows", "off"] and all(v["finite"] for v in variants)
    assert setup["backend"] == "gloo" and setup["layers"] == [0, 5, 10, 11]
    if (REPO / "train" / "memory.py").exists():  # the hook must keep up with the memory model's API
        assert isinstance(setup["memory_model"]["peak_gb"], float), setup["memory_model"]

    md = (out / "BENCHMARKS.md").read_text()
    for section in ("gpu_check", "gpu_tests", "sinkhorn", "gpu_throughput"):
        assert f"<!-- bench:{section} -->" in md, section
    assert "| throughput | passed |" in md
    assert hashlib.sha256((REPO / "BENCHMARKS.md").read_bytes()).hexdigest() == repo_md
    assert "gpu check summary" in proc.stdout

    allowed = _allowed_distributions()
    for r in rows:
        if r["event"] == "imports":
            missing = sorted(set(r["dists"]) - allowed - OPTIONAL_IMPORTS)
            assert not missing, f"stage {r['stage']} imports {missing}: neither in the GPU image nor carried " \
                                f"(add them to tests/gpu/wheels.py)"
    assert {r["stage"] for r in rows if r["event"] == "imports"} == {"smoke", "tests", "sinkhorn", "throughput"}
    print(f"tiny GPU check: {seconds:.1f} s")


def test_paper_configs_equal_the_throughput_model():
    """The throughput stage builds the stack from tests/gpu/stack.py's configs but reports MFU with
    `train.throughput.paper_stack`'s FLOP count: both must describe the same models."""
    from tests.gpu.stack import PAPER, count_stack
    from train.throughput import paper_stack

    assert count_stack(PAPER) == paper_stack()


def test_wheel_list_is_for_the_gpu_image(tmp_path):
    pins = wheels.pins()
    assert {"deepspeed", "pydantic", "pydantic-core", "hjson", "geomloss", "soundfile", "webdataset"} <= set(pins)
    assert not set(pins) & set(wheels.NEVER) and not set(pins) & {"torch", "transformers"}
    assert not (set(pins) - {"typing-extensions"}) & wheels.GPU_IMAGE  # carry only what the image lacks (+ a newer one)
    for name in ("pydantic_core-2.50.5-cp312-cp312-manylinux2014_x86_64.manylinux_2_17_x86_64.whl",
                 "soundfile-0.14.0-py2.py3-none-manylinux_2_28_x86_64.whl", "deepspeed-0.19.8-py3-none-any.whl"):
        assert wheels.tags_ok(Path(name)), name
    for name in ("pydantic_core-2.50.5-cp311-cp311-manylinux2014_x86_64.whl", "soundfile-0.14.0-py2.py3-none-macosx"
                 "_11_0_arm64.whl", "cffi-2.1.1-cp312-cp312-musllinux_1_2_x86_64.whl"):
        assert not wheels.tags_ok(Path(name)), name


def test_install_is_offline_idempotent_and_never_replaces_torch(tmp_path):
    _fake_wheel(tmp_path / "w")
    _fake_wheel(tmp_path / "w", name="torch", version="0.0.1")
    first = wheels.install(tmp_path / "w", tmp_path / "site")
    assert (first["wheels"], first["already"], first["refused"]) == (1, False, ["torch-0.0.1-py3-none-any.whl"])
    assert not (tmp_path / "site" / "torch").exists()
    assert wheels.install(tmp_path / "w", tmp_path / "site")["already"] is True
    assert "skipped" in wheels.install(tmp_path / "none", tmp_path / "site2")
    json.dumps(first)  # a record line


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="checks the failure without a GPU")
def test_gpu_mode_without_cuda_stops_at_the_smoke_stage(tmp_path):
    md = tmp_path / "BENCHMARKS.md"
    proc = subprocess.run([sys.executable, "-m", "tests.gpu.check", "--out", str(tmp_path / "out"), "--stages",
                           "smoke", "tests", "--benchmarks-md", str(md)], cwd=REPO, capture_output=True, text=True,
                          timeout=300, env={**os.environ, "CUDA_VISIBLE_DEVICES": ""})
    assert proc.returncode == 1
    assert "smoke: CUDA is not visible" in proc.stdout  # the stage's own message, from its log's tail
    ends = {r["stage"]: r["status"] for r in read_records(tmp_path / "out" / "records.jsonl") if r["event"] == "end"}
    assert ends == {"smoke": "failed", "tests": "not run"}
    assert "| tests | not run |" in md.read_text() and (tmp_path / "out" / "BENCHMARKS.md").is_file()


def test_report_renders_what_a_gpu_run_records():
    """The GPU-only fields (kernel column, MFU, CUDA memory, memory model) in the summary and the sections."""
    from tests.gpu import summary

    rows = [{"stage": "install", "event": "figures", "wheels": 13, "mb": 6.8, "site": ".gpu-site", "already": False},
            {"stage": "install", "event": "end", "status": "passed", "seconds": 3.2, "limit": 25},
            {"stage": "smoke", "event": "figures", "device": "NVIDIA H100 80GB HBM3", "torch": "2.11.0",
             "cuda": "13.0", "loss": 4.39, "seconds": 1.5},
            {"stage": "smoke", "event": "end", "status": "passed", "seconds": 14.0, "limit": 40},
            {"stage": "tests", "event": "test", "test": "tests/gpu/test_gpu_kernels.py::test_x[bf16]",
             "outcome": "failed", "seconds": 0.3, "properties": {"max_rel_err": "3e-2"}},
            {"stage": "tests", "event": "end", "status": "failed", "seconds": 50.0, "limit": 95},
            {"stage": "sinkhorn", "event": "row", "d": 4096, "device": "cuda", "kernel_ms": 9.1,
             "loop_over_ours": 20.0, "loop_over_kernel": 150.2, "batched_over_kernel": 12.3},
            {"stage": "sinkhorn", "event": "end", "status": "timeout", "seconds": 80.0, "limit": 80},
            {"stage": "throughput", "event": "setup", "stack": "paper", "device": "NVIDIA H100 80GB HBM3",
             "memory_model": {"source": "train.memory.estimate(...)", "peak_gb": 41.2, "terms_gb": {}}},
            {"stage": "throughput", "event": "variant", "packing": "rows", "step_s": 0.61, "audio_h_per_gpu_h": 290.1,
             "model_tflop_per_step": 66.2, "achieved_tflops": 108.5, "mfu": 0.1097, "peak_allocated_gb": 38.5,
             "peak_reserved_gb": 40.1, "loss_first": 4.4, "loss_last": 4.3}]
    text = summary.text(rows, 200.0, 285.0)
    assert "loop / kernel 150x (goal >= 100x), batched / kernel 12.3x (goal >= 10x)" in text
    assert "MFU 0.110, peak 38.5 GB (memory model: 41.2 GB)" in text and "1 failed, 0 skipped (test_x[bf16])" in text
    names = [name for name, _, _ in summary.sections(rows)]
    assert names == ["gpu_check", "gpu_tests", "gpu_throughput"]
    body = dict((n, b) for n, _, b in summary.sections(rows))["gpu_throughput"]
    assert "| rows | 0.61 | 290.1 | 66.2 | 108.5 | 0.110 | 38.50 | 40.10 | - | 41.20 | 4.4 -> 4.3 |" in body
