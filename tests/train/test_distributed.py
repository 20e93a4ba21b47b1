"""Tests for train/distributed.py: rank/world discovery from torchrun, Slurm and plain-python environments (the
Slurm master host with and without scontrol), and the collective helpers with and without a 2-process gloo group."""

from __future__ import annotations

import json
import socket
import stat
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from train import distributed as tdist
from train.distributed import DistEnv, discover

WORLD = 2


def _can_bind(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


# -------------------------------------------------------------------------------------------------------- discover

def test_torchrun_env():
    env = {"RANK": "5", "LOCAL_RANK": "1", "WORLD_SIZE": "8", "MASTER_ADDR": "10.1.2.3", "MASTER_PORT": "29611",
           "SLURM_PROCID": "0", "SLURM_NTASKS": "4"}  # a launcher inside a Slurm job: its variables win
    d = discover(env)
    assert d == DistEnv(5, 1, 8, "10.1.2.3", 29611, "torchrun")
    assert not d.is_main and DistEnv(0, 0, 8, "h", 1, "torchrun").is_main


def test_torchrun_env_defaults():
    assert discover({"RANK": "0", "WORLD_SIZE": "1"}) == DistEnv(0, 0, 1, "127.0.0.1", 29500, "torchrun")


def _slurm(**extra) -> dict[str, str]:
    return {"SLURM_PROCID": "6", "SLURM_LOCALID": "2", "SLURM_NTASKS": "8", "SLURM_JOB_ID": "123456", **extra}


def test_slurm_env_with_master_addr():
    d = discover(_slurm(MASTER_ADDR="gpu-node-17", MASTER_PORT="31000", SLURM_JOB_NODELIST="gpu-node-[17-18]"))
    assert d == DistEnv(6, 2, 8, "gpu-node-17", 31000, "slurm")


def test_slurm_port_derived_from_job_id():
    d = discover(_slurm(MASTER_ADDR="n1"))
    assert d.master_port == 20000 + 123456 % 20000  # every task of the job computes the same port
    assert 20000 <= discover(_slurm(MASTER_ADDR="n1", SLURM_JOB_ID="39999")).master_port < 40000


@pytest.fixture
def no_scontrol(monkeypatch, tmp_path):
    empty = tmp_path / "empty_bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))


@pytest.mark.parametrize(("nodelist", "host"), [
    ("node[01-04]", "node01"),
    ("node[01-04,07],gpu5", "node01"),
    ("gpu-a[3,5]", "gpu-a3"),
    ("node[01-02]-ib", "node01-ib"),
    ("n7,n8", "n7"),
    ("solo", "solo"),
])
def test_slurm_master_from_nodelist_without_scontrol(no_scontrol, nodelist, host):
    d = discover(_slurm(SLURM_JOB_NODELIST=nodelist))
    assert (d.master_addr, d.rank, d.world_size, d.launcher) == (host, 6, 8, "slurm")


def test_slurm_nodelist_fallback_variable(no_scontrol):
    assert discover(_slurm(SLURM_NODELIST="cn[100-101]")).master_addr == "cn100"


def test_slurm_without_nodelist_is_localhost(no_scontrol):
    assert discover(_slurm()).master_addr == "127.0.0.1"


def test_slurm_master_from_scontrol(monkeypatch, tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    scontrol = bin_dir / "scontrol"
    scontrol.write_text('#!/bin/sh\n[ "$1 $2 $3" = "show hostnames node[01-04]" ] || exit 1\n'
                        'printf "node01\\nnode02\\nnode03\\nnode04\\n"\n')
    scontrol.chmod(scontrol.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", str(bin_dir))
    assert discover(_slurm(SLURM_JOB_NODELIST="node[01-04]")).master_addr == "node01"


def test_single_process_fallback():
    for env in ({}, {"SLURM_PROCID": "0", "SLURM_NTASKS": "1"}, {"RANK": "0"}):  # one Slurm task = no world
        d = discover(env)
        assert (d.rank, d.local_rank, d.world_size, d.master_addr, d.launcher) == (0, 0, 1, "127.0.0.1", "single")
        assert d.is_main and 0 < d.master_port < 65536 and _can_bind(d.master_port)
    assert discover({"MASTER_PORT": "29777"}).master_port == 29777


def test_discover_reads_os_environ_by_default(monkeypatch):
    monkeypatch.delenv("LOCAL_RANK", raising=False)
    monkeypatch.delenv("MASTER_ADDR", raising=False)
    monkeypatch.setenv("RANK", "3")
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("MASTER_PORT", "29123")
    assert discover() == DistEnv(3, 0, 4, "127.0.0.1", 29123, "torchrun")


# ----------------------------------------------------------------------------------------------- collective helpers

def test_helpers_are_identities_without_a_process_group():
    assert not dist.is_initialized()
    tdist.barrier()
    obj = {"rank": 0, "state": [1, 2]}
    assert tdist.all_gather_object(obj) == [obj]
    assert tdist.broadcast_object(obj) is obj and tdist.broadcast_object(obj, src=0) is obj
    assert tdist.all_reduce_max(2.5) == 2.5
    t = torch.tensor([1.0, 2.0])
    assert tdist.all_reduce_sum(t) is t
    assert tdist.is_main()
    tdist.teardown()  # no-op without a group


def _worker(rank: int, port: int, out_dir: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=WORLD)
    try:
        tdist.barrier()
        result = {
            "gathered": tdist.all_gather_object({"rank": rank, "pos": [rank, 10 * rank]}),
            "from_0": tdist.broadcast_object(f"hello from {rank}"),
            "from_1": tdist.broadcast_object({"rank": rank}, src=1),
            "max": tdist.all_reduce_max(3.0 - rank * 5.5),
            "sum": tdist.all_reduce_sum(torch.tensor([1.0, rank], dtype=torch.float64)).tolist(),
            "is_main": tdist.is_main(),
        }
        local = torch.tensor([float(rank)])
        tdist.all_reduce_sum(local)
        result["input_untouched"] = local.item() == float(rank)  # the helper reduces a copy
        Path(out_dir, f"rank{rank}.json").write_text(json.dumps(result))
    finally:
        dist.destroy_process_group()


@pytest.mark.distributed
def test_helpers_across_two_gloo_processes(tmp_path):
    port = tdist._free_port()
    mp.spawn(_worker, args=(port, str(tmp_path)), nprocs=WORLD, join=True)
    results = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(WORLD)]
    for rank, res in enumerate(results):
        assert res["gathered"] == [{"rank": 0, "pos": [0, 0]}, {"rank": 1, "pos": [1, 10]}]
        assert res["from_0"] == "hello from 0"
        assert res["from_1"] == {"rank": 1}
        assert res["max"] == 3.0
        assert res["sum"] == [2.0, 1.0]
        assert res["is_main"] is (rank == 0)
        assert res["input_untouched"]
