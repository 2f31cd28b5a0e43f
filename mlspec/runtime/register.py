"""Register a model from its files, in one process: `python -m mlspec.runtime.register REGISTRATION.json`.

A container runs it where a Model with `path` has no engine process to register it (the docker target); its last
line of output is the training runner's result line, so the version and digest are read back the same way.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import ClassVar

from pydantic import Field

from mlspec.runtime.contract import ContractFile
from mlspec.runtime.jobrun import AbsPath, JobRunError
from mlspec.runtime.train import RESULT_PREFIX, TrainResult, result_line
from mlspec.spec.job import Flavor
from mlspec.spec.model import Signature


class Registration(ContractFile):
    """What registering a model from a path needs, with every path as it is where the registration runs."""

    noun: ClassVar[str] = "registration"
    error: ClassVar[type[Exception]] = JobRunError

    name: str = Field(description="The registered model's name.")
    path: AbsPath = Field(description="The model file or folder.")
    tracking_uri: str
    flavor: Flavor | None = None
    loader: str | None = Field(None, description="'module:function' building the net for a torch state dict.")
    code: AbsPath | None = Field(None, description="The folder the loader's module is imported from.")
    aliases: list[str] = Field(default_factory=list)
    signature: Signature | None = None
    tags: dict[str, str] = Field(default_factory=dict, description="Tags of the new version.")
    experiment: str = "mlspec-models"
    artifact_location: str | None = Field(None, description="The experiment's, when it is created; None: the "
                                                             "tracking server's default.")


def register(registration: Registration) -> TrainResult:
    """Register the files as a new version (or reuse the version with identical files); a user error ends as a
    failed result with its message."""
    from mlflow.exceptions import MlflowException

    from mlspec.runtime.packaging import register_path

    result = TrainResult(status="failed", job=f"model/{registration.name}")
    try:
        registered = register_path(
            registration.tracking_uri, registration.name, registration.path, flavor=registration.flavor,
            aliases=registration.aliases, tags=registration.tags, loader=registration.loader,
            code=registration.code, experiment=registration.experiment,
            artifact_location=registration.artifact_location, signature=registration.signature)
    except (JobRunError, MlflowException, OSError) as error:
        result.error = getattr(error, "message", None) or str(error)
        return result
    result.status, result.models, result.run_id = "succeeded", [registered], registered.run_id
    return result


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mlspec.runtime.register", description=__doc__)
    parser.add_argument("registration", help="the Registration JSON")
    args = parser.parse_args(argv)
    try:
        registration = Registration.load(args.registration)
    except JobRunError as error:
        print(f"mlspec: {error}", file=sys.stderr)
        return 2
    result = register(registration)
    print(RESULT_PREFIX + result_line(result), flush=True)
    if result.status != "succeeded":
        print(f"mlspec: model '{registration.name}': {result.error}", file=sys.stderr)
        return 1
    [model] = result.models
    print(f"mlspec: registered {model.name} version {model.version} ({model.flavor}, sha256 {model.sha256[:12]})"
          + (" (identical files: an existing version reused)" if model.reused else ""), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
