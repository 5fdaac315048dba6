"""Data-parallel training with PyTorch's DistributedDataParallel, launched by torchrun.

    torchrun --standalone --nproc_per_node 2 -m hashrec train --model acnn --data DIR --out MODEL

Every process builds the same model from the same seed, takes every `world`-th mini-batch of the
same shuffled epoch, and DDP averages the gradients, so one step sees `world` batches (the
effective batch is world x batch_size). Backend: gloo on CPU, NCCL on GPU. Only rank 0 writes
checkpoints and the model. Without torchrun (WORLD_SIZE unset) everything here is a no-op.
"""

from __future__ import annotations

import os
from typing import TypeVar

import torch
import torch.distributed as dist
from torch import nn

T = TypeVar("T")


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def rank() -> int:
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else int(os.environ.get("RANK", "0"))


def is_main() -> bool:
    """True in a single process and in rank 0 of a distributed run: the one that writes files."""
    return rank() == 0


def setup() -> torch.device:
    """Join the process group torchrun describes (once) and return this process's device."""
    cuda = torch.cuda.is_available()
    device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0"))) if cuda else torch.device("cpu")
    if cuda:
        torch.cuda.set_device(device)
    if world_size() > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if cuda else "gloo")
    return device


def wrap(net: nn.Module) -> nn.Module:
    """`net` inside DistributedDataParallel when running distributed, else `net` itself."""
    if world_size() == 1:
        return net
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(net)


def shard(batches: list[T]) -> list[T]:
    """This process's share of the epoch's batches; every rank gets the same number of steps,
    as DDP's all-reduce needs (the last `len % world` batches are dropped)."""
    n = world_size()
    if n == 1:
        return batches
    return batches[rank() : len(batches) - len(batches) % n : n]
