"""Request/response sampling (an endpoint's data_collector): a share of answered requests written as JSON lines
to FOLDER/DEPLOYMENT/YYYY/MM/DD/HH.jsonl, bounded in rate, record size and records per minute, kept for a
retention period. Only the path, content type, status, latency and the two bodies are written: never a header,
so never a key."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from mlspec.runtime.httpserver import Request

FLUSH_S = 1.0  # records reach the file within this; writing each at once would cost a system call per request
FLUSH_BYTES = 256 * 2**10
_FIELDS = {"folder", "rate", "max_record_size", "max_records_per_minute", "retention"}


class SamplingError(ValueError):
    """The sampling settings are invalid; the message names the field."""


@dataclass(frozen=True)
class SamplingSettings:
    folder: str  # absolute
    rate: float  # share of requests sampled, (0, 1]
    max_record_size: int  # bytes of one record; bodies of a larger one are left out (said so in the record)
    max_records_per_minute: int
    retention: float  # seconds an hour's file is kept after its last write

    @classmethod
    def parse(cls, value: Any, where: str) -> SamplingSettings:
        if not isinstance(value, dict) or set(value) != _FIELDS:
            raise SamplingError(f"{where}: sampling must be an object with exactly {', '.join(sorted(_FIELDS))}")
        folder, rate = value["folder"], value["rate"]
        if not isinstance(folder, str) or not os.path.isabs(folder):
            raise SamplingError(f"{where}: sampling folder must be an absolute path")
        if isinstance(rate, bool) or not isinstance(rate, int | float) or not 0 < rate <= 1:
            raise SamplingError(f"{where}: sampling rate must be a number in (0, 1]")
        numbers = [value[k] for k in ("max_record_size", "max_records_per_minute", "retention")]
        if any(isinstance(n, bool) or not isinstance(n, int | float) or n <= 0 for n in numbers):
            raise SamplingError(f"{where}: sampling max_record_size, max_records_per_minute and retention must be "
                                "positive numbers")
        return cls(folder, float(rate), int(numbers[0]), int(numbers[1]), float(numbers[2]))


def _body(raw: bytes, content_type: bytes | None, answered: bool) -> Any:
    """JSON bodies as JSON (so a record is one JSON value to read back), anything else as text. A JSON body of a
    request answered with a 2xx is valid JSON (the replica parsed it, or wrote it): it goes in as it is, unparsed,
    which halves what sampling costs."""
    if content_type is None or b"json" in content_type:
        if answered and content_type is not None and raw:
            return orjson.Fragment(raw)
        with contextlib.suppress(orjson.JSONDecodeError):
            return orjson.loads(raw)
    return raw.decode("utf-8", errors="replace")


class Sampler:
    """Called once per answered request on the gateway's event loop; buffers records and writes them in batches."""

    def __init__(self, settings: SamplingSettings, endpoint: str) -> None:
        self.settings, self.endpoint = settings, endpoint
        self.folder = Path(settings.folder)
        self._minute = 0
        self._taken = 0  # records this minute
        self.dropped = 0  # sampled, but over the per-minute cap
        self._buffers: dict[Path, list[bytes]] = {}
        self._buffered = 0
        self._flush: asyncio.TimerHandle | None = None
        self._hour = ""

    def offer(self, deployment: str, request: Request, status: int, response_type: bytes | None, response: bytes,
              seconds: float) -> None:
        settings = self.settings
        if settings.rate < 1.0 and random.random() >= settings.rate:
            return
        now = time.time()
        minute = int(now // 60)
        if minute != self._minute:
            self._minute, self._taken = minute, 0
        if self._taken >= settings.max_records_per_minute:
            self.dropped += 1
            return
        self._taken += 1
        stamp = time.gmtime(now)
        record: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", stamp) + f".{int(now % 1 * 1000):03d}Z",
            "endpoint": self.endpoint, "deployment": deployment, "path": request.path.decode("latin-1"),
            "status": status, "latency_ms": round(seconds * 1000, 3)}
        body = request.body
        encoding = request.header(b"content-encoding")
        if encoding is not None:  # compressed as sent: its size is all a record keeps
            record.update(request_bytes=len(body), request_encoding=encoding.decode("latin-1"),
                          response=_body(response, response_type, False))
        elif len(body) + len(response) + 512 > settings.max_record_size:
            record.update(truncated=True, request_bytes=len(body), response_bytes=len(response))
        else:
            answered = 200 <= status < 300
            record.update(request=_body(body, request.header(b"content-type"), answered),
                          response=_body(response, response_type, answered))
        line = orjson.dumps(record) + b"\n"
        if len(line) > settings.max_record_size:  # JSON escapes can grow a body: still within the bound
            line = orjson.dumps({**{k: v for k, v in record.items() if k not in ("request", "response")},
                                 "truncated": True, "request_bytes": len(body),
                                 "response_bytes": len(response)}) + b"\n"
        hour = time.strftime("%Y/%m/%d/%H", stamp)
        self._buffers.setdefault(self.folder / (deployment or "_gateway") / f"{hour}.jsonl", []).append(line)
        self._buffered += len(line)
        if hour != self._hour:
            self._hour = hour
            self.prune(now)
        if self._buffered >= FLUSH_BYTES:
            self.flush()
        elif self._flush is None:
            with contextlib.suppress(RuntimeError):  # no running loop (a test calling it directly): flush now
                self._flush = asyncio.get_running_loop().call_later(FLUSH_S, self.flush)
                return
            self.flush()

    def flush(self) -> None:
        if self._flush is not None:
            self._flush.cancel()
            self._flush = None
        buffers, self._buffers, self._buffered = self._buffers, {}, 0
        for file, lines in buffers.items():
            try:
                file.parent.mkdir(parents=True, exist_ok=True)
                with file.open("ab") as handle:
                    handle.write(b"".join(lines))
            except OSError as error:  # a full disk loses samples, never a request
                print(f"mlspec-gateway: cannot write samples to {file}: {error}", file=sys.stderr, flush=True)

    def prune(self, now: float) -> None:
        """Hour files last written more than `retention` ago go (checked as each hour begins)."""
        cutoff = now - self.settings.retention
        for current, _, files in os.walk(self.folder):
            for name in files:
                file = Path(current) / name
                with contextlib.suppress(OSError):
                    if name.endswith(".jsonl") and file.stat().st_mtime < cutoff:
                        file.unlink()
