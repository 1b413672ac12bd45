"""A fresh process for the tests: it never sees the training, only the database. For each JSON request on stdin
({"url", "table", "run", "ckpt_path", "root"}) it restores a TinyClassifier through ``Trainer.test(ckpt_path=...)``
and answers with one JSON line: the weights' digest and the test metric (or the error)."""

from __future__ import annotations

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from tiny import TinyClassifier, loader, quiet_lightning, state_digest, trainer

from lightning_dm8.checkpoint import DM8Checkpoint


def restore(url: str, table: str, run: str, ckpt_path: str, root: str) -> dict:
    model = TinyClassifier()
    callback = DM8Checkpoint(url, run, table=table)
    result = trainer(root, [callback]).test(model, loader(seed=2), ckpt_path=ckpt_path, verbose=False)
    return {"digest": state_digest(model.state_dict()), "test_acc": result[0]["test_acc"], "pid": os.getpid()}


def main() -> None:
    quiet_lightning()
    print(json.dumps({"ready": os.getpid()}), flush=True)
    for line in sys.stdin:
        try:
            reply = restore(**json.loads(line))
        except Exception as exc:  # noqa: BLE001 (reported to the test, which fails with it)
            reply = {"error": f"{type(exc).__name__}: {exc}"}
        print(json.dumps(reply), flush=True)


if __name__ == "__main__":
    main()
