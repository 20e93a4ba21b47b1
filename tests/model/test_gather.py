"""Gathered negatives across 2 gloo processes reproduce the single-process loss and gradients (float64, tol 1e-6).

Each rank holds a slice of one global batch, padded to its own length (the ranks' padded lengths differ, and in the
"uneven" split so do their batch sizes). The reference is one process holding the whole batch, no process group.

The scaling rule being checked (see model/losses.py): the gather's backward sums every rank's gradient of a shard,
so a rank's gradient w.r.t. its own inputs is ``world_size`` x the single-process gradient, and dividing by the
world size -- the gradient averaging DDP and DeepSpeed do -- gives the single-process gradient exactly, for both
``local_loss=False`` (every rank's loss is the global loss) and ``local_loss=True`` (the ranks' losses average to
the global loss). Replicated parameters (the learned temperature) are not gathered: the mean over ranks of their
gradients equals the single-process gradient.
"""

from __future__ import annotations

import math
import os

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from model.distributed import gather_with_grad, rank_and_world
from model.losses import ContrastiveLoss, LossConfig

pytestmark = pytest.mark.distributed

WORLD = 2
LAYERS = (0, 3)
LAYER_WEIGHTS = {0: 0.5}  # layer 3 keeps the default 1.0
SPLITS = {"even": (2, 2), "uneven": (3, 1)}
CASES = [  # (kind, direction, local_loss, split)
    *[("cos", d, local, "even") for d in ("t2s", "s2t", "sym") for local in (False, True)],
    *[("wasser", d, local, "even") for d in ("t2s", "sym") for local in (False, True)],
    ("cos", "sym", True, "uneven"), ("cos", "t2s", False, "uneven"), ("wasser", "t2s", True, "uneven"),
]


def _global_batch(n: int) -> dict:
    """Per-sample unpadded states (same on every rank: a fixed seed), speech and text of varying lengths."""
    g = torch.Generator().manual_seed(1234)
    speech_len = torch.randint(2, 7, (n,), generator=g).tolist()
    text_len = torch.randint(1, 5, (n,), generator=g).tolist()
    return {l: ([torch.randn(s, 6, generator=g, dtype=torch.float64) for s in speech_len],
                [torch.randn(t, 6, generator=g, dtype=torch.float64) for t in text_len]) for l in LAYERS}


