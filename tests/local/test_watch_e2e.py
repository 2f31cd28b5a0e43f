"""Watching a live local endpoint (the iris model behind the real gateway, two replicas, every request sampled):
`endpoint stats` counts exactly what was sent, samples hold no key and keep their bounds, `endpoint drift` flags a
shifted feature and not an unshifted one, and `lineage` names the data version `status` shows."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import random
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from mlspec.cli.drift_commands import _html
from mlspec.cli.main import main
from tests.local.conftest import EXAMPLES, mlspec, status, wait_for

pytestmark = pytest.mark.e2e

COLUMNS = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
ENDPOINT = """
kind: Endpoint
name: iris
type: online
deployments:
  blue: {model: iris-clf@latest, instance_count: 2}
data_collector: {sampling_rate: 1.0, max_record_size: 4Ki, max_records_per_minute: 150}
"""
CAP = 150


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The iris model behind its gateway (one training job), sampling every request."""
    target = tmp_path_factory.mktemp("watch") / "iris"
    shutil.copytree(EXAMPLES / "iris", target, ignore=shutil.ignore_patterns(".mlspec", "__pycache__"))
    spec = target / "mlspec.yaml"
    text = spec.read_text()
    spec.write_text(text[:text.index("---\nkind: Job\nname: train-forest")] + "---" + ENDPOINT)
    mlspec("up", str(target), "--yes")
    yield target
    mlspec("down", str(target), "--yes", "--purge", check=False)
    # The samples and the traffic record are the endpoint's data: --purge takes them too.
    assert not (target / ".mlspec" / "samples" / "iris").exists()
    assert not (target / ".mlspec" / "endpoints" / "iris" / "traffic.jsonl").exists()


def _training_rows() -> list[list[float]]:
    with (EXAMPLES / "iris" / "data" / "iris.csv").open() as file:
        return [[float(row[c]) for c in COLUMNS] for row in csv.DictReader(file)]


class Client:
    def __init__(self, spec: Path) -> None:
        self.url = str(status(spec)["resources"]["endpoint/iris"]["outputs"]["url"])
        self.keys = json.loads(mlspec("endpoint", "keys", "iris", str(spec), "--json").stdout)
        self.http = httpx.Client(timeout=30)
        self.random = random.Random(11)

    def send(self, rows: list[list[float]], header: str = "authorization") -> int:
        value = f"Bearer {self.keys['primary']}" if header == "authorization" else self.keys["secondary"]
        body = {"dataframe_split": {"columns": COLUMNS, "data": rows}}
        return self.http.post(f"{self.url}/invocations", json=body, headers={header: value}).status_code

    def rows(self, count: int, shift: float = 0.0) -> list[list[float]]:
        """Rows drawn from the training data; `shift` added to petal_length."""
        drawn = self.random.choices(_training_rows(), k=count)
        return [[a, b, c + shift, d] for a, b, c, d in drawn]


@pytest.fixture(scope="module")
def client(served: Path) -> Client:
    return Client(served)


