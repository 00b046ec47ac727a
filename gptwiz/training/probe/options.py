"""What a probe is asked to do (ProbeOptions), what it reports while it runs (ProbeProgress), and how each of its
attempts ended (Attempt)."""

from __future__ import annotations

from dataclasses import dataclass

from gptwiz.planning.policy import PROBE_ITERS


@dataclass
class ProbeOptions:
    """What to probe. None: the preset's value."""
    config_file: str | None = None
    input_file: str | None = None
    dataset_dir: str | None = None
    iters: int = PROBE_ITERS            # at most the full run's (gptwiz.planning.policy.probe_iters)
    batch_size: int | None = None
    block_size: int | None = None
    grad_accum: int | None = None
    learning_rate: float | None = None
    optimizer: str | None = None        # default: the preset's
    dropout: float | None = None        # default: the full run's (gptwiz.planning.policy.run_dropout)
    max_iters: int | None = None        # the full run's length, for the projection (default: the preset's)
    device: str = "auto"
    dtype: str = "auto"
    compile: bool | None = None         # default: whatever the full run would do
    model_name: str | None = None       # with a name: runs/<name>/ gets the probe's records and probe.json
    memory_limit_gb: float | None = None
    seed: int = 1337
    runs_dir: str = "runs"
    data_dir: str = "data"
    budget_s: float | None = None       # the time the full run may take (None: only very long runs are flagged)
    budget_label: str | None = None     # where the budget comes from: "your budget of 2 h", the guide's ...


@dataclass
class ProbeProgress:
    """One update for a progress display: after each iteration, and at each retry."""
    iter: int
    iters: int
    batch_size: int
    grad_accum: int
    attempt: int
    loss: float | None = None
    tokens_per_sec: float | None = None
    peak_mem_bytes: int | None = None
    message: str | None = None
    eta_s: float | None = None          # what is left of this attempt: iterations left x the warm step time
    sec_per_iter: float | None = None   # the warm step time so far
    eta_rough: bool = False             # only the slow first steps (compilation) measured yet: an overestimate


@dataclass
class Attempt:
    """One run of the child trainer at one micro-batch size."""
    batch_size: int
    grad_accum: int
    outcome: str       # "ok", "oom", "diverged", "failed", "cancelled" (should_cancel, or the trainer stopped)
    iters: int
    detail: str | None = None
