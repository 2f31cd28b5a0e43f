"""The Kubernetes Pulumi project: the Docker target's Dockerfiles, the compiled objects and a program applying them."""

from __future__ import annotations

from typing import Any

import yaml

from mlspec.backends.pulumi.kubernetes.attached import endpoint_contexts
from mlspec.backends.pulumi.kubernetes.context import Context
from mlspec.backends.pulumi.kubernetes.endpoint_names import gateway_name, keys_secret, token_secret
from mlspec.backends.pulumi.kubernetes.instances import PASSWORD_KEY, password_secret
from mlspec.backends.pulumi.kubernetes.meta import Object
from mlspec.backends.pulumi.model import BatchModel, JobModel, ProgramModel
from mlspec.backends.pulumi.render import render

OBJECTS_FILE = "kubernetes/objects.yaml"


def objects_yaml(objects: list[Object]) -> str:
    """The objects as YAML documents, in their order, keys as built (kubectl's order): deterministic."""
    return yaml.safe_dump_all(objects, sort_keys=False, default_flow_style=False, width=120, allow_unicode=True)


def images(program: ProgramModel) -> list[dict[str, Any]]:
    """Every image the objects may run, in build order, as `ImageArgs` keyword arguments."""
    runtime = program.runtime
    found: list[dict[str, Any]] = [{
        "key": runtime.var, "kind": "runtime", "content_hash": runtime.content_hash,
        "dockerfile": f"docker/{runtime.folder}/Dockerfile",
        "requirements": f"docker/{runtime.folder}/requirements.txt",
    }]
    for env in (*program.shared[1:], *program.environments):
        image: dict[str, Any] = {
            "key": env.var, "kind": "environment", "content_hash": env.content_hash,
            "dockerfile": f"docker/{env.folder}/Dockerfile", "requirements": f"docker/{env.folder}/requirements.txt",
        }
        if env.on_runtime:
            image["base"] = runtime.var
        elif env.base_image:
            image["base_image"] = env.base_image
        found.append(image)
    # A batch endpoint's image is built as a job's is: its environment's plus the data it scores.
    baked: list[JobModel | BatchModel] = [*program.jobs, *program.batches]
    for job in baked:
        found.append({"key": job.var, "kind": "job", "content_hash": job.content_hash,
                      "dockerfile": f"docker/{job.folder}/Dockerfile", "files": job.files, "base": job.environment})
    # A deployment's scoring script too: its environment's image plus the script's folder and schema.
    for endpoint in program.endpoints:
        for deployment in endpoint.deployments:
            if deployment.scoring is not None:
                scoring = deployment.scoring
                found.append({"key": scoring.var, "kind": "job", "content_hash": scoring.content_hash,
                              "dockerfile": f"docker/{scoring.folder}/Dockerfile", "files": scoring.files,
                              "base": deployment.environment})
    return found


def endpoint_secrets(program: ProgramModel, ctx: Context) -> list[dict[str, Any]]:
    """The Secrets each online endpoint's objects read, as `EndpointSecretsArgs` keyword arguments."""
    found = []
    where = endpoint_contexts(program.endpoints, program.computes, ctx)
    for endpoint in program.endpoints:
        place = where[endpoint.name]
        args = {"endpoint": endpoint.name, "namespace": place.namespace, "token_secret": token_secret(endpoint),
                "gateway": gateway_name(endpoint)}
        if endpoint.auth == "key":
            args["keys_secret"] = keys_secret(endpoint)
        if place.kube_context:
            args["kube_context"] = place.kube_context
        found.append(args)
    return found


def instance_secrets(program: ProgramModel, ctx: Context) -> list[dict[str, Any]]:
    """The password Secret each compute instance's objects read, as `InstanceSecretArgs` keyword arguments."""
    return [{"instance": i.name, "namespace": ctx.namespace, "secret": password_secret(i), "key": PASSWORD_KEY}
            for i in program.instances]


def program_files(program: ProgramModel, ctx: Context, objects: list[Object], common: dict[str, str],
                  settings: dict[str, str] | None = None) -> dict[str, str]:
    """Every file of the Kubernetes project: `common` (the project file and the images' Dockerfiles, as every
    target has them), the stack settings (`settings`: the stack's Pulumi config, None for the commented
    defaults), the objects and `__main__.py`."""
    files = {
        **common,
        f"Pulumi.{program.stack}.yaml": render("kubernetes.Pulumi.stack.yaml.j2", program=program,
                                               settings=settings or None),
        OBJECTS_FILE: objects_yaml(objects),
        "__main__.py": render("kubernetes.__main__.py.j2", program=program, objects=OBJECTS_FILE,
                              images=images(program), endpoints=endpoint_secrets(program, ctx),
                              instances=instance_secrets(program, ctx)),
    }
    return dict(sorted(files.items()))
