"""The Docker program's components (mlspec.pulumi) as the program model gives them their arguments, and their diff."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from mlspec.backends.pulumi.changes.change import GeneratedAction, GeneratedChange
from mlspec.backends.pulumi.changes.fields import changed_paths, join, summarize
from mlspec.backends.pulumi.model import ProgramModel, ResourceSize

Key = tuple[str, str]  # (component type, name)
# Container limits are the only inputs of a pulumi-docker container that change in place (notes/pulumi.md): a
# component whose other arguments change gets new containers (or a new image).
LIMITS = ("size.cpus", "size.memory_mb")
# What a program model holds that is no input of its component: the variable, the name (its identity), the folder
# of its Dockerfile, and `after`, which orders resources (Pulumi's depends_on) without changing any of them.
NOT_INPUTS = ("var", "name", "folder", "after")


@dataclass(frozen=True)
class Component:
    """One component of the program, with the arguments the program passes it.

    :param replaced: whether changes to these fields replace its resources (new image, new run container).
    :param uses: (field, component) pairs: when that component's output is renewed (an environment's image
        rebuilt, a job's new model version), this field changes too, though the program's text does not.
    :param renews: fields whose change renews what the component gives others (its image, its model versions).
    """

    kind: str
    name: str
    args: dict[str, Any]
    replaced: Callable[[list[str]], bool]
    uses: tuple[tuple[str, Key], ...] = ()
    renews: tuple[str, ...] = ()

    @property
    def key(self) -> Key:
        return f"mlspec:docker:{self.kind}", self.name


def docker_changes(base: ProgramModel, head: ProgramModel) -> list[GeneratedChange]:
    """The components `head`'s program creates, updates or replaces (in program order) and deletes (last) against
    `base`'s."""
    before = {c.key: c for c in components(base)}
    renewed: set[Key] = set()
    changes: list[GeneratedChange] = []
    seen: set[Key] = set()
    for component in components(head):
        seen.add(component.key)
        old = before.get(component.key)
        if old is None:
            changes.append(GeneratedChange(*component.key, "create"))
            continue
        paths = changed_paths(old.args, component.args)
        paths += [field for field, upstream in component.uses if upstream in renewed and field not in paths]
        if not paths:
            continue
        if any(_under(path, field) for path in paths for field in component.renews):
            renewed.add(component.key)
        action: GeneratedAction = "replace" if component.replaced(paths) else "update"
        changes.append(GeneratedChange(*component.key, action, summarize(paths)))
    changes += [GeneratedChange(*key, "delete") for key in before if key not in seen]
    return changes


