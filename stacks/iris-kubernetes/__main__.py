"""Workspace iris-demo on a Kubernetes cluster: compiled by mlspec from ../../examples/iris.

Regenerate with `mlspec compile ../../examples/iris --target kubernetes -o <this folder>`; do not edit by hand.
The objects are in kubernetes/objects.yaml (the same objects `--format manifests` writes); the components
(mlspec.pulumi.kubernetes) document what each argument does.
"""

import pulumi

from mlspec.pulumi.kubernetes import ClusterWorkspace, ClusterWorkspaceArgs, EndpointSecretsArgs, ImageArgs

workspace = ClusterWorkspace("iris-demo", ClusterWorkspaceArgs(
    spec_root="../../examples/iris",
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
            key="env_sklearn",
            kind="environment",
            content_hash="a6604d87d3b2661bb2fe427e6f341b5e6217d630d2173dd39ce902342536efb9",
            dockerfile="docker/environment-sklearn/Dockerfile",
            requirements="docker/environment-sklearn/requirements.txt",
            base="runtime",
        ),
        ImageArgs(
            key="job_train",
            kind="job",
            content_hash="f88bb387735f689925c67ce9a7fc7358aa27abfd6f9eb4e80f444cc19c2a8cb6",
            dockerfile="docker/job-train/Dockerfile",
            files={
                "data/iris.csv": "403ce7582d1f16b244cf2f379b3f92e34a54a91e142524e8d2efe53872d1357b",
                "src/train.py": "f35ac477fb56c72882a34fe84fe792acc0e427d3c47276a1c786f14be673360f",
            },
            base="env_sklearn",
        ),
        ImageArgs(
            key="job_train_forest",
            kind="job",
            content_hash="0498cb7764ee5bb90f78287ade54b2e9a3e40f2569ecbef0f62060a541f3d3f2",
            dockerfile="docker/job-train-forest/Dockerfile",
            files={
                "data/iris.csv": "403ce7582d1f16b244cf2f379b3f92e34a54a91e142524e8d2efe53872d1357b",
                "src/train.py": "f35ac477fb56c72882a34fe84fe792acc0e427d3c47276a1c786f14be673360f",
            },
            base="env_sklearn",
        ),
    ],
    endpoints=[
        EndpointSecretsArgs(
            endpoint="iris",
            namespace="iris-demo",
            token_secret="iris-internal-token",
            gateway="iris",
            keys_secret="iris-gateway-keys",
        ),
    ],
))
pulumi.export("images", workspace.references)
pulumi.export("iris.keys", workspace.keys["iris"])
