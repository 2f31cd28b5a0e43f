"""The scoring server: serves one registered model, verified by its digest before it is loaded.

Started as `python -m mlspec.runtime.serving` by the local engine's supervisor or in a container; it imports
only the standard library and third-party packages (MLflow lazily, after the port is bound).
"""
