"""`mlspec` entry point: argument parsing and dispatch; each command imports what it needs lazily."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from mlspec import __version__

Handler = Callable[[argparse.Namespace], int]

DESCRIPTION = """\
mlspec: declare ML workspaces, compute, environments, data, jobs, models and endpoints
as code; validate, plan and deploy them idempotently.

Start with:
  mlspec init my-project               a new project that `mlspec up` runs at once
  mlspec validate examples/iris        check a spec, with precise diagnostics
  mlspec plan examples/iris            what `up` would change, and why
  mlspec up examples/iris              train, register and serve on this machine
  mlspec endpoint invoke iris --data examples/iris/request.json
  mlspec schema -o mlspec.schema.json  JSON Schema for your editor
  mlspec compile examples/iris --target docker -o stacks/iris
                                       the same spec as a Pulumi program for a Docker host
  mlspec up examples/iris --stack staging
                                       the stack 'staging' of examples/iris/mlspec.stacks.yaml
"""


def _paths(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="*", default=["."], metavar="SPEC",
                        help="spec files or folders (default: the current folder)")


def _json(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print machine-readable JSON")


def _tracking(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tracking-uri", metavar="URL", help="read this MLflow server, e.g. http://127.0.0.1:5000 "
                                                               "after `kubectl port-forward svc/mlflow 5000:5000`")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mlspec", description=DESCRIPTION,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"mlspec {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = commands.add_parser("validate", help="check a spec; exit 0 if valid, 2 if not",
                            description="Load, validate and resolve a spec, and check every field it sets against "
                                        "what its target honours (`mlspec targets`); print every problem at once.")
    _paths(p)
    _json(p)
    p.add_argument("--target", choices=["local", "docker", "kubernetes"],
                   help="the target to check the spec against (default: the stack's, else local)")
    _stack(p)
    p.set_defaults(handler=_lazy("mlspec.cli.spec_commands", "validate"))

    p = commands.add_parser("schema", help="print the JSON Schema of spec documents",
                            description="Print the JSON Schema that editors use to complete and check specs.")
    p.add_argument("-o", "--output", help="write to this file instead of standard output")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--stacks", action="store_true",
                       help="the schema of the stack file (mlspec.stacks.yaml) instead")
    which.add_argument("--plan", action="store_true", help="the schema of `mlspec plan --format json` instead")
    p.set_defaults(handler=_lazy("mlspec.cli.spec_commands", "schema"))

    p = commands.add_parser("targets", help="what each target does with each spec field",
                            description="The capability table: for every field of every kind, whether the local, "
                                        "docker and kubernetes targets honour it, approximate it (and how), or "
                                        "refuse it. `validate`, `plan`, `up` and `compile` check specs against it.")
    p.add_argument("--target", choices=["local", "docker", "kubernetes"],
                   help="only the fields this target does not simply honour")
    _json(p)
    p.add_argument("--markdown", action="store_true", help="print Markdown (docs/targets.md is this output)")
    p.set_defaults(handler=_lazy("mlspec.cli.spec_commands", "targets"))

    p = commands.add_parser("graph", help="show resources, dependencies and content hashes",
                            description="Show the resource graph in dependency order.")
    _paths(p)
    p.add_argument("--format", choices=["text", "mermaid", "json"], default="text", help="output format")
    p.set_defaults(handler=_lazy("mlspec.cli.spec_commands", "graph"))

    p = commands.add_parser("plan", help="show what `up` would change, and why",
                            description="Compare the spec with what is deployed (or, with --base, with the spec at "
                                        "a git revision): + create, ~ update, -/+ replace, - delete, each with its "
                                        "reason in ML terms: which jobs retrain and why, which model versions are "
                                        "registered, which endpoints redeploy and how traffic shifts.")
    _engine(p)
    p.add_argument("--base", metavar="REF",
                   help="compare with the spec at this git revision (from where the current branch left it, as a "
                        "pull request's diff does) instead of the deployed state; reads and writes no state. With a "
                        "docker or kubernetes target it also lists the generated Pulumi resources that change")
    p.add_argument("--format", choices=["text", "json", "markdown"],
                   help="text (default); json, versioned by schema/mlspec.plan.schema.json; or markdown, a "
                        "pull-request comment")
    p.add_argument("--json", action="store_true", help="the same as --format json")
    p.add_argument("--markdown", action="store_true", help="the same as --format markdown")
    p.add_argument("--detailed-exitcode", action="store_true",
                   help="exit 0 with no changes, 2 with changes, 1 for anything else (an invalid spec too)")
    _state(p)
    p.set_defaults(handler=_lazy("mlspec.cli.plan_command", "plan"))

    p = commands.add_parser("refresh", help="show where what runs differs from what `up` recorded",
                            description="Compare the recorded state with what really runs (processes, gateways, "
                                        "the MLflow registry, data snapshots) and show the repair `up` will make.")
    _engine(p)
    _json(p)
    p.add_argument("--detailed-exitcode", action="store_true", help="exit 0 without drift, 2 with drift")
    p.set_defaults(handler=_lazy("mlspec.cli.engine_commands", "refresh"))

    p = commands.add_parser("up", help="apply the spec: train, register, serve",
                            description="Plan, ask, then apply in dependency order. Safe to repeat: "
                                        "unchanged resources are left alone.")
    _engine(p)
    _yes(p)
    p.add_argument("--lock-timeout", type=float, default=0.0, metavar="SECONDS",
                   help="wait this long for another up/down on the workspace (default: fail at once)")
    _state(p)
    p.set_defaults(handler=_by_target("up"))

    p = commands.add_parser("down", help="remove what `up` created (models and runs are kept)",
                            description="List what `up` created, ask, then stop endpoints and instances, wait "
                                        "until no process of the workspace is left, and forget them. Works from "
                                        "the recorded state when the spec is broken or deleted: the spec folder's "
                                        ".mlspec, or --workspace. Registered models, runs, data snapshots and "
                                        "predictions are kept unless --purge; notebooks are always kept.")
    _engine(p)
    _yes(p)
    p.add_argument("--purge", action="store_true",
                   help="also delete registered models (every version), the workspace's MLflow runs and "
                        "experiments, data snapshots, job run folders and batch predictions")
    p.add_argument("--wait", type=float, default=30.0, metavar="SECONDS",
                   help="how long to wait for the workspace's processes to exit (default: 30)")
    p.add_argument("--workspace", metavar="DIR",
                   help="the workspace folder to remove, whatever the spec says (default: the spec's storage.path, "
                        "or SPEC/.mlspec when the spec does not load)")
    p.add_argument("--lock-timeout", type=float, default=0.0, metavar="SECONDS", help="wait for the workspace lock")
    _state(p)
    p.set_defaults(handler=_by_target("down"))

    p = commands.add_parser("compile", help="write the Pulumi project (docker) or the manifests (kubernetes) of a spec",
                            description="Compile the spec into a Pulumi project (--target docker: __main__.py, stack "
                                        "settings and Dockerfiles) or into Kubernetes manifests (--target kubernetes "
                                        "--format manifests: one YAML file per object, a kustomization, Dockerfiles "
                                        "and a README). Compiling the same spec twice writes the same bytes.")
    _paths(p)
    p.add_argument("--target", choices=["docker", "kubernetes"],
                   help="what to compile for (default: the stack's, else docker)")
    _stack(p)
    p.add_argument("--format", choices=["program", "manifests"], default=None,
                   help="a Pulumi program (the default) or, for kubernetes, plain manifests")
    p.add_argument("--registry", metavar="REGISTRY",
                   help="kubernetes: where images are pushed (REGISTRY/<workspace>-<image>:<content hash>)")
    p.add_argument("--images", metavar="FILE",
                   help="kubernetes: JSON of each image reference -> its pushed name@sha256:..., to pin digests")
    p.add_argument("--node-pool", action="append", default=[], metavar="COMPUTE=LABEL=VALUE",
                   help="kubernetes: schedule a compute's pods onto nodes with this label (repeatable)")
    p.add_argument("-o", "--output", required=True, metavar="DIR", help="the project folder to write")
    p.set_defaults(handler=_lazy("mlspec.cli.pulumi_commands", "compile"))

    p = commands.add_parser("preview", help="what `pulumi up` would change (--target docker)",
                            description="Compile the spec and run `pulumi preview` on its stack (needs the "
                                        "pulumi command).")
    _engine(p)
    _state(p)
    p.set_defaults(handler=_lazy("mlspec.cli.pulumi_commands", "preview"))

    state = commands.add_parser("state", help="the shared state location of a stack").add_subparsers(
        dest="action", metavar="ACTION", required=True)
    p = state.add_parser("unlock", help="remove the lock of a shared state location whose holder has ended",
                         description="Remove the lock that an interrupted `up` or `down` left in the shared state "
                                     "location. Without --force only when its holder ran on this machine and has "
                                     "ended.")
    _engine(p)
    _state(p)
    p.add_argument("--force", action="store_true", help="remove it whoever holds it (be sure it no longer runs)")
    p.set_defaults(handler=_lazy("mlspec.cli.shared_state", "unlock"))

    p = commands.add_parser("status", help="what is deployed, and whether it matches the spec")
    _engine(p)
    _json(p)
    p.set_defaults(handler=_lazy("mlspec.cli.engine_commands", "status"))

    p = commands.add_parser("logs", help="show the log of a job, endpoint or compute instance",
                            description="A job's or batch endpoint's log; an endpoint's replicas and gateway, or an "
                                        "instance's server, at once, each line prefixed with its process.")
    p.add_argument("name", help="job, endpoint or compute instance name")
    _engine(p)
    p.add_argument("-f", "--follow", action="store_true", help="keep printing as the log grows")
    p.add_argument("-n", "--tail", type=int, default=0, metavar="N", help="only the last N lines")
    p.set_defaults(handler=_lazy("mlspec.cli.log_commands", "logs"))

    endpoint = commands.add_parser("endpoint", help="invoke an endpoint, show its keys, stats or drift").add_subparsers(
        dest="action", metavar="ACTION", required=True)
    p = endpoint.add_parser("invoke", help="send a request to an endpoint and print the answer")
    p.add_argument("name", help="endpoint name")
    p.add_argument("--data", required=True, help="request body file (JSON, or CSV by extension); - for stdin")
    p.add_argument("--deployment", help="send to this deployment, whatever the traffic split")
    p.add_argument("--key", choices=["primary", "secondary"], default="primary", help="which key to use")
    p.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for the answer")
    p.add_argument("--url", help="the endpoint's address, e.g. http://127.0.0.1:8080 after `kubectl port-forward` "
                                 "(a kubernetes stack's endpoint; the local engine knows its own)")
    p.add_argument("--api-key", help="the key to send (default: the --key of the endpoint's keys)")
    _engine(p)
    p.set_defaults(handler=_lazy("mlspec.cli.endpoint_commands", "invoke"))
    p = endpoint.add_parser("keys", help="show (or regenerate) an endpoint's keys")
    p.add_argument("name", help="endpoint name")
    p.add_argument("--regenerate", choices=["primary", "secondary"], help="replace this key; no restart needed")
    _engine(p)
    _json(p)
    p.set_defaults(handler=_lazy("mlspec.cli.endpoint_commands", "keys"))

    p = endpoint.add_parser("stats", help="requests, errors and latency of a local endpoint over a window",
                            description="Per deployment and replica: requests, 4xx and 5xx answers, p50 and p99 "
                                        "latency, from the gateway's own traffic record.")
    p.add_argument("name", help="endpoint name")
    p.add_argument("--window", default="5m", help="how far back, e.g. 30s, 5m, 1h (default: 5m)")
    _engine(p)
    _json(p)
    p.set_defaults(handler=_lazy("mlspec.cli.watch_commands", "stats"))
    p = endpoint.add_parser("drift", help="data drift of an endpoint's sampled inputs against its training data",
                            description="Per deployment and feature: a two-sample Kolmogorov-Smirnov test (numeric) "
                                        "or a chi-square test (categorical) of the inputs its data_collector sampled "
                                        "against the data that trained the model version it serves.")
    p.add_argument("name", help="endpoint name")
    p.add_argument("--format", choices=["text", "json", "html"], default="text", help="report format")
    p.add_argument("--threshold", type=float, default=0.05, help="a feature drifts when its p-value is below this")
    p.add_argument("--share", type=float, default=0.5,
                   help="the inputs drift when at least this share of features drifts (default: 0.5)")
    _engine(p)
    p.set_defaults(handler=_lazy("mlspec.cli.drift_commands", "drift"))
    p = commands.add_parser("lineage", help="what an endpoint serves: deployment, model version, run, code, data",
                            description="endpoint -> deployment -> model version -> run -> code digest, data versions "
                                        "and environment, for a local endpoint.")
    p.add_argument("name", help="endpoint name")
    _engine(p)
    _json(p)
    p.set_defaults(handler=_lazy("mlspec.cli.watch_commands", "lineage"))

    compute = commands.add_parser("compute", help="start, stop or restart a compute instance").add_subparsers(
        dest="action", metavar="ACTION", required=True)
    for action in ("start", "stop", "restart"):
        p = compute.add_parser(action, help=f"{action} a compute instance (notebooks are kept)")
        p.add_argument("name", help="compute name")
        _engine(p)
        p.set_defaults(handler=_lazy("mlspec.cli.endpoint_commands", "compute_action"))

    p = commands.add_parser("runs", help="list the workspace's training runs (MLflow)")
    _engine(p)
    _json(p)
    p.add_argument("--experiment", help="only this experiment")
    p.add_argument("--limit", type=int, default=20, help="most runs to list")
    p.add_argument("--leaderboard", metavar="JOB", help="an AutoML job's candidates, ranked by its primary metric")
    _tracking(p)
    p.set_defaults(handler=_lazy("mlspec.cli.registry_commands", "runs"))

    p = commands.add_parser("models", help="list the workspace's registered models and versions")
    _engine(p)
    _json(p)
    _tracking(p)
    p.set_defaults(handler=_lazy("mlspec.cli.registry_commands", "models"))

    p = commands.add_parser(
        "package", help="package a registered model for edge devices: ONNX, skops or a Docker image",
        description="Export a registered model (MODEL, MODEL:VERSION or MODEL@ALIAS; default: the latest version "
                    "that is not itself a package) to ONNX or skops, checked on sample rows against the original, "
                    "and register it as a new version (or write it to -o); or build a self-contained Docker image "
                    "that serves it.")
    p.add_argument("model", help="MODEL[:VERSION] or MODEL@ALIAS")
    p.add_argument("--format", required=True, choices=["onnx", "skops", "image"])
    p.add_argument("-o", "--output", metavar="PATH", help="onnx, skops: write the model folder here instead of "
                                                          "registering it; image: the image's name:tag")
    p.add_argument("--spec", dest="paths", type=lambda value: [value], default=["."], metavar="DIR",
                   help="the spec whose workspace holds the model (default: the current folder)")
    p.add_argument("--sample", metavar="FILE", help="rows to check the export on (CSV with a header, Parquet, JSON "
                                                    "Lines; default: the training job's data)")
    p.add_argument("--rtol", type=float, default=1e-4, help="relative tolerance on probabilities and values")
    p.add_argument("--atol", type=float, default=1e-4, help="absolute tolerance on probabilities and values")
    p.add_argument("--trust", action="append", default=[], metavar="TYPE",
                   help="skops: a type the file may hold beyond skops' defaults (repeat for each)")
    p.add_argument("--alias", help="alias of the new version (default: the format's name)")
    p.add_argument("--base-image", default="python:3.11-slim", help="image: the base image (Python 3.11+)")
    p.add_argument("--wheelhouse", metavar="DIR", help="image: install the Python packages offline from these wheels")
    _stack(p)
    _tracking(p)
    _json(p)
    p.set_defaults(handler=_lazy("mlspec.cli.package_command", "package"), target=None)
    _init(commands)
    return parser


def _init(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser(
        "init", help="start a project (init) or write its GitHub Actions workflow (init ci)",
        usage="mlspec init [DIR] [--template sklearn|torch] [--name NAME] [--force]\n"
              "       mlspec init ci [DIR] [--spec PATH] [--stack NAME ...] [--force]",
        description="`mlspec init DIR` writes a project that `mlspec up` runs at once: mlspec.yaml, src/train.py, "
                    "its data, request.json, .gitignore, a README and an editor setup that checks every document "
                    "against the schema. `mlspec init ci DIR` writes DIR/.github/workflows/mlspec.yml: validate and "
                    "plan each pull request (one comment, updated), pulumi preview of docker and kubernetes stacks, "
                    "and a drift check on main. Existing files with other content are refused unless --force.")
    p.add_argument("words", nargs="*", metavar="[ci] DIR", help="the folder (default: the current one)")
    p.add_argument("--template", choices=["sklearn", "torch"], help="init: the starting point (default: sklearn)")
    p.add_argument("--name", help="init: the workspace's name (default: the folder's name)")
    p.add_argument("--spec", metavar="PATH", help="init ci: the spec folder or file, inside DIR (default: DIR)")
    p.add_argument("--stack", dest="stacks", action="extend", nargs="+", metavar="NAME",
                   help="init ci: only these stacks of the stack file (default: all of them)")
    p.add_argument("--force", action="store_true", help="replace files that exist with other content")
    p.set_defaults(handler=_lazy("mlspec.cli.init_commands", "init"))


def _engine(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="*", default=["."], metavar="SPEC",
                        help="spec files or folders (default: the current folder)")
    parser.add_argument("--target", choices=["local", "docker", "kubernetes"],
                        help="where to deploy, whatever the stack says (default: the stack's, else local)")
    _stack(parser)


def _state(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--state", metavar="URL",
                        help="the shared state location: a folder, file:// URL or s3://bucket/prefix (local target: "
                             "its published snapshot and lock), or Pulumi's backend URL (docker, kubernetes); default: "
                             "$MLSPEC_STATE, else the stack's `state:`, else none")


def _stack(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--stack", metavar="NAME",
                        help="the stack of the spec's mlspec.stacks.yaml to act on: its target and settings "
                             "(default: $MLSPEC_STACK, else the file's `default:`, else none: the local target)")


def _by_target(function: str) -> Handler:
    """The local engine's command, or the Pulumi back end's with --target docker or kubernetes."""
    def handler(args: argparse.Namespace) -> int:
        pulumi = args.target in ("docker", "kubernetes")
        module = "mlspec.cli.pulumi_commands" if pulumi else "mlspec.cli.engine_commands"
        return _lazy(module, function)(args)

    return handler


def _yes(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-y", "--yes", action="store_true", help="apply without asking")


def _lazy(module: str, function: str) -> Handler:
    """A handler imported only when its command runs, so `mlspec --help` stays fast."""
    def handler(args: argparse.Namespace) -> int:
        import importlib

        return int(getattr(importlib.import_module(module), function)(args))

    return handler


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    # argparse stops filling SPEC once an option follows NAME (`invoke iris --data f.json examples/iris`):
    # what is left over is more spec paths.
    if extra and hasattr(args, "paths") and not any(e.startswith("-") for e in extra):
        args.paths = [p for p in args.paths if p != "."] + extra
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if not getattr(args, "handler", None):
        parser.print_help()
        return 0
    from mlspec.cli.common import CommandError
    from mlspec.cli.failures import closed_pipe, explain
    from mlspec.diagnostics import SpecError

    try:
        if hasattr(args, "stack"):
            from mlspec.cli.stacks import choose

            choose(args)
        code = int(args.handler(args))
        sys.stdout.flush()  # a reader that went away shows here, not in the interpreter's final flush
        return code
    except BrokenPipeError:
        return closed_pipe()
    except CommandError as exc:
        return _fail(str(exc), exc.code)
    except SpecError as exc:  # what a target cannot deliver, found after the spec itself validated
        from mlspec.cli.output import report_spec_error

        return report_spec_error(exc, getattr(args, "json", False))
    except KeyboardInterrupt:
        return _fail("interrupted", 130)
    except Exception as exc:  # a full disk, an unwritable workspace, a corrupt database: one message, any command
        message = explain(exc)
        if message is None:
            raise
        return _fail(message, 1)


def _fail(message: str, code: int) -> int:
    if message:
        try:
            sys.stderr.write(f"mlspec: {message}\n")
            sys.stderr.flush()
        except BrokenPipeError:
            pass
    return code


def entry() -> None:
    sys.exit(main())


if __name__ == "__main__":
    entry()
