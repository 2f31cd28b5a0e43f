"""The scoring server's ASGI app: /invocations, the v2 inference routes, health and /metrics."""

from __future__ import annotations

import asyncio
import contextlib
import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from mlspec.runtime.internal_token import HEADER as INTERNAL_TOKEN
from mlspec.runtime.internal_token import matches
from mlspec.runtime.probing import DRAINING_HEADER, LIVENESS_PATH
from mlspec.runtime.serving import binary, probes
from mlspec.runtime.serving.asgi import JSON, Receive, Scope, Send, TooLarge, header, lifespan, read_body, reply
from mlspec.runtime.serving.decoding import V2Decoder
from mlspec.runtime.serving.loading import LoadedModel, PyfuncInput
from mlspec.runtime.serving.metrics import ServingMetrics
from mlspec.runtime.serving.protocols import (
    InputError,
    MethodNotAllowed,
    Table,
    parse_invocations,
    v2_outputs,
)
from mlspec.runtime.serving.scorer import Scorer
from mlspec.runtime.serving.script import RequestCheck, ScriptFailed, with_input_schema

_PARSE_OFF_LOOP = 1 << 20  # bodies this large are parsed on a worker thread, so the loop keeps answering
_NUMPY = orjson.OPT_SERIALIZE_NUMPY
Reply = tuple[int, bytes, bytes, list[tuple[bytes, bytes]]]


@dataclass(frozen=True)
class Settings:
    model_uri: str
    tracking_uri: str | None = None
    name: str = "default"  # the deployment, for logs and metrics
    max_body_size: int = 16 * 2**20
    request_timeout: float = 5.0
    max_batch_size: int = 64
    max_wait: float = 0.0
    allow_unverified: bool = False
    sha256: str | None = None
    device: str = "auto"
    internal_token: bytes | None = None  # required of every request but the health probes: only the gateway has it
    code: str | None = None  # a scoring script's folder: then the script answers, not the model's predict
    scoring_script: str | None = None  # its path inside `code`
    input_schema: str | None = None  # a JSON Schema file, or "signature": checked before the script's run()


