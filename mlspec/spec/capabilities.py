"""Which spec fields each target honours: the one table that validate, plan, up, compile and `mlspec targets` read.

Every field of every spec model has a row here (a test walks the JSON Schema to keep it so). A row says, for each
target, whether the target honours the field, approximates it (and how), has no use for it (a setting of another
target), ignores it harmlessly (a warning), or refuses it (an error at the field's line naming the targets that
honour it). Rows are looked up along a model's class hierarchy, so the fields every resource shares are written once
on `Resource`; the empty field name is the row of a whole kind or type.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any, Literal, get_args, get_origin

from pydantic import BaseModel

Target = Literal["local", "docker", "kubernetes"]
TARGETS: tuple[Target, ...] = ("local", "docker", "kubernetes")

# yes: honoured. approx: honoured in a weaker form, the note says how. n/a: a setting of other targets, unused here
# by design. ignored: accepted with a warning, because ignoring it changes nothing that matters on this target.
# no: an error where a spec sets it.
Level = Literal["yes", "approx", "n/a", "ignored", "no"]
LEVELS: tuple[Level, ...] = ("yes", "approx", "n/a", "ignored", "no")


@dataclass(frozen=True, slots=True)
class Support:
    level: Level
    note: str = ""
    # Values refused (an error at the field's line) though the field is otherwise honoured; the note says why.
    refused: tuple[Any, ...] = ()


YES = Support("yes")


def approx(note: str) -> Support:
    return Support("approx", note)


def na(note: str) -> Support:
    return Support("n/a", note)


def ignored(note: str) -> Support:
    return Support("ignored", note)


def no(note: str) -> Support:
    return Support("no", note)


def refusing(values: tuple[Any, ...], note: str, level: Level = "yes") -> Support:
    """Honoured (or approximated), except for `values`, which are errors: the note says why."""
    return Support(level, note, values)


KUBERNETES_LATER = no("not built for the kubernetes target yet")  # a row's kubernetes column unless it says more


@dataclass(frozen=True, slots=True)
class Row:
    local: Support = YES
    docker: Support = YES
    kubernetes: Support = KUBERNETES_LATER

    def on(self, target: Target) -> Support:
        support: Support = getattr(self, target)
        return support


ALL = Row()  # local and docker; kubernetes later
EVERYWHERE = Row(kubernetes=YES)
_NO_K8S_DESCRIPTION = "no Kubernetes object carries a description"
_K8S_TAGS = "`mlspec.io/tag.KEY` labels of its objects (a value must be a valid label value)"
_NO_K8S_MLFLOW_LABELS = "tags and descriptions are not written to MLflow on the kubernetes target yet"
_POOL_AUTOSCALER = "the node pool's own autoscaler decides (outside the manifests)"
_ALIASES = ("set when the job registers; an alias change re-runs it, and identical model files reuse their "
            "version")
_NO_AUTOSCALER = ("Docker has no autoscaler, and one run by mlspec would need the Docker API in a container, which is "
                  "root on the host: give instance_count, or use the kubernetes target (a HorizontalPodAutoscaler)")
_DOCKER_LIVENESS = ("the replica's container restarts itself: a supervisor in it probes the live route and exits, "
                    "and Docker's restart policy starts it again")
_STARTUP = ("a new replica is probed from its start, every 0.1 s; the deadline for it to become ready is "
            "initial_delay + period × failure_threshold")
_ONE_HOST = "every node is this one host"
_PYTHON_IMAGE = ("the image starts from mlspec:baseImage for that version ({python} in its name replaced, or the same "
                 "variant of an official python:X.Y image); any other base image must have that python3, or the "
                 "build stops saying so")
_UNLABELLED = Row(docker=ignored("nothing on the Docker host stands for it alone to carry labels"),
                  kubernetes=ignored("no Kubernetes object stands for it alone to carry labels"))
_NO_AUTOSCALER_ROW = Row(docker=no(_NO_AUTOSCALER), kubernetes=YES)

_AUTOML_DOCKER = ("a run-to-completion container named by the job's content hash runs the local engine's AutoML "
                  "runner on an image with mlspec's automl extra (FLAML, LightGBM, XGBoost), the table baked into "
                  "it as a command job's data is; its searches are processes in it, with the compute's size once "
                  "per search run at once; the best pipeline is registered, and the models it registers are served "
                  "on that image")
_AUTOML_K8S = ("a batch/v1 Job named by the job's content hash runs the local engine's AutoML runner in one pod of "
               "the compute's size, on an image with mlspec's automl extra and the table baked into it; its "
               "searches are processes in the pod; a pod that is evicted is replaced and searches again")
_TRAIN_TIME_LIMIT = ("FLAML's train_time_limit: each learner stops adding trees or iterations when it is spent, "
                     "rather than being killed")
_SWEEP_DOCKER = ("a run-to-completion container named by the sweep's content hash runs the local engine's sweep "
                 "controller: the trials are processes in it, with the compute's size once per trial run at once; "
                 "the study is on the workspace volume (on an attached host, a volume of the sweep's there), so "
                 "the container run again resumes it")
_SWEEP_K8S = ("a batch/v1 Job named by the sweep's content hash runs the local engine's sweep controller in one pod "
              "of the compute's size, the trials processes in it; the study is on a PersistentVolumeClaim, and a pod "
              "that is evicted or killed is replaced and resumes it")
_SWEEP_TRIALS = Row(docker=approx("trials are processes in the sweep's container, which has the compute's size "
                                  "once per trial run at once and takes as many of a cluster's max_nodes lanes"),
                    kubernetes=approx("trials are processes in the sweep's pod, sharing the compute's size"))
_SWEEP_SCHEDULE = ("a scheduled sweep runs on the local target only for now (the workspace supervisor fires it); "
                   "on kubernetes, run the sweep at apply and leave out its schedule")
_PIPELINE_DOCKER = ("a run-to-completion container named by the pipeline's content hash runs the local engine's "
                    "pipeline runner: the steps are processes in it, each an MLflow child run, with the compute's size "
                    "once per step run at once; step results and their reuse cache are on the workspace volume (on an "
                    "attached host, a volume of the pipeline's there), so a changed pipeline re-runs only its changed "
                    "steps and those after them")
_PIPELINE_K8S = ("a batch/v1 Job named by the pipeline's content hash runs the local engine's pipeline runner in one "
                 "pod of the compute's size, the steps processes in it, each an MLflow child run; step results and "
                 "their reuse cache are on a PersistentVolumeClaim of the pipeline's, so a changed pipeline re-runs "
                 "only its changed steps and those after them")
_ONE_CONTAINER = ("the steps are processes of the pipeline's one container, so they share one {what}: a step whose "
                  "{noun} is not the first step's is refused at its line")
_STEP_ENVIRONMENT = Row(docker=approx(_ONE_CONTAINER.format(what="environment (its image)", noun="environment")),
                        kubernetes=approx(_ONE_CONTAINER.format(what="environment (its image)", noun="environment")))
_STEP_COMPUTE = Row(docker=approx(_ONE_CONTAINER.format(what="compute (its size)", noun="compute")),
                    kubernetes=approx(_ONE_CONTAINER.format(what="compute (its size)", noun="compute")))
_BAKED_SCHEDULE = ("a scheduled {kind} runs on the local target only for now (the workspace supervisor fires it on a "
                   "fresh copy of its Data's source); compiled, its rows are baked into the image, so a CronJob would "
                   "{verb} the same rows every time: schedule it on the local target, or leave out its schedule")
_DOCKER_NO_SCHEDULER = ("a Docker host has no scheduler, and one run by mlspec would need the Docker API in a "
                        "container, which is root on the host: schedule it on the local target (the workspace "
                        "supervisor fires it)")
_PIPELINE_SCHEDULE = Row(docker=no(_DOCKER_NO_SCHEDULER),
                         kubernetes=no(_BAKED_SCHEDULE.format(kind="pipeline", verb="train on")))
_AUTOML_SCHEDULE = Row(docker=no(_DOCKER_NO_SCHEDULER),
                       kubernetes=no(_BAKED_SCHEDULE.format(kind="AutoML job", verb="search")))
_NO_SCHEDULER = ("a Docker host has no scheduler, and one run by mlspec would need the Docker API in a container, "
                 "which is root on the host: schedule it on the local target (the workspace supervisor fires it) "
                 "or the kubernetes target (a CronJob)")
_CRONJOB = ("a batch/v1 CronJob beside the Job that runs at apply (concurrencyPolicy Forbid: a run due while one "
            "goes waits); its runs read the data baked into the job's image, so fresh data must come from elsewhere "
            "(a literal URI input); a job on several nodes is refused")
_SAMPLES_LATER = ("samples are written to the local workspace by the local engine's gateway only for now: remove "
                  "data_collector, or use the local target")
_LOCAL_SAMPLES = Row(docker=no(_SAMPLES_LATER), kubernetes=no(_SAMPLES_LATER))

TABLE: dict[str, dict[str, Row]] = {
    "Resource": {
        "name": EVERYWHERE,
        "kind": EVERYWHERE,
        "description": Row(kubernetes=ignored(_NO_K8S_DESCRIPTION)),
        "tags": Row(kubernetes=approx(_K8S_TAGS)),
    },
    "Workspace": {
        "": Row(kubernetes=approx("a namespace (Pod Security \"restricted\", a ResourceQuota summed from its "
                                  "workloads, ingress denied but for what its pods need) and its MLflow server")),
        "tags": Row(kubernetes=approx(_K8S_TAGS + "; not written to MLflow's experiments there yet")),
        "description": Row(kubernetes=approx("an annotation of its namespace")),
        "storage": EVERYWHERE,
        "tracking": EVERYWHERE,
        "defaults": EVERYWHERE,
    },
    "Storage": {
        "path": Row(docker=na("the docker target keeps the workspace in a volume (storage.volume)"),
                    kubernetes=na("the kubernetes target keeps the workspace on volume claims (storage.size)")),
        "volume": Row(local=na("the local target keeps the workspace in a folder (storage.path)"),
                      kubernetes=na("the kubernetes target keeps the workspace on volume claims (storage.size)")),
        "size": Row(local=na("a folder has no size"), docker=na("a Docker volume has no size"),
                    kubernetes=approx("the size of each claim: MLflow's store, each instance's notebooks "
                                      "and each batch endpoint's predictions")),
    },
    "Tracking": {
        "backend": EVERYWHERE,
        "uri": EVERYWHERE,
    },
    "Defaults": {"compute": EVERYWHERE, "environment": EVERYWHERE},
    "ComputeBase": {
        "type": EVERYWHERE,  # the type's own row ('') says what the target does with it
        "target": EVERYWHERE,  # checked by value: it must name the target the command deploys to
        "resources": EVERYWHERE,
    },
    "Resources": {
        "cpus": Row(local=approx("when written out, each job node, replica or batch run is pinned to that many "
                                 "whole cores (a fraction rounds up; nodes take the cores in turn)"),
                    kubernetes=approx("each pod's CPU request and limit (equal: the Guaranteed class)")),
        "memory": Row(local=approx("when written out, a job node, replica or batch run whose process tree's "
                                   "resident memory goes over it is stopped: a job fails saying so, a replica "
                                   "restarts"),
                      kubernetes=approx("each pod's memory request and limit (equal)")),
        "gpus": Row(local=approx("when written out, CUDA_VISIBLE_DEVICES names each node's own GPUs of this "
                                 "machine's; more than it has is refused when planning"),
                    kubernetes=approx("nvidia.com/gpu requests and limits, and a toleration of the GPU taint")),
        "gpu_type": Row(local=no("this machine's GPUs are what they are"),
                        docker=no("a Docker host's GPUs are what they are"),
                        kubernetes=approx("a nodeSelector on nvidia.com/gpu.product, the label NVIDIA's GPU feature "
                                          "discovery puts on GPU nodes")),
    },
    "LocalCompute": {"": Row(docker=approx("containers on the Docker host"),
                             kubernetes=approx("pods wherever the scheduler puts them (a node pool with --node-pool)")),
                     "tags": _UNLABELLED, "description": _UNLABELLED},
    "ClusterCompute": {
        "": Row(local=approx("jobs run as processes on this machine"),
                docker=approx("jobs run as containers on the Docker host"),
                kubernetes=approx("its jobs' pods carry its PriorityClass, and go to its node pool where "
                                  "`mlspec compile --node-pool COMPUTE=LABEL=VALUE` names one")),
        "min_nodes": Row(local=ignored("processes start at once; there are no nodes to keep warm"),
                         docker=ignored("containers start at once; there are no nodes to keep warm"),
                         kubernetes=ignored(_POOL_AUTOSCALER)),
        "max_nodes": Row(docker=approx("the cluster's jobs take turns in max_nodes lanes: each waits for the one "
                                       "ahead of it in its lane, not for any free node"),
                         kubernetes=approx("a ResourceQuota scoped to the cluster's PriorityClass admits max_nodes of "
                                           "its pods at once; the Job controller creates the rest as pods finish")),
        "idle_time_before_scale_down": Row(local=ignored("no node is held after a job ends"),
                                           docker=ignored("no node is held after a job ends"),
                                           kubernetes=ignored(_POOL_AUTOSCALER)),
        "low_priority": Row(local=ignored("this machine has no preemptible capacity"),
                            docker=ignored("a Docker host has no preemptible capacity"),
                            kubernetes=approx("its pods tolerate the spot taints of AKS and GKE node pools and carry "
                                              "a PriorityClass below the default that never preempts")),
        "tags": _UNLABELLED,
        "description": _UNLABELLED,
    },
    "InstanceCompute": {
        "": Row(local=approx("JupyterLab as a process on this machine"),
                kubernetes=approx("JupyterLab as a one-pod StatefulSet with its notebooks on a claim that deleting "
                                  "it keeps, behind a password hash in a Secret you create")),
        "resources": Row(local=no("JupyterLab runs without the compute's CPU, memory and GPU limits here"),
                         kubernetes=YES),
        "environment": EVERYWHERE,
        "port": Row(kubernetes=approx("the port of its ClusterIP Service: reach it with kubectl port-forward")),
        "idle_time_before_shutdown": Row(local=approx("stopped after that long with no API request, kernel message "
                                                      "or terminal and no busy kernel, until `mlspec compute start`"),
                                         docker=approx("JupyterLab's own idle shutdown: idle kernels (connected or "
                                                       "not, never a busy one) and terminals are culled, and the "
                                                       "server exits once it has had none and no API request for "
                                                       "that long, checked each minute; the container stays "
                                                       "stopped until `mlspec compute start` or the next update"),
                                         kubernetes=no("idle instances are not stopped on the kubernetes target yet")),
    },
    "InferenceClusterCompute": {
        "": Row(local=approx("deployments run as processes on this machine"),
                docker=approx("deployments run as containers on the Docker host"),
                kubernetes=approx("its deployments' replicas go to its node pool where `mlspec compile --node-pool "
                                  "COMPUTE=LABEL=VALUE` names one (GPU nodes by their taint and gpu_type), spread "
                                  "over its nodes by a topology spread on kubernetes.io/hostname")),
        "nodes": Row(local=ignored(_ONE_HOST), docker=ignored(_ONE_HOST),
                     kubernetes=ignored("the node pool's size is set outside the manifests (its own autoscaler "
                                        "or node count); replicas spread over the nodes it has")),
        "tags": _UNLABELLED,
        "description": _UNLABELLED,
    },
    "AttachedCompute": {
        "": Row(local=no("attached compute is a Docker host or a Kubernetes context; use type: local here"),
                docker=approx("a Docker host (ssh://user@host[:port], tcp:// or unix://) reached through a "
                              "provider of its own (SSH with the client's keys or the stack's mlspec:sshOpts): the "
                              "jobs and online endpoints on it run there, with their images built there and a "
                              "network of their own there; they need the workspace's tracking.uri, as the "
                              "workspace's own MLflow and volume stay on the stack's host; batch endpoints do not "
                              "run on it yet"),
                kubernetes=approx("a kubeconfig context: the objects of the jobs, batch endpoints and online "
                                  "endpoints on it go to that cluster through a provider of their own (manifests "
                                  "in contexts/<context>/), in its namespace with its own quota and ingress "
                                  "policy; its pods need the workspace's tracking.uri, as the workspace's own "
                                  "MLflow stays on the stack's cluster")),
        "host": Row(kubernetes=no("a Docker host is the docker target's; on kubernetes attach a kube_context")),
        "kube_context": Row(docker=no("a Kubernetes context is the kubernetes target's; on docker attach a host"),
                            kubernetes=YES),
        "namespace": Row(docker=na("a Kubernetes namespace; a Docker host has none"),
                         kubernetes=approx("the namespace on the attached cluster; the workspace's namespace "
                                           "name when left out (the spec's default 'default' is not used)")),
    },
    "Environment": {
        "": EVERYWHERE,
        "tags": _UNLABELLED,
        "description": _UNLABELLED,
        "image": Row(local=na("local environments are virtualenvs on this machine"), kubernetes=YES),
        "python": Row(local=approx("environments are virtualenvs on mlspec's own interpreter: another "
                                   "version, written out, is refused when planning"),
                      docker=approx(_PYTHON_IMAGE),
                      kubernetes=no("the image's Python is its base image's: set image")),
        "requirements": EVERYWHERE,
        "conda_file": Row(local=approx("its pip section is installed into a virtualenv; other conda packages "
                                       "are refused"),
                          docker=approx("its pip section is installed into the image's virtualenv, and a "
                                        "python=X.Y it pins chooses the base image as `python` does; other conda "
                                        "packages are refused"),
                          kubernetes=no("declare requirements instead")),
        "build": Row(local=no("a Dockerfile needs a Docker engine: use the docker target"),
                     docker=Support("yes", "your image, tagged by the content hash of the files its context sends "
                                           "(.dockerignore honoured), with mlspec's runtime layered on: a virtualenv "
                                           "that sees its Python packages; it needs python3 (with venv) and useradd"),
                     kubernetes=no("your own Dockerfile is not supported yet; declare requirements instead")),
        "wheelhouse": Row(docker=approx("the stack's mlspec:wheelhouse setting is used instead"),
                          kubernetes=ignored("images are built outside the manifests, by your build step")),
        "environment_variables": EVERYWHERE,
    },
    "Build": {"context": ALL, "dockerfile": ALL},
    "Data": {
        "": Row(kubernetes=approx("baked into the image of each job that reads it, as on the docker target")),
        "tags": _UNLABELLED,
        "description": _UNLABELLED,
        "type": EVERYWHERE,
        "path": EVERYWHERE,
        "datastore": Row(local=no("only the workspace's own datastore exists"),
                         docker=no("only the workspace's own datastore exists"),
                         kubernetes=no("only the workspace's own datastore exists")),
    },
    "Job": {
        "": Row(kubernetes=approx("a batch/v1 Job named by its content hash: an unchanged job is not run again; "
                                  "jobs that read another job's model are ordered by Argo CD sync waves, not by "
                                  "kubectl (see the manifests' README)")),
        "tags": Row(kubernetes=no(_NO_K8S_MLFLOW_LABELS)),
        "description": Row(kubernetes=no(_NO_K8S_MLFLOW_LABELS)),
        "type": EVERYWHERE,
        "command": EVERYWHERE,
        "code": EVERYWHERE,
        "environment": EVERYWHERE,
        "compute": EVERYWHERE,
        "inputs": EVERYWHERE,
        "outputs": EVERYWHERE,
        "resources": EVERYWHERE,
        "distribution": Row(docker=approx("a container per node on the job's Docker host, each a torchrun agent with "
                                          "a static rendezvous on node 0's network alias; node 0 registers the "
                                          "models; a node that fails stops the others"),
                            kubernetes=approx("an Indexed Job, a headless Service and a torchrun agent per pod, with "
                                              "a static rendezvous on pod 0; node 0 registers the models")),
        "environment_variables": EVERYWHERE,
        "timeout": Row(kubernetes=approx("activeDeadlineSeconds: the whole Job, retries included")),
        "retries": Row(kubernetes=approx("backoffLimit: each retry is a new pod")),
        "experiment_name": EVERYWHERE,
        "schedule": Row(docker=no(_NO_SCHEDULER), kubernetes=approx(_CRONJOB)),
    },
    "Schedule": {
        "cron": EVERYWHERE,
        "every": Row(kubernetes=approx("a cron schedule when the period divides an hour or a day evenly "
                                       "('*/15 * * * *'), else '@every <seconds>s', counted from the CronJob's "
                                       "creation rather than from start_time")),
        "timezone": Row(kubernetes=approx("the CronJob's timeZone (Kubernetes 1.27 or later)")),
        "start_time": Row(kubernetes=approx("the CronJob is created suspended when compiled before start_time; "
                                            "compile and apply again once it has come")),
        "end_time": Row(kubernetes=approx("the CronJob is created suspended when compiled after end_time; runs "
                                          "due later are not stopped by the cluster itself")),
        "missed": Row(kubernetes=approx("skip: startingDeadlineSeconds 60; run_once: no deadline, so the "
                                        "controller starts the latest missed run once")),
    },
    "PathInput": {"type": EVERYWHERE, "path": EVERYWHERE},
    "SweepJob": {
        "": Row(docker=approx(_SWEEP_DOCKER), kubernetes=approx(_SWEEP_K8S)),
        **dict.fromkeys(("type", "trial", "compute", "inputs", "outputs", "search_space", "sampling_algorithm",
                         "objective", "limits", "early_termination", "experiment_name"), EVERYWHERE),
        "schedule": Row(docker=no(_NO_SCHEDULER), kubernetes=no(_SWEEP_SCHEDULE)),
    },
    "AutoMLJob": {
        "": Row(docker=approx(_AUTOML_DOCKER), kubernetes=approx(_AUTOML_K8S)),
        **dict.fromkeys(("type", "task", "training_data", "target_column_name", "primary_metric", "limits",
                         "training", "n_cross_validations", "compute", "outputs", "experiment_name"), EVERYWHERE),
        "tags": Row(kubernetes=no(_NO_K8S_MLFLOW_LABELS)),
        "description": Row(kubernetes=no(_NO_K8S_MLFLOW_LABELS)),
        "schedule": _AUTOML_SCHEDULE,
    },
    "AutoMLLimits": {
        **dict.fromkeys(("timeout_minutes", "max_trials"), EVERYWHERE),
        "trial_timeout_minutes": Row(local=approx(_TRAIN_TIME_LIMIT), docker=approx(_TRAIN_TIME_LIMIT),
                                     kubernetes=approx(_TRAIN_TIME_LIMIT)),
        "max_concurrent_trials": Row(local=approx("that many FLAML searches at once, each a process searching its "
                                                  "share of the algorithms within the whole time budget"),
                                     docker=approx("that many FLAML searches at once, processes in the job's "
                                                   "container, which has the compute's size once per search and "
                                                   "takes as many of a cluster's max_nodes lanes"),
                                     kubernetes=approx("that many FLAML searches at once, processes in the job's "
                                                       "pod, sharing the compute's size")),
    },
    "AutoMLTraining": dict.fromkeys(("allowed_training_algorithms", "blocked_training_algorithms"), EVERYWHERE),
    "Trial": dict.fromkeys(("command", "code", "environment", "environment_variables"), EVERYWHERE),
    "Choice": dict.fromkeys(("type", "values"), EVERYWHERE),
    "Uniform": dict.fromkeys(("type", "min_value", "max_value"), EVERYWHERE),
    "LogUniform": dict.fromkeys(("type", "min_value", "max_value"), EVERYWHERE),
    "RandInt": dict.fromkeys(("type", "upper"), EVERYWHERE),
    "Normal": dict.fromkeys(("type", "mu", "sigma"), EVERYWHERE),
    "Objective": dict.fromkeys(("primary_metric", "goal"), EVERYWHERE),
    "SweepLimits": {**dict.fromkeys(("max_total_trials", "trial_timeout", "timeout"), EVERYWHERE),
                    "max_concurrent_trials": _SWEEP_TRIALS},
    "EarlyTermination": dict.fromkeys(("policy", "evaluation_interval", "delay_evaluation", "slack_factor",
                                       "truncation_percentage"), EVERYWHERE),
    "PipelineJob": {"": Row(docker=approx(_PIPELINE_DOCKER), kubernetes=approx(_PIPELINE_K8S)),
                    **dict.fromkeys(("type", "inputs", "outputs", "jobs", "settings", "experiment_name"), EVERYWHERE),
                    "schedule": _PIPELINE_SCHEDULE},
    "PipelineSettings": dict.fromkeys(("default_compute", "continue_on_step_failure"), EVERYWHERE),
    "StepInput": dict.fromkeys(("type", "path"), EVERYWHERE),
    "CommandStep": {**dict.fromkeys(("type", "command", "code", "inputs", "outputs", "environment_variables",
                                     "timeout", "retries"), EVERYWHERE),
                    "environment": _STEP_ENVIRONMENT, "compute": _STEP_COMPUTE},
    "SweepStep": {**dict.fromkeys(("type", "trial", "inputs", "outputs", "search_space", "sampling_algorithm",
                                   "objective", "limits", "early_termination"), EVERYWHERE),
                  "compute": _STEP_COMPUTE},
    "Output": {"type": EVERYWHERE, "register_as": EVERYWHERE, "flavor": EVERYWHERE},
    "JobResources": {"instance_count": Row(local=approx("nodes are process trees on this machine; without a "
                                                        "distribution each runs the command with NODE_RANK set"),
                                           docker=approx("that many containers of the job's size, started "
                                                         "together on the workspace network of one Docker host; "
                                                         "without a distribution each runs the command with "
                                                         "NODE_RANK and NODE_COUNT set; node 0 registers the "
                                                         "models and a node that fails stops the others"),
                                           kubernetes=approx("an Indexed Job of that many pods at once; without a "
                                                             "distribution each runs the command with NODE_RANK "
                                                             "and NODE_COUNT set")),
                     },
    "Distribution": {"type": EVERYWHERE, "process_count_per_instance": EVERYWHERE},
    "Model": {
        "": EVERYWHERE,
        "tags": Row(kubernetes=no(_NO_K8S_MLFLOW_LABELS)),
        "description": Row(kubernetes=no(_NO_K8S_MLFLOW_LABELS)),
        "job": EVERYWHERE,
        "output": EVERYWHERE,
        "path": Row(docker=Support("yes", "registered by a run-once container whose image holds the files, on the "
                                          "environment of the first deployment serving it that names one (else the "
                                          "workspace's default, else mlspec's runtime): it must load them"),
                    kubernetes=no("models registered from a path are not compiled for kubernetes yet")),
        "flavor": EVERYWHERE,
        "loader": EVERYWHERE,
        "signature": EVERYWHERE,
        "aliases": Row(docker=approx(_ALIASES), kubernetes=approx(_ALIASES)),
    },
    "Signature": {"inputs": EVERYWHERE, "outputs": EVERYWHERE},
    "Column": {"name": EVERYWHERE, "type": EVERYWHERE},
    "OnlineEndpoint": {
        "": EVERYWHERE,
        "type": EVERYWHERE,
        "auth": Row(kubernetes=Support("yes", "the gateway reads the keys' SHA-256 digests from the Secret "
                                              "<endpoint>-gateway-keys, which the Pulumi program makes from "
                                              "generated keys (plain manifests: create it yourself)")),
        "deployments": EVERYWHERE,
        "traffic": EVERYWHERE,
        "mirror_traffic": EVERYWHERE,
        "port": Row(kubernetes=na("the gateway's ClusterIP Service <endpoint> listens on port 80")),
        "data_collector": _LOCAL_SAMPLES,
    },
    "DataCollector": {"sampling_rate": _LOCAL_SAMPLES, "max_record_size": _LOCAL_SAMPLES,
                      "max_records_per_minute": _LOCAL_SAMPLES, "retention": _LOCAL_SAMPLES},
    "Deployment": {
        "model": Row(kubernetes=approx("a model a job of the spec registers is served at @latest; the job's "
                                       "content hash on the pod template rolls the replicas when it retrains")),
        "environment": EVERYWHERE,
        "compute": EVERYWHERE,
        "instance_count": EVERYWHERE,
        "workers": EVERYWHERE,
        "autoscale": Row(docker=no(_NO_AUTOSCALER),
                         kubernetes=approx("a HorizontalPodAutoscaler (autoscaling/v2) on CPU utilisation")),
        "probes": EVERYWHERE,
        "request_settings": EVERYWHERE,
        "batching": EVERYWHERE,
        "resources": Row(kubernetes=Support("yes", "requests equal to limits (GPUs as nvidia.com/gpu, with a "
                                                   "toleration of GPU nodes' taint)")),
        "environment_variables": EVERYWHERE,
        "code_configuration": Row(docker=Support("yes", "the code folder is baked into the replicas' image (the "
                                                        "environment's plus the code)"),
                                  kubernetes=Support("yes", "the code folder is baked into the replicas' image (the "
                                                            "environment's plus the code)")),
        "input_schema": EVERYWHERE,
    },
    "CodeConfiguration": {"code": EVERYWHERE, "scoring_script": EVERYWHERE},
    "Autoscale": {
        "min_instances": Row(docker=no(_NO_AUTOSCALER), kubernetes=refusing(
            (0,), "the HPA's minReplicas; 0 (scale to zero) is refused: an HPA keeps at least one replica")),
        "max_instances": _NO_AUTOSCALER_ROW,
        "target_concurrency": Row(docker=no(_NO_AUTOSCALER), kubernetes=approx(
            "scaled on CPU utilisation: the target's share of min(max_concurrent_requests_per_instance, 100) as a "
            "percentage of the replica's CPU request (70% by default); a GPU replica's CPU tells little of its "
            "load")),
        "target_rps": Row(docker=no(_NO_AUTOSCALER), kubernetes=no(
            "a request rate needs a custom-metrics adapter, which this target does not configure: give "
            "target_concurrency (scaled on CPU utilisation)")),
        "window": Row(docker=no(_NO_AUTOSCALER), kubernetes=ignored(
            "CPU usage is averaged over the cluster's metrics-server window, not one of the HPA's")),
        "scale_up_delay": Row(docker=no(_NO_AUTOSCALER), kubernetes=approx(
            "the HPA's scale-up stabilisation window, checked on its own sync period (15 s by default)")),
        "scale_down_delay": Row(docker=no(_NO_AUTOSCALER), kubernetes=approx(
            "the HPA's scale-down stabilisation window, checked on its own sync period (15 s by default)")),
    },
    "Probes": {"liveness": EVERYWHERE, "readiness": EVERYWHERE},
    "LivenessProbe": {
        "initial_delay": Row(docker=approx(_DOCKER_LIVENESS), kubernetes=YES),
        "period": Row(docker=approx(_DOCKER_LIVENESS), kubernetes=YES),
        "timeout": Row(docker=approx(_DOCKER_LIVENESS), kubernetes=YES),
        "failure_threshold": Row(docker=approx(_DOCKER_LIVENESS), kubernetes=YES),
        "success_threshold": Row(docker=no("a replica failing its liveness probe is restarted at once: no successes "
                                           "are counted after failures"),
                                 kubernetes=no("Kubernetes takes 1 success and no other for a liveness probe")),
    },
    "ReadinessProbe": {
        "initial_delay": Row(local=approx(_STARTUP), kubernetes=approx(
            "the start-up probe's initial delay; with its period × failure_threshold it is a new replica's "
            "deadline to load its model")),
        "period": EVERYWHERE,
        "timeout": EVERYWHERE,
        "failure_threshold": EVERYWHERE,
        "success_threshold": EVERYWHERE,
    },
    "RequestSettings": {
        "request_timeout": EVERYWHERE,
        "max_concurrent_requests_per_instance": Row(kubernetes=approx(
            "the gateway holds each deployment to this × its replicas (instance_count, or max_instances when "
            "autoscaled) in flight, shared among its pods; its Service spreads connections, not requests, so one "
            "replica may hold more")),
        "max_queue_wait": EVERYWHERE,
        "max_body_size": EVERYWHERE,
    },
    "Batching": {"max_batch_size": EVERYWHERE, "max_wait": EVERYWHERE},
    "BatchEndpoint": {
        "": Row(docker=approx("a run-to-completion container per scoring run, named by the hash of what it scores "
                              "(settings, data, model version and digest, image): an unchanged endpoint is not "
                              "scored again; its predictions and the scorer's resume journal on the workspace volume "
                              "(/mlspec/batch/<endpoint>/<run hash>/), so a run replaced after a kill "
                              "(pulumi up --replace) resumes where it stopped"),
                kubernetes=approx("a batch/v1 Job per scoring run, named by the content hash of what it scores "
                                  "(data, model reference, settings): an unchanged endpoint is not scored again; "
                                  "the scorer's resume journal on the endpoint's claim, so a replacement pod "
                                  "resumes")),
        "type": EVERYWHERE,
        "model": Row(docker=approx("read from the workspace's MLflow; a model a job of the spec registers is "
                                   "scored at the version the job registered, and its retraining is a new run; an "
                                   "alias moved outside the spec is not a new run"),
                     kubernetes=approx("read from the workspace's MLflow; a model a job of the spec registers is "
                                       "scored at its latest version, and its retraining is a new run")),
        "input": Row(docker=approx("baked into the run's image, as a training job's data is"),
                     kubernetes=approx("baked into the run's image, as a training job's data is")),
        "output": EVERYWHERE,
        "environment": EVERYWHERE,
        "compute": Row(docker=approx("one container with the cores (Docker CPU shares) and memory of all the "
                                     "compute's nodes together, max_concurrency workers for each, as locally"),
                       kubernetes=approx("one pod of one node's size, with the compute's scheduling (a cluster's "
                                         "PriorityClass and quota: it takes turns with the cluster's jobs)")),
        "mini_batch_size": EVERYWHERE,
        "error_threshold": EVERYWHERE,
        "retry_settings": EVERYWHERE,
        "max_concurrency": Row(kubernetes=approx("mini-batches at once in the run's one pod")),
        "code_configuration": Row(docker=Support("yes", "the code folder is baked into the run's image"),
                                  kubernetes=Support("yes", "the code folder is baked into the run's image")),
        "schedule": Row(docker=no(_NO_SCHEDULER), kubernetes=no(
            "its rows are baked into the run's image when compiled, so a CronJob would score the same rows every "
            "time: schedule it on the local target, whose runs read the Data's path afresh")),
    },
    "BatchOutput": {
        "path": Row(docker=approx("a folder of the run's on the workspace volume, /mlspec/batch/<endpoint>/<run "
                                  "hash>/<path>, not in the spec's folder: the stack output <endpoint>.output names "
                                  "it; copy them out through any container that mounts the volume"),
                    kubernetes=approx("a folder on the endpoint's claim <endpoint>-batch, not in the spec's folder: "
                                      "copy the predictions out with kubectl cp")),
        "mode": EVERYWHERE,
    },
    "BatchRetry": {
        "max_retries": Row(kubernetes=approx("per mini-batch, and the Job's backoffLimit: a failed pod is replaced "
                                             "that many times, resuming from the journal")),
        "timeout": EVERYWHERE,
    },
}


@cache
def row_for(model: type, field: str) -> Row | None:
    """The row of a field of a spec model, looked up along its class hierarchy; '' is the model's own row."""
    classes = model.__mro__[:1] if field == "" else model.__mro__
    for cls in classes:
        row = TABLE.get(cls.__name__, {}).get(field)
        if row is not None:
            return row
    return None


