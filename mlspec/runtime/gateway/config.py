"""The gateway's config: parsed strictly, taken whole from the control channel (or its file, at start and on
SIGHUP), never half-applied."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import random
import sys
from bisect import bisect_right
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field, replace
from functools import cached_property
from itertools import accumulate
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from mlspec.runtime.gateway.sampling import SamplingError, SamplingSettings
from mlspec.runtime.probing import ProbeSettings
from mlspec.runtime.sockets import SUN_PATH_MAX, is_unix, unix_path

DEFAULT_MAX_BODY = 64 * 2**20  # a deployment's limit when its config states none
DEFAULT_TIMEOUT_S = 60.0
DEFAULT_QUEUE_WAIT_S = 0.5  # Azure ML's max_queue_wait_ms default
_DEPLOYMENT_FIELDS = {"weight", "replicas", "max_concurrent", "max_queue_wait", "readiness", "model",
                      "max_body_size", "hold", "scaled", "discover"}
_MODEL_FIELDS = {"name", "version"}
_FIELDS = {"endpoint", "auth", "keys", "key_hashes", "deployments", "mirror", "max_body_size", "request_timeout",
           "sampling"}


class ConfigError(Exception):
    """The file is not a valid gateway configuration; the message names the field."""


@dataclass(frozen=True)
class ServedModel:
    """The registered model a deployment's replicas serve; version None: whichever the registry resolved."""

    name: str
    version: str | None = None

    def describe(self) -> str:
        return self.name if self.version is None else f"{self.name} version {self.version}"


@dataclass(frozen=True)
class Deployment:
    name: str
    weight: int
    replicas: tuple[str, ...]  # http://HOST:PORT (no trailing slash) or unix:/ABS/PATH
    max_concurrent: int = 0  # requests in flight per replica (0: no limit); more wait in the deployment's queue
    max_queue_wait: float = DEFAULT_QUEUE_WAIT_S  # how long a request waits for a free replica before a 429
    readiness: ProbeSettings | None = None  # probe each replica's /health; None: passive health only
    model: ServedModel | None = None  # what Open Inference Protocol paths name to reach this deployment
    max_body_size: int = DEFAULT_MAX_BODY  # the replicas' own limit: a larger body is refused here, unsent
    hold: bool = False  # no ready replica (scaled to zero): requests wait for one, up to the request timeout
    scaled: bool = False  # its replica set is an autoscaler's to change: the routing digest leaves it out
    # http://NAME:PORT: the replicas are the addresses NAME resolves to (every container holding that network
    # alias), found again as they come and go (discovery.py); the routing digest leaves the set out
    discover: str | None = None

    @cached_property
    def name_bytes(self) -> bytes:  # the x-mlspec-deployment header's value, on every answer
        return self.name.encode()


@dataclass(frozen=True)
class GatewayConfig:
    endpoint: str
    auth: str  # "key" | "none"
    key_hashes: tuple[str, ...]  # sha256 hex of each accepted key: plain keys are never kept
    deployments: dict[str, Deployment]
    mirror: dict[str, int]  # deployment -> percent of requests copied to it
    max_body_size: int = DEFAULT_MAX_BODY  # the largest deployment's: what the server reads at most
    request_timeout: float = DEFAULT_TIMEOUT_S
    _names: tuple[str, ...] = field(default=(), repr=False)
    _cumulative: tuple[int, ...] = field(default=(), repr=False)
    sampling: SamplingSettings | None = None  # the endpoint's data collector; None: nothing is sampled

    def authorised(self, key: bytes | None) -> bool:
        if self.auth == "none":
            return True
        if not key:
            return False
        offered = hashlib.sha256(key).hexdigest()
        # Every stored hash is compared (no early exit), each in constant time.
        return sum(hmac.compare_digest(offered, known) for known in self.key_hashes) > 0

    def choose(self) -> Deployment | None:
        """A deployment drawn by weight among those with replicas (or holding requests until one comes); None when
        none takes traffic."""
        if not self._cumulative or self._cumulative[-1] == 0:
            return None
        index = bisect_right(self._cumulative, random.random() * self._cumulative[-1])
        return self.deployments[self._names[min(index, len(self._names) - 1)]]

    def mirror_to(self, serving: str) -> Deployment | None:
        for name, percent in self.mirror.items():
            if name != serving and random.random() * 100 < percent and self.deployments[name].replicas:
                return self.deployments[name]
        return None


def routing_digest(config: GatewayConfig) -> str:
    """What the gateway serves, keys aside, as one sha256: the engine compares the digest of what it configured with
    the one a running gateway reports on /health, so a hand-edited or stale routing shows as drift."""
    routing = {"endpoint": config.endpoint, "auth": config.auth, "mirror": config.mirror,
               "max_body_size": config.max_body_size, "request_timeout": config.request_timeout,
               "deployments": {d.name: [d.weight, *(["scaled"] if d.scaled else [d.discover] if d.discover
                                                    else [list(d.replicas)]),
                                        *(["hold"] if d.hold else []), d.max_body_size,
                                        [d.model.name, d.model.version] if d.model else None]
                               for d in config.deployments.values()}}
    if config.sampling is not None:  # only when set: the digest of a config without it is what it always was
        routing["sampling"] = asdict(config.sampling)
    return hashlib.sha256(json.dumps(routing, sort_keys=True).encode()).hexdigest()


