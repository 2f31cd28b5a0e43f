"""Large v2 documents are decoded in a child process: same tables, same refusals (with their status)."""

from __future__ import annotations

import asyncio
import json

import numpy as np
import pytest

from mlspec.runtime.serving.decoding import IN_PROCESS_BELOW, V2Decoder
from mlspec.runtime.serving.protocols import InputError


def _document(rows: int, datatype: str = "FP64", value: float = 1.5) -> bytes:
    return json.dumps({"id": "big", "inputs": [{"name": "x", "shape": [rows, 4], "datatype": datatype,
                                                "data": [value] * (4 * rows)}]}).encode()


def test_a_large_document_is_decoded_in_a_child_process_like_a_small_one() -> None:
    big = _document(IN_PROCESS_BELOW // 10)
    assert len(big) > IN_PROCESS_BELOW

    async def decode() -> None:
        decoder = V2Decoder()
        try:
            table, request_id, _ = await decoder.parse(big, b"")
            assert request_id == "big" and np.array_equal(table.rows, np.full((IN_PROCESS_BELOW // 10, 4), 1.5))
            assert decoder._pool is not None  # it went to the child
            with pytest.raises(InputError) as refused:
                await decoder.parse(_document(IN_PROCESS_BELOW // 10, "UINT8", 300), b"")
            assert refused.value.status == 400 and "input 'x': value 300 does not fit UINT8" in str(refused.value)
        finally:
            decoder.close()

    asyncio.run(decode())
