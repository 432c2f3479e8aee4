"""atheris harness: payload and metadata decoding of any stored bytes.

Input layout: byte 0 picks the codec (none, zstd, lz4), bytes 1-4 (little-endian) the
entry's logical size, byte 5 how many stored bytes the source hands out per read; the rest
is the stored payload, and also the metadata. Whole-payload decoding must give exactly the
logical size or EntryError; the streaming decoder must stay within the size, end, fail only
with EntryError, and agree with the whole decode when that succeeds.

    python fuzz/seeds.py fuzz/corpus
    python fuzz/fuzz_codecs.py fuzz/corpus/codecs -max_total_time=600
"""

from __future__ import annotations

import contextlib
import io
import sys

import atheris

with atheris.instrument_imports():
    from desfs.errors import EntryError
    from desfs.format.codecs import PayloadStream, decode_meta, decode_payload
    from desfs.format.model import Codec, Entry


class Dribble:
    def __init__(self, data: bytes, step: int) -> None:
        self._stream = io.BytesIO(data)
        self._step = step

    def read(self, size: int) -> bytes:
        return self._stream.read(min(size, self._step))


def streamed(entry: Entry, stored: bytes, step: int) -> bytes | None:
    out = io.BytesIO()
    try:
        stream = PayloadStream(entry, Dribble(stored, step))
        for _ in range(entry.size + 2):
            chunk = stream.read(1 << 16)
            if not chunk:
                break
            out.write(chunk)
            assert out.tell() <= entry.size
        else:
            raise AssertionError("the stream never ended")
    except EntryError:
        return None
    assert out.tell() == entry.size
    return out.getvalue()


def test_one_input(raw: bytes) -> None:
    if len(raw) < 6:
        return
    codec = Codec(raw[0] % 3)
    size = int.from_bytes(raw[1:5], "little")
    step, stored = raw[5] + 1, raw[6:]
    with contextlib.suppress(EntryError):
        assert isinstance(decode_meta(stored), dict)
    entry = Entry(b"f", 0, size, 8, len(stored), codec)
    whole: bytes | None = None
    with contextlib.suppress(EntryError):
        whole = decode_payload(entry, stored)
        assert len(whole) == size
    if codec is Codec.NONE:
        return
    stream = streamed(entry, stored, step)
    if whole is not None:
        assert stream == whole


def main() -> None:
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
