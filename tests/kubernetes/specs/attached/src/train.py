"""Data-parallel training of a small MLP under torchrun; rank 0 saves the TorchScript model."""

import argparse
import os

import torch
import torch.distributed as dist


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--model-dir", required=True)
    args = parser.parse_args()
    dist.init_process_group("gloo")
    torch.manual_seed(dist.get_rank())
    model = torch.nn.parallel.DistributedDataParallel(torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(),
                                                                          torch.nn.Linear(16, 2)))
    optimiser = torch.optim.SGD(model.parameters(), lr=0.1)
    for _ in range(args.epochs):
        x = torch.randn(64, 8)
        loss = torch.nn.functional.cross_entropy(model(x), (x.sum(dim=1) > 0).long())
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    if dist.get_rank() == 0:
        os.makedirs(args.model_dir, exist_ok=True)
        torch.jit.script(model.module).save(os.path.join(args.model_dir, "model.pt"))
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
