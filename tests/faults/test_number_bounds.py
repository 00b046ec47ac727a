"""Numbers at the edges: every number a user can type (each numeric flag of every verb, each numeric preset key)
has a range, and a value outside it, however long, is one line on stderr naming the flag or key and the valid
range, exit status 2, with nothing written. Also: a checkpoint whose config claims a model far bigger than its
tensors is refused before the model is built, and a divergence caused by an absurd weight decay says so.

Commands that refuse before torch is imported run as real processes; the train and probe cases (which import
torch before they check) run through `gptwiz.cli.main` in this process, after one real process of each."""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import SHAKESPEARE, assert_one_line_error, run_cli

from faults.support import MICRO, fault_env, micro_preset, one_line, train_args
from gptwiz.cli import main

BIG = str(10**30)
HUGE = "9" * 5000  # more digits than Python converts to an integer (4300)
LONG = "1" * 400   # read as a float, it is infinity
DATA = ["--input_file", str(SHAKESPEARE)]


def _preset(folder: Path, key: str, raw: str) -> str:
    """The micro preset with `key` set to the JSON text `raw` (a number longer than Python writes one)."""
    path = folder / f"{key}-{len(raw)}.json"
    path.write_text(json.dumps({**MICRO, key: 0}).replace(f'"{key}": 0', f'"{key}": {raw}'))
    return str(path)


def _refused_in_process(argv: list[str]) -> tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        try:
            rc = main(argv)
        except SystemExit as exc:  # argparse's own refusals
            rc = int(exc.code or 0)
    return rc, err.getvalue()


def _cases(tmp: Path) -> list[tuple[list[str], tuple[str, ...]]]:
    """(a command line, what its one line must name), for the commands that refuse before importing torch."""
    return [
        (["recommend", "--use_case", "chat", "--vram-gb", "1e400"], ("--vram-gb", "0 to 4096")),
        (["recommend", "--use_case", "chat", "--vram-gb", LONG], ("--vram-gb", "0 to 4096")),
        (["recommend", "--use_case", "chat", "--vram-gb", "24", "--gpus", "100000"], ("--gpus", "1 to 1024")),
        (["recommend", "--use_case", "chat", "--vram-gb", "24", "--gpus", HUGE], ("--gpus", "1 to 1024")),
        (["estimate", "--config_file", "tiny", "--block_size", BIG], ("--block_size", "1 to 1048576")),
        (["estimate", "--config_file", "tiny", "--batch_size", BIG], ("--batch_size", "1 to 65536")),
        (["estimate", "--config_file", "tiny", "--grad_accum", BIG], ("--grad_accum", "1 to 65536")),
        (["estimate", "--config_file", _preset(tmp, "n_layer", HUGE)], ("n_layer-5000.json", "4300 digits")),
        (["estimate", "--config_file", _preset(tmp, "n_layer", "1" * 4000)], ("'n_layer'", "1 to 1024",
                                                                                 "4000 characters")),
        (["estimate", "--config_file", _preset(tmp, "block_size", BIG)], ("'block_size'", "1 to 1048576")),
        (["estimate", "--config_file", _preset(tmp, "vocab_size", BIG)], ("'vocab_size'", "to 1048576")),
        (["estimate", "--config_file", _preset(tmp, "weight_decay", "1e308")], ("'weight_decay'", "[0, 1000]")),
        (["estimate", "--config_file", _preset(tmp, "grad_clip", "1e300")], ("'grad_clip'", "[0, 1e+06]")),
        (["estimate", "--config_file", _preset(tmp, "max_iters", BIG)], ("'max_iters'", "1 to 1000000000")),
        (["estimate", "--config_file", _preset(tmp, "eval_iters", BIG)], ("'eval_iters'", "1 to 1000000")),
        (["estimate", "--config_file", _preset(tmp, "batch_size", "1e400")], ("'batch_size'", "whole number")),
        (["sample", "--model_name", "x", "--temperature", "1e-300"], ("--temperature", "0.001 to 100")),
        (["sample", "--model_name", "x", "--temperature", "1e400"], ("--temperature", "0.001 to 100")),
        (["sample", "--model_name", "x", "--max_new_tokens", BIG], ("--max_new_tokens", "1 to 1000000")),
        (["sample", "--model_name", "x", "--top_k", BIG], ("--top_k", "1 to 1048576")),
        (["sample", "--model_name", "x", "--num_samples", BIG], ("--num_samples", "1 to 10000")),
        (["sample", "--model_name", "x", "--seed", str(2**40)], ("--seed", "0 to 4294967295")),
        (["prepare", "--source", "d:x/*.txt", "--out_dir", "o", "--workers", BIG], ("--workers", "1 to 1024")),
        (["prepare", "--source", "d:x/*.txt", "--out_dir", "o", "--block_size", BIG], ("--block_size", "1 to 1048576")),
        (["stop", "x", "--wait", "nan"], ("--wait", "NaN")),
        (["train", "--config_file", "tiny", *DATA, "--max_iters", HUGE], ("--max_iters", "5000 characters")),
        (["train", "--config_file", "tiny", *DATA, "--learning_rate", "nan"], ("--learning_rate", "NaN")),
    ]


