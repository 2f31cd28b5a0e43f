"""The gateway's request handler: authenticate, pick a deployment (pinned, by the model a path names, or by
weight), forward, mirror.

Concurrency limits are enforced here, per replica (limits.py), because every request to a replica passes through
its gateway, which counts exactly what each replica holds whatever its number of worker processes.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from mlspec.runtime.gateway.answers import error, json_answer, wrong_method
from mlspec.runtime.gateway.config import ConfigWatcher, Deployment, GatewayConfig, keys_digest, routing_digest
from mlspec.runtime.gateway.discovery import Discovery
from mlspec.runtime.gateway.forward import Forward, replica_origin, upstream_request
from mlspec.runtime.gateway.hold import Holds
from mlspec.runtime.gateway.limits import Queues
from mlspec.runtime.gateway.models import (
    REPOSITORY_INDEX,
    ModelIndex,
    Routed,
    model_path,
    over_limit,
    repository_index,
    serving_model,
    too_large,
)
from mlspec.runtime.gateway.routing import Router
from mlspec.runtime.gateway.sampling import Sampler
from mlspec.runtime.gateway.traffic import GATEWAY, History, Traffic
from mlspec.runtime.gateway.upstream import Pool, Response
from mlspec.runtime.httpserver import Answer, Headers, Reply, Request
from mlspec.runtime.probing import ProbeRunner, ProbeSettings, http_get
from mlspec.runtime.serving.metrics import Counter, Histogram, Registry
from mlspec.runtime.sockets import with_path

PIN_HEADERS = (b"azureml-model-deployment", b"x-mlspec-deployment")
MAX_MIRRORS_IN_FLIGHT = 64  # beyond this, copies are dropped: mirroring must never slow live traffic
_UNAUTHORISED = [(b"www-authenticate", b'Bearer realm="mlspec"')]
READINESS_PATH = "/health"  # the scoring server's readiness route (200 once its model is loaded)
# The gateway's own routes and those it forwards whole, with the methods they take (others: 405 with Allow).
_METHODS = {b"/health": (b"GET", b"HEAD"), b"/metrics": (b"GET",), b"/invocations": (b"POST",),
            b"/score": (b"POST",)}


class GatewayApp:
    def __init__(self, config_path: Path, internal_token: bytes | None = None,
                 key_hashes_file: Path | None = None, history: Path | None = None) -> None:
        self.internal_token = internal_token  # added to every forwarded request: replicas that require it
        # Raises ConfigError: the gateway does not start on a bad file.
        self.watcher = ConfigWatcher(config_path, key_hashes_file)
        self.router = Router()
        self.pool = Pool()
        self._mirrors_in_flight = 0
        self._origins: dict[str, tuple[str, int]] = {}  # replica URL -> (host, port), parsed once
        self._index: ModelIndex | None = None  # of the configuration in use, made again when it changes
        self.in_flight: dict[str, int] = {}  # per deployment: requests taken and not yet answered
        self.requests_total: dict[str, int] = {}  # per deployment
        self.queues = Queues(self.router)
        self.holds = Holds()
        self.probes = ProbeRunner(self._readiness_changed, self._readiness_probe)
        self._probing: asyncio.Task[None] | None = None
        self._probed: dict[str, str] = {}  # readiness URL -> the replica it probes
        self.discovery = Discovery(lambda: self.watcher.config, self._discovered)
        self._discovering: asyncio.Task[None] | None = None
        self.watcher.on_reload = self._reloaded
        self.traffic = Traffic()
        self.history = History(self.traffic, history) if history is not None else None
        self._recording: asyncio.Task[None] | None = None
        self.sampler: Sampler | None = None
        self._sample(self.watcher.config)
        self._probe_targets(self.watcher.config)
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
        """On the running loop: probe replicas, and re-read the config file on SIGHUP."""
        self.queues.loop = self.holds.loop = loop = asyncio.get_running_loop()
        self._probing = loop.create_task(self.probes.run())
        self._discovering = loop.create_task(self.discovery.run())
        if self.history is not None:
            self._recording = loop.create_task(self.history.run())
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signal.SIGHUP, self.watcher.reload)

    def stop(self) -> None:
        for task in (self._probing, self._discovering, self._recording):
            if task is not None:
                task.cancel()
        if self.history is not None:
            self.history.write()
        if self.sampler is not None:
            self.sampler.flush()
        self.pool.close()

    def configure(self, config: GatewayConfig) -> None:
        """Route by `config` from now on. Requests waiting in a queue are re-pointed at their deployment's new
        replica set, so once this returns no request goes to a replica the config no longer lists."""
        self.watcher.take(config)
        self.queues.rebind(self.watcher.config.deployments)  # with the addresses of its discovered replicas
        self.queues.dispatch_all()

    def stats(self) -> dict[str, Any]:
        """The gateway's own measurements per deployment (the control channel's GET /stats)."""
        config, router = self.watcher.config, self.router
        return {"deployments": {
            name: {"in_flight": self.in_flight.get(name, 0), "queued": self.queues.queued(name),
                   "held": self.holds.held(name),
                   "requests_total": self.requests_total.get(name, 0), "replicas": len(d.replicas),
                   "ready": sum(url not in router.unready for url in d.replicas)}
            for name, d in config.deployments.items()}, "time": time.monotonic()}

    def max_body(self) -> int:
        return self.watcher.config.max_body_size

    def models(self, config: GatewayConfig) -> ModelIndex:
        index = self._index
        if index is None or index.config is not config:
            index = self._index = ModelIndex(config)
        return index

    def precheck(self, path: bytes, headers: Headers) -> Answer | None:
        """404 for unknown paths, 401 without a valid key, 413 for a body over its deployment's limit; None to go
        on. The server calls it as soon as the headers are in, so a refused request's body is never read."""
        refused = self._precheck(path, headers)
        if refused is not None:
            self.traffic.record(GATEWAY, GATEWAY, refused[0], 0.0)
        return refused

    def _precheck(self, path: bytes, headers: Headers) -> Answer | None:
        if path == b"/health":
            return None
        if not (path in (b"/invocations", b"/score", b"/metrics", b"/v2") or path.startswith(b"/v2/")):
            return error(404, f"no route {path.decode('latin-1')}; this endpoint answers /invocations, /score and "
                               "/v2/...")
        if not self.watcher.config.authorised(_key(headers)):
            status, sent, body = error(401, "a valid key is required: send 'Authorization: Bearer KEY' or "
                                             "'api-key: KEY'")
            return status, [*sent, *_UNAUTHORISED], body
        return over_limit(self.models(self.watcher.config), path, headers, PIN_HEADERS)

    def handle(self, request: Request, reply: Reply) -> None:
        config = self.watcher.config
        if not request.prechecked:  # a pipelined request skipped the early check
            refused = self.precheck(request.path, request.headers)
            if refused is not None:
                reply(refused)
                return
        allowed = _METHODS.get(request.path)
        if allowed is not None and request.method not in allowed:
            self._refuse(reply, wrong_method(request.path, request.method, allowed))
            return
        if request.path == b"/health":
            reply(json_answer(200, self._health(config)))
        elif request.path == b"/metrics":
            reply((200, [(b"content-type", b"text/plain; version=0.0.4; charset=utf-8")], self.registry.render()))
        else:
            self._route(request, config, reply)

    def _route(self, request: Request, config: GatewayConfig, reply: Reply) -> None:
        if request.path == REPOSITORY_INDEX:
            self._refuse(reply, repository_index(config, self.router, request.method, request.body))
            return
        pinned = next((value for name in PIN_HEADERS if (value := request.header(name)) is not None), None)
        serving: tuple[Deployment, ...] | None = None  # the deployments serving the model the path names
        if pinned is not None:  # a pin wins over the model a path names
            deployment = config.deployments.get(pinned.decode("latin-1").strip())
            if deployment is None:
                known = ", ".join(config.deployments)
                self._refuse(reply, error(404, f"no deployment {pinned.decode('latin-1')!r}; this endpoint has "
                                                f"{known}"))
                return
        elif (target := model_path(request.path)) is not None:
            chosen = serving_model(self.models(config), self.router, target, request.method)
            if not isinstance(chosen, Routed):  # the gateway's own answer: an unknown model, or its readiness
                self._refuse(reply, chosen)
                return
            deployment, serving = chosen
        else:
            deployment = config.choose()
            if deployment is None:
                self._refuse(reply, error(503, "no deployment takes traffic (every weight is 0 or has no "
                                                "replicas)"))
                return
        if len(request.body) > deployment.max_body_size:  # read whole: pipelined, or sent without a length
            self._refuse(reply, too_large(len(request.body), deployment.max_body_size, deployment.name))
            return
        mirror = config.mirror_to(deployment.name) if config.mirror else None
        if mirror is not None and (serving is None or mirror in serving):  # a copy goes where its model is served
            self._mirror(mirror, request, config.request_timeout)
        Forward(self, deployment, request, config.request_timeout, reply).attempt()

    def _refuse(self, reply: Reply, answer: Answer) -> None:
        """An answer no deployment gave (the gateway's own): counted under deployment ""."""
        self.requests.inc(("", str(answer[0])))
        self.traffic.record(GATEWAY, GATEWAY, answer[0], 0.0)
        reply(answer)

    def origin(self, url: str) -> tuple[str, int]:
        found = self._origins.get(url)
        if found is None:
            if len(self._origins) > 4096:  # replicas come and go across reloads: forget the old ones
                self._origins.clear()
            found = self._origins[url] = replica_origin(url)
        return found

    def _mirror(self, deployment: Deployment, request: Request, timeout: float) -> None:
        url = self.router.pick(deployment)
        if self._mirrors_in_flight >= MAX_MIRRORS_IN_FLIGHT or not url:  # a full mirror never queues a copy
            self.mirrored.inc((deployment.name, "dropped"))
            return
        name = deployment.name
        limited = deployment.max_concurrent > 0
        if limited:
            self.router.take(url)

        def answered(response: Response | None, error: Exception | None) -> None:
            self._mirrors_in_flight -= 1
            if limited:
                self.queues.freed(url, name)
            sent = response is not None and response.status < 500
            self.mirrored.inc((name, "sent" if sent else "failed"))  # the answer itself is discarded

        self._mirrors_in_flight += 1
        self.pool.send(*self.origin(url), upstream_request(request, url, self.internal_token), timeout, answered)

    def _health(self, config: GatewayConfig) -> dict[str, Any]:
        """Always a 200 (the gateway itself is up); "degraded" when a deployment has replicas and none ready."""
        deployments = {d.name: {**self.router.health(d), **({"held": self.holds.held(d.name)} if d.hold else {})}
                       for d in config.deployments.values()}
        degraded = any(d["state"] == "unavailable" for d in deployments.values())
        return {"status": "degraded" if degraded else "ok", "endpoint": config.endpoint, "auth": config.auth,
                "deployments": deployments,
                "mirror": config.mirror, "config": routing_digest(config), "keys": keys_digest(config.key_hashes)}

    # --- readiness ---------------------------------------------------------------------------------------------

    def _sample(self, config: GatewayConfig) -> None:
        """A sampler for the configuration's data collector, made again only when its settings change."""
        current = self.sampler
        if current is not None and current.settings == config.sampling:
            return
        if current is not None:
            current.flush()
        self.sampler = Sampler(config.sampling, config.endpoint) if config.sampling is not None else None

    def _reloaded(self, config: GatewayConfig) -> None:
        self._sample(config)
        self.traffic.retire({(d.name, url) for d in config.deployments.values() for url in d.replicas})
        self._probe_targets(config)
        self.holds.release(config.deployments)
        self.discovery.apply()  # a configuration just taken names its discovered deployments without addresses

    def _discovered(self, config: GatewayConfig, fresh: Iterable[str]) -> None:
        """Replicas found by name: the new ones wait out of rotation until their readiness probe passes."""
        probed = {url for d in config.deployments.values() if d.readiness is not None for url in d.replicas}
        self.router.unready.update(url for url in fresh if url in probed)
        self.watcher.config = config
        self._reloaded(config)
        self.queues.rebind(config.deployments)
        self.queues.dispatch_all()

    def _probe_targets(self, config: GatewayConfig) -> None:
        """Probe every replica of every deployment that declares a readiness probe; a replica is in rotation
        when it joins (the engine adds replicas once they are ready)."""
        targets: dict[str, tuple[str, ProbeSettings, bool]] = {}
        for deployment in config.deployments.values():
            if deployment.readiness is not None:
                for url in deployment.replicas:
                    targets[url] = (with_path(url, READINESS_PATH), deployment.readiness,
                                    url not in self.router.unready)
        self.router.unready.intersection_update(targets)
        self._probed = {probe: url for url, (probe, _, _) in targets.items()}
        self.probes.set_targets(targets)

    async def _readiness_probe(self, url: str, timeout: float) -> bool:
        """A 2xx from /health. A replica that answers it is stopping leaves the rotation at once, whatever the
        probe's failure threshold: it will soon close its port."""
        status, body = await http_get(url, timeout)
        if status == 503 and b'"draining"' in body and url in self._probed:
            self.suspect(self._probed[url])
        return 200 <= status < 300

    def suspect(self, url: str) -> None:
        """The replica failed a request (dropped it, refused to connect, is not ready): out of rotation until its
        readiness probe passes again (probed every 0.1 s meanwhile), so a killed replica that the supervisor
        restarts gets no request while it loads its model. Without a probe, the router's passive mark only."""
        if url not in self.router.unready and self.probes.suspect(url):
            self.router.unready.add(url)
            self.discovery.wake()

    def _readiness_changed(self, url: str, ready: bool) -> None:
        if ready:
            self.router.unready.discard(url)
            self.router.succeeded(url)  # a refused connection's mark goes too: the probe has just reached it
            self.queues.dispatch_all()
            self.holds.release(self.watcher.config.deployments)
        else:
            self.router.unready.add(url)
            self.discovery.wake()


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
