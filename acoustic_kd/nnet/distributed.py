"""Distributed training setup: under `torchrun` (WORLD_SIZE > 1) one process per rank, DDP with
gloo on CPU and nccl on GPU; otherwise a single process on CPU or one GPU.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass
class Dist:
    """This process's rank, the world size and its torch device."""

    rank: int = 0
    world: int = 1
    device: torch.device = torch.device("cpu")

    def sum(self, values: list[float]) -> list[float]:
        """Sum floats over ranks (float64)."""
        if self.world == 1:
            return values
        t = torch.tensor(values, dtype=torch.float64, device=self.device)
        dist.all_reduce(t)
        return t.tolist()


def setup_distributed(device: str = "auto") -> Dist:
    """The rank, world size and torch device of this process (`device`: auto | cpu | cuda);
    initialises the process group under torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    use_cuda = device == "cuda" or (device == "auto" and torch.cuda.is_available())
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if use_cuda else "gloo")
    rank = dist.get_rank() if world > 1 else 0
    if use_cuda:
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        dev = torch.device("cuda", local)
    else:
        dev = torch.device("cpu")
    return Dist(rank, world, dev)
