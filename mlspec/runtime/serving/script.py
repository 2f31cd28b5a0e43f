"""Scoring scripts (Azure ML's contract): `init()` once per server process with the model's folder in
AZUREML_MODEL_DIR and MLSPEC_MODEL_DIR, then `run(raw_data)` per request on the request body as text; the input
schema (a JSON Schema file, or the model's MLflow signature) is checked before run() is called."""

from __future__ import annotations

import importlib.util
import json
import os
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from mlspec.runtime.serving.protocols import InputError, parse_invocations

if TYPE_CHECKING:
    from mlspec.runtime.serving.loading import LoadedModel

MODEL_DIR_VARIABLES = ("AZUREML_MODEL_DIR", "MLSPEC_MODEL_DIR")
SIGNATURE = "signature"  # input_schema's value for the model's own MLflow signature
MODULE_NAME = "mlspec_scoring_script"  # what the script is imported as (sys.modules)


def server_arguments(files: str, code: str, scoring_script: str, input_schema: str | None) -> list[str]:
    """The scoring server's arguments for a script baked into an image under `files` at its spec paths (`code` and
    a schema file relative to the spec root; `input_schema` may be `signature`)."""
    argv = ["--code", f"{files}/{code}", "--scoring-script", scoring_script]
    if input_schema is not None:
        argv += ["--input-schema", input_schema if input_schema == SIGNATURE else f"{files}/{input_schema}"]
    return argv


class ScriptLoadError(Exception):
    """The script cannot be imported, lacks init() or run(), or its init() raised: the replica does not start."""


class ScriptFailed(Exception):
    """run() raised: a 500 naming the exception's type and message (its traceback goes to the replica's log)."""

    status = 500


@dataclass(frozen=True)
class ScoringScript:
    """A loaded script: `run` takes the request body as text and returns what the script answered."""

    path: Path
    run: Callable[[str], Any]


def load_script(code: str, script: str, model_dir: Path) -> ScoringScript:
    """Import `script` from the `code` folder (first on sys.path, so its own modules import), point the model
    variables at `model_dir`, call init(); ScriptLoadError says what went wrong."""
    folder = Path(code).resolve()
    path = Path(os.path.normpath(folder / script))
    if not path.is_relative_to(folder) or not path.is_file():
        raise ScriptLoadError(f"scoring script {script} is not a file in {folder}")
    for variable in MODEL_DIR_VARIABLES:
        os.environ[variable] = str(model_dir)
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))
    module = _import(path)
    init, run = getattr(module, "init", None), getattr(module, "run", None)
    if not callable(run):
        raise ScriptLoadError(f"scoring script {script} defines no run(raw_data) function")
    if init is not None:
        if not callable(init):
            raise ScriptLoadError(f"scoring script {script}: init is not a function")
        try:
            init()
        except Exception as error:
            traceback.print_exc(file=sys.stderr)
            raise ScriptLoadError(f"scoring script {script}: init() failed: {type(error).__name__}: "
                                  f"{_first_line(error)}") from None
    return ScoringScript(path, _guarded(run))


