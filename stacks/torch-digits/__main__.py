"""Workspace digits on a Docker host: compiled by mlspec from ../../examples/torch-digits.

Regenerate with `mlspec compile ../../examples/torch-digits --target docker -o <this folder>`; do not edit by hand.
The components (mlspec.pulumi) document what each argument does.
"""

import pulumi

from mlspec.pulumi import (
    DeploymentArgs,
    Environment,
    EnvironmentArgs,
    OnlineEndpoint,
    OnlineEndpointArgs,
    Size,
    TrainingJob,
    TrainingJobArgs,
    Workspace,
    WorkspaceArgs,
)

workspace = Workspace("digits", WorkspaceArgs(
    spec_root="../../examples/torch-digits",
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
    tracking_port=21853,
))
pulumi.export("MLflow.url", workspace.published.url)
pulumi.export("MLflow.credentials", workspace.published.credentials)

env_torch = Environment("torch", workspace, EnvironmentArgs(
    content_hash="e70bfc4a659cb7ad06f7190ba54752de9948a0195deed0f4eec2264af6352024",
    dockerfile="docker/environment-torch/Dockerfile",
    requirements="docker/environment-torch/requirements.txt",
    on_runtime=True,
))

job_train = TrainingJob("train", workspace, TrainingJobArgs(
    environment=env_torch,
    content_hash="557eeb062b37fc986f461d52b650e03bb7662082bea29087467566b83c3349e4",
    dockerfile="docker/job-train/Dockerfile",
    command="python train.py --data ${{inputs.data}} --epochs ${{inputs.epochs}} --model-dir ${{outputs.model}}",
    experiment="digits",
    code="src",
    files={
        "data/digits.csv": "4a95dc7a26f5f7ae99959cd46bf9d4c11fb082ffed0b9f8f68043de44069eae5",
        "src/train.py": "8bab306e12fa5a6dc71acf91880a99eb3766d62b8252f41b23dd8bf788c84a5c",
    },
    inputs={"data": {"path": "data/digits.csv"}, "epochs": 30},
    outputs={"model": {"flavor": "torch", "register_as": "digits-mlp", "type": "model"}},
    size=Size(cpus=2.0, memory_mb=4096, gpus=0),
))
pulumi.export("train.models", job_train.models)

endpoint_digits = OnlineEndpoint("digits", workspace, OnlineEndpointArgs(
    auth="key",
    port=24157,
    traffic={"blue": 100},
    deployments=[
        DeploymentArgs(
            name="blue",
            environment=env_torch,
            model="digits-mlp",
            version=job_train.version("digits-mlp"),
            sha256=job_train.digest("digits-mlp"),
            instance_count=1,
            workers=1,
            batching={"max_batch_size": 32, "max_wait": 0.002},
            size=Size(cpus=2.0, memory_mb=4096, gpus=0),
        ),
    ],
))
pulumi.export("digits.url", endpoint_digits.url)
pulumi.export("digits.keys", endpoint_digits.keys)