def test_numbers_out_of_range_are_one_line_errors(tmp_path: Path, report) -> None:
    cases = _cases(tmp_path)
    before = set(tmp_path.iterdir())
    for argv, fragments in cases:
        proc = run_cli(argv, cwd=tmp_path, env=fault_env())
        assert_one_line_error(proc, *fragments)
        assert len(proc.stderr) < 400, proc.stderr  # a value of thousands of digits is not echoed whole
    assert set(tmp_path.iterdir()) == before  # nothing written: no runs/, no data/, no dataset
    report("numbers past their range for recommend (--vram-gb, --gpus), estimate (--block_size, --batch_size, "
           "--grad_accum), sample (every number), prepare (--workers, --block_size), stop (--wait NaN), train "
           "(5000 digits, NaN), and preset keys (5000 and 4000 digits, 10^30, 1e308)", len(cases),
           "exit 2, one line naming the flag or key and its valid range, under 400 characters; nothing written")


TRAIN_CASES: list[tuple[list[str], tuple[str, ...]]] = [
    (["--max_iters", str(10**10)], ("--max_iters", "1 to 1000000000")),
    (["--batch_size", BIG], ("--batch_size", "1 to 65536")),
    (["--block_size", str(2**21)], ("--block_size", "1 to 1048576")),
    (["--grad_accum", str(10**6)], ("--grad_accum", "1 to 65536")),
    (["--eval_interval", str(10**10)], ("--eval_interval", "1 to 1000000000")),
    (["--eval_iters", str(10**7)], ("--eval_iters", "1 to 1000000")),
    (["--learning_rate", "1e400"], ("--learning_rate", "(0, 1)")),
    (["--dropout", "1e400"], ("--dropout", "[0, 1)")),
    (["--seed", str(2**32)], ("--seed", "0 to 4294967295")),
    (["--nproc", str(10**6), "--device", "cpu"], ("--nproc", "1 to 1024")),
]
PROBE_CASES: list[tuple[list[str], tuple[str, ...]]] = [
    (["--iters", str(10**10)], ("--iters", "10 to 1000000000")),
    (["--max_iters", str(10**10)], ("--max_iters", "1 to 1000000000")),
    (["--memory_limit_gb", "1e400"], ("--memory_limit_gb", "at most 1e+06")),
    (["--batch_size", BIG], ("--batch_size", "1 to 65536")),
    (["--block_size", BIG], ("--block_size", "1 to 1048576")),
]


