"""train.launch: the exit status the batch scripts act on and the line that names a dead rank."""

from __future__ import annotations

from types import SimpleNamespace

from train.launch import EXIT_PREEMPTED, describe, exit_status


def _failure(code: int) -> SimpleNamespace:
    return SimpleNamespace(exitcode=code, local_rank=0)


def test_all_preempted_workers_give_75_all_expected_errors_2_anything_else_1():
    assert exit_status({0: _failure(75), 1: _failure(75)}) == EXIT_PREEMPTED == 75
    assert exit_status({0: _failure(2), 1: _failure(2)}) == 2  # rank 0 named the expected error (core.errors)
    assert exit_status({0: _failure(75), 1: _failure(-9)}) == 1
    # torchrun SIGTERMs the remaining workers once one has ended: the rank that exited on its own is the cause
    assert exit_status({0: _failure(-15), 1: _failure(2)}) == 2
    assert exit_status({0: _failure(75), 1: _failure(-15)}) == EXIT_PREEMPTED
    assert exit_status({0: _failure(-15), 1: _failure(-15)}) == 1
    assert exit_status({0: _failure(2), 1: _failure(-15), 2: _failure(1)}) == 1
    assert exit_status({3: _failure(1)}) == 1


def test_the_dead_rank_is_named_with_its_node_and_signal():
    assert describe(5, 1, -9, "gpu-node-17") == "train.launch: rank 5 (local rank 1 on gpu-node-17) was killed by " \
                                                "signal 9 (SIGKILL)"
    assert describe(0, 0, 3, "n1") == "train.launch: rank 0 (local rank 0 on n1) exited with code 3"
