"""The local engine's read commands on a kubernetes stack: `status` and `logs` run kubectl on the stack's namespace
and labels, `endpoint keys` reads the stack's Pulumi outputs, `endpoint invoke` sends to a URL; where what they need
is missing they say what, and the commands to run instead (exit 1)."""

from __future__ import annotations

import argparse
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from typing import Any

from mlspec.cli.common import CommandError, load_spec
from mlspec.cli.output import EXIT_FAILED, EXIT_INVALID, EXIT_OK
from mlspec.cli.stacks import selection_of

PART_OF = "app.kubernetes.io/part-of"
WORKSPACE = "mlspec.io/workspace"
GATEWAY_PORT = 80  # the gateway Service's port: the endpoint's address inside the cluster
TRACKING_SERVICE, TRACKING_PORT = "mlflow", 5000
LOCAL_PORT = 8080  # where the commands below forward an endpoint's gateway


@dataclass(frozen=True)
class Cluster:
    """Where a kubernetes stack's objects are: the context, the namespace, the labels every object carries."""

    graph: Any
    workspace: str  # the workspace's name as a label value
    namespace: str
    context: str | None

    def kubectl(self, *words: str) -> list[str]:
        return ["kubectl", *(["--context", self.context] if self.context else []), "-n", self.namespace, *words]

    @property
    def tracking_uri(self) -> str | None:
        """The spec's external tracking server; the workspace's own one is a Service of the cluster."""
        uri: str | None = self.graph.spec.workspace.tracking.uri
        return uri


def cluster_of(args: argparse.Namespace) -> Cluster:
    from mlspec.backends.pulumi.kubernetes.meta import dns_name

    graph = load_spec(args, check_target=False)
    carried = selection_of(args).kubernetes
    workspace = dns_name(graph.spec.workspace.name)
    return Cluster(graph, workspace, (carried.namespace if carried else None) or workspace,
                   carried.context if carried else None)


def shown(command: list[str]) -> str:
    return shlex.join(command)


def _run_kubectl(cluster: Cluster, command: list[str], what: str) -> int:
    """Run kubectl where it and a context to reach are present; else say which is missing and the command."""
    problem = _kubectl_missing(cluster)
    if problem:
        raise CommandError(f"{what} on a kubernetes stack reads the cluster with kubectl, and {problem}. "
                           f"Where kubectl reaches the cluster, run:\n  {shown(command)}", EXIT_FAILED)
    code = subprocess.run(command, check=False).returncode
    if code != 0:
        print(f"mlspec: `{shown(command)}` exited {code}", file=sys.stderr)
    return EXIT_FAILED if code else EXIT_OK


def _kubectl_missing(cluster: Cluster) -> str | None:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        return "no `kubectl` command is on PATH"
    if cluster.context:
        found = subprocess.run([kubectl, "config", "get-contexts", cluster.context, "-o", "name"],
                               capture_output=True, text=True, check=False)
        if found.returncode != 0:
            return (f"the kubeconfig has no context '{cluster.context}' (the stack's `kubernetes.context`): add it, "
                    "or point KUBECONFIG at the file that has it")
        return None
    found = subprocess.run([kubectl, "config", "current-context"], capture_output=True, text=True, check=False)
    if found.returncode != 0:
        return ("kubectl has no current context (`kubectl config current-context` fails): give the stack a "
                "`kubernetes.context`, or select one with `kubectl config use-context NAME`")
    return None


def status_command(cluster: Cluster, as_json: bool) -> list[str]:
    return cluster.kubectl("get", "deployments,statefulsets,jobs,cronjobs,pods,services,persistentvolumeclaims",
                           "-l", f"{PART_OF}={cluster.workspace}", *(["-o", "json"] if as_json else []))


def status(args: argparse.Namespace) -> int:
    cluster = cluster_of(args)
    return _run_kubectl(cluster, status_command(cluster, args.json), "status")


def log_selector(cluster: Cluster, name: str) -> str:
    """The label selector of the pods whose logs `mlspec logs NAME` shows: a job's, a batch endpoint's runs', an
    online endpoint's gateway and replicas, or a compute instance's server."""
    from mlspec.backends.pulumi.kubernetes.meta import dns_name

    nodes = cluster.graph.nodes
    own = f"{WORKSPACE}={cluster.workspace}"
    if f"job/{name}" in nodes:
        return f"{own},mlspec.io/job={dns_name(name)}"
    endpoint = nodes.get(f"endpoint/{name}")
    if endpoint is not None and getattr(endpoint.resource, "type", None) == "batch":
        return f"{own},mlspec.io/endpoint={dns_name(name)}"
    if endpoint is not None:
        names = [dns_name(name)] + [dns_name(name, d) for d in endpoint.resource.deployments]
        return f"{own},app.kubernetes.io/name in ({','.join(names)})"
    compute = nodes.get(f"compute/{name}")
    if compute is not None and getattr(compute.resource, "type", None) == "instance":
        return f"{own},app.kubernetes.io/component=notebooks,app.kubernetes.io/name={dns_name(name)}"
    raise CommandError(f"no logs for '{name}': name a job, an endpoint or a compute instance of the spec",
                       EXIT_INVALID)


