"""`mlspec endpoint stats` and `mlspec lineage`: what a local endpoint answered over a window, and what it serves."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from mlspec.cli.common import CommandError, local_engine
from mlspec.cli.endpoint_commands import _record
from mlspec.cli.output import EXIT_FAILED, EXIT_OK, print_json
from mlspec.spec.base import parse_duration

SOURCE = ("the gateway's traffic record: its counts now (live, over its control channel) less its snapshot at the "
          "window's start (.mlspec/endpoints/NAME/traffic.jsonl, one every 5 s while traffic flows)")


def _replica_names(engine: Any, endpoint: str) -> dict[str, str]:
    """Replica address -> DEPLOYMENT/GENERATION/INDEX, from the processes the engine declared."""
    from mlspec.backends.local.state import StateStore
    from mlspec.runtime.sockets import split_url

    store = StateStore(engine.paths.state_db)
    try:
        rows = store.processes(f"endpoint/{endpoint}")
    finally:
        store.close()
    return {split_url(row.health)[0]: row.id.split("/", 2)[2] for row in rows if row.health and "/" in row.id}


def _figures(series: Any, buckets: list[float]) -> dict[str, Any]:
    from mlspec.backends.local.traffic_stats import quantile

    p50, p99 = quantile(series, buckets, 0.5), quantile(series, buckets, 0.99)
    return {"requests": series.requests, "errors_4xx": series.errors(400), "errors_5xx": series.errors(500),
            "p50_ms": None if p50 is None else round(p50 * 1000, 3),
            "p99_ms": None if p99 is None else round(p99 * 1000, 3)}


def endpoint_stats(engine: Any, name: str, window_s: float, declared: tuple[str, ...] = ()) -> dict[str, Any]:
    """The window's figures; `declared` deployments without traffic are listed with zeros."""
    from mlspec.backends.local.endpoint_files import traffic_history
    from mlspec.backends.local.gateway_control import traffic
    from mlspec.backends.local.replica_sockets import control_socket
    from mlspec.backends.local.traffic_stats import Series, read_history, window

    snapshots = read_history(traffic_history(engine.paths, name))
    live = traffic(control_socket(engine.paths, name))
    if live is not None:
        snapshots.append(live)
    now = time.time()
    found, buckets, covered = window(snapshots, now - window_s)
    names = _replica_names(engine, name)
    deployments: dict[str, Any] = {}
    gateway, every = Series(), Series()
    per_deployment: dict[str, Series] = {}
    for (deployment, replica), series in sorted(found.items()):
        every.add({str(k): v for k, v in series.statuses.items()}, series.latency)
        if not deployment:
            gateway = series
            continue
        per_deployment.setdefault(deployment, Series()).add({str(k): v for k, v in series.statuses.items()},
                                                            series.latency)
        shown = names.get(replica) or (Path(replica).stem if replica else "(no replica reached)")
        deployments.setdefault(deployment, {"replicas": {}})["replicas"][shown] = _figures(series, buckets)
    for deployment, series in per_deployment.items():
        deployments[deployment].update(_figures(series, buckets))
    for deployment in declared:
        deployments.setdefault(deployment, {"requests": 0, "errors_4xx": 0, "errors_5xx": 0, "p50_ms": None,
                                            "p99_ms": None, "replicas": {}})
    return {"endpoint": name, "window_s": window_s, "since": min(covered, now) if covered != float("inf") else now,
            "live": live is not None, "source": SOURCE,
            "total": _figures(every, buckets) if every.requests else {"requests": 0, "errors_4xx": 0, "errors_5xx": 0,
                                                                      "p50_ms": None, "p99_ms": None},
            "deployments": deployments,
            "gateway": {k: v for k, v in _figures(gateway, buckets).items() if not k.startswith("p")}
            if gateway.requests else {"requests": 0, "errors_4xx": 0, "errors_5xx": 0}}


