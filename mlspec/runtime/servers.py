"""The command lines of the workspace's servers (MLflow tracking, JupyterLab), shared by every container target."""

from __future__ import annotations

import hashlib
import shlex

from mlspec import TELEMETRY_OFF

MLFLOW_PORT = 5000
JUPYTER_PORT = 8888


def mlflow_server(store: str, allowed_hosts: list[str], port: int = MLFLOW_PORT, workers: int = 1) -> list[str]:
    """MLflow with its sqlite store and proxied artifacts under `store` (`--serve-artifacts`: clients upload
    through the server, so they share no volume with it), answering only to `allowed_hosts`. One worker: the sqlite
    store takes one writer at a time anyway, and with several, uvicorn's supervisor kills a worker that misses its
    few-second health ping, which on a loaded host repeats until the server is never healthy."""
    telemetry_off = [f"{name}={value}" for name, value in TELEMETRY_OFF.items()]
    server = quote("env", *telemetry_off, "mlflow", "server", "--host", "0.0.0.0", "--port", str(port),
                   "--backend-store-uri", f"sqlite:///{store}/mlflow.db", "--serve-artifacts",
                   "--artifacts-destination", f"{store}/artifacts", "--workers", str(workers),
                   "--allowed-hosts", ",".join(allowed_hosts))
    return shell(f"mkdir -p {store}/artifacts", f"exec {server}")


def jupyter_lab(notebooks: str, hashed_password: str | None = None, port: int = JUPYTER_PORT, *,
                password_file: str | None = None, idle_shutdown: float | None = None) -> list[str]:
    """JupyterLab on `notebooks` behind a hashed password (given, or read from `password_file` as it starts, so
    the hash appears in no command line or environment) and no token."""
    lab = quote("jupyter", "lab", "--ip", "0.0.0.0", "--port", str(port), "--no-browser",
                f"--ServerApp.root_dir={notebooks}", "--IdentityProvider.token=", *idle_flags(idle_shutdown))
    if password_file is not None:
        lab += f' --PasswordIdentityProvider.hashed_password="$(cat {shlex.quote(password_file)})"'
    else:
        lab += " " + quote(f"--PasswordIdentityProvider.hashed_password={hashed_password}")
    return shell(f"mkdir -p {notebooks}", f"exec {lab}")


def jupyter_password_hash(password: str, workspace: str, instance: str) -> str:
    """JupyterLab's `sha256:SALT:DIGEST` form of a password, salted per instance (the salt is derived, so the hash,
    and the pod or container holding it, changes only when the password does)."""
    salt = hashlib.sha256(f"mlspec-notebooks:{workspace}/{instance}".encode()).hexdigest()[:12]
    return f"sha256:{salt}:{hashlib.sha256(password.encode() + salt.encode()).hexdigest()}"


def shell(*commands: str) -> list[str]:
    return ["sh", "-c", " && ".join(commands)]


def quote(*words: str) -> str:
    return " ".join(shlex.quote(w) for w in words)


def idle_flags(idle_shutdown: float | None) -> list[str]:
    """JupyterLab's own idle shutdown: kernels idle that long are culled (a busy one never is; one a browser tab
    holds open is), terminals too, and the server exits 0 once it has had no kernel, terminal or API request for
    that long. It checks once a minute, so it stops up to a minute late."""
    if idle_shutdown is None:
        return []
    seconds = max(1, round(idle_shutdown))
    return [f"--ServerApp.shutdown_no_activity_timeout={seconds}",
            f"--MappingKernelManager.cull_idle_timeout={seconds}",
            f"--MappingKernelManager.cull_interval={min(seconds, 60)}",
            "--MappingKernelManager.cull_connected=True", "--MappingKernelManager.cull_busy=False",
            f"--TerminalManager.cull_inactive_timeout={seconds}", f"--TerminalManager.cull_interval={min(seconds, 60)}"]
