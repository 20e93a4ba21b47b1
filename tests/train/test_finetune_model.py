"""FinetuneModule: a mixed ASR / ST / SQA batch through a tiny SpeechLLM, loss on the answer tokens only."""

from __future__ import annotations

import pytest
import torch

from model.encoders import EncoderConfig
from model.llm import LLMConfig
from model.projectors import ProjectorConfig
from model.tiny import TinyConfig, write_tiny_models
from train.finetune_model import FinetuneModule
from train.pretrain_model import build_speech_llm
from train.tasks import TaskConfig, training_example

META = [{"text": "the quick brown fox", "lang": "en"},
        {"text": "How long does the journey take?", "lang": "en", "task": "st",
         "translations": {"de": "Wie lange dauert die Fahrt?", "fr": "Combien de temps dure le voyage?"}},
        {"text": "Paul was born in Singapore.", "lang": "en", "task": "sqa", "question": "Where was Paul born?",
         "answer": "Singapore"}]


@pytest.fixture(scope="module")
def tiny_dirs(tmp_path_factory):
    texts = [m["text"] for m in META] + ["Wie lange dauert die Fahrt?", "Combien de temps dure le voyage?",
                                         "Where was Paul born?", "Singapore"]
    return write_tiny_models(tmp_path_factory.mktemp("tiny"), TinyConfig(vocab_size=300), texts)


def _batch() -> dict:
    g = torch.Generator().manual_seed(0)
    lengths = [16_000, 12_000, 20_000]
    audio = 0.1 * torch.randn(3, max(lengths), generator=g)
    mask = torch.arange(max(lengths))[None] < torch.tensor(lengths)[:, None]
    return {"audio": audio * mask, "audio_mask": mask, "keys": ["a", "b", "c"], "meta": META,
            "texts": [m["text"] for m in META], "epoch": 0, "size": 3}


def _module(dirs, **kw) -> FinetuneModule:
    m = build_speech_llm(EncoderConfig(name_or_path=str(dirs["encoder"])), ProjectorConfig(kind="mlp", mlp_hidden=32),
                         LLMConfig(name_or_path=str(dirs["llm"]), dtype="float32"), seed=0)
    return FinetuneModule(m, TaskConfig(st_targets=["de", "fr"]), **kw)


def test_answer_only_loss_trains_the_projector(tiny_dirs):
    module = _module(tiny_dirs).train()
    batch = _batch()
    loss, metrics = module(batch)
    assert {k: int(v) for k, v in metrics.items() if k.startswith("count/task_")} == \
        {"count/task_asr": 1, "count/task_st": 1, "count/task_sqa": 1}
    # labels = the answer tokens (+ the end-of-turn marker) of each sample, nothing from prompt or speech
    tok = module.speech_llm.tokenizer
    answers = [training_example(m, t, k, 0, module.tasks).answer
               for m, t, k in zip(META, batch["texts"], batch["keys"])]
    assert int(metrics["count/answer_tokens"]) == sum(len(tok(" " + a, add_special_tokens=False).input_ids) + 1
                                                      for a in answers)
    loss.backward()
    frozen = list(module.speech_llm.encoder.parameters()) + list(module.speech_llm.llm.parameters())
    assert all(p.grad is None for p in frozen)
    assert all(p.grad is not None for p in module.speech_llm.projector.parameters())
    optimizer = torch.optim.AdamW(module.trainable_parameters(), lr=3e-2)
    first = float(loss.detach())
    for _ in range(30):
        optimizer.step()
        optimizer.zero_grad()
        loss, _ = module(batch)
        loss.backward()
    # a random-weight LLM barely attends to a prefix (init std 0.02), so the projector can steer it only a little:
    # the test asks for a clear, deterministic drop (5.72 -> 5.56 here), not a trained model
    assert float(loss.detach()) < first - 0.1
    assert {"encoder", "projector", "llm_answer", "loss"} <= set(module.pop_timings())


def test_nonfinite_skip_returns_none(tiny_dirs):
    module = _module(tiny_dirs, nonfinite="skip")
    with torch.no_grad():
        next(module.speech_llm.projector.parameters()).fill_(float("nan"))
    loss, metrics = module(_batch())
    assert loss is None and "count/answer_tokens" in metrics
