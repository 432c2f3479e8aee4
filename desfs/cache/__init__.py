"""Generic, storage-agnostic caches: single flight and the byte-bounded block cache."""
