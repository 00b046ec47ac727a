"""Does watching a run cost the run anything? The probe's seconds per iteration against the trainer's own.

Both sides run the same trainer with the same settings in a child process: `gptwiz train` on its own,
and `gptwiz probe` (run_probe in this process, following the child's metrics.jsonl a few times a
second, as the wizard does). The rounds alternate so that the machine's background load falls on
both alike; each figure is the mean step time (dt_s, measured inside the trainer) of the iterations
after warm-up. Also shown: the CPU seconds this process spent following the probe's child.

    python benchmarks/probe_overhead.py [--iters 30] [--rounds 3] [--batch_size 4] [--block_size 32]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TEXT = REPO.parent / "shared" / "data" / "tinyshakespeare.txt"


def trainer_alone(args: argparse.Namespace, work: Path, name: str) -> float:
    """Mean warm step time of `gptwiz train` with these settings, from its own metrics."""
    from gptwiz.runfolder import read_metrics
    from gptwiz.verdict import timing, warmup_iterations

    subprocess.run([sys.executable, "-m", "gptwiz", "train", "--config_file", args.config_file, "--model_name", name,
                    "--input_file", str(args.input_file), "--max_iters", str(args.iters), "--batch_size",
                    str(args.batch_size), "--block_size", str(args.block_size), "--eval_iters", "1",
                    "--eval_interval", str(args.iters), "--no-compile", "--quiet"],
                   cwd=work, check=True, stdout=subprocess.DEVNULL)
    dts = [r["dt_s"] for r in read_metrics(work / "runs" / name / "metrics.jsonl") if r.get("type") == "train"]
    # The same warm-up the probe leaves out: the schedule's warm-up of a run this long, at least 2.
    return timing(dts, warmup_iterations(len(dts), args.iters // 10)).sec_per_iter


def probe(args: argparse.Namespace, work: Path) -> tuple[float, float, float]:
    """(mean warm step time, CPU seconds this process spent following, CPU seconds the child trained)."""
    from gptwiz.probe import ProbeOptions, run_probe

    opts = ProbeOptions(config_file=args.config_file, input_file=str(args.input_file), iters=args.iters,
                        batch_size=args.batch_size, block_size=args.block_size, compile=False,
                        runs_dir=str(work / "runs"), data_dir=str(work / "data"))
    def cpu(who: int) -> float:
        usage = resource.getrusage(who)
        return usage.ru_utime + usage.ru_stime

    self0, child0 = cpu(resource.RUSAGE_SELF), cpu(resource.RUSAGE_CHILDREN)
    result = run_probe(opts)
    following, training = cpu(resource.RUSAGE_SELF) - self0, cpu(resource.RUSAGE_CHILDREN) - child0
    assert result.sec_per_iter is not None, result.reasons
    return result.sec_per_iter, following, training


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config_file", default="tiny")
    parser.add_argument("--input_file", type=Path, default=TEXT)
    parser.add_argument("--iters", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch_size", type=int, default=4)
    parser.add_argument("--block_size", type=int, default=32)
    args = parser.parse_args()
    os.environ.setdefault("TIKTOKEN_CACHE_DIR", str(REPO.parent / "shared" / "tiktoken"))
    import torch  # noqa: F401  imported up front so the probe's CPU figure is not the import's

    import gptwiz.train  # noqa: F401

    rows = []
    with tempfile.TemporaryDirectory(prefix="gptwiz-bench-") as tmp:
        work = Path(tmp)
        trainer_alone(args, work, "prime")  # tokenizes the text once, outside the timing
        for i in range(args.rounds):
            t_train = trainer_alone(args, work, f"r{i}")
            t_probe, following, training = probe(args, work)
            rows.append((t_train, t_probe, following, training))
            print(f"round {i + 1}: train {t_train:.4f} s/iter, probe {t_probe:.4f} s/iter, "
                  f"ratio {t_probe / t_train:.3f}; following {following:.3f} CPU s, child {training:.1f} CPU s",
                  flush=True)
    med = [statistics.median(r[k] for r in rows) for k in range(4)]
    print()
    print(f"{args.config_file}, batch {args.batch_size}, block {args.block_size}, {args.iters} iterations, "
          f"{args.rounds} alternating rounds (medians)")
    print(f"{'gptwiz train alone, s/iter':<40}{med[0]:>10.4f}")
    print(f"{'gptwiz probe, s/iter':<40}{med[1]:>10.4f}")
    print(f"{'probe / train (per-round median)':<40}{statistics.median(r[1] / r[0] for r in rows):>10.3f}")
    print(f"{'following: CPU s of this process':<40}{med[2]:>10.3f}")
    print(f"{'training: CPU s of the child':<40}{med[3]:>10.1f}")
    print(f"{'following / training CPU':<40}{100 * med[2] / med[3]:>9.2f}%")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
