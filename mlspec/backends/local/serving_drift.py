"""Drift in what serves: supervised processes that are not running, and gateways whose routing is not the recorded."""

from __future__ import annotations

import json
from collections import defaultdict
from typing import Any

from mlspec.backends.local.keys import gateway_config, key_hashes, keys_file
from mlspec.backends.local.live import gateway_health
from mlspec.backends.local.paths import WorkspacePaths
from mlspec.backends.local.processes import is_ours
from mlspec.backends.local.state import ProcessRow
from mlspec.plan import Drift, Record

RECONFIGURE = "reconfigure gateway"


def _expected(record: Record) -> list[tuple[str, str]]:
    """(process id, what the user calls it) for each process a record says runs."""
    if record.kind == "Compute" and "url" in record.outputs:
        return [(f"{record.id}/jupyter", "JupyterLab")]
    if record.kind != "Endpoint" or "url" not in record.outputs:
        return []
    out = [(pid, f"replica {name}/{pid.rsplit('/', 1)[1]}")
           for name, deployment in record.outputs.get("deployments", {}).items()
           for pid in deployment.get("processes", [])]
    return [*out, (f"{record.id}/gateway", "gateway")]


def process_drift(records: list[Record], rows: list[ProcessRow], supervised: bool) -> dict[str, list[Drift]]:
    """A process the record says runs that has no supervisor row, or is dead while no supervisor would restart it.
    (While the supervisor runs, a crashed process is its to restart: `mlspec status` shows the restarts.)"""
    wanted = {row.id: row for row in rows if row.desired}
    found: dict[str, list[Drift]] = defaultdict(list)
    for record in records:
        verb = "restart" if record.kind == "Compute" else "redeploy"
        for process_id, label in _expected(record):
            row = wanted.get(process_id)
            if row is None:
                found[record.id].append(Drift(f"{label} is not declared to the supervisor", verb))
            elif row.state != "stopped" and not supervised and not is_ours(row.pid, row.id):
                found[record.id].append(Drift(f"{label} is not running", verb))
    return found


def gateway_drift(paths: WorkspacePaths, records: list[Record], rows: list[ProcessRow]) -> dict[str, list[Drift]]:
    """The gateway's file and, when it runs, what it reports it serves, against the routing recorded at apply."""
    from mlspec.runtime.gateway.config import ConfigError, keys_digest, load, routing_digest

    alive = {row.id for row in rows if row.desired and is_ours(row.pid, row.id)}
    found: dict[str, list[Drift]] = defaultdict(list)
    for record in records:
        recorded = record.outputs.get("routing")
        if record.kind != "Endpoint" or not recorded:
            continue  # not an online endpoint, or applied by an mlspec that did not record its routing
        name = record.id.split("/", 1)[1]
        keys = _keys_digest(paths, name, record.outputs.get("auth", "key"))
        try:
            config = load(gateway_config(paths, name))
            on_file: str | None = routing_digest(config)
            if keys is not None and keys_digest(config.key_hashes) != keys:
                found[record.id].append(Drift("gateway.json accepts other keys than keys.json holds (edited by "
                                              "hand?)", RECONFIGURE))
        except ConfigError as error:
            on_file = None
            found[record.id].append(Drift(f"gateway.json is not the recorded routing ({error})", RECONFIGURE))
        live = _live(record) if f"{record.id}/gateway" in alive else None
        if live is not None and live.get("config", recorded) != recorded:
            hint = "gateway.json edited by hand?" if live.get("config") == on_file else "edited by hand?"
            found[record.id].append(Drift(f"live routing differs from the recorded ({hint})", RECONFIGURE))
        elif on_file is not None and on_file != recorded:
            found[record.id].append(Drift("gateway.json differs from the recorded routing (edited by hand?)",
                                          RECONFIGURE))
        if live is not None and keys is not None and live.get("keys", keys) != keys:
            found[record.id].append(Drift("the running gateway accepts other keys than keys.json holds",
                                          RECONFIGURE))
    return found


def _live(record: Record) -> dict[str, Any] | None:
    return gateway_health(str(record.outputs["url"]))  # None: no answer within the short timeout; not waited on


def _keys_digest(paths: WorkspacePaths, name: str, auth: str) -> str | None:
    """What the gateway should accept: the hashes of keys.json's keys (none with auth: none)."""
    from mlspec.runtime.gateway.config import keys_digest

    if auth != "key":
        return keys_digest([])
    try:
        keys = json.loads(keys_file(paths, name).read_text())
    except (OSError, ValueError):
        return None  # no keys file: `up` makes one; nothing to compare with
    return keys_digest(key_hashes(keys))
