"""DM8DataModule in a plain PyTorch DDP loop: no Lightning Trainer, no Fabric.

    torchrun --standalone --nproc-per-node 2 examples/without_trainer/torch_ddp.py \\
        --url sqlite:///runs/demo/demo.db --table demo_train

Each process joins the ``torch.distributed`` process group (``gloo`` on CPU); the data module reads its rank and the
world size there, so each rank reads its own share of the table: every row once per epoch across the ranks. Without
a process group, pass ``rank=`` and ``world_size=`` to ``DM8DataModule`` instead.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from examples.without_trainer.common import linear_classifier, options, save_seen, step  # noqa: E402
from lightning_dm8 import DM8DataModule  # noqa: E402


def main() -> None:
    args = options(__doc__ or "")
    dist.init_process_group("gloo")  # torchrun sets RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT
    dm = DM8DataModule(args.url, train_table=args.table, batch_size=args.batch_size, num_workers=args.num_workers,
                       cache_dir=args.cache_dir, progress=False)
    dm.setup("fit")  # rank and world size: the process group
    loader = dm.train_dataloader()
    model = DistributedDataParallel(linear_classifier(args.url, args.table, args.classes))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    for epoch in range(args.epochs):
        loader.set_epoch(epoch)
        seen = []
        for batch in loader:
            loss = step(model, batch)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            seen.append(batch[1])
        save_seen(args.seen, dist.get_rank(), epoch, seen)
        if dist.get_rank() == 0:
            stats = dm.epoch_stats["train"]
            print(f"epoch {epoch}: loss {loss.item():.4f}; {stats.rows} rows per rank, {stats.queries} queries on "
                  f"rank 0")
    dm.teardown("fit")
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
