"""The Docker program model: the resource graph as plain data, ready for the templates to print."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from mlspec.backends.pulumi.automl import automl_environment, automl_model
from mlspec.backends.pulumi.pipelines import lanes as pipeline_lanes
from mlspec.backends.pulumi.pipelines import pipeline_model
from mlspec.graph import Graph, Node
from mlspec.graph.digest import tree_digests
from mlspec.plan.labels import own_labels
from mlspec.runtime.sweep.contract import sweep_settings
from mlspec.spec import AutoMLJob, BatchEndpoint, Deployment, Job, ModelRef, OnlineEndpoint
from mlspec.spec import Environment as EnvironmentSpec
from mlspec.spec import Model as ModelSpec
from mlspec.spec.compute import AttachedCompute, ClusterCompute, ComputeBase, InstanceCompute, Resources
from mlspec.spec.conda import CondaFile
from mlspec.spec.job import PathInput
from mlspec.spec.pipeline import PipelineJob, SweepStep, step_field
from mlspec.spec.schedule import Schedule
from mlspec.spec.sweep import JOB_MODELS, SweepJob, trial_field

# What mlspec's own runtime (training runner, scoring server, gateway) needs in every image, as pyproject.toml
# declares it; mlspec's source is copied into the image beside these. MLflow's client alone (mlflow-skinny, the
# same `mlflow` package without the server, its UI and their dependencies) with the numpy and pandas its model
# flavors and the scoring server load (pyproject.toml has them through mlflow): jobs and replicas only talk to a
# tracking server.
RUNTIME_REQUIREMENTS = (
    "pydantic>=2.6,<3",
    "PyYAML>=6.0",
    "mlflow-skinny>=2.12,<4",
    "numpy>=1.24",
    "pandas>=2.0",
    "uvloop>=0.19",
    "httptools>=0.6",
    "orjson>=3.9",
    "jsonschema>=4.21",  # a scoring script's input schema
)
# The workspace's tracking server: the whole of MLflow, on the runtime image (only its image has it).
TRACKING_REQUIREMENTS = ("mlflow>=2.12,<4",)
NOTEBOOK_REQUIREMENTS = ("jupyterlab>=4",)
# What a sweep's controller adds to the environment its trials run in: Optuna (and the SQLAlchemy its study's
# storage uses, which the MLflow client alone lacks), as pyproject.toml pins it.
SWEEP_REQUIREMENTS = ("optuna>=4",)
PORT_RANGE = (20000, 10000)  # gateway and JupyterLab ports a spec leaves open: first port, how many


class CompileError(Exception):
    """The spec cannot be compiled for this target; the message names the resource and what to change."""


@dataclass(frozen=True)
class ResourceSize:
    cpus: float
    memory_mb: int
    gpus: int


@dataclass(frozen=True)
class BuildModel:
    """An environment built from the user's Docker build context."""

    context: str  # relative to the spec root, POSIX
    dockerfile: str  # relative to the context


@dataclass(frozen=True)
class EnvironmentModel:
    var: str  # the Python variable in __main__.py
    name: str  # Pulumi resource name (the spec name)
    content_hash: str
    folder: str  # docker/<folder>/ holds its Dockerfile and requirements.txt
    requirements: tuple[str, ...]  # the spec's, in order (after mlspec's runtime for an image of its own)
    base_image: str | None  # None: the stack's mlspec:baseImage
    env: dict[str, str]
    # Built on the workspace's runtime image, installing only what it lacks (an environment without a base image
    # of its own): environments then share the runtime's layers instead of each holding a copy of MLflow.
    on_runtime: bool = False
    python: str | None = None  # the Python version the spec asks for (python, or a conda file's pin); None: any
    build: BuildModel | None = None  # the user's own Dockerfile, which mlspec's runtime is layered onto
    # Debian packages of shared libraries its Python packages load but do not ship (LightGBM's OpenMP runtime):
    # installed by apt where the base image lacks them.
    system_packages: tuple[str, ...] = ()


@dataclass(frozen=True)
class ModelFromPath:
    """A model registered from a file or folder of the spec (a Model with `path`), by a run-to-completion container
    whose image holds the files."""

    var: str
    name: str
    content_hash: str
    folder: str  # docker/<folder>/ holds its Dockerfile
    environment: str | None  # var of the environment it is registered in; None: the workspace's runtime image
    path: str  # relative to the spec root, POSIX
    files: dict[str, str]  # the model's files (and its loader's module), relative to the spec root -> sha256
    flavor: str | None = None
    loader: str | None = None
    code: str | None = None  # the folder the loader's module is imported from, relative to the spec root
    signature: dict[str, Any] | None = None
    aliases: tuple[str, ...] = ()