def _pad(seqs: list[torch.Tensor], extra: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pads to the longest sequence plus ``extra`` positions (garbage values, masked out)."""
    length = max(len(s) for s in seqs) + extra
    out = torch.full((len(seqs), length, seqs[0].shape[1]), 7.0, dtype=torch.float64)
    mask = torch.zeros(len(seqs), length, dtype=torch.bool)
    for i, s in enumerate(seqs):
        out[i, : len(s)], mask[i, : len(s)] = s, True
    return out, mask


def _run(case: tuple, rows: range, extra: int) -> dict:
    """Forward + backward of the contrastive loss on the samples ``rows``; returns loss and gradients."""
    kind, direction, local, split = case
    data = _global_batch(sum(SPLITS[split]))
    speech, text, speech_mask, text_mask = {}, {}, None, None
    for l in LAYERS:
        speech[l], speech_mask = _pad([data[l][0][i] for i in rows], extra)
        text[l], text_mask = _pad([data[l][1][i] for i in rows], extra + 1)
        speech[l].requires_grad_(True)
        text[l].requires_grad_(True)
    cfg = LossConfig(objective=kind, direction=direction, local_loss=local, learn_temperature=True,
                     temperature=0.2, layer_weights=LAYER_WEIGHTS)
    loss_fn = ContrastiveLoss(cfg).double()
    total, _ = loss_fn(speech, speech_mask, text, text_mask)
    total.backward()
    return {"loss": total.detach(), "temp_grad": loss_fn.log_logit_scale.grad.clone(),
            "speech_grad": {l: speech[l].grad for l in LAYERS}, "text_grad": {l: text[l].grad for l in LAYERS}}


def _check_gather(rank: int) -> dict:
    """gather_with_grad on shapes that differ in every dimension: values, zero padding, mask and summed gradients."""
    b, length = (2, 3) if rank == 0 else (1, 5)
    x = torch.full((b, length), float(rank + 1), dtype=torch.float64, requires_grad=True)
    mask = torch.ones(b, length, dtype=torch.bool)
    gathered, gathered_mask = gather_with_grad(x), gather_with_grad(mask)
    sizes = gather_with_grad(torch.tensor([b]))
    weights = torch.arange(gathered.numel(), dtype=torch.float64).reshape(gathered.shape)
    (gathered * weights).sum().backward()  # identical on both ranks: x.grad = WORLD * weights[my rows]
    return {"gathered": gathered.detach(), "mask": gathered_mask, "sizes": sizes, "grad": x.grad,
            "weights": weights, "rank_world": rank_and_world()}


def _worker(rank: int, init_file: str, out_dir: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD)
    try:
        results = {"gather": _check_gather(rank)}
        for case in CASES:
            sizes = SPLITS[case[3]]
            start = sum(sizes[:rank])
            # Rank 1 pads further than it needs, so the ranks' padded lengths differ even for equal content.
            results[case] = _run(case, range(start, start + sizes[rank]), extra=2 * rank)
        torch.save(results, os.path.join(out_dir, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def ranks(tmp_path_factory) -> list[dict]:
    """Runs every case once in 2 gloo processes (process start-up dominates the cost); per-rank results."""
    tmp = tmp_path_factory.mktemp("gather")
    mp.spawn(_worker, args=(str(tmp / "init"), str(tmp)), nprocs=WORLD, join=True)
    return [torch.load(tmp / f"rank{r}.pt", weights_only=False) for r in range(WORLD)]


def test_gather_with_grad_pads_and_sums_gradients(ranks):
    for rank, res in enumerate(r["gather"] for r in ranks):
        assert res["rank_world"] == (rank, WORLD)
        assert res["sizes"].tolist() == [2, 1]
        expected = torch.zeros(3, 5, dtype=torch.float64)
        expected[:2, :3], expected[2] = 1.0, 2.0  # rank 0's [2, 3] zero-padded to length 5, then rank 1's [1, 5]
        torch.testing.assert_close(res["gathered"], expected)
        assert res["mask"].tolist() == (expected != 0).tolist()
        rows, cols = (slice(0, 2), slice(0, 3)) if rank == 0 else (slice(2, 3), slice(0, 5))
        torch.testing.assert_close(res["grad"], WORLD * res["weights"][rows, cols])


def test_no_process_group_is_identity():
    assert rank_and_world() == (0, 1)
    x = torch.randn(3, 2)
    assert gather_with_grad(x) is x


@pytest.mark.parametrize("case", CASES, ids=lambda c: "-".join(map(str, c)))
def test_gathered_loss_matches_single_process(ranks, case):
    kind, direction, local, split = case
    sizes = SPLITS[split]
    ref = _run(case, range(sum(sizes)), extra=0)
    losses = torch.stack([r[case]["loss"] for r in ranks])
    if local:  # each rank's share; their mean is the global loss
        torch.testing.assert_close(losses.mean(), ref["loss"], rtol=1e-6, atol=1e-6)
    else:  # every rank computes the full global loss
        for loss in losses:
            torch.testing.assert_close(loss, ref["loss"], rtol=1e-6, atol=1e-6)
    # Replicated parameter: DDP's average of the ranks' gradients is the single-process gradient.
    temp_grads = torch.cat([r[case]["temp_grad"] for r in ranks])
    torch.testing.assert_close(temp_grads.mean(), ref["temp_grad"][0], rtol=1e-6, atol=1e-6)
    # Gathered inputs: a rank's gradient is WORLD x the single-process gradient of its rows (DDP divides by WORLD).
    for rank, res in enumerate(ranks):
        rows = slice(sum(sizes[:rank]), sum(sizes[: rank + 1]))
        for side in ("speech_grad", "text_grad"):
            for l in LAYERS:
                got, want = res[case][side][l] / WORLD, ref[side][l][rows]
                n = min(got.shape[1], want.shape[1])
                torch.testing.assert_close(got[:, :n], want[:, :n], rtol=1e-6, atol=1e-9)
                assert not got[:, n:].any() and not want[:, n:].any()  # padding gets no gradient
                assert math.isfinite(float(got.abs().sum()))
