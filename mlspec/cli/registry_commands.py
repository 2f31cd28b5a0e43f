"""`mlspec runs` and `mlspec models`: thin views over the workspace's MLflow tracking and registry."""

from __future__ import annotations

import argparse
import datetime

from mlspec.cli.common import local_engine
from mlspec.cli.output import EXIT_OK, print_json


def _client(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    """The workspace's MLflow client; None before the first `up` created its store (reading must not create it)."""
    engine = local_engine(args)
    uri = engine.graph.spec.workspace.tracking.uri or engine.paths.tracking_uri
    if uri == engine.paths.tracking_uri and not (engine.paths.root / "mlflow.db").exists():
        return None, uri
    from mlflow.tracking import MlflowClient

    return MlflowClient(uri), uri


def runs(args: argparse.Namespace) -> int:
    client, uri = _client(args)
    if client is None:
        if args.json:
            print_json([])
        else:
            print("No runs yet: `mlspec up` runs the spec's jobs.")
        return EXIT_OK
    experiments = client.search_experiments()
    ids = [e.experiment_id for e in experiments if not args.experiment or e.name == args.experiment]
    names = {e.experiment_id: e.name for e in experiments}
    found = client.search_runs(ids, order_by=["attributes.start_time DESC"], max_results=args.limit) if ids else []
    rows = [{"run_id": r.info.run_id, "experiment": names[r.info.experiment_id], "job": r.data.tags.get("mlspec.job"),
             "status": r.info.status, "started": datetime.datetime.fromtimestamp(r.info.start_time / 1000)
             .strftime("%Y-%m-%d %H:%M:%S"), "metrics": r.data.metrics, "params": r.data.params} for r in found]
    if args.json:
        print_json(rows)
        return EXIT_OK
    for row in rows:
        metrics = " ".join(f"{k}={v:.4g}" for k, v in row["metrics"].items())
        print(f"{row['run_id'][:12]}  {row['started']}  {row['status']:<8} {row['experiment']}/{row['job']}  {metrics}")
    print(f"\n{len(rows)} run(s); browse them with: mlflow ui --backend-store-uri {uri}")
    return EXIT_OK


def models(args: argparse.Namespace) -> int:
    client, _ = _client(args)
    if client is None:
        if args.json:
            print_json([])
        else:
            print("No registered models yet: `mlspec up` registers the spec's models.")
        return EXIT_OK
    out = []
    for model in client.search_registered_models():
        versions = sorted(client.search_model_versions(f"name='{model.name}'"), key=lambda v: int(v.version))
        aliases = {a: v for a, v in (model.aliases or {}).items()}
        out.append({"name": model.name, "versions": [{"version": int(v.version), "run_id": v.run_id,
                                                      "sha256": v.tags.get("mlspec.sha256")} for v in versions],
                    "aliases": aliases})
    if args.json:
        print_json(out)
        return EXIT_OK
    for model in out:
        latest = model["versions"][-1]["version"] if model["versions"] else "-"
        shown = ", ".join(f"@{a}={v}" for a, v in model["aliases"].items())
        print(f"{model['name']:<24} {len(model['versions'])} version(s), latest {latest}  {shown}")
    return EXIT_OK
