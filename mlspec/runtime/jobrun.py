"""The JobRun contract: all a training runner needs, as the engine writes it in JSON; and `${{...}}` substitution."""

from __future__ import annotations

import os
import shlex
import shutil
from pathlib import Path
from typing import Annotated, ClassVar, Literal

from pydantic import AfterValidator, Field, field_validator, model_validator

from mlspec.runtime.contract import ContractFile
from mlspec.spec.base import Strict
from mlspec.spec.job import Flavor, Placeholder, placeholders
from mlspec.spec.model import Signature

LiteralValue = bool | int | float | str


class JobRunError(Exception):
    """A problem the user can fix (bad placeholder, missing model file...): reported as a message, not a traceback."""


def _absolute(path: str) -> str:
    # The engine resolves every path before writing the contract: a relative one would silently depend on the
    # runner's working directory, which differs between threads of the local engine and a container.
    if not os.path.isabs(path):
        raise ValueError(f"'{path}' must be an absolute path")
    return path


AbsPath = Annotated[str, AfterValidator(_absolute)]


class InputBinding(Strict):
    """One input: a literal value or an absolute path (a materialised Data resource or path input)."""

    value: LiteralValue | None = Field(None, description="A literal passed as text on the command line.")
    path: AbsPath | None = Field(None, description="Absolute path of the file or folder.")

    @model_validator(mode="after")
    def _exactly_one(self) -> InputBinding:
        if (self.value is None) == (self.path is None):
            raise ValueError("an input needs exactly one of 'value' or 'path'")
        return self

    def text(self) -> str:
        """The text substituted for ${{inputs.NAME}} and logged as the run's param."""
        if self.path is not None:
            return self.path
        assert self.value is not None  # guaranteed by _exactly_one
        return literal_text(self.value)


class OutputBinding(Strict):
    """One output: where the job writes it, and how to register it when it is a model."""

    path: AbsPath = Field(description="Absolute folder (or file for uri_file) the job writes.")
    type: Literal["model", "uri_folder", "uri_file"] = "uri_folder"
    register_as: str | None = Field(None, description="Registered model name; None: not registered.")
    flavor: Flavor | None = Field(None, description="sklearn, torch or pyfunc; None: detected from the files.")
    loader: str | None = Field(None, description="'module:function' building the net for a torch state dict.")
    aliases: list[str] = Field(default_factory=list, description="Aliases moved to the new version.")
    signature: Signature | None = Field(None, description="Replaces the signature the model was logged with.")

    @field_validator("loader")
    @classmethod
    def _loader_syntax(cls, value: str | None) -> str | None:
        if value is not None:
            module, sep, function = value.partition(":")
            if not (sep and module and function.isidentifier()):
                raise ValueError(f"loader '{value}' must look like 'module.path:function'")
        return value


class NodeLimits(Strict):
    """What each node of a job may use of this machine; None: no limit (the spec did not set it)."""

    cpus: float | None = Field(None, gt=0, description="Cores each node is pinned to (a fraction rounds up).")
    memory: int | None = Field(None, gt=0, description="Resident bytes a node's processes may use; over: stopped.")
    gpus: int | None = Field(None, ge=0, description="GPUs each node sees through CUDA_VISIBLE_DEVICES.")


class PeerLink(Strict):
    """How one node of a job whose nodes run apart (one container or pod each) learns that another failed: node 0
    listens, every other node holds a TCP connection to it and reports its exit code on it (`mlspec.runtime.peers`).
    """

    node: int = Field(ge=0, description="This node's rank; 0 listens and registers the models.")
    nodes: int = Field(ge=2, description="How many nodes run the job.")
    leader: str = Field(description="Node 0's host name or address, as the other nodes reach it.")
    port: int = Field(gt=0, lt=65536, description="The TCP port node 0 listens on.")
    listen: str = Field("0.0.0.0", description="The address node 0 binds.")
    connect_s: float = Field(300.0, gt=0, description="Seconds for every node to reach node 0 from its start.")
    wait_s: float = Field(300.0, gt=0, description="Seconds node 0 waits for the others' exit codes after its own "
                                                   "command succeeded.")


