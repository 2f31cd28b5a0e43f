"""The gateway's request sampler on real files: its rate, record size bound, per-minute cap, retention, and that it
writes no header; and the gateway config's sampling field."""

from __future__ import annotations

import json
import os
import random
import time
from pathlib import Path
from typing import Any

import pytest

from mlspec.runtime.gateway.config import ConfigError, parse, routing_digest
from mlspec.runtime.gateway.sampling import Sampler, SamplingSettings
from mlspec.runtime.httpserver import Request

BODY = b'{"dataframe_split": {"columns": ["a", "b"], "data": [[1.5, 2]]}}'
JSON = b"application/json"


def sampler(folder: Path, **changes: Any) -> Sampler:
    settings = {"folder": str(folder), "rate": 1.0, "max_record_size": 4096, "max_records_per_minute": 10_000,
                "retention": 3600.0, **changes}
    return Sampler(SamplingSettings.parse(settings, "test"), "iris")


def records(folder: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for file in sorted(folder.rglob("*.jsonl")) for line in file.read_text().splitlines()]


def offer(taker: Sampler, times: int, body: bytes = BODY, deployment: str = "blue", status: int = 200,
          headers: list[tuple[bytes, bytes]] | None = None) -> None:
    request = Request(b"POST", b"/invocations?x=1", b"/invocations",
                      headers or [(b"content-type", JSON), (b"authorization", b"Bearer secret-key")], body)
    for _ in range(times):
        taker.offer(deployment, request, status, JSON, b'{"predictions": [1]}', 0.002)
    taker.flush()


def test_every_request_at_rate_one_as_json_without_headers(tmp_path: Path) -> None:
    offer(sampler(tmp_path), 3)
    found = records(tmp_path)
    assert len(found) == 3
    first = found[0]
    assert first["request"] == json.loads(BODY) and first["response"] == {"predictions": [1]}
    assert first["deployment"] == "blue" and first["status"] == 200 and first["path"] == "/invocations"
    assert set(first) == {"time", "endpoint", "deployment", "path", "status", "latency_ms", "request", "response"}
    assert "secret-key" not in "".join(f.read_text() for f in tmp_path.rglob("*.jsonl"))
    [file] = list(tmp_path.rglob("*.jsonl"))
    assert file.relative_to(tmp_path).parts[0] == "blue"  # DEPLOYMENT/YYYY/MM/DD/HH.jsonl
    assert file.relative_to(tmp_path).as_posix()[5:] == time.strftime("%Y/%m/%d/%H.jsonl", time.gmtime())


def test_bodies_of_refused_or_compressed_requests_stay_valid_json(tmp_path: Path) -> None:
    offer(sampler(tmp_path), 1, b'{"broken', status=400)
    gzip = [(b"content-type", JSON), (b"content-encoding", b"gzip")]
    offer(sampler(tmp_path), 1, b"\x1f\x8b\x08binary", headers=gzip)
    refused, compressed = records(tmp_path)  # every line parses
    assert refused["request"] == '{"broken' and refused["status"] == 400
    assert compressed["request_encoding"] == "gzip" and compressed["request_bytes"] == 9
    assert "request" not in compressed


def test_a_share_of_requests_at_a_lower_rate(tmp_path: Path) -> None:
    random.seed(7)
    offer(sampler(tmp_path, rate=0.25), 4000)
    # Binomial(4000, 0.25): mean 1000, standard deviation 27; five of them either side.
    assert 865 <= len(records(tmp_path)) <= 1135


def test_a_record_over_the_size_bound_keeps_its_figures_not_its_bodies(tmp_path: Path) -> None:
    large = json.dumps({"dataframe_split": {"columns": ["a"], "data": [[i] for i in range(2000)]}}).encode()
    offer(sampler(tmp_path, max_record_size=1024), 1, large)
    [record] = records(tmp_path)
    assert record["truncated"] is True and record["request_bytes"] == len(large)
    assert "request" not in record and "response" not in record
    assert all(len(line) <= 1024 for file in tmp_path.rglob("*.jsonl") for line in file.read_bytes().splitlines())


def test_the_per_minute_cap(tmp_path: Path) -> None:
    if time.time() % 60 > 55:  # all offers within one minute
        time.sleep(61 - time.time() % 60)
    taker = sampler(tmp_path, max_records_per_minute=25)
    offer(taker, 100)
    assert len(records(tmp_path)) == 25 and taker.dropped == 75


def test_files_older_than_the_retention_go(tmp_path: Path) -> None:
    old = tmp_path / "blue" / "2020" / "01" / "01" / "00.jsonl"
    old.parent.mkdir(parents=True)
    old.write_text("{}\n")
    os.utime(old, (time.time() - 7200, time.time() - 7200))
    offer(sampler(tmp_path, retention=3600.0), 1)  # the first record of an hour prunes
    assert not old.exists() and len(records(tmp_path)) == 1


def test_the_gateway_config_takes_sampling_and_its_digest_says_so(tmp_path: Path) -> None:
    base = {"endpoint": "e", "auth": "none", "deployments": {"blue": {"weight": 100, "replicas": []}}}
    settings = {"folder": str(tmp_path), "rate": 0.5, "max_record_size": 100, "max_records_per_minute": 5,
                "retention": 60}
    plain, sampled = parse(base), parse({**base, "sampling": settings})
    assert plain.sampling is None and sampled.sampling == SamplingSettings(str(tmp_path), 0.5, 100, 5, 60.0)
    assert routing_digest(plain) != routing_digest(sampled)
    for wrong in ({**settings, "rate": 0}, {**settings, "folder": "relative"}, {"rate": 1}):
        with pytest.raises(ConfigError, match="sampling"):
            parse({**base, "sampling": wrong})
