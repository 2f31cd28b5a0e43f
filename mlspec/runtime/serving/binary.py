"""The Open Inference Protocol's binary tensor extension: a JSON header, then each tensor's raw bytes in order.

Triton's clients (`tritonclient.http`) send tensors this way by default: the request carries an
`Inference-Header-Content-Length` header with the JSON part's size, and each input that is binary says how many
bytes of the tail are its own in `parameters.binary_data_size`.
"""

from __future__ import annotations

import math
import struct
from typing import Any

import numpy as np

from mlspec.runtime.serving.protocols import V2_DTYPES, InputError

HEADER = b"inference-header-content-length"


def split(body: bytes, header_length: bytes | None) -> tuple[bytes, bytes]:
    """The JSON part and the binary tail; the tail is empty without the header."""
    if header_length is None:
        return body, b""
    text = header_length.strip()
    if not text.isdigit() or int(text) > len(body):
        raise InputError(f"Inference-Header-Content-Length must be a number of bytes no larger than the body "
                         f"({len(body)}); got {header_length.decode('latin-1')!r}", 400)
    size = int(text)
    return body[:size], body[size:]


class Tail:
    """The binary tail, read tensor by tensor; `finish` refuses bytes no input claimed."""

    def __init__(self, data: bytes) -> None:
        self._data = memoryview(data)
        self._offset = 0

    def take(self, label: str, size: Any, datatype: str, shape: list[int]) -> np.ndarray:
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise InputError(f"{label}: parameters.binary_data_size must be a non-negative integer", 400)
        if self._offset + size > len(self._data):
            raise InputError(f"{label}: binary_data_size {size} runs past the end of the body "
                             f"({len(self._data) - self._offset} bytes left)", 400)
        chunk = bytearray(self._data[self._offset:self._offset + size])  # writable: torch warns on read-only arrays
        self._offset += size
        if datatype == "BYTES":
            return _strings(chunk, label)
        itemsize = np.dtype(V2_DTYPES[datatype]).itemsize
        if size != math.prod(shape) * itemsize:
            raise InputError(f"{label}: shape {shape} of {datatype} takes {math.prod(shape) * itemsize} bytes; "
                             f"binary_data_size is {size}")
        return np.frombuffer(chunk, dtype=np.dtype(V2_DTYPES[datatype]).newbyteorder("<"))

    def finish(self) -> None:
        if self._offset != len(self._data):
            raise InputError(f"{len(self._data) - self._offset} bytes after the JSON header belong to no input "
                             "(set parameters.binary_data_size on each binary input)", 400)


def _strings(chunk: bytearray, label: str) -> np.ndarray:
    """BYTES elements: each a 4-byte little-endian length, then that many bytes."""
    values: list[Any] = []
    offset = 0
    while offset < len(chunk):
        if offset + 4 > len(chunk):
            raise InputError(f"{label}: a BYTES element's 4-byte length is cut short", 400)
        (length,) = struct.unpack_from("<I", chunk, offset)
        offset += 4
        if offset + length > len(chunk):
            raise InputError(f"{label}: a BYTES element of {length} bytes runs past its binary data", 400)
        raw = bytes(chunk[offset:offset + length])
        offset += length
        try:
            values.append(raw.decode("utf-8"))
        except UnicodeDecodeError:
            values.append(raw)
    return np.array(values, dtype=object)
