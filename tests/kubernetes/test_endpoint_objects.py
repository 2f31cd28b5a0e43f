"""An online endpoint's Kubernetes objects: strictly valid, wired to each other, restricted, deterministic."""

from __future__ import annotations

import copy
import dataclasses
import json
import textwrap
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest

from mlspec.backends.pulumi.kubernetes.context import Context
from mlspec.backends.pulumi.kubernetes.endpoint import endpoint_objects, startup_budget
from mlspec.backends.pulumi.kubernetes.endpoint_names import external_secrets, gateway_name, replica_name
from mlspec.backends.pulumi.model import ProgramModel, build_program
from mlspec.diagnostics import Diagnostics
from mlspec.graph import load_graph
from mlspec.load import load
from mlspec.resolve.targets import _Checker
from mlspec.runtime.gateway.config import parse
from mlspec.validate import validate_documents

ROOT = Path(__file__).resolve().parents[2]
KUBERNETES_VERSION = "1.37.0"
Object = dict[str, Any]

# Two deployments at 90/10 with mirroring, one of them autoscaled on a GPU, one pinned with its own probes.
SERVING = """\
kind: Workspace
name: serving-demo
defaults: {compute: cpu, environment: torch}
---
kind: Compute
name: cpu
type: inference-cluster
resources: {cpus: 2, memory: 4Gi}
---
kind: Compute
name: gpu
type: inference-cluster
resources: {cpus: 4, memory: 16Gi, gpus: 1}
---
kind: Environment
name: torch
requirements: [torch]
---
kind: Job
name: train
command: python train.py --out ${{outputs.model}}
compute: cpu
outputs: {model: {type: model, register_as: digits, flavor: torch}}
---
kind: Endpoint
name: digits
auth: key
tags: {team: vision}
deployments:
  blue:
    model: digits:3
    instance_count: 3
    probes:
      readiness: {initial_delay: 5, period: 3, failure_threshold: 40, success_threshold: 2}
      liveness: {period: 20, failure_threshold: 3}
    request_settings: {max_concurrent_requests_per_instance: 8, request_timeout: 30}
  green:
    model: digits
    compute: gpu
    autoscale: {min_instances: 2, max_instances: 6, target_concurrency: 4, scale_down_delay: 60}
    batching: {max_batch_size: 16, max_wait: 5ms}
    environment_variables: {TORCH_THREADS: "2"}
traffic: {blue: 90, green: 10}
mirror_traffic: {green: 20}
"""


def _program(folder: Path) -> ProgramModel:
    return build_program(load_graph([folder]), folder / "out")


@pytest.fixture(scope="module")
def iris() -> ProgramModel:
    return _program(ROOT / "examples" / "iris")


@pytest.fixture(scope="module")
def serving(tmp_path_factory: pytest.TempPathFactory) -> ProgramModel:
    folder = tmp_path_factory.mktemp("serving")
    (folder / "mlspec.yaml").write_text(SERVING)
    return _program(folder)


def objects_of(program: ProgramModel) -> list[Object]:
    ctx = Context.of(program.project)
    found: list[Object] = []
    for endpoint in program.endpoints:
        found += endpoint_objects(endpoint, ctx, environments=program.environments, jobs=program.jobs)
    return found


def by_kind(objects: list[Object], kind: str) -> dict[str, Object]:
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == kind}


def selects(selector: dict[str, str], pod_labels: dict[str, str]) -> bool:
    return all(pod_labels.get(key) == value for key, value in selector.items())


def pod_labels(deployment: Object) -> dict[str, str]:
    return deployment["spec"]["template"]["metadata"]["labels"]


def programs(iris: ProgramModel, serving: ProgramModel) -> list[ProgramModel]:
    return [iris, serving]


def test_every_object_validates_strictly_against_the_api_schemas(iris: ProgramModel, serving: ProgramModel) -> None:
    for program in programs(iris, serving):
        objects = objects_of(program)
        assert objects
        for obj in objects:
            kubernetes_validate.validate(copy.deepcopy(obj), KUBERNETES_VERSION, strict=True)
    broken = copy.deepcopy(objects_of(iris)[0])
    broken["spec"]["strategy"]["rollingUpdate"]["bogus"] = 1  # the validator refuses what it does not know
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSION, strict=True)


