"""Bad input, fuzzed: hypothesis drives the CLI entry points (train, prepare, recommend, estimate, probe, sample)
with random argument lists, random preset JSON and random dataset files. Every outcome must be success or a
one-line error with exit status 2 (a probe's "fail" verdict exits 1 and a diverged run 3, each with its own
report), never a traceback, never longer than a bound, and never a file left outside the run or output folder.

Most examples run `gptwiz.cli.main(argv)` in this process (fast: torch is imported once); a fixed set of
nasty command lines also runs as real subprocesses. Random values are bounded where a valid one would start
real work (at most 3 iterations, micro models, small batches), so the test is about input handling, not
training. The examples are derandomized: every run tries the same ones.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import SHAKESPEARE
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from faults.support import MICRO, fault_env, one_line
from gptwiz.cli import main
from gptwiz.training.device import cpu_has_fast_bf16

LIMIT_S = 90.0  # no single command may take longer (a loaded machine's worst case, far below a hang)
FLAG = object()  # a flag without a value
JUNK_WORDS = ["", " ", "-", "--", "nan", "inf", "-inf", "-1", "0", "1e400", "0x10", "3.5", "ünïcødé", "../escape",
              "/abs/path", "a/b", "..", ".", "true", "None", "{}", "a\nb", "$(touch pwned)", "`touch pwned`",
              "; touch pwned", "~", "*", "in/docs", "runs/base"]
JUNK = st.one_of(st.sampled_from(JUNK_WORDS),
                 st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=10))
# No shrinking: a failing example's command line is in the assertion message, and shrinking reruns training.
# FUZZ_RANDOM=1 draws new examples each run and FUZZ_N=300 tries more of them: for hunting, not for CI.
SETTINGS = dict(deadline=None, derandomize=not os.environ.get("FUZZ_RANDOM"), database=None,
                phases=[Phase.explicit, Phase.generate],
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.function_scoped_fixture, HealthCheck.filter_too_much])


class Hang(BaseException):
    """A command ran past LIMIT_S."""


@contextlib.contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    def expire(signum: int, frame: Any) -> None:
        raise Hang(f"still running after {seconds:g}s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


# --- the workspace: inputs made once; each example may only add files under its output folders ---------

@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> Iterator[Path]:
    root = tmp_path_factory.mktemp("fuzz")
    scratch = tmp_path_factory.mktemp("fuzz-tmp")  # TMPDIR: the probe's scratch folders must be gone after it
    inputs = root / "in"
    (inputs / "docs").mkdir(parents=True)
    text = SHAKESPEARE.read_text()
    (inputs / "small.txt").write_text(text[:40_000])
    for i in range(3):
        (inputs / "docs" / f"d{i}.txt").write_text(text[i * 20_000:(i + 1) * 20_000])
    (inputs / "docs" / "d.jsonl").write_text("".join(json.dumps({"text": text[i:i + 3000]}) + "\n"
                                                     for i in range(0, 30_000, 3000)))
    (inputs / "micro.json").write_text(json.dumps({**MICRO, "max_iters": 3, "eval_interval": 2, "eval_iters": 1}))
    (root / "afile").write_text("a file where a folder is expected\n")
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("OMP_NUM_THREADS", "1")
        mp.setenv("TMPDIR", str(scratch))
        mp.setattr(tempfile, "tempdir", str(scratch))
        with contextlib.chdir(root):
            for argv in (["prepare", "--source", "docs:in/docs/*.txt", "--out_dir", "in/ds", "--block_size", "32",
                          "--val_fraction", "0.3", "--quiet"],
                         ["train", "--config_file", "in/micro.json", "--model_name", "base", "--input_file",
                          "in/small.txt", "--dtype", "float32", "--quiet"]):
                with contextlib.redirect_stdout(io.StringIO()):
                    assert main(argv) == 0
        yield root
    torch.set_num_threads(threads)


def _tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


@contextlib.contextmanager
def contained(root: Path, outputs: list[str]) -> Iterator[None]:
    """Whatever the command adds must lie under one of `outputs` (relative folders); it is removed afterwards."""
    before = _tree(root)
    scratch = Path(tempfile.gettempdir())
    scratch_before = set(scratch.iterdir())  # torch's own caches (torchinductor_USER) may be there already
    try:
        yield
    finally:
        added = sorted(_tree(root) - before)
        allowed = [os.path.normpath(o) for o in outputs if o and not os.path.isabs(o)]
        # Inside an output folder, the folder itself, or a folder on the way to it (made as mkdir -p does).
        strays = [a for a in added if not any(a == o or a.startswith(o + os.sep) or o.startswith(a + os.sep)
                                              for o in allowed)]
        half = [a for a in added if a.endswith(".tmp") or ".partial-" in a or ".old-" in a]
        leftovers = sorted(set(scratch.iterdir()) - scratch_before)
        for a in sorted(added, key=len):
            path = root / a
            if path.is_symlink() or path.is_file():
                path.unlink(missing_ok=True)
            elif path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
        for p in leftovers:
            shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)
        assert not strays, f"files left outside {allowed}: {strays[:5]}"
        assert not half, f"half-written files left: {half[:5]}"
        assert not leftovers, f"temporary files left in {scratch}: {leftovers[:5]}"


def run_main(argv: list[str]) -> tuple[int, str, str, float]:
    out, err = io.StringIO(), io.StringIO()
    t0 = time.monotonic()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), time_limit(LIMIT_S):
        try:
            rc = main(argv)
        except SystemExit as exc:  # argparse (--help, a usage error) and the odd command
            rc = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    return rc, out.getvalue(), err.getvalue(), time.monotonic() - t0


def check(command: str, argv: list[str], rc: int, out: str, err: str, elapsed: float) -> str:
    """The outcome's kind, after asserting it is one of the allowed ones."""
    context = f"gptwiz {argv!r} exited {rc}\nstdout: {out[-800:]}\nstderr: {err[-1500:]}"
    assert "Traceback" not in out + err, context
    assert elapsed < LIMIT_S, context
    lines = one_line(err)
    if rc == 0:
        return "ok"
    if rc == 2:
        assert len(lines) == 1, context
        return "one-line error"
    if command == "train" and rc == 3:
        assert len(lines) == 1 and "diverged" in lines[0], context
        return "diverged"
    if command == "probe" and rc == 1:
        assert not lines and "FAIL" in out.upper(), context
        return "fail verdict"
    raise AssertionError(context)


