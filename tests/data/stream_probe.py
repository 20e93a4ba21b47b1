"""Run the loader in a fresh process: `python tests/data/stream_probe.py SPEC.json`; prints batch digests as JSON.

SPEC: {"config": StreamConfig kwargs, "take": N, "state_in": path|null, "state_out": path|null,
       "rank": 0, "world_size": 1, "tokenizer": path|null}
"""

import hashlib
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from data.stream import StreamConfig, StreamLoader  # noqa: E402


def digest(batch: dict) -> dict:
    out = {"keys": batch["keys"], "epoch": batch["epoch"], "index": batch["batch_index"],
           "audio": hashlib.sha256(batch["audio"].numpy().tobytes()).hexdigest()[:16]}
    if "text_ids" in batch:
        out["text_ids"] = batch["text_ids"].tolist()
    return out


def main() -> None:
    spec = json.loads(Path(sys.argv[1]).read_text())
    loader = StreamLoader(StreamConfig(**spec["config"]), rank=spec.get("rank", 0),
                          world_size=spec.get("world_size", 1))
    if spec.get("state_in"):
        loader.load_state_dict(json.loads(Path(spec["state_in"]).read_text()))
    it = iter(loader)
    batches = [digest(next(it)) for _ in range(spec["take"])]
    if spec.get("state_out"):
        Path(spec["state_out"]).write_text(json.dumps(loader.state_dict()))
    print(json.dumps(batches))


if __name__ == "__main__":
    main()
