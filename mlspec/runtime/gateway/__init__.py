"""The endpoint gateway: key auth, weighted traffic split, pinned and mirrored traffic, replica failover.

Started as `python -m mlspec.runtime.gateway` by the local engine's supervisor or in a container; it imports only
the standard library and third-party packages, and never MLflow.
"""