def test_each_deployment_has_its_objects_and_the_gateway_its_own(serving: ProgramModel) -> None:
    (endpoint,) = serving.endpoints
    objects = objects_of(serving)
    blue, green = endpoint.deployments
    kinds = {(o["kind"], o["metadata"]["name"]) for o in objects}
    for d in (blue, green):
        name = replica_name(endpoint, d)
        assert {("Deployment", name), ("Service", name), ("PodDisruptionBudget", name),
                ("NetworkPolicy", name)} <= kinds
    assert ("HorizontalPodAutoscaler", replica_name(endpoint, green)) in kinds
    assert ("HorizontalPodAutoscaler", replica_name(endpoint, blue)) not in kinds
    gateway = gateway_name(endpoint)
    assert {("Deployment", gateway), ("Service", gateway), ("PodDisruptionBudget", gateway),
            ("NetworkPolicy", gateway)} <= kinds
    assert len(kinds) == len(objects)  # no two objects of a kind share a name
    assert all(o["metadata"]["namespace"] == "serving-demo" for o in objects)
    assert {o["kind"] for o in objects} <= {"Deployment", "Service", "PodDisruptionBudget", "NetworkPolicy",
                                            "HorizontalPodAutoscaler", "ConfigMap"}  # no Secret: never a key


def test_service_selectors_pick_their_deployments_pods_and_no_others(iris: ProgramModel,
                                                                     serving: ProgramModel) -> None:
    for program in programs(iris, serving):
        objects = objects_of(program)
        deployments = by_kind(objects, "Deployment")
        for name, service in by_kind(objects, "Service").items():
            selector = service["spec"]["selector"]
            chosen = [d for d, obj in deployments.items() if selects(selector, pod_labels(obj))]
            assert chosen == [name]
            assert selects(deployments[name]["spec"]["selector"]["matchLabels"], pod_labels(deployments[name]))
            ports = {p["name"]: p["containerPort"]
                     for c in deployments[name]["spec"]["template"]["spec"]["containers"] for p in c["ports"]}
            assert all(p["targetPort"] in ports for p in service["spec"]["ports"])


def test_probes_use_declared_ports_and_the_models_readiness(iris: ProgramModel, serving: ProgramModel) -> None:
    for program in programs(iris, serving):
        for deployment in by_kind(objects_of(program), "Deployment").values():
            for c in deployment["spec"]["template"]["spec"]["containers"]:
                names = {p["name"] for p in c["ports"]}
                numbers = {p["containerPort"] for p in c["ports"]}
                probes = {k: c[k] for k in ("startupProbe", "readinessProbe", "livenessProbe") if k in c}
                assert "readinessProbe" in probes and "livenessProbe" in probes
                for probe in probes.values():
                    port = probe["httpGet"]["port"]
                    assert port in names or port in numbers
                if c["name"] == "server":  # a replica: ready only once its model is loaded
                    assert probes["startupProbe"]["httpGet"]["path"] == "/health"
                    assert probes["readinessProbe"]["httpGet"]["path"] == "/health"
                    assert probes["livenessProbe"]["httpGet"]["path"] == "/v2/health/live"


def test_probe_settings_and_rollout_budget_come_from_the_spec(serving: ProgramModel) -> None:
    (endpoint,) = serving.endpoints
    blue = endpoint.deployments[0]
    deployment = by_kind(objects_of(serving), "Deployment")[replica_name(endpoint, blue)]
    (server,) = deployment["spec"]["template"]["spec"]["containers"]
    assert server["startupProbe"]["initialDelaySeconds"] == 5
    assert server["startupProbe"]["periodSeconds"] * server["startupProbe"]["failureThreshold"] == 3 * 40
    assert server["readinessProbe"]["successThreshold"] == 2
    assert (server["livenessProbe"]["periodSeconds"], server["livenessProbe"]["failureThreshold"]) == (20, 3)
    assert startup_budget(blue) == 5 + 3 * 40
    timeout = int(deployment["metadata"]["annotations"]["pulumi.com/timeoutSeconds"])
    assert timeout >= 3 * startup_budget(blue)  # three replicas roll one at a time, each loading its model
    assert deployment["spec"]["replicas"] == 3
    assert deployment["spec"]["strategy"]["rollingUpdate"] == {"maxUnavailable": 0, "maxSurge": 1}
    grace = deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert grace > 30  # room to finish a 30 s request after the pre-stop pause