def logs_command(cluster: Cluster, name: str, follow: bool, tail: int) -> list[str]:
    return cluster.kubectl("logs", "-l", log_selector(cluster, name), "--all-containers", "--prefix",
                           "--max-log-requests", "20", *(["-f"] if follow else []),
                           *(["--tail", str(tail)] if tail else []))


def logs(args: argparse.Namespace) -> int:
    cluster = cluster_of(args)
    return _run_kubectl(cluster, logs_command(cluster, args.name, args.follow, args.tail), "logs")


def _online_endpoint(cluster: Cluster, name: str) -> Any:
    node = cluster.graph.nodes.get(f"endpoint/{name}")
    if node is None or getattr(node.resource, "type", None) != "online":
        raise CommandError(f"'{name}' is not an online endpoint of the spec", EXIT_INVALID)
    return node.resource


def forward_command(cluster: Cluster, endpoint: str) -> list[str]:
    """A port-forward to the endpoint's gateway Service, for `endpoint invoke --url http://127.0.0.1:8080`."""
    from mlspec.backends.pulumi.kubernetes.meta import dns_name

    return cluster.kubectl("port-forward", f"svc/{dns_name(endpoint)}", f"{LOCAL_PORT}:{GATEWAY_PORT}")


def in_cluster_url(cluster: Cluster, endpoint: str) -> str:
    from mlspec.backends.pulumi.kubernetes.meta import dns_name

    return f"http://{dns_name(endpoint)}.{cluster.namespace}.svc.cluster.local"


def stack_keys(args: argparse.Namespace, cluster: Cluster, endpoint: str, hint: str = "") -> dict[str, str]:
    """The endpoint's keys from the stack's outputs (`<endpoint>.keys`), through the Automation API."""
    from mlspec.cli.pulumi_commands import pulumi_cli

    output = f"{endpoint}.keys"
    folder = (cluster.graph.spec.root / cluster.graph.spec.workspace.storage.path / "kubernetes").resolve()
    by_hand = (f"cd {shlex.quote(str(folder / 'project'))} && PULUMI_BACKEND_URL={(folder / 'state').as_uri()} "
               f"pulumi stack output --stack {selection_of(args).stack or 'dev'} --show-secrets {output}")
    try:
        pulumi_cli("kubernetes")
    except CommandError as error:
        raise CommandError(f"the endpoint's keys are the stack's Pulumi output {output}: {error} Where the stack "
                           f"was deployed from, run:\n  {by_hand}{hint}", EXIT_FAILED) from None
    from pulumi import automation as auto

    from mlspec.cli.pulumi_commands import stack_of

    try:
        outputs = stack_of(args).outputs()
    except auto.CommandError as error:
        raise CommandError(f"pulumi could not read the stack's outputs: {error}", EXIT_FAILED) from None
    if output not in outputs:
        raise CommandError(f"the stack has no output {output}: run `mlspec up` with this stack, or the endpoint "
                           "takes no keys (auth: none)", EXIT_FAILED)
    keys: dict[str, str] = dict(outputs[output].value)
    return keys


def keys(args: argparse.Namespace) -> int:
    from mlspec.cli.output import print_json

    cluster = cluster_of(args)
    endpoint = _online_endpoint(cluster, args.name)
    if args.regenerate:
        raise CommandError("a kubernetes stack's keys are Pulumi's: replace one with `pulumi up --replace URN` of "
                           "its RandomPassword in the stack's project", EXIT_INVALID)
    if endpoint.auth != "key":
        raise CommandError(f"endpoint {args.name} takes no keys (auth: none)", EXIT_INVALID)
    found = stack_keys(args, cluster, args.name)
    url = in_cluster_url(cluster, args.name)
    if args.json:
        print_json({"url": url, **found})
    else:
        print(f"url:       {url}\nprimary:   {found.get('primary')}\nsecondary: {found.get('secondary')}")
    return EXIT_OK


def invoke_target(args: argparse.Namespace) -> tuple[str, str | None]:
    """The URL to send to and the key to send (None: none needed), from --url, --api-key or the stack's keys."""
    cluster = cluster_of(args)
    endpoint = _online_endpoint(cluster, args.name)
    if not args.url:
        raise CommandError(f"endpoint {args.name} is a Service of the cluster: forward its gateway, then pass its "
                           f"address:\n  {shown(forward_command(cluster, args.name))}\n  mlspec endpoint invoke "
                           f"{args.name} --url http://127.0.0.1:{LOCAL_PORT} ...", EXIT_FAILED)
    if endpoint.auth != "key":
        return args.url.rstrip("/"), None
    key = args.api_key or stack_keys(args, cluster, args.name, "\nand pass the key as --api-key KEY")[args.key]
    return args.url.rstrip("/"), key
