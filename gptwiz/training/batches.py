"""A run's batches: each a pure function of the run's seed and a stream of numbers, on the run's device."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from gptwiz.training.device import Runtime
from gptwiz.training.options import RunConfig


class Batches:
    def __init__(self, cfg: RunConfig, dataset: Any, runtime: Runtime):
        self.cfg = cfg
        self.dataset = dataset
        self.runtime = runtime

    def get(self, split: str, stream: tuple[int, ...]) -> tuple[Any, Any, Any]:
        """The batch of a (seed, stream) pair, with the data source of each sequence: the data order is a pure
        function of the iteration, so a resumed run, or N ranks splitting the same micro-steps, see exactly the
        batches of one process."""
        rng = np.random.default_rng([self.cfg.seed, *stream])
        x, y, src = self.dataset.batch(split, self.cfg.train.batch_size, self.cfg.model.block_size, rng)
        x, y = torch.from_numpy(x), torch.from_numpy(y)
        if self.runtime.device_type == "cuda":
            # Pinned host memory lets the copy overlap with the GPU still working on the previous step.
            x = x.pin_memory().to(self.runtime.device, non_blocking=True)
            y = y.pin_memory().to(self.runtime.device, non_blocking=True)
        return x, y, src