def keys_digest(key_hashes: Iterable[str]) -> str:
    """The keys a gateway accepts, as one sha256 of their sorted hashes (never the keys themselves)."""
    return hashlib.sha256("\n".join(sorted(set(key_hashes))).encode()).hexdigest()


def parse(data: Any, source: str = "gateway config") -> GatewayConfig:
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a JSON object")
    unknown = sorted(set(data) - _FIELDS)
    if unknown:
        raise ConfigError(f"{source}: unknown field(s) {', '.join(unknown)}; known: {', '.join(sorted(_FIELDS))}")
    auth = data.get("auth", "key")
    if auth not in ("key", "none"):
        raise ConfigError(f"{source}: auth must be 'key' or 'none', not {auth!r}")
    hashes = [_key_hash(h, source) for h in _strings(data.get("key_hashes", []), "key_hashes", source)]
    hashes += [hashlib.sha256(k.encode()).hexdigest() for k in _strings(data.get("keys", []), "keys", source)]
    limit, timeout = data.get("max_body_size", DEFAULT_MAX_BODY), data.get("request_timeout", DEFAULT_TIMEOUT_S)
    if not _positive_int(limit) or not isinstance(timeout, int | float) or timeout <= 0:
        raise ConfigError(f"{source}: max_body_size and request_timeout must be positive numbers")
    deployments = data.get("deployments")
    if not isinstance(deployments, dict) or not deployments:
        raise ConfigError(f"{source}: deployments must be an object naming at least one deployment")
    parsed = {name: _deployment(name, spec, source, limit) for name, spec in deployments.items()}
    mirror = data.get("mirror", {})
    if not isinstance(mirror, dict):
        raise ConfigError(f"{source}: mirror must be an object, e.g. {{\"green\": 10}}")
    for name, percent in mirror.items():
        if name not in parsed:
            raise ConfigError(f"{source}: mirror names deployment '{name}', which is not in deployments")
        if not isinstance(percent, int | float) or not 0 <= percent <= 100:
            raise ConfigError(f"{source}: mirror percent for '{name}' must be a number from 0 to 100")
    live = [d for d in parsed.values() if d.weight > 0 and (d.replicas or d.hold or d.discover)]
    try:
        sampling = None if data.get("sampling") is None else SamplingSettings.parse(data["sampling"], source)
    except SamplingError as error:
        raise ConfigError(str(error)) from None
    return GatewayConfig(str(data.get("endpoint", "endpoint")), auth, tuple(dict.fromkeys(hashes)), parsed,
                         {k: int(v) for k, v in mirror.items()}, max(d.max_body_size for d in parsed.values()),
                         float(timeout),
                         tuple(d.name for d in live), tuple(accumulate(d.weight for d in live)), sampling)


