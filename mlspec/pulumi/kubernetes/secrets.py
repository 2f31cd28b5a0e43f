"""The Secrets the compiled objects read, made from generated passwords: each endpoint's internal token and its keys'
digests, each instance's hashed JupyterLab password."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random

from mlspec.runtime.keys import key_hash
from mlspec.runtime.servers import jupyter_password_hash

KEY_SLOTS = ("primary", "secondary")  # two keys, so one can be rotated while clients use the other
KEYS_HASH_ANNOTATION = "mlspec.io/keys-hash"  # on the gateway's pod template: new keys roll its pods


@dataclass(frozen=True)
class EndpointSecretsArgs:
    """The Secrets of one online endpoint, as its compiled objects name them.

    :param endpoint: the endpoint's name (its keys are exported as ``<endpoint>.keys``).
    :param namespace: the workspace's namespace.
    :param token_secret: the Secret holding the internal token (key ``token``) that replicas require of the gateway.
    :param keys_secret: the Secret holding the keys' SHA-256 digests (key ``key_hashes``, one a line) the gateway
        reads; None for ``auth: none``.
    :param gateway: the gateway's Deployment, whose pods are rolled when the keys change.
    :param kube_context: the attached kubeconfig context whose cluster the endpoint runs on; None: the stack's.
    """

    endpoint: str
    namespace: str
    token_secret: str
    gateway: str
    keys_secret: str | None = None
    kube_context: str | None = None


class EndpointSecrets:
    """Generated passwords (in the stack's state, encrypted) and the Secrets made of them; the keys themselves are
    a secret output and nowhere in the cluster, which holds only their digests."""

    keys: pulumi.Output[dict[str, str]]
    keys_hash: pulumi.Output[str] | None

    def __init__(self, args: EndpointSecretsArgs, parent: pulumi.Resource) -> None:
        self.args, self.parent = args, parent
        child = pulumi.ResourceOptions(parent=parent)
        self.token = random.RandomPassword(f"{args.endpoint}-internal-token", length=48, special=False, opts=child)
        self.keys = pulumi.Output.secret({})
        self.keys_hash = None
        self.hashes: pulumi.Output[str] | None = None
        if args.keys_secret:
            passwords = {slot: random.RandomPassword(f"{args.endpoint}-{slot}-key", length=43, special=False,
                                                     opts=child) for slot in KEY_SLOTS}
            self.keys = pulumi.Output.secret(pulumi.Output.all(**{s: p.result for s, p in passwords.items()}))
            self.hashes = pulumi.Output.all(*[p.result for p in passwords.values()]).apply(
                lambda keys: "".join(f"{key_hash(k)}\n" for k in keys))
            self.keys_hash = self.hashes.apply(lambda text: hashlib.sha256(text.encode()).hexdigest()[:16])

    def create(self, depends_on: list[pulumi.Resource],
               provider: pulumi.ProviderResource | None = None) -> list[pulumi.Resource]:
        """The Secrets themselves, after `depends_on` (their namespace), through `provider` (None: the stack's)."""
        opts = pulumi.ResourceOptions(parent=self.parent, depends_on=depends_on, provider=provider)
        made: list[pulumi.Resource] = [_secret(self.args.token_secret, self.args.namespace,
                                               {"token": self.token.result}, opts)]
        if self.args.keys_secret and self.hashes is not None:
            made.append(_secret(self.args.keys_secret, self.args.namespace, {"key_hashes": self.hashes}, opts))
        return made

    def annotate_gateway(self, obj: dict[str, Any]) -> dict[str, Any]:
        """The gateway's Deployment with the keys' digest on its pod template; other objects as they are."""
        if self.keys_hash is None or obj["kind"] != "Deployment" or obj["metadata"]["name"] != self.args.gateway:
            return obj
        template = obj["spec"]["template"]
        annotations = {**(template.get("metadata") or {}).get("annotations", {}), KEYS_HASH_ANNOTATION: self.keys_hash}
        template = {**template, "metadata": {**(template.get("metadata") or {}), "annotations": annotations}}
        return {**obj, "spec": {**obj["spec"], "template": template}}


def _secret(name: str, namespace: str, values: dict[str, pulumi.Input[str]],
            opts: pulumi.ResourceOptions) -> k8s.core.v1.Secret:
    return k8s.core.v1.Secret(f"secret-{name}", metadata={"name": name, "namespace": namespace},
                              string_data=values, type="Opaque", opts=opts)


@dataclass(frozen=True)
class InstanceSecretArgs:
    """The Secret a compute instance's JupyterLab reads its hashed password from, as its compiled objects name it.

    :param instance: the instance's name (its password is exported as ``<instance>.password``).
    :param namespace: the workspace's namespace.
    :param secret: the Secret's name; its key is :param key:.
    """

    instance: str
    namespace: str
    secret: str
    key: str


class InstancePassword:
    """A generated password (a secret output) whose salted hash alone reaches the cluster."""

    def __init__(self, workspace: str, args: InstanceSecretArgs, parent: pulumi.Resource) -> None:
        self.args, self.parent = args, parent
        generated = random.RandomPassword(f"{args.instance}-password", length=32, special=False,
                                          opts=pulumi.ResourceOptions(parent=parent))
        self.hashed = generated.result.apply(lambda p: jupyter_password_hash(p, workspace, args.instance))
        self.password: pulumi.Output[str] = pulumi.Output.secret(generated.result)

    def create(self, depends_on: list[pulumi.Resource]) -> list[pulumi.Resource]:
        opts = pulumi.ResourceOptions(parent=self.parent, depends_on=depends_on)
        return [_secret(self.args.secret, self.args.namespace, {self.args.key: self.hashed}, opts)]