def run_example(workspace: Path, command: str, argv: list[str], outputs: list[str], tally: dict[str, int],
                files: dict[str, bytes] | None = None) -> None:
    for rel, content in (files or {}).items():
        (workspace / rel).write_bytes(content)
    try:
        with contextlib.chdir(workspace), contained(workspace, outputs):
            kind = check(command, argv, *run_main(argv))
    finally:
        for rel in files or {}:
            (workspace / rel).unlink(missing_ok=True)
    tally[kind] = tally.get(kind, 0) + 1
    assert not (workspace / "pwned").exists()


@st.composite
def argv_for(draw: st.DrawFn, command: str, spec: dict[str, Any], base: dict[str, Any],
             tail: list[str] | None = None, max_changes: int = 4) -> list[str]:
    """`command` with the flags of `base` (a command line that works), changed up to `max_changes` times (a flag
    set to a value from its strategy, valid or junk, or dropped), in random order and underscore or dash
    spelling, now and then a stray token, then `tail` (settings that bound the work)."""
    args = dict(base)
    for _ in range(draw(st.integers(0, max_changes))):
        name = draw(st.sampled_from(sorted(spec)))
        if name in args and draw(st.integers(0, 5)) == 5:
            del args[name]
        else:
            args[name] = draw(spec[name])
    argv = [command]
    for name in draw(st.permutations(sorted(args))):
        argv.append(f"--{name if draw(st.booleans()) else name.replace('_', '-')}")
        if args[name] is not FLAG:
            argv.append(args[name])
    if draw(st.integers(0, 9)) == 9:
        argv.insert(draw(st.integers(1, len(argv))), draw(JUNK))
    return argv + (tail or [])


def numbers(*valid: Any) -> st.SearchStrategy[str]:
    """Mostly one of the `valid` values (as text), sometimes junk."""
    return choice(*(str(v) for v in valid))


def choice(*valid: str) -> st.SearchStrategy[str]:
    # Hypothesis leans towards small draws: the junk branch is the largest one.
    return st.integers(0, 9).flatmap(lambda n: JUNK if n == 9 else st.sampled_from(list(valid)))


