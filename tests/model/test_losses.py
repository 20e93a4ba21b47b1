"""Alignment losses against naive references: per-pair Python loops with explicit log-softmax, geomloss per pair."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from geomloss import SamplesLoss

from model.loss_functions import (
    NonFiniteLossError,
    answer_labels,
    asr_loss,
    check_finite,
    cosine_similarity_matrix,
    info_nce,
    masked_mean_pool,
    span_mask,
    wasserstein_similarity_matrix,
)
from model.losses import MAX_LOGIT_SCALE, AlignmentObjective, ContrastiveLoss, LossConfig

D = 5


def _batch(b: int, speech_lens: list[int], text_lens: list[int], dtype=torch.float64, seed: int = 0,
           layers=(0,)) -> tuple[dict, torch.Tensor, dict, torch.Tensor]:
    """Padded speech/text states per layer (padding holds garbage, not zeros) with masks; states require grad."""
    g = torch.Generator().manual_seed(seed)
    speech_mask = torch.arange(max(speech_lens) + 1)[None] < torch.tensor(speech_lens)[:, None]
    text_mask = torch.arange(max(text_lens) + 2)[None] < torch.tensor(text_lens)[:, None]
    speech = {l: torch.randn(*speech_mask.shape, D, generator=g, dtype=dtype).requires_grad_() for l in layers}
    text = {l: torch.randn(*text_mask.shape, D, generator=g, dtype=dtype).requires_grad_() for l in layers}
    return speech, speech_mask, text, text_mask


def _naive_info_nce(sim: list[list[torch.Tensor]], tau: float, direction: str) -> torch.Tensor:
    """Explicit log-softmax over a list-of-lists similarity (speech x text), positives on the diagonal."""
    n = len(sim)
    if direction == "sym":
        return 0.5 * (_naive_info_nce(sim, tau, "t2s") + _naive_info_nce(sim, tau, "s2t"))
    total = 0.0
    for q in range(n):
        scores = [sim[c][q] if direction == "t2s" else sim[q][c] for c in range(n)]  # t2s: text q over speeches
        log_norm = torch.log(sum(torch.exp(s / tau) for s in scores))
        total = total - (scores[q] / tau - log_norm)
    return total / n


def _naive_cos(speech, speech_mask, text, text_mask) -> list[list[torch.Tensor]]:
    pooled_s = [speech[i][speech_mask[i]].mean(0) for i in range(len(speech))]
    pooled_t = [text[j][text_mask[j]].mean(0) for j in range(len(text))]
    return [[torch.dot(s, t) / (s.norm() * t.norm()) for t in pooled_t] for s in pooled_s]


def _naive_wasser(speech, speech_mask, text, text_mask, blur: float) -> list[list[torch.Tensor]]:
    loss = SamplesLoss("sinkhorn", p=2, blur=blur, scaling=0.5, debias=True)
    clouds_s = [F.normalize(speech[i][speech_mask[i]], dim=-1) for i in range(len(speech))]
    clouds_t = [F.normalize(text[j][text_mask[j]], dim=-1) for j in range(len(text))]
    return [[-loss(s, t) for t in clouds_t] for s in clouds_s]


def _grads(loss: torch.Tensor, *tensors: torch.Tensor) -> list[torch.Tensor]:
    return list(torch.autograd.grad(loss, tensors))


# -------------------------------------------------------------------------------------------------- cosine
@pytest.mark.parametrize("direction", ["t2s", "s2t", "sym"])
def test_cosine_info_nce_matches_naive_loop(direction):
    speech, sm, text, tm = _batch(4, [3, 5, 1, 4], [2, 4, 3, 1])
    s, t = speech[0], text[0]
    ref = _naive_info_nce(_naive_cos(s, sm, t, tm), 0.1, direction)
    fast = info_nce(cosine_similarity_matrix(s, sm, t, tm), 0.1, direction)
    module, _ = ContrastiveLoss(LossConfig(objective="cos", direction=direction))(speech, sm, text, tm)
    torch.testing.assert_close(fast, ref, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(module, ref, rtol=1e-10, atol=1e-10)
    for got, want in zip(_grads(module, s, t), _grads(ref, s, t)):
        torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-12)


def test_masked_mean_pool_ignores_padding_even_nan():
    h = torch.randn(2, 4, 3, dtype=torch.float64)
    mask = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 1]], dtype=torch.bool)
    h[0, 2:] = float("nan")  # padded LLM states can be NaN (fully masked attention rows)
    h.requires_grad_()
    pooled = masked_mean_pool(h, mask)
    torch.testing.assert_close(pooled[0], h[0, :2].mean(0))
    pooled.sum().backward()
    assert torch.isfinite(h.grad).all() and not h.grad[0, 2:].any()


def test_info_nce_offset_selects_shifted_positives():
    sim = torch.randn(5, 2, dtype=torch.float64)  # 5 speeches x 2 local texts at rows 3, 4
    want = F.cross_entropy(sim.T / 0.1, torch.tensor([3, 4]))
    torch.testing.assert_close(info_nce(sim, 0.1, "t2s", offset=3), want)
    with pytest.raises(ValueError):
        info_nce(sim, 0.1, "t2s", offset=4)
    with pytest.raises(ValueError):
        info_nce(sim, 0.1, "sym")


# ------------------------------------------------------------------------------------------------ Sinkhorn
@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-5), (torch.float32, 1e-4)], ids=["f64", "f32"])
@pytest.mark.parametrize("blur", [0.05, 0.5])
@pytest.mark.parametrize("direction", ["t2s", "sym"])
def test_wasserstein_info_nce_matches_geomloss_per_pair(dtype, tol, blur, direction):
    speech, sm, text, tm = _batch(3, [4, 2, 5], [3, 1, 4], dtype=dtype, seed=1)
    s, t = speech[0], text[0]
    naive_sim = _naive_wasser(s, sm, t, tm, blur)
    fast_sim = wasserstein_similarity_matrix(s, sm, t, tm, blur=blur, scaling=0.5)
    torch.testing.assert_close(fast_sim, torch.stack([torch.stack(r) for r in naive_sim]), rtol=tol, atol=tol)
    ref = _naive_info_nce(naive_sim, 0.1, direction)
    cfg = LossConfig(objective="wasser", direction=direction, blur=blur)
    module, _ = ContrastiveLoss(cfg)(speech, sm, text, tm)
    torch.testing.assert_close(module, ref.to(module.dtype), rtol=tol, atol=tol)
    for got, want in zip(_grads(module, s, t), _grads(ref, s, t)):
        scale = want.abs().max()
        torch.testing.assert_close(got / scale, (want / scale).to(got.dtype), rtol=tol, atol=tol)


def test_wasserstein_ignores_nan_padding():
    speech, sm, text, tm = _batch(3, [3, 2, 4], [2, 3, 1], seed=2)
    clean, _ = ContrastiveLoss(LossConfig(objective="wasser"))(speech, sm, text, tm)
    with torch.no_grad():
        speech[0][~sm] = float("nan")
        text[0][~tm] = float("inf")
    dirty, _ = ContrastiveLoss(LossConfig(objective="wasser"))(speech, sm, text, tm)
    torch.testing.assert_close(dirty, clean)
    dirty.backward()
    assert torch.isfinite(speech[0].grad).all() and not speech[0].grad[~sm].any()


# ---------------------------------------------------------------------------------------- layers, temperature
def test_layers_are_summed_with_weights():
    speech, sm, text, tm = _batch(3, [3, 2, 4], [2, 3, 1], layers=(0, 5, 10))
    cfg = LossConfig(objective="cos", direction="sym", layer_weights={0: 0.5, 5: 2.0})  # layer 10: default 1.0
    total, metrics = ContrastiveLoss(cfg)(speech, sm, text, tm)
    per = {l: info_nce(cosine_similarity_matrix(speech[l], sm, text[l], tm), 0.1, "sym") for l in (0, 5, 10)}
    torch.testing.assert_close(total, 0.5 * per[0] + 2.0 * per[5] + per[10])
    assert sorted(metrics) == ["cos/layer_0", "cos/layer_10", "cos/layer_5"]
    torch.testing.assert_close(metrics["cos/layer_5"], per[5].detach())
    # A zero weight skips the layer; a weight for a layer the model does not return is a config error.
    total, metrics = ContrastiveLoss(LossConfig(layer_weights={5: 0.0}))(speech, sm, text, tm)
    assert "cos/layer_5" not in metrics
    torch.testing.assert_close(total, info_nce(cosine_similarity_matrix(speech[0], sm, text[0], tm), 0.1)
                               + info_nce(cosine_similarity_matrix(speech[10], sm, text[10], tm), 0.1))
    with pytest.raises(ValueError, match="layers \\[7\\]"):
        ContrastiveLoss(LossConfig(layer_weights={7: 1.0}))(speech, sm, text, tm)


def test_learned_temperature_gets_gradient_and_is_clamped():
    speech, sm, text, tm = _batch(4, [3, 5, 1, 4], [2, 4, 3, 1])
    loss_fn = ContrastiveLoss(LossConfig(learn_temperature=True, temperature=0.1)).double()
    total, _ = loss_fn(speech, sm, text, tm)
    total.backward()
    theta = loss_fn.log_logit_scale
    assert theta.grad is not None and theta.grad != 0
    # d loss / d log(1/tau) by central differences at fixed temperatures
    sim = cosine_similarity_matrix(speech[0], sm, text[0], tm).detach()
    h = 1e-6
    numeric = (info_nce(sim, math.exp(-(theta.item() + h))) - info_nce(sim, math.exp(-(theta.item() - h)))) / (2 * h)
    torch.testing.assert_close(theta.grad[0], numeric, rtol=1e-5, atol=1e-8)
    with torch.no_grad():
        theta.fill_(math.log(1000.0))  # past the CLIP bound: clamped in place to scale 100
    torch.testing.assert_close(loss_fn.temperature(), torch.tensor(1 / MAX_LOGIT_SCALE, dtype=torch.float64))
    assert theta.item() == pytest.approx(math.log(MAX_LOGIT_SCALE))
    total, _ = loss_fn(speech, sm, text, tm)
    torch.testing.assert_close(total, info_nce(cosine_similarity_matrix(speech[0], sm, text[0], tm), 0.01))
    with torch.no_grad():
        theta.fill_(-3.0)  # temperature above 1: clamped to 1
    assert loss_fn.temperature().item() == pytest.approx(1.0)


# ----------------------------------------------------------------------------------------------------- ASR
def test_asr_loss_equals_hand_shifted_cross_entropy():
    g = torch.Generator().manual_seed(3)
    logits = torch.randn(2, 6, 11, generator=g, dtype=torch.float64, requires_grad=True)
    ids = torch.randint(0, 11, (2, 6), generator=g)
    answer = span_mask(torch.tensor([3, 2]), torch.tensor([6, 5]), 6)  # [prompt | speech] answer [pad]
    assert answer.tolist() == [[False] * 3 + [True] * 3, [False] * 2 + [True] * 3 + [False]]
    labels = answer_labels(ids, answer)
    terms = [F.cross_entropy(logits[b, t - 1][None], ids[b, t][None]) for b in range(2) for t in range(1, 6)
             if answer[b, t]]
    ref = torch.stack(terms).mean()
    got = asr_loss(logits, labels)
    torch.testing.assert_close(got, ref)
    got.backward()
    # Positions whose next token is not an answer token get no gradient (non-answer tokens are ignored).
    predicts_answer = torch.zeros(2, 6, dtype=torch.bool)
    predicts_answer[:, :-1] = answer[:, 1:]
    assert not logits.grad[~predicts_answer].any() and logits.grad[predicts_answer].abs().sum(-1).all()


def test_asr_loss_on_gathered_answer_positions_equals_full_logits():
    """[M, V] logits at the positions that predict a target (SpeechLLM.answer_logits) give the same loss."""
    g = torch.Generator().manual_seed(3)
    logits = torch.randn(2, 6, 11, generator=g)
    labels = torch.full((2, 6), -100)
    labels[0, 3:5], labels[1, 2:6] = torch.tensor([4, 7]), torch.tensor([1, 2, 3, 9])
    keep = labels[:, 1:] != -100
    gathered = asr_loss(logits[:, :-1][keep], labels[:, 1:][keep])
    torch.testing.assert_close(gathered, asr_loss(logits, labels))
    with pytest.raises(ValueError, match="targets"):
        asr_loss(logits[:, :-1][keep], labels)


def test_asr_loss_without_targets_is_zero_and_attached():
    logits = torch.randn(1, 4, 7, requires_grad=True)
    loss = asr_loss(logits, torch.full((1, 4), -100))
    assert loss.item() == 0.0 and loss.requires_grad


def test_objective_weights_and_metrics():
    speech, sm, text, tm = _batch(3, [3, 2, 4], [2, 3, 1], layers=(0, 5))
    logits = torch.randn(3, 5, 9, dtype=torch.float64)
    labels = answer_labels(torch.randint(0, 9, (3, 5)), span_mask(torch.tensor([2, 1, 3]), torch.tensor([5, 4, 5]), 5))
    cfg = LossConfig(objective="wasser+asr", contrastive_weight=0.1, asr_weight=1.0, learn_temperature=True)
    objective = AlignmentObjective(cfg).double()
    total, metrics = objective(speech, sm, text, tm, logits=logits, labels=labels)
    contrastive, _ = ContrastiveLoss(cfg).double()(speech, sm, text, tm)
    torch.testing.assert_close(total, 0.1 * contrastive + asr_loss(logits, labels))
    assert {"wasser/layer_0", "wasser/layer_5", "loss/contrastive", "loss/asr", "loss/total",
            "contrastive/temperature"} <= set(metrics)
    torch.testing.assert_close(metrics["loss/contrastive"], contrastive.detach())
    total.backward()  # the temperature metric must not disturb the graph
    assert objective.contrastive.log_logit_scale.grad is not None
    only_asr, metrics = AlignmentObjective(LossConfig(objective="asr", asr_weight=2.0))(logits=logits, labels=labels)
    torch.testing.assert_close(only_asr, 2.0 * asr_loss(logits, labels))
    assert sorted(metrics) == ["loss/asr", "loss/total"]
    with pytest.raises(ValueError, match="needs logits"):
        AlignmentObjective(cfg)(speech, sm, text, tm)


# -------------------------------------------------------------------------------------------- non-finite guard
@pytest.mark.parametrize("kind", ["cos", "wasser"])
def test_nan_states_raise_with_layer_and_keys(kind):
    speech, sm, text, tm = _batch(3, [3, 2, 4], [2, 3, 1], layers=(0, 10))
    with torch.no_grad():
        speech[10][1, 0, 0] = float("nan")  # a valid position of sample "utt-b"
    keys = ["utt-a", "utt-b", "utt-c"]
    with pytest.raises(NonFiniteLossError, match="layer 10") as err:
        ContrastiveLoss(LossConfig(objective=kind))(speech, sm, text, tm, keys=keys)
    assert err.value.layer == 10 and err.value.what == kind
    assert "utt-a" in str(err.value) and "speech states of ['utt-b']" in str(err.value)
    total, metrics = ContrastiveLoss(LossConfig(objective=kind, nonfinite="skip"))(speech, sm, text, tm, keys=keys)
    assert total is None and math.isnan(metrics[f"{kind}/layer_10"]) and math.isfinite(metrics[f"{kind}/layer_0"])
    total, metrics = AlignmentObjective(LossConfig(objective=kind, nonfinite="skip"))(speech, sm, text, tm, keys=keys)
    assert total is None and metrics["nonfinite/contrastive"] == 1


def test_check_finite_and_asr_guard():
    with pytest.raises(NonFiniteLossError, match=r"asr loss \(inf\); batch keys: k0, k1, k2, k3 \(\+2 more\)"):
        check_finite(torch.tensor(float("inf")), "asr", keys=[f"k{i}" for i in range(6)])
    assert check_finite(torch.tensor(float("nan")), "asr", mode="skip") is None
    logits = torch.full((1, 3, 4), float("nan"))
    labels = torch.tensor([[-100, 1, 2]])
    with pytest.raises(NonFiniteLossError, match="asr"):
        AlignmentObjective(LossConfig(objective="asr"))(logits=logits, labels=labels, keys=["x"])


def test_empty_sample_is_rejected():
    speech, sm, text, tm = _batch(2, [3, 2], [2, 1])
    tm[1] = False
    with pytest.raises(ValueError, match="text samples without valid positions: \\['b'\\]"):
        ContrastiveLoss(LossConfig())(speech, sm, text, tm, keys=["a", "b"])


# ------------------------------------------------------------------------------------------------- config
@pytest.mark.parametrize("bad", [dict(temperature=0), dict(objective="l2"), dict(direction="both"),
                                 dict(scaling=1.0), dict(blur=0), dict(layer_weights={0: -1.0}),
                                 dict(learn_temperature=True, temperature=0.001), dict(asr_weight=float("nan"))])
def test_config_validation(bad):
    with pytest.raises(ValueError):
        LossConfig(**bad)


def test_config_from_yaml_style_mapping():
    from train.config import from_dict

    cfg = from_dict(LossConfig, {"objective": "cos+asr", "layer_weights": {"5": 2}, "contrastive_weight": 0.1})
    assert cfg.layer_weights == {5: 2.0} and cfg.contrastive_kind == "cos" and cfg.uses_asr
    assert LossConfig(objective="asr").contrastive_kind is None
