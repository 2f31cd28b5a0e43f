"""The Open Inference Protocol body parser: the binary tensor extension, and bodies that once crashed it."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest

from mlspec.runtime.serving import binary
from mlspec.runtime.serving.protocols import InputError, parse_v2


def _binary_body(*tensors: tuple[str, str, list[int], bytes], parameters: dict[str, object] | None = None
                 ) -> tuple[bytes, bytes]:
    document = {"inputs": [{"name": name, "datatype": datatype, "shape": shape,
                            "parameters": {"binary_data_size": len(raw)}} for name, datatype, shape, raw in tensors]}
    if parameters:
        document["parameters"] = parameters
    header = json.dumps(document).encode()
    return header + b"".join(raw for *_, raw in tensors), str(len(header)).encode()


def _parse(body: bytes, length: bytes | None) -> tuple[object, object, object]:
    document, tail = binary.split(body, length)
    return parse_v2(document, binary.Tail(tail) if tail else None)


def test_binary_tensors_are_read_as_triton_sends_them() -> None:
    x = np.arange(8, dtype=np.float32).reshape(2, 4)
    body, length = _binary_body(("input-0", "FP32", [2, 4], x.tobytes()),
                                parameters={"binary_data_output": True, "threshold": 0.5})
    table, _, parameters = _parse(body, length)
    assert np.array_equal(table.rows, x)  # type: ignore[attr-defined]
    assert parameters == {"threshold": 0.5}  # the protocol's own parameters are not the model's


def test_binary_columns_and_strings() -> None:
    a, b = np.array([1.0, 2.0]), np.array([3.0, 4.0])
    table, _, _ = _parse(*_binary_body(("a", "FP64", [2, 1], a.tobytes()), ("b", "FP64", [2], b.tobytes())))
    assert table.columns == ["a", "b"] and table.rows.tolist() == [[1.0, 3.0], [2.0, 4.0]]  # type: ignore[attr-defined]
    words = b"".join(struct.pack("<I", len(w)) + w for w in (b"hi", "né".encode()))
    table, _, _ = _parse(*_binary_body(("text", "BYTES", [2], words)))
    assert table.rows[:, 0].tolist() == ["hi", "né"]  # type: ignore[attr-defined]


@pytest.mark.parametrize("length, cut, match", [
    (b"abc", 0, "Inference-Header-Content-Length"),
    (b"999999", 0, "no larger than the body"),
    (None, 4, "binary_data_size"),  # cut: bytes removed from the end
    (None, -3, "belong to no input"),  # negative: bytes added
])
def test_bad_binary_bodies_are_400_with_the_reason(length: bytes | None, cut: int, match: str) -> None:
    body, real_length = _binary_body(("x", "FP64", [1, 2], np.zeros(2).tobytes()))
    body = body[:-cut] if cut > 0 else body + b"\0" * -cut
    with pytest.raises(InputError, match=match) as raised:
        _parse(body, length or real_length)
    assert raised.value.status in (400, 422)


def test_binary_size_must_match_the_shape() -> None:
    with pytest.raises(InputError, match="takes 16 bytes"):
        _parse(*_binary_body(("x", "FP64", [1, 2], np.zeros(3).tobytes())))
    with pytest.raises(InputError, match="no Inference-Header-Content-Length"):
        body, length = _binary_body(("x", "FP64", [1, 2], np.zeros(2).tobytes()))
        parse_v2(body[:int(length)])  # the JSON part alone, as if the header had been left off


@pytest.mark.parametrize("datatype", [{}, [], ["FP64"], 3, None])
def test_a_datatype_that_is_not_a_name_is_400_not_a_crash(datatype: object) -> None:
    body = json.dumps({"inputs": [{"name": "x", "shape": [1, 2], "datatype": datatype, "data": [1, 2]}]}).encode()
    with pytest.raises(InputError, match="datatype must be one of") as raised:
        parse_v2(body)
    assert raised.value.status == 400