def _strings(value: Any, name: str, source: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ConfigError(f"{source}: {name} must be a list of non-empty strings")
    return value


def _key_hash(value: str, source: str) -> str:
    text = value.strip().lower().removeprefix("sha256:")
    if len(text) != 64 or any(c not in "0123456789abcdef" for c in text):
        raise ConfigError(f"{source}: key_hashes must hold SHA-256 hex digests (64 hex digits)")
    return text


def _positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _model(value: Any, where: str) -> ServedModel | None:
    if value is None:
        return None
    if not isinstance(value, dict) or set(value) - _MODEL_FIELDS:
        raise ConfigError(f"{where}: model must be an object with name and version (only)")
    name, version = value.get("name"), value.get("version")
    if not isinstance(name, str) or not name or "/" in name:
        raise ConfigError(f"{where}: model name must be a non-empty string without '/'")
    if version is not None and (isinstance(version, bool) or not isinstance(version, str | int) or
                                not str(version) or "/" in str(version)):
        raise ConfigError(f"{where}: model version must be a string or number (or null: the registry's)")
    return ServedModel(name, None if version is None else str(version))


def _deployment(name: str, spec: Any, source: str, max_body: int = DEFAULT_MAX_BODY) -> Deployment:
    where = f"{source}: deployment '{name}'"
    if not isinstance(spec, dict):
        raise ConfigError(f"{where} must be an object with weight and replicas")
    unknown = sorted(set(spec) - _DEPLOYMENT_FIELDS)
    if unknown:
        raise ConfigError(f"{where}: unknown field(s) {', '.join(unknown)}; known: "
                          f"{', '.join(sorted(_DEPLOYMENT_FIELDS))}")
    weight = spec.get("weight", 0)
    if not isinstance(weight, int) or isinstance(weight, bool) or weight < 0:
        raise ConfigError(f"{where}: weight must be a non-negative integer")
    limit, wait = spec.get("max_concurrent", 0), spec.get("max_queue_wait", DEFAULT_QUEUE_WAIT_S)
    if not isinstance(limit, int) or isinstance(limit, bool) or limit < 0:
        raise ConfigError(f"{where}: max_concurrent must be a non-negative integer (0: no limit)")
    if not isinstance(wait, int | float) or isinstance(wait, bool) or wait < 0:
        raise ConfigError(f"{where}: max_queue_wait must be non-negative seconds")
    body_limit = spec.get("max_body_size", max_body)
    if not _positive_int(body_limit):
        raise ConfigError(f"{where}: max_body_size must be a positive integer (bytes)")
    readiness = None
    if spec.get("readiness") is not None:
        try:
            readiness = ProbeSettings.parse(spec["readiness"], f"{where}: readiness")
        except (TypeError, ValueError) as error:
            raise ConfigError(str(error)) from None
    replicas = []
    for url in _strings(spec.get("replicas", []), f"deployment '{name}' replicas", source):
        if is_unix(url):
            if not os.path.isabs(unix_path(url)) or len(os.fsencode(unix_path(url))) > SUN_PATH_MAX:
                raise ConfigError(f"{where}: replica {url!r} must be unix:/ABSOLUTE/PATH of at most "
                                  f"{SUN_PATH_MAX} bytes")
            replicas.append(url)
            continue
        parts = urlsplit(url)
        if parts.scheme != "http" or not parts.hostname or parts.port is None or parts.path not in ("", "/"):
            raise ConfigError(f"{where}: replica {url!r} must look like http://HOST:PORT or unix:/PATH")
        replicas.append(f"http://{parts.netloc}")
    hold, scaled = spec.get("hold", False), spec.get("scaled", False)
    if not isinstance(hold, bool) or not isinstance(scaled, bool):
        raise ConfigError(f"{where}: hold and scaled must be true or false")
    discover = spec.get("discover")
    if discover is not None:
        named = urlsplit(discover) if isinstance(discover, str) else None
        if named is None or named.scheme != "http" or not named.hostname or named.port is None \
                or named.path not in ("", "/") or replicas:
            raise ConfigError(f"{where}: discover must look like http://NAME:PORT, with no replicas listed")
        discover = f"http://{named.netloc}"
    return Deployment(name, weight, tuple(replicas), limit, float(wait), readiness, _model(spec.get("model"), where),
                      body_limit, hold, scaled, discover)


def read_key_hashes(path: Path) -> tuple[str, ...]:
    """SHA-256 hex digests of keys, one a line (blank lines and `#` comments aside): a file kept apart from the
    routing config, such as a mounted Kubernetes Secret's key, so the config itself can be public."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"cannot read {path}: {error}") from None
    return tuple(_key_hash(line, str(path)) for line in (raw.strip() for raw in lines)
                 if line and not line.startswith("#"))


def with_key_hashes(config: GatewayConfig, hashes: Iterable[str]) -> GatewayConfig:
    """`config` accepting the keys of `hashes` too."""
    return replace(config, key_hashes=tuple(dict.fromkeys((*config.key_hashes, *hashes))))


class ConfigWatcher:
    """Holds the current configuration: one taken from the control channel, or the file re-read (on SIGHUP),
    replaces it whole; an invalid file is reported and skipped. With `key_hashes_file`, the keys it lists are
    accepted besides the config's own, whichever config is taken; it is read again with the config file."""

    def __init__(self, path: Path, key_hashes_file: Path | None = None) -> None:
        self.path, self.key_hashes_file = path, key_hashes_file
        self.file_hashes: tuple[str, ...] = ()  # what key_hashes_file held when last read
        self.config = self._load()
        self.reloads = {"ok": 0, "invalid": 0}
        self.on_reload: Callable[[GatewayConfig], None] | None = None  # told of each configuration taken

    def reload(self) -> None:
        """Read the file again (on SIGHUP); a missing file (mid-replace, or deleted) keeps the configuration."""
        if not self.path.exists():
            return
        try:
            self.config = self._load()
        except ConfigError as error:
            self.reloads["invalid"] += 1
            print(f"mlspec-gateway: keeping the previous configuration: {error}", file=sys.stderr, flush=True)
            return
        self.reloads["ok"] += 1
        if self.on_reload is not None:
            self.on_reload(self.config)

    def take(self, config: GatewayConfig) -> None:
        """Serve `config` from now on: every request routed after this call sees it."""
        self.config = with_key_hashes(config, self.file_hashes) if self.key_hashes_file else config
        self.reloads["ok"] += 1
        if self.on_reload is not None:
            self.on_reload(config)


    def _load(self) -> GatewayConfig:
        config = load(self.path)
        if self.key_hashes_file is None:
            return config
        hashes = read_key_hashes(self.key_hashes_file)
        self.file_hashes = hashes  # only once both files read well: a bad one keeps the previous pair
        return with_key_hashes(config, hashes)


def load(path: Path) -> GatewayConfig:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ConfigError(f"cannot read {path}: {error}") from None
    return parse(data, str(path))