flag = st.just(FLAG)

# --- random preset JSON and dataset files -------------------------------------------------------------

PRESET_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "n_layer": st.sampled_from([1, 2, 0, -1, 1.5, "2", None, True]),
    "n_head": st.sampled_from([1, 2, 3, 0]),
    "n_embd": st.sampled_from([16, 32, 33, 0, -32]),
    "block_size": st.sampled_from([8, 16, 32, 0, 10**9]),
    "vocab_size": st.sampled_from([50304, 50257, 50256, 100, 0]),
    "batch_size": st.sampled_from([1, 2, 4, 0, -4, "4"]),
    "learning_rate": st.sampled_from([1e-3, 0.5, 0.999, 0, 1, -1e-3, float("nan"), float("inf"), "fast"]),
    "max_iters": st.sampled_from([2, 3, 0]),
    "warmup_iters": st.sampled_from([0, 1, 100, -1]),
    "min_lr": st.sampled_from([0.0, 1e-4, 1.0, -1.0, float("nan")]),
    "weight_decay": st.sampled_from([0.0, 0.1, -0.1, float("nan"), float("inf")]),
    "grad_clip": st.sampled_from([0.0, 1.0, -1.0, float("nan"), float("inf")]),
    "dropout": st.sampled_from([0.0, 0.1, 1.0, float("nan")]),
    "betas": st.sampled_from([[0.9, 0.95], [0.9], [1.0, 0.9], [float("nan"), 0.9], "x"]),
    "eval_interval": st.sampled_from([1, 2, 0]),
    "eval_iters": st.sampled_from([1, 2, 0]),
    "grad_accum": st.sampled_from([1, 2, 0]),
    "bias": st.sampled_from([True, False, 1, "no"]),
    "description": st.sampled_from(["x", 3]),
    "use_cases": st.sampled_from([["testing"], "testing", [1]]),
    "no_such_key": st.just(1),
}


@st.composite
def preset_file(draw: st.DrawFn) -> bytes:
    kind = draw(st.integers(0, 9))
    if kind == 9:
        return draw(st.binary(max_size=200))
    if kind == 8:
        return json.dumps(draw(st.one_of(st.lists(st.integers()), st.text(), st.integers(), st.none()))).encode()
    data = dict(MICRO, max_iters=2, eval_interval=1, eval_iters=1)
    for key in draw(st.lists(st.sampled_from(sorted(PRESET_VALUES)), unique=True, max_size=3)):
        value = draw(PRESET_VALUES[key])
        if value is None:
            data.pop(key, None)
        else:
            data[key] = value
    return json.dumps(data).encode()


texts = st.one_of(st.binary(max_size=3000), st.text(max_size=3000).map(str.encode),
                  st.just(SHAKESPEARE.read_bytes()[:20_000]), st.just(b"\x00" * 100), st.just(b""))

# --- the entry points ---------------------------------------------------------------------------------

TRAIN = {
    "config_file": choice("in/micro.json", "in/preset.json", "tiny", "huge", "in/nothing.json", "in/docs"),
    "model_name": choice("fz", "fz-2", "base", "a" * 101, "-x", ".hidden", "x..y"),
    "input_file": choice("in/small.txt", "in/data.txt", "in/missing.txt", "in/docs", "afile"),
    "dataset_dir": choice("in/ds", "in/docs", "in/missing", "afile"),
    "learning_rate": numbers(1e-3, 0.5, 0, 1, -1e-3),
    "batch_size": numbers(1, 2, 4),
    "block_size": numbers(8, 16, 32, 10**9),
    "grad_accum": numbers(1, 2),
    "eval_interval": numbers(1, 2),
    "eval_iters": numbers(1, 2),
    "dropout": numbers(0, 0.1, 1, -0.1),
    "init_from_model": choice("base", "runs/base", "missing", "../base"),
    "device": choice("auto", "cpu", "cuda", "cuda:7", "mps", "tpu"),
    # bf16 trains ~50x slower than float32 on a CPU without AVX-512 BF16 or AMX: drawn only where it is fast.
    "dtype": choice("auto", "float32", "float16", "int8", *(("bfloat16",) if cpu_has_fast_bf16() else ())),
    "no_compile": flag,
    "resume": flag,
    "seed": numbers(0, 7, -1, 2**70),
    "ckpt_interval_s": numbers(0.001, 5, 0, -1),
    "runs_dir": choice("runs", "out/runs", "afile"),
    "data_dir": choice("data", "out/data", "afile"),
    "nproc": choice("1", "1", "0", "-2"),  # 1: no torchrun (more processes would be real distributed runs)
    "fsdp": flag,
}
TRAIN_BASE = {"config_file": "in/micro.json", "input_file": "in/small.txt", "model_name": "fz", "dtype": "float32"}
# Bounded work: micro-sized steps, at most 3 of them, no live display.
TRAIN_TAIL = st.sampled_from([["--max_iters", "1"], ["--max_iters", "3"], ["--max_iters", "0"],
                              ["--max_iters", "x"], ["--max-iters", "2", "--batch_size", "2"]])


