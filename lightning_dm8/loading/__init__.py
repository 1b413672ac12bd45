"""The data path: shard and shuffle plans, block reads with prefetch, the LMDB cache and its checked byte format,
batch assembly, the torch Dataset/DataLoader."""
