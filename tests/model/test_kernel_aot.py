"""Every Triton kernel compiles ahead of time for sm_80 (A100) and sm_90 (H100), in every block configuration its
launcher can pick, for float32 and bfloat16 inputs (`model.kernels.aot`).

The rest of the suite runs the kernels under ``TRITON_INTERPRET=1``, which never compiles them; this file compiles
them for real GPUs on the CPU. The check runs in a subprocess without ``TRITON_INTERPRET`` (this process has it set
by tests/conftest.py, so its kernels are interpreted functions). The number of configurations it compiled is
compared with the block sizes the launchers actually choose, recorded here by calling them with stand-in kernels over
many sizes: a launcher that starts picking a block size the check does not enumerate fails this test.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from model.kernels import aot
from model.kernels.softmin import triton_available

pytestmark = pytest.mark.skipif(not triton_available(), reason="triton is not installed")
REPO = Path(__file__).resolve().parents[2]
ARCHS, DTYPES = (80, 90), ("fp32", "bf16")
# Opt-in shared memory per block (CUDA C++ Programming Guide, technical specifications): 163 KB / 227 KB.
LIMITS = {80: 166912, 90: 232448}
SIZES = [*range(1, 300), 511, 512, 513, 1000, 4096, 10_000]  # past every cap, powers of two and not


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env["OMP_NUM_THREADS"] = "1"
    return env


def _run(args: list[str], tmp: Path) -> tuple[subprocess.CompletedProcess, dict | None]:
    out = tmp / "aot.json"
    proc = subprocess.run([sys.executable, *args, "--json", str(out)], cwd=REPO, env=_env(), capture_output=True,
                          text=True, timeout=600)
    return proc, (json.loads(out.read_text()) if out.exists() else None)


class _Recorder:
    """Stands in for a ``@triton.jit`` kernel: ``kernel[grid](*args, **constexprs)`` records the constexprs."""

    def __init__(self):
        self.values: dict[str, set[int]] = {}

    def __getitem__(self, grid):
        def launch(*args, **constexprs):
            for name, value in constexprs.items():
                self.values.setdefault(name, set()).add(value)
        return launch


def _configs(values: dict[str, set[int]]) -> set[tuple[tuple[str, int], ...]]:
    return {tuple(sorted(zip(values, combo))) for combo in itertools.product(*values.values())}


def _launched_blocks(monkeypatch) -> dict[str, set]:
    """The block configurations each launcher picks over `SIZES` (rows and columns varied separately: each block
    size depends only on its own dimension, so their combinations are the product of the two sets)."""
    from model.kernels import pooling, softmin

    rec = {name: _Recorder() for name in ("_softmin_kernel", "_plan_grad_kernel", "_masked_mean_kernel")}
    for name, r in rec.items():
        monkeypatch.setattr(pooling if name == "_masked_mean_kernel" else softmin, name, r)
    for n, m in [(n, 1) for n in SIZES] + [(1, m) for m in SIZES]:
        eps, cost, h, f = torch.ones(1), torch.empty(1, n, m), torch.zeros(1, m), torch.zeros(1, n)
        softmin.softmin_pairs(eps, cost, h, -1)
        softmin.softmin_plan_grad(eps, cost, h, f, f, -1)
        pooling.masked_mean_pool_fused(torch.empty(1, n, m), torch.ones(1, n, dtype=torch.bool))
    return {name: _configs(r.values) for name, r in rec.items()}


def _from_caps() -> dict[str, set]:
    """What the caps promise: every power of two from 1 up to each cap."""
    from model.kernels.pooling import POOL_BLOCKS
    from model.kernels.softmin import PLAN_GRAD_BLOCKS, SOFTMIN_BLOCKS

    caps = {"_softmin_kernel": dict(zip(("BLOCK_R", "BLOCK_C"), SOFTMIN_BLOCKS)),
            "_plan_grad_kernel": dict(zip(("BLOCK_R", "BLOCK_C"), PLAN_GRAD_BLOCKS)),
            "_masked_mean_kernel": dict(zip(("BLOCK_N", "BLOCK_D"), POOL_BLOCKS))}
    return {fn: _configs({k: {1 << i for i in range(cap.bit_length()) if 1 << i <= cap} for k, cap in c.items()})
            for fn, c in caps.items()}


@pytest.fixture(scope="module")
def check(tmp_path_factory):
    """The real check, once for the file: sm_80 and sm_90, fp32 and bf16 (608 compiles, ~60 s on 2 idle cores).
    Its compile processes take this pytest worker's share of the cores, as tests/conftest.py shares them."""
    jobs = max(1, (os.cpu_count() or 1) // int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")))
    proc, summary = _run(["-m", "model.kernels.aot", "--arch", *map(str, ARCHS), "--dtypes", *DTYPES,
                          "--jobs", str(jobs)], tmp_path_factory.mktemp("aot"))
    return proc, summary


@pytest.mark.slow  # a minute of compiling on 2 cores; nothing deselects `slow`, CI runs it
def test_every_kernel_compiles_for_sm80_and_sm90(check, monkeypatch):
    proc, summary = check
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert summary["failures"] == []
    launched = _launched_blocks(monkeypatch)
    assert launched == _from_caps()
    per_arch_dtype = sum(len(c) for c in launched.values())
    assert summary["counts"] == {f"sm_{a}/{d}": per_arch_dtype for a in ARCHS for d in DTYPES}
    for name, configs in launched.items():
        compiled = {tuple(sorted(r["blocks"].items())) for r in summary["results"] if r["kernel"] == name}
        assert compiled == {tuple(sorted(c)) for c in configs}, name
        assert summary["kernels"][name]["configs"] == len(configs) * len(ARCHS) * len(DTYPES)
    for arch in ARCHS:
        peak = summary["max_shared"][f"sm_{arch}"]
        assert 0 < peak < LIMITS[arch], (arch, peak)
        assert aot.SHARED_LIMITS[arch] == LIMITS[arch]
    assert all(r["shared"] is not None for r in summary["results"])


def test_broken_kernels_fail_with_their_configuration(tmp_path):
    proc, summary = _run([str(REPO / "tests/model/aot_broken_kernels.py"), "--arch", "90", "--dtypes", "fp32"],
                         tmp_path)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    failed = {(f["kernel"], tuple(f["blocks"].values())) for f in summary["failures"]}
    assert failed == {("_undefined_fn_kernel", (1,)), ("_undefined_fn_kernel", (2,)), ("_shape_kernel", (2, 4))}
    assert summary["configs"] == 2 + 2 * 3  # the other five shape-kernel configurations compile
    assert "FAILED _undefined_fn_kernel [BLOCK=2] dtype=fp32 sm_90: CompilationError" in proc.stderr
    assert "no_such_function" in proc.stderr
    line = re.search(r"FAILED _shape_kernel \[BLOCK_A=2, BLOCK_B=4\] dtype=fp32 sm_90: (.*)", proc.stderr)
    assert line and "incompatible dimensions" in proc.stderr[line.start():], proc.stderr


def test_refuses_to_run_under_the_interpreter(tmp_path):
    env = dict(_env(), TRITON_INTERPRET="1")
    proc = subprocess.run([sys.executable, "-m", "model.kernels.aot"], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 2
    assert "TRITON_INTERPRET is set" in proc.stderr


def test_refuses_another_triton_version(monkeypatch, capsys):
    import triton

    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    monkeypatch.setattr(triton, "__version__", "3.8.1")
    assert aot.main(["--arch", "90"]) == 2
    err = capsys.readouterr().err
    assert f"written for triton {aot.TRITON_VERSION}" in err and "3.8.1 is installed" in err


def test_requirements_pin_the_targeted_triton():
    pins = [line for line in (REPO / "requirements-dev.txt").read_text().splitlines() if line.startswith("triton")]
    assert len(pins) == 1 and pins[0].startswith(f"triton=={aot.TRITON_VERSION};"), pins
