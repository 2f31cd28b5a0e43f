"""Train a small MLP on scikit-learn's 8x8 digits with torch; save it as TorchScript for mlspec to register."""

import argparse
import os
from pathlib import Path

import numpy as np
import torch
from torch import nn


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", required=True, help="CSV with 64 pixel columns and 'digit'")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--model-dir", required=True)
    args = parser.parse_args()

    torch.manual_seed(0)
    table = np.loadtxt(args.data, delimiter=",", skiprows=1, dtype=np.float32)
    x, y = torch.from_numpy(table[:, :-1] / 16.0), torch.from_numpy(table[:, -1].astype(np.int64))
    order = torch.randperm(len(x))  # the CSV is grouped by writer: shuffle before holding out a test set
    split = int(len(x) * 0.8)
    train, test = order[:split], order[split:]
    net = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))
    optimiser = torch.optim.Adam(net.parameters(), lr=args.lr)
    for _ in range(args.epochs):
        shuffled = train[torch.randperm(len(train))]
        for start in range(0, len(shuffled), 64):
            batch = shuffled[start:start + 64]
            optimiser.zero_grad()
            loss = nn.functional.cross_entropy(net(x[batch]), y[batch])
            loss.backward()
            optimiser.step()
    with torch.no_grad():
        accuracy = float((net(x[test]).argmax(1) == y[test]).float().mean())
    print(f"mlp: test accuracy {accuracy:.3f}")

    if os.environ.get("MLFLOW_RUN_ID"):  # set by mlspec; the script also runs by hand without MLflow
        import mlflow

        mlflow.log_params({"epochs": args.epochs, "lr": args.lr})
        mlflow.log_metric("accuracy", accuracy)

    # Pixels arrive as 0..16 like the training data; scaling is part of the model the endpoint serves.
    class Scaled(nn.Module):
        def __init__(self, inner: nn.Module) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, pixels: torch.Tensor) -> torch.Tensor:
            return self.inner(pixels / 16.0).argmax(1)

    out = Path(args.model_dir)
    out.mkdir(parents=True, exist_ok=True)
    torch.jit.script(Scaled(net).eval()).save(str(out / "model.pt"))


if __name__ == "__main__":
    main()
