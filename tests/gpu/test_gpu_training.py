"""Training on a GPU: a bf16 pretraining step, SDPA's flash kernel in the LLM forward, and a one-rank NCCL engine.

Why each: the CPU suite trains in float32 with gloo, so three things are only ever exercised on a GPU -
(1) the whole training module in bfloat16 with the loss's Triton kernels picked by ``loss.kernels=auto``;
(2) that the LLM forward the speech side runs (HF Llama with SDPA, unpadded, as `model.llm.llm_hidden_states`
calls it) really gets the flash kernel when only flash is allowed (SDPA raises when it cannot, and the profiler
must show a flash kernel), and equals the math kernel, values and input gradients;
(3) DeepSpeed over NCCL: `train.distributed.setup` (world of one), `train.engine.build_engine` (ZeRO-2, bf16 from
the bundled JSON), a step, a checkpoint through `train.checkpoint.Checkpointer` and its load into a fresh engine.
In the check's tiny CPU run the same code runs with gloo and fp32 (the engine's CPU precision) at tiny sizes.
"""

from __future__ import annotations

import math

import pytest
import torch

from tests.gpu.stack import TINY, build_module, synthetic_batch

pytestmark = pytest.mark.gpu


def _to(batch: dict, device: torch.device) -> dict:
    return {k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()}


@pytest.mark.parametrize("objective", ["cos", "wasser"])
def test_bf16_pretraining_step_is_finite(device, record_property, objective):
    """Encoder, Q-Former, LLM over speech and transcript, InfoNCE (kernels: auto) and backward, all in bf16."""
    module = build_module(TINY, device, torch.bfloat16, objective=objective).train()
    loss, metrics = module(_to(synthetic_batch(TINY, module, seed=1), device))
    loss.backward()
    grads = {n: p.grad for n, p in module.named_parameters() if p.requires_grad}
    record_property("loss", round(float(loss), 4))
    assert torch.isfinite(loss), metrics
    assert all(g is not None and torch.isfinite(g).all() for g in grads.values())
    assert sum(float(g.float().abs().sum()) for g in grads.values()) > 0
    assert all(p.dtype == torch.bfloat16 for p in module.speech_llm.llm.parameters())


def test_llm_forward_selects_flash_attention_and_matches_math(device, tiny, record_property):
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from transformers import AutoModelForCausalLM, LlamaConfig

    from model.llm import llm_hidden_states

    # Llama-3.1-8B's head shape (head_dim 128, 4 query heads per key/value head), two layers
    hidden, heads, seq = (64, 4, 16) if tiny else (1024, 8, 512)
    cfg = LlamaConfig(hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=2, num_attention_heads=heads,
                      num_key_value_heads=heads // 4 or 1, vocab_size=128)
    torch.manual_seed(0)
    with torch.device(device):
        llm = AutoModelForCausalLM.from_config(cfg, dtype=torch.bfloat16, attn_implementation="sdpa").eval()
    assert llm.config._attn_implementation == "sdpa"
    embeds = torch.randn(2, seq, hidden, device=device, dtype=torch.bfloat16)
    out, kernels = {}, {}
    for backend in (SDPBackend.FLASH_ATTENTION, SDPBackend.MATH):
        x = embeds.clone().requires_grad_()
        with sdpa_kernel([backend]), torch.profiler.profile() as prof:  # flash only: SDPA raises if it cannot
            states = llm_hidden_states(llm, x, None, [1, 2])
            (states[2].float() * torch.linspace(-1, 1, hidden, device=device)).sum().backward()
        kernels[backend] = sorted({e.key for e in prof.key_averages() if "attention" in e.key.lower()
                                   or "flash" in e.key.lower()})
        out[backend] = (states[2].detach().float(), x.grad.float())
    flash, reference = out[SDPBackend.FLASH_ATTENTION], out[SDPBackend.MATH]
    errs = [((a - b).abs().max() / b.abs().max()).item() for a, b in zip(flash, reference)]
    flash_names = [k for k in kernels[SDPBackend.FLASH_ATTENTION] if "flash" in k.lower() and "::" in k]
    record_property("flash_kernels", "; ".join(k[:70] for k in flash_names[:3]))
    record_property("rel_err_states_grads", " / ".join(f"{e:.1e}" for e in errs))
    assert any("flash" in k.lower() for k in kernels[SDPBackend.FLASH_ATTENTION]), kernels
    assert not any("flash" in k.lower() for k in kernels[SDPBackend.MATH]), kernels
    assert max(errs) < 3e-2, errs  # bf16 rounding of two different summation orders


@pytest.fixture
def process_group(device):
    """A world of one over NCCL (gloo on CPU) via the trainer's own setup; torn down after the test."""
    from train import distributed as tdist

    env = tdist.setup(timeout_minutes=2)
    yield env
    tdist.teardown()


def test_deepspeed_engine_steps_and_checkpoint_round_trips(device, tmp_path, record_property, process_group):
    import torch.distributed as dist

    from train.checkpoint import CheckpointConfig, Checkpointer
    from train.engine import EngineConfig, build_engine, deepspeed_config
    from train.optim import OptimConfig, build_optimizer, build_scheduler

    assert dist.get_backend() == ("nccl" if device.type == "cuda" else "gloo")
    ds = deepspeed_config(EngineConfig(ds_config="zero2"), TINY.batch, clip_grad_norm=1.0, world_size=1)
    dtype = torch.bfloat16 if ds["bf16"]["enabled"] else torch.float32

    def engine_for(perturb: bool):
        module = build_module(TINY, device, dtype)  # same seed: the frozen weights, which no checkpoint holds
        if perturb:  # other projector weights: the load must replace them
            with torch.no_grad():
                for p in module.trainable_parameters():
                    p.mul_(0.5).add_(0.01)
        optimizer = build_optimizer(module.trainable_parameters(), OptimConfig(lr=1e-3, warmup_steps=0))
        return build_engine(module, optimizer, build_scheduler(optimizer, OptimConfig(lr=1e-3, warmup_steps=0), 10),
                            ds), module

    def step(engine, batch) -> float:
        loss, _ = engine(batch)
        engine.backward(loss)
        engine.step()
        return float(loss.detach())

    engine, module = engine_for(perturb=False)
    engine.train()
    batches = [_to(synthetic_batch(TINY, module, seed=s), device) for s in (1, 2)]
    first = step(engine, batches[0])
    checkpointer = Checkpointer(tmp_path / "run", CheckpointConfig(every_steps=1, keep_last=1))
    path = checkpointer.save(engine, module, step=1, shared={"step": 1}, local={"rank": 0}, projector_meta={})
    saved = {n: p.detach().clone() for n, p in module.named_parameters() if p.requires_grad}
    second = step(engine, batches[1])

    fresh, fresh_module = engine_for(perturb=True)
    fresh.train()
    shared, local = checkpointer.load(fresh, path)
    for n, p in fresh_module.named_parameters():
        if p.requires_grad:
            torch.testing.assert_close(p.detach(), saved[n], rtol=0, atol=0)
    resumed = step(fresh, batches[1])
    size = sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
    record_property("backend", dist.get_backend())
    record_property("precision", str(dtype).removeprefix("torch."))
    record_property("losses", f"{first:.4f}, {second:.4f}, resumed {resumed:.4f}")
    record_property("checkpoint_mb", round(size / 1e6, 2))
    assert (shared["step"], local) == (1, {"rank": 0})
    assert all(map(math.isfinite, (first, second, resumed)))
    assert resumed == pytest.approx(second, rel=1e-3, abs=1e-3)  # same weights, optimizer state and batch
