"""`compile_project`: write the Pulumi project of a graph (program, stack settings, Dockerfiles) to a folder."""

from __future__ import annotations

import shutil
from pathlib import Path

from mlspec.backends.pulumi.model import CompileError, EnvironmentModel, ProgramModel, ScoringModel, build_program
from mlspec.backends.pulumi.render import render
from mlspec.graph import Graph

TARGETS = ("docker", "kubernetes")
USER = "mlspec"  # the non-root user of every image (mlspec.pulumi.containers.USER)
GENERATED = ("docker", "kubernetes")  # folders a compile writes whole: what it no longer writes must go
JOB_FILES = "/opt/mlspec-job/files"  # where a job's code and data live in its image (mlspec.pulumi.job.FILES)


def project_files(program: ProgramModel, settings: dict[str, str] | None = None) -> dict[str, str]:
    """Every file of the Docker project, relative to its folder, with its text; `settings`: the stack's Pulumi
    config (`mlspec:*` keys without the namespace), None for the defaults."""
    files = {
        **common_files(program, "docker"),
        f"Pulumi.{program.stack}.yaml": render("Pulumi.stack.yaml.j2", program=program, settings=settings or None),
        "__main__.py": render("__main__.py.j2", program=program, imports=_imports(program)),
    }
    return dict(sorted(files.items()))


def common_files(program: ProgramModel, target: str) -> dict[str, str]:
    """What every target's project holds: the project file, the program's requirements, and each image's
    Dockerfile and requirements (the images are the same on every target)."""
    return {
        "Pulumi.yaml": render("Pulumi.yaml.j2", program=program, target=target),
        "requirements.txt": render("requirements.project.txt.j2", program=program, target=target),
        ".gitignore": render("gitignore.j2", program=program),
        **dockerfiles(program),
    }


def dockerfiles(program: ProgramModel) -> dict[str, str]:
    """The Dockerfile (and requirements) of every image: the runtime, each environment, each job, each model
    registered from a path and each batch endpoint."""
    files: dict[str, str] = {}
    environments: list[EnvironmentModel] = [*program.shared, *program.environments]
    for env in environments:
        template = "environment.Dockerfile.j2" if env.on_runtime else "runtime.Dockerfile.j2"
        files[f"docker/{env.folder}/Dockerfile"] = render(template, env=env, user=USER)
        files[f"docker/{env.folder}/requirements.txt"] = render("requirements.txt.j2", env=env)
    for job in program.jobs:
        files[f"docker/{job.folder}/Dockerfile"] = render("job.Dockerfile.j2", job=job, user=USER,
                                                          files_dir=JOB_FILES)
    for model in program.path_models:  # the files a model is registered from, on its environment's image
        files[f"docker/{model.folder}/Dockerfile"] = render("job.Dockerfile.j2", job=model, user=USER,
                                                            files_dir=JOB_FILES, kind="Model")
    for scoring in scorings(program):  # a deployment's scoring script, on its environment's image
        files[f"docker/{scoring.folder}/Dockerfile"] = render("job.Dockerfile.j2", job=scoring, user=USER,
                                                              files_dir=JOB_FILES, kind="Scoring script of")
    for batch in program.batches:  # the data a batch endpoint scores, on its environment's image
        files[f"docker/{batch.folder}/Dockerfile"] = render("job.Dockerfile.j2", job=batch, user=USER,
                                                            files_dir=JOB_FILES, kind="Batch endpoint")
    return files


def scorings(program: ProgramModel) -> list[ScoringModel]:
    """Every deployment's scoring script, in program order."""
    return [d.scoring for e in program.endpoints for d in e.deployments if d.scoring is not None]


def compile_project(graph: Graph, out_dir: Path | str, target: str = "docker", stack: str = "dev",
                    settings: dict[str, str] | None = None, *, namespace: str | None = None,
                    node_pools: dict[str, dict[str, str]] | None = None, expose: str | None = None) -> list[Path]:
    """Write the project for `target` into `out_dir`, replacing what an earlier compile wrote there; its stack is
    `stack`, with `settings` as its Pulumi config (a settings file per stack: other stacks' files are kept).
    Kubernetes only: the `namespace` of the objects (default: the workspace's name) and the node labels each
    compute's pods are scheduled onto (`node_pools`), and how endpoints' gateways are exposed (`expose`).

    Returns the files written. Raises CompileError when the spec uses something the target cannot express.
    """
    if target not in TARGETS:
        raise CompileError(f"cannot compile for target '{target}'; available: {', '.join(TARGETS)}")
    out = Path(out_dir)
    program = build_program(graph, out, stack)
    if target == "kubernetes":
        files = kubernetes_project_files(program, settings, namespace, node_pools, expose)
    else:
        files = project_files(program, settings)
    return write_files(out, files, GENERATED)


def write_files(out: Path, files: dict[str, str], generated: tuple[str, ...]) -> list[Path]:
    """Write `files` (relative path -> text) under `out`, first removing the `generated` folders whole, so the
    Dockerfiles and objects of resources that no longer exist go with them; the paths written."""
    for folder in generated:
        if (out / folder).is_dir():
            shutil.rmtree(out / folder)
    written = []
    for rel, text in files.items():
        path = out / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


def kubernetes_project_files(program: ProgramModel, settings: dict[str, str] | None = None,
                             namespace: str | None = None,
                             node_pools: dict[str, dict[str, str]] | None = None,
                             expose: str | None = None) -> dict[str, str]:
    """Every file of the Kubernetes project, relative to its folder, with its text."""
    from mlspec.backends.pulumi.kubernetes.assembly import build_objects, context_of
    from mlspec.backends.pulumi.kubernetes.program import program_files

    ctx = context_of(program, node_pools, namespace, expose)
    built = build_objects(program, ctx)
    if built.skipped:
        raise CompileError("not compiled for the kubernetes target yet: " + "; ".join(built.skipped))
    return program_files(program, ctx, built.objects, common_files(program, "kubernetes"), settings)


def _imports(program: ProgramModel) -> list[str]:
    """The names of mlspec.pulumi the program uses, sorted."""
    names = {"Environment", "EnvironmentArgs", "Workspace", "WorkspaceArgs"}
    if program.jobs or program.endpoints or program.instances or program.batches:
        names.add("Size")
    if program.jobs:
        names.update({"TrainingJob", "TrainingJobArgs"})
    if program.path_models:
        names.update({"PathModel", "PathModelArgs"})
    if any(env.build for env in program.environments):
        names.add("BuildArgs")
    if program.endpoints:
        names.update({"OnlineEndpoint", "OnlineEndpointArgs", "DeploymentArgs"})
    if scorings(program):
        names.add("ScoringArgs")
    if program.batches:
        names.update({"BatchEndpoint", "BatchEndpointArgs"})
    if program.instances:
        names.update({"ComputeInstance", "ComputeInstanceArgs"})
    if program.labels:
        names.update({"MlflowLabels", "MlflowLabelsArgs"})
    return sorted(names)
