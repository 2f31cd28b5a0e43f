"""An AutoML job in the program model: one job whose container runs the local engine's AutoML runner on an image
with mlspec's `automl` extra, its table baked into the job's image."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from mlspec.graph import Node
from mlspec.resolve.automl import remaining
from mlspec.runtime.automl.contract import search_deadline, search_settings, settings_text
from mlspec.spec.automl import AutoMLJob

if TYPE_CHECKING:
    from mlspec.backends.pulumi.model import JobModel, _Builder

# The image AutoML jobs run in (they name no environment; locally they use mlspec's own interpreter): mlspec's
# `automl` extra as pyproject.toml pins it, the scikit-learn its pipelines are, and pyarrow for Parquet tables
# (MLflow's, which its client alone lacks). Models an AutoML job registers are served on it too.
AUTOML_REQUIREMENTS = ("flaml==2.7.0", "lightgbm==4.7.0", "xgboost-cpu==3.2.0", "scikit-learn>=1.4", "pyarrow>=4")
AUTOML_SYSTEM_PACKAGES = ("libgomp1",)  # LightGBM's wheel loads the system's OpenMP runtime; slim images lack it


def automl_environment(builder: _Builder) -> str | None:
    """The var of the image AutoML jobs run in, made with the first of them; None: the spec has none."""
    from mlspec.backends.pulumi.model import EnvironmentModel, identifier, runtime_hash

    if not any(isinstance(n.resource, AutoMLJob) for n in builder.nodes("Job")):
        return None
    if "automl" not in builder.env_vars:
        model = EnvironmentModel(identifier("automl", "runtime", builder.taken), "mlspec-automl",
                                 runtime_hash(("automl", *AUTOML_REQUIREMENTS, *AUTOML_SYSTEM_PACKAGES)),
                                 "automl", AUTOML_REQUIREMENTS, None, {}, on_runtime=True,
                                 system_packages=AUTOML_SYSTEM_PACKAGES)
        builder.env_vars["automl"] = model.var
        builder.environments.append(model)
    return builder.env_vars["automl"]


def automl_model(builder: _Builder, node: Node) -> JobModel:
    """An AutoML job: its table baked into its image as a command job's data is, its settings for the runner."""
    from mlspec.backends.pulumi.model import CompileError, JobModel, identifier

    job = node.resource
    assert isinstance(job, AutoMLJob)
    data_id = builder.spec.target(node.id, "training_data")
    if data_id is None or data_id not in builder.graph.nodes:
        raise CompileError(f"job '{job.name}': training_data {job.training_data} is not a declared Data")
    data = builder.graph.nodes[data_id]
    table = Path(data.resource.path).as_posix()  # type: ignore[attr-defined]
    settings = search_settings(job, remaining(job), node.hash)
    environment = automl_environment(builder)
    assert environment is not None
    compute = builder.compute(node.id, "compute")
    var = identifier("job", job.name, builder.taken)
    registers = tuple(sorted(o.register_as for o in job.outputs.values() if o.register_as))
    for model_name in registers:
        builder.job_of_model[model_name] = var
    return JobModel(
        var=var, name=job.name, content_hash=node.hash, folder=f"job-{job.name}", environment=environment,
        command="", experiment=job.experiment_name or builder.spec.workspace.name, code=None,
        files=dict(sorted(data.files.items())), inputs={}, outputs=builder.outputs(job), env={},
        timeout=search_deadline(settings["timeout_s"]), retries=0, size=builder.size(node.id, "compute"),
        registers=registers, compute=compute.name if compute else None,
        automl=settings_text({**settings, "data": table}))
