"""One rank of a simulated multi-node job (run by test_nodes.py as a separate process; Lightning reads NODE_RANK,
LOCAL_RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT from the environment and starts no processes itself).

Arguments: URL TABLE CACHE_DIR OUT_DIR EPOCHS SHUFFLE_BUFFER_BLOCKS. Writes ``rank{r}.npz`` (the row ids of every
training batch, the batch sizes, the order mode of each epoch) and ``reads-rank{r}.txt`` (the first row of every
block this rank read from the database, one per line, after a line ``epoch N`` at the start of each epoch: the read
path is counted, the database is real).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import numpy as np
from lightning.pytorch import Callback, Trainer

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lightning_dm8.tables.reader import TableReader  # noqa: E402
from loading.support import RecordingModule, make_dm  # noqa: E402

url, table, cache_dir, out_dir, epochs = sys.argv[1:6]
rank = int(os.environ["NODE_RANK"]) * 2 + int(os.environ["LOCAL_RANK"])
reads = open(Path(out_dir) / f"reads-rank{rank}.txt", "a")  # noqa: SIM115 - open for the life of the process
original_read = TableReader.read


def counted_read(self: TableReader, lo: int, hi: int) -> Any:
    reads.write(f"{lo}\n")
    reads.flush()
    return original_read(self, lo, hi)


TableReader.read = counted_read  # type: ignore[method-assign]  # counts reads; the database is real


class Modes(Callback):
    def __init__(self) -> None:
        self.modes: list[str] = []

    def on_train_epoch_start(self, trainer: Any, pl_module: Any) -> None:
        reads.write(f"epoch {trainer.current_epoch}\n")

    def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
        self.modes.append(trainer.datamodule.loaders["train"].mode)


class Recording(RecordingModule):
    def on_train_end(self) -> None:
        np.savez(Path(out_dir) / f"rank{self.global_rank}.npz", ids=np.concatenate(self.seen),
                 batches=np.array([len(s) for s in self.seen]), modes=np.array(modes.modes))


modes = Modes()
trainer = Trainer(accelerator="cpu", devices=2, num_nodes=2, strategy="ddp", max_epochs=int(epochs), logger=False,
                  enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                  callbacks=[modes])
dm = make_dm(url, table, cache_dir, batch_size=32, shuffle=True, seed=3, shuffle_buffer_blocks=int(sys.argv[6]))
trainer.fit(Recording(), datamodule=dm)
