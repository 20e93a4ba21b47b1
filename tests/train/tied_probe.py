"""Run as a script (one gloo rank): a frozen tied embedding + a trainable layer through build_engine and
save_checkpoint; prints the saved module keys as JSON."""

from __future__ import annotations

import glob
import json
import os
import sys

import torch
from torch import nn

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))
from train import distributed as tdist  # noqa: E402
from train.engine import EngineConfig, build_engine, deepspeed_config  # noqa: E402


class Tied(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(1000, 16)
        self.head = nn.Linear(16, 1000, bias=False)
        self.head.weight = self.embed.weight  # tied, as in Gemma 3
        self.embed.weight.requires_grad_(False)
        self.adapter = nn.Linear(16, 16)

    def forward(self, x):
        return self.head(self.adapter(self.embed(x))).mean()


if __name__ == "__main__":
    tdist.setup()
    model = Tied()
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    ds = deepspeed_config(EngineConfig(ds_config=sys.argv[2]), micro_batch_size=1, clip_grad_norm=1.0, world_size=1)
    engine = build_engine(model, opt, None, ds)
    engine.backward(engine(torch.tensor([[1, 2, 3]])))
    engine.step()
    engine.save_checkpoint(sys.argv[1], tag="t", exclude_frozen_parameters=True)
    (saved,) = glob.glob(os.path.join(sys.argv[1], "t", "*model_states.pt"))  # ZeRO-3 prefixes zero_pp_rank_0_
    state = torch.load(saved, weights_only=False)
    print(json.dumps(sorted(state["module"])))
    tdist.teardown()
