"""Workspace iris-demo on a Docker host: compiled by mlspec from ../../examples/iris.

Regenerate with `mlspec compile ../../examples/iris --target docker -o <this folder>`; do not edit by hand.
The components (mlspec.pulumi) document what each argument does.
"""

import pulumi

from mlspec.pulumi import (
    DeploymentArgs,
    Environment,
    EnvironmentArgs,
    MlflowLabels,
    MlflowLabelsArgs,
    OnlineEndpoint,
    OnlineEndpointArgs,
    Size,
    TrainingJob,
    TrainingJobArgs,
    Workspace,
    WorkspaceArgs,
)

workspace = Workspace("iris-demo", WorkspaceArgs(
    spec_root="../../examples/iris",
    runtime=EnvironmentArgs(
        content_hash="e3d9d914f4ea698a33b3e3adaa497deb85ca3112749b9bcd30da3dea52a3420d",
        dockerfile="docker/runtime/Dockerfile",
        requirements="docker/runtime/requirements.txt",
    ),
    tracking_port=26207,
))
pulumi.export("MLflow.url", workspace.published.url)
pulumi.export("MLflow.credentials", workspace.published.credentials)

env_sklearn = Environment("sklearn", workspace, EnvironmentArgs(
    content_hash="32cb112bb11b1a8f0cf974c8d1bf499614a8c31d71f5cda8954ce88482539c0b",
    dockerfile="docker/environment-sklearn/Dockerfile",
    requirements="docker/environment-sklearn/requirements.txt",
    on_runtime=True,
))

job_train = TrainingJob("train", workspace, TrainingJobArgs(
    environment=env_sklearn,
    content_hash="f8c8c55c0ff66e847b1841e60c0bb220b2130e1ada9008d3e87e380342349ca9",
    dockerfile="docker/job-train/Dockerfile",
    command="python train.py --data ${{inputs.data}} --algo logistic --C ${{inputs.C}} --model-dir ${{outputs.model}}",
    experiment="iris",
    code="src",
    files={
        "data/iris.csv": "403ce7582d1f16b244cf2f379b3f92e34a54a91e142524e8d2efe53872d1357b",
        "src/train.py": "f35ac477fb56c72882a34fe84fe792acc0e427d3c47276a1c786f14be673360f",
    },
    inputs={"C": 1.0, "data": {"path": "data/iris.csv"}},
    outputs={"model": {"flavor": "sklearn", "register_as": "iris-clf", "type": "model"}},
    size=Size(cpus=1.0, memory_mb=2048, gpus=0),
))
pulumi.export("train.models", job_train.models)

job_train_forest = TrainingJob("train-forest", workspace, TrainingJobArgs(
    environment=env_sklearn,
    content_hash="4ea64795d954bea6bd462e5b4f61d9ddd5f30b7ad1ab092b9c25f87ab2fb8888",
    dockerfile="docker/job-train-forest/Dockerfile",
    command="python train.py --data ${{inputs.data}} --algo forest --model-dir ${{outputs.model}}",
    experiment="iris",
    code="src",
    files={
        "data/iris.csv": "403ce7582d1f16b244cf2f379b3f92e34a54a91e142524e8d2efe53872d1357b",
        "src/train.py": "f35ac477fb56c72882a34fe84fe792acc0e427d3c47276a1c786f14be673360f",
    },
    inputs={"data": {"path": "data/iris.csv"}},
    outputs={"model": {"flavor": "sklearn", "register_as": "iris-forest", "type": "model"}},
    size=Size(cpus=1.0, memory_mb=2048, gpus=0),
))
pulumi.export("train-forest.models", job_train_forest.models)

endpoint_iris = OnlineEndpoint("iris", workspace, OnlineEndpointArgs(
    auth="key",
    port=25232,
    traffic={"blue": 90, "green": 10},
    deployments=[
        DeploymentArgs(
            name="blue",
            environment=env_sklearn,
            model="iris-clf",
            version=job_train.version("iris-clf"),
            sha256=job_train.digest("iris-clf"),
            instance_count=1,
            workers=1,
            size=Size(cpus=1.0, memory_mb=2048, gpus=0),
        ),
        DeploymentArgs(
            name="green",
            environment=env_sklearn,
            model="iris-forest",
            version=job_train_forest.version("iris-forest"),
            sha256=job_train_forest.digest("iris-forest"),
            instance_count=1,
            workers=1,
            size=Size(cpus=1.0, memory_mb=2048, gpus=0),
        ),
    ],
))
pulumi.export("iris.url", endpoint_iris.url)
pulumi.export("iris.keys", endpoint_iris.keys)

labels = MlflowLabels("labels", workspace, MlflowLabelsArgs(
    experiments={"iris": {"description": "Iris classifiers trained on a local cluster and served blue/green."}},
    after=[job_train, job_train_forest],
))
