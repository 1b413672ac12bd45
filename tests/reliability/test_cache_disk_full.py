"""Fault 5: the disk under cache_dir fills up (a 2 MB tmpfs; the table holds about 6 MB).

``cache_on_full="error"`` stops with a :class:`CacheFullError` naming the path and the setting;
``cache_on_full="skip"`` finishes the epoch reading the blocks it cannot cache from the database, every row right.
"""

from __future__ import annotations

import subprocess
import uuid

import numpy as np
import pytest

from lightning_dm8 import write_arrays
from lightning_dm8.loading.cache import CacheFullError, cache_path
from reliability.support import assert_exactly_once, make_dm, train_loader

N_ROWS, WIDTH = 6000, 256  # 256 float32 = 1 KiB per row
BLOCK = 20  # 20 KiB blocks: the 2 MB disk takes some blocks (or batches of blocks) before it is full


@pytest.fixture
def small_disk(tmp_path):
    mount_point = tmp_path / f"tmpfs-{uuid.uuid4().hex[:6]}"
    mount_point.mkdir()
    # mode=0700: a fresh tmpfs is 1777 like /tmp, and the cache refuses a directory others can write.
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m,mode=0700", "tmpfs", str(mount_point)],
                          check=False, capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a 2 MB tmpfs here ({done.stderr.strip()}): the disk-full test needs it")
    yield mount_point
    subprocess.run(["umount", "-l", str(mount_point)], check=True)


@pytest.fixture
def table(tmp_path):
    url = f"sqlite:///{tmp_path / 'full.db'}"
    features = (np.arange(N_ROWS, dtype=np.float32)[:, None] + np.arange(WIDTH, dtype=np.float32) / WIDTH)
    write_arrays(url, "data", features, np.arange(N_ROWS), progress=False)
    return url, features


def test_full_cache_disk_with_on_full_error_names_the_path_and_the_setting(small_disk, table) -> None:
    url, _ = table
    dm = make_dm(url, "data", small_disk, batch_size=100, block_size=BLOCK, cache_on_full="error")
    loader = train_loader(dm)
    delivered = 0
    with pytest.raises(CacheFullError) as raised:
        for x, _ in loader:
            delivered += len(x)
    message = str(raised.value)
    print(f"\n{delivered} rows delivered before: {message}")
    assert str(cache_path(small_disk, dm.db, "data")) in message
    assert "cache_on_full='skip'" in message and "full" in message
    assert delivered < N_ROWS
    dm.teardown("fit")


@pytest.mark.parametrize("num_workers", [0, 2])
def test_full_cache_disk_with_on_full_skip_completes_every_epoch_from_the_database(small_disk, table,
                                                                                  num_workers) -> None:
    url, features = table
    dm = make_dm(url, "data", small_disk, batch_size=100, block_size=BLOCK, cache_on_full="skip",
                 num_workers=num_workers)
    loader = train_loader(dm)
    for epoch in range(2):  # the second epoch reads what the cache holds and the rest from the database
        ids = []
        for x, y in loader:
            ids.append(y.numpy())
            np.testing.assert_array_equal(x.numpy(), features[y.numpy()])
        assert_exactly_once(np.concatenate(ids), N_ROWS)
        stats = dm.epoch_stats["train"]
        print(f"\nepoch {epoch}: {stats.as_dict()}")
        assert stats.queries > 0 and stats.rows_from_db > 0
        # Each block the cache lacks is read once per epoch (a worker boundary may split one block in two reads),
        # not once per batch that touches it.
        assert stats.queries <= N_ROWS // BLOCK + num_workers, f"read amplification: {stats.queries} queries"
        if epoch == 1:
            assert stats.rows_from_cache > 0, "nothing was served from the blocks that did fit"
    dm.teardown("fit")
