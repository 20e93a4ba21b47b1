"""Data faults under the streaming loader: shards that vanish, become unreadable or are cut short in the middle of
an epoch, and sample tables / index.json entries that no longer describe their tar. Each bad sample is skipped,
counted under its reason and named; no sample comes out with another sample's bytes; the epoch completes."""

from __future__ import annotations

import json
import logging
import shutil

import pytest

from data.stream import StreamConfig, StreamLoader
from tests.conftest import make_shard_set

MID_STREAM_REASONS = {"missing_shard", "unreadable_shard", "truncated_shard"}


def _loader(root, **kw) -> StreamLoader:
    kw.setdefault("batch_size", 4)
    kw.setdefault("max_bad_fraction", 1.0)
    return StreamLoader(StreamConfig(sources=[{"path": str(root), "name": "src"}], shuffle_buffer=0,
                                     shuffle_shards=False, **kw))


@pytest.fixture
def shards(tmp_path, shard_set):
    root = tmp_path / "shards"
    shutil.copytree(shard_set, root)
    return root


def _texts(root) -> dict[str, str]:
    """key -> transcript, from the shard set's own json members (read before any damage)."""
    import tarfile

    out = {}
    for tar_path in sorted(root.glob("shard-*.tar")):
        with tarfile.open(tar_path) as tar:
            for m in tar.getmembers():
                if m.name.endswith(".json"):
                    out[m.name.split(".")[0]] = json.loads(tar.extractfile(m).read())["text"]
    return out


def _one_epoch(batches):
    """The batches of epoch 0 (the loader streams on forever; batches left with no usable sample are not yielded)."""
    for batch in batches:
        if batch["epoch"] != 0:
            return
        yield batch


@pytest.mark.parametrize("workers", [0, 2])
def test_shards_damaged_mid_epoch_are_skipped_counted_and_named(shards, workers, caplog):
    truth = _texts(shards)
    loader = _loader(shards, num_workers=workers)
    planned = len(loader.catalogs[0])
    it = iter(loader)
    first = next(it)
    # After the plan exists and the first batch was read: one shard deleted, one replaced by something unreadable
    # (a directory: root ignores file permissions), one cut in half.
    (shards / "shard-000003.tar").unlink()
    (shards / "shard-000004.tar").unlink()
    (shards / "shard-000004.tar").mkdir()
    tar = shards / "shard-000005.tar"
    tar.write_bytes(tar.read_bytes()[: tar.stat().st_size // 2])
    caplog.set_level(logging.WARNING)
    batches = [first, *_one_epoch(it)]
    seen = [(k, t) for b in batches for k, t in zip(b["keys"], b["texts"])]
    bad = dict(loader.stats.bad)
    assert set(bad) <= MID_STREAM_REASONS and bad, bad
    assert len(seen) + sum(bad.values()) == planned  # every planned sample: delivered or counted
    assert all(truth[k] == t for k, t in seen)  # and each delivered one is itself
    assert len({k for k, _ in seen}) == len(seen)
    named = caplog.text
    assert any(f"shard-00000{i}.tar" in named for i in (3, 4, 5)), named[-2000:]


def test_a_sample_table_that_no_longer_matches_its_tar_is_rescanned(shards, caplog):
    """A tar rebuilt after indexing (other samples, other offsets) with a stale .idx must not be read through the
    old offsets: that could pair one sample's audio with another's transcript."""
    truth = _texts(shards)
    stale = (shards / "shard-000001.tar.idx").read_text()
    other = make_shard_set(shards.parent / "other", 60, seed=7, prefix="alt")  # other keys, other sizes
    shutil.copy(other / "shard-000000.tar", shards / "shard-000001.tar")
    (shards / "shard-000001.tar.idx").write_text(stale)
    truth.update(_texts(other))
    caplog.set_level(logging.WARNING)
    loader = _loader(shards, num_workers=0)
    assert "shard-000001.tar does not match its sample table" in caplog.text
    seen = [(k, t) for b in _one_epoch(loader) for k, t in zip(b["keys"], b["texts"])]
    assert len(seen) == len(loader.catalogs[0]) and all(truth[k] == t for k, t in seen) and not loader.stats.bad


def test_an_index_listing_other_counts_than_the_table_is_rescanned(shards, caplog):
    index = json.loads((shards / "index.json").read_text())
    index["shards"][2]["samples"] += 3
    (shards / "index.json").write_text(json.dumps(index))
    caplog.set_level(logging.WARNING)
    loader = _loader(shards, num_workers=0)
    assert "shard-000002.tar does not match its sample table or index.json" in caplog.text
    assert len(loader.catalogs[0]) == 160 and loader.catalogs[0].lost == 3
