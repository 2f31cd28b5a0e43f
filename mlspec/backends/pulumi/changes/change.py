"""`GeneratedChange`: one resource of a compiled Pulumi program that a change creates, updates, replaces or deletes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

GeneratedAction = Literal["create", "update", "replace", "delete"]


@dataclass(frozen=True, slots=True)
class GeneratedChange:
    """:param type: the resource's Pulumi type: a component's (``mlspec:docker:TrainingJob``) or an object's as
        pulumi-kubernetes types it (``kubernetes:apps/v1:Deployment``).
    :param name: the component's name (``train``); an object's ``namespace/name`` (``name`` alone for objects
        outside namespaces), then ``@context`` for an attached cluster's.
    :param action: ``update`` changes the resource where it is (a Deployment rolls its pods); ``replace`` makes a
        new one in its place (a training job's new run, a new image, a Job whose pod template changed).
    :param fields: for update and replace, the fields that differ (``content_hash``, ``traffic.blue``,
        ``spec.template.spec.containers[0].image``), the first few, then ``and N more``.
    """

    type: str
    name: str
    action: GeneratedAction
    fields: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {"type": self.type, "name": self.name, "action": self.action, "fields": list(self.fields)}
