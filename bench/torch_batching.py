"""Dynamic batching for torch models: the digits MLP served with batching on and off, 64 concurrent clients.

Run: .venv/bin/python bench/torch_batching.py [--duration 10] [--warmup 3] [--connections 64] [--device cpu]

The model is the torch example's kind (a 64-64-10 MLP on 8x8 digits, TorchScript), registered in a fresh MLflow
store by mlspec's packaging. Two mlspec servers serve it: `on` stacks concurrent requests into one model call
(--max-batch-size 32 --max-wait 0.002, the example endpoint's settings), `off` scores each request alone
(--max-batch-size 1). Load: wrk, one thread, single-row requests, pinned away from the servers (taskset).
The report says which device the model ran on: the target (>= 5x) is for a GPU, where a model call's fixed cost
is large; on a CPU a small MLP's call is cheap next to the HTTP work, so batching gains less there.
"""

from __future__ import annotations

import argparse
import re
import shutil
import sys
import tempfile
import urllib.request
from pathlib import Path

from _serving_common import PYTHON, digits_body, free_port, launch, register_digits_mlp, stop, wait_ready
from serving import Figures, lua_script, wrk

SETTINGS = {"on": ["--max-batch-size", "32", "--max-wait", "0.002"], "off": ["--max-batch-size", "1"]}


def requests_per_call(url: str) -> float:
    """Mean requests per model call, from the server's own metrics."""
    with urllib.request.urlopen(url + "/metrics", timeout=5) as answer:
        text = answer.read().decode()
    total = re.search(r"^mlspec_predict_batch_requests_sum(?:\{\})? ([\d.e+]+)$", text, re.MULTILINE)
    calls = re.search(r"^mlspec_predict_batch_requests_count(?:\{\})? ([\d.e+]+)$", text, re.MULTILINE)
    if total is None or calls is None or float(calls.group(1)) == 0:
        return float("nan")
    return float(total.group(1)) / float(calls.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds measured per server (default 10)")
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--device", default="cpu", help="the servers' --device (default cpu; auto: a GPU if any)")
    parser.add_argument("--server-cpus", default="0", help="taskset CPU list for the servers (default 0)")
    parser.add_argument("--wrk-cpus", default="1", help="taskset CPU list for wrk (default 1)")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: apt-get install -y wrk")

    with tempfile.TemporaryDirectory(prefix="mlspec-bench-") as tmp:
        root = Path(tmp)
        registered = register_digits_mlp(root)
        ports = {name: free_port() for name in SETTINGS}
        processes = {
            name: launch([PYTHON, "-m", "mlspec.runtime.serving", "--model-uri", registered.model_uri,
                          "--tracking-uri", registered.tracking_uri, "--port", str(ports[name]), "--name", name,
                          "--device", args.device, *flags], root / f"{name}.log", registered.tracking_uri,
                         args.server_cpus)
            for name, flags in SETTINGS.items()}
        script = lua_script(root / "post.lua", digits_body(), {"Content-Type": "application/json"})
        results: dict[str, Figures] = {}
        per_call: dict[str, float] = {}
        try:
            for name in SETTINGS:
                wait_ready(f"http://127.0.0.1:{ports[name]}", processes[name], root / f"{name}.log")
            device = _device(args.device)
            print(f"digits MLP (TorchScript) on {device}; servers on CPU {args.server_cpus}, wrk on CPU "
                  f"{args.wrk_cpus}; {args.connections} connections, {args.duration:g} s per server")
            for name in SETTINGS:
                url = f"http://127.0.0.1:{ports[name]}"
                if args.warmup > 0:
                    wrk(url + "/invocations", script, args.connections, args.warmup, args.wrk_cpus)
                results[name] = wrk(url + "/invocations", script, args.connections, args.duration, args.wrk_cpus)
                per_call[name] = requests_per_call(url)
        finally:
            stop(processes)
    print(f"{'batching':<9} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'req/call':>9} {'errors':>7}")
    for name, f in results.items():
        print(f"{name:<9} {f.rps:>9.0f} {f.p50_ms:>8.3f} {f.p99_ms:>8.3f} {per_call[name]:>9.1f} {f.errors:>7}")
    ratio = results["on"].rps / results["off"].rps
    print(f"throughput, batching on / off: {ratio:.2f}x (target >= 5x, on a GPU; this run: {device})")


def _device(requested: str) -> str:
    """The device the servers put the model on: what was asked for, or for `auto` what torch finds here."""
    if requested != "auto":
        return requested
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


if __name__ == "__main__":
    main()