def test_the_replica_command_serves_the_declared_model_with_its_limits(serving: ProgramModel) -> None:
    (endpoint,) = serving.endpoints
    blue, green = endpoint.deployments
    deployments = by_kind(objects_of(serving), "Deployment")

    def server(name: str) -> Object:
        (c,) = deployments[name]["spec"]["template"]["spec"]["containers"]
        return c

    def arg(command: list[str], flag: str) -> str:
        return command[command.index(flag) + 1]

    blue_cmd, green_cmd = server(replica_name(endpoint, blue))["command"], server(replica_name(endpoint, green))[
        "command"]
    assert blue_cmd[:3] == ["python", "-m", "mlspec.runtime.serving"]
    assert arg(blue_cmd, "--model-uri") == "models:/digits/3"
    assert arg(green_cmd, "--model-uri") == "models:/digits@latest"
    assert arg(blue_cmd, "--tracking-uri") == "http://mlflow.serving-demo.svc.cluster.local:5000"
    assert arg(blue_cmd, "--request-timeout") == "30.0"
    assert (arg(green_cmd, "--max-batch-size"), arg(green_cmd, "--max-wait")) == ("16", "0.005")
    assert "--sha256" not in blue_cmd  # the registry's tag is checked unless the renderer knows the digest
    pinned = endpoint_objects(endpoint, Context.of(serving.project), digests={"blue": "ab" * 32})
    (pinned_server,) = pinned[0]["spec"]["template"]["spec"]["containers"]
    assert arg(pinned_server["command"], "--sha256") == "ab" * 32
    env = {e["name"]: e for e in server(replica_name(endpoint, green))["env"]}
    assert env["TORCH_THREADS"]["value"] == "2"
    assert "MLSPEC_INTERNAL_TOKEN" not in env  # a file of its Secret, not a variable any child would inherit
    green_pod = deployments[replica_name(endpoint, green)]["spec"]["template"]["spec"]
    token_file = Path(arg(server(replica_name(endpoint, green))["command"], "--internal-token-file"))
    (mount,) = [m for m in server(replica_name(endpoint, green))["volumeMounts"]
                if token_file.is_relative_to(m["mountPath"])]
    (volume,) = [v for v in green_pod["volumes"] if v["name"] == mount["name"]]
    assert mount["readOnly"] and volume["secret"]["items"] == [{"key": "token", "path": token_file.name}]
    assert volume["secret"]["secretName"] in {s.name for s in external_secrets(endpoint, Context.of(serving.project))}
    gpu = server(replica_name(endpoint, green))["resources"]
    assert gpu["requests"] == gpu["limits"] and gpu["limits"]["nvidia.com/gpu"] == "1"
    assert server(replica_name(endpoint, blue))["resources"]["limits"]["cpu"] == "2000m"
    # A model a job of the spec registers: the job's hash on the template rolls the replicas when it retrains.
    (job,) = serving.jobs
    annotations = deployments[replica_name(endpoint, green)]["spec"]["template"]["metadata"]["annotations"]
    assert job.content_hash.startswith(annotations["mlspec.io/model-source"])


def test_autoscaler_and_disruption_budget_target_their_deployment(iris: ProgramModel,
                                                                  serving: ProgramModel) -> None:
    for program in programs(iris, serving):
        objects = objects_of(program)
        deployments = by_kind(objects, "Deployment")
        for name, pdb in by_kind(objects, "PodDisruptionBudget").items():
            assert pdb["spec"] == {"maxUnavailable": 1, "selector": pdb["spec"]["selector"]}
            chosen = [d for d, obj in deployments.items()
                      if selects(pdb["spec"]["selector"]["matchLabels"], pod_labels(obj))]
            assert chosen == [name]
        for name, hpa in by_kind(objects, "HorizontalPodAutoscaler").items():
            target = hpa["spec"]["scaleTargetRef"]
            assert (target["apiVersion"], target["kind"], target["name"]) == ("apps/v1", "Deployment", name)
            assert "replicas" not in deployments[name]["spec"]  # the autoscaler owns the count
    (endpoint,) = serving.endpoints
    hpa = by_kind(objects_of(serving), "HorizontalPodAutoscaler")[replica_name(endpoint, endpoint.deployments[1])]
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 6)
    (metric,) = hpa["spec"]["metrics"]
    # target_concurrency 4 of the default 64 a replica holds: 6% of its CPU request.
    assert metric["resource"] == {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 6}}
    assert hpa["spec"]["behavior"]["scaleDown"]["stabilizationWindowSeconds"] == 60


