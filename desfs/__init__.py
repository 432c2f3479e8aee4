"""desfs: a read-only filesystem over packed DES containers on S3 or local disk."""

__version__ = "0.1.0"