class ServingApp:
    def __init__(self, settings: Settings, on_fatal: Callable[[], None] = lambda: None) -> None:
        self.settings = settings
        self.model: LoadedModel | None = None
        self.scorer: Scorer | None = None
        self.error: str | None = None
        self.exit_code = 0
        self.metrics = ServingMetrics(self)
        self.v2_decoder = V2Decoder()
        self.check: RequestCheck | None = None  # set with a scoring script: what its run() may be given
        self._on_fatal = on_fatal
        self.settled = asyncio.Event()  # set once loading is over: the model is scoring, or `error` says why not
        self.draining = False  # told to stop: readiness fails and every answer says so, while it still serves
        health = probes.health(self)
        self._fixed: dict[str, tuple[str, tuple[str, ...], Callable[[Scope, Receive], Any]]] = {
            "/invocations": ("invocations", ("POST",), self.invocations),
            "/score": ("invocations", ("POST",), self.invocations),  # Azure ML's name (the gateway's too)
            "/health": ("health", ("GET", "HEAD"), health),
            "/ping": ("health", ("GET", "HEAD"), health),
            "/v2/health/ready": ("health", ("GET", "HEAD"), health),
            LIVENESS_PATH: ("health", ("GET", "HEAD"), probes.live),
            "/v2": ("v2_metadata", ("GET",), probes.server_metadata),
            "/metrics": ("metrics", ("GET",), self.render_metrics),
            "/openapi.json": ("openapi", ("GET", "HEAD"), self.openapi),
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self._http(scope, receive, send)
        elif scope["type"] == "lifespan":
            await lifespan(receive, send, self._start, self._stop)

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        self.metrics.in_flight += 1
        route = "other"
        try:
            token = self.settings.internal_token
            if token is not None and scope["path"] not in _PROBES and not matches(header(scope, INTERNAL_TOKEN), token):
                raise _Failed(403, "this replica answers its endpoint's gateway only")  # before any route is told
            route, handler = self._route(scope["path"], scope["method"])
            status, body, content_type, headers = await handler(scope, receive)
        except (InputError, TooLarge, TimeoutError, _Failed) as error:
            status, body, content_type, headers = _error_reply(error, self.settings)
        except Exception as error:  # a bug of ours: logged with its traceback, never sent to the client
            traceback.print_exc()
            status, body, content_type, headers = 500, _error(f"internal error: {type(error).__name__}"), JSON, []
        finally:
            self.metrics.in_flight -= 1
        if self.draining:
            headers = [*headers, _DRAINING]
        await reply(send, status, body, content_type, headers)
        self.metrics.observe(route, status, time.perf_counter() - started)

    def _route(self, path: str, method: str) -> tuple[str, Callable[[Scope, Receive], Any]]:
        fixed = self._fixed.get(path)
        if fixed is not None:
            route, allowed, handler = fixed
            if method not in allowed:
                raise MethodNotAllowed(path, method, allowed)
            return route, handler
        if path.startswith("/v2/models/"):
            return probes.v2_model_route(self, path, method)
        raise InputError(f"no route {path}; this server answers /invocations, /health, /metrics and /v2/...", 404)

    # --- scoring ---------------------------------------------------------------------------------------------

    def ready_model(self) -> LoadedModel:
        if self.model is None:
            raise _Failed(503, self.error or "the model is still loading; retry shortly")
        return self.model

    async def model_when_ready(self) -> LoadedModel:
        """The model; a request that comes while it loads waits for it, up to the request timeout, rather than
        fail (health still says 503 until it is ready: the probes decide when traffic comes)."""
        if self.model is None and self.error is None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.settled.wait(), self.settings.request_timeout)
        return self.ready_model()

    async def invocations(self, scope: Scope, receive: Receive) -> Reply:
        model = self.model or await self.model_when_ready()
        body = await read_body(scope, receive, self.settings.max_body_size)
        content_type = (header(scope, b"content-type") or b"").decode("latin-1")
        if self.check is not None:
            return await self._scripted(self.check, body, content_type)
        x = await self._off_loop_if_large(body, lambda: self._prepare(model, *parse_invocations(body, content_type)))
        predictions = await self._score(x)
        return 200, orjson.dumps({"predictions": predictions}, default=_jsonable, option=_NUMPY), JSON, []

    async def infer(self, scope: Scope, receive: Receive, name: str) -> Reply:
        model = self.model or await self.model_when_ready()
        body = await read_body(scope, receive, self.settings.max_body_size)
        document, binary_tail = binary.split(body, header(scope, binary.HEADER))
        table, request_id, parameters = await self.v2_decoder.parse(document, binary_tail)
        x = await self._off_loop_if_large(body, lambda: self._prepare(model, table, parameters))
        predictions = await self._score(x)
        answer: dict[str, Any] = {"model_name": name, "model_version": model.source.version or "",
                                  "outputs": v2_outputs(predictions)}
        if request_id is not None:
            answer["id"] = request_id
        return 200, orjson.dumps(answer, default=_jsonable, option=_NUMPY), JSON, []

    async def _scripted(self, check: RequestCheck, body: bytes, content_type: str) -> Reply:
        """The body, once it passes the input schema, as text to the script's run(); its result as JSON."""
        raw = await self._off_loop_if_large(body, lambda: check.text(body, content_type))
        assert self.scorer is not None
        try:
            result = await self.scorer.score(raw, 1, self.settings.request_timeout)
        except ScriptFailed as error:
            raise _Failed(500, str(error)) from None
        try:
            return 200, orjson.dumps(result, default=_jsonable, option=_NUMPY), JSON, []
        except TypeError as error:
            print(f"mlspec-serve: run() returned {type(result).__name__}: {error}", file=sys.stderr)
            raise _Failed(500, f"run() returned a {type(result).__name__}, which is not JSON-serialisable") from None

    async def openapi(self, scope: Scope, receive: Receive) -> Reply:
        schema = self.check.openapi() if self.check is not None else None
        return 200, _OPENAPI.read_bytes() if schema is None else with_input_schema(_OPENAPI.read_bytes(), schema), \
            JSON, []

    @staticmethod
    def _prepare(model: LoadedModel, table: Table, params: dict[str, Any] | None) -> Any:
        return model.prepare(table, params)

    @staticmethod
    async def _off_loop_if_large(body: bytes, work: Callable[[], Any]) -> Any:
        if len(body) < _PARSE_OFF_LOOP:
            return work()
        return await asyncio.get_running_loop().run_in_executor(None, work)

    async def _score(self, x: Any) -> Any:
        assert self.scorer is not None
        rows = len(x.frame) if isinstance(x, PyfuncInput) else int(x.shape[0])
        try:
            return await self.scorer.score(x, rows, self.settings.request_timeout)
        except TimeoutError:
            raise
        except (ValueError, TypeError, KeyError, IndexError) as error:  # the model refused these values
            raise InputError(f"the model rejected the input: {_first_line(error)}") from None
        except Exception as error:
            print(f"mlspec-serve: predict failed: {type(error).__name__}: {error}", file=sys.stderr)
            raise _Failed(500, f"prediction failed: {type(error).__name__}: {_first_line(error)}") from None

    async def render_metrics(self, scope: Scope, receive: Receive) -> Reply:
        return 200, self.metrics.render(), b"text/plain; version=0.0.4; charset=utf-8", []

    # --- loading in the background ---------------------------------------------------------------------------

    def drain(self) -> None:
        """Told to stop: fail readiness and mark every answer, so the gateway sends nothing more."""
        self.draining = True
        print(f"mlspec-serve: {self.settings.name}: stopping: readiness now fails, requests still answered",
              file=sys.stderr, flush=True)

    def _start(self) -> None:
        loop = asyncio.get_running_loop()
        threading.Thread(target=probes.load_in_background, args=(self, loop), name="model-loader", daemon=True).start()

    def _stop(self) -> None:
        self.v2_decoder.close()
        if self.scorer is not None:
            self.scorer.close()

    def became_ready(self, model: LoadedModel, scorer: Scorer) -> None:
        scorer.start(asyncio.get_running_loop())
        self.model, self.scorer = model, scorer
        self.settled.set()
        source = model.source
        print(f"mlspec-serve: {self.settings.name}: serving {source.label} ({model.flavor}, sha256 "
              f"{model.digest[:12]}) after {model.load_seconds:.1f}s", file=sys.stderr, flush=True)

    def failed(self, message: str) -> None:
        self.error = message
        self.settled.set()
        self.exit_code = 1
        print(f"mlspec-serve: error: {message}", file=sys.stderr, flush=True)
        self._on_fatal()


