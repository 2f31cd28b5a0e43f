"""Names, selectors and addresses of an online endpoint's Kubernetes objects, and the Secrets they read."""

from __future__ import annotations

from dataclasses import dataclass

from mlspec.backends.pulumi.kubernetes.context import TRACKING_CREDENTIALS, TRACKING_CREDENTIALS_KEY, Context
from mlspec.backends.pulumi.kubernetes.meta import dns_name, selector_labels
from mlspec.backends.pulumi.model import DeploymentModel, EndpointModel

SERVING_PORT = 8080  # inside each replica and the gateway, as on the Docker target
TOKEN_KEY, KEY_HASHES_KEY = "token", "key_hashes"
REPLICA, GATEWAY = "model-server", "gateway"  # app.kubernetes.io/component


@dataclass(frozen=True)
class ExternalSecret:
    """A Secret the objects read and the Pulumi program creates; manifests users create it themselves."""

    name: str
    keys: tuple[str, ...]
    how: str  # a command that creates it
    what: str = ""  # what it holds, for whom
    optional: bool = False  # the pods start without it (the Pulumi program does not make it either)


def external_secrets(endpoint: EndpointModel, ctx: Context) -> list[ExternalSecret]:
    secrets = [ExternalSecret(
        token_secret(endpoint), (TOKEN_KEY,),
        f"kubectl{_context(ctx)} create secret generic {token_secret(endpoint)} -n {ctx.namespace} "
        f"--from-literal={TOKEN_KEY}=$(openssl rand -hex 32)",
        f"the token endpoint '{endpoint.name}''s replicas require of its gateway")]
    if endpoint.auth == "key":
        secrets.append(ExternalSecret(
            keys_secret(endpoint), (KEY_HASHES_KEY,),
            f"printf '%s' \"$KEY\" | sha256sum | cut -d' ' -f1 > {KEY_HASHES_KEY}  # one line per key; then "
            f"kubectl{_context(ctx)} create secret generic {keys_secret(endpoint)} -n {ctx.namespace} "
            f"--from-file={KEY_HASHES_KEY}",
            f"the SHA-256 digests of endpoint '{endpoint.name}''s keys, which its gateway accepts"))
    return secrets


def token_secret(endpoint: EndpointModel) -> str:
    return dns_name(endpoint.name, "internal-token")


def keys_secret(endpoint: EndpointModel) -> str:
    return dns_name(endpoint.name, "gateway-keys")


def replica_name(endpoint: EndpointModel, deployment: DeploymentModel) -> str:
    """The name of a deployment's Deployment, Service, PDB, HPA and NetworkPolicy."""
    return dns_name(endpoint.name, deployment.name)


def gateway_name(endpoint: EndpointModel) -> str:
    """The gateway's objects are named after the endpoint: its Service is the endpoint's address."""
    return dns_name(endpoint.name)


def replica_selector(ctx: Context, endpoint: EndpointModel, deployment: DeploymentModel) -> dict[str, str]:
    return {**selector_labels(ctx.workspace, REPLICA, replica_name(endpoint, deployment)),
            "mlspec.io/endpoint": dns_name(endpoint.name), "mlspec.io/deployment": dns_name(deployment.name)}


def gateway_selector(ctx: Context, endpoint: EndpointModel) -> dict[str, str]:
    return {**selector_labels(ctx.workspace, GATEWAY, gateway_name(endpoint)),
            "mlspec.io/endpoint": dns_name(endpoint.name)}


def replica_url(ctx: Context, endpoint: EndpointModel, deployment: DeploymentModel) -> str:
    """The deployment's Service: the one replica address the gateway knows (kube-proxy spreads its connections)."""
    return f"http://{replica_name(endpoint, deployment)}.{ctx.namespace}.svc.cluster.local:{SERVING_PORT}"


def replica_count(deployment: DeploymentModel) -> int:
    """The most replicas a deployment runs: its instance_count, or its autoscaler's maximum."""
    autoscale = deployment.autoscale
    return int(autoscale["max_instances"]) if autoscale else int(deployment.settings["instance_count"])


def tracking_credentials(ctx: Context) -> ExternalSecret:
    """The team's MLflow server's credentials in `ctx`'s namespace: optional, as the server may ask for none."""
    return ExternalSecret(
        TRACKING_CREDENTIALS, (TRACKING_CREDENTIALS_KEY,),
        f"printf '[mlflow]\\nmlflow_tracking_username = %s\\nmlflow_tracking_password = %s\\n' \"$USER_NAME\" "
        f"\"$PASSWORD\" > {TRACKING_CREDENTIALS_KEY}; kubectl{_context(ctx)} create secret generic "
        f"{TRACKING_CREDENTIALS} -n {ctx.namespace} --from-file={TRACKING_CREDENTIALS_KEY}",
        f"only if the tracking server {ctx.tracking_uri} asks for credentials: MLflow's credentials file, which "
        "the pods that log to it or load models from it read", optional=True)


def _context(ctx: Context) -> str:
    """kubectl's `--context` for an attached cluster; the current context for the stack's."""
    return f" --context {ctx.kube_context}" if ctx.kube_context else ""