def test_train_and_probe_numbers_out_of_range(tmp_path: Path, report, monkeypatch: pytest.MonkeyPatch) -> None:
    preset = micro_preset(tmp_path)
    for verb, extra in (("train", ["--batch_size", BIG]), ("probe", ["--iters", str(10**10)])):
        proc = run_cli([verb, "--config_file", str(preset), *DATA, "--data_dir", "data", *extra], cwd=tmp_path,
                       env=fault_env())
        assert_one_line_error(proc, extra[0])
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr("tempfile.tempdir", None)  # re-read TMPDIR
    trials = 2
    for verb, cases in (("train", TRAIN_CASES), ("probe", PROBE_CASES)):
        for extra, fragments in cases:
            rc, err = _refused_in_process([verb, "--config_file", str(preset), *DATA, "--data_dir", "data", *extra])
            lines = one_line(err)
            assert rc == 2 and len(lines) == 1, (verb, extra, rc, err)
            assert all(f in lines[0] for f in fragments), (fragments, lines[0])
            trials += 1
    assert not (tmp_path / "runs").exists() and not list((tmp_path / "tmp").iterdir())
    report("every numeric flag of train and probe past its range (10^10 iterations, 10^30 batch, 2^21 block, "
           "1e400 learning rate and dropout, 2^32 seed, 10^6 processes, 1e400 GB memory limit)", trials,
           "exit 2, one line naming the flag and its valid range; no run folder, no probe folder left")


# --- a checkpoint whose config claims a far bigger model -------------------------------------------------

def _sample_with_rusage(cwd: Path) -> tuple[int, str, int]:
    """`gptwiz sample` in a real process: its exit status, stderr and peak resident memory (bytes)."""
    err_path = cwd / "stderr.txt"
    with open(err_path, "wb") as err:
        proc = subprocess.Popen([sys.executable, "-m", "gptwiz", "sample", "--model_name", "base",
                                 "--max_new_tokens", "3", "--device", "cpu"], cwd=cwd, env=fault_env(),
                                stdout=subprocess.DEVNULL, stderr=err)
    _, wait_status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(wait_status)
    text = err_path.read_text()
    err_path.unlink()
    return proc.returncode, text, usage.ru_maxrss * 1024


@pytest.mark.parametrize("claim", [{"n_layer": 100000}, {"n_layer": 1000}, {"n_embd": 65536, "n_head": 2}],
                         ids=["n_layer 100000", "n_layer 1000", "n_embd 65536"])
def test_a_checkpoint_claiming_a_huge_model_is_refused_before_building_it(trained_copy: Path, claim: dict,
                                                                          report) -> None:
    work = trained_copy
    run = work / "runs" / "base"
    for name in ("ckpt_last.pt", "ckpt_best.pt"):
        state = torch.load(run / name, weights_only=True)
        config = json.loads(state["config_json"])
        config["model"].update(claim)
        state["config_json"] = json.dumps(config)
        torch.save(state, run / name)
    rc, err, peak = _sample_with_rusage(work)
    lines = one_line(err)
    assert rc == 2 and len(lines) == 1 and "Traceback" not in err, (rc, err)
    assert "does not hold the model its config describes" in lines[0] and "ckpt_best.pt" in lines[0], lines
    # Python with torch is about 300 MB; building the model claimed would take gigabytes (13 GB of embedding
    # for n_embd 65536, millions of module objects for 100000 layers).
    assert peak < 1.2 * 2**30, peak
    report(f"a checkpoint whose config claims {', '.join(f'{k} {v}' for k, v in claim.items())} over a 1-layer, "
           "32-wide model's tensors (`gptwiz sample`)", 1,
           f"exit 2, one line naming the file; refused before building the model (peak memory "
           f"{peak / 2**20:.0f} MiB)")


# --- divergence from an absurd weight decay ---------------------------------------------------------------

def test_divergence_from_weight_decay_names_weight_decay(tmp_path: Path, data_dir: Path, report) -> None:
    preset = micro_preset(tmp_path, max_iters=200, eval_interval=1000, eval_iters=1, warmup_iters=0,
                          learning_rate=1e-2, weight_decay=1000)
    proc = run_cli(train_args(preset, "wd", data_dir=data_dir), cwd=tmp_path, env=fault_env())
    assert proc.returncode == 3, (proc.stdout, proc.stderr)
    lines = one_line(proc.stderr)
    assert len(lines) == 1 and "diverged" in lines[0], proc.stderr
    assert "weight_decay 1000" in lines[0] and "lower weight_decay" in lines[0], lines
    assert "--learning_rate" not in lines[0]  # a lower learning rate is not what this run needs
    report("a preset with weight_decay 1000 (lr 1e-2: every step scales the weights by -9) that diverges", 1,
           "exit 3, one line: the divergence put down to weight_decay, far above the usual 0 to 1, not to the "
           "learning rate")