_OPENAPI = Path(__file__).with_name("openapi.json")  # the routes above, described for clients and API tools


_DRAINING = (DRAINING_HEADER, b"1")
_PROBES = frozenset({"/health", "/ping", "/v2/health/ready", LIVENESS_PATH})  # answered without the token


class _Failed(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _error(message: str) -> bytes:
    return orjson.dumps({"error": message})


def _error_reply(error: Exception, settings: Settings) -> Reply:
    if isinstance(error, TooLarge):
        return 413, _error(f"the request body is over the limit of {settings.max_body_size} bytes"), JSON, []
    if isinstance(error, TimeoutError):
        return 504, _error(f"the prediction took longer than the request timeout ({settings.request_timeout}s)"), \
            JSON, []
    status = getattr(error, "status", 500)
    headers = [(b"retry-after", b"1")] if status == 503 else []
    if isinstance(error, MethodNotAllowed):
        headers = [(b"allow", ", ".join(error.allowed).encode())]
    return status, _error(str(error)), JSON, headers


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return (text[0] if text else type(error).__name__)[:500]


def _jsonable(value: Any) -> Any:
    """orjson's fallback: numpy values it does not take natively (strings, objects), and pandas results."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if hasattr(value, "to_dict") and hasattr(value, "columns"):
        return value.to_dict(orient="records")  # a DataFrame, as MLflow's scoring server answers it
    if hasattr(value, "tolist"):
        return value.tolist()  # a pandas Series
    raise TypeError(f"cannot serialise {type(value).__name__}")
