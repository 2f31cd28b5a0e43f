"""The Kubernetes Pulumi program under mocks: images pushed and pinned by digest, every object a typed resource."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

import pulumi
import pytest
import yaml

from mlspec.backends.pulumi.compile import common_files, compile_project, kubernetes_project_files
from mlspec.backends.pulumi.kubernetes import meta, pods
from mlspec.backends.pulumi.kubernetes.assembly import context_of
from mlspec.backends.pulumi.kubernetes.context import Context, image
from mlspec.backends.pulumi.kubernetes.endpoint import endpoint_objects
from mlspec.backends.pulumi.kubernetes.program import OBJECTS_FILE, program_files
from mlspec.backends.pulumi.manifests import ManifestSettings, external_secrets, images, manifest_files
from mlspec.backends.pulumi.model import ProgramModel, ResourceSize, build_program
from mlspec.graph import load_graph
from mlspec.pulumi.kubernetes.secrets import KEYS_HASH_ANNOTATION
from mlspec.runtime.keys import key_hash
from tests.kubernetes.conftest import is_manifest
from tests.pulumi.conftest import ROOT
from tests.pulumi.harness import Captured, EchoMocks, run_program

IMAGE = "docker:index/image:Image"
KUBERNETES_STACKS = ("iris", "torch-digits")
REGISTRY = "registry.test/team"


class PushingMocks(EchoMocks):
    """An image push answers with the digest a registry would: the tag's repository at a digest of the tag."""

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str | None, dict[str, Any]]:
        id_, state = super().new_resource(args)
        if args.typ == IMAGE:
            name = state["imageName"]
            state["repoDigest"] = f"{name.rsplit(':', 1)[0]}@sha256:{hashlib.sha256(name.encode()).hexdigest()}"
        return id_, state


def _objects(program: ProgramModel) -> list[dict[str, Any]]:
    """A namespace, the tracking server and a training job on the example's images, a custom resource, and the
    example's online endpoint as the compiler builds it."""
    ctx = Context.of(program.project)
    size = ResourceSize(1, 512, 0)
    ns = meta.k8s_object("v1", "Namespace", meta.metadata(ctx.namespace, None, {}))
    tracking = meta.k8s_object("apps/v1", "Deployment", meta.metadata("mlflow", ctx.namespace, {"app": "mlflow"}),
                               spec={"selector": {"matchLabels": {"app": "mlflow"}},
                                     "template": {"metadata": {"labels": {"app": "mlflow"}}, "spec": pods.pod_spec(
                                         [pods.container("mlflow", image("tracking"), ["mlflow"], size)])}})
    job = program.jobs[0]
    training = meta.k8s_object(
        "batch/v1", "Job", meta.metadata(f"train-{job.content_hash[:10]}", ctx.namespace, {},
                                         {"mlspec.io/depends-on": "Deployment/mlflow"}),
        spec={"template": {"spec": pods.pod_spec([pods.container("train", image(job.var), ["python"], size)],
                                                 restart_policy="Never")}})
    queue = meta.k8s_object("kueue.x-k8s.io/v1beta1", "LocalQueue", meta.metadata("cpu", ctx.namespace, {}),
                            spec={"clusterQueue": "cpu"})
    return [ns, tracking, training, queue, *(obj for e in program.endpoints for obj in endpoint_objects(e, ctx))]


def write_project(tmp_path: Path, objects: list[dict[str, Any]] | None = None) -> tuple[Path, ProgramModel]:
    spec = tmp_path / "examples" / "iris"
    shutil.copytree(ROOT / "examples" / "iris", spec, ignore=shutil.ignore_patterns(".mlspec", "__pycache__"))
    out = tmp_path / "stacks" / "iris-kubernetes"
    program = build_program(load_graph([spec]), out)
    files = program_files(program, Context.of(program.project), objects or _objects(program),
                          common_files(program, "kubernetes"))
    for rel, text in files.items():
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        (out / rel).write_text(text, encoding="utf-8")
    return out, program


@pytest.fixture(scope="module")
def applied(tmp_path_factory: pytest.TempPathFactory) -> tuple[Captured, ProgramModel]:
    out, program = write_project(tmp_path_factory.mktemp("k8s"))
    return run_program(out, {"registry": REGISTRY}, mocks=PushingMocks()), program


