"""`mlspec compile` and `mlspec preview|up|down --target docker|kubernetes`: the Pulumi back end, driven by the
Automation API."""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path
from typing import Any

from mlspec.cli.common import CommandError, confirm, load_spec
from mlspec.cli.output import EXIT_FAILED, EXIT_OK
from mlspec.cli.stacks import announce, selection_of

STACK = "dev"  # the project's stack without an mlspec stack (Pulumi.dev.yaml); a stack of the stack file names its own
PASSPHRASE_VAR = "PULUMI_CONFIG_PASSPHRASE"
INSTALL_HINT = ("the {target} target runs Pulumi, and no `pulumi` command is on PATH. Install the Pulumi CLI "
                "(https://www.pulumi.com/docs/install/) and run this again; or write the project with "
                "`mlspec compile SPEC --target {target} -o DIR` and run `pulumi up` in DIR where Pulumi is installed.")
PULUMI_TARGETS = ("docker", "kubernetes")


def _compile(graph: Any, out_dir: Path, args: argparse.Namespace) -> list[Path]:
    """The project of the command's target, its stack named after the selected stack, with that stack's settings."""
    from mlspec.backends.pulumi import CompileError, compile_project

    selection = selection_of(args)
    if selection.stack and selection.target == "local":
        raise CommandError(f"{selection.describe()}, which runs processes and compiles to nothing: pass the --stack "
                           "of a docker stack, or --target docker for a Docker host with the default settings")
    target = args.target or "docker"
    settings, namespace, expose = None, None, None
    if target == "docker" and selection.docker:
        settings = selection.docker.pulumi_config()
    if target == "kubernetes":
        carried = selection.kubernetes
        settings = {**(carried.pulumi_config() if carried else {}),
                    **({"registry": args.registry} if getattr(args, "registry", None) else {})} or None
        namespace = carried.namespace if carried else None
        expose = carried.expose if carried else None
    try:
        return compile_project(graph, out_dir, target, selection.stack or STACK, settings, namespace=namespace,
                               node_pools=_node_pools(args), expose=expose)
    except CompileError as error:
        raise CommandError(f"{selection.describe()}: {error}" if selection.stack else str(error)) from None


def compile(args: argparse.Namespace) -> int:
    target = args.target or "docker"
    if target == "kubernetes" and args.format == "manifests":
        return _compile_manifests(args)
    if args.format not in (None, "program"):
        raise CommandError("the docker target compiles to a Pulumi program: leave out --format")
    graph = load_spec(args)
    written = _compile(graph, Path(args.output), args)
    selection = selection_of(args)
    stack = selection.stack
    again = " ".join(([f"--stack {stack}"] if stack else []) + ([f"--target {target}"] if not stack or
                                                                 selection.overridden else []))
    registry = ("; set `pulumi config set mlspec:registry REGISTRY` there first" if target == "kubernetes" and
                not (args.registry or (selection.kubernetes and selection.kubernetes.registry)) else "")
    print(f"Wrote a Pulumi project for workspace '{graph.spec.workspace.name}' to {args.output} "
          f"({len(written)} files{f', stack {stack}' if stack else ''}){registry}; `pulumi up` there, or "
          f"`mlspec up {again}`.")
    return EXIT_OK


def _compile_manifests(args: argparse.Namespace) -> int:
    """`compile --target kubernetes --format manifests`: the objects as YAML, for kubectl, Argo CD or Flux."""
    from mlspec.backends.pulumi import CompileError, build_program
    from mlspec.backends.pulumi.manifests import ManifestSettings, read_digests, write_manifests

    if not args.registry:
        raise CommandError("the kubernetes target pulls images from a registry: pass --registry REGISTRY, or give "
                           "the stack a registry (images are REGISTRY/<workspace>-<image>:<content hash>)")
    carried = selection_of(args).kubernetes
    graph = load_spec(args)
    out = Path(args.output)
    try:
        digests = read_digests(args.images) if args.images else {}
        settings = ManifestSettings(args.registry, digests, _node_pools(args), carried.namespace if carried else None,
                                    carried.expose if carried else None)
        written = write_manifests(build_program(graph, out), out, settings)
    except CompileError as error:
        raise CommandError(str(error)) from None
    print(f"Wrote Kubernetes manifests for workspace '{graph.spec.workspace.name}' to {args.output} "
          f"({len(written)} files); read its README.md, then `kubectl apply -k {args.output}`.")
    return EXIT_OK


