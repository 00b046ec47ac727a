"""How fast `gptwiz prepare` tokenizes, with one worker and with every core, and its peak memory.

Generates a corpus of many files from tinyshakespeare (varied, so no two files are the same) in a
temporary folder, then runs `gptwiz prepare` on it once per worker count, side by side in one run,
each in its own subprocess so its peak RSS can be read from the kernel (wait4's ru_maxrss).

    python benchmarks/prepare_throughput.py                 # ~100 MB corpus
    python benchmarks/prepare_throughput.py --size_mb 10    # a quick check
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SHAKESPEARE = REPO.parent / "shared" / "data" / "tinyshakespeare.txt"


def make_corpus(folder: Path, size_mb: float, seed: int = 0) -> tuple[int, int]:
    """Files of 20-300 KB cut from tinyshakespeare at random places, a word changed per file; some as .jsonl."""
    text = SHAKESPEARE.read_text(encoding="utf-8")
    rng = random.Random(seed)
    target = int(size_mb * 1e6)
    written = files = 0
    while written < target:
        size = min(rng.randint(20_000, 300_000), target - written + 1)
        start = rng.randrange(0, len(text) - size)
        doc = text[start:start + size].replace(" the ", f" the{files % 97} ")
        sub = folder / f"part{files % 16:02d}"
        sub.mkdir(parents=True, exist_ok=True)
        if files % 10 == 9:  # a tenth of the files hold many documents, as JSON lines
            import json
            lines = [json.dumps({"text": doc[i:i + 2000]}) for i in range(0, len(doc), 2000)]
            data = ("\n".join(lines) + "\n").encode("utf-8")
            (sub / f"f{files:05d}.jsonl").write_bytes(data)
        else:
            data = doc.encode("utf-8")
            (sub / f"f{files:05d}.txt").write_bytes(data)
        written += len(data)
        files += 1
    return files, written


def run_prepare(corpus: Path, out: Path, workers: int) -> tuple[float, float, int, int]:
    """(wall seconds, CPU seconds, peak RSS bytes, exit status) of one `gptwiz prepare` in its own process."""
    env = dict(os.environ)
    env.setdefault("TIKTOKEN_CACHE_DIR", str(REPO.parent / "shared" / "tiktoken"))
    cmd = [sys.executable, "-m", "gptwiz", "prepare", "--source", f"corpus:{corpus}/**/*.*", "--out_dir", str(out),
           "--workers", str(workers), "--quiet", "--overwrite", "--block_size", "256"]
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    cpu = usage.ru_utime + usage.ru_stime
    return seconds, cpu, usage.ru_maxrss * 1024, proc.returncode  # ru_maxrss is in KiB on Linux


def digest(folder: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(folder.iterdir()):
        h.update(p.name.encode())
        h.update(p.read_bytes())
    return h.hexdigest()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size_mb", type=float, default=100.0)
    ap.add_argument("--workers", default=None, help="comma-separated worker counts (default: 1 and every core)")
    args = ap.parse_args()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    counts = [int(w) for w in args.workers.split(",")] if args.workers else sorted({1, cores})
    tmp = Path(tempfile.mkdtemp(prefix="gptwiz-prepare-bench-"))
    try:
        files, nbytes = make_corpus(tmp / "corpus", args.size_mb)
        print(f"corpus: {files} files, {nbytes / 1e6:.1f} MB; {cores} cores; load average before: "
              f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        rows = []
        for w in counts:
            seconds, cpu, rss, code = run_prepare(tmp / "corpus", tmp / f"out{w}", w)
            if code != 0:
                print(f"prepare with {w} workers failed (exit {code})", file=sys.stderr)
                return 1
            rows.append((w, seconds, cpu, nbytes / 1e6 / seconds, rss, digest(tmp / f"out{w}")))
        base = rows[0][3]
        # CPU s / wall s: the cores the run actually got; below the worker count when the machine is busy.
        print(f"{'workers':>7} {'wall s':>7} {'CPU s':>7} {'cores used':>10} {'MB/s':>7} {'speedup':>8} "
              f"{'peak RSS MB':>12}")
        for w, seconds, cpu, rate, rss, _ in rows:
            print(f"{w:>7} {seconds:>7.1f} {cpu:>7.1f} {cpu / seconds:>10.2f} {rate:>7.2f} {rate / base:>7.2f}x "
                  f"{rss / 2**20:>12.0f}")
        same = len({r[5] for r in rows}) == 1
        print(f"output identical across worker counts: {'yes' if same else 'NO'}; load average after: "
              f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        return 0 if same else 1
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
