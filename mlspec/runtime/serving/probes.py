"""Readiness: the model loads in the background while health and metadata routes answer what state it is in."""

from __future__ import annotations

import asyncio
import shutil
import sys
import time
import traceback
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson

from mlspec.runtime.serving.asgi import JSON, Receive, Scope
from mlspec.runtime.serving.protocols import InputError, MethodNotAllowed

if TYPE_CHECKING:
    from mlspec.runtime.serving.app import Reply, ServingApp
    from mlspec.runtime.serving.loading import LoadedModel

WARM_UP_CALLS = 3  # TorchScript optimises on its first calls; scikit-learn's first call is slow too


def health(app: ServingApp) -> Callable[[Scope, Receive], Any]:
    """200 only once the model is loaded, verified and warmed up; 503 (loading, or why it failed) until then,
    and again once the server is told to stop (draining)."""

    async def answer(scope: Scope, receive: Receive) -> Reply:
        model = app.model
        if app.draining:
            return 503, b'{"status":"draining"}', JSON, []
        if model is None:
            state = {"status": "failed", "error": app.error} if app.error else {"status": "loading"}
            return 503, orjson.dumps(state), JSON, [(b"retry-after", b"1")]
        return 200, orjson.dumps({"status": "ready", "deployment": app.settings.name, "model": model.source.name,
                                  "version": model.source.version, "flavor": model.flavor,
                                  "sha256": model.digest}), JSON, []

    return answer


async def live(scope: Scope, receive: Receive) -> Reply:
    return 200, b'{"live":true}', JSON, []


async def server_metadata(scope: Scope, receive: Receive) -> Reply:
    return 200, b'{"name":"mlspec-serving","version":"1","extensions":[]}', JSON, []


def v2_model_route(app: ServingApp, path: str, method: str) -> tuple[str, Callable[[Scope, Receive], Any]]:
    """/v2/models/NAME[/versions/V][/infer|/ready]; NAME is the registered model's (or the deployment's) name."""
    parts = path.split("/")[3:]
    name, rest = parts[0], parts[1:]
    version = None
    if rest[:1] == ["versions"] and len(rest) >= 2:
        version, rest = rest[1], rest[2:]
    if rest not in ([], ["ready"], ["infer"]):
        raise InputError(f"no route {path}", 404)
    model = app.model
    if model is not None and (name not in (model.source.name, app.settings.name) or
                              version not in (None, model.source.version)):
        raise InputError(f"this server serves model '{model.source.name}' version {model.source.version}; "
                         f"there is no model '{name}'{f' version {version}' if version else ''} here", 404)
    allowed = ("POST",) if rest == ["infer"] else ("GET", "HEAD")
    if method not in allowed:
        raise MethodNotAllowed(path, method, allowed)
    if rest == ["infer"]:
        return "v2_infer", lambda scope, receive: app.infer(scope, receive, name)
    if rest == ["ready"]:
        return "health", health(app)
    return "v2_metadata", lambda scope, receive: _model_metadata(app)


async def _model_metadata(app: ServingApp) -> Reply:
    model = app.ready_model()
    schema = model.schema
    if schema.names:
        inputs = [{"name": n, "datatype": _v2_type(t), "shape": [-1, 1]}
                  for n, t in zip(schema.names, schema.types or ("double",) * len(schema.names), strict=True)]
    else:
        shape = list(schema.shape) if schema.shape else [-1, schema.width or -1]
        inputs = [{"name": "input-0", "datatype": _v2_type(np.dtype(schema.dtype).name), "shape": shape}]
    return 200, orjson.dumps({"name": model.source.name, "versions": [model.source.version or ""],
                              "platform": f"mlflow-{model.flavor}", "inputs": inputs, "outputs": model.outputs}), \
        JSON, []


def _v2_type(kind: str) -> str:
    from mlspec.runtime.serving.schema import V2_OF_MLFLOW

    return {**V2_OF_MLFLOW, "float64": "FP64", "float32": "FP32", "int64": "INT64"}.get(kind, "BYTES")


