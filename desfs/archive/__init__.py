"""The archive engine: listings, container opening and the index cache, the read path
(coalescing, readahead, decoding, external payloads) and walk-ahead, behind the verbs of
`engine.Archive`.

Used by every front end: the FUSE filesystem model, the offline commands and the HTTP
server. It imports cache, format, namespace, storage and settings; never fs, fuse or
commands, and never pyfuse3 or boto3.
"""
