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
            content_hash="e3d9d914f4ea698a33b3e3adaa497deb85ca3112749b9bcd30da3dea52a3420d",
            dockerfile="docker/runtime/Dockerfile",
            requirements="docker/runtime/requirements.txt",
        ),
        ImageArgs(
            key="env_torch",
            kind="environment",
            content_hash="204a2d00f4d0723236d4998739f31a48709bd70a3b7d6a28b5bf90412c35a8cc",
            dockerfile="docker/environment-torch/Dockerfile",
            requirements="docker/environment-torch/requirements.txt",
            base="runtime",
        ),
        ImageArgs(
            key="job_train",
            kind="job",
            content_hash="5c3aceb6ff32b04e26e144b6f992250e6ba13b8bd7e34d0643ec5218e7acdb7c",
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
