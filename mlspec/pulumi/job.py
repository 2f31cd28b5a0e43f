"""`TrainingJob`: a per-job image and a run-to-completion container per node whose logs say which model versions it
made."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_docker as docker

from mlspec.pulumi import containers as c
from mlspec.pulumi.automl import automl_launch
from mlspec.pulumi.context import image_tag, stage_job
from mlspec.pulumi.environment import Environment
from mlspec.pulumi.pipeline import pipeline_launch
from mlspec.pulumi.sweep import SweepLaunch, sweep_launch
from mlspec.pulumi.workspace import Workspace
from mlspec.runtime import envfiles
from mlspec.runtime.jobrun import JobRun
from mlspec.runtime.multinode import NodeLayout, for_node
from mlspec.runtime.train import registered_digests, registered_versions

FILES = "/opt/mlspec-job/files"  # the job's code and data inside its image, at their paths in the spec
RUN_DIR = "/tmp/mlspec-job"  # outputs and the log of the run (the model goes to MLflow, not here)
JOBRUN = f"{envfiles.DIRECTORY}/jobrun.json"
LOG_LINES = 30  # of the job's log shown when it fails
PEER_WAIT_S = 300.0  # node 0 waits this long for the other nodes' exit codes when the job sets no timeout


class JobFailed(Exception):
    """The job's container exited non-zero: the update stops with the job's last log lines."""


@dataclass(frozen=True)
class TrainingJobArgs:
    """One training run, fully described by the spec.

    :param environment: the Environment whose image the job's image starts from.
    :param content_hash: the job's content hash (spec, code, data, environment): with the environment image's
        tag it tags the job's image, and it names its container, so an unchanged job never runs again and a
        changed one always does.
    :param dockerfile: the generated Dockerfile, relative to the project folder.
    :param command: the spec's command, ``${{inputs.x}}`` / ``${{outputs.y}}`` left for the runner.
    :param experiment: the MLflow experiment of the run.
    :param code: the code folder relative to the spec root (the working directory); None: no code.
    :param files: every file baked into the image, relative to the spec root, with the sha256 it was compiled
        with; a file changed since then stops the update (compile again).
    :param inputs: literals, or ``{"path": ...}`` relative to the spec root for data and path inputs.
    :param outputs: the job's outputs as the runner takes them: type, register_as, flavor, loader, aliases.
    :param env: extra variables for the command (the environment's come first).
    :param timeout: seconds for the whole job, retries included; None: no limit.
    :param retries: extra attempts after a failure.
    :param size: the container's CPU, memory and GPUs.
    :param after: jobs whose containers finish before this one starts: a cluster's ``max_nodes`` puts its jobs in
        that many lanes, each job after the one ahead of it in its lane.
    :param host: the attached Docker host the job runs on (its compute's ``host``): its images are built and its
        container runs there, on the workspace network as that host has it (see `AttachedHost`); None: the
        stack's host.
    :param nodes: containers that run the command together (resources.instance_count), each of ``size``, started
        at once; node 0 answers to a network alias, registers the models and holds the others' lifeline.
    :param distribution: "pytorch": every node runs a torchrun agent, with a static rendezvous on node 0; None:
        each node runs the command with NODE_RANK and NODE_COUNT set.
    :param processes_per_node: torchrun workers per node.
    :param sweep: the sweep's settings (search space, sampling, objective, limits, early termination) as JSON
        (``mlspec.runtime.sweep.contract.sweep_settings``): the container runs the sweep's controller
        (``python -m mlspec.runtime.sweep``) with ``command`` as each trial's, its study on the workspace volume,
        and registers the best trial's models; ``timeout`` is then the whole sweep's. None: a command job.
    :param pipeline: the pipeline runner's contract as JSON (``mlspec.runtime.pipeline.contract.PipelineRun``):
        the container runs the pipeline (``python -m mlspec.runtime.pipeline``), its steps' results on the workspace
        volume, where a changed pipeline's container reuses its unchanged steps. None: no pipeline.
    :param automl: an AutoML job's search settings and table path as JSON
        (``mlspec.runtime.automl.contract.settings_text``): the container runs the AutoML runner
        (``python -m mlspec.runtime.automl``), its searches processes in it, and registers the best pipeline as
        ``outputs`` say; ``command`` is then empty and ``timeout`` the searches' limit. None: another job.
    """

    environment: Environment
    content_hash: str
    dockerfile: str
    command: str
    experiment: str
    code: str | None = None
    files: dict[str, str] = field(default_factory=dict)
    inputs: dict[str, Any] = field(default_factory=dict)
    outputs: dict[str, dict[str, Any]] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    timeout: float | None = None
    retries: int = 0
    size: c.Size = field(default_factory=c.Size)
    after: list[TrainingJob] = field(default_factory=list)
    host: str | None = None
    nodes: int = 1
    distribution: str | None = None
    processes_per_node: int = 1
    sweep: str | None = None
    pipeline: str | None = None
    automl: str | None = None


class RegistersModels(pulumi.ComponentResource):
    """A component whose run-once container registers model versions and prints them in its log (the training
    runner's and the path registration's result line): `models` and `digests` are read from it."""

    models: pulumi.Output[dict[str, int]]
    digests: pulumi.Output[dict[str, str]]

    def _read_registrations(self, what: str, container: docker.Container, *others: docker.Container) -> None:
        """`models` and `digests` from `container`'s log; its failure, or that of any of `others` (the other nodes
        of a job), fails the update with the last lines of each container that failed."""
        outcomes = [item for node in (container, *others) for item in (node.exit_code, node.container_logs)]
        self.models = pulumi.Output.all(*outcomes).apply(
            lambda found: _versions(what, list(zip(found[::2], found[1::2], strict=True))))
        self.digests = container.container_logs.apply(lambda logs: registered_digests(logs or ""))
        self.register_outputs({"models": self.models, "digests": self.digests})

    def version(self, model: str) -> pulumi.Output[int | None]:
        """The version of `model` this run registered (or reused)."""
        return self.models.apply(lambda found: found.get(model))

    def digest(self, model: str) -> pulumi.Output[str]:
        """The sha256 of that version's files as this run registered them ('' when it registered none): what the
        replicas check the files against, whatever the tracking server's copy of it says by then."""
        return self.digests.apply(lambda found: found.get(model, ""))


class TrainingJob(RegistersModels):
    """Builds the job's image, runs it once against the workspace's MLflow server and fails the update when the
    job fails. `models` maps each registered model to the version this run created; deployments that serve
    them take their version from it, so a retrained model redeploys exactly what serves it."""

    container: docker.Container

    def __init__(self, name: str, workspace: Workspace, args: TrainingJobArgs,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        host = workspace.attached(args.host)
        super().__init__("mlspec:docker:TrainingJob", name, None, workspace.options(opts, host))
        child = pulumi.ResourceOptions(parent=self)
        context = stage_job(f"job-{name}", workspace.args.spec_root, args.files)
        environment = workspace.environment_on(args.environment, host)
        self.image = docker.Image(
            name,
            image_name=f"{workspace.name}-job-{name}:{image_tag(args.content_hash, environment.tag)}",
            build=docker.DockerBuildArgs(context=context.as_posix(), dockerfile=args.dockerfile,
                                         args={"ENVIRONMENT_IMAGE": environment.image_name}),
            skip_push=True,
            opts=child,
        )
        network = workspace.network_on(host)
        ahead = [container for job in args.after for container in job.containers]
        self.containers: list[docker.Container] = []
        for node in range(args.nodes):
            container_name = node_name(workspace.name, name, args.content_hash, node, args.nodes)
            if args.automl is not None:
                launch = automl_launch(name, workspace, args, FILES, RUN_DIR)
            else:
                run = job_run(name, workspace, args, node)
                launch = SweepLaunch(
                    command=c.with_files(c.PYTHON, "-m", "mlspec.runtime.train", JOBRUN, "--result",
                                         f"{RUN_DIR}/result.json"),
                    files={JOBRUN: run.model_dump_json(indent=2) + "\n"}, volumes=[], size=args.size)
                if args.sweep is not None:
                    launch = sweep_launch(name, workspace, args, run, host is not None, self)
                if args.pipeline is not None:
                    launch = pipeline_launch(name, workspace, args, host is not None, self)
            self.containers.append(docker.Container(
                name if args.nodes == 1 else f"{name}-{node}",
                name=container_name,
                image=self.image.image_name,
                command=launch.command,
                user=c.USER,
                envs=[*c.envs({**args.environment.env, **args.env}), c.files_variable(launch.files)],
                volumes=launch.volumes or None,
                # No node depends on another: Pulumi creates them together, as their rendezvous needs.
                networks_advanced=c.network(network, *([leader(container_name)] if node == 0 and args.nodes > 1
                                                       else [])),
                must_run=False,
                attach=True,
                logs=True,
                restart="no",
                labels=c.labels(workspace.name, f"job/{name}",
                                {"mlspec.hash": args.content_hash,
                                 **({"mlspec.node": str(node)} if args.nodes > 1 else {})}),
                **c.hardened(launch.size, exec_tmp=True),
                opts=pulumi.ResourceOptions(parent=self, depends_on=[*workspace.tracking, *ahead],
                                            custom_timeouts=_timeouts(args.timeout)),
            ))
        self.container = self.containers[0]  # node 0: it ends only once every other node reported success
        self._read_registrations(f"training job '{name}'", *self.containers)


def node_name(workspace: str, job: str, content_hash: str, node: int, nodes: int) -> str:
    """`<ws>-job-<job>-<hash12>`, and `-<node>` after it for a job of several nodes."""
    base = f"{workspace}-job-{job}-{content_hash[:12]}"
    return base if nodes == 1 else f"{base}-{node}"


def leader(container_name: str) -> str:
    """Node 0's network alias, which the other nodes reach it by: its container name as a host name."""
    return container_name.replace("_", "-")


def job_run(name: str, workspace: Workspace, args: TrainingJobArgs, node: int = 0) -> JobRun:
    """Node `node`'s contract for this job, with every path as it is inside the container."""
    inputs = {k: {"path": f"{FILES}/{v['path']}"} if isinstance(v, dict) else {"value": v}
              for k, v in args.inputs.items()}
    outputs = {k: {**v, "path": f"{RUN_DIR}/outputs/{k}"} for k, v in args.outputs.items()}
    layout = NodeLayout(args.nodes, leader(node_name(workspace.name, name, args.content_hash, 0, args.nodes)),
                        args.distribution, args.processes_per_node, lifeline=True,
                        wait_s=args.timeout or PEER_WAIT_S)
    return JobRun.model_validate(for_node({
        "job": name, "experiment": args.experiment, "tracking_uri": workspace.tracking_uri,
        "artifact_location": "mlflow-artifacts:/" + args.experiment, "command": args.command,
        "code": f"{FILES}/{args.code}".rstrip("/") if args.code else None, "workdir": RUN_DIR,
        "inputs": inputs, "outputs": outputs, "env": {**args.environment.env, **args.env},
        "timeout": args.timeout, "retries": args.retries,
        "tags": {"mlspec.job": name, "mlspec.hash": args.content_hash, "mlspec.workspace": workspace.name},
        "content_hash": args.content_hash}, layout, node))


def _versions(what: str, outcomes: Sequence[tuple[int | None, str | None]]) -> dict[str, int]:
    """The versions node 0 registered, from its log; any node that exited non-zero fails the update with the last
    lines of its log (node 0 names the node that made it stop, when one did)."""
    failed = [(node, code, logs) for node, (code, logs) in enumerate(outcomes) if code not in (None, 0)]
    if failed:
        several = len(outcomes) > 1
        parts = []
        for node, code, logs in failed:
            tail = "\n".join(f"    {line}" for line in (logs or "").splitlines()[-LOG_LINES:])
            who = f"{what}, node {node}," if several else what
            parts.append(f"{who} exited with code {code}; last lines of its log:\n{tail}")
        raise JobFailed("\n".join(parts))
    return registered_versions(outcomes[0][1] or "")


def _timeouts(timeout: float | None) -> pulumi.CustomTimeouts | None:
    if timeout is None:
        return None
    return pulumi.CustomTimeouts(create=f"{int(timeout) + 300}s")  # the image build and MLflow calls on top
