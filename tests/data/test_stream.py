"""The streaming loader end to end: rank x worker split, exact resume in fresh processes, tokenisation, bad input."""

from __future__ import annotations

import io
import json
import logging
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from data.shards import ShardWriter
from data.stream import DataQualityError, StreamConfig, StreamLoader
from tests.conftest import REPO, make_shard_set

PROBE = REPO / "tests" / "data" / "stream_probe.py"


def _cfg(*paths, **kw) -> StreamConfig:
    kw.setdefault("batch_size", 4)
    kw.setdefault("shuffle_buffer", 40)
    return StreamConfig(sources=[{"path": str(p), "name": f"src{i}"} for i, p in enumerate(paths)], **kw)


def _probe(tmp_path: Path, name: str, **spec) -> list[dict]:
    path = tmp_path / f"{name}.json"
    spec["config"] = {k: v for k, v in spec["config"].items()}
    path.write_text(json.dumps(spec))
    out = subprocess.run([sys.executable, str(PROBE), str(path)], cwd=REPO, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout)


@pytest.mark.distributed
def test_two_ranks_two_workers_no_duplicate_no_loss(shard_set):
    keys, per_rank = [], []
    for rank in range(2):
        loader = StreamLoader(_cfg(shard_set, num_workers=2), rank=rank, world_size=2)
        it = iter(loader)
        batches = [next(it) for _ in range(loader.batches_per_epoch)]
        assert {b["epoch"] for b in batches} == {0}
        per_rank.append(len(batches))
        keys += [k for b in batches for k in b["keys"]]
        assert loader.epoch == 1
    assert per_rank[0] == per_rank[1] == 20
    assert len(keys) == 160 == len(set(keys))


def test_batches_do_not_depend_on_worker_count(shard_set):
    runs = []
    for workers in (0, 1, 3):
        it = iter(StreamLoader(_cfg(shard_set, num_workers=workers, batch_size=5)))
        runs.append([(b["keys"], b["audio"].sum().item()) for b in (next(it) for _ in range(12))])
    assert runs[0] == runs[1] == runs[2]


@pytest.mark.parametrize("resume_workers", [2, 0, 3])
def test_exact_resume_in_a_fresh_process(shard_set, tmp_path, resume_workers):
    config = {"sources": [{"path": str(shard_set)}], "batch_size": 6, "shuffle_buffer": 30, "num_workers": 2,
              "seed": 7}
    # 160 samples over 2 ranks in batches of 6: 14 batches per epoch, so 18 batches cross the epoch boundary
    spec = {"take": 18, "rank": 1, "world_size": 2}
    full = _probe(tmp_path, "full", config=config, **spec)
    assert {b["epoch"] for b in full} == {0, 1}
    state = tmp_path / "state.json"
    first = _probe(tmp_path, "first", config=config, state_out=str(state), **{**spec, "take": 11})
    resumed = _probe(tmp_path, "resumed", config={**config, "num_workers": resume_workers}, state_in=str(state),
                     **{**spec, "take": 7})
    assert first + resumed == full


def test_tokenised_text_and_padding(shard_set, tiny_tokenizer_dir):
    loader = StreamLoader(_cfg(shard_set, num_workers=0, tokenizer=str(tiny_tokenizer_dir), text_norm="lower"))
    batch = next(iter(loader))
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_tokenizer_dir)
    for i, text in enumerate(batch["texts"]):
        ids = tok(text, add_special_tokens=False)["input_ids"]
        n = int(batch["text_mask"][i].sum())
        assert batch["text_ids"][i, :n].tolist() == ids and n == len(ids)
        assert (batch["text_ids"][i, n:] == tok.pad_token_id).all()
    lengths = batch["audio_lengths"]
    assert batch["audio"].shape == (4, int(lengths.max())) and batch["audio_mask"].sum(1).tolist() == lengths.tolist()
    assert set(batch) >= {"keys", "texts", "meta", "sources", "epoch", "batch_index"}


