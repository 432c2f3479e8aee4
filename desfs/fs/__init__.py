"""The filesystem model: everything a FUSE request needs, without FUSE."""
