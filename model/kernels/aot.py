"""Ahead-of-time compile of every Triton kernel configuration the launchers can pick, for real GPUs, on any machine.

The tests run the kernels of `model.kernels` under ``TRITON_INTERPRET=1``, which executes them in numpy and never
compiles them: a kernel that the interpreter accepts can still fail to lower, run out of shared memory or spill on
an A100/H100. This check compiles each kernel, for every ``BLOCK_*`` constexpr its launcher can choose (every power
of two up to the caps in `model.kernels.softmin` / `model.kernels.pooling`) and every pointer dtype the callers
pass, to a cubin for each target architecture. ``triton.compile`` with an explicit ``GPUTarget`` needs no GPU or
driver (Triton ships ptxas), so this runs in CPU-only CI:

    python -m model.kernels.aot [--arch 80 90] [--dtypes fp32 bf16] [--jobs N] [--json OUT]

Arguments are typed as a launch types them by default (ints as ``i32``) but without Triton's value
specialisations (``tt.divisibility`` for multiples of 16, constexpr for ints equal to 1): those variants are compiled
on top of the generic kernel checked here. The exit status is 0 when everything compiled within the shared-memory
limits, 1 otherwise (each failure named with its kernel, blocks, dtype, arch and compiler error), 2 when the check
cannot run here (interpreter mode, another Triton version).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import io
import itertools
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import warnings
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field

from core.errors import UserError, entry_point

# The compile API (`ASTSource` taking a ``constexprs`` dict keyed by name, ``GPUTarget``, ``metadata.shared``) is
# the one of this release; it has changed between minor releases before. requirements-dev.txt pins it.
TRITON_VERSION = "3.9.0"
# Maximum shared memory per thread block (opt-in, `cudaDevAttrMaxSharedMemoryPerBlockOptin`), from the CUDA C++
# Programming Guide, "Technical Specifications per Compute Capability": 163 KB on 8.0 (A100), 227 KB on 9.0 (H100).
# Triton refuses to load a kernel whose ``metadata.shared`` exceeds it (triton/compiler/compiler.py,
# `CompiledKernel._init_handles`), so exceeding it here is a launch that fails there.
SHARED_LIMITS = {80: 163 * 1024, 90: 227 * 1024}
# Pointer element types by the names used on the command line (Triton's signature spelling).
DTYPES = ("fp32", "bf16", "fp16", "fp64")
INPUT = "input"  # placeholder in `KernelSpec.pointers` for the dtype under test


@dataclass(frozen=True)
class KernelSpec:
    """One kernel as its launcher calls it: where it lives, its block caps and its pointer dtypes."""

    module: str
    """Importable module that defines the kernel (imported in each worker process)."""
    fn: str
    """Name of the ``@triton.jit`` function in ``module``."""
    blocks: tuple[tuple[str, int], ...]
    """(constexpr name, cap) per block size; the launcher picks min(cap, next_power_of_2(size))."""
    pointers: tuple[tuple[str, str], ...]
    """(argument, element type) per pointer; `INPUT` is the dtype under test, others are fixed (outputs fp32)."""

    def block_configs(self) -> list[dict[str, int]]:
        """Every combination of block sizes a launch can pick."""
        choices = [[(name, v) for v in block_choices(cap)] for name, cap in self.blocks]
        return [dict(combo) for combo in itertools.product(*choices)]


def block_choices(cap: int) -> list[int]:
    """Every value of ``min(cap, triton.next_power_of_2(n))`` over sizes ``n >= 1``."""
    return sorted({min(cap, 1 << k) for k in range(cap.bit_length() + 1)})


def default_specs() -> tuple[KernelSpec, ...]:
    """The kernels of `model.kernels`, dtypes as `model.sinkhorn` / `model.losses` pass them: costs, potentials and
    temperatures in the input dtype, saved potentials and upstream gradients float32 (`LastSoftmin.backward`),
    the pooling mask uint8, every output float32."""
    from model.kernels.pooling import POOL_BLOCKS
    from model.kernels.softmin import PLAN_GRAD_BLOCKS, SOFTMIN_BLOCKS

    soft = "model.kernels.softmin"
    return (
        KernelSpec(soft, "_softmin_kernel", (("BLOCK_R", SOFTMIN_BLOCKS[0]), ("BLOCK_C", SOFTMIN_BLOCKS[1])),
                   (("cost", INPUT), ("h", INPUT), ("eps", INPUT), ("out", "fp32"))),
        KernelSpec(soft, "_plan_grad_kernel", (("BLOCK_R", PLAN_GRAD_BLOCKS[0]), ("BLOCK_C", PLAN_GRAD_BLOCKS[1])),
                   (("cost", INPUT), ("h", INPUT), ("eps", INPUT), ("f", "fp32"), ("gf", "fp32"), ("out", "fp32"))),
        KernelSpec("model.kernels.pooling", "_masked_mean_kernel",
                   (("BLOCK_N", POOL_BLOCKS[0]), ("BLOCK_D", POOL_BLOCKS[1])),
                   (("h", INPUT), ("mask", "u8"), ("out", "fp32"))),
    )


@dataclass(frozen=True)
class Job:
    spec: KernelSpec
    blocks: tuple[tuple[str, int], ...]
    dtype: str
    arch: int


@dataclass
class Result:
    kernel: str
    blocks: dict[str, int]
    dtype: str
    arch: int
    error: str | None = None
    shared: int | None = None
    """Bytes of (dynamic) shared memory the launch requests: ``metadata.shared``."""
    registers: int | None = None
    """Registers per thread and stack bytes (spills: local memory) from ``cuobjdump -res-usage``, when available."""
    stack: int | None = None
    seconds: float = 0.0
    triton_warnings: list[str] = field(default_factory=list)


def _signature(fn, spec: KernelSpec, blocks: dict[str, int], dtype: str) -> dict[str, str]:
    """Triton's signature for a launch: pointers typed per `spec`, constexprs as such, every other argument an int
    (``i32``: what Triton types a Python int below 2**31 as)."""
    pointers = {name: dtype if kind == INPUT else kind for name, kind in spec.pointers}
    constexprs = {p.name for p in fn.params if p.is_constexpr}
    if unknown := (set(pointers) | set(blocks)) - set(fn.arg_names):
        raise ValueError(f"spec names arguments the kernel does not have: {sorted(unknown)}")
    if constexprs != set(blocks):
        raise ValueError(f"kernel constexprs {sorted(constexprs)} differ from the spec's blocks {sorted(blocks)}")
    return {name: "constexpr" if name in constexprs else f"*{pointers[name]}" if name in pointers else "i32"
            for name in fn.arg_names}


def _resource_usage(cubin: bytes) -> tuple[int | None, int | None]:
    """(registers, stack bytes) of a cubin's kernel via the cuobjdump that Triton ships; (None, None) without it."""
    from triton import knobs

    try:
        tool = knobs.nvidia.cuobjdump.path
        with tempfile.NamedTemporaryFile(suffix=".cubin") as f:
            f.write(cubin)
            f.flush()
            text = subprocess.run([tool, "-res-usage", f.name], capture_output=True, text=True, check=True).stdout
    except (OSError, RuntimeError, subprocess.CalledProcessError):
        return None, None
    regs, stack = re.search(r"REG:(\d+)", text), re.search(r"STACK:(\d+)", text)
    return (int(regs[1]) if regs else None), (int(stack[1]) if stack else None)


