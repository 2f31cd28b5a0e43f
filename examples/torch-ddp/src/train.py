"""Data-parallel training on the CPU: each torchrun worker trains on its shard of the digits, DDP averages the
gradients over gloo, and rank 0 evaluates, logs to MLflow and saves the TorchScript model mlspec registers."""

import argparse
import os
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", required=True, help="CSV with 64 pixel columns and 'digit'")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--model-dir", required=True)
    args = parser.parse_args()

    # torchrun sets WORLD_SIZE, RANK and the rendezvous address; by hand the script trains alone.
    distributed = "WORLD_SIZE" in os.environ
    if distributed:
        dist.init_process_group("gloo")
    rank, world = (dist.get_rank(), dist.get_world_size()) if distributed else (0, 1)

    torch.manual_seed(0)  # the same split and initial weights on every rank
    table = np.loadtxt(args.data, delimiter=",", skiprows=1, dtype=np.float32)
    x, y = torch.from_numpy(table[:, :-1] / 16.0), torch.from_numpy(table[:, -1].astype(np.int64))
    order = torch.randperm(len(x))
    split = int(len(x) * 0.8)
    train, test = order[:split], order[split:]
    shard = train[rank::world]  # each rank sees its own part of the training set
    net = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))
    model = DistributedDataParallel(net) if distributed else net
    optimiser = torch.optim.Adam(model.parameters(), lr=args.lr)
    generator = torch.Generator().manual_seed(rank)
    batches = len(shard) // 32  # the same number of steps on every rank, so no rank waits on a missing all-reduce
    for _ in range(args.epochs):
        shuffled = shard[torch.randperm(len(shard), generator=generator)]
        for step in range(batches):
            batch = shuffled[step * 32:(step + 1) * 32]
            optimiser.zero_grad()
            nn.functional.cross_entropy(model(x[batch]), y[batch]).backward()  # DDP averages the gradients here
            optimiser.step()

    if rank == 0:
        with torch.no_grad():
            accuracy = float((net(x[test]).argmax(1) == y[test]).float().mean())
        print(f"ddp: {world} workers, {len(shard)} samples each, test accuracy {accuracy:.3f}", flush=True)
        if os.environ.get("MLFLOW_RUN_ID"):  # set by mlspec; the script also runs by hand without MLflow
            import mlflow

            mlflow.log_params({"epochs": args.epochs, "lr": args.lr, "world_size": world})
            mlflow.log_metric("accuracy", accuracy)
        torch.jit.script(Scaled(net).eval()).save(str(_made(args.model_dir) / "model.pt"))
    if distributed:
        dist.destroy_process_group()


class Scaled(nn.Module):
    """Pixels arrive as 0..16 like the training data; scaling is part of the model the endpoint serves."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.inner(pixels / 16.0).argmax(1)


def _made(folder: str) -> Path:
    path = Path(folder)
    path.mkdir(parents=True, exist_ok=True)
    return path


if __name__ == "__main__":
    main()
