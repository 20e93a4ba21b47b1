"""Shared fixtures: small corpora built inside the tests (fast tones/noise, no TTS), shard sets, a tiny tokenizer."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# `make test` runs two pytest-xdist workers on the machine's cores: each worker's torch (and the runs it starts)
# gets its share of the cores instead of every worker starting a thread per core and all of them contending.
_WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
if _WORKERS > 1:
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // _WORKERS)))
# Triton kernels (model/kernels/) run under Triton's CPU interpreter where there is no GPU: same code, checked
# against the torch reference. Must be set before triton.jit decorates them, i.e. before any test imports them.
if not os.environ.get("CUDA_VISIBLE_DEVICES") and not os.path.exists("/dev/nvidia0"):
    os.environ.setdefault("TRITON_INTERPRET", "1")

# `make test` runs `--dist loadfile`: a test file runs on one worker, so module fixtures (a reference run, a
# converted model) are built once. Files that share an expensive session fixture also go together, so that it is
# built once too; files that share only cheap ones (shard sets, tone_world) may split.
_SHARED_FIXTURE_GROUPS = {
    "tests/train/test_pretrain.py": "trained-projector",  # `trained`: a 120-step pretraining run
    "tests/train/test_finetune.py": "trained-projector",
}
# The groups that take longest (minutes on 2 cores), longest first: they start first so that no worker is left
# running one of them alone at the end. Everything else follows in xdist's order (most tests first).
_LONGEST_GROUPS = (
    "trained-projector", "tests/slurm/test_slurm.py", "tests/eval/test_run.py",
    "tests/reliability/test_checkpoint_faults.py", "tests/model/test_pretrained.py", "tests/model/test_kernel_aot.py",
)


@pytest.hookimpl(optionalhook=True)  # a pytest-xdist hook: ignored where xdist is not installed
def pytest_xdist_make_scheduler(config, log):
    if config.getvalue("dist") != "loadfile":
        return None
    from collections import OrderedDict

    from xdist.scheduler import LoadScopeScheduling

    class FilesAndSharedFixtures(LoadScopeScheduling):
        # (xdist's own loadgroup marks do not work with pytest 9: it renames `item._nodeid`, which pytest 9 ignores.)
        def _split_scope(self, nodeid: str) -> str:
            path = nodeid.split("::", 1)[0]
            return _SHARED_FIXTURE_GROUPS.get(path, path)

        def _assign_work_unit(self, node) -> None:
            if not getattr(self, "_longest_first", False):  # the first assignment: the queue is complete
                self._longest_first = True
                rank = {scope: i for i, scope in enumerate(_LONGEST_GROUPS)}
                order = sorted(self.workqueue, key=lambda scope: rank.get(scope, len(rank)))  # stable
                self.workqueue = OrderedDict((scope, self.workqueue[scope]) for scope in order)
            super()._assign_work_unit(node)

    return FilesAndSharedFixtures(config, log)


def training_rank_pid(run_dir: Path, rank: int) -> int:
    """The training process of global `rank` that writes `run_dir`: its config (`<run_dir>.yaml`, see
    tests/train/conftest.py) is on its command line and torchrun put RANK in its environment. The launchers
    (torchrun, train.launch) name the config too and are skipped."""
    needle = str(run_dir).encode()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes()
            environ = (proc / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        launcher = b"train.launch" in cmdline or b"torch.distributed.run" in cmdline
        if b"train.pretrain" in cmdline and needle in cmdline and f"RANK={rank}".encode() in environ and not launcher:
            return int(proc.name)
    raise AssertionError(f"no training process with RANK={rank} for {run_dir}")


WORDS = ("the quick brown fox jumps over a lazy dog while seven small birds sing near an old river bank "
         "under bright morning light and children walk slowly to school").split()


def make_manifest(root: Path, n: int, seed: int = 0, prefix: str = "utt", lang: str = "en",
                  min_s: float = 0.5, max_s: float = 6.0, sample_rate: int = 16_000) -> Path:
    """Write `n` short noisy-tone FLAC files and a manifest in `root`; returns the manifest path."""
    rng = np.random.default_rng(seed)
    audio_dir = root / "audio"
    audio_dir.mkdir(parents=True, exist_ok=True)
    manifest = root / "manifest.jsonl"
    with open(manifest, "w", encoding="utf-8") as fh:
        for i in range(n):
            dur = float(rng.uniform(min_s, max_s))
            t = np.arange(int(dur * sample_rate)) / sample_rate
            x = 0.3 * np.sin(2 * np.pi * rng.uniform(100, 400) * t) + 0.05 * rng.standard_normal(len(t))
            uid = f"{prefix}-{i:05d}"
            sf.write(audio_dir / f"{uid}.flac", x.astype(np.float32), sample_rate, subtype="PCM_16")
            text = " ".join(rng.choice(WORDS, size=int(rng.integers(3, 12))))
            rec = {"id": uid, "audio": f"audio/{uid}.flac", "text": text, "lang": lang, "duration": round(dur, 3)}
            fh.write(json.dumps(rec) + "\n")
    return manifest


def make_word_tone_manifest(root: Path, n: int, seed: int = 0, vocab: int = 10, word_s: float = 0.25,
                            sample_rate: int = 16_000) -> Path:
    """`n` utterances in a learnable toy language: each of `vocab` words is a tone of its own pitch, a sentence of
    2-5 words is their tones in a row (plus noise), the transcript names the words. New seeds give new sentences
    over the same words, so held-out retrieval can only rise above chance if the projector learns the words."""
    rng = np.random.default_rng(seed)
    words = WORDS[:vocab]
    freqs = 180.0 * 1.25 ** np.arange(vocab)  # well apart on a log scale, all below 8 kHz
    audio_dir = root / "audio"
    audio_dir.mkdir(parents=True, exist_ok=True)
    manifest = root / "manifest.jsonl"
    t = np.arange(int(word_s * sample_rate)) / sample_rate
    ramp = np.minimum(1, np.minimum(t, t[::-1]) / 0.02)  # no clicks between words
    with open(manifest, "w", encoding="utf-8") as fh:
        for i in range(n):
            idx = rng.choice(vocab, size=int(rng.integers(2, 6)), replace=False)
            x = np.concatenate([0.4 * ramp * np.sin(2 * np.pi * freqs[j] * t) for j in idx])
            x = x + 0.02 * rng.standard_normal(len(x))
            uid = f"tone{seed}-{i:05d}"
            sf.write(audio_dir / f"{uid}.flac", x.astype(np.float32), sample_rate, subtype="PCM_16")
            rec = {"id": uid, "audio": f"audio/{uid}.flac", "text": " ".join(words[j] for j in idx), "lang": "en",
                   "duration": round(len(x) / sample_rate, 3)}
            fh.write(json.dumps(rec) + "\n")
    return manifest


def make_mixed_task_manifest(root: Path, n: int, seed: int = 0) -> Path:
    """`make_word_tone_manifest` with every third sample turned into speech translation (the "German" translation is
    the sentence reversed) and every third into spoken QA ("Which word comes first?"): tasks a small LLM can learn."""
    manifest = make_word_tone_manifest(root, n, seed=seed)
    lines = []
    for i, line in enumerate(manifest.read_text().splitlines()):
        rec = json.loads(line)
        words = rec["text"].split()
        if i % 3 == 1:
            rec.update(task="st", translations={"de": " ".join(reversed(words))})
        elif i % 3 == 2:
            rec.update(task="sqa", question="Which word comes first?", answer=words[0])
        lines.append(json.dumps(rec))
    manifest.write_text("\n".join(lines) + "\n")
    return manifest


def make_shard_set(root: Path, n: int, seed: int = 0, prefix: str = "utt", max_samples: int = 25, **kw) -> Path:
    """Manifest + shards under root; returns the shard-set directory."""
    from data.prepare import build_from_manifest

    manifest = make_manifest(root / "corpus", n, seed=seed, prefix=prefix, **kw)
    out = root / "shards"
    build_from_manifest(manifest, out, max_samples=max_samples, workers=2)
    return out


@pytest.fixture(scope="session")
def shard_set(tmp_path_factory) -> Path:
    """160 samples of 0.5-6 s in shards of 25 (read-only: copy it before damaging it)."""
    return make_shard_set(tmp_path_factory.mktemp("shard_set"), 160)


@pytest.fixture(scope="session")
def tiny_tokenizer_dir(tmp_path_factory) -> Path:
    """A word-level HF fast tokenizer over WORDS, saved like an LLM's tokenizer directory."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {"<pad>": 0, "<unk>": 1, "<s>": 2, "</s>": 3}
    for w in WORDS:
        vocab.setdefault(w, len(vocab))
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", unk_token="<unk>", bos_token="<s>",
                                   eos_token="</s>")
    out = tmp_path_factory.mktemp("tokenizer")
    fast.save_pretrained(out)
    return out

