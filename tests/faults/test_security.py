"""Security: a checkpoint whose pickle would run code is refused and nothing runs; run names, dataset names
and shard names cannot lead out of their folders (.., absolute paths, separators, symlinks); no subprocess is
started through a shell, and user text handed to one never reaches a shell."""

from __future__ import annotations

import ast
import json
import pickle
import shutil
import time
from pathlib import Path

import pytest
import torch
from conftest import REPO, assert_one_line_error, run_cli

from faults.support import fault_env, micro_preset, status, train_args, wait_for
from gptwiz.common.errors import UsageError
from gptwiz.training.checkpoint import load_checkpoint

PACKAGE = REPO / "gptwiz"


class _Payload:
    """Unpickling this calls Path.touch(marker): proof that code ran."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def _evil_checkpoints(marker: Path) -> dict[str, bytes]:
    """Checkpoints that would create `marker` when unpickled by a plain (unsafe) torch.load or pickle.load."""
    out = {}
    for label, state in (("payload beside the weights", {"model": {"w": torch.zeros(2)}, "iter": 1, "x": _Payload(marker)}),
                         ("payload inside the model's state", {"model": {"w": _Payload(marker)}, "iter": 1})):
        path = marker.parent / "evil.pt"
        torch.save(state, path)
        out[f"torch.save with {label}"] = path.read_bytes()
    out["a plain pickle with a payload"] = pickle.dumps({"model": {}, "iter": 1, "x": _Payload(marker)})
    return out


def test_a_code_running_checkpoint_is_refused_and_nothing_runs(trained_copy: Path, tmp_path: Path, report) -> None:
    cwd = trained_copy
    run = cwd / "runs" / "base"
    marker = tmp_path / "PWNED"
    evil = _evil_checkpoints(marker)
    # The payload is real: an unsafe load does run it.
    torch.load(_write(tmp_path / "probe.pt", evil["torch.save with payload beside the weights"]), weights_only=False)
    assert marker.exists()
    marker.unlink()
    commands = {"sample": ["sample", "--model_name", "base", "--max_new_tokens", "3"],
                "train --resume": ["train", "--model_name", "base", "--resume", "--quiet"],
                "train --init_from_model": [*train_args(cwd / "micro.json", "child"), "--init_from_model", "base"]}
    for label, data in evil.items():
        for name in ("ckpt_last.pt", "ckpt_best.pt"):
            _write(run / name, data)
        with pytest.raises(UsageError) as refused:
            load_checkpoint(run / "ckpt_last.pt")
        assert "ckpt_last.pt" in str(refused.value) and "\n" not in str(refused.value)
        for command, argv in commands.items():
            proc = run_cli(argv, cwd=cwd, env=fault_env())
            assert_one_line_error(proc, "ckpt_")
            assert not marker.exists(), (label, command)
            shutil.rmtree(cwd / "runs" / "child", ignore_errors=True)
    report("checkpoints whose unpickling runs code (torch.save with a __reduce__ payload beside or inside the "
           "weights; a plain pickle)", len(evil) * (1 + len(commands)),
           "load_checkpoint, `sample`, `train --resume`, `train --init_from_model`: exit 2, one line naming the "
           "file; the payload's marker file never created (it is, by an unsafe torch.load)")


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def test_every_torch_load_is_weights_only() -> None:
    calls = []
    for source in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(source.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "load" \
                    and getattr(node.func.value, "id", None) == "torch":
                safe = any(k.arg == "weights_only" and getattr(k.value, "value", None) is True for k in node.keywords)
                calls.append((source.name, node.lineno, safe))
    assert calls and all(safe for _, _, safe in calls), calls


NAMES = ["..", "../x", "a/../../x", "/tmp/abs", "a/b", "a\\b", ".hidden", "-rf", "a" * 101, "x\ny", "~root", ""]


def test_run_names_cannot_name_a_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                      capsys: pytest.CaptureFixture[str], report) -> None:
    from conftest import SHAKESPEARE

    from gptwiz.cli import main

    monkeypatch.chdir(tmp_path)
    for name in NAMES:
        for command in (["train", "--config_file", "tiny", "--input_file", str(SHAKESPEARE), "--quiet"],
                        ["train", "--resume"], ["probe", "--config_file", "tiny", "--input_file", str(SHAKESPEARE)]):
            assert main([*command, f"--model_name={name}"]) == 2
            err = capsys.readouterr().err
            assert len(err.strip().splitlines()) == 1 and "--model_name" in err, (name, err)
            assert sorted(p.name for p in tmp_path.iterdir()) == [], name  # not even runs/ or the token cache
    report(f"run names {', '.join(repr(n if len(n) < 20 else n[:5] + '...') for n in NAMES)} "
           "(`train`, `train --resume`, `probe --model_name`)", 3 * len(NAMES),
           "exit 2, one line naming --model_name; nothing created")


def test_a_run_folder_symlinked_elsewhere_is_refused(trained_copy: Path, tmp_path: Path, data_dir: Path,
                                                     report) -> None:
    cwd = trained_copy
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (cwd / "runs" / "link").symlink_to(outside)  # runs/link -> a folder outside runs/
    shutil.move(cwd / "runs" / "base", tmp_path / "base-real")
    (cwd / "runs" / "base").symlink_to(tmp_path / "base-real")  # an existing run, reached through a link
    before = sorted(p.name for p in (tmp_path / "base-real").iterdir())
    fresh = run_cli(train_args(cwd / "micro.json", "link"), cwd=cwd, env=fault_env())
    resume = run_cli(["train", "--model_name", "base", "--resume", "--quiet"], cwd=cwd, env=fault_env())
    for proc in (fresh, resume):
        assert_one_line_error(proc, "symlink")
    assert not any(outside.iterdir())
    assert sorted(p.name for p in (tmp_path / "base-real").iterdir()) == before
    # runs/ itself on another disk (a symlink) is the user's choice and works.
    (tmp_path / "other-disk").mkdir()
    (tmp_path / "other-disk" / "runs").mkdir()
    linked = tmp_path / "w2"
    linked.mkdir()
    (linked / "runs").symlink_to(tmp_path / "other-disk" / "runs")
    ok = run_cli(train_args(cwd / "micro.json", "fine", "--max_iters", "1", data_dir=data_dir), cwd=linked,
                 env=fault_env())
    assert ok.returncode == 0, ok.stderr
    assert (tmp_path / "other-disk" / "runs" / "fine" / "ckpt_last.pt").exists()
    report("run folder runs/NAME a symlink out of runs/ (fresh run and --resume)", 2,
           "exit 2, one line; nothing written at the link's target (runs/ itself as a symlink still works)")


def test_a_lock_file_symlinked_elsewhere_is_never_written_through(trained_copy: Path, tmp_path: Path,
                                                                   report) -> None:
    cwd = trained_copy
    victim = tmp_path / "precious.txt"
    victim.write_text("the user's file\n")
    (cwd / "runs" / "base" / "lock").symlink_to(victim)
    proc = run_cli(["train", "--model_name", "base", "--resume", "--quiet"], cwd=cwd, env=fault_env())
    assert_one_line_error(proc, "lock")
    assert victim.read_text() == "the user's file\n"
    report("the run's lock file a symlink to another file (`train --resume`)", 1,
           "exit 2, one line naming the lock; the link's target untouched")


def test_dataset_and_shard_names_cannot_leave_the_dataset(tmp_path: Path, data_dir: Path, report) -> None:
    from conftest import SHAKESPEARE

    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.txt").write_text(SHAKESPEARE.read_text()[:30_000])
    (tmp_path / "docs" / "b.txt").write_text(SHAKESPEARE.read_text()[30_000:60_000])
    trials = 0
    for spec in ("../up:docs/*.txt", "a/b:docs/*.txt", "/abs:docs/*.txt", ".hidden:docs/*.txt"):
        proc = run_cli(["prepare", "--source", spec, "--out_dir", "ds", "--block_size", "16"], cwd=tmp_path,
                       env=fault_env())
        assert_one_line_error(proc, spec.split(":")[0])
        trials += 1
    assert not (tmp_path / "ds").exists() and not (tmp_path.parent / "up-train-00000.bin").exists()
    run_cli(["prepare", "--source", "docs:docs/*.txt", "--out_dir", "ds", "--block_size", "16", "--val_fraction",
             "0.5", "--quiet"], cwd=tmp_path, env=fault_env(), check=True)
    manifest = json.loads((tmp_path / "ds" / "manifest.json").read_text())
    preset = micro_preset(tmp_path, max_iters=1, block_size=16)
    secret = tmp_path / "secret.bin"
    secret.write_bytes(b"\x01\x00" * 5000)
    tampered = {"../secret.bin": "../secret.bin", "absolute path": str(secret), "a symlink out": "link.bin",
                "a number": 7, "an odd-sized shard": "odd.bin"}
    (tmp_path / "ds" / "link.bin").symlink_to(secret)
    (tmp_path / "ds" / "odd.bin").write_bytes(b"\x00" * 4097)
    for shard in tampered.values():
        bad = json.loads(json.dumps(manifest))
        bad["sources"][0]["train_shards"] = [shard]
        (tmp_path / "ds" / "manifest.json").write_text(json.dumps(bad))
        proc = run_cli(["train", "--config_file", str(preset), "--model_name", "t", "--dataset_dir", "ds",
                        "--max_iters", "1", "--dtype", "float32", "--quiet"], cwd=tmp_path, env=fault_env())
        assert_one_line_error(proc, "ds")
        assert not (tmp_path / "runs").exists()
        trials += 1
    report("dataset source names with '..', '/', an absolute path or a leading dot (`prepare`)", 4,
           "exit 2, one line; nothing written")
    report("manifest shard names leading out of the dataset (../, absolute, a symlink out), or not names, "
           "or odd-sized (`train --dataset_dir`)", len(tampered), "exit 2, one line; no run folder")


def test_no_subprocess_goes_through_a_shell() -> None:
    """No shell=True, os.system, os.popen, os.exec*/spawn* with a string, and every subprocess call gets a list."""
    problems = []
    for source in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(source.read_text())):
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            owner = getattr(func.value, "id", "") if isinstance(func, ast.Attribute) else ""
            where = f"{source.relative_to(REPO)}:{node.lineno}"
            if any(k.arg == "shell" and not (isinstance(k.value, ast.Constant) and k.value.value is False)
                   for k in node.keywords):
                problems.append(f"{where} shell=")
            if owner == "os" and (name in ("system", "popen") or name.startswith(("exec", "spawn"))):
                problems.append(f"{where} os.{name}")
            if owner == "subprocess" and name in ("getoutput", "getstatusoutput"):
                problems.append(f"{where} subprocess.{name}")
            if owner == "subprocess" and name in ("Popen", "run", "call", "check_call", "check_output") and node.args:
                if isinstance(node.args[0], (ast.Constant, ast.JoinedStr, ast.BinOp)):
                    problems.append(f"{where} subprocess.{name} with a string command")
    assert not problems, problems


def test_user_text_handed_to_a_detached_trainer_reaches_no_shell(tmp_path: Path, data_dir: Path, report) -> None:
    """`train --detach` relaunches the user's command line: values full of shell syntax stay plain values."""
    from conftest import SHAKESPEARE

    marker = tmp_path / "pwned"
    weird = tmp_path / "$(touch pwned); `touch pwned` | touch pwned & '.txt"  # a shell would run in tmp_path
    weird.write_text(SHAKESPEARE.read_text()[:30_000])
    preset = micro_preset(tmp_path, max_iters=2, eval_interval=1)
    proc = run_cli(["train", "--config_file", str(preset), "--model_name", "det", "--input_file", str(weird),
                    "--dtype", "float32", "--data_dir", str(data_dir), "--detach"], cwd=tmp_path, env=fault_env())
    assert proc.returncode == 0, proc.stderr
    run = tmp_path / "runs" / "det"
    wait_for(lambda: status(run).get("state") in ("finished", "failed"), timeout=180)
    assert status(run)["state"] == "finished"
    assert json.loads((run / "config.json").read_text())["data"]["input_file"] == str(weird.resolve())
    time.sleep(0.2)
    assert not marker.exists()
    report("`train --detach` with an --input_file path full of shell syntax ($(...), backticks, ;, |, &, quotes)", 1,
           "the detached trainer read that exact file and finished; no shell ran any of it")