def load_in_background(app: ServingApp, loop: asyncio.AbstractEventLoop) -> None:
    """Runs on its own thread: resolve, verify, load and warm up, then hand the model to the event loop."""
    from mlspec.runtime.heap import settle_heap
    from mlspec.runtime.serving.integrity import IntegrityError
    from mlspec.runtime.serving.loading import LoadError, load
    from mlspec.runtime.serving.registry import ModelNotFound
    from mlspec.runtime.serving.scorer import Scorer

    settings = app.settings
    if settings.scoring_script is not None:
        _load_script(app, loop)
        return
    try:
        model = load(settings.model_uri, settings.tracking_uri, settings.sha256, settings.allow_unverified,
                     settings.device)
        estimate = _warm_up(model)
        settle_heap()
        if model.flavor != "pyfunc" and model.private_copy:  # in memory: the copy is not needed (pyfunc may read it)
            shutil.rmtree(model.folder.parent, ignore_errors=True)
        # A pyfunc runs arbitrary code (I/O, sleeps): always on the thread, never on the loop.
        scorer = Scorer(model.predict, model.batchable, settings.max_batch_size, settings.max_wait,
                        app.metrics.on_batch, estimate, inline_budget=0.0 if model.flavor == "pyfunc" else 0.002)
    except (ModelNotFound, IntegrityError, LoadError) as error:
        loop.call_soon_threadsafe(app.failed, str(error))
        return
    except Exception as error:
        _unexpected(app, loop, error)
        return
    loop.call_soon_threadsafe(app.became_ready, model, scorer)


def _unexpected(app: ServingApp, loop: asyncio.AbstractEventLoop, error: Exception) -> None:
    """A load that failed for a reason mlspec does not know: its traceback in the log, one line to the probes."""
    traceback.print_exc(file=sys.stderr)
    loop.call_soon_threadsafe(app.failed, f"cannot load {app.settings.model_uri}: {type(error).__name__}: {error}")


def _load_script(app: ServingApp, loop: asyncio.AbstractEventLoop) -> None:
    """The model's verified files, then the scoring script's init() on them; run() always on the scoring thread."""
    from mlspec.runtime.serving.integrity import IntegrityError
    from mlspec.runtime.serving.registry import ModelNotFound
    from mlspec.runtime.serving.scorer import Scorer
    from mlspec.runtime.serving.script import ScriptLoadError, load_scripted

    settings = app.settings
    try:
        model, check = load_scripted(settings.model_uri, settings.tracking_uri, settings.code or ".",
                                     str(settings.scoring_script), settings.input_schema, settings.sha256,
                                     settings.allow_unverified)
        scorer = Scorer(model.predict, False, 1, 0.0, app.metrics.on_batch, None, inline_budget=0.0)
    except (ModelNotFound, IntegrityError, ScriptLoadError) as error:
        loop.call_soon_threadsafe(app.failed, str(error))
        return
    except Exception as error:
        _unexpected(app, loop, error)
        return
    app.check = check
    loop.call_soon_threadsafe(app.became_ready, model, scorer)


def _warm_up(model: LoadedModel) -> float | None:
    """A few predictions on the model's own input example (or a row of zeros) before reporting ready; returns how
    long the last one took (None: no example), which tells the scorer where to run the model."""
    from mlspec.runtime.serving.protocols import Table, parse_invocations, v2_output_metadata

    example = model.folder / "serving_input_example.json"
    try:
        if example.is_file():
            x = model.prepare(*parse_invocations(example.read_bytes(), "application/json"))
        elif model.schema.numeric and model.schema.width:
            x = model.prepare(Table(np.zeros((1, model.schema.width))), None)
        else:
            return None
        for _ in range(WARM_UP_CALLS):
            started = time.perf_counter()
            predictions = model.predict(x)
        elapsed = time.perf_counter() - started
        model.outputs = v2_output_metadata(predictions)  # what infer will return, whatever the signature says
        return elapsed
    except Exception as error:  # an example the model rejects does not stop it from serving real requests
        print(f"mlspec-serve: warm-up skipped: {type(error).__name__}: {error}", file=sys.stderr)
        return None
