"""A distributed training script: a gloo all_reduce over every rank; rank 0 saves a TorchScript model."""

import argparse
import os

import torch
import torch.distributed as dist

parser = argparse.ArgumentParser()
parser.add_argument("model_dir")
parser.add_argument("--fail-rank", type=int, default=-1)
parser.add_argument("--world-size", type=int, default=4)
args = parser.parse_args()

dist.init_process_group("gloo")
rank, world = dist.get_rank(), dist.get_world_size()
assert world == args.world_size == int(os.environ["WORLD_SIZE"]), (world, os.environ["WORLD_SIZE"])
assert rank == int(os.environ["RANK"]) and os.environ["MASTER_ADDR"] == "127.0.0.1"
print(f"rank {rank} of {world}, local rank {os.environ['LOCAL_RANK']}, master port {os.environ['MASTER_PORT']}",
      flush=True)
if rank == args.fail_rank:
    raise RuntimeError(f"rank {rank} was told to fail")
total = torch.tensor([float(rank + 1)])
dist.all_reduce(total)
assert total.item() == world * (world + 1) / 2, total
if rank == 0:
    torch.manual_seed(0)
    model = torch.jit.script(torch.nn.Linear(4, 3))
    os.makedirs(args.model_dir, exist_ok=True)
    torch.jit.save(model, os.path.join(args.model_dir, "model.pt"))
    print(f"rank 0 saved the model; all_reduce gave {total.item():g}", flush=True)
dist.destroy_process_group()
