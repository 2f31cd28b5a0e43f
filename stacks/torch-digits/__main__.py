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
        content_hash="e3d9d914f4ea698a33b3e3adaa497deb85ca3112749b9bcd30da3dea52a3420d",
        dockerfile="docker/runtime/Dockerfile",
        requirements="docker/runtime/requirements.txt",
    ),
    tracking_port=21853,
))
pulumi.export("MLflow.url", workspace.published.url)
pulumi.export("MLflow.credentials", workspace.published.credentials)

env_torch = Environment("torch", workspace, EnvironmentArgs(
    content_hash="204a2d00f4d0723236d4998739f31a48709bd70a3b7d6a28b5bf90412c35a8cc",
    dockerfile="docker/environment-torch/Dockerfile",
    requirements="docker/environment-torch/requirements.txt",
    on_runtime=True,
))

job_train = TrainingJob("train", workspace, TrainingJobArgs(
    environment=env_torch,
    content_hash="5c3aceb6ff32b04e26e144b6f992250e6ba13b8bd7e34d0643ec5218e7acdb7c",
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
