"""Dataset tables: codecs, writers, the reader and fingerprints."""
