"""Attached Docker hosts: every resource of what runs on one goes through its provider; what cannot work is refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mlspec.backends.pulumi import compile_project
from mlspec.graph import analyze, load_graph
from tests.docker.attached_spec import HOST, TRACKING, attached_spec
from tests.pulumi.conftest import CONTAINER, RegistryMocks
from tests.pulumi.harness import Captured, container_file, run_program

IMAGE = "docker:index/image:Image"
NETWORK = "docker:index/network:Network"
PROVIDER = "pulumi:providers:docker"
EDGE = "docker-host-ml-edge-example-com-2222"


def _compiled(tmp_path: Path, edit: str | None = None) -> Path:
    spec = attached_spec(tmp_path / "spec")
    if edit:
        (spec / "mlspec.yaml").write_text((spec / "mlspec.yaml").read_text() + edit)
    out = tmp_path / "stack"
    compile_project(load_graph([spec]), out)
    return out


@pytest.fixture(scope="module")
def edge(tmp_path_factory: pytest.TempPathFactory) -> Captured:
    return run_program(_compiled(tmp_path_factory.mktemp("attached")), {"publishAddress": "0.0.0.0"},
                       mocks=RegistryMocks())


def test_everything_on_the_attached_compute_goes_through_its_provider(edge: Captured) -> None:
    (provider,) = edge.of_type(PROVIDER)
    assert (provider.name, provider.inputs["host"]) == (EDGE, HOST)
    custom = [r for r in edge.resources if r.custom and r.type.startswith("docker:")]
    on_edge = {r.name for r in custom if r.provider.startswith(provider.urn)}
    # The job, the endpoint and the images they run (the runtime image for the gateway and the environment built
    # on it), with the network they share there; the workspace's own network and volume stay on the stack's host.
    assert on_edge == {"train", "iris-main-0", "iris-gateway", "iris-replicas", "edge-demo-ml-edge-example-com-2222",
                       "runtime-on-ml-edge-example-com-2222", "sklearn-on-ml-edge-example-com-2222"}
    assert {r.name for r in custom} - on_edge == {"edge-demo", "edge-demo-storage"}


def test_containers_there_use_its_network_and_the_team_tracking_server(edge: Captured) -> None:
    network = edge.get(NETWORK, "edge-demo-ml-edge-example-com-2222").inputs["name"]
    job = edge.get(CONTAINER, "train")
    assert [n["name"] for n in job.inputs["networksAdvanced"]] == [network]
    assert container_file(job.inputs)["tracking_uri"] == TRACKING
    gateway = edge.get(CONTAINER, "iris-gateway")
    replica = edge.get(CONTAINER, "iris-main-0")
    assert network in {n["name"] for n in gateway.inputs["networksAdvanced"]}
    assert {n["name"] for n in replica.inputs["networksAdvanced"]} == {network, f"{network}-iris-replicas"}
    assert f"MLFLOW_TRACKING_URI={TRACKING}" in replica.inputs["envs"]
    assert not [c for c in edge.of_type(CONTAINER) if "mlflow" in c.name]  # no server of the workspace's own
    # Its images are built on the host from environment images built there.
    assert edge.get(IMAGE, "train").inputs["build"]["args"]["ENVIRONMENT_IMAGE"] == \
        edge.get(IMAGE, "sklearn-on-ml-edge-example-com-2222").inputs["imageName"]


def test_the_endpoint_url_names_the_host_when_published_on_all_its_addresses(edge: Captured) -> None:
    assert edge.exports["iris.url"].startswith("http://edge.example.com:")


def test_computes_naming_one_host_share_its_provider(tmp_path: Path) -> None:
    second = (f"---\nkind: Compute\nname: edge2\ntype: attached\nhost: {HOST}\n---\nkind: Job\nname: again\n"
              "code: src/\ncompute: edge2\ncommand: python train.py --data ${{inputs.data}} --model-dir "
              "${{outputs.model}}\ninputs:\n  data: data:iris\noutputs:\n  model: {type: model}\n")
    opts = ["-i", "/keys/ml", "-o", "UserKnownHostsFile=/keys/known_hosts"]
    captured = run_program(_compiled(tmp_path, second), {"sshOpts": json.dumps(opts)}, mocks=RegistryMocks())
    (provider,) = captured.of_type(PROVIDER)
    ssh_opts = provider.inputs["sshOpts"]
    assert (json.loads(ssh_opts) if isinstance(ssh_opts, str) else ssh_opts) == opts  # the stack's mlspec:sshOpts
    assert captured.get(CONTAINER, "again").provider.startswith(provider.urn)
    assert len(captured.of_type(NETWORK)) == 3  # the workspace's, the host's, the endpoint's replicas'


def test_the_stack_host_and_an_attached_host_each_keep_their_own(tmp_path: Path) -> None:
    captured = run_program(_compiled(tmp_path), {"dockerHost": "ssh://ops@vm"}, mocks=RegistryMocks())
    stack, attached = (captured.get(PROVIDER, name) for name in ("docker-host", EDGE))
    assert captured.get(NETWORK, "edge-demo").provider.startswith(stack.urn)
    for name in ("train", "iris-gateway", "iris-main-0"):
        assert captured.get(CONTAINER, name).provider.startswith(attached.urn), name


def _errors(spec: Path) -> list[tuple[str, str, int]]:
    return [(e.path, e.summary, e.span.line) for e in analyze([spec], "docker").diagnostics.errors]


def test_an_attached_host_without_a_team_tracking_server_is_refused_at_its_line(tmp_path: Path) -> None:
    spec = attached_spec(tmp_path / "spec", tracking_uri=None)
    ((path, summary, line),) = _errors(spec)
    lines = (spec / "mlspec.yaml").read_text().splitlines()
    assert path == "host" and "cannot reach the workspace's own MLflow" in summary
    assert lines[line - 1].startswith("host: ssh://")


def test_what_cannot_run_on_an_attached_host_is_refused_at_its_line(tmp_path: Path) -> None:
    spec = attached_spec(tmp_path / "spec", host="edge.example.com")
    assert [e[:2] for e in _errors(spec)] == [("host", "compute 'edge': 'edge.example.com' is not a Docker host")]
    text = (spec / "mlspec.yaml").read_text().replace("edge.example.com", HOST)
    split = text.replace("    compute: edge\ntraffic: {main: 100}",
                         "    compute: edge\n  other:\n    model: iris-edge@latest\ntraffic: {main: 50, other: 50}")
    batch = ("---\nkind: Endpoint\nname: scores\ntype: batch\nmodel: iris-edge@latest\ncompute: edge\n"
             "input: data:iris\noutput: {path: out/}\n")
    (spec / "mlspec.yaml").write_text(split + batch)
    errors = {e[0]: e[1] for e in _errors(spec)}
    assert "different Docker hosts" in errors["deployments.other"], errors
    assert "batch endpoints do not run yet" in errors["compute"], errors


def test_a_kubernetes_context_is_refused_on_docker(tmp_path: Path) -> None:
    spec = attached_spec(tmp_path / "spec")
    text = (spec / "mlspec.yaml").read_text().replace(f"host: {HOST}", "kube_context: edge")
    (spec / "mlspec.yaml").write_text(text)
    assert [e[0] for e in _errors(spec)] == ["kube_context"]
