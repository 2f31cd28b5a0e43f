"""Turn a pulumi-docker Container's wire inputs into Docker SDK create arguments, refusing what it cannot honour."""

from __future__ import annotations

import base64
import io
import re
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker.types


class UnsupportedInput(Exception):
    """A declared input this engine cannot reproduce faithfully (failing beats silently dropping it)."""


# Inputs that only steer the provider's own behaviour (handled by the engine) or have no effect on a fresh create.
ENGINE_INPUTS = {"attach", "logs", "mustRun", "wait", "waitTimeout", "start", "removeVolumes", "destroyGraceSeconds",
                 "containerReadRefreshTimeoutMilliseconds", "uploads", "networksAdvanced", "name", "image"}
MAPPED_INPUTS = {"command", "entrypoints", "envs", "ports", "volumes", "mounts", "healthcheck", "restart",
                 "maxRetryCount", "user", "labels", "memory", "memorySwap", "memoryReservation", "cpuShares", "cpus",
                 "cpuSet", "gpus", "deviceRequests", "workingDir", "hostname", "init", "readOnly", "shmSize", "tmpfs",
                 "stopSignal",
                 "stopTimeout", "privileged", "capabilities", "hosts", "securityOpts", "sysctls", "dns", "groupAdds",
                 "networkMode", "ulimits", "logDriver", "logOpts", "rm", "tty", "stdinOpen", "publishAllPorts",
                 "ipcMode", "pidMode", "runtime"}

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_UNIT_NS = {"ns": 1, "us": 1_000, "µs": 1_000, "ms": 1_000_000, "s": 10**9, "m": 60 * 10**9, "h": 3600 * 10**9}


def duration_ns(value: str | None) -> int:
    """A Go duration ("5s", "1m30s", "500ms") in nanoseconds, the unit the Docker API wants."""
    if not value:
        return 0
    parts = _DURATION.findall(value)
    if not parts or "".join(n + u for n, u in parts) != value:
        raise UnsupportedInput(f"healthcheck duration {value!r} is not a Go duration such as '5s' or '1m30s'")
    return int(sum(float(number) * _UNIT_NS[unit] for number, unit in parts))


@dataclass
class ContainerPlan:
    """What to create (SDK kwargs), what to copy in before start, and which networks to join."""

    create: dict[str, Any]
    uploads: bytes | None = None
    networks: list[tuple[str, list[str]]] = field(default_factory=list)


def plan_container(inputs: dict[str, Any], name: str, labels: dict[str, str], cwd: Path) -> ContainerPlan:
    unknown = sorted(set(inputs) - ENGINE_INPUTS - MAPPED_INPUTS)
    if unknown:
        raise UnsupportedInput(f"container {name!r}: inputs {unknown} are not reproduced by the test engine")
    if not inputs.get("image"):
        raise UnsupportedInput(f"container {name!r} declares no image")
    kwargs: dict[str, Any] = {"image": inputs["image"], "name": name, "detach": True}
    declared_labels = {item["label"]: item["value"] for item in inputs.get("labels", [])}
    kwargs["labels"] = {**declared_labels, **labels}
    simple = {"command": "command", "entrypoints": "entrypoint", "user": "user", "workingDir": "working_dir",
              "hostname": "hostname", "init": "init", "readOnly": "read_only", "stopSignal": "stop_signal",
              "privileged": "privileged", "securityOpts": "security_opt", "sysctls": "sysctls", "dns": "dns",
              "groupAdds": "group_add", "tty": "tty", "stdinOpen": "stdin_open", "publishAllPorts": "publish_all_ports",
              "ipcMode": "ipc_mode", "pidMode": "pid_mode", "runtime": "runtime", "tmpfs": "tmpfs",
              "rm": "auto_remove", "cpuSet": "cpuset_cpus"}
    for wire, sdk in simple.items():
        if inputs.get(wire) is not None:
            kwargs[sdk] = inputs[wire]
    if "envs" in inputs:
        kwargs["environment"] = list(inputs["envs"])
    if "stopTimeout" in inputs:
        kwargs["stop_timeout"] = int(inputs["stopTimeout"])
    _resources(inputs, kwargs)
    _ports(inputs, kwargs)
    _storage(inputs, kwargs)
    if "healthcheck" in inputs:
        check = inputs["healthcheck"]
        kwargs["healthcheck"] = {
            "test": list(check["tests"]),
            "interval": duration_ns(check.get("interval")),
            "timeout": duration_ns(check.get("timeout")),
            "retries": int(check.get("retries", 0)),
            "start_period": duration_ns(check.get("startPeriod")),
        }
    if "restart" in inputs:
        kwargs["restart_policy"] = {"Name": inputs["restart"], "MaximumRetryCount": int(inputs.get("maxRetryCount", 0))}
    if "capabilities" in inputs:
        kwargs["cap_add"] = inputs["capabilities"].get("adds", [])
        kwargs["cap_drop"] = inputs["capabilities"].get("drops", [])
    if "hosts" in inputs:
        kwargs["extra_hosts"] = {h["host"]: h["ip"] for h in inputs["hosts"]}
    if "ulimits" in inputs:
        kwargs["ulimits"] = [docker.types.Ulimit(name=u["name"], soft=int(u["soft"]), hard=int(u["hard"]))
                             for u in inputs["ulimits"]]
    if "logDriver" in inputs:
        kwargs["log_config"] = docker.types.LogConfig(type=inputs["logDriver"], config=inputs.get("logOpts", {}))
    networks = [(n["name"], list(n.get("aliases", []))) for n in inputs.get("networksAdvanced", [])]
    if networks and "networkMode" in inputs:
        raise UnsupportedInput(f"container {name!r} sets both networkMode and networksAdvanced")
    if networks:
        # The API joins one network at create time; the others are connected before start.
        first, aliases = networks[0]
        kwargs["network"] = first
        kwargs["networking_config"] = {first: docker.types.EndpointConfig(version="1.41", aliases=aliases)}
    elif "networkMode" in inputs:
        kwargs["network_mode"] = inputs["networkMode"]
    return ContainerPlan(create=kwargs, uploads=_upload_archive(inputs.get("uploads", []), name, cwd),
                         networks=networks)


