"""mlspec: declare ML workspaces, compute, jobs, models and endpoints as code."""

__version__ = "0.1.0"
