"""`mlspec runs` and `mlspec models`: thin views over the workspace's MLflow tracking and registry."""

from __future__ import annotations

import argparse
import datetime

from mlspec.cli.common import CommandError, load_spec, local_engine, target_of
from mlspec.cli.output import EXIT_FAILED, EXIT_OK, print_json


def _client(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    """The workspace's MLflow client; None before the first `up` created its store (reading must not create it).
    --tracking-uri, or a stack of another target, reads a tracking server in place of the local engine's store."""
    from mlflow.tracking import MlflowClient

    if args.tracking_uri:
        return MlflowClient(args.tracking_uri), args.tracking_uri
    if target_of(args) == "docker":
        from mlspec.cli.docker_commands import tracking_client

        return tracking_client(args)
    if target_of(args) != "local":
        uri = load_spec(args, check_target=False).spec.workspace.tracking.uri or _no_tracking_uri(args)
        return MlflowClient(uri), uri
    engine = local_engine(args)
    uri = engine.graph.spec.workspace.tracking.uri or engine.paths.tracking_uri
    if uri == engine.paths.tracking_uri and not (engine.paths.root / "mlflow.db").exists():
        return None, uri
    return MlflowClient(uri), uri


def _no_tracking_uri(args: argparse.Namespace) -> str:
    """A cluster's own MLflow is a Service in its namespace: say how to reach it from here."""
    target = target_of(args)
    if target == "kubernetes":
        from mlspec.cli.cluster_commands import TRACKING_PORT, TRACKING_SERVICE, cluster_of, shown

        cluster = cluster_of(args)
        forward = shown(cluster.kubectl("port-forward", f"svc/{TRACKING_SERVICE}",
                                        f"{TRACKING_PORT}:{TRACKING_PORT}"))
        raise CommandError(f"the workspace's MLflow runs in the cluster (Service {TRACKING_SERVICE} in namespace "
                           f"{cluster.namespace}): forward it, then pass its address:\n  {forward}\n  mlspec "
                           f"{args.command} --tracking-uri http://127.0.0.1:{TRACKING_PORT} ...", EXIT_FAILED)
    raise CommandError(f"the workspace's MLflow runs on the {target} host: pass --tracking-uri URL of its server",
                       EXIT_FAILED)


def runs(args: argparse.Namespace) -> int:
    client, uri = _client(args)
    if args.leaderboard:
        from mlspec.cli.leaderboard import leaderboard

        return leaderboard(args, client)
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
    browse = f"at {uri}" if uri.startswith(("http://", "https://")) else f"with: mlflow ui --backend-store-uri {uri}"
    print(f"\n{len(rows)} run(s); browse them {browse}")
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
