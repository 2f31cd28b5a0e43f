"""The Model kind: a registered model, versioned by the registry, from a job output or a path."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, model_validator

from mlspec.spec.base import Name, Resource, Strict
from mlspec.spec.job import Flavor

# iris-clf:3, iris-clf@latest, iris-clf@champion, or a bare name (= @latest).
MODEL_REF = re.compile(r"^(?P<name>[a-z0-9][a-z0-9_-]*)(?::(?P<version>\d+)|@(?P<alias>[a-z][a-z0-9_-]*))?$")


ColumnType = Literal["double", "float", "long", "integer", "boolean", "string", "binary", "datetime"]


class Column(Strict):
    """One column of a signature, as MLflow names its types."""

    name: str | None = Field(None, description="Column name; leave it out for an unnamed output.")
    type: ColumnType = Field(description="double, float, long, integer, boolean, string, binary or datetime.")


class Signature(Strict):
    """Column names and types the model accepts and returns; it replaces the signature the model was logged with,
    and the scoring server checks requests against it."""

    inputs: list[Column] = Field(default_factory=list, description="[{name: sepal_length, type: double}, ...]")
    outputs: list[Column] = Field(default_factory=list, description="[{type: long}, ...]")

    def mlflow(self) -> dict[str, str]:
        """The signature as MLflow's MLmodel file writes it (column specs as JSON text)."""
        import json

        def columns(items: list[Column]) -> str:
            return json.dumps([{"type": c.type, **({"name": c.name} if c.name else {}), "required": True}
                               for c in items])

        return {"inputs": columns(self.inputs), "outputs": columns(self.outputs)}


class Model(Resource):
    """A model in the registry. Give `job` (and `output`) to register a job's output, or `path` for a file."""

    kind: Literal["Model"] = "Model"
    job: Name | None = Field(None, description="The job whose model output becomes each new version.")
    output: str | None = Field(None, description="Which model output of the job (default: its only one).")
    path: str | None = Field(None, description="A model file or MLflow model folder, relative to the spec.")
    flavor: Flavor | None = Field(None, description="sklearn, torch or pyfunc (default: detected).")
    loader: str | None = Field(
        None, description="For a torch state dict: 'module:function' returning the network to load it into."
    )
    signature: Signature | None = Field(None, description="Input/output schema (default: inferred when logged).")
    aliases: list[str] = Field(default_factory=list, description="Aliases moved to each new version, e.g. champion.")

    @model_validator(mode="after")
    def _one_source(self) -> Model:
        if (self.job is None) == (self.path is None):
            raise ValueError("a model needs exactly one source: 'job' (a job's model output) or 'path'")
        if self.output and not self.job:
            raise ValueError("'output' names a job output; give 'job' too")
        return self


class ModelRef(Strict):
    """A parsed model reference."""

    name: str
    version: int | None = None
    alias: str | None = None

    @classmethod
    def parse(cls, text: str) -> ModelRef:
        match = MODEL_REF.match(text)
        if not match:
            raise ValueError(f"'{text}' is not a model reference; write NAME, NAME:VERSION or NAME@ALIAS")
        version = match.group("version")
        return cls(name=match.group("name"), version=int(version) if version else None, alias=match.group("alias"))

    def __str__(self) -> str:
        if self.version is not None:
            return f"{self.name}:{self.version}"
        return f"{self.name}@{self.alias or 'latest'}"


def model_reference(text: str) -> str:
    """Validator for fields holding a model reference: checks the syntax, keeps the text."""
    ModelRef.parse(text)
    return text
