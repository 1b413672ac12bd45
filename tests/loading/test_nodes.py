"""Two nodes of two ranks each, simulated on this machine: four processes started with Lightning's environment
variables (``NODE_RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``, ``MASTER_PORT``; ``num_nodes=2``), one
cache directory per node.

Every row is delivered exactly once per epoch across the four ranks, cold and warm; the warm epochs are the same
permutation on every rank of both nodes (each rank's share of it is what the plan says); the two ranks of a node
share one cache, and over the whole run each node reads each block from the database once (the first epoch reads
the node's ranks' shares, the second first fills in what the node's cache lacks, split between its ranks).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from lightning_dm8.loading.plan import PlanConfig, batches_per_rank, padding_rows, worker_order
from loading.support import write_labelled

pytestmark = pytest.mark.slow

N_ROWS = 2001  # 32 blocks of 64 (the last one partial); the four shares need 3 rows of padding
BLOCK = 64
BATCH = 32
EPOCHS = 3
# Cold epochs mix rows within windows of this many blocks. A rank's share here is 8 blocks: with 2-block windows
# the block at the edge of two ranks' shares is needed early by one rank and late by the other, as with any share
# of several windows. (A share of a single window needs it from the first batch on both ranks, and then both may
# read it: at most one block per edge, as documented.)
BUFFER_BLOCKS = 2


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run_nodes(url: str, table: str, tmp_path: Path) -> Path:
    out = tmp_path / "out"
    out.mkdir()
    port = free_port()
    job = Path(__file__).with_name("node_job.py")
    processes = []
    for node in (0, 1):
        for local in (0, 1):
            env = {**os.environ, "NODE_RANK": str(node), "LOCAL_RANK": str(local), "WORLD_SIZE": "4",
                   "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "OMP_NUM_THREADS": "1"}
            args = [sys.executable, str(job), url, table, str(tmp_path / f"node{node}-cache"), str(out), str(EPOCHS),
                    str(BUFFER_BLOCKS)]
            processes.append(subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT))
    for process in processes:
        output, _ = process.communicate(timeout=300)
        assert process.returncode == 0, output.decode(errors="replace")[-3000:]
    return out


def block_reads(path: Path) -> list[list[int]]:
    """The blocks a rank read from the database, per epoch (its log: ``epoch N`` lines, then first rows)."""
    epochs: list[list[int]] = []
    for line in path.read_text().splitlines():
        if line.startswith("epoch"):
            epochs.append([])
        else:
            epochs[-1].append(int(line) // BLOCK)
    return epochs


def test_two_nodes_of_two_ranks(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'nodes.db'}"
    write_labelled(url, "rows", N_ROWS)
    out = run_nodes(url, "rows", tmp_path)
    plan = PlanConfig(n_rows=N_ROWS, block_size=BLOCK, batch_size=BATCH, world_size=4, seed=3, shuffle=True,
                      buffer_blocks=BUFFER_BLOCKS)
    per_epoch = batches_per_rank(plan)
    seen = {}
    for rank in range(4):
        with np.load(out / f"rank{rank}.npz") as data:
            assert len(data["batches"]) == EPOCHS * per_epoch
            batches = np.split(data["ids"], np.cumsum(data["batches"])[:-1])
            seen[rank] = [np.concatenate(batches[e * per_epoch : (e + 1) * per_epoch]) for e in range(EPOCHS)]
            assert list(data["modes"]) == ["cold", "warm", "warm"], f"rank {rank}: {list(data['modes'])}"
    for epoch in range(EPOCHS):
        counts = np.bincount(np.concatenate([seen[r][epoch] for r in range(4)]), minlength=N_ROWS)
        assert len(counts) == N_ROWS and counts.min() == 1
        assert int((counts - 1).sum()) == padding_rows(plan) == 3
    for rank in range(4):  # the warm epochs: each rank's share of the one permutation every rank computes
        for epoch in (1, 2):
            np.testing.assert_array_equal(seen[rank][epoch], worker_order(plan, epoch, rank, 0, "warm"))

    n_blocks = -(-N_ROWS // BLOCK)
    reads = {rank: block_reads(out / f"reads-rank{rank}.txt") for rank in range(4)}
    for node in (0, 1):
        ranks = (2 * node, 2 * node + 1)
        per_block = Counter(b for r in ranks for epoch in reads[r] for b in epoch)
        by_epoch = [sum(len(reads[r][e]) if e < len(reads[r]) else 0 for r in ranks) for e in range(EPOCHS)]
        print(f"\nnode {node}: {sum(per_block.values())} block reads for {n_blocks} blocks, by epoch {by_epoch} "
              f"(rank {ranks[0]}: {sum(map(len, reads[ranks[0]]))}, rank {ranks[1]}: {sum(map(len, reads[ranks[1]]))})")
        assert set(per_block) == set(range(n_blocks)), "the node's cache needs every block once"
        # Once per node: the first epoch reads the node's ranks' shares (the block at their edge once: the rank that
        # needs it first caches it at once), the fill before the first warm epoch reads what the node's cache lacks,
        # each block by one of its ranks; the warm epochs read nothing.
        assert all(count == 1 for count in per_block.values()), f"blocks read twice on node {node}: {per_block}"
        assert by_epoch[2] == 0