@dataclass(frozen=True)
class JobModel:
    var: str
    name: str
    content_hash: str
    folder: str
    environment: str  # var of its EnvironmentModel
    command: str
    experiment: str
    code: str | None  # folder relative to the spec root
    files: dict[str, str]  # every file baked into the image, relative to the spec root -> sha256
    inputs: dict[str, Any]  # literal -> value (text for booleans); path -> {"path": relative to the spec root}
    outputs: dict[str, dict[str, Any]]
    env: dict[str, str]
    timeout: float | None
    retries: int
    size: ResourceSize
    registers: tuple[str, ...]  # model names it registers
    after: tuple[str, ...] = ()  # vars of the jobs ahead of it in its cluster lanes (max_nodes)
    compute: str | None = None  # the compute it runs on (its name), for targets that schedule by compute
    nodes: int = 1  # resources.instance_count: nodes (pods) that run the command together
    distribution: str | None = None  # "pytorch": every node runs a torchrun agent
    processes_per_node: int = 1  # torchrun workers per node
    # A sweep (type: sweep): its settings as JSON (mlspec.runtime.sweep.contract.sweep_settings); `command`,
    # `code` and `env` are its trial's, `timeout` the whole sweep's (limits.timeout). None: a command job.
    sweep: str | None = None
    schedule: Schedule | None = None  # re-run on a timetable (targets with a scheduler)
    # A pipeline (type: pipeline): the runner's contract as JSON (mlspec.runtime.pipeline.contract.PipelineRun, its
    # tracking URI the target's to set); `files` are every step's, `size` one node of its compute. None: no pipeline.
    pipeline: str | None = None
    # An AutoML job (type: automl): its search settings and its table's path (relative to the spec root) as JSON
    # (mlspec.runtime.automl.contract.settings_text); `command` is empty, `timeout` the searches' limit.
    automl: str | None = None


@dataclass(frozen=True)
class ScoringModel:
    """A deployment's scoring script: its code folder (and input schema file) baked onto its environment's image."""

    var: str  # the image's key (as a job's var is)
    name: str  # endpoint/deployment, for the Dockerfile's comment
    folder: str  # docker/<folder>/ holds its Dockerfile
    content_hash: str  # of the files alone: a retrained model does not rebuild the image
    code: str  # the code folder, relative to the spec root, POSIX
    scoring_script: str  # inside `code`
    files: dict[str, str]  # the code folder's files and the schema file, relative to the spec root -> sha256
    input_schema: str | None = None  # the schema file relative to the spec root, "signature", or None


@dataclass(frozen=True)
class DeploymentModel:
    name: str
    environment: str  # var
    model: str
    version: int | None  # a pinned version
    alias: str | None  # a registry alias (not 'latest')
    job: str | None  # var of the job in this spec that registers the model (its version is used)
    settings: dict[str, Any]  # instance_count, workers, limits, batching, probes, env: plain values
    size: ResourceSize
    # The spec's autoscale, whole (plain values): None for a fixed instance_count. Targets without an autoscaler
    # refuse it when validating; settings.instance_count is then its min_instances (at least 1).
    autoscale: dict[str, Any] | None = None
    compute: str | None = None  # the compute its replicas run on (its name), for targets that schedule by compute
    scoring: ScoringModel | None = None  # its scoring script; None: the model's own predict


@dataclass(frozen=True)
class EndpointModel:
    var: str
    name: str
    content_hash: str
    auth: str
    port: int
    traffic: dict[str, int]
    mirror: dict[str, int]
    deployments: tuple[DeploymentModel, ...]
    tags: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class BatchModel:
    """A batch endpoint's scoring run, for targets that compile it (its image: the environment's plus the data)."""

    var: str
    name: str
    content_hash: str  # what it scores: the endpoint's settings, its data's files and its model's source
    folder: str
    environment: str  # var
    files: dict[str, str]  # the data's files, relative to the spec root -> sha256
    data: str  # the data's path, relative to the spec root
    model: str  # models:/NAME/VERSION, models:/NAME@ALIAS
    job: str | None  # var of the job in this spec that registers the model (its latest version is scored)
    output: str  # the spec's output.path
    settings: dict[str, Any]  # mode, mini_batch_size, error_threshold, max_retries, timeout, max_concurrency
    size: ResourceSize
    compute: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    nodes: int = 1  # the compute's nodes (a cluster's max_nodes): targets running one scorer give it their workers
    model_name: str = ""  # the registered model's name
    version: int | None = None  # a pinned version
    alias: str | None = None  # a registry alias (not 'latest')
    code: str | None = None  # a scoring script's folder, relative to the spec root (its files are in `files`)
    scoring_script: str | None = None  # the script inside `code`; None: the model's own predict


@dataclass(frozen=True)
class InstanceModel:
    var: str
    name: str
    content_hash: str
    environment: str  # var of the notebook environment (requirements + JupyterLab)
    port: int
    size: ResourceSize
    tags: dict[str, str] = field(default_factory=dict)
    idle_shutdown: float | None = None  # seconds idle before JupyterLab stops; None: never


