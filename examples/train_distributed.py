"""Data-parallel training of a udnet module: DistributedDataParallel or FSDP2.

    torchrun --nproc_per_node 2 examples/train_distributed.py --mode ddp
    torchrun --nproc_per_node 2 examples/train_distributed.py --mode fsdp

Each process builds the same network (the default compile, with shared concat buffers),
takes its share of every global batch and trains; gradients are averaged across the
processes (DDP all-reduces them, FSDP2 reduce-scatters them into its parameter shards).
Runs on CPU with the gloo backend, on GPUs with nccl (one GPU per process).
--out FILE saves the trained parameters (gathered, in the module's order) for checking.
"""

from __future__ import annotations

import argparse
import os

import torch
import torch.distributed as dist

import udnet

HERE = os.path.dirname(os.path.abspath(__file__))
SPEC = os.path.join(HERE, "..", "specs", "densenet.ud")


def build(args) -> torch.nn.Module:
    torch.manual_seed(args.seed)  # the same initial weights in every process
    return udnet.load(args.spec, args.network, depth=args.depth, k=args.k)


def batches(args, steps: int):
    """The global batches (every process makes all of them and keeps its share)."""
    g = torch.Generator().manual_seed(args.seed + 1)
    for _ in range(steps):
        x = torch.randn(args.batch, 3, 32, 32, generator=g)
        yield x, torch.randint(0, 10, (args.batch,), generator=g)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mode", choices=("ddp", "fsdp"), default="ddp")
    ap.add_argument("--spec", default=SPEC)
    ap.add_argument("--network", default="DenseNetBC")
    ap.add_argument("--depth", type=int, default=16)
    ap.add_argument("--k", type=int, default=4)
    ap.add_argument("--batch", type=int, default=8, help="global batch, split across the processes")
    ap.add_argument("--steps", type=int, default=1)
    ap.add_argument("--lr", type=float, default=0.1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", help="save the trained parameters here (from rank 0)")
    args = ap.parse_args()

    cuda = torch.cuda.is_available()
    dist.init_process_group("nccl" if cuda else "gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0))) if cuda else torch.device("cpu")
    if cuda:
        torch.cuda.set_device(device)
    assert args.batch % world == 0, "the global batch must split evenly across the processes"

    model = build(args).to(device).train()
    if args.mode == "ddp":
        wrapped = torch.nn.parallel.DistributedDataParallel(model)
    else:
        from torch.distributed.fsdp import fully_shard

        for m in model.modules():  # shard each dense block, then the rest
            if m is not model and type(m).__name__.startswith("DenseBlock"):
                fully_shard(m)
        wrapped = fully_shard(model)
    opt = torch.optim.SGD(wrapped.parameters(), lr=args.lr)
    share = args.batch // world
    for step, (x, y) in enumerate(batches(args, args.steps)):
        x, y = x[rank * share:(rank + 1) * share].to(device), y[rank * share:(rank + 1) * share].to(device)
        loss = torch.nn.functional.cross_entropy(wrapped(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if rank == 0:
            print(f"step {step}: loss {loss.item():.4f} (rank 0's share)", flush=True)

    params = [p.full_tensor() if hasattr(p, "full_tensor") else p for p in model.parameters()]
    flat = torch.cat([p.detach().flatten().cpu() for p in params])
    if args.out and rank == 0:
        torch.save(flat, args.out)
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
