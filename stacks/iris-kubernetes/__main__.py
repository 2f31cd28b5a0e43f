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
            content_hash="e3d9d914f4ea698a33b3e3adaa497deb85ca3112749b9bcd30da3dea52a3420d",
            dockerfile="docker/runtime/Dockerfile",
            requirements="docker/runtime/requirements.txt",
        ),
        ImageArgs(
            key="env_sklearn",
            kind="environment",
            content_hash="32cb112bb11b1a8f0cf974c8d1bf499614a8c31d71f5cda8954ce88482539c0b",
            dockerfile="docker/environment-sklearn/Dockerfile",
            requirements="docker/environment-sklearn/requirements.txt",
            base="runtime",
        ),
        ImageArgs(
            key="job_train",
            kind="job",
            content_hash="f8c8c55c0ff66e847b1841e60c0bb220b2130e1ada9008d3e87e380342349ca9",
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
            content_hash="4ea64795d954bea6bd462e5b4f61d9ddd5f30b7ad1ab092b9c25f87ab2fb8888",
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