def _outputs(argv: list[str], *defaults: str, keys: tuple[str, ...] = ("runs_dir", "data_dir", "out_dir")) -> list[str]:
    """The folders a command may write: the defaults, and what its argv names for `keys`."""
    outs = list(defaults)
    for i, token in enumerate(argv[:-1]):
        if token.lstrip("-").replace("-", "_") in keys:
            outs.append(argv[i + 1])
    return outs


@pytest.mark.slow
def test_fuzz_train(workspace: Path, report) -> None:
    tally: dict[str, int] = {}

    @settings(max_examples=int(os.environ.get("FUZZ_N", 150)), **SETTINGS)
    @given(data=st.data())
    def example(data: st.DataObject) -> None:
        tail = data.draw(TRAIN_TAIL)
        base = dict(TRAIN_BASE, config_file=data.draw(st.sampled_from(["in/micro.json", "in/preset.json"])))
        argv = data.draw(argv_for("train", TRAIN, base, ["--quiet", *tail]))
        if "tiny" in argv:  # the real tiny preset: keep its steps small
            argv += ["--batch_size", "2", "--block_size", "16"]
        files = {"in/preset.json": data.draw(preset_file()), "in/data.txt": data.draw(texts)}
        run_example(workspace, "train", argv, _outputs(argv, "runs", "data"), tally, files)

    example()
    report_tally(report, "train", tally)


PREPARE = {
    "out_dir": choice("out/ds", "out/ds2", "in/ds", "in/docs", ".", "afile", "out/../out/ds3"),
    "val_fraction": numbers(0.005, 0.3, 0.5, 0.6, 0, -1),
    "workers": numbers(1, 2, 64),
    "overwrite": flag,
    "block_size": numbers(16, 32, 64, 16, 1024, 10**9),
    "quiet": flag,
}
GOOD_SOURCES = ["docs:in/docs/*.txt", "docs:in/docs/*", "j:in/docs/*.jsonl:2", "r:in/rand/*", "r:in/rand/*:0.5",
                "d2:in/docs/**/*.txt"]
BAD_SOURCES = ["m:in/missing/*", "bad name:in/docs/*", "x:", ":in/docs/*", "x:in/docs/*:-1", "x:in/docs/*:nan",
               "../x:in/docs/*", "afile:afile"]
SOURCE = st.integers(0, 3).flatmap(lambda n: choice(*BAD_SOURCES) if n == 3 else st.sampled_from(GOOD_SOURCES))


@pytest.mark.slow
def test_fuzz_prepare(workspace: Path, report) -> None:
    tally: dict[str, int] = {}

    @settings(max_examples=int(os.environ.get("FUZZ_N", 150)), **SETTINGS)
    @given(data=st.data())
    def example(data: st.DataObject) -> None:
        count = data.draw(st.sampled_from([1] * 7 + [2, 2, 0, 3]))
        sources = data.draw(st.lists(SOURCE, min_size=count, max_size=count))
        argv = data.draw(argv_for("prepare", PREPARE, {"out_dir": "out/ds", "block_size": "16"}))
        for source in sources:
            argv += ["--source", source]
        rand = workspace / "in" / "rand"
        rand.mkdir(exist_ok=True)
        files = {f"in/rand/f{i}{data.draw(st.sampled_from(['.txt', '.jsonl', '.md', '']))}": data.draw(texts)
                 for i in range(data.draw(st.integers(0, 3)))}
        try:
            run_example(workspace, "prepare", argv, _outputs(argv, keys=("out_dir",)), tally, files)
        finally:
            shutil.rmtree(rand, ignore_errors=True)

    example()
    report_tally(report, "prepare", tally)