@dataclass(frozen=True)
class ComputeModel:
    """A compute as targets that schedule onto node pools see it (the docker target runs everything on its host)."""

    name: str
    type: str  # the spec's compute type: local, cluster, instance, inference-cluster, attached
    size: ResourceSize  # one node's
    max_nodes: int = 1  # nodes at once (a cluster's max_nodes)
    low_priority: bool = False
    gpu_type: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    kube_context: str | None = None  # an attached compute's kubeconfig context: its own cluster
    namespace: str | None = None  # an attached compute's namespace there, when the spec names one
    host: str | None = None  # an attached compute's Docker host (ssh://user@host): its own provider


@dataclass(frozen=True)
class LabelsModel:
    """Tags and descriptions for MLflow, applied after the jobs (see mlspec.pulumi.MlflowLabels)."""

    experiments: dict[str, dict[str, Any]]  # name -> {"tags", "description"}, each only when set
    jobs: tuple[dict[str, Any], ...]  # {"job", "content_hash", "tags"?, "description"?}
    models: tuple[dict[str, Any], ...]  # {"name", "content_hash" (its job's), "tags"?, "description"?}
    after: tuple[str, ...]  # vars of the jobs


@dataclass(frozen=True)
class ProgramModel:
    project: str
    description: str
    stack: str
    spec_root: str  # relative to the project folder, POSIX
    runtime: EnvironmentModel
    environments: tuple[EnvironmentModel, ...]
    jobs: tuple[JobModel, ...]
    endpoints: tuple[EndpointModel, ...]
    instances: tuple[InstanceModel, ...]
    skipped: tuple[str, ...] = field(default=())  # resources this target has no counterpart for, with why
    volume: str | None = None  # the workspace's storage volume, when the spec names it
    tracking_uri: str | None = None  # the team's own MLflow server, when the spec names one
    tags: dict[str, str] = field(default_factory=dict)  # the workspace's
    labels: LabelsModel | None = None  # None: nothing in the spec has a tag or a description for MLflow
    computes: tuple[ComputeModel, ...] = ()  # in spec order
    storage_size: int = 10 * 2**30  # bytes of each volume claim, on targets that size their volumes
    batches: tuple[BatchModel, ...] = ()  # batch endpoints
    path_models: tuple[ModelFromPath, ...] = ()  # models registered from the spec's files

    def host_of(self, compute: str | None) -> str | None:
        """The Docker host of an attached compute (by name); None: the stack's host."""
        return next((c.host for c in self.computes if c.name == compute), None)

    def attached_only(self, environment: str) -> bool:
        """Whether every job and deployment on an environment (by var) runs on an attached host, and something
        does: then the stack's host builds its image only if something else there asks for it."""
        hosts = [self.host_of(j.compute) for j in self.jobs if j.environment == environment]
        hosts += [self.host_of(d.compute) for e in self.endpoints for d in e.deployments
                  if d.environment == environment]
        return bool(hosts) and all(host is not None for host in hosts)

    @property
    def tracking_port(self) -> int | None:
        """The host port the workspace's own MLflow is published on; None where the spec names its server."""
        return None if self.tracking_uri else tracking_port(self.project)
    tracking: EnvironmentModel | None = None  # the tracking server's image; None: the team's server (tracking_uri)

    @property
    def shared(self) -> tuple[EnvironmentModel, ...]:
        """The workspace's own images, built before the environments: the runtime, and the tracking server's."""
        return (self.runtime,) if self.tracking is None else (self.runtime, self.tracking)


def identifier(prefix: str, name: str, taken: set[str]) -> str:
    """A Python variable name for a resource, unique in the program."""
    base = re.sub(r"\W", "_", f"{prefix}_{name}").lower()
    var, n = base, 2
    while var in taken:
        var, n = f"{base}_{n}", n + 1
    taken.add(var)
    return var


def stable_port(key: str) -> int:
    """A host port derived from names only, so the URL of an endpoint never changes between updates."""
    first, count = PORT_RANGE
    return first + int(hashlib.sha256(key.encode()).hexdigest()[:8], 16) % count


def tracking_port(workspace: str) -> int:
    """The host port of a workspace's own MLflow (behind authentication), stable like an endpoint's."""
    return stable_port(f"{workspace}/mlflow")


def runtime_hash(requirements: tuple[str, ...]) -> str:
    return hashlib.sha256("\0".join(("mlspec-runtime", *requirements)).encode()).hexdigest()


