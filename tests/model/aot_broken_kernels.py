"""Kernels that must fail `model.kernels.aot`, for tests/model/test_kernel_aot.py.

Run as a script (``python tests/model/aot_broken_kernels.py [aot options]``) so that they are compiled: the test
process has ``TRITON_INTERPRET=1``, under which ``@triton.jit`` makes interpreted functions. The script goes
through the same entry point as ``python -m model.kernels.aot``, with these kernels as the specs; the pool's
workers import this file as ``aot_broken_kernels`` (its folder is the script's ``sys.path[0]``).
"""

from __future__ import annotations

import sys
from pathlib import Path

import triton
import triton.language as tl

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository root: model.kernels.aot

from model.kernels.aot import INPUT, KernelSpec, main  # noqa: E402


@triton.jit
def _undefined_fn_kernel(x, out, n, BLOCK: tl.constexpr):
    # Fails in the front end for every block size: `tl` has no such function.
    offs = tl.arange(0, BLOCK)
    v = tl.load(x + offs, mask=offs < n)
    tl.store(out + offs, tl.no_such_function(v), mask=offs < n)


@triton.jit
def _shape_kernel(x, out, n, BLOCK_A: tl.constexpr, BLOCK_B: tl.constexpr):
    # [BLOCK_A] + [BLOCK_B] broadcasts when the sizes are equal or one is 1: of the block configurations a
    # launcher with caps (2, 4) can pick, only BLOCK_A=2, BLOCK_B=4 is a shape error.
    offs = tl.arange(0, BLOCK_A) + tl.arange(0, BLOCK_B)
    tl.store(out + offs, tl.load(x + offs, mask=offs < n), mask=offs < n)


SPECS = (
    KernelSpec("aot_broken_kernels", "_undefined_fn_kernel", (("BLOCK", 2),), (("x", INPUT), ("out", "fp32"))),
    KernelSpec("aot_broken_kernels", "_shape_kernel", (("BLOCK_A", 2), ("BLOCK_B", 4)),
               (("x", INPUT), ("out", "fp32"))),
)

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:], specs=SPECS))
