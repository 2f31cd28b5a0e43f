"""What this machine can give a spec on the local target: checked at plan time, at the line that asks for more."""

from __future__ import annotations

import importlib.util
import sys
from typing import Any

from mlspec.diagnostics import Diagnostic
from mlspec.resolve import ResolvedSpec
from mlspec.runtime.limits import local_gpus
from mlspec.spec import AutoMLJob, Environment, Job
from mlspec.spec.compute import ComputeBase, Resources

LIMITED = ("cpus", "memory", "gpus")


def node_limits(resources: Resources) -> dict[str, Any]:
    """The limits a compute sets for each of its nodes: only the fields the spec writes out. Their defaults
    (1 CPU, 2Gi) size docker and kubernetes nodes; enforcing them on a laptop would break jobs that never asked."""
    limits = {name: getattr(resources, name) for name in LIMITED if name in resources.model_fields_set}
    if not limits.get("gpus", 1):
        del limits["gpus"]  # gpus: 0 hides nothing: CUDA_VISIBLE_DEVICES stays as it was
    return limits


def _local(compute: ComputeBase) -> bool:
    return compute.target in (None, "local")


def check_local_capacity(spec: ResolvedSpec, gpus: list[str] | None = None,
                         python: tuple[int, int] | None = None) -> list[Diagnostic]:
    """Errors for what the local target cannot deliver: more GPUs than this machine has, and a Python version
    other than the interpreter every local environment is layered on. `gpus` and `python` default to this
    machine's."""
    available = local_gpus() if gpus is None else gpus
    here = sys.version_info[:2] if python is None else python
    found: list[Diagnostic] = []
    for rid, item in spec.resources.items():
        resource = item.resource
        if isinstance(resource, ComputeBase) and _local(resource) and rid not in spec.implicit:
            asked = node_limits(resource.resources).get("gpus", 0)
            if asked > len(available):
                found.append(Diagnostic(
                    f"compute '{resource.name}' asks for {asked} GPU(s) per node; this machine has "
                    f"{len(available)}", item.doc.span(("resources", "gpus")), "resources.gpus",
                    "lower gpus, or run it on the docker or kubernetes target"))
        elif isinstance(resource, Job):
            found += _job_gpus(spec, rid, resource, available)
        elif isinstance(resource, AutoMLJob):
            found += _automl_packages(item.doc, resource)
        elif isinstance(resource, Environment) and "python" in resource.model_fields_set:
            version = f"{here[0]}.{here[1]}"
            if resource.python != version:
                found.append(Diagnostic(
                    f"environment '{resource.name}' asks for Python {resource.python}; on the local target every "
                    f"environment is a virtualenv on mlspec's own interpreter, Python {version}",
                    item.doc.span(("python",)), "python",
                    f"remove python: (or write '{version}'), run mlspec under Python {resource.python}, "
                    "or use the docker or kubernetes target"))
    return found


def _job_gpus(spec: ResolvedSpec, rid: str, job: Job, available: list[str]) -> list[Diagnostic]:
    """Each node of a local multi-node job gets GPUs of its own: all of them together must fit."""
    compute_id = spec.target(rid, "compute")
    compute = spec.get(compute_id) if compute_id else None
    if not isinstance(compute, ComputeBase) or not _local(compute):
        return []
    per_node = node_limits(compute.resources).get("gpus", 0)
    nodes = job.resources.instance_count
    if nodes < 2 or per_node * nodes <= len(available) or per_node > len(available):
        return []  # one node: the compute's own line says it; several nodes that fit: nothing to say
    return [Diagnostic(
        f"job '{job.name}' runs {nodes} nodes of {per_node} GPU(s) each on compute '{compute.name}': "
        f"{nodes * per_node} GPU(s), this machine has {len(available)}",
        spec.resources[rid].doc.span(("resources", "instance_count")), "resources.instance_count",
        "lower instance_count or the compute's gpus, or run it on the docker or kubernetes target")]


AUTOML_PACKAGES = ("flaml", "lightgbm", "xgboost")  # FLAML's AutoML imports xgboost (mlspec[automl]: xgboost-cpu)


def _automl_packages(doc: Any, job: AutoMLJob) -> list[Diagnostic]:
    """An AutoML job's searches run on mlspec's own interpreter: FLAML must be installed beside mlspec."""
    missing = [name for name in AUTOML_PACKAGES if importlib.util.find_spec(name) is None]
    if not missing:
        return []
    return [Diagnostic(f"job '{job.name}' needs {', '.join(missing)} where mlspec runs, and "
                       f"{'it is' if len(missing) == 1 else 'they are'} not installed", doc.span(("type",)), "type",
                       "pip install 'mlspec[automl]'")]
