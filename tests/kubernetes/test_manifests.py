"""`mlspec compile --target kubernetes --format manifests`: deterministic, committed stacks current, clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from mlspec.backends.pulumi.compile import dockerfiles
from mlspec.cli.main import main
from tests.kubernetes.conftest import REGISTRY, ROOT, SPECS, STACKS, compiled, fake_digests, program_of


def _tree(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _compile(spec: Path, out: Path, *extra: str) -> int:
    return main(["compile", str(spec), "--target", "kubernetes", "--format", "manifests", "--registry", REGISTRY,
                 "-o", str(out), *extra])


@pytest.mark.parametrize("name", sorted(STACKS))
def test_committed_stack_is_current(name: str) -> None:
    stack = ROOT / "stacks" / STACKS[name]
    expected = compiled(name, pinned=False).files
    on_disk = {k: v.decode() for k, v in _tree(stack).items()} if stack.is_dir() else {}
    hint = (f"stacks/{STACKS[name]} is stale: run `mlspec compile examples/{name} --target kubernetes --format "
            f"manifests --registry {REGISTRY} -o stacks/{STACKS[name]}`")
    assert sorted(on_disk) == sorted(expected), hint
    for rel, text in expected.items():
        assert on_disk[rel] == text, f"{hint} ({rel} differs)"


def test_compiling_twice_writes_the_same_bytes(tmp_path: Path) -> None:
    assert _compile(SPECS["distributed"], tmp_path / "a") == 0
    first = _tree(tmp_path / "a")
    assert _compile(SPECS["distributed"], tmp_path / "a") == 0
    assert _tree(tmp_path / "a") == first
    assert _compile(SPECS["distributed"], tmp_path / "b") == 0
    assert _tree(tmp_path / "b") == first


def test_kustomization_lists_every_manifest_and_pins_digests(tmp_path: Path) -> None:
    digests = fake_digests(program_of("iris"))
    (tmp_path / "images.json").write_text(json.dumps(digests))
    assert _compile(SPECS["iris"], tmp_path / "out", "--images", str(tmp_path / "images.json")) == 0
    kustomization = yaml.safe_load((tmp_path / "out" / "kustomization.yaml").read_text())
    assert kustomization["resources"] == sorted(p.relative_to(tmp_path / "out").as_posix()
                                                for p in (tmp_path / "out" / "manifests").iterdir())
    assert {i["name"] + "@" + i["digest"] for i in kustomization["images"]} == set(digests.values())
    text = "".join(p.read_text() for p in (tmp_path / "out" / "manifests").iterdir())
    assert not [reference for reference in digests if reference in text]  # no image by tag
    pulled = [d for r, d in digests.items() if "-runtime:" in r or "-job-" in r]  # environments are build bases
    assert pulled and all(d in text for d in pulled)


def test_images_file_missing_an_image_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    digests = fake_digests(program_of("iris"))
    digests.popitem()
    (tmp_path / "images.json").write_text(json.dumps(digests))
    assert _compile(SPECS["iris"], tmp_path / "out", "--images", str(tmp_path / "images.json")) == 2
    assert "the images file has no digest for" in capsys.readouterr().err


def test_a_registry_is_required(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["compile", str(SPECS["iris"]), "--target", "kubernetes", "--format", "manifests", "-o",
                 str(tmp_path)])
    assert code == 2 and "pass --registry REGISTRY" in capsys.readouterr().err


def test_dockerfiles_are_the_docker_targets() -> None:
    program = program_of("iris")
    files = compiled("iris", pinned=False).files
    assert {k: v for k, v in files.items() if k.startswith("docker/")} == dockerfiles(program)


def test_no_secret_value_is_written_and_the_readme_names_the_ones_to_create() -> None:
    spec = compiled("distributed", pinned=True)
    assert not [o for o in spec.objects if o["kind"] == "Secret"]
    assert spec.external_secrets == {"notebook-jupyter", "ddp-internal-token", "ddp-gateway-keys"}
    assert "endpoint/" not in spec.files["README.md"]


def test_endpoints_come_after_the_jobs_that_register_their_models_and_their_secrets_are_documented() -> None:
    iris = compiled("iris", pinned=False)
    jobs = {o["metadata"]["labels"]["mlspec.io/job"]: o["metadata"]["name"] for o in iris.objects if o["kind"] == "Job"}
    replicas = {o["metadata"]["name"]: o for o in iris.objects
                if o["kind"] == "Deployment" and o["metadata"]["name"].startswith("iris-")}
    assert replicas["iris-blue"]["metadata"]["annotations"]["mlspec.io/depends-on"] == f"Job/{jobs['train']}"
    assert replicas["iris-green"]["metadata"]["annotations"]["mlspec.io/depends-on"] == f"Job/{jobs['train-forest']}"
    assert {"iris-internal-token", "iris-gateway-keys"} <= iris.external_secrets
    assert "online endpoints are not compiled" not in iris.files["README.md"]


def test_distributed_job_is_an_indexed_job_torchrun_can_rendezvous_on() -> None:
    objects = compiled("distributed", pinned=True).objects
    job = next(o for o in objects if o["kind"] == "Job" and o["metadata"]["name"].startswith("train-ddp-"))
    name, spec = job["metadata"]["name"], job["spec"]
    assert (spec["completionMode"], spec["completions"], spec["parallelism"]) == ("Indexed", 2, 2)
    assert spec["backoffLimit"] == 1 and spec["activeDeadlineSeconds"] == 3600
    pod = spec["template"]["spec"]
    assert pod["subdomain"] == name and pod["restartPolicy"] == "Never"
    service = next(o for o in objects if o["kind"] == "Service" and o["metadata"]["name"] == name)
    assert service["spec"]["clusterIP"] == "None" and service["spec"]["publishNotReadyAddresses"] is True
    config = next(o for o in objects if o["kind"] == "ConfigMap" and o["metadata"]["name"] == f"{name}-run")
    runs = {key: json.loads(text) for key, text in config["data"].items()}
    assert sorted(runs) == ["node-0.json", "node-1.json"]
    for rank in (0, 1):
        command = runs[f"node-{rank}.json"]["command"]
        assert command.startswith(f"torchrun --nnodes 2 --node-rank {rank} --nproc-per-node 1 --rdzv-backend static "
                                  f"--master-addr {name}-0.{name} --master-port 29400")
    assert runs["node-0.json"]["outputs"]["model"]["register_as"] == "ddp-mlp"
    assert runs["node-1.json"]["outputs"]["model"]["register_as"] is None
    assert pod["containers"][0]["command"][3] == "/etc/mlspec/node-$(JOB_COMPLETION_INDEX).json"
    assert pod["nodeSelector"] == {"nvidia.com/gpu.product": "NVIDIA-A100-SXM4-80GB", "pool": "a100-spot"}
    assert {"key": "kubernetes.azure.com/scalesetpriority", "operator": "Equal", "value": "spot",
            "effect": "NoSchedule"} in pod["tolerations"]
    low = next(o for o in objects if o["kind"] == "PriorityClass" and o["metadata"]["name"] == pod["priorityClassName"])
    assert low["value"] < 0 and low["preemptionPolicy"] == "Never"
    evaluate = next(o for o in objects if o["kind"] == "Job" and o["metadata"]["name"].startswith("evaluate-"))
    assert evaluate["metadata"]["annotations"]["mlspec.io/depends-on"] == f"Job/{name}"
    assert int(evaluate["metadata"]["annotations"]["argocd.argoproj.io/sync-wave"]) > int(
        job["metadata"]["annotations"]["argocd.argoproj.io/sync-wave"])


def test_quota_holds_what_the_workloads_may_run_at_once() -> None:
    objects = compiled("distributed", pinned=True).objects
    quota = next(o for o in objects if o["kind"] == "ResourceQuota" and o["metadata"]["name"] == "workspace")
    # MLflow 1 CPU + notebook 1 CPU + cluster gpus 2 x 4 CPU + cluster cpu 1 x 1 CPU, and the endpoint: its
    # replicas' autoscaler maximum 3 + 1 in a rollout (1 CPU each, on compute cpu), its gateway's 2 + 1 (1 CPU each)
    assert quota["spec"]["hard"]["requests.cpu"] == "18000m"
    assert quota["spec"]["hard"]["requests.nvidia.com/gpu"] == "2" and quota["spec"]["hard"]["pods"] == "12"
    gpus = next(o for o in objects if o["kind"] == "ResourceQuota" and o["metadata"]["name"] == "cluster-gpus")
    assert gpus["spec"]["hard"]["pods"] == "2"


def test_instance_keeps_its_notebooks_claim() -> None:
    objects = compiled("distributed", pinned=True).objects
    stateful = next(o for o in objects if o["kind"] == "StatefulSet")
    assert stateful["spec"]["persistentVolumeClaimRetentionPolicy"]["whenDeleted"] == "Retain"
    assert stateful["spec"]["volumeClaimTemplates"][0]["metadata"]["name"] == "notebooks"


def test_the_docker_target_compiles_distributed_jobs_but_not_gpu_types(capsys: pytest.CaptureFixture[str],
                                                          tmp_path: Path) -> None:
    assert main(["compile", str(SPECS["distributed"]), "--target", "docker", "-o", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "resources.gpu_type is not supported on the docker target" in err
    assert "Job 'train-ddp'" not in err  # its nodes and distribution compile


def test_validate_for_kubernetes_checks_each_field_and_refuses_what_is_not_built_at_its_line(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(SPECS["iris"]), "--target", "kubernetes"]) == 0
    capsys.readouterr()
    spec = tmp_path / "spec"
    spec.mkdir()
    (spec / "mlspec.yaml").write_text("kind: Workspace\nname: w\n---\nkind: Compute\nname: serving\n"
                                      "type: inference-cluster\nnodes: 3\n")
    assert main(["validate", str(spec), "--target", "kubernetes"]) == 0
    capsys.readouterr()
    (spec / "mlspec.yaml").write_text("kind: Workspace\nname: w\n---\nkind: Compute\nname: nb\n"
                                      "type: instance\nidle_time_before_shutdown: 1h\n")
    assert main(["validate", str(spec), "--target", "kubernetes"]) == 2
    err = capsys.readouterr().err
    assert "mlspec.yaml:7:1" in err and "not stopped on the kubernetes target yet" in err


def test_node_pools_must_name_declared_computes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _compile(SPECS["iris"], tmp_path, "--node-pool", "gpux=pool=a100") == 2
    assert "node pools are given for gpux, which the spec does not declare" in capsys.readouterr().err
    assert _compile(SPECS["iris"], tmp_path, "--node-pool", "cpu") == 2
    assert "expected COMPUTE=LABEL=VALUE" in capsys.readouterr().err


def test_a_tag_that_cannot_be_a_label_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = tmp_path / "spec"
    spec.mkdir()
    (spec / "mlspec.yaml").write_text("kind: Workspace\nname: w\ntags: {team: 'two words'}\n")
    assert _compile(spec, tmp_path / "out") == 2
    assert "'two words' cannot be a Kubernetes label" in capsys.readouterr().err


def test_the_format_must_fit_the_target(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["compile", str(SPECS["iris"]), "--target", "kubernetes", "--registry", REGISTRY, "-o",
                 str(tmp_path / "program")]) == 0  # the default format: a Pulumi program
    assert (tmp_path / "program" / "__main__.py").is_file() and not (tmp_path / "program" / "manifests").exists()
    assert main(["compile", str(SPECS["iris"]), "--target", "docker", "--format", "manifests", "-o",
                 str(tmp_path)]) == 2
    assert "the docker target compiles to a Pulumi program" in capsys.readouterr().err


def test_a_tracking_uri_of_the_spec_replaces_the_workspace_server(tmp_path: Path) -> None:
    _, objects = _with_teams_tracking_server(tmp_path)
    assert not [o for o in objects if o["metadata"]["name"] == "mlflow"]
    jobs = [o for o in objects if o["kind"] == "Job"]
    assert jobs and all("initContainers" not in j["spec"]["template"]["spec"] for j in jobs)
    env = {e["name"]: e.get("value") for e in jobs[0]["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["MLFLOW_TRACKING_URI"] == "https://mlflow.example"
    assert "https://mlflow.example" in next(o for o in objects if o["kind"] == "ConfigMap")["data"]["node-0.json"]


def test_the_teams_tracking_server_credentials_reach_mlflow_as_its_credentials_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With `tracking.uri`, every container that talks to MLflow mounts the optional `mlflow-credentials` Secret
    where MLflow reads its credentials file ($HOME/.mlflow/credentials), and the README's command makes a file
    that MLflow's own reader accepts."""
    import subprocess

    files, objects = _with_teams_tracking_server(tmp_path)
    pods = [o["spec"]["template"]["spec"] for o in objects if o["kind"] in ("Deployment", "Job", "StatefulSet")]
    talking = 0
    for pod in pods:
        for container in pod["containers"]:
            env = {e["name"]: e.get("value") for e in container.get("env", [])}
            if "MLFLOW_TRACKING_URI" not in env:
                continue
            talking += 1
            (mount,) = [m for m in container["volumeMounts"] if m["name"] == "mlflow-credentials"]
            assert mount["mountPath"] == f"{env['HOME']}/.mlflow" and mount["readOnly"]
            (volume,) = [v for v in pod["volumes"] if v["name"] == "mlflow-credentials"]
            assert volume["secret"]["optional"] is True
            assert volume["secret"]["items"] == [{"key": "credentials", "path": "credentials"}]
    assert talking >= 4  # two jobs, two replicas
    command = next(line.strip() for line in files["README.md"].splitlines() if "mlflow-credentials" in line and
                   "printf" in line)
    home = tmp_path / "home"
    (home / ".mlflow").mkdir(parents=True)
    subprocess.run(command.split("; kubectl")[0], shell=True, check=True, cwd=home / ".mlflow",
                   env={"USER_NAME": "team", "PASSWORD": "s3cret", "PATH": "/usr/bin:/bin"})
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("MLFLOW_TRACKING_USERNAME", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_PASSWORD", raising=False)
    from mlflow.utils.credentials import read_mlflow_creds

    creds = read_mlflow_creds()
    assert (creds.username, creds.password) == ("team", "s3cret")


def _with_teams_tracking_server(tmp_path: Path) -> tuple[dict[str, str], list[dict]]:
    """The manifests of examples/iris with `tracking.uri` (the team's MLflow server), and their objects."""
    import shutil

    from mlspec.backends.pulumi.manifests import ManifestSettings, manifest_files
    from mlspec.backends.pulumi.model import build_program
    from mlspec.graph import analyze

    spec = tmp_path / "iris"
    shutil.copytree(SPECS["iris"], spec, ignore=shutil.ignore_patterns(".mlspec"))
    text = (spec / "mlspec.yaml").read_text()
    (spec / "mlspec.yaml").write_text(text.replace("defaults:\n", "tracking: {uri: 'https://mlflow.example'}\n"
                                                                  "defaults:\n", 1))
    graph = analyze([spec], "kubernetes").graph
    files = manifest_files(build_program(graph, tmp_path / "out"), ManifestSettings(REGISTRY))
    return files, [yaml.safe_load(t) for rel, t in files.items() if rel.startswith("manifests/")]
