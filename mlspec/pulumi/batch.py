"""`BatchEndpoint`: a run-to-completion scoring container per run, its journal and predictions on the workspace volume.

A run is named by the hash of what it scores (the endpoint's settings and data, the model version and its digest,
the image): an unchanged program is the same container, which Pulumi leaves alone, and a changed one is a new
container scoring into a folder of its own. The scorer is the local engine's (`python -m mlspec.runtime.batch`), so a
run stopped part-way (a killed container, a host restart) resumes from its journal when it is run again: replace the
container (`pulumi up --replace URN`) and the new one continues where the journal ends.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

import pulumi
import pulumi_docker as docker

from mlspec.pulumi import containers as c
from mlspec.pulumi.context import image_tag, stage_job
from mlspec.pulumi.environment import Environment
from mlspec.pulumi.job import FILES, TrainingJob
from mlspec.pulumi.workspace import Workspace
from mlspec.runtime import envfiles
from mlspec.runtime.batch.contract import BatchResult, BatchRun, result_from_logs

BATCH_ROOT = f"{c.STORAGE}/batch"  # on the workspace volume: <endpoint>/<run hash>/ per run
BATCHRUN = f"{envfiles.DIRECTORY}/batchrun.json"
RESULT = "result.json"  # in the run's folder, beside its predictions
LOG_LINES = 30  # of the scorer's log shown when a run fails
RUN_HASH_IN_NAME = 12


class BatchFailed(Exception):
    """The scorer's container exited non-zero (error threshold passed, model or data unreadable, killed): the update
    stops with its last log lines."""


@dataclass(frozen=True)
class BatchEndpointArgs:
    """One batch endpoint, fully described by the spec.

    :param environment: the Environment whose image the run's image starts from (it must load the model).
    :param content_hash: the endpoint's content hash (its settings, its data's files, its model reference): with
        the model version, its digest and the image, it names the run.
    :param dockerfile: the generated Dockerfile, relative to the project folder (the data on the environment's
        image).
    :param data: the data to score, relative to the spec root: a file or a folder of .csv, .parquet, .jsonl.
    :param files: the data's files, relative to the spec root, with the sha256 each was compiled with; a file
        changed since then stops the update (compile again).
    :param model: the registered model's name.
    :param version: the version to score: a pinned number, or a TrainingJob's ``version(model)`` output, so a
        retrained model is scored again; None with no alias: ``@latest`` in the registry when the run is created.
    :param sha256: the digest the version's files must have before they are unpickled: a TrainingJob's
        ``digest(model)`` output; None or '': the registry's ``mlspec.sha256`` tag.
    :param alias: a registry alias to score (``champion``) instead of a version; moving it outside the spec does not
        start a new run (the run's name cannot see it).
    :param output: the spec's ``output.path``: a folder under the run's folder on the workspace volume
        (``/mlspec/batch/<endpoint>/<run hash>/<output>``); '..' and a leading '/' are dropped.
    :param mode: ``append`` (one predictions.csv) or ``per_file`` (one CSV per input file).
    :param mini_batch_size: rows per mini-batch: the unit of retries, failures and resumption.
    :param error_threshold: failed rows tolerated before the run fails (-1: any).
    :param max_retries: attempts per mini-batch after the first.
    :param timeout: seconds one attempt at a mini-batch may take.
    :param max_concurrency: mini-batches scored at once per node.
    :param nodes: the compute's nodes (a cluster's ``max_nodes``): the one container scores with
        ``max_concurrency`` workers for each, with the CPU and memory of all of them together.
    :param size: one node's CPU, memory and GPUs (the GPUs are the container's, shared by its workers).
    :param tags: the endpoint's tags, as ``mlspec.tag.KEY`` labels of its container.
    :param after: jobs whose containers finish before the run starts (the job that registers its model).
    :param code: a scoring script's folder, relative to the spec root (its files among ``files``).
    :param scoring_script: score through this script in ``code`` (``init()``, ``run(mini_batch)``); None: the
        model's own predict.
    """

    environment: Environment
    content_hash: str
    dockerfile: str
    data: str
    model: str
    files: dict[str, str] = field(default_factory=dict)
    version: pulumi.Input[int | None] = None
    sha256: pulumi.Input[str] | None = None
    alias: str | None = None
    output: str = "predictions"
    mode: str = "append"
    mini_batch_size: int = 1024
    error_threshold: int = -1
    max_retries: int = 3
    timeout: float = 30.0
    max_concurrency: int = 1
    nodes: int = 1
    size: c.Size = field(default_factory=c.Size)
    tags: dict[str, str] = field(default_factory=dict)
    after: list[TrainingJob] = field(default_factory=list)
    code: str | None = None
    scoring_script: str | None = None


class BatchEndpoint(pulumi.ComponentResource):
    """Builds the run's image (the environment's plus the data), runs the scorer once against the workspace's
    MLflow server with the run's folder on the workspace volume, and fails the update when the run fails.
    `output` is where the predictions are (``{"volume", "folder", "files"}``); `rows_scored` and `rows_failed`
    what the run came to."""

    output: pulumi.Output[dict[str, Any]]
    rows_scored: pulumi.Output[int]
    rows_failed: pulumi.Output[int]
    container: docker.Container

    def __init__(self, name: str, workspace: Workspace, args: BatchEndpointArgs,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("mlspec:docker:BatchEndpoint", name, None, workspace.options(opts))
        context = stage_job(f"batch-{name}", workspace.args.spec_root, args.files)
        tag = image_tag(args.content_hash, args.environment.tag)
        self.image = docker.Image(
            name,
            image_name=f"{workspace.name}-batch-{name}:{tag}",
            build=docker.DockerBuildArgs(context=context.as_posix(), dockerfile=args.dockerfile,
                                         args={"ENVIRONMENT_IMAGE": args.environment.image_name}),
            skip_push=True,
            opts=pulumi.ResourceOptions(parent=self),
        )
        model_uri = pulumi.Output.from_input(args.version).apply(lambda version: _model_uri(args, version))
        sha256 = pulumi.Output.from_input(args.sha256 or "")
        run = pulumi.Output.all(model_uri, sha256).apply(
            lambda values: _Run(name, workspace, args, tag, str(values[0]), str(values[1] or "")))
        size = args.size
        self.container = docker.Container(
            name,
            name=run.apply(lambda r: f"{workspace.name}-batch-{name}-{r.hash[:RUN_HASH_IN_NAME]}"),
            image=self.image.image_name,
            command=run.apply(lambda r: c.with_files(c.PYTHON, "-m", "mlspec.runtime.batch", BATCHRUN,
                                                     "--result", f"{r.folder}/{RESULT}", "--result-line")),
            user=c.USER,
            envs=[*c.envs(args.environment.env), c.files_variable({BATCHRUN: run.apply(lambda r: r.contract)})],
            networks_advanced=c.network(workspace.network_name),
            volumes=c.storage(workspace.volume.name),
            must_run=False,
            attach=True,
            logs=True,
            restart="no",
            labels=run.apply(lambda r: c.labels(workspace.name, f"endpoint/{name}",
                                                {"mlspec.hash": r.hash, "mlspec.role": "batch"}, args.tags)),
            # A cluster's nodes are one container here: their cores and memory together.
            **c.hardened(c.Size(cpus=size.cpus * args.nodes, memory_mb=size.memory_mb * args.nodes,
                                gpus=size.gpus)),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[*workspace.tracking,
                                                                 *(job.container for job in args.after)]),
        )
        result = pulumi.Output.all(self.container.exit_code, self.container.container_logs).apply(
            lambda outcome: _result(name, outcome[0], outcome[1]))
        self.output = pulumi.Output.all(workspace.volume.name, run, result).apply(
            lambda values: {"volume": values[0], "folder": values[1].output, "files": list(values[2].outputs)})
        self.rows_scored = result.apply(lambda r: r.rows_scored)
        self.rows_failed = result.apply(lambda r: r.rows_failed)
        self.register_outputs({"output": self.output, "rows_scored": self.rows_scored,
                               "rows_failed": self.rows_failed})


class _Run:
    """One scoring run: its hash, its folder on the volume and the scorer's contract."""

    def __init__(self, name: str, workspace: Workspace, args: BatchEndpointArgs, image: str, model_uri: str,
                 sha256: str) -> None:
        self.hash = hashlib.sha256("\0".join((args.content_hash, image, model_uri, sha256)).encode()).hexdigest()
        self.folder = f"{BATCH_ROOT}/{name}/{self.hash}"
        parts = [p for p in PurePosixPath(args.output).parts if p not in ("/", ".", "..")]
        self.output = str(PurePosixPath(self.folder, *(parts or ["predictions"])))
        contract = BatchRun.model_validate({
            "endpoint": name, "model_uri": model_uri, "tracking_uri": workspace.tracking_uri,
            "sha256": sha256 or None, "input": f"{FILES}/{args.data}", "output": self.output, "mode": args.mode,
            "mini_batch_size": args.mini_batch_size, "error_threshold": args.error_threshold,
            "max_retries": args.max_retries, "timeout": args.timeout, "max_concurrency": args.max_concurrency,
            "nodes": args.nodes, **_scoring(args)})
        self.contract = contract.text()


def _scoring(args: BatchEndpointArgs) -> dict[str, str]:
    if args.scoring_script is None or args.code is None:
        return {}
    return {"code": f"{FILES}/{args.code}", "scoring_script": args.scoring_script}


def _model_uri(args: BatchEndpointArgs, version: int | None) -> str:
    if version is not None:
        return f"models:/{args.model}/{version}"
    return f"models:/{args.model}@{args.alias or 'latest'}"


def _result(name: str, exit_code: int | None, logs: str | None) -> BatchResult:
    result = result_from_logs(logs or "")
    if exit_code not in (None, 0) or (result is not None and result.status != "succeeded"):
        reason = result.error if result is not None and result.error else f"the scorer exited with code {exit_code}"
        tail = "\n".join(f"    {line}" for line in (logs or "").splitlines()[-LOG_LINES:])
        raise BatchFailed(f"batch endpoint '{name}': {reason}; last lines of its log:\n{tail}")
    if result is None:  # a preview: the container has not run
        return BatchResult(status="succeeded", endpoint=name, model_uri="")
    return result

