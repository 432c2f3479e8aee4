"""The filesystem model: inodes, nodes, attributes, and lookup/readdir/read/xattrs over
the archive engine, in desfs values and without FUSE.

It imports the archive engine (and format/namespace values); never pyfuse3.
"""
