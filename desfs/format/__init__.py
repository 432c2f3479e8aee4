"""DES container codecs: pure functions from bytes to dataclasses, and the writers."""
