"""Retrieval metrics on hand-made similarity matrices (exact ranks, pessimistic ties), random embeddings (chance level,
seeded and statistical), bf16 inputs, and the input checks of retrieval_metrics."""

from __future__ import annotations

import math

import pytest
import torch

from eval.retrieval import correct_ranks, mean_reciprocal_rank, recall_at_k, retrieval_metrics, similarity


def test_similarity_is_cosine_in_float32():
    speech = torch.tensor([[3.0, 0.0], [1.0, 1.0]])
    text = torch.tensor([[2.0, 0.0], [0.0, 5.0], [-1.0, 0.0]])
    sim = similarity(speech, text)
    assert sim.dtype == torch.float32 and sim.shape == (2, 3)
    r = 1 / math.sqrt(2)
    torch.testing.assert_close(sim, torch.tensor([[1.0, 0.0, -1.0], [r, r, -r]]))


def test_similarity_rejects_bad_shapes():
    with pytest.raises(ValueError, match="embeddings"):
        similarity(torch.zeros(3, 4), torch.zeros(3, 5))
    with pytest.raises(ValueError, match="embeddings"):
        similarity(torch.zeros(3), torch.zeros(3, 3))


def test_identity_gives_perfect_scores():
    ranks = correct_ranks(torch.eye(5))
    assert ranks.dtype == torch.long and ranks.tolist() == [0] * 5
    assert recall_at_k(ranks, (1, 5)) == {1: 1.0, 5: 1.0}
    assert mean_reciprocal_rank(ranks) == 1.0


def test_permuted_matrix_gives_known_ranks():
    # row i scores column j with sim[i, j]; the match (diagonal) sits at a chosen place in each row's order
    sim = torch.tensor([[0.9, 0.1, 0.2, 0.3],   # match best -> 0
                        [0.8, 0.5, 0.7, 0.1],   # 0.8, 0.7 beat 0.5 -> 2
                        [0.9, 0.8, 0.1, 0.7],   # all three beat it -> 3
                        [0.1, 0.2, 0.9, 0.5]])  # 0.9 beats 0.5 -> 1
    ranks = correct_ranks(sim)
    assert ranks.tolist() == [0, 2, 3, 1]
    assert recall_at_k(ranks, (1, 2, 4)) == {1: 0.25, 2: 0.5, 4: 1.0}
    assert mean_reciprocal_rank(ranks) == pytest.approx((1 + 1 / 3 + 1 / 4 + 1 / 2) / 4)
    assert correct_ranks(sim.T).tolist() == [1, 1, 3, 1]  # text->speech reads the columns (col 0: a tie)


def test_ties_count_against_the_match():
    sim = torch.tensor([[0.5, 0.5, 0.1],
                        [0.2, 0.7, 0.7],
                        [0.3, 0.3, 0.3]])
    assert correct_ranks(sim).tolist() == [1, 1, 2]


def test_constant_matrix_never_scores():
    n = 7
    ranks = correct_ranks(torch.full((n, n), 0.42))
    assert ranks.tolist() == [n - 1] * n
    assert recall_at_k(ranks, (1, 5)) == {1: 0.0, 5: 0.0}


def test_nan_match_is_a_miss():
    sim = torch.eye(3)
    sim[1, 1] = float("nan")
    assert correct_ranks(sim).tolist() == [0, 2, 0]


def test_matches_argsort_reference_without_ties():
    g = torch.Generator().manual_seed(1)
    sim = torch.randn(20, 20, generator=g)
    order = sim.argsort(dim=1, descending=True)
    expected = (order == torch.arange(20).unsqueeze(1)).float().argmax(dim=1)
    assert torch.equal(correct_ranks(sim), expected)


def test_random_embeddings_score_at_chance():
    n, d, trials = 32, 16, 200
    g = torch.Generator().manual_seed(0)
    r1 = r5 = mrr = 0.0
    for _ in range(trials):
        m = retrieval_metrics({0: torch.randn(n, d, generator=g)}, {0: torch.randn(n, d, generator=g)})
        r1 += m["eval/r@1/layer_0"] / trials
        r5 += m["eval/r@5/layer_0"] / trials
        mrr += m["eval/mrr/layer_0"] / trials
    # ranks are uniform on 0..n-1: std of the mean R@1 over 200 trials of 32 is ~0.0022, of R@5 ~0.0045
    assert m["eval/chance_r@1"] == 1 / n and m["eval/chance_r@5"] == 5 / n
    assert abs(r1 - 1 / n) < 0.012
    assert abs(r5 - 5 / n) < 0.025
    assert abs(mrr - sum(1 / k for k in range(1, n + 1)) / n) < 0.02


def test_bf16_input():
    g = torch.Generator().manual_seed(2)
    speech = torch.randn(10, 8, generator=g)
    text = speech + 0.05 * torch.randn(10, 8, generator=g)
    m = retrieval_metrics({3: speech.bfloat16()}, {3: text.bfloat16()})
    assert m["eval/r@1/layer_3"] == 1.0 and m["eval/t2s_r@1/layer_3"] == 1.0


def test_metric_keys_and_means():
    eye = torch.eye(4)
    shifted = eye.roll(1, dims=0)  # speech i matches text i-1: R@1 = 0
    m = retrieval_metrics({0: eye, 5: shifted}, {0: eye, 5: eye}, ks=(1, 5), prefix="val/")
    assert set(m) == {f"val/{k}/layer_{l}" for k in ("r@1", "r@5", "mrr", "t2s_r@1") for l in (0, 5)} | {
        "val/r@1/mean", "val/r@5/mean", "val/mrr/mean", "val/chance_r@1", "val/chance_r@5"}
    assert m["val/r@1/layer_0"] == 1.0 and m["val/r@1/layer_5"] == 0.0
    assert m["val/r@1/mean"] == 0.5
    assert m["val/r@5/layer_5"] == 1.0  # N=4 < 5: everything is in the top 5
    assert m["val/chance_r@5"] == 1.0 and m["val/chance_r@1"] == 0.25


def test_mismatched_inputs_raise():
    x = torch.randn(4, 3)
    with pytest.raises(ValueError, match="same layers"):
        retrieval_metrics({0: x, 1: x}, {0: x})
    with pytest.raises(ValueError, match="same number of samples"):
        retrieval_metrics({0: x}, {0: torch.randn(5, 3)})
    with pytest.raises(ValueError, match="same number of samples"):
        retrieval_metrics({0: x, 1: torch.randn(5, 3)}, {0: x, 1: torch.randn(5, 3)})
    with pytest.raises(ValueError, match="at least one layer"):
        retrieval_metrics({}, {})
