"""Sweeps at resolve time: a sweep runs no more trials at once than its compute has nodes."""

from __future__ import annotations

from mlspec.diagnostics import Diagnostic, Diagnostics
from mlspec.resolve.spec import ResolvedSpec
from mlspec.spec.compute import ClusterCompute
from mlspec.spec.sweep import SweepJob


def check_sweep_concurrency(spec: ResolvedSpec, diagnostics: Diagnostics) -> None:
    """`limits.max_concurrent_trials` at most the compute's max_nodes (any other compute runs one at a time)."""
    for item in spec.resources.values():
        sweep = item.resource
        if not isinstance(sweep, SweepJob):
            continue
        compute_id = spec.target(item.id, "compute")
        if compute_id is None or compute_id not in spec.resources:
            continue  # an undeclared compute is reported where it is named
        compute = spec.get(compute_id)
        nodes = compute.max_nodes if isinstance(compute, ClusterCompute) else 1
        wanted = sweep.limits.max_concurrent_trials
        if wanted > nodes:
            what = f"max_nodes is {nodes}" if isinstance(compute, ClusterCompute) else \
                f"a {getattr(compute, 'type', 'local')} compute runs one trial at a time"
            fix = (f"lower it to {nodes}, or raise compute '{compute.name}''s max_nodes" if isinstance(
                compute, ClusterCompute) else "run the sweep on a cluster compute with max_nodes")
            path = "limits.max_concurrent_trials"
            diagnostics.add(Diagnostic(
                f"job '{sweep.name}': {path} is {wanted}, but compute '{compute.name}' can run only {nodes} "
                f"at once ({what})", item.doc.span(("limits", "max_concurrent_trials")), path, fix))
