"""Input fuzzing, layer 4: the streaming loader over shards written directly (bypassing prepare's checks) with
fuzzed audio members and broken JSON/transcripts, and collate over any mix of lengths (contract:
tests/reliability/fuzz_audio.py)."""

from __future__ import annotations

import json
import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from hypothesis import given
from hypothesis import strategies as st

from data.collate import TEXT_NORMS, LoadedSample, collate, normalize_text
from data.shards import TABLE_SUFFIX, SampleTable, ShardWriter
from data.stream import StreamConfig, StreamLoader
from tests.conftest import WORDS
from tests.reliability.fuzz_audio import (
    AUDIO_REASONS,
    CHANNELS,
    TRICKY,
    ZERO_WIDTH,
    Clip,
    assert_budget,
    bad_rates,
    captured,
    clips,
    encode,
    flipped_clips,
    fuzz,
    good_text,
    huge_float_clips,
    junk,
    non_finite_clips,
    truncated_clips,
)

# ------------------------------------------------------------------------------------------------ layer 4: stream

_TOKENIZER = None


def tokenizer():
    """The conftest's word-level tokenizer over WORDS plus a BERT-style normaliser, which deletes control and format
    characters: a transcript of zero-width spaces then survives normalize_text yet tokenises to nothing."""
    global _TOKENIZER
    if _TOKENIZER is None:
        from tokenizers import Tokenizer, models, normalizers, pre_tokenizers
        from transformers import PreTrainedTokenizerFast

        vocab = {"<pad>": 0, "<unk>": 1, "<s>": 2, "</s>": 3}
        for w in WORDS:
            vocab.setdefault(w, len(vocab))
        tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
        tok.normalizer = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=False, strip_accents=False,
                                                    lowercase=False)
        tok.pre_tokenizer = pre_tokenizers.Whitespace()
        _TOKENIZER = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", unk_token="<unk>",
                                             bos_token="<s>", eos_token="</s>")
    return _TOKENIZER


@dataclass
class Member:
    """One sample written into a shard, and what the loader must make of it."""

    key: str
    audio: bytes
    ext: str
    duration: float
    """What the index says (the source's duration, as prepare would have recorded it)."""
    text: object = None
    raw_json: bytes | None = None
    """Json member bytes that ShardWriter could not produce itself: patched into the shard after writing."""
    clip: Clip | None = None
    reasons: frozenset[str] = frozenset()
    """Empty: must come out valid. Else the drop reasons allowed ("self": may also come out, header-consistent)."""


def json_garbage(draw) -> tuple[bytes, set[str]]:
    kind = draw(st.sampled_from(["non_utf8", "deep", "not_object", "junk", "surrogates", "truncated"]))
    if kind == "non_utf8":
        bad = draw(st.sampled_from([b"\xff", b"\xfe\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\xe9", b"\x80\x80"]))
        return b'{"duration": 1.0, "text": "the fox ' + bad + b' dog"}', {"corrupt_json"}
    if kind == "deep":  # nesting deeper than Python's recursion limit
        depth = draw(st.integers(2_000, 100_000))
        return draw(st.sampled_from([b"[", b'{"a":'])) * depth, {"corrupt_json"}
    if kind == "not_object":
        return draw(st.sampled_from([b"null", b"[1, 2]", b'"the fox"', b"5", b"true"])), {"corrupt_json"}
    if kind == "junk":
        return draw(st.binary(max_size=300)), {"corrupt_json", "empty_transcript"}
    if kind == "surrogates":  # valid JSON escapes of unpaired UTF-16 halves; "lower" strips them like punctuation
        return b'{"text": "\\udfff\\ud800"}', {"corrupt_json", "empty_transcript"}
    return b'{"duration": 1.0, "text": "the quick br', {"corrupt_json"}


