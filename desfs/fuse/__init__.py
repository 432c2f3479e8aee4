"""The FUSE adapter: the only package that imports pyfuse3.

It translates kernel requests into calls on the filesystem model (`operations`), maps
errors to errno at one boundary, runs the session's life cycle (`session`) and keeps the
kernel's entries under the inode limit (`release`).
"""
