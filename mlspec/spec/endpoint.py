"""The Endpoint kind: online endpoints with deployments and traffic, and batch endpoints."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, Field, model_validator

from mlspec.spec.base import Bytes, Name, Resource, Seconds, Strict
from mlspec.spec.compute import Resources
from mlspec.spec.model import model_reference
from mlspec.spec.schedule import Schedule

ModelReference = Annotated[str, AfterValidator(model_reference)]


# Knative's defaults: a replica is aimed at 70% of its hard concurrency limit (or of 100 without one).
KNATIVE_CONCURRENCY_TARGET = 100
KNATIVE_TARGET_UTILIZATION = 0.7


class Autoscale(Strict):
    """Replica autoscaling of a deployment from the load its gateway measures (Knative/KServe semantics)."""

    min_instances: int = Field(1, ge=0, description="Fewest replicas; 0 scales to zero when idle (the first request "
                                                    "then waits, up to its timeout, for a replica to start).")
    max_instances: int = Field(1, ge=1, description="Most replicas.")
    target_concurrency: float | None = Field(
        None, gt=0, description="Requests in flight per replica to aim for (default: 70% of "
                                "max_concurrent_requests_per_instance, at most 70, as Knative).")
    target_rps: float | None = Field(None, gt=0, description="Requests per second per replica to aim for, instead "
                                                             "of target_concurrency.")
    window: Seconds = Field(6, description="Load is averaged over this long (Knative's panic window).")
    scale_up_delay: Seconds = Field(0, description="More replicas are added once the need has lasted this long.")
    scale_down_delay: Seconds = Field(30, description="Replicas are removed once they have been unneeded this long "
                                                      "(Knative's scale-to-zero grace period).")

    @model_validator(mode="after")
    def _coherent(self) -> Autoscale:
        if self.min_instances > self.max_instances:
            raise ValueError(
                f"min_instances ({self.min_instances}) is greater than max_instances ({self.max_instances})")
        if self.target_concurrency is not None and self.target_rps is not None:
            raise ValueError("give target_concurrency or target_rps, not both")
        return self

    def target(self, max_concurrent_per_instance: int) -> tuple[str, float]:
        """The metric scaled on and its per-replica target: ("rps", N) or ("concurrency", N)."""
        if self.target_rps is not None:
            return "rps", float(self.target_rps)
        if self.target_concurrency is not None:
            return "concurrency", float(self.target_concurrency)
        hard = min(max_concurrent_per_instance, KNATIVE_CONCURRENCY_TARGET)
        return "concurrency", max(1.0, hard * KNATIVE_TARGET_UTILIZATION)


class Probe(Strict):
    """A liveness or readiness probe (defaults follow Azure ML's managed endpoints)."""

    initial_delay: Seconds = Field(10, description="Wait before the first probe.")
    period: Seconds = Field(10, gt=0, description="Time between probes.")
    timeout: Seconds = Field(2, gt=0, description="A probe slower than this fails.")
    failure_threshold: int = Field(30, ge=1, description="Failures in a row before acting.")
    success_threshold: int = Field(1, ge=1, description="Successes in a row to count as healthy.")


class LivenessProbe(Probe):
    """Restarts a replica that keeps failing it."""


class ReadinessProbe(Probe):
    """Sends traffic only to replicas that pass it."""


class Probes(Strict):
    liveness: LivenessProbe = Field(default_factory=LivenessProbe, description="Restart a replica that fails it.")
    readiness: ReadinessProbe = Field(default_factory=ReadinessProbe,
                                      description="Send traffic only to replicas that pass it.")


class RequestSettings(Strict):
    request_timeout: Seconds = Field(5, description="A request slower than this gets a 504.")
    max_concurrent_requests_per_instance: int = Field(
        64, ge=1, description="Requests in flight per replica; more wait up to max_queue_wait, then get a 429.")
    max_queue_wait: Seconds = Field(
        0.5, description="How long a request waits for a free replica before a 429, e.g. '500ms' (0: no queue).")
    max_body_size: Bytes = Field(16 * 2**20, description="Larger request bodies get a 413.")


class Batching(Strict):
    """Dynamic batching of concurrent requests (torch models)."""

    max_batch_size: int = Field(32, ge=1, description="Most rows scored at once.")
    max_wait: Seconds = Field(0.002, description="Longest a request waits for others to batch with, e.g. '2ms'.")


class CodeConfiguration(Strict):
    """A scoring script (Azure ML's contract): `init()` once per server process, then `run(raw_data)` per request."""

    code: str = Field(description="Folder of the scoring script and what it imports, relative to the spec file; "
                                  "it is first on the script's import path, and part of the deployment's content.")
    scoring_script: str = Field(description="The script's path inside `code`, e.g. score.py: it defines init() "
                                            "(the model's folder in AZUREML_MODEL_DIR and MLSPEC_MODEL_DIR) and "
                                            "run(raw_data), whose JSON-serialisable result is the answer.")


SIGNATURE_SCHEMA = "signature"


class Deployment(Strict):
    """One model version served by a set of identical replicas."""

    model: ModelReference = Field(description="NAME:VERSION, NAME@ALIAS or NAME (= NAME@latest).")
    environment: Name | None = Field(None, description="Environment of the scoring server (default: the model's own).")
    compute: Name | None = Field(None, description="Compute the replicas run on (default: the workspace default).")
    instance_count: int = Field(1, ge=1, description="Replicas when autoscale is not set.")
    workers: int = Field(1, ge=1, description="Server worker processes per replica.")
    autoscale: Autoscale | None = Field(None, description="Scale replicas with load instead of a fixed count.")
    probes: Probes = Field(default_factory=Probes, description="Liveness and readiness probes.")
    request_settings: RequestSettings = Field(default_factory=RequestSettings, description="Request limits.")
    batching: Batching | None = Field(None, description="Batch concurrent requests (torch models).")
    resources: Resources | None = Field(None, description="Per replica (default: the compute's).")
    environment_variables: dict[str, str] = Field(default_factory=dict, description="Extra variables for the server.")
    code_configuration: CodeConfiguration | None = Field(
        None, description="Serve through a scoring script instead of the model's own predict.")
    input_schema: str | None = Field(
        None, description="What run() is given, checked before it is called (a 422 naming the JSON path otherwise): "
                          "a JSON Schema file relative to the spec file, or 'signature' for the registered model's "
                          "MLflow signature (requests then speak MLflow's /invocations protocol).")

    @model_validator(mode="after")
    def _schema_needs_script(self) -> Deployment:
        if self.input_schema is not None and self.code_configuration is None:
            raise ValueError("input_schema checks what a scoring script is given: add code_configuration "
                             "(a model served without one is already checked against its signature)")
        return self


class DataCollector(Strict):
    """Requests and answers sampled to the workspace (Azure ML's data collector), for inspection and drift reports."""

    sampling_rate: float = Field(0.1, gt=0, le=1, description="Share of requests recorded, from 0 (excluded) to 1.")
    max_record_size: Bytes = Field(64 * 2**10, gt=0, description="Largest record; the bodies of a larger exchange "
                                                                 "are left out (the record says so), e.g. '64Ki'.")
    max_records_per_minute: int = Field(600, ge=1, description="Records kept per minute at most; more are dropped.")
    retention: Seconds = Field(7 * 86400, gt=0, description="How long records are kept, e.g. '7d'.")


class OnlineEndpoint(Resource):
    """A real-time endpoint: a gateway with key auth splitting traffic across deployments."""

    kind: Literal["Endpoint"] = "Endpoint"
    type: Literal["online"] = "online"
    auth: Literal["key", "none"] = Field("key", description="'key' (default) requires a key on every request.")
    deployments: dict[Name, Deployment] = Field(min_length=1, description="Named deployments, e.g. blue and green.")
    traffic: dict[str, int] = Field(
        default_factory=dict,
        description="Percent of requests per deployment, summing to 100 (default: all to the only one).",
    )
    mirror_traffic: dict[str, int] = Field(
        default_factory=dict, description="Percent of requests copied to a deployment whose answers are discarded."
    )
    port: int | None = Field(None, ge=1024, le=65535, description="Local target: gateway port (default: a free port).")
    data_collector: DataCollector | None = Field(
        None, description="Sample requests and answers as JSON lines under the workspace (default: off); keys and "
                          "headers are never recorded.")

    @model_validator(mode="after")
    def _traffic(self) -> OnlineEndpoint:
        for field_name, split in (("traffic", self.traffic), ("mirror_traffic", self.mirror_traffic)):
            for deployment, percent in split.items():
                if deployment not in self.deployments:
                    raise ValueError(f"{field_name} names deployment '{deployment}', which is not declared")
                if not 0 <= percent <= 100:
                    raise ValueError(f"{field_name} for '{deployment}' is {percent}; use a percentage from 0 to 100")
        if self.traffic and sum(self.traffic.values()) != 100:
            raise ValueError(f"traffic adds up to {sum(self.traffic.values())}; it must add up to 100")
        if not self.traffic and len(self.deployments) > 1:
            raise ValueError("with several deployments, say how traffic is split, e.g. traffic: {blue: 90, green: 10}")
        if len(self.mirror_traffic) > 1:
            raise ValueError("mirror_traffic can copy requests to one deployment only")
        return self

    def effective_traffic(self) -> dict[str, int]:
        return dict(self.traffic) or {next(iter(self.deployments)): 100}


class BatchRetry(Strict):
    max_retries: int = Field(3, ge=0, description="Attempts per mini-batch after the first.")
    timeout: Seconds = Field(30, description="Longest one mini-batch may take.")


class BatchOutput(Strict):
    path: str = Field(description="Where predictions are written, relative to the spec (or workspace storage).")
    mode: Literal["append", "per_file"] = Field("append", description="One file of predictions, or one per input file.")


class BatchEndpoint(Resource):
    """Scores a Data input in mini-batches into an output."""

    kind: Literal["Endpoint"] = "Endpoint"
    type: Literal["batch"]
    model: ModelReference = Field(description="NAME:VERSION, NAME@ALIAS or NAME.")
    input: str = Field(description="'data:NAME' of the rows to score.")
    output: BatchOutput = Field(description="Where predictions go.")
    environment: Name | None = Field(None, description="Environment (default: the model's own).")
    compute: Name | None = Field(None, description="Compute (default: the workspace default).")
    mini_batch_size: int = Field(1024, ge=1, description="Rows scored per mini-batch.")
    error_threshold: int = Field(-1, ge=-1, description="Failed rows tolerated before the run fails (-1: any).")
    retry_settings: BatchRetry = Field(default_factory=BatchRetry, description="Per mini-batch retries.")
    max_concurrency: int = Field(1, ge=1, description="Mini-batches scored in parallel per node.")
    code_configuration: CodeConfiguration | None = Field(
        None, description="Score through a scoring script: init() once per run, then run(mini_batch) with each "
                          "mini-batch as a pandas DataFrame, returning one row (a list item or DataFrame row) per "
                          "input row.")
    schedule: Schedule | None = Field(None, description="Score the input again on a timetable, besides when the "
                                                        "endpoint changes.")


ENDPOINT_TYPES: dict[str, type[Resource]] = {"online": OnlineEndpoint, "batch": BatchEndpoint}

Endpoint = OnlineEndpoint | BatchEndpoint
