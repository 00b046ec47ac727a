"""JSON nested thousands deep, or of the wrong types, wherever gptwiz reads JSON: a checkpoint's stored config,
an instruction file's lines, a document line of a .jsonl source, metrics.jsonl, a run's config.json and a preset.

Each is refused in one line naming the file (and the line of a JSONL file), or passed over as the damaged line
it is; never a RecursionError's or an AttributeError's traceback.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import torch
from conftest import assert_one_line_error, run_cli

from faults.support import fault_env

DEEP = "[" * 100_000 + "]" * 100_000  # far past Python's recursion limit


def _cli(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """The CLI with nothing on stdin (chat reads its messages from there)."""
    return subprocess.run([sys.executable, "-m", "gptwiz", *args], cwd=cwd, env=fault_env(), input="",
                          capture_output=True, text=True, timeout=300)


def test_checkpoint_config_nested_deep(trained_copy: Path, report) -> None:
    run = trained_copy / "runs" / "base"
    for name in ("ckpt_last.pt", "ckpt_best.pt"):
        state = torch.load(run / name, weights_only=True)
        state["config_json"] = '{"model": ' + DEEP + "}"
        torch.save(state, run / name)
    commands = {
        "export": ["export", "base", "--out", "exported"],
        "eval": ["eval", "base", "--input_file", str(run / "config.json")],
        "sample": ["sample", "--model_name", "base", "--max_new_tokens", "2"],
        "chat": ["chat", "base", "--max_new_tokens", "2"],
    }
    for args in commands.values():
        proc = _cli(args, trained_copy)
        assert_one_line_error(proc, "ckpt_", "nested more than")
    assert not (trained_copy / "exported").exists()
    listed = json.loads(run_cli(["runs", "--json"], cwd=trained_copy, env=fault_env(), check=True).stdout)
    assert listed[0]["checkpoint_iter"] is None  # the one rule: what cannot be loaded is listed as unreadable
    report(fault="a checkpoint whose stored config is nested 100,000 deep (both checkpoints)", trials=len(commands) + 1,
           outcome="export, eval, sample and chat each refuse it in one line naming the checkpoint (exit 2); "
                   "`gptwiz runs` lists no usable checkpoint")


def test_jsonl_lines_nested_deep(tmp_path: Path, report) -> None:
    sft = tmp_path / "sft.jsonl"
    sft.write_text('{"prompt": ' + DEEP + ', "response": "x"}\n' + DEEP + "\n")
    proc = run_cli(["prepare", "--sft", "--source", f"a:{sft}", "--out_dir", str(tmp_path / "o1")], cwd=tmp_path,
                   env=fault_env())
    assert_one_line_error(proc, "sft.jsonl:1", "nested more than")
    assert not (tmp_path / "o1").exists()
    docs = tmp_path / "docs.jsonl"
    docs.write_text('{"text": ' + DEEP + "}\n" + '{"text": "a line of plain words to train on"}\n' * 300)
    proc = run_cli(["prepare", "--source", f"a:{docs}", "--out_dir", str(tmp_path / "o2"), "--block_size", "8",
                    "--quiet"], cwd=tmp_path, env=fault_env())
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    manifest = json.loads((tmp_path / "o2" / "manifest.json").read_text())
    assert manifest["sources"][0]["bad_lines"] == 1
    report(fault="a line of an instruction file, and of a .jsonl document source, nested 100,000 deep", trials=2,
           outcome="prepare --sft refuses a file of nothing else in one line naming file:line and the depth limit "
                   "(exit 2); a .jsonl source counts the line as malformed and prepares the rest")


def test_metrics_line_nested_deep(trained_copy: Path, report) -> None:
    run = trained_copy / "runs" / "base"
    with open(run / "metrics.jsonl", "a") as f:
        f.write('{"type": "eval", "iter": ' + DEEP + "}\n")
    proc = _cli(["sample", "--model_name", "base", "--max_new_tokens", "2", "--json"], trained_copy)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    report(fault="an evaluation line of metrics.jsonl nested 100,000 deep", trials=1,
           outcome="sample passes over the line as damaged and samples (exit 0)")


def test_run_config_types_and_depth(trained_copy: Path, report) -> None:
    run = trained_copy / "runs" / "base"
    good = json.loads((run / "config.json").read_text())
    bad = {
        "data.sources a string": ({**good, "data": {**good["data"], "sources": "x"}}, "data.sources"),
        "data.sources items numbers": ({**good, "data": {**good["data"], "sources": [1, 2]}}, "data.sources[0]"),
        "model a string": ({**good, "model": "x"}, "model"),
        "data a list": ({**good, "data": [1]}, "data"),
        "world_size text": ({**good, "world_size": "two"}, "world_size"),
    }
    for label, (config, key) in bad.items():
        (run / "config.json").write_text(json.dumps(config))
        proc = _cli(["export", "base", "--out", "exported"], trained_copy)
        assert_one_line_error(proc, "config.json", f"'{key}'")
        assert not (trained_copy / "exported").exists(), label
    (run / "config.json").write_text('{"data": ' + DEEP + "}")
    proc = _cli(["export", "base", "--out", "exported"], trained_copy)
    assert_one_line_error(proc, "config.json", "nested more than")
    preset = trained_copy / "deep.json"
    preset.write_text(DEEP)
    proc = _cli(["train", "--config_file", str(preset), "--model_name", "x", "--input_file", str(preset)],
                trained_copy)
    assert_one_line_error(proc, "deep.json", "nested more than")
    report(fault="a run's config.json with data.sources a string, items numbers, model a string, data a list, "
                 "world_size text; nested 100,000 deep; a preset nested 100,000 deep", trials=len(bad) + 2,
           outcome="export refuses each in one line naming config.json and the key (exit 2), writing nothing; "
                   "train refuses the preset in one line naming it and the depth limit")