def test_resume_refuses_changed_plan_settings(shard_set):
    loader = StreamLoader(_cfg(shard_set, num_workers=0))
    next(iter(loader))
    state = loader.state_dict()
    with pytest.raises(ValueError, match="batch_size"):
        StreamLoader(_cfg(shard_set, num_workers=0, batch_size=3)).load_state_dict(state)
    with pytest.raises(ValueError, match="same number of ranks"):
        StreamLoader(_cfg(shard_set, num_workers=0), rank=0, world_size=2).load_state_dict(state)


def test_duration_filter_and_mixing_by_weight(tmp_path, shard_set):
    other = make_shard_set(tmp_path / "other", 60, seed=1, prefix="oth", min_s=5.0, max_s=12.0)
    loader = StreamLoader(_cfg(shard_set, other, num_workers=0, max_duration=8.0, batch_size=8,
                               samples_per_epoch=400))
    assert loader.catalogs[1].filtered > 0 and all(d <= 8.0 for c in loader.catalogs for d in c.arrays["duration"])
    hours = [c.hours for c in loader.catalogs]
    assert loader.weights == pytest.approx([h / sum(hours) for h in hours])
    it = iter(loader)
    sources = Counter(s for _ in range(loader.batches_per_epoch) for s in next(it)["sources"])
    share = sources["src0"] / sum(sources.values())
    assert abs(share - loader.weights[0]) < 0.08  # 400 draws: ~3 sigma


# ---------------------------------------------------------------------------------------------- bad input

def _flac(x: np.ndarray, rate: int = 16000) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, x, rate, format="FLAC", subtype="PCM_16")
    return buf.getvalue()


def _bad_shard_set(root: Path) -> Path:
    """Good samples with one of each kind of damage, in shards of 10."""
    rng = np.random.default_rng(0)
    tone = (0.2 * np.sin(np.linspace(0, 2000, 24000))).astype(np.float32)
    writer = ShardWriter(root, max_samples=10)
    bad = {}
    for i in range(40):
        key, meta, audio, ext = f"ok{i:03d}", {"text": f"sample {i}"}, _flac(tone), "flac"
        if i == 3:
            key, audio = "corrupt", b"fLaC" + rng.bytes(3000)
        elif i == 5:
            key, audio = "truncated", _flac(tone)[:900]
        elif i == 7:
            key, meta = "empty_text", {"text": "  "}
        elif i == 12:
            key, audio = "rate44k", _flac(np.resize(tone, 66150), 44100)
        elif i == 14:
            key = "stereo"
            audio = _flac(np.stack([tone, -tone], 1))
        elif i == 16:
            nan = tone.copy()
            nan[100:200] = np.nan
            buf = io.BytesIO()
            sf.write(buf, nan, 16000, format="WAV", subtype="FLOAT")
            key, audio, ext = "nan_audio", buf.getvalue(), "wav"
        meta["duration"] = 1.5
        writer.write(key, audio, ext, meta, 1.5)
        bad[key] = i
    writer.close()
    return root


