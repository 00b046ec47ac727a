"""Which process of a run this is: torchrun's RANK, LOCAL_RANK and WORLD_SIZE, read without torch.

A single process, with no such variables, is rank 0 of a world of one. Light on purpose: the CLI and the option
resolving ask for the world size before anything imports torch (gptwiz.training.distributed does the rest).
"""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class DistContext:
    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    backend: str | None = None
    fsdp: bool = False

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        # Only rank 0 writes the run folder, so that N processes never race on one file.
        return self.rank == 0


def env_world_size() -> int:
    try:
        return int(os.environ.get("WORLD_SIZE", "1"))
    except ValueError:
        return 1