def test_images_are_pushed_to_the_registry_in_build_order(applied: tuple[Captured, ProgramModel]) -> None:
    captured, program = applied
    images = {r.name: r for r in captured.of_type(IMAGE)}
    assert set(images) == {*(e.var for e in program.shared), *(e.var for e in program.environments),
                           *(j.var for j in program.jobs)} and "tracking" in images
    for name, built in images.items():
        assert built.inputs["imageName"].startswith(f"{REGISTRY}/{program.project}-{name.replace('_', '-')}:")
        assert built.inputs["skipPush"] is False
    for env in (program.environments[0], program.tracking):
        assert env is not None
        assert images[env.var].inputs["build"]["args"]["RUNTIME_IMAGE"] == images["runtime"].inputs["imageName"]
    job = program.jobs[0]
    assert images[job.var].inputs["build"]["args"]["ENVIRONMENT_IMAGE"] == images[job.environment].inputs["imageName"]


def test_pods_run_images_by_digest(applied: tuple[Captured, ProgramModel]) -> None:
    captured, program = applied
    digests = {r.name: r.outputs["repoDigest"] for r in captured.of_type(IMAGE)}
    tracking = captured.get("kubernetes:apps/v1:Deployment", "deployment-mlflow")
    assert tracking.inputs["spec"]["template"]["spec"]["containers"][0]["image"] == digests["tracking"]
    job = program.jobs[0]
    training = captured.get("kubernetes:batch/v1:Job", f"job-train-{job.content_hash[:10]}")
    assert training.inputs["spec"]["template"]["spec"]["containers"][0]["image"] == digests[job.var]
    assert "@sha256:" in digests[job.var]
    assert captured.exports["images"] == digests


def test_objects_come_after_their_namespace_and_what_they_depend_on(applied: tuple[Captured, ProgramModel]) -> None:
    captured, program = applied
    namespace = captured.get("kubernetes:core/v1:Namespace", f"namespace-{program.project}")
    tracking = captured.get("kubernetes:apps/v1:Deployment", "deployment-mlflow")
    training = captured.get("kubernetes:batch/v1:Job", f"job-train-{program.jobs[0].content_hash[:10]}")
    assert namespace.urn in tracking.dependencies and namespace.urn in training.dependencies
    assert tracking.urn in training.dependencies
    workspace = captured.get("mlspec:kubernetes:Workspace", program.project)
    assert {tracking.parent, training.parent, namespace.parent} == {workspace.urn}


def test_a_kind_without_a_typed_resource_is_a_custom_resource(applied: tuple[Captured, ProgramModel]) -> None:
    captured, _ = applied
    queue = captured.get("kubernetes:kueue.x-k8s.io/v1beta1:LocalQueue", "localqueue-cpu")
    assert queue.inputs["spec"] == {"clusterQueue": "cpu"}


def test_the_program_reads_the_objects_file_it_was_compiled_with(tmp_path: Path) -> None:
    out, program = write_project(tmp_path)
    objects = list(yaml.safe_load_all((out / OBJECTS_FILE).read_text()))
    assert objects == _objects(program)
    assert "mlspec-image:" in (out / OBJECTS_FILE).read_text()


def test_a_missing_registry_is_a_clear_error(tmp_path: Path) -> None:
    out, _ = write_project(tmp_path)
    with pytest.raises(Exception, match="mlspec:registry is not set"):
        run_program(out, {}, mocks=PushingMocks())


def test_an_image_the_program_does_not_build_is_refused(tmp_path: Path) -> None:
    program_less = meta.k8s_object("v1", "Namespace", meta.metadata("x", None, {}))
    stray = meta.k8s_object("v1", "ConfigMap", meta.metadata("c", "x", {}), data={"image": image("nowhere")})
    out, _ = write_project(tmp_path, [program_less, stray])
    with pytest.raises(Exception, match="image 'nowhere', which the program does not build"):
        run_program(out, {"registry": REGISTRY}, mocks=PushingMocks())


def test_a_kube_context_adds_an_explicit_provider(tmp_path: Path) -> None:
    out, _ = write_project(tmp_path)
    captured = run_program(out, {"registry": REGISTRY, "kubeContext": "prod"}, mocks=PushingMocks())
    provider = captured.get("pulumi:providers:kubernetes", "cluster")
    assert provider.inputs["context"] == "prod"
    tracking = captured.get("kubernetes:apps/v1:Deployment", "deployment-mlflow")
    assert tracking.provider.startswith(provider.urn)