def compile_job(job: Job) -> Result:
    """Compile one configuration down to a cubin; never raises (errors are returned, named by the caller)."""
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    blocks = dict(job.blocks)
    res = Result(job.spec.fn, blocks, job.dtype, job.arch)
    start = time.perf_counter()
    # Compile errors from ptxas print the whole PTX to stdout before raising: keep it out of the summary (the
    # exception carries ptxas' own message).
    with warnings.catch_warnings(record=True) as caught, contextlib.redirect_stdout(io.StringIO()):
        # The launchers pass no `enable_fp_fusion`, so the check compiles with the same default a launch gets;
        # Triton 3.9 warns that this default changes in 3.10 (recorded, not printed per worker).
        warnings.simplefilter("always")
        try:
            fn = getattr(importlib.import_module(job.spec.module), job.spec.fn)
            if not isinstance(fn, triton.runtime.JITFunction):
                raise TypeError(f"{job.spec.fn} is a {type(fn).__name__}, not a JITFunction (TRITON_INTERPRET set?)")
            src = ASTSource(fn=fn, signature=_signature(fn, job.spec, blocks, job.dtype), constexprs=blocks)
            kernel = triton.compile(src, target=GPUTarget("cuda", job.arch, 32))
            res.shared = int(kernel.metadata.shared)
            res.registers, res.stack = _resource_usage(kernel.asm["cubin"])
        except Exception as e:  # any compiler failure is a result to report
            res.error = f"{type(e).__name__}: {e}".strip()
    res.triton_warnings = sorted({str(w.message).split(":")[0] for w in caught})
    limit = SHARED_LIMITS[job.arch]
    if res.error is None and res.shared > limit:
        res.error = f"shared memory {res.shared} B exceeds the sm_{job.arch} per-block limit {limit} B"
    res.seconds = time.perf_counter() - start
    return res


def _init_worker(cache_dir: str) -> None:
    # A fresh cache per run: a cache hit would skip the compile this check exists to do, and CI machines share
    # ~/.triton with other jobs.
    from triton import knobs

    knobs.cache.dir = cache_dir


def run_check(specs, archs, dtypes, jobs: int) -> list[Result]:
    """Compile every (kernel, block config, dtype, arch) of ``specs``; results in job order."""
    work = [Job(spec, tuple(blocks.items()), dtype, arch)
            for arch in archs for dtype in dtypes for spec in specs for blocks in spec.block_configs()]
    # Largest blocks first: they take the longest (up to ~2 s against ~0.2 s), so the pool ends evenly.
    order = sorted(range(len(work)), key=lambda i: -_product(work[i].blocks))
    with tempfile.TemporaryDirectory(prefix="triton-aot-") as cache:
        if jobs <= 1:
            from triton import knobs

            previous = knobs.cache.dir
            _init_worker(cache)
            try:
                done = {i: compile_job(work[i]) for i in order}
            finally:
                knobs.cache.dir = previous
        else:
            with ProcessPoolExecutor(jobs, initializer=_init_worker, initargs=(cache,)) as pool:
                futures = {i: pool.submit(compile_job, work[i]) for i in order}
                done = {i: f.result() for i, f in futures.items()}
    return [done[i] for i in range(len(work))]


