"""`mlspec endpoint drift NAME`: each deployment's sampled inputs against the data that trained the model version
it serves, found through lineage (the run's recorded data versions); text, JSON or HTML."""

from __future__ import annotations

import argparse
import html
from typing import Any

from mlspec.cli.common import CommandError, local_engine
from mlspec.cli.endpoint_commands import _record
from mlspec.cli.output import EXIT_FAILED, EXIT_OK, print_json


def _training_data(engine: Any, run: dict[str, Any], columns: set[str]) -> tuple[str, str, Any]:
    """(data name, version, DataFrame) of the run's data input sharing most columns with the samples."""
    from mlspec.backends.local.input_drift import read_table
    from mlspec.backends.local.lineage import data_snapshot

    best: tuple[int, str, str, Any] | None = None
    for name, version in run["data"].items():
        path = data_snapshot(engine.paths, name, version)
        if path is None:
            continue
        table = read_table(path)
        shared = len(columns & set(table.columns))
        if best is None or shared > best[0]:
            best = (shared, name, version, table)
    if best is None:
        raise LookupError(f"the run recorded data {run['data'] or 'none'}, and no such snapshot is left in the "
                          "workspace's datastore" if run["data"] else "its run recorded no data input")
    return best[1], best[2], best[3]


def drift_reports(engine: Any, name: str, outputs: dict[str, Any], declared: dict[str, str], threshold: float,
                  share: float) -> dict[str, Any]:
    from mlflow.tracking import MlflowClient

    from mlspec.backends.local.endpoint_files import samples_folder
    from mlspec.backends.local.input_drift import drift_report, sampled_rows
    from mlspec.backends.local.lineage import endpoint_lineage

    uri = engine.graph.spec.workspace.tracking.uri or engine.paths.tracking_uri
    chain = endpoint_lineage(engine.paths, MlflowClient(uri, uri), name, outputs, declared)
    reports: dict[str, Any] = {}
    for deployment, entry in chain["deployments"].items():
        shown: dict[str, Any] = {"model": entry["model"]}
        reports[deployment] = shown
        run = entry.get("run")
        if run is None:
            shown["reason"] = entry.get("error") or "no training run recorded for the model version it serves"
            continue
        folder = samples_folder(engine.paths, name) / deployment
        first = sampled_rows(folder, [])
        try:
            data, version, table = _training_data(engine, run, {c for row in first for c in row})
        except (LookupError, ValueError, OSError) as error:
            shown["reason"] = f"no training data to compare with: {error}"
            continue
        features = [str(c) for c in table.columns]
        rows = sampled_rows(folder, features)
        shown["reference"] = {"data": data, "version": version, "run": run["id"]}
        shown.update(drift_report(table, rows, threshold, share))
    return {"endpoint": name, "deployments": reports}


def drift(args: argparse.Namespace) -> int:
    engine = local_engine(args)
    record = _record(engine, f"endpoint/{args.name}")
    if record.spec.get("type") == "batch":
        raise CommandError(f"endpoint {args.name} is a batch endpoint: it samples no requests", EXIT_FAILED)
    if not record.spec.get("data_collector"):
        raise CommandError(f"endpoint {args.name} samples no requests: add `data_collector: {{sampling_rate: 0.1}}` "
                           "to it and run `mlspec up`", EXIT_FAILED)
    declared = {n: str(d.get("model", "?")) for n, d in record.spec.get("deployments", {}).items()}
    report = drift_reports(engine, args.name, record.outputs, declared, args.threshold, args.share)
    if args.format == "json":
        print_json(report)
    elif args.format == "html":
        print(_html(report))
    else:
        print(_text(report))
    return EXIT_OK


def _verdict(report: dict[str, Any]) -> str:
    if report.get("drift") is None:
        return f"no verdict: {report.get('reason', '?')}"
    share = report["drifted_share"]
    return (f"{'DRIFT' if report['drift'] else 'no drift'}: {share:.0%} of features drifted (threshold "
            f"{report['share_threshold']:.0%}; a feature drifts at p < {report['threshold']})")


def _text(report: dict[str, Any]) -> str:
    lines = [f"endpoint {report['endpoint']}: sampled inputs against training data"]
    for deployment, shown in report["deployments"].items():
        model = shown["model"]
        reference = shown.get("reference")
        lines.append(f"  deployment {deployment}: {model['name']} version {model['version']}"
                     + (f", trained on {reference['data']} version {reference['version']}" if reference else ""))
        if "rows" in shown:
            lines.append(f"    rows: {shown['rows']['current']} sampled, {shown['rows']['reference']} in training")
        lines.append(f"    {_verdict(shown)}")
        for feature, result in shown.get("features", {}).items():
            lines.append(f"    {feature:<24} {result['test']:<10} statistic {result['statistic']:<10.4g} "
                         f"p {result['p_value']:<10.3g} {'DRIFT' if result['drift'] else 'ok'}")
    return "\n".join(lines)


def _html(report: dict[str, Any]) -> str:
    def e(value: Any) -> str:
        return html.escape(str(value))

    parts = ["<!doctype html><html><head><meta charset=\"utf-8\"><title>Data drift: "
             f"{e(report['endpoint'])}</title><style>body{{font-family:sans-serif}}td,th{{padding:2px 8px;"
             "text-align:left}}.drift{color:#b00;font-weight:bold}</style></head><body>",
             f"<h1>Data drift of endpoint {e(report['endpoint'])}</h1>"]
    for deployment, shown in report["deployments"].items():
        parts.append(f"<h2>Deployment {e(deployment)}: {e(shown['model']['name'])} version "
                     f"{e(shown['model']['version'])}</h2><p>{e(_verdict(shown))}</p>")
        if shown.get("features"):
            parts.append("<table><tr><th>feature</th><th>test</th><th>statistic</th><th>p-value</th><th>drift</th></tr>")
            for feature, result in shown["features"].items():
                mark = '<td class="drift">yes</td>' if result["drift"] else "<td>no</td>"
                parts.append(f"<tr><td>{e(feature)}</td><td>{e(result['test'])}</td><td>{result['statistic']:.4g}"
                             f"</td><td>{result['p_value']:.3g}</td>{mark}</tr>")
            parts.append("</table>")
    parts.append("</body></html>")
    return "\n".join(parts)
