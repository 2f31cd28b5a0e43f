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
        content_hash="743fe4360c5bf4017660b3079160562b99a6150ba1b91a120509025315c886ac",
        dockerfile="docker/runtime/Dockerfile",
        requirements="docker/runtime/requirements.txt",
    ),
    tracking=EnvironmentArgs(
        content_hash="64249bfc9dc7a92e0ac0ac3ff54a4b994096a54beba3a43ff0391ab3cdbbd323",
        dockerfile="docker/tracking/Dockerfile",
        requirements="docker/tracking/requirements.txt",
        on_runtime=True,
    ),
    tracking_port=26207,
))
pulumi.export("MLflow.url", workspace.published.url)
pulumi.export("MLflow.credentials", workspace.published.credentials)

env_sklearn = Environment("sklearn", workspace, EnvironmentArgs(
    content_hash="a6604d87d3b2661bb2fe427e6f341b5e6217d630d2173dd39ce902342536efb9",
    dockerfile="docker/environment-sklearn/Dockerfile",
    requirements="docker/environment-sklearn/requirements.txt",
    on_runtime=True,
))

job_train = TrainingJob("train", workspace, TrainingJobArgs(
    environment=env_sklearn,
    content_hash="f88bb387735f689925c67ce9a7fc7358aa27abfd6f9eb4e80f444cc19c2a8cb6",
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
    content_hash="0498cb7764ee5bb90f78287ade54b2e9a3e40f2569ecbef0f62060a541f3d3f2",
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