def test_each_bad_input_is_skipped_counted_and_named(tmp_path, caplog):
    root = _bad_shard_set(tmp_path / "bad")
    (root / "shard-000002.tar").unlink()  # missing shard: 10 samples
    tar = root / "shard-000003.tar"
    tar.write_bytes(tar.read_bytes()[: tar.stat().st_size // 2])  # truncated shard: about half survive
    caplog.set_level(logging.WARNING)
    loader = StreamLoader(_cfg(root, num_workers=2, batch_size=5, max_bad_fraction=0.6, bad_grace_samples=10))
    it = iter(loader)
    keys = [k for _ in range(loader.batches_per_epoch) for k in next(it)["keys"]]
    st = loader.stats
    assert dict(st.bad) == {"corrupt_audio": 2, "empty_transcript": 1, "non_finite_audio": 1}
    assert dict(st.fixes) == {"resampled": 1, "downmixed": 1}
    lost = loader.catalogs[0].lost
    assert 13 <= lost <= 17 and len(loader.catalogs[0]) == 40 - lost
    assert {"rate44k", "stereo"} <= set(keys) and not {"corrupt", "truncated", "empty_text"} & set(keys)
    assert len(keys) == len(loader.catalogs[0]) - 4
    text = caplog.text
    for needle in ("corrupt in", "truncated in", "empty_text in", "nan_audio in", "shard-000002.tar is missing",
                   "shard-000003.tar is truncated"):
        assert needle in text, needle
    assert "0.6" not in loader.summary() and "missing/truncated" in loader.summary()


def test_resampled_and_downmixed_audio_is_correct(tmp_path):
    root = _bad_shard_set(tmp_path / "bad")
    loader = StreamLoader(_cfg(root, num_workers=0, batch_size=40, max_bad_fraction=1.0, shuffle_buffer=0))
    batch = next(iter(loader))
    i = batch["keys"].index("rate44k")
    assert int(batch["audio_lengths"][i]) == 24000  # 66150 samples at 44.1 kHz = 1.5 s -> 24000 at 16 kHz
    j = batch["keys"].index("stereo")
    assert float(batch["audio"][j].abs().max()) < 1e-4  # (x + -x) / 2


def test_too_much_bad_data_stops_with_a_clear_message(tmp_path):
    root = _bad_shard_set(tmp_path / "bad")
    loader = StreamLoader(_cfg(root, num_workers=0, batch_size=5, max_bad_fraction=0.05, bad_grace_samples=10,
                               shuffle_buffer=0, shuffle_shards=False))
    with pytest.raises(DataQualityError, match=r"max_bad_fraction=0\.05.*(corrupt|truncated|empty_text) in .*"
                                               r"shard-0000"):
        for _ in iter(loader):
            pass


def test_source_names_must_be_unique(shard_set):
    with pytest.raises(ValueError, match="source names must be unique"):
        StreamLoader(StreamConfig(sources=[{"path": str(shard_set)}, {"path": str(shard_set)}]))


def test_missing_shards_above_threshold_fail_at_start(tmp_path, shard_set):
    root = tmp_path / "copy"
    shutil.copytree(shard_set, root)
    for name in ("shard-000000.tar", "shard-000001.tar"):
        (root / name).unlink()
    with pytest.raises(DataQualityError, match="shard-000000.tar is missing.*re-run data.prepare"):
        StreamLoader(_cfg(root, max_bad_fraction=0.1))


@pytest.mark.parametrize("workers", [0, 1])
def test_iterating_leaves_the_global_rng_alone(shard_set, workers):
    """The trainer's dropout / position-shift stream must not depend on when the data iterator starts (resume)."""
    import torch

    loader = StreamLoader(StreamConfig(sources=[{"path": str(shard_set)}], batch_size=4, num_workers=workers))
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    next(iter(loader))
    assert torch.equal(torch.rand(3), expected)


def test_subset_fraction_is_a_deterministic_key_subset(shard_set):
    full = StreamLoader(StreamConfig(sources=[{"path": str(shard_set)}], batch_size=4, num_workers=0))
    cfg = StreamConfig(sources=[{"path": str(shard_set)}], batch_size=4, num_workers=0, subset_fraction=0.25)
    part, again = StreamLoader(cfg), StreamLoader(cfg)
    keys = set(part.catalogs[0].keys)
    assert keys == set(again.catalogs[0].keys) and keys < set(full.catalogs[0].keys)
    assert 0.1 < len(keys) / len(full.catalogs[0].keys) < 0.4  # 160 samples, expected 40
    half = set(StreamLoader(StreamConfig(sources=[{"path": str(shard_set)}], subset_fraction=0.5)).catalogs[0].keys)
    assert keys < half  # nested: a larger fraction keeps the smaller one's samples
    seen = {k for _, batch in zip(range(part.batches_per_epoch), part) for k in batch["keys"]}
    assert seen == keys
    assert part.planner.fingerprint() != full.planner.fingerprint()  # resume refuses a changed subset
    with pytest.raises(ValueError, match="subset_fraction"):
        StreamConfig(subset_fraction=0.0)
