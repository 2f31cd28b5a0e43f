"""The scoring benchmark of DESIGN.md §6: single-row requests to one registered scikit-learn model, side by side.

Run: .venv/bin/python bench/serving.py [--duration 10] [--warmup 3] [--connections 1 16]

Targets, started as real processes on 127.0.0.1 from one iris model registered in a fresh MLflow store (sqlite)
by mlspec's packaging, as a training job's output is:
  mlspec   mlspec's scoring server (`python -m mlspec.runtime.serving`)
  mlflow   `mlflow models serve --env-manager local` of the same registered model
  floor    a bare ASGI app (uvicorn, orjson) that only parses the JSON and calls predict on a numpy array
  gateway  mlspec's gateway (key auth) in front of the mlspec server
  forwarder  a raw uvloop byte copy in front of the mlspec server: the least any proxy hop adds on this machine
  caddy    Caddy (`pip install -e '.[bench]'`) checking the key and proxying to the mlspec server, as a compiled
           proxy would do the gateway's job; measured when installed
Load: wrk (Debian's `apt-get install -y wrk`) with a Lua POST script, one thread, 1 and 16 keep-alive connections,
a warm-up run then a fixed-duration run per target. The servers run on --server-cpus and wrk on --wrk-cpus
(taskset), so the load generator does not compete with what it measures; the gateway shares the servers' cores
unless --gateway-cpus says otherwise. With one core for the servers, the 16-connection runs are CPU-bound: there
the gateway's latency overhead is its CPU cost per request, and the 1-connection run is its added latency.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from _serving_common import (
    IRIS_BODY,
    KEY,
    caddy_binary,
    commands,
    free_port,
    health_path,
    launch,
    register_iris,
    stop,
    wait_ready,
    write_caddy_config,
    write_gateway_config,
)

TARGETS = ("mlspec", "mlflow", "floor", "gateway", "forwarder", "caddy")
_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


@dataclass(frozen=True)
class Figures:
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int


def lua_script(path: Path, body: bytes, headers: dict[str, str]) -> Path:
    lines = ['wrk.method = "POST"', f"wrk.body = {_lua_string(body.decode())}"]
    lines += [f"wrk.headers[{_lua_string(k)}] = {_lua_string(v)}" for k, v in headers.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def _lua_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def wrk(url: str, script: Path, connections: int, seconds: float, cpus: str | None) -> Figures:
    argv = ["wrk", "-t1", f"-c{connections}", f"-d{seconds:g}s", "--latency", "--timeout", "5s", "-s", str(script),
            url]
    done = subprocess.run([*(["taskset", "-c", cpus] if cpus else []), *argv], capture_output=True, text=True,
                          timeout=seconds + 60, check=False)
    if done.returncode != 0:
        sys.exit(f"wrk failed ({done.returncode}):\n{done.stdout}{done.stderr}")
    return parse_wrk(done.stdout)


def parse_wrk(output: str) -> Figures:
    """Requests/s, the 50th and 99th latency percentiles and the error counts from `wrk --latency`'s report."""
    def latency(percent: str) -> float:
        found = re.search(rf"^\s+{percent}%\s+([\d.]+)(us|ms|s)\s*$", output, re.MULTILINE)
        if found is None:
            sys.exit(f"no {percent}% latency in wrk's output:\n{output}")
        return float(found.group(1)) * _UNITS[found.group(2)]

    rate = re.search(r"^Requests/sec:\s+([\d.]+)", output, re.MULTILINE)
    total = re.search(r"^\s+(\d+) requests in", output, re.MULTILINE)
    if rate is None or total is None:
        sys.exit(f"cannot read wrk's output:\n{output}")
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    errors = int(non_2xx.group(1)) if non_2xx else 0
    errors += sum(map(int, socket_errors.groups())) if socket_errors else 0
    return Figures(float(rate.group(1)), latency("50"), latency("99"), int(total.group(1)), errors)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds measured per target (default 10)")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds of load first, not measured (default 3)")
    parser.add_argument("--connections", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--server-cpus", default="0", help="taskset CPU list for the servers (default 0)")
    parser.add_argument("--wrk-cpus", default="1", help="taskset CPU list for wrk (default 1)")
    parser.add_argument("--gateway-cpus", help="taskset CPU list for the gateway (default: the servers')")
    parser.add_argument("--targets", nargs="+", choices=TARGETS, default=list(TARGETS))
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: apt-get install -y wrk")
    targets = list(dict.fromkeys(["mlspec", *args.targets]))  # the gateway forwards to mlspec; ratios need it
    if "caddy" in targets and caddy_binary() is None:
        if "--targets" in sys.argv:
            sys.exit("caddy is not installed: pip install -e '.[bench]'")
        targets.remove("caddy")
        print("(caddy is not installed, so it is not measured: pip install -e '.[bench]')")

    with tempfile.TemporaryDirectory(prefix="mlspec-bench-") as tmp:
        root = Path(tmp)
        registered = register_iris(root)
        ports = {name: free_port() for name in targets}
        write_gateway_config(root / "gateway.json", ports["mlspec"])
        if "caddy" in ports:
            write_caddy_config(root / "caddy.json", ports["caddy"], ports["mlspec"])
        argv = commands(registered, ports, root / "gateway.json")
        script = lua_script(root / "post.lua", IRIS_BODY, {"Content-Type": "application/json",
                                                            "Authorization": f"Bearer {KEY}"})
        hops = ("gateway", "forwarder", "caddy")
        cpus = {name: args.gateway_cpus if name in hops and args.gateway_cpus else args.server_cpus
                for name in targets}
        processes = {name: launch(argv[name], root / f"{name}.log", registered.tracking_uri, cpus[name])
                     for name in targets}
        try:
            for name in targets:
                wait_ready(f"http://127.0.0.1:{ports[name]}", processes[name], root / f"{name}.log",
                           health_path(name))
            print(f"servers on CPU {args.server_cpus}, gateway on CPU {cpus.get('gateway', '-')}, wrk on CPU "
                  f"{args.wrk_cpus}; {args.duration:g} s per run after {args.warmup:g} s of warm-up")
            for connections in args.connections:
                results: dict[str, Figures] = {}
                for name in targets:
                    url = f"http://127.0.0.1:{ports[name]}/invocations"
                    if args.warmup > 0:
                        wrk(url, script, connections, args.warmup, args.wrk_cpus)
                    results[name] = wrk(url, script, connections, args.duration, args.wrk_cpus)
                report(results, connections)
        finally:
            stop(processes)


def report(results: dict[str, Figures], connections: int) -> None:
    print(f"\n{connections} connection(s), single-row requests")
    print(f"{'target':<8} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'requests':>9} {'errors':>7}")
    for name, f in results.items():
        print(f"{name:<8} {f.rps:>9.0f} {f.p50_ms:>8.3f} {f.p99_ms:>8.3f} {f.requests:>9} {f.errors:>7}")
    ours = results["mlspec"]
    verdict = {True: "met", False: "MISSED"}
    if "mlflow" in results:
        ratio = ours.rps / results["mlflow"].rps
        print(f"mlspec / mlflow models serve throughput: {ratio:6.1f}x  (target >= 20x: {verdict[ratio >= 20]})")
    if "floor" in results:
        ratio = ours.rps / results["floor"].rps
        print(f"mlspec / floor throughput:               {ratio:6.2f}x  (target >= 0.7x: {verdict[ratio >= 0.7]})")
    if connections == 16:
        print(f"mlspec p99 at 16 connections:            {ours.p99_ms:6.2f} ms (target <= 5 ms: "
              f"{verdict[ours.p99_ms <= 5]})")
    if "gateway" in results:
        gateway = results["gateway"]
        p50, p99 = gateway.p50_ms / ours.p50_ms - 1, gateway.p99_ms / ours.p99_ms - 1
        print(f"gateway latency overhead:                p50 {p50:+.0%}, p99 {p99:+.0%}, throughput "
              f"{gateway.rps / ours.rps - 1:+.0%}  (target p50 <= +15%: {verdict[p50 <= 0.15]})")
    if "caddy" in results:
        caddy = results["caddy"]
        print(f"caddy latency overhead:                  p50 {caddy.p50_ms / ours.p50_ms - 1:+.0%}, p99 "
              f"{caddy.p99_ms / ours.p99_ms - 1:+.0%}, throughput {caddy.rps / ours.rps - 1:+.0%}")
    if "forwarder" in results:
        forwarder = results["forwarder"]
        print(f"forwarder latency overhead:              p50 {forwarder.p50_ms / ours.p50_ms - 1:+.0%}, p99 "
              f"{forwarder.p99_ms / ours.p99_ms - 1:+.0%}  (a raw byte copy: the least any proxy hop adds here)")
    if any(f.errors for f in results.values()):
        print("some requests failed (see errors): the figures above are not valid")


if __name__ == "__main__":
    main()