def _resources(inputs: dict[str, Any], kwargs: dict[str, Any]) -> None:
    mib = 1024 * 1024  # pulumi-docker sizes are in MB
    if inputs.get("memory"):
        kwargs["mem_limit"] = int(inputs["memory"]) * mib
    if inputs.get("memorySwap"):
        swap = int(inputs["memorySwap"])
        kwargs["memswap_limit"] = -1 if swap < 0 else swap * mib
    if inputs.get("memoryReservation"):
        kwargs["mem_reservation"] = int(inputs["memoryReservation"]) * mib
    if inputs.get("shmSize"):
        kwargs["shm_size"] = int(inputs["shmSize"]) * mib
    if inputs.get("cpuShares"):
        kwargs["cpu_shares"] = int(inputs["cpuShares"])
    if inputs.get("cpus"):
        kwargs["nano_cpus"] = int(float(inputs["cpus"]) * 1e9)
    if inputs.get("gpus"):
        gpus = inputs["gpus"]
        ids = None if gpus == "all" else gpus.removeprefix("device=").split(",")
        kwargs["device_requests"] = [docker.types.DeviceRequest(count=-1 if ids is None else 0, device_ids=ids,
                                                                capabilities=[["gpu"]])]
    for request in inputs.get("deviceRequests", []):
        kwargs.setdefault("device_requests", []).append(docker.types.DeviceRequest(
            driver=request.get("driver", ""), count=int(request.get("count", 0)),
            device_ids=request.get("deviceIds"), capabilities=[request["capabilities"]] if request.get("capabilities")
            else None, options=request.get("options")))


def _ports(inputs: dict[str, Any], kwargs: dict[str, Any]) -> None:
    ports: dict[str, Any] = {}
    for port in inputs.get("ports", []):
        key = f"{int(port['internal'])}/{port.get('protocol', 'tcp')}"
        external = int(port["external"]) if port.get("external") else None
        ports[key] = (port.get("ip", "0.0.0.0"), external)
    if ports:
        kwargs["ports"] = ports


def _storage(inputs: dict[str, Any], kwargs: dict[str, Any]) -> None:
    binds: dict[str, dict[str, str]] = {}
    volumes_from: list[str] = []
    for volume in inputs.get("volumes", []):
        if volume.get("fromContainer"):
            volumes_from.append(volume["fromContainer"])
            continue
        source = volume.get("volumeName") or volume.get("hostPath")
        if not source or not volume.get("containerPath"):
            raise UnsupportedInput(f"volume {volume} needs volumeName or hostPath, and containerPath")
        binds[source] = {"bind": volume["containerPath"], "mode": "ro" if volume.get("readOnly") else "rw"}
    if binds:
        kwargs["volumes"] = binds
    if volumes_from:
        kwargs["volumes_from"] = volumes_from
    mounts = []
    for mount in inputs.get("mounts", []):
        options = mount.get("volumeOptions", {})
        tmpfs = mount.get("tmpfsOptions", {})
        mounts.append(docker.types.Mount(
            target=mount["target"], source=mount.get("source"), type=mount.get("type", "volume"),
            read_only=bool(mount.get("readOnly", False)), no_copy=bool(options.get("noCopy", False)),
            labels={item["label"]: item["value"] for item in options.get("labels", [])} or None,
            driver_config=docker.types.DriverConfig(options["driverName"], options.get("driverOptions"))
            if options.get("driverName") else None,
            propagation=mount.get("bindOptions", {}).get("propagation"),
            tmpfs_size=int(tmpfs["sizeBytes"]) if tmpfs.get("sizeBytes") else None,
            tmpfs_mode=int(tmpfs["mode"]) if tmpfs.get("mode") else None,
        ))
    if mounts:
        kwargs["mounts"] = mounts


def _upload_archive(uploads: list[dict[str, Any]], name: str, cwd: Path) -> bytes | None:
    """One tar of every upload, extracted at / so missing parent folders are created (as the provider does)."""
    if not uploads:
        return None
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for upload in uploads:
            if "content" in upload:
                data = upload["content"].encode()
            elif "contentBase64" in upload:
                data = base64.b64decode(upload["contentBase64"])
            elif "source" in upload:
                data = (cwd / upload["source"]).read_bytes()
            else:
                raise UnsupportedInput(f"container {name!r}: upload {upload.get('file')!r} has no content")
            info = tarfile.TarInfo(upload["file"].lstrip("/"))
            info.size = len(data)
            if "permissions" in upload:
                info.mode = int(upload["permissions"], 8)
            else:
                info.mode = 0o744 if upload.get("executable") else 0o644
            if "owner" in upload or "group" in upload:
                raise UnsupportedInput(f"container {name!r}: upload owner/group are not reproduced")
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()