def _node_pools(args: argparse.Namespace) -> dict[str, dict[str, str]]:
    """--node-pool COMPUTE=LABEL=VALUE options: per compute, the node labels its pods are scheduled onto."""
    pools: dict[str, dict[str, str]] = {}
    for item in getattr(args, "node_pool", None) or []:
        compute, _, label = item.partition("=")
        key, _, value = label.partition("=")
        if not (compute and key and value):
            raise CommandError(f"--node-pool {item!r}: expected COMPUTE=LABEL=VALUE, e.g. gpu=pool=a100")
        pools.setdefault(compute, {})[key] = value
    return pools


def pulumi_cli(target: str = "docker") -> str:
    """The pulumi command, or a CommandError (exit 1) saying what to install; nothing is ever downloaded."""
    found = shutil.which("pulumi")
    if not found:
        raise CommandError(INSTALL_HINT.format(target=target), EXIT_FAILED)
    return found


def stack_of(args: argparse.Namespace) -> Any:
    """Compile into the workspace folder and select its stack, with its state in a local file backend there."""
    target = getattr(args, "target", None) or "local"
    if target not in PULUMI_TARGETS:
        raise CommandError("this command drives Pulumi: pass --target docker or kubernetes, or the --stack of a "
                           "docker or kubernetes stack")
    pulumi_cli(target)
    passphrase = os.environ.get(PASSPHRASE_VAR)
    if not passphrase:
        raise CommandError(f"set {PASSPHRASE_VAR}: Pulumi encrypts the stack's secrets (endpoint keys) with it",
                           EXIT_FAILED)
    graph = load_spec(args)
    folder = (graph.spec.root / graph.spec.workspace.storage.path / target).resolve()
    project_dir, state_dir = folder / "project", folder / "state"
    _compile(graph, project_dir, args)
    from mlspec.cli.shared_state import pulumi_backend

    backend = pulumi_backend(args)  # a shared backend: Pulumi locks it during up and down itself
    if backend is None:
        state_dir.mkdir(parents=True, exist_ok=True)
    from pulumi import automation as auto

    env = {"PULUMI_BACKEND_URL": backend or state_dir.as_uri(), PASSPHRASE_VAR: passphrase,
           "PULUMI_PYTHON_CMD": sys.executable}  # the program imports mlspec: run it with this interpreter
    options = auto.LocalWorkspaceOptions(work_dir=str(project_dir), env_vars=env)
    try:
        return auto.create_or_select_stack(stack_name=selection_of(args).stack or STACK, work_dir=str(project_dir),
                                           opts=options)
    except auto.CommandError as error:
        raise CommandError(f"pulumi could not select the stack: {error}", EXIT_FAILED) from None


def _print(line: str) -> None:
    print(line, flush=True)


def _run(action: str, args: argparse.Namespace) -> int:
    from pulumi import automation as auto

    announce(args)
    stack = stack_of(args)
    try:
        if action == "preview":
            stack.preview(on_output=_print)
            return EXIT_OK
        if not confirm("Run `pulumi up` for this stack?" if action == "up" else "Destroy this stack?", args):
            return EXIT_OK
        if action == "up":
            result = stack.up(on_output=_print)
            for name, value in sorted(result.outputs.items()):
                print(f"{name}: {'[secret]' if value.secret else value.value}")
        else:
            stack.destroy(on_output=_print)
    except auto.CommandError as error:
        raise CommandError(f"pulumi {action} failed: {str(error).strip().splitlines()[-1]}", EXIT_FAILED) from None
    return EXIT_OK


def preview(args: argparse.Namespace) -> int:
    return _run("preview", args)


def up(args: argparse.Namespace) -> int:
    return _run("up", args)


def down(args: argparse.Namespace) -> int:
    return _run("down", args)
