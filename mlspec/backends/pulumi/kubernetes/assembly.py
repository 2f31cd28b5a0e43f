"""`build_objects`: every Kubernetes object of a program model, in a fixed order (the order they apply in)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from mlspec.backends.pulumi.kubernetes.attached import attached_contexts, context_of_object, endpoint_context, mark
from mlspec.backends.pulumi.kubernetes.automl import automl_objects
from mlspec.backends.pulumi.kubernetes.batch import batch_objects
from mlspec.backends.pulumi.kubernetes.context import Context
from mlspec.backends.pulumi.kubernetes.endpoint import endpoint_objects
from mlspec.backends.pulumi.kubernetes.instances import instance_objects
from mlspec.backends.pulumi.kubernetes.jobs import job_name, job_objects
from mlspec.backends.pulumi.kubernetes.meta import Object
from mlspec.backends.pulumi.kubernetes.pipelines import pipeline_objects
from mlspec.backends.pulumi.kubernetes.quota import cluster_quota, workspace_quota
from mlspec.backends.pulumi.kubernetes.scheduling import priority_class_object
from mlspec.backends.pulumi.kubernetes.sweeps import sweep_objects
from mlspec.backends.pulumi.kubernetes.tracking import tracking_objects
from mlspec.backends.pulumi.kubernetes.workspace import deny_ingress, namespace
from mlspec.backends.pulumi.model import CompileError, JobModel, ProgramModel


@dataclass(frozen=True)
class Objects:
    """The objects, and what the spec declares that they leave out, with why."""

    objects: list[Object]
    skipped: list[str]


def context_of(program: ProgramModel, node_pools: dict[str, dict[str, str]] | None = None,
               namespace: str | None = None, expose: str | None = None) -> Context:
    """The program's context: its namespace (`namespace`, else the workspace's name), node pools and how its
    endpoints' gateways are exposed."""
    return Context.of(program.project, program.tracking_uri, namespace=namespace, node_pools=node_pools,
                      expose=expose)


