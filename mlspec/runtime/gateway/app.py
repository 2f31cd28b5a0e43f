"""The gateway's request handler: authenticate, pick a deployment (pinned or by weight), forward, mirror."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from pathlib import Path
from typing import Any

import orjson

from mlspec.runtime.gateway.config import ConfigWatcher, Deployment, GatewayConfig
from mlspec.runtime.gateway.routing import Router
from mlspec.runtime.gateway.server import Answer, Headers, Request
from mlspec.runtime.gateway.upstream import Pool, Response, UpstreamError, UpstreamTimeout
from mlspec.runtime.serving.metrics import Counter, Histogram, Registry

PIN_HEADERS = (b"azureml-model-deployment", b"x-mlspec-deployment")
MAX_MIRRORS_IN_FLIGHT = 64  # beyond this, copies are dropped: mirroring must never slow live traffic
# Not passed on to replicas: hop-by-hop headers, the ones rebuilt here, and the caller's key.
_DROP_REQUEST = frozenset({b"host", b"content-length", b"connection", b"keep-alive", b"transfer-encoding", b"te",
                           b"trailer", b"upgrade", b"expect", b"proxy-authorization", b"proxy-connection",
                           b"authorization", b"api-key"})
_DROP_RESPONSE = frozenset({b"connection", b"keep-alive", b"transfer-encoding", b"content-length", b"date",
                            b"server"})
_UNAUTHORISED = [(b"www-authenticate", b'Bearer realm="mlspec"')]


class GatewayApp:
    def __init__(self, config_path: Path) -> None:
        self.watcher = ConfigWatcher(config_path)  # raises ConfigError: the gateway does not start on a bad file
        self.router = Router()
        self.pool = Pool()
        self._mirrors: set[asyncio.Task[None]] = set()
        self._watch: asyncio.Task[None] | None = None
        self.registry = registry = Registry()
        self.requests = registry.add(Counter("mlspec_gateway_requests_total", "Requests by deployment and status.",
                                             ("deployment", "status")))
        self.latency = registry.add(Histogram("mlspec_gateway_request_duration_seconds",
                                              "Time to answer, by deployment.", ("deployment",)))
        self.upstream_errors = registry.add(Counter("mlspec_gateway_upstream_errors_total",
                                                    "Replicas that failed a request.", ("deployment", "replica")))
        self.mirrored = registry.add(Counter("mlspec_gateway_mirrored_total", "Copies of requests sent to a mirror "
                                             "deployment.", ("deployment", "outcome")))

    def start(self) -> None:
        """On the running loop: watch the config file, and reload it at once on SIGHUP."""
        loop = asyncio.get_running_loop()
        self._watch = loop.create_task(self.watcher.watch())
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signal.SIGHUP, self.watcher.check, True)

    def stop(self) -> None:
        if self._watch is not None:
            self._watch.cancel()
        self.pool.close()

    def max_body(self) -> int:
        return self.watcher.config.max_body_size

    def precheck(self, path: bytes, headers: Headers) -> Answer | None:
        """404 for unknown paths, 401 without a valid key; None to go on. The server calls it as soon as the
        headers are in, so an unauthenticated request's body is never read."""
        if path == b"/health":
            return None
        if not (path in (b"/invocations", b"/score", b"/metrics", b"/v2") or path.startswith(b"/v2/")):
            return _error(404, f"no route {path.decode('latin-1')}; this endpoint answers /invocations, /score and "
                               "/v2/...")
        if not self.watcher.config.authorised(_key(headers)):
            status, sent, body = _error(401, "a valid key is required: send 'Authorization: Bearer KEY' or "
                                             "'api-key: KEY'")
            return status, [*sent, *_UNAUTHORISED], body
        return None

    async def handle(self, request: Request) -> Answer:
        config = self.watcher.config
        if not request.prechecked:  # a pipelined request skipped the early check
            refused = self.precheck(request.path, request.headers)
            if refused is not None:
                return refused
        if request.path == b"/health":
            return _json(200, self._health(config))
        if request.path == b"/metrics":
            return 200, [(b"content-type", b"text/plain; version=0.0.4; charset=utf-8")], self.registry.render()
        started = time.perf_counter()
        deployment, (status, headers, body) = await self._route(request, config)
        self.requests.inc((deployment, str(status)))
        self.latency.observe(time.perf_counter() - started, (deployment,))
        passed = [h for h in headers if h[0] not in _DROP_RESPONSE]
        return status, [*passed, (b"x-mlspec-deployment", deployment.encode())], body

    async def _route(self, request: Request, config: GatewayConfig) -> tuple[str, Answer]:
        pinned = next((value for name in PIN_HEADERS if (value := request.header(name)) is not None), None)
        if pinned is not None:
            deployment = config.deployments.get(pinned.decode("latin-1").strip())
            if deployment is None:
                known = ", ".join(config.deployments)
                return "", _error(404, f"no deployment {pinned.decode('latin-1')!r}; this endpoint has {known}")
        else:
            deployment = config.choose()
            if deployment is None:
                return "", _error(503, "no deployment takes traffic (every weight is 0 or has no replicas)")
        mirror = config.mirror_to(deployment.name) if config.mirror else None
        if mirror is not None:
            self._mirror(mirror, request, config.request_timeout)
        return deployment.name, await self._forward(deployment, request, config.request_timeout)

    async def _forward(self, deployment: Deployment, request: Request, timeout: float) -> Answer:
        failures = []
        for url in self.router.candidates(deployment):
            host, port = _origin(url)
            try:
                answer = await self.pool.send(host, port, _upstream_request(request, url), timeout)
            except UpstreamTimeout:  # alive but slow: retrying elsewhere would only double the load
                return _error(504, f"deployment '{deployment.name}' did not answer within {timeout:g}s")
            except UpstreamError as error:
                self.router.failed(url)
                self.upstream_errors.inc((deployment.name, url))
                failures.append(f"{url}: {error}")
                continue  # predictions change nothing, so the request is retried once on another replica
            self.router.succeeded(url)
            return answer.status, answer.headers, answer.body
        if not failures:
            return _error(503, f"deployment '{deployment.name}' has no replicas")
        return _error(502, f"no replica of deployment '{deployment.name}' answered: {'; '.join(failures)}")

    def _mirror(self, deployment: Deployment, request: Request, timeout: float) -> None:
        if len(self._mirrors) >= MAX_MIRRORS_IN_FLIGHT:
            self.mirrored.inc((deployment.name, "dropped"))
            return
        url = self.router.candidates(deployment)[0]
        copy = _upstream_request(request, url)
        task = asyncio.get_running_loop().create_task(self._send_copy(deployment.name, url, copy, timeout))
        self._mirrors.add(task)
        task.add_done_callback(self._mirrors.discard)

    async def _send_copy(self, name: str, url: str, request: bytes, timeout: float) -> None:
        host, port = _origin(url)
        try:
            answer: Response = await self.pool.send(host, port, request, timeout)
        except (UpstreamError, UpstreamTimeout):
            self.mirrored.inc((name, "failed"))
            return
        self.mirrored.inc((name, "sent" if answer.status < 500 else "failed"))  # the answer itself is discarded

    def _health(self, config: GatewayConfig) -> dict[str, Any]:
        return {"status": "ok", "endpoint": config.endpoint, "auth": config.auth,
                "deployments": {d.name: {"weight": d.weight, "replicas": len(d.replicas),
                                         "down": self.router.down(d)} for d in config.deployments.values()},
                "mirror": config.mirror}


