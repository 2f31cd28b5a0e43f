"""A sweep as a `batch/v1` Job named by its content hash: one pod runs the local engine's sweep controller
(`python -m mlspec.runtime.sweep`), its trials processes in it, its Optuna study on a PersistentVolumeClaim.

The Job is named as a command job's is (an unchanged sweep is the same Job and is not run again). A pod that is
evicted, preempted or killed is replaced by the Job controller, and the new pod resumes the study on the claim: the
finished trials are kept and those that were running are asked again. The controller's own verdicts (no trial
succeeded, a bad contract) fail the Job at once instead of running the sweep again.
"""

from __future__ import annotations

from mlspec.backends.pulumi.kubernetes.context import Context
from mlspec.backends.pulumi.kubernetes.jobs import job_name, node_contract
from mlspec.backends.pulumi.kubernetes.meta import Object, dns_name
from mlspec.backends.pulumi.kubernetes.runners import Runner, claim, runner_objects
from mlspec.backends.pulumi.model import ComputeModel, EnvironmentModel, JobModel
from mlspec.runtime.sweep.contract import SweepRun, sweep_of, sweep_seed

STUDY_MOUNT = "/var/lib/mlspec-sweep"  # the sweep's claim: <hash[:16]>/optuna.db and trial-N/ per content hash
RESTARTS = 3  # pods replaced after a disruption, each resuming the study
GRACE_S = 300  # beyond limits.timeout: the controller stops the trials and registers the best one's model


def claim_name(job: JobModel) -> str:
    return dns_name(job.name, "sweep")


def sweep_run(job: JobModel, env: EnvironmentModel, ctx: Context) -> SweepRun:
    """The controller's contract with every path inside the pod; its trials' template is the command job's node
    contract (each trial has its own limit, `limits.trial_timeout`)."""
    assert job.sweep is not None
    template = node_contract(job, env, ctx, 0, job_name(job)).model_copy(update={"timeout": None})
    return SweepRun(sweep=sweep_of(job.name, job.command, job.sweep), template=template,
                    folder=f"{STUDY_MOUNT}/{job.content_hash[:16]}", seed=sweep_seed(job.content_hash))


def sweep_objects(job: JobModel, env: EnvironmentModel, compute: ComputeModel | None, ctx: Context,
                  depends_on: list[str], wave: int, storage_bytes: int) -> list[Object]:
    """The sweep's claim (the sweep's, not the run's: a changed sweep's Job uses it too, in a folder of its own
    hash), the ConfigMap of its contract and its Job."""
    runner = Runner(name="sweep", module="mlspec.runtime.sweep", contract_key="sweeprun.json",
                    contract=sweep_run(job, env, ctx).model_dump_json(indent=2) + "\n", restarts=RESTARTS,
                    deadline_s=int(job.timeout) + GRACE_S if job.timeout is not None else None,
                    claim=claim_name(job), mount=STUDY_MOUNT, volume="study")
    return [claim(job, ctx, claim_name(job), storage_bytes),
            *runner_objects(runner, job, env, compute, ctx, depends_on, wave, extra_env=job.env)]
