"""Fixtures of the gpu-marked tests, and the hooks that put their outcomes into the GPU check's records.

The tests run on CUDA; without it they skip, except in the check's tiny CPU run (``SPEECHLLM_GPU_CHECK=tiny``,
set by ``python -m tests.gpu.check --tiny``), where the same tests run on CPU at tiny sizes so their code cannot rot
between GPU loans. Each test's outcome, duration and `record_property` figures are appended to the check's
records as the test finishes, so a stage cut off by its time limit still reports the tests that ran.
"""

from __future__ import annotations

import os

import pytest
import torch

from tests.gpu.check import MODE_ENV, record, record_imports


@pytest.fixture(scope="session")
def device() -> torch.device:
    if torch.cuda.is_available():
        return torch.device("cuda")
    if os.environ.get(MODE_ENV) == "tiny":
        return torch.device("cpu")
    pytest.skip("needs a CUDA GPU (make gpu-check); `python -m tests.gpu.check --tiny` runs these on CPU")


@pytest.fixture(scope="session")
def tiny(device) -> bool:
    """Tiny sizes: on CPU (the check's CI run), where the kernels run in Triton's interpreter."""
    return device.type != "cuda"


def pytest_runtest_logreport(report) -> None:
    # the call phase, or the setup phase when it skipped or failed (no call phase follows then)
    if report.when == "call" or (report.when == "setup" and report.outcome != "passed"):
        record("tests", "test", test=report.nodeid, outcome=report.outcome, seconds=round(report.duration, 2),
               properties=dict(report.user_properties),
               **({"error": str(report.longrepr)[-1500:]} if report.failed else {}))


def pytest_sessionfinish(session) -> None:
    if session.config.getoption("markexpr", "") == "gpu":
        record_imports("tests")