RECOMMEND = {
    "use_case": choice("testing", "prototype", "chat", "rag", "code", "domain", "Chat"),
    "vram_gb": numbers(0, 6, 24, 80, -1, 1e9),
    "dataset_size": choice("5MB", "500MB", "2GB", "0", "-1MB", "1e30TB", "nan MB", "12 kb", "5MiB"),
    "dataset": choice("in/small.txt", "in/docs", "in/docs/*.txt", "in/ds", "in/missing", "afile", "in/rand/*"),
    "gpus": numbers(1, 2, 8, 0, 10**6),
    "model_name": choice("m", "my model", ""),
    "json": flag,
}


def test_fuzz_recommend(workspace: Path, report) -> None:
    tally: dict[str, int] = {}

    @settings(max_examples=int(os.environ.get("FUZZ_N", 150)), **SETTINGS)
    @given(data=st.data())
    def example(data: st.DataObject) -> None:
        argv = data.draw(argv_for("recommend", RECOMMEND, {"use_case": "chat"}))
        run_example(workspace, "recommend", argv, [], tally)

    example()
    report_tally(report, "recommend", tally)


ESTIMATE = {
    "config_file": choice("tiny", "small", "150M", "750M_1024", "in/micro.json", "in/preset.json", "huge"),
    "batch_size": numbers(1, 8, 64, 10**9),
    "block_size": numbers(16, 1024, 10**7),
    "grad_accum": numbers(1, 4, 10**6),
    "dtype": choice("auto", "float32", "bfloat16", "float16", "int8"),
    "device": choice("auto", "cpu", "cuda", "mps"),
    "compile": flag,
    "json": flag,
}


def test_fuzz_estimate(workspace: Path, report) -> None:
    tally: dict[str, int] = {}

    @settings(max_examples=int(os.environ.get("FUZZ_N", 150)), **SETTINGS)
    @given(data=st.data())
    def example(data: st.DataObject) -> None:
        base = {"config_file": data.draw(st.sampled_from(["tiny", "in/preset.json"]))}
        argv = data.draw(argv_for("estimate", ESTIMATE, base))
        run_example(workspace, "estimate", argv, [], tally, {"in/preset.json": data.draw(preset_file())})

    example()
    report_tally(report, "estimate", tally)


SAMPLE = {
    "model_name": choice("base", "runs/base", "missing", "../base", "in"),
    "prompt": st.one_of(JUNK, st.text(max_size=50)),
    "max_new_tokens": numbers(1, 5, 20, 0),
    "temperature": numbers(0, 0.8, 2, -1, "nan"),
    "top_k": numbers(1, 50, 10**6, 0),
    "num_samples": numbers(1, 2, 0),
    "seed": numbers(0, 1, -1, 2**70),
    "device": choice("auto", "cpu", "cuda", "tpu"),
    "runs_dir": choice("runs", "in", "afile", "missing"),
}


def test_fuzz_sample(workspace: Path, report) -> None:
    tally: dict[str, int] = {}

    @settings(max_examples=int(os.environ.get("FUZZ_N", 80)), **SETTINGS)
    @given(data=st.data())
    def example(data: st.DataObject) -> None:
        argv = data.draw(argv_for("sample", SAMPLE, {"model_name": "base", "max_new_tokens": "8"}))
        run_example(workspace, "sample", argv, [], tally)

    example()
    report_tally(report, "sample", tally)


PROBE = {
    "config_file": choice("in/micro.json", "in/preset.json", "in/missing.json"),
    "input_file": choice("in/small.txt", "in/data.txt", "in/missing.txt"),
    "dataset_dir": choice("in/ds", "in/missing"),
    "batch_size": numbers(1, 2, 4),
    "block_size": numbers(16, 32, 10**9),
    "learning_rate": numbers(1e-3, 2),
    "max_iters": numbers(100, 0),
    "device": choice("cpu", "cuda", "auto"),
    "dtype": choice("float32", "float16", "auto"),
    "model_name": choice("pr", "base", "../x"),
    "memory_limit_gb": numbers(0.001, 100, -1),
    "json": flag,
}
PROBE_BASE = {"config_file": "in/micro.json", "input_file": "in/small.txt", "device": "cpu", "batch_size": "2"}
PROBE_TAIL = st.sampled_from([["--iters", "10"], ["--iters", "9"], ["--iters", "x"]])