def honouring(model: type, field: str) -> list[Target]:
    """The targets that honour (or approximate) a field, and the kind or type it belongs to."""
    rows = [r for r in (row_for(model, field), row_for(model, "")) if r is not None]
    return [t for t in TARGETS if rows and all(r.on(t).level in ("yes", "approx") for r in rows)]


@dataclass(frozen=True, slots=True)
class FieldRow:
    """One line of the printed table: a field as a spec writes it (`deployments.*.probes`), and its row."""

    kind: str  # 'Compute (cluster)', 'Job'
    path: str  # '' for the kind or type itself
    row: Row


def _nested_models(annotation: Any) -> list[type[BaseModel]]:
    """The spec models a field's annotation holds (directly, or in a dict, list or union), and whether by key."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    found: list[type[BaseModel]] = []
    for arg in get_args(annotation):
        found.extend(_nested_models(arg))
    return found


def _within(parent: Row, row: Row) -> Row:
    """A field as its target sees it: under a refused field or kind, it is refused too."""
    def one(target: Target) -> Support:
        return parent.on(target) if parent.on(target).level == "no" else row.on(target)

    return Row(*(one(t) for t in TARGETS))


def _walk(model: type[BaseModel], prefix: str, kind: str, parent: Row) -> list[FieldRow]:
    rows: list[FieldRow] = []
    for name, info in model.model_fields.items():
        path = f"{prefix}{name}"
        row = _within(parent, row_for(model, name) or ALL)
        rows.append(FieldRow(kind, path, row))
        keyed = get_origin(info.annotation) is dict or any(get_origin(a) is dict for a in get_args(info.annotation))
        for nested in _nested_models(info.annotation):
            rows.extend(_walk(nested, f"{path}.*." if keyed else f"{path}.", kind, row))
    return rows


def field_rows() -> list[FieldRow]:
    """Every field of every kind, as documents write them, with its row: what `mlspec targets` prints."""
    from mlspec.spec import KINDS

    rows: list[FieldRow] = []
    for kind, entry in KINDS.items():
        variants = entry.items() if isinstance(entry, dict) else [("", entry)]
        for variant, model in variants:
            label = f"{kind} ({variant})" if variant else kind
            own = row_for(model, "") or ALL
            rows.append(FieldRow(label, "", own))
            rows.extend(_walk(model, "", label, own))
    return rows