def _size(resources: Resources) -> ResourceSize:
    return ResourceSize(cpus=resources.cpus, memory_mb=max(6, resources.memory // 2**20), gpus=resources.gpus)


def _literal(value: Any) -> Any:
    # Booleans become the text the command receives (JobRun prints them as true/false either way); this keeps
    # every value in the program a JSON value that is also Python.
    if isinstance(value, bool):
        return "true" if value else "false"
    return value


class _Builder:
    def __init__(self, graph: Graph, out_dir: Path, stack: str) -> None:
        self.graph, self.spec, self.out_dir, self.stack = graph, graph.spec, out_dir, stack
        self.taken: set[str] = {"pulumi", "settings", "workspace", "labels"}
        self.env_vars: dict[str, str] = {}  # environment id -> var
        self.job_of_model: dict[str, str] = {}  # model name -> job var
        self.environments: list[EnvironmentModel] = []
        self.skipped: list[str] = []
        self.batches: list[BatchModel] = []
        self.jobs: tuple[JobModel, ...] = ()
        self.path_models: dict[str, ModelFromPath] = {}  # model name -> how it is registered from its files

    def nodes(self, kind: str) -> list[Node]:
        return [n for n in self.graph.nodes.values() if n.kind == kind]

    def compute(self, source: str, path: str) -> ComputeBase | None:
        target = self.spec.target(source, path)
        resource = self.spec.get(target) if target else None
        return resource if isinstance(resource, ComputeBase) else None

    def host(self, source: str, path: str) -> str | None:
        """The Docker host of the attached compute at `path` of `source`; None: the stack's host."""
        compute = self.compute(source, path)
        return compute.host if isinstance(compute, AttachedCompute) else None

    def size(self, source: str, path: str, own: Resources | None = None) -> ResourceSize:
        compute = self.compute(source, path)
        return _size(own or (compute.resources if compute else Resources()))

    def environment(self, node: Node) -> EnvironmentModel:
        env = node.resource
        assert isinstance(env, EnvironmentSpec)
        files = self.spec.files.get(node.id, {})
        requirements: list[str] = []
        # Only a version the spec writes out binds the image: unset, the base image's Python is the one.
        python = env.python if "python" in env.model_fields_set else None
        if isinstance(env.requirements, list):
            requirements = list(env.requirements)
        elif isinstance(env.requirements, str):
            path = files.get("requirements") or self.spec.root / env.requirements
            lines = Path(path).read_text(encoding="utf-8").splitlines()
            requirements = [ln.strip() for ln in lines if ln.strip() and not ln.strip().startswith("#")]
        elif env.conda_file is not None:
            conda = CondaFile.read(Path(files.get("conda_file") or self.spec.root / env.conda_file))
            requirements, python = list(conda.pip), conda.python or python
        build = None
        if env.build is not None:
            context = Path(files.get("build.context") or self.spec.root / env.build.context)
            build = BuildModel(Path(_relpath(context, self.spec.root)).as_posix(), env.build.dockerfile)
        content_hash = node.hash
        if node.id in self.sweep_environments():  # the sweep's controller runs in its trials' image
            requirements += [r for r in SWEEP_REQUIREMENTS if r not in requirements]
            # Another image than the same environment without a sweep: its tag (the hash, on Kubernetes) differs.
            content_hash = hashlib.sha256("\0".join((node.hash, *SWEEP_REQUIREMENTS)).encode()).hexdigest()
        var = identifier("env", env.name, self.taken)
        on_runtime = env.image is None and build is None and python is None
        model = EnvironmentModel(var, env.name, content_hash, f"environment-{env.name}",
                                 tuple(requirements) if on_runtime else (*RUNTIME_REQUIREMENTS, *requirements),
                                 env.image, dict(sorted(env.environment_variables.items())), on_runtime,
                                 python, build)
        self.env_vars[node.id] = var
        self.environments.append(model)
        return model

    def path_model(self, node: Node) -> ModelFromPath:
        """A model from the spec's files, registered in the environment of the first deployment serving it that
        names one (it can load what it serves), else the workspace's default environment, else the runtime's."""
        model = node.resource
        assert isinstance(model, ModelSpec) and model.path is not None
        environment = None
        for endpoint_node in self.nodes("Endpoint"):
            endpoint = endpoint_node.resource
            serving = [f"deployments.{name}.environment" for name, d in getattr(endpoint, "deployments", {}).items()
                       if d.environment and ModelRef.parse(d.model).name == model.name]
            if isinstance(endpoint, BatchEndpoint) and endpoint.environment \
                    and ModelRef.parse(endpoint.model).name == model.name:
                serving.append("environment")
            if serving:
                environment = self.env_of(endpoint_node.id, serving[0])
                break
        if environment is None and self.spec.workspace.defaults.environment:
            environment = self.env_vars.get(f"environment/{self.spec.workspace.defaults.environment}")
        files = dict(node.files)
        code, content_hash = None, node.hash
        if model.loader:
            # The loader's module is looked up beside the spec file that declares the model, as locally; it is part
            # of what the registration reads, so of its hash too.
            folder = Path(self.spec.resources[node.id].doc.file).resolve().parent
            module = folder / (model.loader.split(":", 1)[0].replace(".", "/") + ".py")
            if module.is_file():
                found = tree_digests(module, self.spec.root)
                files.update(found)
                content_hash = hashlib.sha256("\0".join((node.hash, *sorted(found.values()))).encode()).hexdigest()
            code = Path(_relpath(folder, self.spec.root)).as_posix()
        source = Path(self.spec.files[node.id]["path"])
        var = identifier("model", model.name, self.taken)
        registered = ModelFromPath(
            var=var, name=model.name, content_hash=content_hash, folder=f"model-{model.name}", environment=environment,
            path=Path(_relpath(source, self.spec.root)).as_posix(), files=dict(sorted(files.items())),
            flavor=model.flavor, loader=model.loader, code=code,
            signature=model.signature.model_dump(mode="json", exclude_none=True) if model.signature else None,
            aliases=tuple(model.aliases))
        self.path_models[model.name] = registered
        return registered

    def sweep_environments(self) -> set[str]:
        """The ids of the environments sweeps run in (their trials' and their controllers'; a pipeline's with a sweep
        step)."""
        found = set()
        for node in self.nodes("Job"):
            if isinstance(node.resource, SweepJob):
                target = self.spec.target(node.id, "trial.environment")
                if target is None and self.spec.workspace.defaults.environment:
                    target = f"environment/{self.spec.workspace.defaults.environment}"
                if target is not None:
                    found.add(target)
            elif isinstance(node.resource, PipelineJob) and any(isinstance(s, SweepStep)
                                                                 for s in node.resource.jobs.values()):
                name, first = next(iter(node.resource.jobs.items()))  # its steps share one environment (validate)
                target = self.spec.target(node.id, f"jobs.{name}.{step_field(first, 'environment')}")
                if target is None and self.spec.workspace.defaults.environment:
                    target = f"environment/{self.spec.workspace.defaults.environment}"
                if target is not None:
                    found.add(target)
        return found

    def env_of(self, source: str, path: str) -> str:
        target = self.spec.target(source, path)
        if target is None and self.spec.workspace.defaults.environment:
            target = f"environment/{self.spec.workspace.defaults.environment}"
        if target is None or target not in self.env_vars:
            raise CompileError(f"{source}: no environment to run in on the docker target; name one with "
                               "'environment:' or set the workspace's defaults.environment")
        return self.env_vars[target]

    def job(self, node: Node) -> JobModel:
        if isinstance(node.resource, AutoMLJob):
            return automl_model(self, node)
        job = node.resource
        if isinstance(job, PipelineJob):
            return pipeline_model(self, node)
        assert isinstance(job, JOB_MODELS)
        runs = job.trial if isinstance(job, SweepJob) else job  # a sweep's trial holds the command job's fields
        files = dict(node.files)
        inputs: dict[str, Any] = {}
        for name, value in sorted(job.inputs.items()):
            target = self.spec.target(node.id, f"inputs.{name}")
            if target and target.startswith("data/"):
                data = self.graph.nodes[target]
                files.update(data.files)
                inputs[name] = {"path": Path(data.resource.path).as_posix().rstrip("/")}  # type: ignore[attr-defined]
            elif target and target.startswith("model/"):
                inputs[name] = f"models:/{str(value).split(':', 1)[1]}"
            elif isinstance(value, PathInput):
                inputs[name] = {"path": Path(value.path).as_posix().rstrip("/")}
            else:
                inputs[name] = _literal(value)
        code = self.spec.files.get(node.id, {}).get(trial_field(job, "code"))
        compute = self.compute(node.id, "compute")
        var = identifier("job", job.name, self.taken)
        registers = tuple(sorted(o.register_as for o in job.outputs.values() if o.register_as))
        for model_name in registers:
            self.job_of_model[model_name] = var
        return JobModel(
            var=var, name=job.name, content_hash=node.hash, folder=f"job-{job.name}",
            environment=self.env_of(node.id, trial_field(job, "environment")), command=runs.command,
            experiment=job.experiment_name or self.spec.workspace.name,
            code=code.relative_to(self.spec.root).as_posix() if code else None,
            files=dict(sorted(files.items())), inputs=inputs, outputs=self.outputs(job),
            env=dict(sorted(runs.environment_variables.items())),
            size=self.size(node.id, "compute"), registers=registers, compute=compute.name if compute else None,
            **_runs(job), schedule=job.schedule)

    def outputs(self, job: Job | SweepJob | AutoMLJob) -> dict[str, dict[str, Any]]:
        """A job's outputs as its runner takes them: type, and how a model output registers (flavor, loader,
        aliases and signature from the Model resource of the same name)."""
        outputs: dict[str, dict[str, Any]] = {}
        for name, output in sorted(job.outputs.items()):
            entry: dict[str, Any] = {"type": output.type}
            model_id = f"model/{output.register_as}" if output.register_as else None
            model = self.graph.nodes[model_id].resource if model_id and model_id in self.graph.nodes else None
            flavor = output.flavor or getattr(model, "flavor", None)
            signature = getattr(model, "signature", None)
            extra = {"register_as": output.register_as, "flavor": flavor, "loader": getattr(model, "loader", None),
                     "aliases": list(getattr(model, "aliases", []) or []),
                     "signature": signature.model_dump() if signature else None}
            entry.update({k: v for k, v in extra.items() if v not in (None, [])})
            outputs[name] = entry
        return outputs

    def endpoint(self, node: Node) -> EndpointModel | None:
        endpoint = node.resource
        if isinstance(endpoint, BatchEndpoint):
            self.batches.append(self.batch(node, endpoint))
            return None
        assert isinstance(endpoint, OnlineEndpoint)
        deployments = []
        for name, deployment in endpoint.deployments.items():
            ref = ModelRef.parse(deployment.model)
            model_target = self.spec.target(node.id, f"deployments.{name}.model")
            env_var = None
            if deployment.environment:
                env_var = self.env_of(node.id, f"deployments.{name}.environment")
            elif ref.name in self.job_of_model and self.pipeline_of(ref.name) is not None:
                env_var = self.pipeline_of(ref.name)  # the image its steps ran in
            elif ref.name in self.job_of_model:
                job_id = self.graph.nodes[model_target].deps[0] if model_target in self.graph.nodes else None
                if job_id and isinstance(self.graph.nodes[job_id].resource, AutoMLJob):
                    env_var = automl_environment(self)  # the image that searched the pipeline loads it
                else:
                    env_var = self.env_of(job_id, "environment") if job_id else None
            elif ref.name in self.path_models:
                env_var = self.path_models[ref.name].environment
            env_var = env_var or self.env_of(node.id, f"deployments.{name}.environment")
            settings = deployment.model_dump(mode="json", exclude={"model", "environment", "compute", "resources"})
            # Only what the spec changes: the components take the rest from the same spec models' defaults.
            for group in ("probes", "request_settings"):
                settings[group] = getattr(deployment, group).model_dump(mode="json", exclude_defaults=True)
            replicas = deployment.autoscale.min_instances if deployment.autoscale else deployment.instance_count
            settings.update(instance_count=max(1, replicas))
            settings.pop("autoscale", None)
            settings["batching"] = settings.get("batching") or {}  # {}: no batching (the template leaves it out)
            pinned_latest = ref.version is None and ref.alias in (None, "latest")
            compute = self.compute(node.id, f"deployments.{name}.compute")
            deployments.append(DeploymentModel(
                name=name, environment=env_var, model=ref.name, version=ref.version,
                alias=None if pinned_latest else ref.alias,
                job=self.registrar(ref.name) if pinned_latest else None,
                settings=settings, size=self.size(node.id, f"deployments.{name}.compute", deployment.resources),
                autoscale=deployment.autoscale.model_dump(mode="json") if deployment.autoscale else None,
                compute=compute.name if compute else None, scoring=self.scoring(node, name, deployment)))
        hosts = {self.host(node.id, f"deployments.{name}.compute") for name in endpoint.deployments}
        if len(hosts) > 1:  # the spec's checks refuse this at the deployments' lines; a model built otherwise too
            raise CompileError(f"endpoint '{endpoint.name}': its deployments run on different Docker hosts; its "
                               "gateway reaches replicas on its own host only: put every deployment on one host")
        return EndpointModel(
            var=identifier("endpoint", endpoint.name, self.taken), name=endpoint.name, content_hash=node.hash,
            auth=endpoint.auth, port=endpoint.port or stable_port(f"{self.spec.workspace.name}/{endpoint.name}"),
            traffic=endpoint.effective_traffic(), mirror=dict(endpoint.mirror_traffic),
            deployments=tuple(deployments), tags=dict(sorted(endpoint.tags.items())))

    def scoring(self, node: Node, name: str, deployment: Deployment) -> ScoringModel | None:
        """The deployment's scoring script and the files its image holds (the code folder, the schema file)."""
        config = deployment.code_configuration
        located = self.spec.files.get(node.id, {})
        code = located.get(f"deployments.{name}.code_configuration.code")
        if config is None or code is None:
            return None
        files = tree_digests(code, self.spec.root)
        schema = located.get(f"deployments.{name}.input_schema")
        input_schema = deployment.input_schema
        if schema is not None:
            files.update(tree_digests(schema, self.spec.root))
            input_schema = _relative(schema, self.spec.root)
        files = dict(sorted(files.items()))
        content = hashlib.sha256(json.dumps([config.scoring_script, input_schema, files]).encode()).hexdigest()
        return ScoringModel(identifier("scoring", f"{node.name}_{name}", self.taken), f"{node.name}/{name}",
                            f"scoring-{node.name}-{name}", content, _relative(code, self.spec.root),
                            Path(config.scoring_script).as_posix(), files, input_schema)

    def batch(self, node: Node, endpoint: BatchEndpoint) -> BatchModel:
        ref = ModelRef.parse(endpoint.model)
        registering = self.registrar(ref.name) if ref.version is None and ref.alias in (None, "latest") else None
        path_model = self.path_models.get(ref.name)
        if endpoint.environment:
            env_var = self.env_of(node.id, "environment")
        elif registering is not None and ref.name in self.job_of_model:
            env_var = next(j for j in self.jobs if j.var == registering).environment
        elif path_model is not None and path_model.environment is not None:
            env_var = path_model.environment
        else:
            env_var = self.env_of(node.id, "environment")
        data_id = self.spec.target(node.id, "input")
        data = self.graph.nodes[data_id] if data_id else None
        if data is None:
            raise CompileError(f"batch endpoint '{endpoint.name}': input {endpoint.input} is not a declared Data")
        version = f"/{ref.version}" if ref.version is not None else f"@{ref.alias or 'latest'}"
        compute = self.compute(node.id, "compute")
        retry = endpoint.retry_settings
        files = dict(data.files)
        code = self.spec.files.get(node.id, {}).get("code_configuration.code")
        if code is not None:  # the scoring script's folder, baked beside the data
            files.update(tree_digests(code, self.spec.root))
        return BatchModel(
            var=identifier("batch", endpoint.name, self.taken), name=endpoint.name, content_hash=node.hash,
            folder=f"batch-{endpoint.name}", environment=env_var, files=dict(sorted(files.items())),
            data=Path(data.resource.path).as_posix().rstrip("/"),  # type: ignore[attr-defined]
            model=f"models:/{ref.name}{version}", job=registering, output=endpoint.output.path,
            settings={"mode": endpoint.output.mode, "mini_batch_size": endpoint.mini_batch_size,
                      "error_threshold": endpoint.error_threshold, "max_retries": retry.max_retries,
                      "timeout": retry.timeout, "max_concurrency": endpoint.max_concurrency},
            size=self.size(node.id, "compute"), compute=compute.name if compute else None,
            tags=dict(sorted(endpoint.tags.items())),
            nodes=compute.max_nodes if isinstance(compute, ClusterCompute) else 1, model_name=ref.name,
            version=ref.version,
            alias=None if ref.version is not None or ref.alias in (None, "latest") else ref.alias,
            code=_relative(code, self.spec.root) if code is not None else None,
            scoring_script=endpoint.code_configuration.scoring_script if endpoint.code_configuration else None)

    def pipeline_of(self, model: str) -> str | None:
        """The environment (var) of the pipeline that registers `model`; None: no pipeline does."""
        job = next((j for j in self.jobs if j.var == self.job_of_model.get(model)), None)
        return job.environment if job is not None and job.pipeline is not None else None

    def registrar(self, model: str) -> str | None:
        """The var of what registers `model` in this program: its job, or its registration from a path."""
        if model in self.job_of_model:
            return self.job_of_model[model]
        found = self.path_models.get(model)
        return found.var if found else None

    def instance(self, node: Node) -> InstanceModel:
        compute = node.resource
        assert isinstance(compute, InstanceCompute)
        base = self.env_of(node.id, "environment")
        source = next(e for e in self.environments if e.var == base)
        env = EnvironmentModel(identifier("notebooks", compute.name, self.taken), f"notebooks-{compute.name}",
                               hashlib.sha256(f"{node.hash}\0{source.content_hash}".encode()).hexdigest(),
                               f"notebooks-{compute.name}", (*source.requirements, *NOTEBOOK_REQUIREMENTS),
                               source.base_image, source.env, source.on_runtime, source.python, source.build)
        self.environments.append(env)
        return InstanceModel(identifier("instance", compute.name, self.taken), compute.name, node.hash, env.var,
                             compute.port or stable_port(f"{self.spec.workspace.name}/{compute.name}/notebooks"),
                             _size(compute.resources), dict(sorted(compute.tags.items())),
                             compute.idle_time_before_shutdown)

    def labels(self, jobs: tuple[JobModel, ...]) -> LabelsModel | None:
        """What MLflow gets from the spec's labels: the workspace's on each job's experiment, a job's on its runs,
        a model's on the registered model and the versions its job registers."""
        workspace = own_labels(self.spec.workspace)
        experiments = {job.experiment: workspace for job in jobs} if workspace else {}
        job_labels = tuple({"job": job.name, "content_hash": job.content_hash, **own_labels(node.resource)}
                           for job, node in zip(jobs, self.nodes("Job"), strict=True) if own_labels(node.resource))
        by_name = {job.name: job for job in jobs}
        model_labels = tuple(
            {"name": node.name, "content_hash": by_name[node.resource.job].content_hash,  # type: ignore[attr-defined]
             **own_labels(node.resource)}
            for node in self.nodes("Model")
            if getattr(node.resource, "job", None) in by_name and own_labels(node.resource))
        # A model from a path: its registration tags the version with the model's own content hash.
        from_path = tuple({"name": m.name, "content_hash": m.content_hash, **own_labels(node.resource)}
                          for node in self.nodes("Model") if (m := self.path_models.get(node.name)) is not None
                          and own_labels(node.resource))
        if not (experiments or job_labels or model_labels or from_path):
            return None
        return LabelsModel(dict(sorted(experiments.items())), job_labels, model_labels + from_path,
                           tuple(job.var for job in jobs) + tuple(m.var for m in self.path_models.values()))


def _runs(job: Job | SweepJob) -> dict[str, Any]:
    """How a job runs: a command job's time limit, retries and nodes; a sweep's settings and its whole time limit
    (each trial runs once, on one node)."""
    if isinstance(job, SweepJob):
        return {"sweep": sweep_settings(job), "timeout": job.limits.timeout, "retries": 0}
    return {"timeout": job.timeout, "retries": job.retries, "nodes": job.resources.instance_count,
            "distribution": job.distribution.type if job.distribution else None,
            "processes_per_node": job.distribution.process_count_per_instance if job.distribution else 1}


def _in_lanes(builder: _Builder, jobs: list[JobModel]) -> tuple[JobModel, ...]:
    """A cluster runs at most max_nodes jobs at once: its jobs, in program order, take turns in that many lanes. A
    sweep takes a lane per trial it runs at once (its container has a node's size per trial), so it starts once as
    many lanes are free; so do a pipeline (per step at once) and an AutoML job (per search)."""
    lanes: dict[str, list[str]] = {}  # per cluster, the jobs in the order they took lanes, once per lane taken
    placed = []
    for job in jobs:
        compute = builder.compute(f"job/{job.name}", "compute")
        after: tuple[str, ...] = ()
        if isinstance(compute, ClusterCompute):
            taken = lanes.setdefault(compute.name, [])
            wanted = min(_lanes(job), compute.max_nodes)
            start = len(taken) - compute.max_nodes  # the lanes it takes are those the jobs here had taken
            after = tuple(dict.fromkeys(taken[i] for i in range(start, start + wanted) if i >= 0))
            taken += [job.var] * wanted
        placed.append(replace(job, after=after))
    return tuple(placed)


def _lanes(job: JobModel) -> int:
    """How many of its cluster's lanes a job takes: one, a sweep's trials at once, a pipeline's steps at once or an
    AutoML job's searches."""
    if job.pipeline is not None:
        return pipeline_lanes(job.pipeline)
    if job.automl is not None:
        return int(json.loads(job.automl)["concurrency"])
    if job.sweep is None:
        return 1
    return int(json.loads(job.sweep)["limits"]["max_concurrent_trials"])


def build_program(graph: Graph, out_dir: Path, stack: str = "dev") -> ProgramModel:
    """The program model of a graph, for a project written to `out_dir`."""
    builder = _Builder(graph, out_dir, stack)
    for node in builder.nodes("Environment"):
        builder.environment(node)
    jobs = _in_lanes(builder, [builder.job(n) for n in builder.nodes("Job")])
    builder.jobs = jobs
    path_models = tuple(builder.path_model(n) for n in builder.nodes("Model") if getattr(n.resource, "path", None))
    endpoints = tuple(e for e in (builder.endpoint(n) for n in builder.nodes("Endpoint")) if e is not None)
    instances = tuple(builder.instance(n) for n in builder.nodes("Compute") if isinstance(n.resource, InstanceCompute))
    computes = tuple(
        ComputeModel(n.resource.name, n.resource.type, _size(n.resource.resources),  # type: ignore[attr-defined]
                     getattr(n.resource, "max_nodes", 1), getattr(n.resource, "low_priority", False),
                     n.resource.resources.gpu_type, dict(sorted(n.resource.tags.items())),  # type: ignore[attr-defined]
                     getattr(n.resource, "kube_context", None),
                     n.resource.namespace if "namespace" in n.resource.model_fields_set else None,  # type: ignore[attr-defined]
                     getattr(n.resource, "host", None))
        for n in builder.nodes("Compute"))
    ws = graph.spec.workspace
    runtime = EnvironmentModel("runtime", f"{ws.name}-runtime", runtime_hash(RUNTIME_REQUIREMENTS), "runtime",
                               RUNTIME_REQUIREMENTS, None, {})
    tracking = None if ws.tracking.uri else EnvironmentModel(
        "tracking", f"{ws.name}-tracking", runtime_hash(("tracking", *RUNTIME_REQUIREMENTS, *TRACKING_REQUIREMENTS)),
        "tracking", TRACKING_REQUIREMENTS, None, {}, on_runtime=True)
    spec_root = Path(_relpath(graph.spec.root, out_dir)).as_posix()
    return ProgramModel(project=ws.name, description=ws.description or f"mlspec workspace {ws.name}", stack=stack,
                        spec_root=spec_root, runtime=runtime, environments=tuple(builder.environments), jobs=jobs,
                        endpoints=endpoints, instances=instances, skipped=tuple(builder.skipped),
                        volume=ws.storage.volume, tracking_uri=ws.tracking.uri,
                        tags=dict(sorted(ws.tags.items())), labels=builder.labels(jobs), computes=computes,
                        storage_size=ws.storage.size, batches=tuple(builder.batches), path_models=path_models,
                        tracking=tracking)


def _relative(path: Path, root: Path) -> str:
    """A located spec path relative to the spec root, POSIX (as the files' digests name it)."""
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return Path(_relpath(path, root)).as_posix()


def _relpath(target: Path, start: Path) -> str:
    import os

    return os.path.relpath(Path(target).resolve(), Path(start).resolve())
