"""A docker stack's endpoint keys|invoke, runs, models, compute and logs: the keys and MLflow's credentials from the
stack's outputs (a recorded state stands in for Pulumi's engine), `--regenerate` an update replacing exactly that
key's RandomPassword, and the names a command does not know refused as usage mistakes (exit 2)."""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest

from mlspec.cli import stack_state
from mlspec.cli.main import main
from tests.cli.recorded_stack import RecordedStack

ROOT = Path(__file__).resolve().parents[2]
KEY_URN = ("urn:pulumi:staging::distributed::mlspec:docker:OnlineEndpoint$random:index/randomPassword:"
           "RandomPassword::ddp-{slot}-key")
URNS = [KEY_URN.format(slot=s) for s in ("primary", "secondary")] + [
    "urn:pulumi:staging::distributed::mlspec:docker:OnlineEndpoint$random:index/randomPassword:"
    "RandomPassword::ddp-internal-token"]


@pytest.fixture
def spec(tmp_path: Path) -> Path:
    """Jobs, an online and a batch endpoint, clusters and an instance, and a docker stack."""
    folder = tmp_path / "distributed"
    shutil.copytree(ROOT / "tests" / "kubernetes" / "specs" / "distributed", folder)
    (folder / "mlspec.stacks.yaml").write_text("stacks:\n  staging:\n    target: docker\n")
    return folder


@pytest.fixture
def recorded(monkeypatch: pytest.MonkeyPatch) -> RecordedStack:
    state = RecordedStack({"ddp.keys": {"primary": "key-one", "secondary": "key-two"}}, list(URNS))
    monkeypatch.setattr(stack_state, "opener", lambda args: state)
    return state


def _run(capfd: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capfd.readouterr()
    return code, out, err


def test_keys_come_from_the_stack_outputs(spec: Path, recorded: RecordedStack,
                                          capfd: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capfd, "endpoint", "keys", "ddp", str(spec), "--stack", "staging", "--json")
    assert code == 0
    assert '"primary": "key-one"' in out and '"secondary": "key-two"' in out
    assert '"url": "http://127.0.0.1:' in out  # the gateway's port on the default publish address
    assert recorded.replaced == []


def test_regenerate_replaces_that_keys_password_alone(spec: Path, recorded: RecordedStack,
                                                      capfd: pytest.CaptureFixture[str]) -> None:
    def rotate(outputs: dict[str, Any], replace: list[str]) -> None:
        outputs["ddp.keys"] = {**outputs["ddp.keys"], "secondary": "key-three"}

    recorded.on_update = rotate
    code, out, _ = _run(capfd, "endpoint", "keys", "ddp", "--regenerate", "secondary", str(spec), "--stack", "staging")
    assert code == 0
    assert recorded.replaced == [[KEY_URN.format(slot="secondary")]]
    assert "primary:   key-one\nsecondary: key-three" in out


def test_keys_missing_from_the_stack_say_to_deploy(spec: Path, recorded: RecordedStack,
                                                   capfd: pytest.CaptureFixture[str]) -> None:
    recorded.recorded.clear()
    recorded.resources.clear()
    code, _, err = _run(capfd, "endpoint", "keys", "ddp", str(spec), "--stack", "staging")
    assert code == 1 and "the stack has no output ddp.keys (endpoint ddp's keys): run `mlspec up`" in err
    code, _, err = _run(capfd, "endpoint", "keys", "ddp", "--regenerate", "primary", str(spec), "--stack", "staging")
    assert code == 1 and "has 0 resources ending" in err
    for command in ("runs", "models"):
        code, _, err = _run(capfd, command, str(spec), "--stack", "staging")
        assert code == 1 and "no output MLflow.credentials (the published MLflow's user name and password)" in err


class Gateway(BaseHTTPRequestHandler):
    seen: ClassVar[list[tuple[str, str | None, bytes]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.seen.append((self.path, self.headers.get("Authorization"), body))
        self.send_response(200)
        self.send_header("Content-Length", "17")
        self.end_headers()
        self.wfile.write(b'{"predictions":1}')

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def gateway() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Gateway)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    Gateway.seen.clear()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


def test_invoke_sends_the_stacks_key(spec: Path, recorded: RecordedStack, gateway: str, tmp_path: Path,
                                     capfd: pytest.CaptureFixture[str]) -> None:
    body = tmp_path / "request.json"
    body.write_text('{"inputs": [1]}')
    code, out, _ = _run(capfd, "endpoint", "invoke", "ddp", "--data", str(body), "--url", gateway, "--key",
                        "secondary", str(spec), "--stack", "staging")
    assert code == 0 and out.strip() == '{"predictions":1}'
    assert Gateway.seen == [("/invocations", "Bearer key-two", b'{"inputs": [1]}')]


def test_unknown_names_are_usage_mistakes(spec: Path, recorded: RecordedStack,
                                          capfd: pytest.CaptureFixture[str]) -> None:
    staging = [str(spec), "--stack", "staging"]
    code, _, err = _run(capfd, "endpoint", "keys", "score", *staging)  # a batch endpoint has no keys
    assert code == 2 and "'score' is not an online endpoint of the spec" in err
    code, _, err = _run(capfd, "compute", "stop", "nothing", *staging)
    assert code == 2 and "'nothing' is not a compute of the spec" in err
    code, _, err = _run(capfd, "logs", "nothing", *staging)
    assert code == 2 and "no logs for 'nothing': name a job, an endpoint or a compute instance of the spec" in err


def test_a_cluster_has_nothing_to_stop(spec: Path, capfd: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capfd, "compute", "stop", "gpus", str(spec), "--stack", "staging")
    assert code == 0 and "compute gpus runs jobs in containers of their own; there is nothing to stop" in out
    assert not (spec / ".mlspec").exists(), "nothing of the local engine was written"


def test_published_ports_are_reached_where_they_are_published(monkeypatch: pytest.MonkeyPatch) -> None:
    from mlspec.cli.docker_stack import DockerStack

    monkeypatch.delenv("DOCKER_HOST", raising=False)
    assert DockerStack(None, "w", None, "127.0.0.1").url(8080) == "http://127.0.0.1:8080"
    assert DockerStack(None, "w", None, "10.1.2.3").address == "10.1.2.3"
    assert DockerStack(None, "w", "ssh://ml@vm.example.com", "0.0.0.0").address == "vm.example.com"
    assert DockerStack(None, "w", None, "0.0.0.0").address == "127.0.0.1"  # the local daemon
    monkeypatch.setenv("DOCKER_HOST", "tcp://builder:2376")
    assert DockerStack(None, "w", None, "0.0.0.0").address == "builder"
    assert DockerStack(None, "w", None, "::1").url(5) == "http://[::1]:5"