@st.composite
def stream_members(draw, key: str) -> Member:
    kind = draw(st.sampled_from(["valid", "valid", "valid", "truncated", "flipped", "junk", "zero_bytes",
                                 "zero_frames", "nan", "huge", "bad_rate", "raw_json", "raw_json", "raw_json",
                                 "no_text", "blank_text", "zero_width_text", "huge_text", "odd_text"]))
    text = good_text(draw)
    if kind in ("valid", "odd_text"):
        clip = draw(clips(channels=CHANNELS + (12,)))
        if kind == "odd_text":
            text = "".join(draw(st.lists(st.sampled_from(TRICKY), max_size=6))) + " " + draw(st.sampled_from(WORDS))
        return Member(key, clip.data, clip.ext, clip.seconds, text, clip=clip)
    if kind == "truncated":
        clip, data = draw(truncated_clips())
        return Member(key, data, clip.ext, clip.seconds, text, reasons=frozenset({"corrupt_audio", "empty_audio"}))
    if kind == "flipped":
        clip, data, _ = draw(flipped_clips())
        return Member(key, data, clip.ext, clip.seconds, text,
                      reasons=AUDIO_REASONS | {"duration_mismatch", "self"})
    if kind == "junk":
        return Member(key, draw(junk), draw(st.sampled_from(["wav", "flac"])), 1.0, text,
                      reasons=AUDIO_REASONS | {"duration_mismatch", "self"})
    if kind == "zero_bytes":
        return Member(key, b"", "flac", 1.0, text, reasons=frozenset({"empty_audio"}))
    if kind == "zero_frames":
        data = encode(np.zeros((0, 1), dtype=np.float32), 16_000, "WAV", "PCM_16")
        return Member(key, data, "wav", 1.0, text, reasons=frozenset({"empty_audio"}))
    if kind == "nan":
        return Member(key, draw(non_finite_clips()), "wav", 0.5, text, reasons=frozenset({"non_finite_audio"}))
    if kind == "huge":
        clip, data = draw(huge_float_clips())
        return Member(key, data, "wav", clip.seconds, text, reasons=frozenset({"non_finite_audio", "self"}))
    if kind == "bad_rate":
        data = encode(np.zeros(100, dtype=np.float32), draw(bad_rates), "WAV", "PCM_16")
        return Member(key, data, "wav", 0.5, text, reasons=frozenset({"bad_sample_rate"}))
    clip = draw(clips(max_seconds=0.3))
    if kind == "raw_json":
        raw, reasons = json_garbage(draw)
        return Member(key, clip.data, clip.ext, clip.seconds, raw_json=raw, reasons=frozenset(reasons))
    if kind == "no_text":
        return Member(key, clip.data, clip.ext, clip.seconds, draw(st.sampled_from([None, 5, ["the"], {"a": 1}])),
                      reasons=frozenset({"empty_transcript"}))
    if kind == "blank_text":
        return Member(key, clip.data, clip.ext, clip.seconds, draw(st.sampled_from(["", " ", "\t\n", "\u3000 \u00a0"])),
                      reasons=frozenset({"empty_transcript"}))
    if kind == "zero_width_text":
        return Member(key, clip.data, clip.ext, clip.seconds, "".join(draw(st.lists(
            st.sampled_from(ZERO_WIDTH), min_size=1, max_size=5))), reasons=frozenset({"empty_transcript"}))
    # huge_text: over max_text_tokens (1024), and a json member of about 120 KB: filtered, not bad
    return Member(key, clip.data, clip.ext, clip.seconds, " ".join(WORDS) * 1_000,
                  reasons=frozenset({"text_too_long"}))


def write_members(root: Path, members: list[Member], per_shard: int) -> None:
    """ShardWriter directly (no prepare checks); json garbage is patched into the tar after the index is built,
    byte for byte in place of a same-length placeholder - like bit rot after indexing."""
    writer = ShardWriter(root, max_samples=per_shard)
    patches = {}
    for m in members:
        meta = {"duration": round(m.duration, 4)}
        if m.raw_json is not None:
            base = len(json.dumps({**meta, "text": ""}, ensure_ascii=False, sort_keys=True).encode())
            patches[m.key] = m.raw_json + b" " * max(0, base - len(m.raw_json))  # JSON allows trailing blanks
            meta["text"] = "a" * (len(patches[m.key]) - base)
        elif m.text is not None:
            meta["text"] = m.text
        writer.write(m.key, m.audio, m.ext, meta, m.duration)
    writer.close()
    for tar in sorted(root.glob("*.tar")):
        table = SampleTable.from_json(json.loads(tar.with_name(tar.name + TABLE_SUFFIX).read_text()))
        with open(tar, "r+b") as fh:
            for i, key in enumerate(table.keys):
                if key in patches:
                    assert table.json_size[i] == len(patches[key])
                    fh.seek(table.json_offset[i])
                    fh.write(patches[key])


@st.composite
def shard_sets(draw):
    members = [draw(stream_members(f"s{i:02d}")) for i in range(draw(st.integers(4, 12)))]
    batch_size = draw(st.integers(1, 4))
    # The epoch must end on a batch that is yielded (an all-bad batch is skipped): pad with valid samples to a
    # whole number of batches and end on one, so the last batch of the epoch holds a valid sample.
    n_pad = 1 + (-(len(members) + 1)) % batch_size
    for i in range(n_pad):
        clip = draw(clips(max_seconds=0.2))
        members.append(Member(f"zz{i}", clip.data, clip.ext, clip.seconds, good_text(draw), clip=clip))
    return members, batch_size, draw(st.integers(2, 6)), draw(st.sampled_from(TEXT_NORMS))