def stats(args: argparse.Namespace) -> int:
    engine = local_engine(args)
    record = _record(engine, f"endpoint/{args.name}")
    if record.spec.get("type") == "batch":
        raise CommandError(f"endpoint {args.name} is a batch endpoint: it answers no requests", EXIT_FAILED)
    try:
        window_s = parse_duration(args.window)
    except ValueError as error:
        raise CommandError(f"--window: {error}", EXIT_FAILED) from None
    report = endpoint_stats(engine, args.name, window_s, tuple(record.outputs.get("deployments", {})))
    if args.json:
        print_json(report)
        return EXIT_OK
    since = time.strftime("%H:%M:%S", time.localtime(report["since"]))
    print(f"endpoint {args.name}: the last {args.window} (data since {since}"
          f"{'' if report['live'] else '; the gateway does not answer, so up to its last snapshot'})")
    rows: list[tuple[str, ...]] = [("DEPLOYMENT", "REPLICA", "REQUESTS", "4XX", "5XX", "P50", "P99")]
    for deployment, shown in report["deployments"].items():
        rows.append(_row(deployment, "all", shown))
        rows += [_row("", replica, figures) for replica, figures in shown["replicas"].items()]
    if report["gateway"]["requests"]:
        rows.append(_row("(gateway)", "refused before routing", report["gateway"]))
    rows.append(_row("total", "", report["total"]))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.rjust(w) if i >= 2 else cell.ljust(w) for i, (cell, w) in enumerate(zip(row, widths,
                                                                                                   strict=True))))
    return EXIT_OK


def _row(deployment: str, replica: str, figures: dict[str, Any]) -> tuple[str, ...]:
    def ms(value: float | None) -> str:
        return "-" if value is None else f"{value:.1f} ms"

    return (deployment, replica, str(figures["requests"]), str(figures["errors_4xx"]), str(figures["errors_5xx"]),
            ms(figures.get("p50_ms")), ms(figures.get("p99_ms")))


def lineage(args: argparse.Namespace) -> int:
    from mlflow.tracking import MlflowClient

    from mlspec.backends.local.lineage import endpoint_lineage

    engine = local_engine(args)
    record = _record(engine, f"endpoint/{args.name}")
    if record.spec.get("type") == "batch":
        raise CommandError(f"endpoint {args.name} is a batch endpoint: `mlspec status` shows its model", EXIT_FAILED)
    uri = engine.graph.spec.workspace.tracking.uri or engine.paths.tracking_uri
    declared = {name: str(d.get("model", "?")) for name, d in record.spec.get("deployments", {}).items()}
    chain = endpoint_lineage(engine.paths, MlflowClient(uri, uri), args.name, record.outputs, declared)
    if args.json:
        print_json(chain)
        return EXIT_OK
    print(f"endpoint/{args.name}  {chain['url']}")
    for name, entry in chain["deployments"].items():
        model = entry["model"]
        print(f"  deployment {name} (traffic {entry['traffic']}%)")
        print(f"    model        {model['name']} version {model['version']}"
              f"{'  sha256 ' + model['sha256'][:12] if model.get('sha256') else ''}")
        if "error" in entry:
            print(f"    {entry['error']}")
        run = entry.get("run")
        if run is None:
            print("    run          (none recorded: the model was registered from a path)")
            continue
        print(f"    run          {run['id']} (job {run['job']}, experiment {run['experiment']}, job hash "
              f"{(run['job_hash'] or '?')[:12]})")
        print(f"    code         {run['code'] or '(no code folder, or run before mlspec recorded it)'}")
        inputs = {data: field for field, data in run["inputs"].items()}
        for data, version in run["data"].items():
            print(f"    data         {data} version {version}"
                  f"{' (input ' + inputs[data] + ')' if data in inputs else ''}")
        if not run["data"]:
            print("    data         (no data input recorded)")
        print(f"    environment  {run['environment'] or '(mlspec runtime interpreter)'}")
    return EXIT_OK