def _product(blocks) -> int:
    out = 1
    for _, v in blocks:
        out *= v
    return out


def summarize(results: list[Result], wall: float) -> dict:
    """Counts per arch/dtype, per-kernel maxima and the failures, as printed and written by ``--json``."""
    counts, kernels = {}, {}
    for r in results:
        counts[f"sm_{r.arch}/{r.dtype}"] = counts.get(f"sm_{r.arch}/{r.dtype}", 0) + 1
        k = kernels.setdefault(r.kernel, {"configs": 0, "max_shared": 0, "max_registers": 0, "spilling": []})
        k["configs"] += 1
        k["max_shared"] = max(k["max_shared"], r.shared or 0)
        k["max_registers"] = max(k["max_registers"], r.registers or 0)
        if r.stack:
            k["spilling"].append(f"{r.blocks} {r.dtype} sm_{r.arch}: {r.stack} B stack")
    max_shared = {f"sm_{a}": max((r.shared or 0 for r in results if r.arch == a), default=0)
                  for a in sorted({r.arch for r in results})}
    return {"triton": TRITON_VERSION, "configs": len(results), "counts": counts, "kernels": kernels,
            "max_shared": max_shared, "shared_limits": {f"sm_{a}": v for a, v in SHARED_LIMITS.items()},
            "failures": [asdict(r) for r in results if r.error],
            "warnings": sorted({w for r in results for w in r.triton_warnings}), "wall_s": round(wall, 2),
            "results": [asdict(r) for r in results]}


def _print_summary(s: dict) -> None:
    print(f"triton {s['triton']} AOT check: {len(s['kernels'])} kernels, {s['configs']} configurations, "
          f"{len(s['failures'])} failed, {s['wall_s']} s")
    for key, n in s["counts"].items():
        print(f"  {key}: {n} configurations")
    for arch, peak in s["max_shared"].items():
        print(f"  {arch}: max shared memory {peak} B (limit {s['shared_limits'][arch]} B)")
    for name, k in s["kernels"].items():
        print(f"  {name}: {k['configs']} configurations, max shared {k['max_shared']} B, "
              f"max {k['max_registers']} registers, {len(k['spilling'])} spilling")
        for line in k["spilling"]:
            print(f"    spills: {line}")
    for w in s["warnings"]:
        print(f"  triton warned: {w}")
    for f in s["failures"]:
        blocks = ", ".join(f"{k}={v}" for k, v in f["blocks"].items())
        print(f"FAILED {f['kernel']} [{blocks}] dtype={f['dtype']} sm_{f['arch']}: {f['error']}", file=sys.stderr)


def preflight() -> str | None:
    """Why the check cannot run in this process's environment, or None."""
    if "TRITON_INTERPRET" in os.environ:
        return ("TRITON_INTERPRET is set: the kernels are then interpreted and cannot be compiled. Run the check "
                "without it (env -u TRITON_INTERPRET python -m model.kernels.aot).")
    try:
        import triton
    except ImportError:
        return f"triton is not installed: pip install triton=={TRITON_VERSION} (requirements-dev.txt)"
    if triton.__version__ != TRITON_VERSION:
        return (f"model.kernels.aot was written for triton {TRITON_VERSION} (its compile API and metadata), but "
                f"triton {triton.__version__} is installed. Install triton=={TRITON_VERSION} "
                f"(requirements-dev.txt), or port the check to the new API and update TRITON_VERSION.")
    return None


@entry_point
def main(argv: list[str] | None = None, specs=None) -> int:
    """Entry point; ``specs`` defaults to `default_specs` (tests pass their own kernels)."""
    ap = argparse.ArgumentParser(prog="python -m model.kernels.aot", description=__doc__.split("\n\n")[0])
    ap.add_argument("--arch", type=int, nargs="+", default=sorted(SHARED_LIMITS), choices=sorted(SHARED_LIMITS),
                    help="compute capabilities (80: A100, 90: H100)")
    ap.add_argument("--dtypes", nargs="+", default=["fp32", "bf16"], choices=DTYPES,
                    help="dtype of the kernels' input tensors (outputs are float32)")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="compile processes")
    ap.add_argument("--json", help="write the summary and every result here")
    args = ap.parse_args(argv)
    if problem := preflight():
        raise UserError(problem)
    specs = default_specs() if specs is None else specs
    start = time.perf_counter()
    results = run_check(specs, args.arch, args.dtypes, args.jobs)
    summary = summarize(results, time.perf_counter() - start)
    _print_summary(summary)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(summary, f, indent=1)
    return 1 if summary["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
