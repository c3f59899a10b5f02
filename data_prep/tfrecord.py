"""TFRecord files written and read without TensorFlow (byte-identical to ``tf.io.TFRecordWriter``).

Format of each record (little endian): ``uint64 length``, ``uint32 masked_crc32c(length bytes)``,
``data``, ``uint32 masked_crc32c(data)``; masked crc = ``((crc >> 15) | (crc << 17)) + 0xa282ead8``
(mod 2**32). Keeping TensorFlow out of data_prep's write path means `hierseg prepare`, its worker
processes and Beam workers start in a fraction of a second.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator

import google_crc32c

_MASK_DELTA = 0xA282EAD8


def masked_crc32c(data: bytes) -> int:
    crc = google_crc32c.value(data)
    return ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + _MASK_DELTA) & 0xFFFFFFFF


def encode_record(data: bytes) -> bytes:
    """One framed record."""
    length = struct.pack("<Q", len(data))
    return length + struct.pack("<I", masked_crc32c(length)) + data + struct.pack("<I", masked_crc32c(data))


class TFRecordWriter:
    """Appends framed records to a local file (uncompressed)."""

    def __init__(self, path: str):
        self._f = open(path, "wb")  # noqa: SIM115  (closed in close())

    def write(self, data: bytes) -> None:
        self._f.write(encode_record(data))

    def close(self) -> None:
        if not self._f.closed:
            self._f.close()


def read_records(data: bytes, source: str = "<tfrecord>") -> Iterator[bytes]:
    """The records of a whole TFRecord file's bytes, CRCs checked.

    Raises:
      ValueError: naming ``source`` and the byte offset of a truncated or corrupt record.
    """
    pos, n = 0, len(data)
    while pos < n:
        if pos + 12 > n:
            raise ValueError(f"{source}: truncated record header at byte {pos}")
        header = data[pos : pos + 8]
        (length,) = struct.unpack("<Q", header)
        (crc,) = struct.unpack("<I", data[pos + 8 : pos + 12])
        if crc != masked_crc32c(header):
            raise ValueError(f"{source}: corrupt record length at byte {pos}")
        start, end = pos + 12, pos + 12 + length
        if end + 4 > n:
            raise ValueError(f"{source}: truncated record at byte {pos}")
        record = data[start:end]
        (crc,) = struct.unpack("<I", data[end : end + 4])
        if crc != masked_crc32c(record):
            raise ValueError(f"{source}: corrupt record data at byte {pos}")
        yield record
        pos = end + 4
