"""Many processes, many machines: ``torch.distributed`` set up from torchrun's environment.

One machine, N processes (CPU: gloo; GPUs: NCCL, one process per GPU):

    torchrun --standalone --nproc_per_node N -m googlenet train ...

Several machines: start the same command on every machine with a shared rendezvous point
(torchrun's c10d rendezvous; any machine's address and a free port):

    torchrun --nnodes 2 --nproc_per_node 8 --rdzv_backend c10d \\
        --rdzv_endpoint HOST:29400 --rdzv_id my-run -m googlenet train --data /shared/imagenet ...

Every process reads the data (a DistributedSampler gives each its own shard), only rank 0 writes
the run directory, and the metrics are summed over all processes before they are logged.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Optional

import torch
import torch.distributed as dist
import torch.nn as nn


from ..errors import UserError


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    local_world_size: int = 1
    launched: bool = False  # started by torchrun (a process group even for a single process)

    @property
    def enabled(self) -> bool:
        """Whether this process joins a process group: several processes, or torchrun's one
        (one process on one GPU still runs NCCL and DDP, as on many)."""
        return self.world_size > 1 or self.launched

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def from_env() -> DistInfo:
    """The process's place in a torchrun job (or rank 0 of 1 without torchrun)."""
    env = os.environ
    world = int(env.get("WORLD_SIZE", "1"))
    launched = "TORCHELASTIC_RUN_ID" in env and "MASTER_ADDR" in env and "RANK" in env
    if world <= 1 and not launched:
        return DistInfo()
    return DistInfo(rank=int(env["RANK"]), world_size=world, local_rank=int(env.get("LOCAL_RANK", 0)),
                    local_world_size=int(env.get("LOCAL_WORLD_SIZE", world)), launched=launched)


def restart_count() -> int:
    """How many times torchrun has restarted this job's workers (``--max-restarts``)."""
    return int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0") or 0)


def init(info: DistInfo, device: torch.device) -> None:
    """Join the process group torchrun set up (env:// rendezvous).

    The store is namespaced by the restart attempt: torchrun's agent keeps one store across
    worker restarts, so without a prefix the restarted workers read the dead round's gloo
    addresses and fail with "Connection refused" (seen with torch 2.15, --max-restarts 1 and a
    SIGKILLed worker)."""
    if info.enabled and not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        store, rank, world = next(dist.rendezvous("env://"))
        store = dist.PrefixStore(f"googlenet/attempt_{restart_count()}", store)
        dist.init_process_group(backend, store=store, rank=rank, world_size=world,
                                device_id=device if device.type == "cuda" else None)


def shutdown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def barrier() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def all_reduce_sum(t: torch.Tensor) -> torch.Tensor:
    """Sum a tensor over all processes, in place (no-op in a single process)."""
    if dist.is_available() and dist.is_initialized():
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def resolve_device(spec: str, info: Optional[DistInfo] = None) -> torch.device:
    """``auto``, ``cpu``, ``cuda`` or ``cuda:N`` -> a device that exists here, always with its
    index on a GPU; every command resolves its ``--device`` here, and nowhere else.

    - ``auto``: CUDA when present, else the CPU.
    - ``cuda``: the current CUDA device (``torch.cuda.current_device()``, 0 unless
      ``CUDA_VISIBLE_DEVICES`` or an earlier ``set_device`` says otherwise); ``cuda:N``: that one.
    - under torchrun (``info``, read from the environment when not given, has more than one
      process): the GPU of the process's local rank.

    A CUDA device is also made current (``torch.cuda.set_device``), so code that allocates on
    "the" GPU (cuDNN, nvJPEG, NCCL) uses this one."""
    info = from_env() if info is None else info
    if spec == "auto":
        spec = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(spec)
    except (RuntimeError, TypeError):
        raise UserError(f"device {spec!r} is not a device; use auto, cpu, cuda or cuda:N",
                        key="device") from None
    if device.type == "cpu":
        return torch.device("cpu")
    if device.type != "cuda":
        raise UserError(f"device {spec!r}: only cpu and cuda are supported", key="device")
    if not torch.cuda.is_available():
        raise UserError(f"device {spec!r}: CUDA is not available on this machine; use cpu",
                        key="device")
    count = torch.cuda.device_count()
    if info.enabled:
        if device.index is not None and info.local_world_size > 1:
            raise UserError(f"device {spec!r}: under torchrun each process takes the GPU of its "
                            f"local rank; pass --device cuda (or auto)", key="device")
        index = info.local_rank if device.index is None else device.index
        if index >= count:
            raise UserError(f"local rank {info.local_rank} has no GPU: this machine has {count} "
                            f"CUDA device(s); start at most {count} processes per machine "
                            f"(torchrun --nproc_per_node {count})", key="device")
    else:
        index = torch.cuda.current_device() if device.index is None else device.index
        if index >= count:
            raise UserError(f"device {spec!r}: this machine has {count} CUDA device(s) "
                            f"(cuda:0 to cuda:{count - 1})", key="device")
    device = torch.device("cuda", index)
    torch.cuda.set_device(device)
    return device


def unwrap(model: nn.Module) -> nn.Module:
    """The bare network under DDP and torch.compile wrappers (an ``AveragedModel`` is kept)."""
    from torch.optim.swa_utils import AveragedModel

    while True:
        if hasattr(model, "module") and isinstance(model.module, nn.Module) and not isinstance(model, AveragedModel):
            model = model.module
        elif hasattr(model, "_orig_mod"):
            model = model._orig_mod
        else:
            return model
