"""Run a compiled Pulumi project in-process under mocks and capture every resource it registers.

`run_program(project_dir, config, mocks=None, preview=False)` runs `project_dir/__main__.py` the way `pulumi up`
would (the project folder as the current directory, stack settings from `Pulumi.<stack>.yaml` overridden by
`config`) against `pulumi.runtime.set_mocks`, and returns what was registered: type, name, inputs (plain, with
secrets unwrapped and listed), parent, dependencies and outputs, sorted by (type, name), plus the stack exports.

The default mocks give every resource a fake id and echo its inputs as its state; a `RandomPassword` also gets a
fake `result` (so programs that hash keys run). A `Mocks` subclass may instead perform the resources for real.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import runpy
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
import yaml
from pulumi.runtime import mocks as pulumi_mocks
from pulumi.runtime import rpc, settings
from pulumi.runtime.proto import resource_pb2
from pulumi.runtime.stack import run_pulumi_func
from pulumi.runtime.sync_await import _sync_await

from mlspec.runtime import envfiles


def container_files(inputs: dict[str, Any]) -> dict[str, str]:
    """The files a container's environment carries to its command (path -> text; ``mlspec.runtime.envfiles``)."""
    for entry in inputs.get("envs") or []:
        name, _, value = entry.partition("=")
        if name == envfiles.ENV:
            return dict(json.loads(value))
    return {}


def container_file(inputs: dict[str, Any]) -> Any:
    """The JSON of the one file a run-once container or a gateway is given (its run contract or its config)."""
    files = container_files(inputs)
    assert len(files) == 1, files
    return json.loads(next(iter(files.values())))


UNKNOWN = "<unknown>"  # what an input not known during a preview is captured as
RANDOM_PASSWORD = "random:index/randomPassword:RandomPassword"


@dataclass(frozen=True)
class CapturedResource:
    type: str
    name: str
    inputs: dict[str, Any]  # wire names (camelCase), secrets unwrapped
    parent: str | None  # urn of the parent; None for children of the stack
    dependencies: list[str]  # urns, sorted
    outputs: dict[str, Any]  # what the mocks returned as state
    urn: str = ""
    secret_inputs: frozenset[str] = frozenset()  # top-level input names that were marked secret
    custom: bool = True  # False for component resources
    provider: str = ""
    ignore_changes: tuple[str, ...] = ()
    delete_before_replace: bool = False

    @property
    def key(self) -> tuple[str, str]:
        return (self.type, self.name)


@dataclass
class Captured:
    resources: list[CapturedResource]
    exports: dict[str, Any]
    secret_exports: frozenset[str] = frozenset()
    by_urn: dict[str, CapturedResource] = field(default_factory=dict)

    def of_type(self, type_: str) -> list[CapturedResource]:
        return [r for r in self.resources if r.type == type_]

    def get(self, type_: str, name: str) -> CapturedResource:
        for resource in self.resources:
            if resource.type == type_ and resource.name == name:
                return resource
        raise KeyError(f"no {type_} named {name!r}; have: {sorted(r.name for r in self.of_type(type_))}")

    def named(self, name: str) -> CapturedResource:
        found = [r for r in self.resources if r.name == name]
        if len(found) != 1:
            raise KeyError(f"{len(found)} resources named {name!r}")
        return found[0]


class EchoMocks(pulumi.runtime.Mocks):
    """Fake ids; state = inputs. A RandomPassword gets a deterministic fake `result` of its declared length."""

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str | None, dict[str, Any]]:
        state = dict(args.inputs)
        if args.typ == RANDOM_PASSWORD:
            length = int(state.get("length") or 32)
            digest = hashlib.sha256(f"mock-key:{args.name}".encode()).hexdigest()
            state["result"] = (digest * 4)[:length]
        return f"{args.name}-id", state

    def call(self, args: pulumi.runtime.MockCallArgs) -> dict[str, Any]:
        return {}


def _plain(value: Any, keep_unknown: bool = True) -> tuple[Any, bool]:
    """`value` with secrets unwrapped and unknowns replaced by UNKNOWN; and whether it held a secret."""
    if rpc.is_rpc_secret(value):
        inner, _ = _plain(rpc.unwrap_rpc_secret(value), keep_unknown)
        return inner, True
    if isinstance(value, dict):
        out, secret = {}, False
        for k, v in value.items():
            out[k], s = _plain(v, keep_unknown)
            secret = secret or s
        return out, secret
    if isinstance(value, list):
        items = [_plain(v, keep_unknown) for v in value]
        return [v for v, _ in items], any(s for _, s in items)
    if isinstance(value, pulumi.output.Unknown) or (isinstance(value, str) and value == rpc.UNKNOWN):
        return UNKNOWN, False
    return value, False


