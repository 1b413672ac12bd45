"""Run in a fresh process by the tests: restore a TinyClassifier from the database through the Trainer and print
the weights' digest and the test metric as JSON."""

from __future__ import annotations

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from tiny import TinyClassifier, loader, quiet_lightning, state_digest, trainer  # noqa: E402

from lightning_dm8.checkpoint import DM8Checkpoint  # noqa: E402


def main(url: str, table: str, run: str, ckpt_path: str, root: str) -> None:
    quiet_lightning()
    model = TinyClassifier()
    callback = DM8Checkpoint(url, run, table=table)
    result = trainer(root, [callback]).test(model, loader(seed=2), ckpt_path=ckpt_path, verbose=False)
    print(json.dumps({"digest": state_digest(model.state_dict()), "test_acc": result[0]["test_acc"]}))


if __name__ == "__main__":
    main(*sys.argv[1:6])
