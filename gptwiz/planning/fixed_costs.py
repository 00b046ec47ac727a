"""A run's fixed costs, in seconds, whatever its length: the process's start before its first step, and
torch.compile's first compilation where it compiles. Pure; gptwiz.planning.timing adds them to the steps."""

from __future__ import annotations

# Process start: Python, torch and gptwiz imported, the data opened, the model built. The imports are measured
# with the machine's speeds (gptwiz.training.throughput: Throughput.start_s), since they differ three times over
# between machines; after them a run opens its data, builds and initialises the model and exits:
# START_AFTER_IMPORT_S plus START_S_PER_PARAM a parameter. Without a measurement (an older cache, a named card's
# prior) STARTUP_S; on CUDA the context and cuBLAS start too. What evaluations and checkpoints cost is
# gptwiz.common.schedule's (the dashboard's ETA prices them the same). Figures: docs/benchmarks.md.
STARTUP_S = {"cpu": 6.0, "cuda": 15.0}
START_AFTER_IMPORT_S = {"cpu": 0.5, "cuda": 10.0}
START_S_PER_PARAM = 7e-9
# torch.compile, its first compilation of a shape: two graphs, the evaluation's (no gradient) at iteration 0 and
# the training step's, COMPILE_S + COMPILE_S_PER_LAYER a layer for both (benchmarks/compile_cost.py). Inductor
# keeps what it compiled (its FX graph and AOTAutograd caches, on by default) and a later run of the same shape
# loads it in seconds; a probe compiles the training graph when the run will, so after a probe only the
# evaluation's is new (COMPILE_EVAL_SHARE of the whole). The CUDA figure is an assumption, not measured.
COMPILE_S = {"cpu": 20.0, "cuda": 60.0}
COMPILE_S_PER_LAYER = {"cpu": 1.25, "cuda": 0.0}
COMPILE_EVAL_SHARE = 0.45


def start_seconds(device_type: str, params: int, measured_import_s: float = 0.0) -> float:
    """A run's process start before its first step, compilation aside: from the machine's measured import time
    where there is one, else the device's constant."""
    if measured_import_s <= 0:
        return STARTUP_S[device_type]
    return measured_import_s + START_AFTER_IMPORT_S[device_type] + START_S_PER_PARAM * params


def compile_seconds(device_type: str, n_layer: int, *, training: bool = True, evaluation: bool = True) -> float:
    """torch.compile's first compilation of the graphs named: the training step's and the evaluation's (a probe
    compiles only the first, and a run after a probe of its shape only the second)."""
    whole = COMPILE_S[device_type] + COMPILE_S_PER_LAYER[device_type] * n_layer
    return whole * ((1 - COMPILE_EVAL_SHARE) * training + COMPILE_EVAL_SHARE * evaluation)


__all__ = ["STARTUP_S", "START_AFTER_IMPORT_S", "START_S_PER_PARAM", "COMPILE_S", "COMPILE_S_PER_LAYER",
           "COMPILE_EVAL_SHARE", "start_seconds", "compile_seconds"]