def test_the_gateway_config_parses_strictly_and_routes_to_each_deployments_service(
        iris: ProgramModel, serving: ProgramModel) -> None:
    for program in programs(iris, serving):
        objects = objects_of(program)
        services = by_kind(objects, "Service")
        for endpoint in program.endpoints:
            config_maps = by_kind(objects, "ConfigMap")
            gateway = by_kind(objects, "Deployment")[gateway_name(endpoint)]
            volumes = {v["name"]: v for v in gateway["spec"]["template"]["spec"]["volumes"]}
            config_map = config_maps[volumes["config"]["configMap"]["name"]]
            config = parse(json.loads(config_map["data"]["gateway.json"]), "gateway.json")
            assert config.endpoint == endpoint.name and config.auth == "key"
            assert config.key_hashes == ()  # the keys' digests come from their Secret, mounted apart
            assert {d: dep.weight for d, dep in config.deployments.items()} == endpoint.traffic
            assert config.mirror == endpoint.mirror
            for d in endpoint.deployments:
                (url,) = config.deployments[d.name].replicas
                host, port = url.removeprefix("http://").rsplit(":", 1)
                service = services[replica_name(endpoint, d)]
                assert host == f"{service['metadata']['name']}.{service['metadata']['namespace']}.svc.cluster.local"
                assert int(port) in {p["port"] for p in service["spec"]["ports"]}
            (c,) = gateway["spec"]["template"]["spec"]["containers"]
            command = c["command"]
            assert command[:3] == ["python", "-m", "mlspec.runtime.gateway"]
            mounts = {m["mountPath"]: m for m in c["volumeMounts"]}
            config_path = Path(command[command.index("--config") + 1])
            keys_path = Path(command[command.index("--key-hashes-file") + 1])
            assert mounts[str(config_path.parent)]["readOnly"] and mounts[str(keys_path.parent)]["readOnly"]
            keys_volume = volumes[mounts[str(keys_path.parent)]["name"]]["secret"]
            assert keys_volume["items"] == [{"key": "key_hashes", "path": keys_path.name}]
            assert keys_volume["secretName"] in {s.name for s in external_secrets(endpoint, Context.of("x"))}
    (endpoint,) = serving.endpoints
    config_map = by_kind(objects_of(serving), "ConfigMap")[f"{endpoint.name}-gateway"]
    blue = parse(json.loads(config_map["data"]["gateway.json"])).deployments["blue"]
    assert blue.max_concurrent * 2 == 8 * 3  # three replicas of 8, shared by the two gateway pods
    assert blue.readiness is not None and blue.readiness.failure_threshold == 40


def test_an_endpoint_without_keys_mounts_no_key_secret(iris: ProgramModel) -> None:
    endpoint = dataclasses.replace(iris.endpoints[0], auth="none")
    ctx = Context.of(iris.project)
    objects = endpoint_objects(endpoint, ctx)
    (c,) = by_kind(objects, "Deployment")[gateway_name(endpoint)]["spec"]["template"]["spec"]["containers"]
    assert "--key-hashes-file" not in c["command"]
    assert [s.name for s in external_secrets(endpoint, ctx)] == ["iris-internal-token"]
    config = parse(json.loads(by_kind(objects, "ConfigMap")["iris-gateway"]["data"]["gateway.json"]))
    assert config.auth == "none" and config.authorised(None)


def test_network_policies_admit_only_the_gateway_to_replicas(iris: ProgramModel, serving: ProgramModel) -> None:
    for program in programs(iris, serving):
        objects = objects_of(program)
        deployments = by_kind(objects, "Deployment")
        policies = by_kind(objects, "NetworkPolicy")
        for endpoint in program.endpoints:
            gateway_pods = pod_labels(deployments[gateway_name(endpoint)])
            for d in endpoint.deployments:
                name = replica_name(endpoint, d)
                policy = policies[name]["spec"]
                chosen = [n for n, obj in deployments.items()
                          if selects(policy["podSelector"]["matchLabels"], pod_labels(obj))]
                assert chosen == [name]
                assert policy["policyTypes"] == ["Ingress"]
                (rule,) = policy["ingress"]
                (source,) = rule["from"]
                admitted = [n for n, obj in deployments.items()
                            if selects(source["podSelector"]["matchLabels"], pod_labels(obj))]
                assert admitted == [gateway_name(endpoint)]
                assert selects(source["podSelector"]["matchLabels"], gateway_pods)
                ports = {p["containerPort"] for p in deployments[name]["spec"]["template"]["spec"]["containers"][0]
                         ["ports"]}
                assert {p["port"] for p in rule["ports"]} == ports
            gateway_policy = policies[gateway_name(endpoint)]["spec"]
            (rule,) = gateway_policy["ingress"]
            assert "from" not in rule  # the front door: from anywhere, in the namespace or out of it