def _key(headers: Headers) -> bytes | None:
    authorization = api_key = None
    for name, value in headers:
        if name == b"authorization":
            authorization = value
        elif name == b"api-key":
            api_key = value
    if authorization is not None and authorization[:7].lower() == b"bearer ":
        return authorization[7:].strip()
    return api_key


def _origin(url: str) -> tuple[str, int]:
    host, _, port = url.removeprefix("http://").rpartition(":")
    return host.strip("[]"), int(port)


def _upstream_request(request: Request, url: str) -> bytes:
    """The request as the replica gets it: /score is Azure ML's name for /invocations."""
    target = b"/invocations" + request.target[len(b"/score"):] if request.path == b"/score" else request.target
    lines = [b"%s %s HTTP/1.1\r\nhost: %s\r\ncontent-length: %d\r\n" % (
        request.method, target, url.removeprefix("http://").encode(), len(request.body))]
    lines += [b"%s: %s\r\n" % (name, value) for name, value in request.headers if name not in _DROP_REQUEST]
    lines.append(b"\r\n")
    lines.append(request.body)
    return b"".join(lines)


def _json(status: int, payload: Any) -> Answer:
    return status, [(b"content-type", b"application/json")], orjson.dumps(payload)


def _error(status: int, message: str) -> Answer:
    return _json(status, {"error": message})