@pytest.mark.slow
def test_fuzz_probe(workspace: Path, report) -> None:
    tally: dict[str, int] = {}

    @settings(max_examples=int(os.environ.get("FUZZ_N", 12)), **SETTINGS)
    @given(data=st.data())
    def example(data: st.DataObject) -> None:
        argv = data.draw(argv_for("probe", PROBE, PROBE_BASE, data.draw(PROBE_TAIL), max_changes=2))
        files = {"in/preset.json": data.draw(preset_file()), "in/data.txt": data.draw(texts)}
        run_example(workspace, "probe", argv, _outputs(argv, "runs", "data"), tally, files)

    example()
    report_tally(report, "probe", tally)


def report_tally(report, command: str, tally: dict[str, int]) -> None:
    inputs = {"train": ", random preset JSON and dataset files", "estimate": " and random preset JSON",
              "probe": ", random preset JSON and dataset files", "prepare": " and random source files"}
    report(f"`gptwiz {command}` with random argument lists{inputs.get(command, '')}", sum(tally.values()),
           ", ".join(f"{n} {kind}" for kind, n in sorted(tally.items()))
           + "; no traceback, none past the time bound, nothing written outside the run/output folder")


# --- real subprocesses: what a shell can hand over that an in-process call cannot show ----------------

NASTY = [
    ["train", "--config_file", "in/micro.json", "--model_name", os.fsdecode(b"bad\xff\xfe"), "--input_file",
     "in/small.txt"],
    ["train", "--config_file", os.fsdecode(b"in/\xff.json"), "--input_file", "in/small.txt"],
    ["train", "--config_file", "in/micro.json", "--model_name", "nl", "--input_file", "in/small.txt",
     "--max_iters", "1", "--learning_rate", "0.9", "--quiet"],
    ["sample", "--model_name", "base", "--prompt", os.fsdecode(b"\xff\xfe caf\xc3\xa9"), "--max_new_tokens", "4"],
    ["sample", "--model_name", "base", "--prompt", "line one\nline two", "--max_new_tokens", "4", "--top_k", "1"],
    ["prepare", "--source", os.fsdecode(b"d:in/docs/\xff*"), "--out_dir", "out/x"],
    ["prepare", "--source", "d:in/docs/*.txt", "--out_dir", "out/x\nmore", "--block_size", "16"],
    ["recommend", "--use_case", "chat\nnext", "--vram_gb", "24"],
    ["estimate", "--config_file", "no such\npreset"],
    ["train", "--config_file", "tiny", "--model_name", "a\nb"],
    ["probe", "--config_file", "in/micro.json", "--input_file", "in/small.txt", "--iters", "10", "--json",
     "--device", "cpu"],
    ["runs", "--runs_dir", os.fsdecode(b"\xff")],
]


@pytest.mark.slow
def test_nasty_command_lines_in_real_processes(workspace: Path, report) -> None:
    kinds: dict[str, int] = {}
    for argv in NASTY:
        with contained(workspace, ["runs", "data", "out"]):
            t0 = time.monotonic()
            # Bytes back: what the program echoes of an undecodable argument is its business, not a failure.
            proc = subprocess.run([sys.executable, "-m", "gptwiz", *argv], cwd=workspace, env=fault_env(),
                                  capture_output=True, timeout=LIMIT_S * 2)
            out, err = (b.decode("utf-8", "backslashreplace") for b in (proc.stdout, proc.stderr))
            kind = check(argv[0], argv, proc.returncode, out, err, time.monotonic() - t0)
        kinds[kind] = kinds.get(kind, 0) + 1
    report("nasty command lines in real processes: invalid UTF-8 bytes, newlines and shell syntax in values",
           len(NASTY), ", ".join(f"{n} {k}" for k, n in sorted(kinds.items())) + "; no traceback, one line each")