def cli(*args: str) -> str:
    """A reading command of the real CLI, in this process: it reads the workspace, changes nothing, and imports
    MLflow, pandas and scipy once for the whole file instead of once a call."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(list(args)) == 0
    return out.getvalue()


def stats(spec: Path) -> dict[str, Any]:
    return json.loads(cli("endpoint", "stats", "iris", str(spec), "--window", "10m", "--json"))  # type: ignore[no-any-return]


def samples(spec: Path) -> list[dict[str, Any]]:
    folder = spec / ".mlspec" / "samples" / "iris"
    return [json.loads(line) for file in sorted(folder.rglob("*.jsonl")) for line in file.read_text().splitlines()]


def _answered(spec: Path) -> int:
    return sum(1 for r in samples(spec) if r.get("status") == 200 and "request" in r)


def test_stats_count_every_answer_per_deployment_and_replica(served: Path, client: Client) -> None:
    before = stats(served)
    blue_before = before["deployments"].get("blue", {"requests": 0, "errors_4xx": 0, "errors_5xx": 0})
    for _ in range(14):
        assert client.send(client.rows(5)) == 200
    for _ in range(3):  # a column the model does not know: the replica's 4xx
        bad = {"dataframe_split": {"columns": ["nope"], "data": [[1.0]]}}
        answer = client.http.post(f"{client.url}/invocations", json=bad,
                                  headers={"authorization": f"Bearer {client.keys['primary']}"})
        assert 400 <= answer.status_code < 500
    for _ in range(2):  # no key: the gateway's own 401
        assert client.http.post(f"{client.url}/invocations", json={}).status_code == 401

    after = stats(served)
    blue = after["deployments"]["blue"]
    assert blue["requests"] - blue_before["requests"] == 17
    assert blue["errors_4xx"] - blue_before["errors_4xx"] == 3 and blue["errors_5xx"] == blue_before["errors_5xx"]
    assert sum(r["requests"] for r in blue["replicas"].values()) == blue["requests"]
    assert len(blue["replicas"]) == 2 and all(name.startswith("blue/") for name in blue["replicas"])
    assert after["gateway"]["errors_4xx"] - before["gateway"]["errors_4xx"] == 2
    assert after["total"]["requests"] - before["total"]["requests"] == 19
    assert 0 < blue["p50_ms"] <= blue["p99_ms"] < 10_000  # bucketed: plausible, not exact
    text = mlspec("endpoint", "stats", "iris", str(served)).stdout  # once from a fresh process, as a user runs it
    assert "blue" in text and "refused before routing" in text


def test_samples_hold_no_key_and_keep_their_size_bound(served: Path, client: Client) -> None:
    time.sleep(1.2)  # earlier answers reach their file within a second
    before = len(samples(served))
    assert client.send(client.rows(3), header="api-key") == 200
    large = client.rows(300)  # about 9 KiB of JSON: over the 4 KiB bound
    assert client.send(large) == 200
    wait_for(lambda: any(r.get("truncated") for r in samples(served)), 10)
    time.sleep(1.2)
    found = samples(served)
    assert len(found) == before + 2  # rate 1.0: every answered request
    truncated = [r for r in found if r.get("truncated")]
    assert len(truncated) == 1 and truncated[0]["request_bytes"] > 4096 and "request" not in truncated[0]
    assert all(r["deployment"] == "blue" for r in found)
    files = "".join(file.read_text() for file in (served / ".mlspec" / "samples").rglob("*.jsonl"))
    for secret in (client.keys["primary"], client.keys["secondary"], "authorization", "api-key", "Bearer"):
        assert secret not in files
    assert all(len(line.encode()) <= 4096 for line in files.splitlines())


def test_drift_flags_the_shifted_feature_only(served: Path, client: Client) -> None:
    answered = _answered(served)
    for _ in range(10):
        assert client.send(client.rows(10)) == 200
    wait_for(lambda: _answered(served) >= answered + 10, 10)
    report = json.loads(cli("endpoint", "drift", "iris", str(served), "--format", "json"))
    blue = report["deployments"]["blue"]
    assert blue["reference"]["data"] == "iris" and blue["rows"]["reference"] == 150
    assert blue["drift"] is False and not any(f["drift"] for f in blue["features"].values()), blue["features"]

    answered = _answered(served)
    for _ in range(30):
        assert client.send(client.rows(10, shift=3.0)) == 200
    wait_for(lambda: _answered(served) >= answered + 30, 10)
    report = json.loads(cli("endpoint", "drift", "iris", str(served), "--format", "json"))
    features = report["deployments"]["blue"]["features"]
    assert features["petal_length"]["drift"] is True and features["petal_length"]["test"] == "ks"
    assert features["petal_length"]["p_value"] < 0.001
    assert features["sepal_width"]["drift"] is False
    page = _html(report)
    assert page.startswith("<!doctype html>") and '<td>petal_length</td>' in page and 'class="drift">yes' in page


def test_lineage_names_the_data_version_status_shows(served: Path) -> None:
    shown = status(served)["resources"]
    chain = json.loads(cli("lineage", "iris", str(served), "--json"))
    blue = chain["deployments"]["blue"]
    assert blue["model"]["name"] == "iris-clf" and blue["traffic"] == 100
    assert blue["run"]["data"] == {"iris": shown["data/iris"]["outputs"]["version"]}
    assert blue["run"]["inputs"] == {"data": "iris"} and blue["run"]["job"] == "train"
    assert len(blue["run"]["code"]) == 12 and blue["run"]["environment"].startswith("sklearn:")
    text = cli("lineage", "iris", str(served))
    assert f"iris version {shown['data/iris']['outputs']['version']}" in text


def test_the_per_minute_cap(served: Path, client: Client) -> None:
    """Last: it spends the minute's records. Sent in a burst that may straddle a minute, the larger part (at
    least half) still reaches the cap."""
    for _ in range(2 * CAP + 10):
        assert client.send(client.rows(1)) == 200
    time.sleep(1.5)  # the sampler's buffer reaches its file within a second
    per_minute: dict[str, int] = {}
    for record in samples(served):
        per_minute[record["time"][:16]] = per_minute.get(record["time"][:16], 0) + 1
    assert max(per_minute.values()) == CAP, per_minute
