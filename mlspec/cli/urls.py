"""The addresses `up` leaves running, printed only once each answers its health check."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

WAIT_S = 30.0  # the supervisor may still be (re)starting a server after `up`; beyond this, say so instead


def service_urls(records: dict[str, Any], stopped: set[str] | None = None) -> list[tuple[str, str, str]]:
    """(label, URL to show, URL that answers when it is up) for each endpoint and compute instance that is not
    `stopped` (`mlspec compute stop`)."""
    found = []
    for record in records.values():
        name = record.id.split("/", 1)[1]
        outputs = record.outputs
        if record.id in (stopped or set()):
            continue
        if record.kind == "Endpoint" and "url" in outputs and "port" in outputs:
            found.append((f"Endpoint {name}", f"{outputs['url']}/invocations  (mlspec endpoint invoke {name} "
                                               "--data FILE)", f"{outputs['url']}/health"))
        elif record.kind == "Compute" and "url" in outputs and "port" in outputs:
            found.append((f"Compute instance {name}", f"{outputs['url']}  (notebooks in {outputs.get('notebooks')})",
                          f"http://127.0.0.1:{outputs['port']}/api"))  # JupyterLab answers /api without a token
    return found


def print_urls(state_db: Path, say: Callable[[str], None] = print, wait_s: float = WAIT_S) -> bool:
    """Print each service's URL once it answers; False when one did not answer within `wait_s`."""
    from mlspec.backends.local.health import healthy
    from mlspec.backends.local.state import StateStore

    if not state_db.exists():
        return True
    store = StateStore(state_db)
    try:
        rows = store.processes()
        owners = {row.owner for row in rows}
        stopped = {owner for owner in owners if all(r.state == "stopped" for r in rows if r.owner == owner)}
        services = service_urls(store.records(), stopped)
    finally:
        store.close()
    for owner in sorted(stopped):
        kind, name = owner.split("/", 1)
        say(f"Compute instance {name}: stopped (mlspec compute start {name})" if kind == "compute" else
            f"{owner}: stopped")
    deadline = time.monotonic() + wait_s
    pending = list(services)
    while pending:
        for service in list(pending):
            label, shown, probe = service
            if healthy(probe):
                say(f"{label}: {shown}")
                pending.remove(service)
        if not pending or time.monotonic() >= deadline:
            break
        time.sleep(0.2)
    for label, shown, _ in pending:
        name = label.rsplit(" ", 1)[1]
        say(f"{label}: not answering yet at {shown.split()[0]}; see `mlspec status` and `mlspec logs {name}`")
    return not pending