def build_objects(program: ProgramModel, ctx: Context) -> Objects:
    """Namespace, cluster scheduling, tracking, jobs, instances, batch and online endpoints, then the quota that
    sums them; the objects of resources on an attached Kubernetes compute are built for its cluster (marked with
    its context), after that cluster's own namespace, ingress policy and quota."""
    computes = {c.name: c for c in program.computes}
    unknown = sorted(set(ctx.node_pools) - set(computes))
    if unknown:
        raise CompileError(f"node pools are given for {', '.join(unknown)}, which the spec does not declare as "
                           f"computes ({', '.join(computes) or 'none'})")
    clusters = [c for c in program.computes if c.type == "cluster"]
    objects: list[Object] = [namespace(ctx, program.tags, program.description), deny_ingress(ctx, program.tags)]
    objects += [priority_class_object(ctx, c) for c in clusters]
    objects += [cluster_quota(ctx, c) for c in clusters]
    if program.tracking_uri is None:
        objects += tracking_objects(ctx, program.storage_size, program.tags)
    environments = {e.var: e for e in (*program.shared, *program.environments)}
    attached = attached_contexts(ctx, program.computes)
    reads = _reads(program.jobs)
    waves = _waves(program.jobs, reads)
    names = {j.var: job_name(j) for j in program.jobs}  # in program order
    for job in program.jobs:
        compute = computes.get(job.compute) if job.compute else None
        if compute is not None and compute.type == "cluster" and job.nodes > compute.max_nodes:
            raise CompileError(f"job '{job.name}' runs on {job.nodes} nodes, more than cluster '{compute.name}' "
                               f"has (max_nodes: {compute.max_nodes}); it would never start")
        where = attached.get(job.compute or "", ctx)
        ahead = [name for var, name in names.items() if var in reads[job.var]] if reads[job.var] else []
        if job.pipeline is not None:
            objects += mark(pipeline_objects(job, environments[job.environment], compute, where, ahead,
                                             waves[job.var], program.storage_size), where)
            continue
        if job.automl is not None:
            objects += mark(automl_objects(job, environments[job.environment], compute, where, ahead,
                                           waves[job.var]), where)
            continue
        if job.sweep is not None:
            objects += mark(sweep_objects(job, environments[job.environment], compute, where, ahead,
                                          waves[job.var], program.storage_size), where)
            continue
        objects += mark(job_objects(job, environments[job.environment], compute, where, ahead, waves[job.var]),
                        where)
    for instance in program.instances:
        objects += instance_objects(instance, environments[instance.environment], computes.get(instance.name), ctx,
                                    program.storage_size)
    jobs = {j.var: j for j in program.jobs}
    for batch in program.batches:
        registering = jobs.get(batch.job) if batch.job else None
        where = attached.get(batch.compute or "", ctx)
        objects += mark(batch_objects(batch, environments[batch.environment],
                                      computes.get(batch.compute) if batch.compute else None, where, registering,
                                      waves[registering.var] + 1 if registering is not None else 0,
                                      program.storage_size), where)
    # What only the docker target builds: refused when validating for kubernetes, and here for a program built
    # without that check.
    skipped = [f"model/{m.name}: models registered from a path" for m in program.path_models]
    skipped += [f"environment/{e.name}: your own Dockerfile (build)" for e in program.environments if e.build]
    for endpoint in program.endpoints:
        where = endpoint_context(endpoint, ctx, attached)
        objects += mark(endpoint_objects(endpoint, where, environments=tuple(environments.values()),
                                         jobs=program.jobs, computes=program.computes), where)
    head = 2 + 2 * len(clusters)
    own = [obj for obj in objects if context_of_object(obj) is None]
    objects.insert(head, workspace_quota(ctx, own, clusters, program.tags))
    for where in sorted({_place(c): c for c in attached.values()}.values(), key=_place, reverse=True):
        theirs = [obj for obj in objects if context_of_object(obj) == where.kube_context
                  and obj["metadata"].get("namespace") == where.namespace]
        start = [namespace(where, program.tags, program.description), deny_ingress(where, program.tags)]
        objects[head + 1:head + 1] = mark([*start, workspace_quota(where, [*start, *theirs], [], program.tags)],
                                          where)
    return Objects(objects, skipped)


def _place(ctx: Context) -> tuple[str, str]:
    """Where an attached context's objects live: its cluster's context and namespace."""
    return ctx.kube_context or "", ctx.namespace


def _model_names(job: JobModel) -> set[str]:
    """The registered models a job reads (inputs `models:/NAME/...` or `models:/NAME@alias`)."""
    return {re.split(r"[/@]", value[len("models:/"):], maxsplit=1)[0] for value in job.inputs.values()
            if isinstance(value, str) and value.startswith("models:/")}


def _reads(jobs: tuple[JobModel, ...]) -> dict[str, set[str]]:
    """For each job (by var), the vars of the other jobs in the program that register a model it reads: found once
    from an index of who registers what (asked per pair of jobs, 300 jobs took half a minute)."""
    registering: dict[str, set[str]] = {}
    for job in jobs:
        for model in job.registers:
            registering.setdefault(model, set()).add(job.var)
    return {job.var: {var for model in _model_names(job) for var in registering.get(model, ()) if var != job.var}
            for job in jobs}


def _waves(jobs: tuple[JobModel, ...], reads: dict[str, set[str]]) -> dict[str, int]:
    """Each job's depth in the jobs' dependencies (`reads`): 0 for a job that reads no model another job registers."""
    waves: dict[str, int] = {}

    def depth(job: JobModel, seen: frozenset[str]) -> int:
        if job.var not in waves:
            ahead = [j for j in jobs if j.var in reads[job.var] and j.var not in seen]
            waves[job.var] = 1 + max((depth(j, seen | {job.var}) for j in ahead), default=-1)
        return waves[job.var]

    for job in jobs:
        depth(job, frozenset())
    return waves
