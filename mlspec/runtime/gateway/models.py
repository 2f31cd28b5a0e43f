"""Open Inference Protocol paths through the gateway: a path that names a model goes to the deployment serving it
(weighted only among those), and the repository index and model readiness come from what the gateway knows."""

from __future__ import annotations

import random
from bisect import bisect_right
from dataclasses import dataclass
from itertools import accumulate
from typing import NamedTuple
from urllib.parse import unquote

import orjson

from mlspec.runtime.gateway.answers import error, json_answer, wrong_method
from mlspec.runtime.gateway.config import Deployment, GatewayConfig
from mlspec.runtime.gateway.routing import Router
from mlspec.runtime.httpserver import Answer, Headers

MODELS_PREFIX = b"/v2/models/"
REPOSITORY_INDEX = b"/v2/repository/index"
_CACHED_CHOICES = 1024  # (model, version) pairs remembered per configuration; clients may send any version
_CACHED_PATHS = 1024


@dataclass(frozen=True, slots=True)
class ModelPath:
    name: str
    version: str | None
    rest: str  # what follows the model and version: "", "infer", "ready", ...


_PATHS: dict[bytes, ModelPath | None] = {}


def model_path(path: bytes) -> ModelPath | None:
    """`/v2/models/NAME[/versions/V][/REST]` read apart (names percent-decoded, as Triton's client quotes them).
    Clients send the same few paths again and again: each is read once."""
    if not path.startswith(MODELS_PREFIX):
        return None
    found = _PATHS.get(path)
    if found is None:
        if len(_PATHS) >= _CACHED_PATHS:
            _PATHS.clear()
        found = _PATHS[path] = _read_model_path(path)
    return found


def _read_model_path(path: bytes) -> ModelPath | None:
    parts = path[len(MODELS_PREFIX):].decode("utf-8", "replace").split("/")
    name, rest = unquote(parts[0]), parts[1:]
    if not name:
        return None
    version = None
    if rest[:1] == ["versions"] and len(rest) >= 2:
        version, rest = unquote(rest[1]), rest[2:]
    return ModelPath(name, version, "/".join(rest))


class Choice:
    """The deployments serving one model (and version): drawn by traffic weight among those; when none of them
    takes weighted traffic, evenly, since the path names their model and no other deployment could answer it."""

    __slots__ = ("_cumulative", "_live", "deployments")

    def __init__(self, deployments: tuple[Deployment, ...]) -> None:
        self.deployments = deployments
        weighted = [d for d in deployments if d.replicas and d.weight > 0]
        live = weighted or [d for d in deployments if d.replicas]
        self._live = tuple(live)
        self._cumulative = tuple(accumulate(d.weight if weighted else 1 for d in live))

    def choose(self) -> Deployment:
        live = self._live
        if len(live) == 1:
            return live[0]
        if not live:
            return self.deployments[0]  # no replicas anywhere: forwarding answers why
        index = bisect_right(self._cumulative, random.random() * self._cumulative[-1])
        return live[min(index, len(live) - 1)]


class ModelIndex:
    """One configuration's deployments by the model they serve (or their own name, which replicas answer to)."""

    def __init__(self, config: GatewayConfig) -> None:
        self.config = config
        self._by_model: dict[str, list[Deployment]] = {}
        for deployment in config.deployments.values():
            if deployment.model is not None:
                self._by_model.setdefault(deployment.model.name, []).append(deployment)
        self._unstated = [d for d in config.deployments.values() if d.model is None]
        self._choices: dict[tuple[str, str | None], Choice | None] = {}
        self.smallest_body_limit = min(d.max_body_size for d in config.deployments.values())

    def choice(self, name: str, version: str | None) -> Choice | None:
        """The deployments that serve `name` (a model, else a deployment) at `version`; None: none does."""
        key = (name, version)
        found = self._choices.get(key)
        if found is None and key not in self._choices:
            serving = self._serving(name, version)
            found = Choice(serving) if serving else None
            if len(self._choices) >= _CACHED_CHOICES:
                self._choices.clear()
            self._choices[key] = found
        return found

    def _serving(self, name: str, version: str | None) -> tuple[Deployment, ...]:
        named = self._by_model.get(name)
        if named is None:
            own = self.config.deployments.get(name)
            # Deployments whose model the config does not state may serve it: their replicas tell.
            named = [own] if own is not None else self._unstated
        if version is None:
            return tuple(named)
        exact = [d for d in named if d.model is not None and d.model.version == version]
        # A deployment that serves whatever version its registry alias resolved to may be the one: its replica says.
        return tuple(exact or [d for d in named if d.model is None or d.model.version is None])

    def unknown(self, target: ModelPath) -> Answer:
        served = sorted({f"'{d.model.describe()}'" if d.model else f"'{d.name}'"
                         for d in self.config.deployments.values()})
        what = f"model '{target.name}'" + (f" version {target.version}" if target.version else "")
        return json_answer(404, {"error": f"there is no {what} at endpoint '{self.config.endpoint}'; it serves "
                                    f"{', '.join(served)}"})

    def body_limit(self, target: ModelPath | None, pinned: str | None) -> tuple[int, str]:
        """The largest body a request may carry, and whose limit that is: the pinned deployment's, else the
        model's deployments', else that of the deployments the weighted split may choose."""
        deployments: tuple[Deployment, ...] | list[Deployment]
        if pinned is not None:
            own = self.config.deployments.get(pinned)
            deployments = [own] if own is not None else []
        elif target is not None:
            choice = self.choice(target.name, target.version)
            deployments = choice.deployments if choice is not None else ()
        else:
            deployments = [d for d in self.config.deployments.values() if d.weight > 0 and d.replicas]
        if not deployments:  # refused later, for another reason than its size
            return self.config.max_body_size, ""
        largest = max(deployments, key=lambda d: d.max_body_size)
        return largest.max_body_size, largest.name