def test_endpoint_secrets_are_generated_and_only_digests_reach_the_cluster(
        applied: tuple[Captured, ProgramModel]) -> None:
    captured, program = applied
    endpoint = program.endpoints[0]
    keys = captured.exports[f"{endpoint.name}.keys"]
    assert f"{endpoint.name}.keys" in captured.secret_exports and set(keys) == {"primary", "secondary"}
    hashes = captured.get("kubernetes:core/v1:Secret", f"secret-{endpoint.name}-gateway-keys")
    expected = [key_hash(keys[slot]) for slot in ("primary", "secondary")]
    assert hashes.inputs["stringData"]["key_hashes"].splitlines() == expected
    token = captured.get("kubernetes:core/v1:Secret", f"secret-{endpoint.name}-internal-token")
    assert len(token.inputs["stringData"]["token"]) == 48
    everything = json.dumps([r.inputs for r in captured.resources if r.type.startswith("kubernetes:")])
    assert keys["primary"] not in everything and keys["secondary"] not in everything
    namespace = captured.get("kubernetes:core/v1:Namespace", f"namespace-{program.project}")
    assert namespace.urn in hashes.dependencies
    for deployment in captured.of_type("kubernetes:apps/v1:Deployment"):
        if deployment.name != "deployment-mlflow":
            assert {hashes.urn, token.urn} <= set(deployment.dependencies), deployment.name


def test_new_keys_roll_the_gateway_alone(applied: tuple[Captured, ProgramModel]) -> None:
    captured, program = applied
    endpoint = program.endpoints[0]
    keys = captured.exports[f"{endpoint.name}.keys"]
    digest = hashlib.sha256("".join(f"{key_hash(keys[s])}\n" for s in ("primary", "secondary")).encode())
    annotated = {d.name: (d.inputs["spec"]["template"]["metadata"].get("annotations") or {}).get(KEYS_HASH_ANNOTATION)
                 for d in captured.of_type("kubernetes:apps/v1:Deployment")}
    assert annotated.pop(f"deployment-{endpoint.name}") == digest.hexdigest()[:16]
    assert set(annotated.values()) == {None}


@pytest.mark.parametrize("example", KUBERNETES_STACKS)
def test_committed_kubernetes_stack_is_current(example: str) -> None:
    stack = ROOT / "stacks" / f"{example}-kubernetes"
    expected = kubernetes_project_files(build_program(load_graph([ROOT / "examples" / example]), stack))
    on_disk = {p.relative_to(stack).as_posix(): p.read_text(encoding="utf-8") for p in sorted(stack.rglob("*"))
               if p.is_file() and ".build" not in p.parts} if stack.is_dir() else {}
    hint = (f"stacks/{example}-kubernetes is stale: run `mlspec compile examples/{example} --target kubernetes -o "
            f"stacks/{example}-kubernetes`")
    assert sorted(on_disk) == sorted(expected), hint
    for name, text in expected.items():
        assert on_disk[name] == text, f"{hint} ({name} differs)"


# The examples, and a spec with what they lack: distributed training, an instance, an inference cluster and a
# batch endpoint; and the sweep and pipeline examples.
AGREEING = {**{name: ROOT / "examples" / name for name in KUBERNETES_STACKS},
            "distributed": ROOT / "tests" / "kubernetes" / "specs" / "distributed",
            "attached": ROOT / "tests" / "kubernetes" / "specs" / "attached",
            "sweep": ROOT / "examples" / "sweep", "pipeline": ROOT / "examples" / "pipeline"}