def components(program: ProgramModel) -> list[Component]:
    """Every component of the program, in the order the program makes them. An attached Docker host's copies of
    the workspace's pieces (AttachedHost) are not listed apart: moving a compute to another host shows as the
    `host` argument of what runs on it."""
    workspace = Component("Workspace", program.project, {
        "runtime": program.runtime.content_hash,
        "tracking": program.tracking.content_hash if program.tracking else None,
        "volume": program.volume, "tracking_uri": program.tracking_uri, "tracking_port": program.tracking_port,
        "tags": program.tags,
    }, _replaced_if("volume"), renews=("runtime",))
    found = [workspace]
    env_names = {program.runtime.var: program.runtime.name}
    for env in program.environments:
        env_names[env.var] = env.name
        found.append(Component(
            "Environment", env.name, {**_fields(env, *NOT_INPUTS),
                                      "attached_only": program.attached_only(env.var)},
            _replaced_unless("attached_only"), (("runtime", workspace.key),) if env.on_runtime else (),
            renews=("content_hash", "runtime")))

    def image(var: str | None) -> Key:
        """The component whose image runs on `var` (an environment's; the runtime's is the workspace's)."""
        if var is None or var == program.runtime.var:
            return workspace.key
        return "mlspec:docker:Environment", env_names[var]

    registrars: dict[str, Key] = {}
    for job in program.jobs:
        registrars[job.var] = ("mlspec:docker:TrainingJob", job.name)
        args = {**_fields(job, *NOT_INPUTS, "registers", "compute"), "environment": env_names[job.environment],
                "size": _size(job.size), "host": program.host_of(job.compute)}
        found.append(Component("TrainingJob", job.name, args, _replaced_unless(*LIMITS),
                               (("environment", image(job.environment)),), renews=("content_hash",)))
    for model in program.path_models:
        registrars[model.var] = ("mlspec:docker:PathModel", model.name)
        args = {**_fields(model, *NOT_INPUTS),
                "environment": env_names.get(model.environment or "", program.runtime.name)}
        found.append(Component("PathModel", model.name, args, _replaced_unless(),
                               (("environment", image(model.environment)),), renews=("content_hash",)))
    for endpoint in program.endpoints:
        deployments: dict[str, Any] = {}
        uses: list[tuple[str, Key]] = []
        for d in endpoint.deployments:
            registrar = registrars.get(d.job or "")
            deployments[d.name] = {
                "environment": env_names[d.environment], "model": d.model,
                "version": d.version if d.version is not None else (f"from {registrar[1]}" if registrar else None),
                "alias": d.alias, **d.settings, "size": _size(d.size)}
            at = join("deployments", d.name)
            uses.append((f"{at}.environment", image(d.environment)))
            if registrar:
                uses.append((f"{at}.version", registrar))
        args = {"auth": endpoint.auth, "port": endpoint.port, "traffic": endpoint.traffic, "mirror": endpoint.mirror,
                "tags": endpoint.tags, "deployments": deployments,
                "host": program.host_of(endpoint.deployments[0].compute) if endpoint.deployments else None}
        # Replicas roll (new ones ready before the old go) behind a gateway that keeps its address and keys.
        found.append(Component("OnlineEndpoint", endpoint.name, args, _replaced_if(), tuple(uses)))
    for batch in program.batches:
        registrar = registrars.get(batch.job or "")
        args = {**_fields(batch, *NOT_INPUTS, "job", "model", "model_name", "settings", "compute"),
                "model": batch.model_name, **batch.settings, "size": _size(batch.size),
                "version": batch.version if batch.version is not None else (
                    f"from {registrar[1]}" if registrar else None)}
        uses = [("environment", image(batch.environment))] + ([("version", registrar)] if registrar else [])
        found.append(Component("BatchEndpoint", batch.name, args, _replaced_unless(*LIMITS), tuple(uses)))
    for instance in program.instances:
        args = {**_fields(instance, *NOT_INPUTS, "content_hash"), "environment": env_names[instance.environment],
                "size": _size(instance.size)}
        found.append(Component("ComputeInstance", instance.name, args, _replaced_unless(*LIMITS),
                               (("environment", image(instance.environment)),)))
    if program.labels:
        labels = program.labels
        # Tags and descriptions are applied to MLflow in place: nothing retrains or restarts for them.
        found.append(Component("MlflowLabels", "labels", {"experiments": labels.experiments,
                                                          "jobs": list(labels.jobs), "models": list(labels.models)},
                               _replaced_if()))
    return found


def _fields(model: Any, *left_out: str) -> dict[str, Any]:
    return {k: v for k, v in asdict(model).items() if k not in left_out}


def _size(size: ResourceSize) -> dict[str, Any]:
    return {"cpus": size.cpus, "memory_mb": size.memory_mb, "gpus": size.gpus}


def _under(path: str, field: str) -> bool:
    return path == field or path.startswith((f"{field}.", f"{field}["))


def _replaced_unless(*in_place: str) -> Callable[[list[str]], bool]:
    """Replaced by a change to any field but those."""
    return lambda paths: any(not any(_under(p, field) for field in in_place) for p in paths)


def _replaced_if(*replacing: str) -> Callable[[list[str]], bool]:
    """Replaced by a change to one of those fields only."""
    return lambda paths: any(_under(p, field) for p in paths for field in replacing)
