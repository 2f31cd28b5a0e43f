"""A kubernetes stack's status, logs, endpoint keys|invoke, runs and models: kubectl run on the stack's namespace
and labels where it reaches a cluster, else what is missing (exit 1) and the commands to run, built from the spec
and the stack; the names a command does not know are usage mistakes (exit 2)."""

from __future__ import annotations

import shutil
import socket
from pathlib import Path

import pytest

from mlspec.cli.main import main

ROOT = Path(__file__).resolve().parents[2]
STACKS = """\
stacks:
  prod:
    target: kubernetes
    kubernetes: {context: prod, namespace: ml-prod}
  current:
    target: kubernetes
  staging:
    target: docker
"""


@pytest.fixture
def spec(tmp_path: Path) -> Path:
    """A spec with jobs, an online and a batch endpoint and a compute instance, and its stacks."""
    folder = tmp_path / "distributed"
    shutil.copytree(ROOT / "tests" / "kubernetes" / "specs" / "distributed", folder)
    (folder / "mlspec.stacks.yaml").write_text(STACKS)
    return folder


@pytest.fixture
def no_kubectl(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    empty = tmp_path / "bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))


def _kubeconfig(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, context: str, server: str) -> None:
    config = tmp_path / "kubeconfig"
    config.write_text(f"""\
apiVersion: v1
kind: Config
clusters: [{{name: c, cluster: {{server: "{server}"}}}}]
users: [{{name: u, user: {{token: t}}}}]
contexts: [{{name: {context}, context: {{cluster: c, user: u}}}}]
current-context: {context}
""")
    monkeypatch.setenv("KUBECONFIG", str(config))


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])  # closed again when this returns: nothing listens there


def _err(capfd: pytest.CaptureFixture[str]) -> str:
    return capfd.readouterr().err


def test_status_without_kubectl_says_so_and_gives_the_command(
        spec: Path, no_kubectl: None, capfd: pytest.CaptureFixture[str]) -> None:
    assert main(["status", str(spec), "--stack", "prod"]) == 1
    err = _err(capfd)
    assert "status on a kubernetes stack reads the cluster with kubectl, and no `kubectl` command is on PATH" in err
    assert ("kubectl --context prod -n ml-prod get deployments,statefulsets,jobs,cronjobs,pods,services,"
            "persistentvolumeclaims -l app.kubernetes.io/part-of=distributed\n") in err
    assert not (spec / ".mlspec").exists(), "nothing of the local engine was written"


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="needs kubectl")
def test_status_names_the_missing_context(spec: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                          capfd: pytest.CaptureFixture[str]) -> None:
    _kubeconfig(tmp_path, monkeypatch, "elsewhere", "https://127.0.0.1:1")
    assert main(["status", str(spec), "--stack", "prod"]) == 1
    assert "the kubeconfig has no context 'prod' (the stack's `kubernetes.context`)" in _err(capfd)
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "none"))  # no kubeconfig: no current context either
    assert main(["status", str(spec), "--stack", "current"]) == 1
    err = _err(capfd)
    assert "kubectl has no current context" in err and "kubectl -n distributed get " in err


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="needs kubectl")
def test_status_runs_kubectl_on_the_stacks_context_and_passes_its_failure_on(
        spec: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]) -> None:
    _kubeconfig(tmp_path, monkeypatch, "prod", f"https://127.0.0.1:{_closed_port()}")
    assert main(["status", str(spec), "--stack", "prod", "--json"]) == 1
    err = _err(capfd)
    assert "connection refused" in err.lower()  # kubectl itself, reaching for the context's server
    assert "`kubectl --context prod -n ml-prod get deployments" in err and "-o json` exited 1" in err


@pytest.mark.parametrize(("name", "selector"), [
    ("train-ddp", "mlspec.io/workspace=distributed,mlspec.io/job=train-ddp"),
    ("ddp", "'mlspec.io/workspace=distributed,app.kubernetes.io/name in (ddp,ddp-main)'"),
    ("score", "mlspec.io/workspace=distributed,mlspec.io/endpoint=score"),
    ("notebook", "mlspec.io/workspace=distributed,app.kubernetes.io/component=notebooks,"
                 "app.kubernetes.io/name=notebook"),
])
def test_logs_select_the_pods_of_what_is_named(spec: Path, no_kubectl: None, capfd: pytest.CaptureFixture[str],
                                               name: str, selector: str) -> None:
    assert main(["logs", name, str(spec), "--stack", "prod", "-n", "50"]) == 1
    assert (f"  kubectl --context prod -n ml-prod logs -l {selector} --all-containers --prefix --max-log-requests 20 "
            "--tail 50\n") in _err(capfd)


def test_logs_of_an_unknown_name_is_a_usage_mistake(spec: Path, capfd: pytest.CaptureFixture[str]) -> None:
    assert main(["logs", "nothing", str(spec), "--stack", "prod"]) == 2
    assert "no logs for 'nothing': name a job, an endpoint or a compute instance of the spec" in _err(capfd)


def test_runs_and_models_say_how_to_reach_the_clusters_mlflow(spec: Path, capfd: pytest.CaptureFixture[str]) -> None:
    for command in ("runs", "models"):
        assert main([command, str(spec), "--stack", "prod"]) == 1
        err = _err(capfd)
        assert "the workspace's MLflow runs in the cluster (Service mlflow in namespace ml-prod)" in err
        assert "  kubectl --context prod -n ml-prod port-forward svc/mlflow 5000:5000\n" in err
        assert f"  mlspec {command} --tracking-uri http://127.0.0.1:5000 ..." in err


def test_invoke_without_a_url_gives_the_port_forward(spec: Path, no_kubectl: None,
                                                     capfd: pytest.CaptureFixture[str]) -> None:
    (spec / "request.json").write_text("{}")
    assert main(["endpoint", "invoke", "ddp", str(spec), "--stack", "prod", "--data", str(spec / "request.json")]) == 1
    err = _err(capfd)
    assert "endpoint ddp is a Service of the cluster: forward its gateway" in err
    assert "  kubectl --context prod -n ml-prod port-forward svc/ddp 8080:80\n" in err
    assert "  mlspec endpoint invoke ddp --url http://127.0.0.1:8080 ..." in err
    assert main(["endpoint", "invoke", "ddp", str(spec), "--stack", "prod", "--data", str(spec / "request.json"),
                 "--url", "http://127.0.0.1:1"]) == 1  # no --api-key, and no pulumi to read the stack's keys with
    assert "Pulumi output ddp.keys" in (err := _err(capfd)) and "and pass the key as --api-key KEY" in err
    assert main(["endpoint", "invoke", "score", str(spec), "--stack", "prod", "--data", "x.json"]) == 2
    assert "'score' is not an online endpoint of the spec" in _err(capfd)


def test_keys_without_pulumi_give_the_stack_output_command(
        spec: Path, no_kubectl: None, capfd: pytest.CaptureFixture[str]) -> None:
    assert main(["endpoint", "keys", "ddp", str(spec), "--stack", "prod"]) == 1
    err = _err(capfd)
    assert "the endpoint's keys are the stack's Pulumi output ddp.keys: the kubernetes target runs Pulumi" in err
    folder = (spec / ".mlspec" / "kubernetes").resolve()
    assert (f"  cd {folder / 'project'} && PULUMI_BACKEND_URL={(folder / 'state').as_uri()} pulumi stack output "
            "--stack prod --show-secrets ddp.keys") in err
    assert main(["endpoint", "keys", "ddp", str(spec), "--stack", "prod", "--regenerate", "primary"]) == 2
    assert "a kubernetes stack's keys are Pulumi's" in _err(capfd)