@pytest.mark.parametrize("example", sorted(AGREEING))
def test_the_program_applies_exactly_the_manifests_objects(example: str, tmp_path: Path) -> None:
    """One model, two renderers: what `pulumi up` creates is what `--format manifests` writes, object for object,
    the images the program pushed in place of the registry tags, and the Secrets it generates in place of the ones
    a manifests user creates."""
    spec = tmp_path / "examples" / example
    shutil.copytree(AGREEING[example], spec, ignore=shutil.ignore_patterns(".mlspec", "__pycache__"))
    graph = load_graph([spec])
    out = tmp_path / "stacks" / f"{example}-kubernetes"
    compile_project(graph, out, "kubernetes")
    captured = run_program(out, {"registry": REGISTRY}, mocks=PushingMocks())
    program = build_program(graph, out)
    manifests = manifest_files(program, ManifestSettings(REGISTRY))
    written = [yaml.safe_load(text) for rel, text in manifests.items() if is_manifest(rel)]
    pushed = {r.name: r.outputs["repoDigest"] for r in captured.of_type(IMAGE)}
    tags = {image.reference: pushed[image.key] for image in images(program, ManifestSettings(REGISTRY))}
    applied = {}
    for resource in captured.resources:
        if resource.type.startswith("kubernetes:") and resource.custom and "metadata" in resource.inputs:
            kind = resource.type.rsplit(":", 1)[1]
            meta_in = resource.inputs["metadata"]
            applied[(kind, meta_in["name"], meta_in.get("namespace"))] = resource.inputs
    generated = {name for (kind, name, _) in applied if kind == "Secret"}
    assert generated == {s.name for s in external_secrets(program, context_of(program)) if not s.optional}
    for obj in written:
        inputs = applied.pop((obj["kind"], obj["metadata"]["name"], obj["metadata"].get("namespace")))
        text = json.dumps(obj)
        for tag, digest in tags.items():
            text = text.replace(json.dumps(tag), json.dumps(digest))
        expected = json.loads(text)
        assert _comparable(inputs, obj) == _comparable(expected, obj), (obj["kind"], obj["metadata"]["name"])
    assert {kind for kind, _, _ in applied} <= {"Secret"}  # a spec without an endpoint generates none


def _comparable(inputs: dict[str, Any], obj: dict[str, Any]) -> dict[str, Any]:
    """An object's body without what the program adds by design: the gateway's keys digest annotation."""
    body = {k: v for k, v in inputs.items() if k not in ("apiVersion", "kind")}
    body = json.loads(json.dumps(body))
    template = (body.get("spec") or {}).get("template") or {}
    annotations = (template.get("metadata") or {}).get("annotations") or {}
    annotations.pop(KEYS_HASH_ANNOTATION, None)
    return body


def test_a_kubernetes_stack_settles_registry_context_and_namespace(tmp_path: Path) -> None:
    from mlspec.cli.main import main

    spec = tmp_path / "examples" / "iris"
    shutil.copytree(ROOT / "examples" / "iris", spec, ignore=shutil.ignore_patterns(".mlspec", "__pycache__"))
    (spec / "mlspec.stacks.yaml").write_text(
        "stacks:\n  prod:\n    target: kubernetes\n"
        "    kubernetes: {context: prod-aks, namespace: ml-prod, registry: registry.test/ml}\n")
    out = tmp_path / "stacks" / "prod"
    assert main(["compile", str(spec), "--stack", "prod", "-o", str(out)]) == 0
    config = yaml.safe_load((out / "Pulumi.prod.yaml").read_text())["config"]
    assert config == {"mlspec:kubeContext": "prod-aks", "mlspec:registry": "registry.test/ml"}
    objects = list(yaml.safe_load_all((out / OBJECTS_FILE).read_text()))
    assert {o["metadata"].get("namespace", o["metadata"]["name"]) for o in objects
            if o["kind"] != "PriorityClass"} == {"ml-prod"}
    captured = run_program(out, {}, mocks=PushingMocks())
    assert captured.get("pulumi:providers:kubernetes", "cluster").inputs["context"] == "prod-aks"
    assert all(r.inputs["imageName"].startswith("registry.test/ml/") for r in captured.of_type(IMAGE))


