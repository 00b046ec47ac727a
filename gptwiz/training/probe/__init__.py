"""`gptwiz probe`: the guide's 100-iteration validation run, measured and judged.

The real trainer runs as a probe (no evaluation, no checkpoints, "probe" records) in a child process, so that its
memory is measured alone and an out-of-memory or a crash cannot take the caller down. The modules, in the order
a probe uses them:

- options: what to probe (ProbeOptions), the progress it reports, its attempts
- scratch: the probe's private temporary folder, and the removal of those of killed probes
- plan: the settings checked and settled before anything starts
- trainer_options: what makes the trainer's run a probe
- attempt: one run of the child, followed, stopped when asked or past the memory limit
- child: the child process's entry (`python -m gptwiz.training.probe.child --child SPEC.json`)
- memory: the memory figures read from outside the child
- measure, result: the final attempt's figures, judged by gptwiz.planning.verdict (ProbeResult)
- run: run_probe, with its retries at half the micro-batch after an out-of-memory

The probe's face on the terminal (progress bar, verdict panel) is the front-ends' (gptwiz.cli.probe_view).
"""

from gptwiz.training.probe.attempt import is_oom_message
from gptwiz.training.probe.options import Attempt, ProbeOptions, ProbeProgress
from gptwiz.training.probe.plan import MIN_ITERS
from gptwiz.training.probe.result import ProbeResult
from gptwiz.training.probe.run import run_probe
from gptwiz.training.probe.scratch import SCRATCH_PREFIX, remove_stale_scratch, scratch_folder

__all__ = ["Attempt", "MIN_ITERS", "ProbeOptions", "ProbeProgress", "ProbeResult", "SCRATCH_PREFIX",
           "is_oom_message", "remove_stale_scratch", "run_probe", "scratch_folder"]
