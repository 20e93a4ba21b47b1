"""The throughput model's per-stage FLOP formulas against torch's FLOP counter on real modules, and its CLI."""

from __future__ import annotations

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode
from transformers import HubertConfig, HubertModel, LlamaConfig, LlamaForCausalLM

from model.projectors import ProjectorConfig, build_projector
from train.throughput import (
    Stack,
    audio_hours_per_gpu_hour,
    conv_flops_per_second,
    flops_per_audio_second,
    main,
    paper_stack,
)


def _counted(fn) -> int:
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


@pytest.fixture(scope="module")
def hubert():
    torch.manual_seed(0)
    return HubertModel(HubertConfig(hidden_size=256, num_hidden_layers=2, num_attention_heads=4,
                                    intermediate_size=1024, conv_dim=(64,) * 7, num_conv_pos_embeddings=16,
                                    num_conv_pos_embedding_groups=4, feat_extract_norm="layer",
                                    do_stable_layer_norm=True, conv_bias=True)).eval()


def test_cnn_front_end_flops(hubert):
    cfg = hubert.config
    audio = torch.randn(1, 16_000)
    counted = _counted(lambda: hubert.feature_extractor(audio))
    assert counted == pytest.approx(conv_flops_per_second(cfg.conv_dim, cfg.conv_kernel, cfg.conv_stride), rel=0.01)


def test_encoder_forward_flops(hubert):
    audio = torch.randn(1, 2 * 16_000)
    with torch.no_grad():
        counted = _counted(lambda: hubert(audio))
        frames = hubert(audio).last_hidden_state.shape[1]
    transformer = sum(p.numel() for n, p in hubert.named_parameters() if "feature_extractor" not in n)
    cfg = hubert.config
    stack = Stack(transformer, conv_flops_per_second(cfg.conv_dim, cfg.conv_kernel, cfg.conv_stride), frames / 2,
                  0, 0, 0)
    # the model leaves attention scores out: 4 * frames * width per layer and frame, ~6 % at this tiny width
    assert counted == pytest.approx(2 * flops_per_audio_second(stack)["encoder"], rel=0.1)


def test_llm_speech_side_is_four_times_the_layer_parameters_per_token():
    """Forward + backward to the inputs only (frozen weights): no weight-gradient matmuls."""
    torch.manual_seed(0)
    llm = LlamaForCausalLM(LlamaConfig(hidden_size=256, intermediate_size=768, num_hidden_layers=2,
                                       num_attention_heads=4, num_key_value_heads=2, vocab_size=100)).eval()
    llm.requires_grad_(False)
    tokens = 2 * 48
    embeds = torch.randn(2, 48, 256, requires_grad=True)

    def step():
        llm.model(inputs_embeds=embeds).last_hidden_state.pow(2).mean().backward()

    layer_params = sum(p.numel() for p in llm.model.layers.parameters())
    stack = Stack(0, 0, 50.0, 0, tokens, layer_params, text_tokens_per_s=tokens)
    f = flops_per_audio_second(stack)
    assert _counted(step) == pytest.approx(f["llm_speech"], rel=0.1)
    with torch.no_grad():
        assert _counted(lambda: llm.model(inputs_embeds=embeds)) == pytest.approx(f["llm_text"], rel=0.1)


def test_projector_is_bounded_by_six_parameters_per_frame():
    projector = build_projector(ProjectorConfig(hidden=64, heads=4, layers=2, ffn=128), 96, 128, 50.0)
    features, mask = torch.randn(2, 100, 96), torch.ones(2, 100, dtype=torch.bool)

    def step():
        out, _ = projector(features, mask)
        out.pow(2).mean().backward()

    params = sum(p.numel() for p in projector.parameters())
    counted = _counted(step)
    assert 2 * params * 2 * 100 / 17 * 4 < counted <= 6 * params * 2 * 100  # > forward over the queries alone


def test_paper_stack_and_rates():
    stack = paper_stack()
    assert stack.projector_params == pytest.approx(42.5e6, rel=0.01)  # the paper's "~42.5 M"
    assert stack.llm_params == pytest.approx(6.98e9, rel=0.01) and stack.speech_tokens_per_s == pytest.approx(200 / 17)
    f = flops_per_audio_second(stack)
    cached = flops_per_audio_second(stack, text_cache=True, encoder_cache=True)
    assert cached["llm_text"] == cached["encoder"] == 0 and f["llm_speech"] > 0.75 * f["total"]
    assert audio_hours_per_gpu_hour(f["total"], 1e15, 0.5) == pytest.approx(5e14 / f["total"])


def test_cli_prints_the_table(capsys):
    assert main(["--mfu", "0.3", "--hours", "400", "--epochs", "5"]) == 0
    out = capsys.readouterr().out
    assert "Q-Former (42.5 M" in out and out.count("| 30% |") == 2 and "400 h x 5 ep" in out