def test_an_attached_contexts_objects_go_through_its_own_provider(tmp_path: Path) -> None:
    """The evaluation job and the endpoint on the attached compute go to its cluster, with their namespace and
    Secrets; the training job stays on the stack's cluster, through the stack's provider."""
    spec = tmp_path / "specs" / "attached"
    shutil.copytree(AGREEING["attached"], spec)
    out = tmp_path / "stacks" / "attached-kubernetes"
    compile_project(load_graph([spec]), out, "kubernetes")
    captured = run_program(out, {"registry": REGISTRY, "kubeContext": "main"}, mocks=PushingMocks())
    stack = captured.get("pulumi:providers:kubernetes", "cluster")
    edge = captured.get("pulumi:providers:kubernetes", "context-edge-cluster")
    assert edge.inputs["context"] == "edge-cluster"
    objects = [r for r in captured.resources if r.type.startswith("kubernetes:") and r.custom]
    on_edge = {(r.type.rsplit(":", 1)[1], r.inputs["metadata"]["name"]) for r in objects
               if r.provider.startswith(edge.urn)}
    on_stack = {(r.type.rsplit(":", 1)[1], r.inputs["metadata"]["name"]) for r in objects
                if r.provider.startswith(stack.urn)}
    assert len(on_edge) + len(on_stack) == len(objects)
    assert {("Namespace", "ml-edge"), ("Deployment", "mlp"), ("Deployment", "mlp-main"), ("Secret", "mlp-gateway-keys"),
            ("Secret", "mlp-internal-token")} <= on_edge
    assert {kind for kind, name in on_edge if name.startswith("evaluate-")} == {"Job", "ConfigMap"}
    assert {kind for kind, name in on_stack if name.startswith("train-")} == {"Job", "ConfigMap"}
    assert ("Namespace", "attached") in on_stack and not any(name.startswith(("mlp", "evaluate-"))
                                                           for _, name in on_stack)
    assert all(r.inputs["metadata"].get("namespace") in (None, "ml-edge") for r in objects
               if r.provider.startswith(edge.urn))


def test_an_attached_context_without_a_reachable_tracking_server_is_refused_at_its_line(tmp_path: Path) -> None:
    from mlspec.graph import analyze

    spec = tmp_path / "attached"
    shutil.copytree(AGREEING["attached"], spec)
    text = (spec / "mlspec.yaml").read_text()
    (spec / "mlspec.yaml").write_text(text.replace('tracking: {uri: "https://mlflow.example.com"}\n', ""))
    analysis = analyze([spec], "kubernetes")
    (error,) = analysis.diagnostics.errors
    assert "attached context 'edge-cluster' is another cluster" in error.summary
    assert error.hint and "tracking.uri" in error.hint
    without = (spec / "mlspec.yaml").read_text().splitlines()
    assert error.span is not None and without[error.span.line - 1].startswith("kube_context:")
    assert not analyze([AGREEING["attached"]], "kubernetes").diagnostics.errors  # with tracking.uri it compiles


def test_a_preview_of_a_train_py_change_touches_the_jobs_and_the_replicas_that_serve_their_models(
        tmp_path: Path) -> None:
    """Offline `pulumi preview` of an edited train.py: what the program registers before and after, compared. Both
    iris jobs run train.py, so each is a new Job (a new name: Jobs are immutable) with a new image and run
    contract, and the replicas serving their models roll; the gateway, MLflow, the environment images and every
    other object stay as they are."""
    def state(edit: bool) -> dict[tuple[str, str], str]:
        spec = tmp_path / ("after" if edit else "before") / "examples" / "iris"
        shutil.copytree(ROOT / "examples" / "iris", spec, ignore=shutil.ignore_patterns(".mlspec", "__pycache__"))
        if edit:
            train = spec / "src" / "train.py"
            train.write_text(train.read_text() + "\n# tuned: a comment is enough to change the code's digest\n")
        out = spec.parents[1] / "stacks" / "iris-kubernetes"
        compile_project(load_graph([spec]), out, "kubernetes")
        captured = run_program(out, {"registry": REGISTRY}, mocks=PushingMocks())
        return {r.key: json.dumps(r.inputs, sort_keys=True) for r in captured.resources}

    before, after = state(False), state(True)
    changed = {key for key in before.keys() & after.keys() if before[key] != after[key]}
    replaced = before.keys() ^ after.keys()
    program = build_program(load_graph([ROOT / "examples" / "iris"]), tmp_path)
    jobs = {job.var for job in program.jobs}
    assert {(kind.rsplit(":", 1)[1], name.split("-")[1]) for kind, name in replaced} == {
        ("Job", "train"), ("ConfigMap", "train")}  # each job's Job and run contract, under new names
    assert len(replaced) == 2 * 2 * len(jobs)  # old and new, of both jobs
    assert changed == {
        *((IMAGE, var) for var in jobs),  # rebuilt with the new code
        ("kubernetes:apps/v1:Deployment", "deployment-iris-blue"),  # they serve the retrained models
        ("kubernetes:apps/v1:Deployment", "deployment-iris-green"),
    }, changed
