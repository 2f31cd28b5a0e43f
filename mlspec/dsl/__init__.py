"""The Python DSL: the same kinds as YAML, declared by calls, validated the same way.

    from mlspec.dsl import Workspace, Compute, Job

    Workspace(name="iris-demo")
    Compute(name="cpu", type="cluster", max_nodes=2)
    Job(name="train", code="src/", command="python train.py", compute="cpu")

`mlspec validate mlspec.py` runs the file and validates what it declared; errors point at the
keyword argument that caused them.
"""

from __future__ import annotations

from typing import Any

from mlspec.load.python_source import declare
from mlspec.load.yaml_source import Document


def Workspace(**fields: Any) -> Document:  # noqa: N802 - named like the kind it declares
    """Declare the workspace (see `mlspec schema` for its fields)."""
    return declare("Workspace", fields)


def Compute(**fields: Any) -> Document:  # noqa: N802
    """Declare a compute target: type local, cluster, instance, inference-cluster or attached."""
    return declare("Compute", fields)


def Environment(**fields: Any) -> Document:  # noqa: N802
    """Declare an environment: base image, Python version, requirements."""
    return declare("Environment", fields)


def Data(**fields: Any) -> Document:  # noqa: N802
    """Declare a data asset: a file or folder, versioned by content."""
    return declare("Data", fields)


def Job(**fields: Any) -> Document:  # noqa: N802
    """Declare a training job."""
    return declare("Job", fields)


def Model(**fields: Any) -> Document:  # noqa: N802
    """Declare a registered model, from a job output or a path."""
    return declare("Model", fields)


def Endpoint(**fields: Any) -> Document:  # noqa: N802
    """Declare an online or batch endpoint."""
    return declare("Endpoint", fields)


__all__ = ["Compute", "Data", "Endpoint", "Environment", "Job", "Model", "Workspace"]
