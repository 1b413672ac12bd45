"""DM8DataModule under Lightning Fabric: DDP on two CPU processes, no Trainer.

    python examples/without_trainer/fabric_ddp.py --url sqlite:///runs/demo/demo.db --table demo_train

Fabric starts the second process itself (``strategy="ddp"``). The data module finds each process's rank and the
world size in Fabric's process group, so each rank reads its own share of the table: every row once per epoch
across the ranks. The loader shards the rows itself, so it is not passed through ``fabric.setup_dataloaders``
(which would try to give it a distributed sampler): batches are moved with ``fabric.to_device``, and
``loader.set_epoch`` gives each epoch its own order.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from lightning.fabric import Fabric

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from examples.without_trainer.common import linear_classifier, options, save_seen, step  # noqa: E402
from lightning_dm8 import DM8DataModule  # noqa: E402


def main() -> None:
    args = options(__doc__ or "")
    fabric = Fabric(accelerator="cpu", devices=2, strategy="ddp")
    fabric.launch()
    dm = DM8DataModule(args.url, train_table=args.table, batch_size=args.batch_size, num_workers=args.num_workers,
                       cache_dir=args.cache_dir, progress=False)
    dm.setup("fit")  # rank and world size: Fabric's process group
    loader = dm.train_dataloader()
    model = linear_classifier(args.url, args.table, args.classes)
    model, optimizer = fabric.setup(model, torch.optim.SGD(model.parameters(), lr=0.01))
    for epoch in range(args.epochs):
        loader.set_epoch(epoch)
        seen = []
        for batch in loader:
            features, labels = fabric.to_device(batch)
            loss = step(model, (features, labels))
            optimizer.zero_grad()
            fabric.backward(loss)
            optimizer.step()
            seen.append(labels.cpu())
        save_seen(args.seen, fabric.global_rank, epoch, seen)
        stats = dm.epoch_stats["train"]
        fabric.print(f"epoch {epoch}: loss {loss.item():.4f}; {stats.rows} rows per rank, {stats.queries} queries "
                     f"on rank 0")
    dm.teardown("fit")


if __name__ == "__main__":
    main()
