"""Configuration: the frozen settings values, the key table, and how YAML, flags and `-o`
options become one `Settings`.

The bottom layer: every package may import `sections`; this package imports only
`desfs.errors` (and PyYAML).
"""
