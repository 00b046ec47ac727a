"""`python -m gptwiz`. SIGTERM and Ctrl-C during the first imports end the process with one line and exit
status 130, as they do later (gptwiz.cli.main), instead of a traceback or a death by signal."""

import os
import signal
import sys


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


signal.signal(signal.SIGTERM, _interrupt)  # before anything else is imported: gptwiz.cli.main installs its own
try:
    from gptwiz.cli import main
except KeyboardInterrupt:
    print("gptwiz: interrupted while starting", file=sys.stderr)
    raise SystemExit(130) from None

code = main()
if code == 130:
    # Interrupted (its one line is printed): leave without the interpreter's shutdown, which in a process
    # stopped half-way through importing torch can re-raise the interrupt and end it by the signal instead.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(130)
raise SystemExit(code)