def test_every_pod_is_restricted_with_a_read_only_root(iris: ProgramModel, serving: ProgramModel) -> None:
    for program in programs(iris, serving):
        for deployment in by_kind(objects_of(program), "Deployment").values():
            pod = deployment["spec"]["template"]["spec"]
            assert pod["automountServiceAccountToken"] is False
            assert pod["securityContext"]["runAsNonRoot"] is True
            assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
            volumes = {v["name"]: v for v in pod["volumes"]}
            for c in pod["containers"]:
                security = c["securityContext"]
                assert security["allowPrivilegeEscalation"] is False and security["privileged"] is False
                assert security["capabilities"] == {"drop": ["ALL"]}
                assert security["readOnlyRootFilesystem"] is True and security["runAsNonRoot"] is True
                assert c["resources"]["requests"] == c["resources"]["limits"]
                writable = [m["mountPath"] for m in c["volumeMounts"] if not m.get("readOnly")]
                assert writable == ["/tmp"] and "emptyDir" in volumes[c["volumeMounts"][0]["name"]]
                assert {e["name"]: e.get("value") for e in c["env"]}["HOME"] == "/tmp"
                for mount in c["volumeMounts"]:
                    assert mount["name"] in volumes


def test_objects_are_identical_across_builds(tmp_path: Path, iris: ProgramModel, serving: ProgramModel) -> None:
    again = _program(ROOT / "examples" / "iris")
    assert json.dumps(objects_of(iris)) == json.dumps(objects_of(again))
    (tmp_path / "mlspec.yaml").write_text(SERVING)
    assert json.dumps(objects_of(serving)) == json.dumps(objects_of(_program(tmp_path)))


def _kubernetes_diagnostics(tmp_path: Path, text: str) -> Diagnostics:
    """The target check for kubernetes, run on every declared resource of a spec."""
    (tmp_path / "mlspec.yaml").write_text(textwrap.dedent(text))
    loaded = load([tmp_path])
    declared = validate_documents(loaded.documents, loaded.diagnostics)
    checker = _Checker("kubernetes", loaded.diagnostics)
    for item in declared.declared:
        checker.resource(item)
    return loaded.diagnostics


def test_scale_to_zero_and_a_request_rate_are_refused_at_their_lines(tmp_path: Path) -> None:
    spec = """\
        kind: Endpoint
        name: web
        deployments:
          blue:
            model: clf@latest
            autoscale: {min_instances: 0, max_instances: 3, target_rps: 20}
        """
    by_path = {d.path: d for d in _kubernetes_diagnostics(tmp_path, spec).errors if d.path.startswith("deploy")}
    assert set(by_path) == {"deployments.blue.autoscale.min_instances", "deployments.blue.autoscale.target_rps"}
    zero = by_path["deployments.blue.autoscale.min_instances"]
    assert zero.span and zero.span.line == 6 and "scale to zero" in zero.summary
    assert zero.hint and "local" in zero.hint and "docker" not in zero.hint
    fixed = spec.replace("min_instances: 0", "min_instances: 2").replace(", target_rps: 20", "")
    assert not [d for d in _kubernetes_diagnostics(tmp_path, fixed).errors if d.path.startswith("deploy")]


def test_a_load_balancer_stack_exposes_the_gateway_alone(serving: ProgramModel) -> None:
    (endpoint,) = serving.endpoints
    kept = by_kind(objects_of(serving), "Service")
    exposed = by_kind(endpoint_objects(endpoint, Context.of(serving.project, expose="load-balancer"),
                                       environments=serving.environments, jobs=serving.jobs), "Service")
    assert kept[gateway_name(endpoint)]["spec"]["type"] == "ClusterIP"
    assert exposed[gateway_name(endpoint)]["spec"]["type"] == "LoadBalancer"
    for d in endpoint.deployments:  # the replicas stay reachable from the gateway alone
        assert exposed[replica_name(endpoint, d)]["spec"]["type"] == "ClusterIP"
    for obj in exposed.values():
        kubernetes_validate.validate(copy.deepcopy(obj), KUBERNETES_VERSION, strict=True)