class Routed(NamedTuple):
    deployment: Deployment  # where the request goes
    serving: tuple[Deployment, ...]  # every deployment serving its model


def serving_model(index: ModelIndex, router: Router, target: ModelPath, method: bytes) -> Routed | Answer:
    """The deployment for a path that names a model, drawn among those serving it (returned too), or the
    gateway's own answer: an unknown model, or the model's readiness, which it knows from its probes."""
    choice = index.choice(target.name, target.version)
    if choice is None:
        return index.unknown(target)
    if target.rest == "ready" and method in (b"GET", b"HEAD"):
        known = model_ready(choice.deployments, router, target)
        if known is not None:
            return known
    return Routed(choice.choose(), choice.deployments)


def over_limit(index: ModelIndex, path: bytes, headers: Headers, pins: tuple[bytes, ...]) -> Answer | None:
    """413 when the declared length is over the limit of every deployment the request may go to; called as soon
    as the headers are in, so that such a body is never read."""
    if index.smallest_body_limit == index.config.max_body_size:
        return None  # one limit for all: the server holds every request to it
    length = pinned = None
    for name, value in headers:
        if name == b"content-length":
            length = int(value) if value.isdigit() else None
        elif name in pins and pinned is None:
            pinned = value.decode("latin-1").strip()
    if length is None or length <= index.smallest_body_limit:
        return None
    limit, deployment = index.body_limit(model_path(path), pinned)
    return too_large(length, limit, deployment) if length > limit else None


def too_large(length: int, limit: int, deployment: str) -> Answer:
    return json_answer(413, {"error": f"the request body ({length} bytes) is over the limit of {limit} bytes of "
                                f"deployment '{deployment}'"})


def model_ready(deployments: tuple[Deployment, ...], router: Router, target: ModelPath) -> Answer | None:
    """200 when a deployment serving the model has a replica passing its readiness probe, else 503; None when a
    deployment has no readiness probe, so that only its replicas can tell (the request is forwarded)."""
    if any(d.readiness is None for d in deployments):
        return None
    ready = sum(router.ready(d) for d in deployments)
    answer: dict[str, object] = {"name": target.name, "ready": ready > 0}
    if target.version is not None:
        answer["version"] = target.version
    if not ready:
        answer["error"] = f"no replica of {', '.join(repr(d.name) for d in deployments)} is ready"
    return json_answer(200 if ready else 503, answer)


def repository_index(config: GatewayConfig, router: Router, method: bytes, body: bytes) -> Answer:
    """Triton's repository index: every model the endpoint serves, with its version and state; `{"ready": true}`
    lists only the ready ones."""
    if method != b"POST":
        return wrong_method(REPOSITORY_INDEX, method, (b"POST",))
    try:
        asked = orjson.loads(body) if body.strip() else {}
    except orjson.JSONDecodeError:
        asked = None
    if not isinstance(asked, dict) or not isinstance(asked.get("ready", False), bool):
        return error(400, "the repository index request must be a JSON object such as {\"ready\": true}")
    ready: dict[tuple[str, str], int] = {}
    for deployment in config.deployments.values():
        if deployment.model is not None:
            key = (deployment.model.name, deployment.model.version or "")
            ready[key] = ready.get(key, 0) + router.ready(deployment)
    index = [{"name": name, "version": version, "state": "READY"} if count else
             {"name": name, "version": version, "state": "UNAVAILABLE", "reason": "no ready replica"}
             for (name, version), count in sorted(ready.items()) if count or not asked.get("ready")]
    return json_answer(200, index)

