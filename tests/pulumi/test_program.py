"""The compiled iris program run under Pulumi's mocks: every resource it registers, with its key inputs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mlspec.runtime.gateway.config import parse
from mlspec.runtime.keys import key_hash
from tests.pulumi.conftest import CONTAINER, ROOT, RegistryMocks, compile_copy, mock_digest
from tests.pulumi.fake_wheels import make_wheel
from tests.pulumi.harness import Captured, CapturedResource, container_file, container_files, run_program

IMAGE = "docker:index/image:Image"
PASSWORD = "random:index/randomPassword:RandomPassword"
ENV_HASH = "a6604d87d3b2661bb2fe427e6f341b5e6217d630d2173dd39ce902342536efb9"  # environment/sklearn


@pytest.fixture(scope="module")
def iris_stack(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return compile_copy(tmp_path_factory.mktemp("iris"), "iris")  # what stacks/iris holds (test_compile checks)


@pytest.fixture(scope="module")
def iris(iris_stack: Path) -> Captured:
    return run_program(iris_stack, {}, mocks=RegistryMocks())


def _short(urn: str) -> str:
    return urn.rsplit("::", 1)[-1]


def _deps(resource: CapturedResource) -> set[str]:
    return {_short(u) for u in resource.dependencies}


def test_every_resource_and_its_parent(iris: Captured) -> None:
    found = {(r.type, r.name, _short(r.parent) if r.parent else None) for r in iris.resources}
    assert found == {
        ("mlspec:docker:Workspace", "iris-demo", "iris-demo-dev"),
        ("docker:index/network:Network", "iris-demo", "iris-demo"),
        ("docker:index/network:Network", "iris-demo-models", "iris-demo"),
        ("docker:index/volume:Volume", "iris-demo-storage", "iris-demo"),
        ("mlspec:docker:Environment", "runtime", "iris-demo"),
        (IMAGE, "runtime", "runtime"),
        ("mlspec:docker:Environment", "tracking", "iris-demo"),
        (IMAGE, "tracking", "tracking"),
        (CONTAINER, "iris-demo-mlflow", "iris-demo"),
        (PASSWORD, "iris-demo-tracking-password", "iris-demo"),  # the published MLflow's, behind basic auth
        (CONTAINER, "iris-demo-mlflow-proxy", "iris-demo"),
        ("mlspec:docker:Environment", "sklearn", "iris-demo-dev"),
        (IMAGE, "sklearn", "sklearn"),
        ("mlspec:docker:TrainingJob", "train", "iris-demo-dev"),
        (IMAGE, "train", "train"),
        (CONTAINER, "train", "train"),
        ("mlspec:docker:TrainingJob", "train-forest", "iris-demo-dev"),
        (IMAGE, "train-forest", "train-forest"),
        (CONTAINER, "train-forest", "train-forest"),
        ("mlspec:docker:OnlineEndpoint", "iris", "iris-demo-dev"),
        (PASSWORD, "iris-primary-key", "iris"),
        (PASSWORD, "iris-secondary-key", "iris"),
        (PASSWORD, "iris-internal-token", "iris"),
        ("docker:index/network:Network", "iris-replicas", "iris"),
        (CONTAINER, "iris-blue-0", "iris"),
        (CONTAINER, "iris-green-0", "iris"),
        (CONTAINER, "iris-gateway", "iris"),
        ("mlspec:docker:MlflowLabels", "labels", "iris-demo-dev"),  # the workspace's description on its experiment
        (CONTAINER, "labels", "labels"),
    }


def test_mlflow_is_published_behind_a_password_the_proxy_knows_only_the_hash_of(iris: Captured) -> None:
    password = iris.get(PASSWORD, "iris-demo-tracking-password").outputs["result"]
    proxy = iris.get(CONTAINER, "iris-demo-mlflow-proxy")
    port = proxy.inputs["ports"][0]
    assert (port["ip"], port["internal"]) == ("127.0.0.1", 5001)
    assert iris.exports["MLflow.url"] == f"http://127.0.0.1:{int(port['external'])}"
    assert iris.exports["MLflow.credentials"] == {"username": "mlspec", "password": password}
    assert "MLflow.credentials" in iris.secret_exports
    assert proxy.inputs["envs"] == [f"MLSPEC_TRACKING_PASSWORD_SHA256={key_hash(password)}"]
    assert password not in json.dumps(proxy.inputs)
    assert proxy.inputs["command"][proxy.inputs["command"].index("--upstream") + 1] == "http://mlflow:5000"
    assert "iris-demo-mlflow" in _deps(proxy)  # published once the server is healthy


def test_images_are_tagged_by_content_hash_and_build_inputs(iris: Captured, iris_stack: Path) -> None:
    main = (iris_stack / "__main__.py").read_text()
    tags = set()
    for image in iris.of_type(IMAGE):
        name, tag = image.inputs["imageName"].rsplit(":", 1)
        assert len(tag) == 64 and tag not in main, image.name  # the content hash alone would ignore the build
        tags.add(tag)
        assert image.inputs["skipPush"] is True
        build = image.inputs["build"]
        assert build["context"] == f".build/{'job' if 'job' in name else 'environment'}-{image.name}"
        assert build["dockerfile"].startswith("docker/") and build["dockerfile"].endswith("/Dockerfile")
    assert len(tags) == len(iris.of_type(IMAGE))
    sklearn = iris.get(IMAGE, "sklearn")
    assert sklearn.inputs["imageName"].startswith("iris-demo-sklearn:") and ENV_HASH in main
    runtime = iris.get(IMAGE, "runtime")
    assert runtime.inputs["build"]["args"] == {"BASE_IMAGE": "python:3.11-slim", "PIP_OFFLINE": ""}
    assert sklearn.inputs["build"]["args"] == {"RUNTIME_IMAGE": runtime.inputs["imageName"], "PIP_OFFLINE": ""}
    assert "runtime" in _deps(sklearn)  # built on the runtime image, after it
    job = iris.get(IMAGE, "train")
    assert job.inputs["build"]["args"] == {"ENVIRONMENT_IMAGE": sklearn.inputs["imageName"]}
    assert "iris-demo-sklearn" in _deps(job) or "sklearn" in _deps(job)


def test_mlflow_server(iris: Captured) -> None:
    mlflow = iris.get(CONTAINER, "iris-demo-mlflow")
    inputs = mlflow.inputs
    assert inputs["name"] == "iris-demo-mlflow" and inputs["user"] == "mlspec"
    assert inputs["image"] == iris.get(IMAGE, "tracking").inputs["imageName"]  # the runtime has MLflow's client only
    assert iris.get(IMAGE, "tracking").inputs["build"]["args"]["RUNTIME_IMAGE"] == iris.get(IMAGE, "runtime").inputs[
        "imageName"]
    script = inputs["command"][-1]
    assert "mlflow server" in script and "--serve-artifacts" in script
    assert "--backend-store-uri sqlite:////mlspec/tracking/mlflow.db" in script
    assert "--allowed-hosts mlflow:5000,mlflow," in script
    assert "--workers 1 " in script  # one per CPU of its limit: no supervised worker to miss a heartbeat
    assert inputs["networksAdvanced"] == [{"name": "iris-demo", "aliases": ["mlflow"]},
                                          {"name": "iris-demo-models", "aliases": ["mlflow"]}]
    assert inputs["volumes"] == [{"volumeName": "iris-demo-storage", "containerPath": "/mlspec", "readOnly": False}]
    assert inputs["healthcheck"]["tests"][:2] == ["CMD", "python"] and "/health" in inputs["healthcheck"]["tests"][-1]
    assert inputs["wait"] is True and inputs["restart"] == "unless-stopped"


def test_training_job_container(iris: Captured) -> None:
    job = iris.get(CONTAINER, "train")
    inputs = job.inputs
    assert inputs["name"] == "iris-demo-job-train-f88bb387735f"
    assert inputs["image"] == iris.get(IMAGE, "train").inputs["imageName"]
    assert inputs["command"] == ["python", "-m", "mlspec.runtime.envfiles", "python", "-m", "mlspec.runtime.train",
                                 "/tmp/mlspec/jobrun.json", "--result", "/tmp/mlspec-job/result.json"]
    assert (inputs["mustRun"], inputs["attach"], inputs["logs"]) == (False, True, True)
    run = container_file(inputs)
    assert list(container_files(inputs)) == ["/tmp/mlspec/jobrun.json"]
    assert run["tracking_uri"] == "http://mlflow:5000" and run["experiment"] == "iris"
    assert run["code"] == "/opt/mlspec-job/files/src"
    assert run["inputs"] == {"C": {"value": 1.0, "path": None},
                             "data": {"value": None, "path": "/opt/mlspec-job/files/data/iris.csv"}}
    assert run["outputs"]["model"]["register_as"] == "iris-clf"
    assert inputs["memory"] == 2048 and inputs["cpuShares"] == 1024 and inputs["cpus"] == "1"
    assert "iris-demo-mlflow" in _deps(job)  # the job runs only once the tracking server is healthy
    assert iris.exports["train.models"] == {"iris-clf": 1}


def test_deployments_and_gateway(iris: Captured) -> None:
    blue = iris.get(CONTAINER, "iris-blue-0")
    command = blue.inputs["command"]
    # The server runs under the liveness supervisor, on the spec's default liveness probe.
    serving = command.index("--")
    assert command[:serving + 4] == [
        "python", "-m", "mlspec.runtime.liveness", "--url", "http://127.0.0.1:8080/v2/health/live",
        "--initial-delay", "10", "--period", "10", "--timeout", "2", "--failure-threshold", "30", "--",
        "python", "-m", "mlspec.runtime.serving"]
    assert command[command.index("--model-uri") + 1] == "models:/iris-clf/1"
    assert command[command.index("--tracking-uri") + 1] == "http://mlflow:5000"
    assert "MLFLOW_TRACKING_URI=http://mlflow:5000" in blue.inputs["envs"]
    assert blue.inputs["image"] == iris.get(IMAGE, "sklearn").inputs["imageName"]
    assert blue.inputs["wait"] is True and "/health" in blue.inputs["healthcheck"]["tests"][-1]
    assert blue.inputs["healthcheck"]["retries"] == 30 and blue.inputs["restart"] == "unless-stopped"
    assert "ports" not in blue.inputs  # replicas are reached through the gateway only
    assert {"train", "iris-demo-mlflow"} <= _deps(blue)  # after the job that registered its model
    green = iris.get(CONTAINER, "iris-green-0")
    assert "train-forest" in _deps(green) and "train" not in _deps(green)

    gateway = iris.get(CONTAINER, "iris-gateway")
    assert gateway.inputs["command"][:6] == ["python", "-m", "mlspec.runtime.envfiles", "python", "-m",
                                             "mlspec.runtime.gateway"]
    assert gateway.inputs["ports"] == [{"internal": 8080, "external": 25232, "ip": "127.0.0.1"}]
    assert {"iris-blue-0", "iris-green-0"} <= _deps(gateway)
    assert "envs" in gateway.secret_inputs  # its config, derived from the keys: kept secret in the state
    config = container_file(gateway.inputs)
    limits = {"max_concurrent": 64, "max_queue_wait": 0.5,  # the spec's defaults, enforced by the gateway
              "max_body_size": 16 * 2**20,
              "readiness": {"initial_delay": 10, "period": 10, "timeout": 2, "failure_threshold": 30,
                            "success_threshold": 1}}
    assert config["deployments"] == {  # each with the model it serves: Open Inference Protocol paths route by it
        # The replicas by the alias every generation of them shares, not by container: a new generation leaves
        # the gateway's container as it is (its front door stays up).
        "blue": {"weight": 90, "discover": "http://iris-blue:8080", **limits,
                 "model": {"name": "iris-clf", "version": None}},  # the version its job registers: not stated,
        "green": {"weight": 10, "discover": "http://iris-green:8080", **limits,  # or each retraining would
                  "model": {"name": "iris-forest", "version": None}}}  # replace the gateway's container
    assert parse(config).max_body_size == 16 * 2**20  # the gateway reads no more than the largest limit
    keys = iris.exports["iris.keys"]
    assert config["key_hashes"] == [key_hash(keys["primary"]), key_hash(keys["secondary"])]
    assert iris.exports["iris.url"] == "http://127.0.0.1:25232"
    assert "iris.keys" in iris.secret_exports


def test_replicas_answer_the_gateway_alone(iris: Captured) -> None:
    """An internal network only the gateway joins besides the replicas, and a token the gateway adds."""
    network = iris.get("docker:index/network:Network", "iris-replicas")
    assert network.inputs["internal"] is True and network.inputs["name"] == "iris-demo-iris-replicas"
    gateway = iris.get(CONTAINER, "iris-gateway")
    replicas = [iris.get(CONTAINER, name) for name in ("iris-blue-0", "iris-green-0")]
    on_it = {r.name for r in iris.of_type(CONTAINER)
             if any(n["name"] == network.inputs["name"] for n in r.inputs.get("networksAdvanced", []))}
    assert on_it == {"iris-gateway", "iris-blue-0", "iris-green-0"}
    for replica in replicas:
        named = {n["name"]: n.get("aliases") or [] for n in replica.inputs["networksAdvanced"]}
        # The gateway's URL for it resolves on the internal network only; the model network reaches MLflow.
        assert named == {"iris-demo-iris-replicas": [replica.name.removesuffix("-0")], "iris-demo-models": []}
    assert "iris-demo-iris-replicas" in {n["name"] for n in gateway.inputs["networksAdvanced"]}
    token = iris.get(PASSWORD, "iris-internal-token").outputs["result"]
    assert len(token) == 48
    for container in (gateway, *replicas):
        command = container.inputs["command"]
        assert command[command.index("--internal-token-env") + 1] == "MLSPEC_INTERNAL_TOKEN"
        assert f"MLSPEC_INTERNAL_TOKEN={token}" in container.inputs["envs"]
        assert "envs" in container.secret_inputs and token not in json.dumps(command)


def test_a_replica_is_supervised_on_its_deployments_liveness_probe(tmp_path: Path) -> None:
    """The liveness numbers a deployment declares reach the supervisor of each of its replicas (and name a new
    generation of them); the other deployment keeps the defaults."""
    def probe_blue(spec: Path) -> None:
        text = (spec / "mlspec.yaml").read_text()
        probe = "    probes:\n      liveness: {initial_delay: 3s, period: 1.5, timeout: 500ms, failure_threshold: 4}\n"
        probed = text.replace("    model: iris-clf@latest\n", f"    model: iris-clf@latest\n{probe}", 1)
        assert probed != text
        (spec / "mlspec.yaml").write_text(probed)

    captured = run_program(compile_copy(tmp_path, "iris", probe_blue), {}, mocks=RegistryMocks())

    def options(name: str) -> dict[str, str]:
        command = captured.get(CONTAINER, name).inputs["command"]
        assert command[:3] == ["python", "-m", "mlspec.runtime.liveness"]
        supervisor = command[3:command.index("--")]
        return dict(zip(supervisor[::2], supervisor[1::2], strict=True))

    assert options("iris-blue-0") == {"--url": "http://127.0.0.1:8080/v2/health/live", "--initial-delay": "3",
                                      "--period": "1.5", "--timeout": "0.5", "--failure-threshold": "4"}
    assert options("iris-green-0")["--failure-threshold"] == "30"


def test_replicas_check_the_digest_their_job_registered(iris: Captured) -> None:
    """The digest travels from the training job's result to the replica's command, not through the registry."""
    for name, job, model in (("iris-blue-0", "train", "iris-clf"), ("iris-green-0", "train-forest", "iris-forest")):
        command = iris.get(CONTAINER, name).inputs["command"]
        content_hash = container_file(iris.get(CONTAINER, job).inputs)["content_hash"]
        assert command[command.index("--sha256") + 1] == mock_digest(model, content_hash)


def test_no_key_in_plain_text(iris: Captured, iris_stack: Path) -> None:
    keys = list(iris.exports["iris.keys"].values())
    assert len(keys) == 2 and all(len(k) == 43 for k in keys)
    token = iris.get(PASSWORD, "iris-internal-token").outputs["result"]
    for path in [*(ROOT / "stacks" / "iris").rglob("*"), *iris_stack.rglob("*")]:
        if path.is_file() and ".build" not in path.parts:
            assert token not in path.read_text(), path
    for resource in iris.resources:
        text = json.dumps(resource.inputs)
        assert not any(k in text for k in keys), f"{resource.type} {resource.name} holds a key"
    for path in [*(ROOT / "stacks" / "iris").rglob("*"), *iris_stack.rglob("*")]:
        if path.is_file() and ".build" not in path.parts:
            assert not any(k in path.read_text() for k in keys), path
    for password in iris.of_type(PASSWORD):
        assert password.inputs["length"] in (43, 48) and password.inputs["special"] is False


def test_settings_change_images_and_publish_address(iris_project: Path, tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    make_wheel(wheels, "pydantic", requires=("annotated-types",))
    make_wheel(wheels, "annotated-types")
    make_wheel(wheels, "scikit-learn")
    make_wheel(wheels, "torch")  # nobody's requirement: sent to no build
    captured = run_program(iris_project, {"baseImage": "mlspec-base:bookworm",
                                                       "wheelhouse": str(wheels), "publishAddress": "0.0.0.0"})
    runtime = captured.get(IMAGE, "runtime")
    assert runtime.inputs["build"]["args"] == {"BASE_IMAGE": "mlspec-base:bookworm", "PIP_OFFLINE": "1"}
    assert captured.get(IMAGE, "sklearn").inputs["build"]["args"]["PIP_OFFLINE"] == "1"
    staged = iris_project / ".build" / "environment-runtime"
    staged_wheels = {p.name.split("-")[0] for p in (staged / "wheels").iterdir()}
    assert staged_wheels == {"pydantic", "annotated_types"}  # the runtime's requirements and what they need
    assert (staged / "mlspec" / "runtime" / "train.py").is_file() and not (staged / "mlspec" / "cli").exists()
    layered = iris_project / ".build" / "environment-sklearn"
    assert {p.name.split("-")[0] for p in (layered / "wheels").iterdir()} == {"scikit_learn"}
    assert not (layered / "mlspec").exists()
    assert captured.get(CONTAINER, "iris-gateway").inputs["ports"][0]["ip"] == "0.0.0.0"
    # Default mocks: no job output is known, so replicas fall back to the registry's latest version.
    command = captured.get(CONTAINER, "iris-blue-0").inputs["command"]
    assert command[command.index("--model-uri") + 1] == "models:/iris-clf@latest"


def test_a_new_base_image_rebuilds_every_image_and_replaces_the_containers_on_them(iris: Captured,
                                                                                   iris_stack: Path) -> None:
    rebased = run_program(iris_stack, {"baseImage": "python:3.11-bookworm"}, mocks=RegistryMocks())
    for image in iris.of_type(IMAGE):
        assert rebased.get(IMAGE, image.name).inputs["imageName"] != image.inputs["imageName"], image.name
    for container in iris.of_type(CONTAINER):
        assert rebased.get(CONTAINER, container.name).inputs["image"] != container.inputs["image"], container.name
    again = run_program(iris_stack, {}, mocks=RegistryMocks())
    assert {i.name: i.inputs["imageName"] for i in again.of_type(IMAGE)} == \
        {i.name: i.inputs["imageName"] for i in iris.of_type(IMAGE)}


def test_docker_host_setting_adds_a_provider(iris_project: Path) -> None:
    captured = run_program(iris_project, {"dockerHost": "ssh://ops@vm"})
    provider = captured.get("pulumi:providers:docker", "docker-host")
    assert provider.inputs["host"] == "ssh://ops@vm"
    assert captured.get(CONTAINER, "iris-blue-0").provider.startswith(provider.urn)


def test_a_failed_job_fails_the_update_with_its_log(iris_project: Path) -> None:
    with pytest.raises(Exception, match=r"(?s)training job 'train(-forest)?' exited with code 1.*Traceback: boom"):
        run_program(iris_project, {}, mocks=RegistryMocks(exit_code=1))


def test_a_stale_program_is_refused(iris_project: Path) -> None:
    train = iris_project.parent.parent / "examples" / "iris" / "src" / "train.py"
    train.write_text(train.read_text() + "\n# changed after compiling\n")
    with pytest.raises(Exception, match=r"src/train.py changed since this program was compiled"):
        run_program(iris_project, {})


def test_preview_leaves_job_outputs_unknown(iris_project: Path) -> None:
    captured = run_program(iris_project, {}, preview=True)
    command = captured.get(CONTAINER, "iris-blue-0").inputs["command"]
    assert command[command.index("--model-uri") + 1] == "<unknown>"
    assert captured.get(CONTAINER, "iris-gateway").inputs["ports"][0]["external"] == 25232


def test_the_workspace_volume_is_the_one_the_spec_names(tmp_path: Path) -> None:
    def name_volume(spec: Path) -> None:
        text = (spec / "mlspec.yaml").read_text()
        named = text.replace("name: iris-demo\n", "name: iris-demo\nstorage: {volume: team-ml}\n", 1)
        (spec / "mlspec.yaml").write_text(named)

    project = compile_copy(tmp_path, "iris", name_volume)
    assert 'volume="team-ml"' in (project / "__main__.py").read_text()
    captured = run_program(project, {})
    volume = captured.get("docker:index/volume:Volume", "iris-demo-storage")
    assert volume.inputs["name"] == "team-ml"
    mounts = captured.get(CONTAINER, "iris-demo-mlflow").inputs["volumes"]
    assert [m["volumeName"] for m in mounts] == ["team-ml"]


def test_an_existing_tracking_server_replaces_the_workspace_one(tmp_path: Path) -> None:
    def own_server(spec: Path) -> None:
        text = (spec / "mlspec.yaml").read_text()
        owned = text.replace("name: iris-demo\n", "name: iris-demo\ntracking: {uri: 'http://mlflow.team:5000'}\n", 1)
        (spec / "mlspec.yaml").write_text(owned)

    captured = run_program(compile_copy(tmp_path, "iris", own_server), {}, mocks=RegistryMocks())
    assert not [c for c in captured.of_type(CONTAINER) if c.name.endswith("-mlflow")]
    job = captured.get(CONTAINER, "train")
    assert container_file(job.inputs)["tracking_uri"] == "http://mlflow.team:5000"
    assert "iris-demo-mlflow" not in _deps(job)
    replica = captured.get(CONTAINER, "iris-blue-0").inputs["command"]
    assert replica[replica.index("--tracking-uri") + 1] == "http://mlflow.team:5000"


def test_a_cluster_runs_at_most_max_nodes_jobs_at_once(tmp_path: Path) -> None:
    def one_node(spec: Path) -> None:
        text = (spec / "mlspec.yaml").read_text()
        (spec / "mlspec.yaml").write_text(text.replace("max_nodes: 2", "max_nodes: 1", 1))

    serial = run_program(compile_copy(tmp_path / "one", "iris", one_node), {}, mocks=RegistryMocks())
    assert "train" in _deps(serial.get(CONTAINER, "train-forest"))
    parallel = run_program(compile_copy(tmp_path / "two", "iris"), {}, mocks=RegistryMocks())
    assert "train" not in _deps(parallel.get(CONTAINER, "train-forest"))


def test_the_gateway_states_a_pinned_version_and_each_deployments_body_limit() -> None:
    from mlspec.pulumi.endpoint import DeploymentArgs, OnlineEndpointArgs, _gateway_config

    pinned = DeploymentArgs("blue", None, "iris-clf", version=3,  # type: ignore[arg-type]
                            request_settings={"max_body_size": 4096})
    latest = DeploymentArgs("green", None, "iris-forest")  # type: ignore[arg-type]
    args = OnlineEndpointArgs([pinned, latest], {"blue": 100}, 25000)
    config = json.loads(_gateway_config("iris", args, []))
    blue, green = config["deployments"]["blue"], config["deployments"]["green"]
    assert blue["model"] == {"name": "iris-clf", "version": "3"} and blue["max_body_size"] == 4096
    assert green["model"] == {"name": "iris-forest", "version": None} and green["max_body_size"] == 16 * 2**20
    assert parse(config).max_body_size == 16 * 2**20
