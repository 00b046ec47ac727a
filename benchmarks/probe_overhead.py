"""Does watching a run cost the run anything? The probe's seconds per iteration against the trainer's own.

Both sides run the same trainer with the same settings in a child process: `gptwiz train` on its own,
and `gptwiz probe` (run_probe in this process, following the child's metrics.jsonl a few times a
second, as the wizard does). The rounds alternate so that the machine's background load falls on
both alike. Step times are the trainer's own dt_s of the iterations after warm-up: the mean (what a
projection uses) and the fastest step (the least disturbed by other processes on a shared machine).
Also shown: the CPU seconds this process spent following the probe, against the child's training.

    python benchmarks/probe_overhead.py [--iters 30] [--rounds 5] [--batch_size 4] [--block_size 32]
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


def warm_steps(metrics: Path, kind: str, iters: int) -> list[float]:
    """The step times after warm-up (the warm-up the probe leaves out for a run this long)."""
    from gptwiz.planning.verdict import warmup_iterations
    from gptwiz.runs.metrics import read_metrics

    dts = [r["dt_s"] for r in read_metrics(metrics) if r.get("type") == kind]
    return dts[warmup_iterations(len(dts), iters // 10):]


def trainer_alone(args: argparse.Namespace, work: Path, name: str) -> list[float]:
    subprocess.run([sys.executable, "-m", "gptwiz", "train", "--config_file", args.config_file, "--model_name", name,
                    "--input_file", str(args.input_file), "--max_iters", str(args.iters), "--batch_size",
                    str(args.batch_size), "--block_size", str(args.block_size), "--eval_iters", "1",
                    "--eval_interval", str(args.iters), "--no-compile", "--quiet"],
                   cwd=work, check=True, stdout=subprocess.DEVNULL)
    return warm_steps(work / "runs" / name / "metrics.jsonl", "train", args.iters)


def _cpu(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def probe(args: argparse.Namespace, work: Path, name: str) -> tuple[list[float], float, float]:
    """(warm step times, CPU seconds this process spent following, CPU seconds the child trained)."""
    from gptwiz.training.probe import ProbeOptions, run_probe

    opts = ProbeOptions(config_file=args.config_file, input_file=str(args.input_file), iters=args.iters,
                        batch_size=args.batch_size, block_size=args.block_size, compile=False, model_name=name,
                        runs_dir=str(work / "runs"), data_dir=str(work / "data"))
    self0, child0 = _cpu(resource.RUSAGE_SELF), _cpu(resource.RUSAGE_CHILDREN)
    result = run_probe(opts)
    following, training = _cpu(resource.RUSAGE_SELF) - self0, _cpu(resource.RUSAGE_CHILDREN) - child0
    assert result.iters == args.iters, result.reasons
    return warm_steps(work / "runs" / name / "metrics.jsonl", "probe", args.iters), following, training


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config_file", default="tiny")
    parser.add_argument("--input_file", type=Path, default=TEXT)
    parser.add_argument("--iters", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batch_size", type=int, default=4)
    parser.add_argument("--block_size", type=int, default=32)
    args = parser.parse_args()
    os.environ.setdefault("TIKTOKEN_CACHE_DIR", str(REPO.parent / "shared" / "tiktoken"))
    import torch  # noqa: F401  imported up front so the following CPU figure is not the import's

    import gptwiz.training.trainer  # noqa: F401

    rows = []
    with tempfile.TemporaryDirectory(prefix="gptwiz-bench-") as tmp:
        work = Path(tmp)
        trainer_alone(args, work, "prime")  # tokenizes the text once, outside the timing
        for i in range(args.rounds):
            train_dts = trainer_alone(args, work, f"t{i}")
            probe_dts, following, training = probe(args, work, f"p{i}")
            row = (statistics.mean(train_dts), statistics.mean(probe_dts), min(train_dts), min(probe_dts),
                   following, training)
            rows.append(row)
            print(f"round {i + 1}: mean train {row[0]:.4f} probe {row[1]:.4f} s/iter ({row[1] / row[0]:.3f}); "
                  f"fastest train {row[2]:.4f} probe {row[3]:.4f} ({row[3] / row[2]:.3f}); "
                  f"following {following:.3f} CPU s, child {training:.1f} CPU s", flush=True)
    med = [statistics.median(r[k] for r in rows) for k in range(6)]
    print()
    print(f"{args.config_file}, batch {args.batch_size}, block {args.block_size}, {args.iters} iterations, "
          f"{args.rounds} alternating rounds, medians over rounds")
    print(f"{'':<30}{'train alone':>12}{'probe':>12}{'probe/train':>13}")
    print(f"{'mean warm s/iter':<30}{med[0]:>12.4f}{med[1]:>12.4f}{statistics.median(r[1] / r[0] for r in rows):>13.3f}")
    print(f"{'fastest warm s/iter':<30}{med[2]:>12.4f}{med[3]:>12.4f}{statistics.median(r[3] / r[2] for r in rows):>13.3f}")
    print(f"following: {med[4]:.3f} CPU s in this process against {med[5]:.1f} CPU s of training "
          f"({100 * med[4] / med[5]:.2f}%)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
