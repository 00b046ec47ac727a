"""How well gptwiz predicts a run's final validation loss and bits per byte, before and after its probe.

Runs that were not in the quality model's fit (benchmarks/loss_curves.py collects those): tiny and small, on
../shared/data/tinyshakespeare.txt and on the built-in demo corpus, 200 to 2,000 iterations, their shapes drawn by
a seed the script prints. Each is probed (`gptwiz probe --json`) and trained (`gptwiz train`) into
benchmarks/data/loss_heldout.json; then each is predicted as `estimate` and `recommend` predict it before anything
runs (gptwiz.planning.quality.predict_quality, from its settings and its data's measured difficulty) and as
`probe` refits it (refit_from_probe on the probe's recorded losses), and the reached final validation loss is set
against both. The quality model never sees these runs: it is fitted on benchmarks/data/loss_curves.json.

    python benchmarks/loss_prediction.py [--seed 8] [--runs 8]   # predict, probe, train: about 40 minutes
    python benchmarks/loss_prediction.py --record                # only probe and train, into the record file
    python benchmarks/loss_prediction.py --score                 # score the recorded runs with the model now

Goals: median absolute error at most 0.25 nats before a probe and 0.10 after; at least 80% of the reached
losses inside the 80% band.
"""

from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import loss_curves as lc  # noqa: E402  (a sibling script)

HELD_OUT = lc.ROOT / "benchmarks" / "data" / "loss_heldout.json"
MAX_COST = 400_000  # a run's cost (tokens, small's x4) at most: about 6 minutes on one core


def draw_runs(seed: int, n: int) -> list[tuple[str, str, int, int, int]]:
    """n shapes: presets and corpora alternating, iterations 200 to 2,000, batch and context drawn, within
    MAX_COST; none equal to a run the fit has (its grid, and the held-out runs of earlier seeds it took in)."""
    fitted = {(r["corpus"], r["preset"], r["iters"], r["batch"], r["block"]) for r in lc.load(lc.CURVES)}
    rng = random.Random(seed)
    out: list[tuple[str, str, int, int, int]] = []
    while len(out) < n:
        preset = ("tiny", "small")[len(out) % 2]
        corpus = ("shakespeare", "demo")[(len(out) // 2) % 2]
        g = (corpus, preset, rng.randrange(200, 2001, 50), rng.choice([2, 4]), rng.choice([32, 64, 128]))
        if lc.cost(g) <= MAX_COST and g not in lc.GRID and g not in fitted and g not in out:
            out.append(g)
    return out


def record(seed: int, n: int, jobs: int) -> None:
    print(f"seed {seed}: {n} runs not in the fit")
    lc.collect(draw_runs(seed, n), HELD_OUT, jobs)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seed", type=int, default=8)
    ap.add_argument("--runs", type=int, default=8)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--record", action="store_true")
    ap.add_argument("--score", action="store_true")
    a = ap.parse_args()
    if a.record or not a.score:
        record(a.seed, a.runs, a.jobs)
    if a.score or not a.record:
        from loss_fit import score_report, with_facts

        records = with_facts(lc.load(HELD_OUT))
        lc.save(HELD_OUT, records)
        score_report(records)


if __name__ == "__main__":
    main()
