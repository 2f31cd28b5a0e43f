"""Large v2 JSON documents decoded in a child process, so that a parse of hundreds of milliseconds does not stall
the event loop: orjson and numpy hold the GIL for the whole of one call, so a thread would stall it just the same.

The child is started (spawned: the server holds threads, which fork would copy half-way) on the first large body
only, and reused; it costs one round trip of the body and the arrays it becomes, a few milliseconds per MiB.
"""

from __future__ import annotations

import asyncio
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from mlspec.runtime.serving import binary
from mlspec.runtime.serving.protocols import Table, parse_v2

IN_PROCESS_BELOW = 256 * 1024  # smaller documents parse in under ~15 ms: on the loop, without a round trip
Parsed = tuple[Table, Any, dict[str, Any] | None]


class V2Decoder:
    def __init__(self) -> None:
        self._pool: ProcessPoolExecutor | None = None

    async def parse(self, document: bytes, tail: bytes) -> Parsed:
        if len(document) < IN_PROCESS_BELOW:
            return parse(document, tail)
        loop = asyncio.get_running_loop()
        if self._pool is None:
            self._pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"))
        try:
            return await loop.run_in_executor(self._pool, parse, document, tail)
        except BrokenProcessPool:  # the child died (killed, out of memory): a new one next time, this one here
            self._pool = None
            return await loop.run_in_executor(None, parse, document, tail)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)


def parse(document: bytes, tail: bytes) -> Parsed:
    return parse_v2(document, binary.Tail(tail) if tail else None)
