"""Where this process stands in a ``torchrun`` launch, and the decisions that follow from it.

torchrun (which the Kubeflow training operator's pods start) tells each process its
place through ``WORLD_SIZE``, ``RANK`` and ``LOCAL_RANK``; without them the process is
alone (rank 0 of 1). The process group itself is made by accelerate, through the
Trainer (DDP for LoRA, FSDP for full fine-tuning): nothing here trains. This module
reads the environment, picks the backend, splits the spec's global batch over the
processes, and holds the one barrier the training stages end with.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Mapping, Optional

from .data import DataError


class BatchLayoutError(DataError):
    """The spec's global batch cannot be split evenly over the processes (a user mistake: exit 3, one line)."""


@dataclass(frozen=True)
class RankInfo:
    """This process's place: its global rank, its rank on this machine, and how many processes there are."""

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1

    @property
    def main(self) -> bool:
        """Rank 0: the one process that saves the model and writes the stage result."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def rank_info(environ: Optional[Mapping[str, str]] = None) -> RankInfo:
    """The rank torchrun gave this process (``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``); rank 0 of 1 when they are unset."""
    env = os.environ if environ is None else environ

    def number(name: str, default: int) -> int:
        text = env.get(name, "").strip()
        if not text:
            return default
        try:
            return int(text)
        except ValueError:
            raise ValueError(f"environment variable {name}={text!r} is not an integer") from None

    info = RankInfo(rank=number("RANK", 0), local_rank=number("LOCAL_RANK", 0), world_size=number("WORLD_SIZE", 1))
    if info.world_size < 1 or not 0 <= info.rank < info.world_size or info.local_rank < 0:
        raise ValueError(f"inconsistent torchrun environment: RANK={info.rank} LOCAL_RANK={info.local_rank} WORLD_SIZE={info.world_size}")
    return info


def backend(cuda: bool) -> str:
    """The collective backend: NCCL between GPUs, gloo on CPUs (NCCL has no CPU transport)."""
    return "nccl" if cuda else "gloo"


@dataclass(frozen=True)
class BatchLayout:
    """How one optimizer step's pairs are split: per process, per forward pass, and in how many passes."""

    per_device: int
    accumulation: int
    world_size: int

    @property
    def global_batch(self) -> int:
        return self.per_device * self.accumulation * self.world_size


def batch_layout(batch_size: int, accumulation: int, world_size: int) -> BatchLayout:
    """Split the spec's global batch (``batchSize`` x ``gradientAccumulationSteps``) over ``world_size`` processes.

    The global batch is what a single process would use, so the optimizer sees the same
    pairs per step whatever the number of processes. Each process takes its share in as
    few forward passes as possible, never more than ``batch_size`` pairs per pass (the
    spec's memory bound).
    """
    total = batch_size * accumulation
    if total % world_size:
        raise BatchLayoutError(
            f"training.batchSize x gradientAccumulationSteps = {batch_size} x {accumulation} = {total} pairs per step cannot be "
            f"split evenly over {world_size} training processes; make it a multiple of {world_size}"
        )
    share = total // world_size
    passes = next(n for n in range(1, share + 1) if share % n == 0 and share // n <= batch_size)
    return BatchLayout(per_device=share // passes, accumulation=passes, world_size=world_size)


def finish() -> None:
    """Wait for every rank (rank 0 has saved by then), then close the process group; nothing when alone."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def same_on_every_rank(digest: str) -> bool:
    """Whether every rank computed the same ``digest`` (of its input data); True when alone."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return True
    digests: list[Optional[str]] = [None] * dist.get_world_size()
    dist.all_gather_object(digests, digest)
    return len(set(digests)) == 1