def test_stream_epoch_yields_only_valid_samples_and_names_every_drop():
    """A shard set holding fuzzed audio and broken json/transcripts among valid samples: one epoch completes,
    every batch holds only valid samples (right length at 16 kHz, finite, mono float32, the transcript's tokens),
    and every other key is dropped, named in a warning with its reason and counted by the loader."""
    tok = tokenizer()
    ran = []

    @fuzz("stream_epoch")
    @given(case=shard_sets())
    def check(case):
        members, batch_size, per_shard, norm = case
        with tempfile.TemporaryDirectory() as tmp, captured("data.stream") as records:
            root = Path(tmp) / "shards"
            write_members(root, members, per_shard)
            cfg = StreamConfig(sources=[{"path": str(root), "name": "fuzz"}], batch_size=batch_size, num_workers=0,
                               shuffle_buffer=0, shuffle_shards=False, bucket_edges=[45.0], min_duration=0.0,
                               text_norm=norm, max_bad_fraction=1.0, bad_grace_samples=0)
            loader = StreamLoader(cfg, tokenizer=tok)
            assert len(loader.catalogs[0]) == len(members) and loader.catalogs[0].lost == 0
            out: dict[str, tuple] = {}
            last = None
            for batch in loader:
                assert batch["epoch"] == 0
                check_batch(batch, tok)
                for i, key in enumerate(batch["keys"]):
                    assert key not in out, f"{key} twice in one epoch"
                    n = int(batch["audio_lengths"][i])
                    out[key] = (batch["audio"][i, :n].numpy(), batch["texts"][i])
                last = batch["batch_index"]
                if loader.epoch == 1:
                    break
            assert last == loader.batches_per_epoch - 1  # the epoch completed
            dropped = {r.args[0]: r.args[2] for r in records if r.msg.startswith("skipping")}
            for m in members:
                if not m.reasons:
                    assert m.key in out, f"valid {m.key} lost ({dropped.get(m.key)})"
                    audio, text = out[m.key]
                    expected = m.clip.expected_16k()
                    assert len(audio) == len(expected)
                    assert float(np.abs(audio - expected).max()) <= m.clip.tolerance()
                    assert text == normalize_text(m.text, norm)
                elif m.key in dropped:
                    assert dropped[m.key] in m.reasons, (m.key, dropped[m.key], m.reasons)
                else:
                    assert "self" in m.reasons and m.key in out, f"{m.key} neither loaded nor named as dropped"
            assert set(out) | set(dropped) == {m.key for m in members} and not set(out) & set(dropped)
            st_ = loader.stats
            assert st_.samples == len(out)
            assert st_.bad + st_.filtered == Counter(dropped.values())
            assert set(st_.filtered) <= {"text_too_long"}
        ran.append(1)

    check()
    assert_budget("stream_epoch", ran)


def check_batch(batch: dict, tok) -> None:
    """A training batch as the model sees it: padded float32 audio with exact masks, non-empty token targets."""
    b, lengths = batch["size"], batch["audio_lengths"]
    assert b == len(batch["keys"]) > 0
    assert batch["audio"].dtype == torch.float32 and batch["audio"].shape == (b, int(lengths.max()))
    assert torch.isfinite(batch["audio"]).all() and (lengths > 0).all()
    assert batch["audio_mask"].sum(1).tolist() == lengths.tolist()
    assert not batch["audio"][~batch["audio_mask"]].any()  # padding is zeros
    for i, text in enumerate(batch["texts"]):
        ids = tok(text, add_special_tokens=False)["input_ids"]
        n = int(batch["text_mask"][i].sum())
        assert n == len(ids) > 0 and batch["text_ids"][i, :n].tolist() == ids


# ------------------------------------------------------------------------------------------------ collate

def test_collate_pads_any_mix_of_lengths_exactly():
    ran = []

    @fuzz("collate")
    @given(lengths=st.lists(st.integers(1, 5_000), max_size=6), seed=st.integers(0, 2**32 - 1),
           with_text=st.booleans(), pad_id=st.integers(0, 5))
    def check(lengths, seed, with_text, pad_id):
        rng = np.random.default_rng(seed)
        samples = [LoadedSample(f"k{i}", "src", rng.uniform(-1, 1, n).astype(np.float32), "t", {})
                   for i, n in enumerate(lengths)]
        ids = [rng.integers(6, 50, int(rng.integers(1, 20))).tolist() for _ in lengths] if with_text else None
        batch = collate(samples, ids, pad_id)
        b, t = len(lengths), max(lengths, default=0)
        assert batch["size"] == b and batch["audio"].shape == (b, t) and batch["audio"].dtype == torch.float32
        assert batch["audio_lengths"].tolist() == lengths and batch["audio_mask"].sum(1).tolist() == lengths
        for i, s in enumerate(samples):
            assert np.array_equal(batch["audio"][i, :lengths[i]].numpy(), s.audio)
            assert not batch["audio"][i, lengths[i]:].any()
        if with_text:
            for i, row in enumerate(ids):
                assert batch["text_ids"][i, :len(row)].tolist() == row and batch["text_mask"][i].sum() == len(row)
                assert (batch["text_ids"][i, len(row):] == pad_id).all()
        else:
            assert "text_ids" not in batch
        ran.append(1)

    check()
    assert_budget("collate", ran)


