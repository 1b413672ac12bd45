"""The data path: shard and shuffle plans, block reads with prefetch, the LMDB cache, the torch Dataset/DataLoader."""