def _import(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(MODULE_NAME, path)
    if spec is None or spec.loader is None:
        raise ScriptLoadError(f"cannot import scoring script {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[MODULE_NAME] = module
    try:
        spec.loader.exec_module(module)
    except Exception as error:
        traceback.print_exc(file=sys.stderr)
        raise ScriptLoadError(f"cannot import scoring script {path.name}: {type(error).__name__}: "
                              f"{_first_line(error)}") from None
    return module


def _guarded(run: Callable[[str], Any]) -> Callable[[str], Any]:
    def call(raw: str) -> Any:
        try:
            return run(raw)
        except Exception as error:  # the client learns what failed; the traceback stays in the replica's log
            traceback.print_exc(file=sys.stderr)
            raise ScriptFailed(f"run() failed: {type(error).__name__}: {_first_line(error)}") from None

    return call


def load_scripted(model_uri: str, tracking_uri: str | None, code: str, script: str, input_schema: str | None,
                  sha256: str | None = None, allow_unverified: bool = False) -> tuple[LoadedModel, RequestCheck]:
    """The model's verified files for the script's init(), the script loaded on them, and the request check. The
    model itself is the script's to load: `predict` is run() on the request's text, never stacked with others."""
    from mlspec.runtime.serving.loading import LoadedModel, fetch_verified
    from mlspec.runtime.serving.schema import InputSchema

    started = time.perf_counter()
    source, folder, digest = fetch_verified(model_uri, tracking_uri, sha256, allow_unverified)
    check = RequestCheck.of(input_schema, folder)
    loaded = load_script(code, script, folder)
    model = LoadedModel(source, "script", digest, InputSchema(), _unused, loaded.run, False,
                        [{"name": "output", "datatype": "BYTES", "shape": [-1]}], folder)
    model.load_seconds = time.perf_counter() - started
    return model, check


def load_batch_script(model_uri: str, tracking_uri: str | None, code: str, script: str,
                      sha256: str | None = None) -> LoadedModel:
    """A batch run's script on the model's verified files: `predict` gives run() the mini-batch's DataFrame and
    makes what it returns (a list, or a DataFrame) one row per input row; run()'s error fails the mini-batch."""
    from mlspec.runtime.serving.loading import LoadedModel, fetch_verified
    from mlspec.runtime.serving.schema import InputSchema

    started = time.perf_counter()
    source, folder, digest = fetch_verified(model_uri, tracking_uri, sha256)
    loaded = load_script(code, script, folder)

    def predict(given: Any) -> Any:
        answer = loaded.run(given.frame)
        if isinstance(answer, list) and answer and all(isinstance(row, dict) for row in answer):
            import pandas as pd

            return pd.DataFrame(answer)  # one column per key
        return answer

    model = LoadedModel(source, "script", digest, InputSchema(), _unused, predict, False, [], folder)
    model.load_seconds = time.perf_counter() - started
    return model


def _unused(table: Any, params: Any) -> Any:
    raise InputError("this deployment answers through its scoring script: POST the script's input to "
                     "/invocations or /score", 404)


class RequestCheck:
    """What a request body must be before run() sees it. Raises InputError (422) naming where it is wrong."""

    def __init__(self, schema: dict[str, Any] | bool | None = None,
                 signature_inputs: str | None = None) -> None:
        self.schema = schema
        self._validator: Any = None
        self._signature: Any = None
        if schema is not None:
            from jsonschema import validators

            cls = validators.validator_for(schema)
            cls.check_schema(schema)
            self._validator = cls(schema, format_checker=cls.FORMAT_CHECKER)
        elif signature_inputs:
            from mlspec.runtime.serving.schema import InputSchema

            self._signature = InputSchema.build(signature_inputs)

    @classmethod
    def of(cls, input_schema: str | None, model_folder: Path) -> RequestCheck:
        """From the deployment's input_schema: a file, the model's signature (`signature`), or nothing."""
        if input_schema is None:
            return cls()
        if input_schema == SIGNATURE:
            import yaml

            mlmodel = yaml.safe_load((model_folder / "MLmodel").read_text(encoding="utf-8")) or {}
            inputs = (mlmodel.get("signature") or {}).get("inputs")
            if not inputs:
                raise ScriptLoadError("input_schema is 'signature', but the model was registered without a "
                                      "signature: give a JSON Schema file, or register the model with one")
            return cls(signature_inputs=inputs)
        try:
            return cls(json.loads(Path(input_schema).read_text(encoding="utf-8")))
        except (OSError, ValueError) as error:
            raise ScriptLoadError(f"cannot read the input schema {input_schema}: {error}") from None
        except Exception as error:  # jsonschema's SchemaError: checked when validating, but the file may differ
            raise ScriptLoadError(f"{input_schema} is not a JSON Schema: {_first_line(error)}") from None

    def text(self, body: bytes, content_type: str) -> str:
        """The body as run() gets it, once it passes the check."""
        try:
            raw = body.decode("utf-8")
        except UnicodeDecodeError:
            raise InputError("the request body is not UTF-8 text", 400) from None
        if self._validator is not None:
            try:
                document = json.loads(raw)
            except ValueError as error:
                raise InputError(f"the request body is not JSON: {error}") from None
            self._check(document)
        elif self._signature is not None:
            table, _ = parse_invocations(body, content_type)
            self._signature.to_frame(table, cast=True)  # InputError names the column that does not fit
        return raw

    def _check(self, document: Any) -> None:
        from jsonschema.exceptions import best_match

        error = best_match(self._validator.iter_errors(document))
        if error is not None:
            raise InputError(f"{error.json_path}: {_first_line(error)}{_expected(error)} (the input schema)", 422)

    def openapi(self) -> dict[str, Any] | None:
        """The schema the OpenAPI description gives the scoring routes' body (None: MLflow's protocol)."""
        return self.schema if isinstance(self.schema, dict) else None


def _expected(error: Any) -> str:
    """What a length limit asks for, which jsonschema's message ("... is too short") leaves out."""
    words = {"minItems": "at least {} items", "maxItems": "at most {} items", "minLength": "at least {} characters",
             "maxLength": "at most {} characters", "minProperties": "at least {} properties",
             "maxProperties": "at most {} properties"}
    wanted = words.get(str(error.validator))
    return f": expected {wanted.format(error.validator_value)}" if wanted else ""


def _first_line(error: BaseException) -> str:
    text = str(getattr(error, "message", "") or error).strip().splitlines()
    return (text[0] if text else type(error).__name__)[:500]


def with_input_schema(document: bytes, schema: dict[str, Any]) -> bytes:
    """The server's OpenAPI description with the scoring routes' body given by the input schema (at /score too)."""
    described = json.loads(document)
    post = described["paths"]["/invocations"]["post"]
    post["summary"] = "Score through the deployment's scoring script: the body is checked against its input schema"
    post["requestBody"] = {"required": True, "content": {"application/json": {"schema": schema}}}
    described["paths"]["/score"] = described["paths"]["/invocations"]
    return json.dumps(described, indent=2).encode()
