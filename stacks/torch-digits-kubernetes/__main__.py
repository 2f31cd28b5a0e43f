"""Workspace digits on a Kubernetes cluster: compiled by mlspec from ../../examples/torch-digits.

Regenerate with `mlspec compile ../../examples/torch-digits --target kubernetes -o <this folder>`; do not edit by hand.
The objects are in kubernetes/objects.yaml (the same objects `--format manifests` writes); the components
(mlspec.pulumi.kubernetes) document what each argument does.
"""

import pulumi

from mlspec.pulumi.kubernetes import ClusterWorkspace, ClusterWorkspaceArgs, EndpointSecretsArgs, ImageArgs

workspace = ClusterWorkspace("digits", ClusterWorkspaceArgs(
    spec_root="../../examples/torch-digits",
    objects="kubernetes/objects.yaml",
    images=[
        ImageArgs(
            key="runtime",
            kind="runtime",
            content_hash="743fe4360c5bf4017660b3079160562b99a6150ba1b91a120509025315c886ac",
            dockerfile="docker/runtime/Dockerfile",
            requirements="docker/runtime/requirements.txt",
        ),
        ImageArgs(
            key="tracking",
            kind="environment",
            content_hash="64249bfc9dc7a92e0ac0ac3ff54a4b994096a54beba3a43ff0391ab3cdbbd323",
            dockerfile="docker/tracking/Dockerfile",
            requirements="docker/tracking/requirements.txt",
            base="runtime",
        ),
        ImageArgs(
            key="env_torch",
            kind="environment",
            content_hash="e70bfc4a659cb7ad06f7190ba54752de9948a0195deed0f4eec2264af6352024",
            dockerfile="docker/environment-torch/Dockerfile",
            requirements="docker/environment-torch/requirements.txt",
            base="runtime",
        ),
        ImageArgs(
            key="job_train",
            kind="job",
            content_hash="557eeb062b37fc986f461d52b650e03bb7662082bea29087467566b83c3349e4",
            dockerfile="docker/job-train/Dockerfile",
            files={
                "data/digits.csv": "4a95dc7a26f5f7ae99959cd46bf9d4c11fb082ffed0b9f8f68043de44069eae5",
                "src/train.py": "8bab306e12fa5a6dc71acf91880a99eb3766d62b8252f41b23dd8bf788c84a5c",
            },
            base="env_torch",
        ),
    ],
    endpoints=[
        EndpointSecretsArgs(
            endpoint="digits",
            namespace="digits",
            token_secret="digits-internal-token",
            gateway="digits",
            keys_secret="digits-gateway-keys",
        ),
    ],
))
pulumi.export("images", workspace.references)
pulumi.export("digits.keys", workspace.keys["digits"])