class CapturingMonitor(pulumi_mocks.MockMonitor):
    """The mock monitor, also recording each registration's parent and dependencies (MockResourceArgs has neither).

    Mocks receive inputs with secrets unwrapped, so a real provider behind them sees plain values.
    """

    def __init__(self, mocks: pulumi.runtime.Mocks) -> None:
        super().__init__(mocks)
        self.captured: dict[str, CapturedResource] = {}

    def RegisterResource(self, request: Any) -> Any:  # noqa: N802 (the gRPC method name)
        urn = self.make_urn(request.parent, request.type, request.name)
        if request.type == "pulumi:pulumi:Stack":
            return resource_pb2.RegisterResourceResponse(urn=urn)
        pulumi_mocks._ensure_event_loop()
        wire = rpc.deserialize_properties(request.object, keep_unknowns=True)
        secret_inputs = frozenset(k for k, v in wire.items() if rpc.is_rpc_secret(v))
        inputs, _ = _plain(wire)
        mock_inputs = {k: (None if v == UNKNOWN else v) for k, v in inputs.items()}
        args = pulumi.runtime.MockResourceArgs(
            typ=request.type, name=request.name, inputs=mock_inputs, provider=request.provider,
            resource_id=request.importId, custom=request.custom or False,
        )
        id_, state = self.mocks.new_resource(args)
        state = dict(state or {})
        for name in request.additionalSecretOutputs:  # what the engine does: the SDK asks, the engine wraps
            if name in state and not rpc.is_rpc_secret(state[name]):
                state[name] = {rpc._special_sig_key: rpc._special_secret_sig, "value": state[name]}
        obj_proto = _sync_await(rpc.serialize_properties(state, {}))
        self.resources[urn] = pulumi_mocks.MockMonitor.ResourceRegistration(urn, id_ or "", state)
        outputs, _ = _plain(state)
        self.captured[urn] = CapturedResource(
            type=request.type, name=request.name, inputs=inputs, parent=request.parent or None,
            dependencies=sorted(set(request.dependencies)), outputs=outputs, urn=urn,
            secret_inputs=secret_inputs, custom=bool(request.custom), provider=request.provider or "",
            ignore_changes=tuple(request.ignoreChanges), delete_before_replace=bool(request.deleteBeforeReplace))
        return resource_pb2.RegisterResourceResponse(urn=urn, id=id_ or "", object=obj_proto)


def stack_name(project_dir: Path) -> str:
    """The stack whose settings file the project holds (`Pulumi.<stack>.yaml`)."""
    names = sorted(p.name[len("Pulumi."):-len(".yaml")] for p in project_dir.glob("Pulumi.*.yaml"))
    return names[0] if names else "dev"


def project_name(project_dir: Path) -> str:
    data = yaml.safe_load((project_dir / "Pulumi.yaml").read_text(encoding="utf-8"))
    return str(data["name"])


def stack_config(project_dir: Path, config: dict[str, str]) -> dict[str, str]:
    """Settings from the stack file, overridden by `config`; a key without a namespace is in `mlspec:`."""
    merged: dict[str, str] = {}
    stack_file = project_dir / f"Pulumi.{stack_name(project_dir)}.yaml"
    if stack_file.exists():
        data = yaml.safe_load(stack_file.read_text(encoding="utf-8")) or {}
        merged.update({str(k): str(v) for k, v in (data.get("config") or {}).items()})
    for key, value in config.items():
        merged[key if ":" in key else f"mlspec:{key}"] = str(value)
    return merged


@contextlib.contextmanager
def _inside(project_dir: Path) -> Iterator[None]:
    before = os.getcwd()
    os.chdir(project_dir)
    try:
        yield
    finally:
        os.chdir(before)


def _reset_runtime() -> None:
    # set_mocks creates the root Stack only when none is set, and RPCs/outputs of an earlier run linger.
    settings.ROOT.set(None)
    settings.SETTINGS.rpc_manager.clear()
    settings.SETTINGS.outputs.clear()
    loop = asyncio.new_event_loop()  # a closed loop from an earlier run breaks the next one
    loop.set_exception_handler(_unretrieved_is_the_raised_failure)
    asyncio.set_event_loop(loop)


def _unretrieved_is_the_raised_failure(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    # A failed run leaves every output that depended on the failure unretrieved or pending; the failure itself is
    # raised to the caller, so printing each of them again at garbage collection is noise.
    if context.get("message") not in ("Future exception was never retrieved", "Task was destroyed but it is pending!"):
        loop.default_exception_handler(context)


def _resolve_exports(stack: Any) -> tuple[dict[str, Any], frozenset[str]]:
    exports: dict[str, Any] = {}
    secret: set[str] = set()
    for name, value in (getattr(stack, "outputs", None) or {}).items():
        output = pulumi.Output.from_input(value)
        resolved = _sync_await(output.future(with_unknowns=True))
        exports[name] = UNKNOWN if isinstance(resolved, pulumi.output.Unknown) else resolved
        if _sync_await(output.is_secret()):
            secret.add(name)
    return exports, frozenset(secret)


def run_program(project_dir: Path, config: dict[str, str] | None = None,
                mocks: pulumi.runtime.Mocks | None = None, preview: bool = False) -> Captured:
    """Run the project's `__main__.py` under mocks; everything it registered, and its exports."""
    project_dir = Path(project_dir).resolve()
    _reset_runtime()
    monitor = CapturingMonitor(mocks or EchoMocks())
    pulumi.runtime.set_mocks(monitor.mocks, project=project_name(project_dir), stack=stack_name(project_dir),
                             preview=preview, monitor=monitor)
    pulumi.runtime.set_all_config(stack_config(project_dir, config or {}))
    stack = settings.get_root_resource()
    main = project_dir / "__main__.py"
    try:
        with _inside(project_dir):
            _sync_await(run_pulumi_func(lambda: runpy.run_path(str(main), run_name="__main__")))
            exports, secret_exports = _resolve_exports(stack)
    finally:
        pulumi.runtime.set_all_config({})
    resources = sorted(monitor.captured.values(), key=lambda r: (r.type, r.name, r.urn))
    return Captured(resources, exports, secret_exports, {r.urn: r for r in resources})