class JobRun(ContractFile):
    """What the engine hands a training runner: one job, fully resolved to absolute paths and literals."""

    noun: ClassVar[str] = "job run"
    error: ClassVar[type[Exception]] = JobRunError

    job: str = Field(description="The job's name (mlspec.job tag, registered version tags).")
    experiment: str = Field(description="MLflow experiment name.")
    tracking_uri: str = Field(description="MLflow tracking and registry URI, e.g. sqlite:////abs/.mlspec/mlflow.db.")
    artifact_location: str = Field(description="Absolute folder (or URI) for the experiment's artifacts.")
    command: str = Field(description="Shell command with ${{inputs.x}} / ${{outputs.y}} still unsubstituted.")
    code: AbsPath | None = Field(None, description="Absolute code folder: working directory and snapshot; None: cwd.")
    workdir: AbsPath = Field(description="Absolute folder of this run: outputs and logs live here.")
    inputs: dict[str, InputBinding] = Field(default_factory=dict)
    outputs: dict[str, OutputBinding] = Field(default_factory=dict)
    env: dict[str, str] = Field(default_factory=dict, description="Extra environment variables for the command.")
    path_prefix: AbsPath | None = Field(None, description="Folder put first on PATH (an environment's venv bin).")
    timeout: float | None = Field(None, gt=0, description="Seconds for the whole job, all attempts together.")
    retries: int = Field(0, ge=0, description="Extra attempts after a non-zero exit.")
    log_file: AbsPath | None = Field(None, description="Absolute log file (appended); None: WORKDIR/job.log.")
    tags: dict[str, str] = Field(default_factory=dict, description="Extra tags on the MLflow run.")
    content_hash: str = Field("", description="The job's content hash (mlspec.hash tag).")
    nodes: int = Field(1, ge=1, description="Nodes the command runs on (resources.instance_count).")
    distribution: Literal["pytorch"] | None = Field(None, description="'pytorch': each node runs torchrun.")
    processes_per_node: int = Field(1, ge=1, description="torchrun processes per node (distribution only).")
    limits: NodeLimits = Field(default_factory=NodeLimits, description="Each node's CPU, memory and GPU share.")
    # Left out of the JSON when unset: a contract of one node reads as it always did.
    command_tracking_uri: str | None = Field(None, exclude_if=lambda value: value is None,
                                             description="The tracking URI the command's MLflow client gets where "
                                                         "it differs from tracking_uri; None: the same.")
    peers: PeerLink | None = Field(None, exclude_if=lambda value: value is None,
                                   description="This run is one node of several run apart; None: it is alone or "
                                               "the engine runs all its nodes (`nodes`).")

    @model_validator(mode="after")
    def _outputs_are_disposable(self) -> JobRun:
        # Output folders are emptied before every attempt: refuse any that would take the code, the
        # workdir itself or the log with them.
        protected = [Path(p) for p in (self.code, self.workdir, self.log_path) if p]
        for name, output in self.outputs.items():
            out = Path(output.path)
            for keep in protected:
                if out == keep or out in keep.parents:
                    raise ValueError(f"output '{name}' ({out}) would be emptied before each attempt but holds {keep}")
        return self

    @property
    def log_path(self) -> str:
        return self.log_file or os.path.join(self.workdir, "job.log")

    def literal_params(self) -> dict[str, str]:
        """The literal inputs, as the text the command received: the run's params."""
        return {name: b.text() for name, b in self.inputs.items() if b.path is None}


def literal_text(value: LiteralValue) -> str:
    """A literal as command-line text: booleans as the spec writes them (true/false), numbers as Python prints them."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def prepare_output(output: OutputBinding) -> None:
    """Give an output a fresh, empty place: a folder, or (uri_file) an absent file in an existing folder."""
    path = Path(output.path)
    if output.type == "uri_file":
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)
        return
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)


def substitute(command: str, run: JobRun) -> str:
    """Replace ${{inputs.x}} / ${{outputs.y}} with shell-quoted values; creates the referenced output places.

    The same strict parser as `mlspec validate`: a malformed or unknown placeholder is an error, never text left
    for the shell. Every problem is reported at once, with the names that do exist.
    """
    found = placeholders(command)
    unknown: list[str] = []
    malformed: list[str] = []
    for item in found:
        table: dict[str, InputBinding] | dict[str, OutputBinding] | None = (
            run.inputs if item.scope == "inputs" else run.outputs if item.scope == "outputs" else None
        )
        if item.problem:
            malformed.append(f"{item.text} {item.problem} (write {item.fix})")
        elif table is None or item.name not in table:
            unknown.append(item.text)
    if unknown or malformed:
        known = [f"inputs.{n}" for n in run.inputs] + [f"outputs.{n}" for n in run.outputs]
        parts = [f"the command's placeholder {m}" for m in malformed]
        if unknown:
            parts.append(f"the command refers to {', '.join(unknown)}, which the job does not declare")
        raise JobRunError(f"job '{run.job}': {'; '.join(parts)} (declared: {', '.join(known) or 'nothing'})")

    def replace(item: Placeholder) -> str:
        if item.scope == "inputs":
            return shlex.quote(run.inputs[item.name].text())
        output = run.outputs[item.name]
        if output.type == "uri_file":
            Path(output.path).parent.mkdir(parents=True, exist_ok=True)
        else:
            Path(output.path).mkdir(parents=True, exist_ok=True)
        return shlex.quote(output.path)

    pieces, position = [], 0
    for item in found:
        pieces += [command[position:item.start], replace(item)]
        position = item.end
    return "".join(pieces) + command[position:]
