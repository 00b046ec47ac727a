"""Instruction tuning that runs as printed: the settings sized from the dataset (gptwiz.planning.tuning), and the
README's recipe run command for command on the test text."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import SHAKESPEARE, cli_env, run_cli

from gptwiz.planning.tuning import TuningShape, tuning_plan

ROOT = Path(__file__).resolve().parent.parent
SHAPE = TuningShape(train_examples=570, answer_tokens=9_000, data_block=128, base_block=256, batch_cap=16)


def test_a_few_passes_over_the_examples_at_the_bases_batch_and_the_datas_block() -> None:
    plan = tuning_plan(SHAPE)
    assert (plan.batch_size, plan.block_size) == (16, 128)
    assert plan.max_iters == 107 and plan.epochs == pytest.approx(3.0, abs=0.01)  # ceil(3 * 570 / 16)
    assert plan.eval_interval == 27  # four evaluations, the last at the end


def test_a_small_dataset_gets_a_smaller_batch_and_what_was_given_is_kept() -> None:
    small = tuning_plan(TuningShape(train_examples=40, answer_tokens=600, data_block=512, base_block=256,
                                    batch_cap=64))
    assert small.batch_size == 4 and small.block_size == 256 and small.max_iters == 30  # 8+ steps a pass
    given = tuning_plan(SHAPE, batch_size=2, block_size=32, max_iters=5, eval_interval=5)
    assert (given.batch_size, given.block_size, given.max_iters, given.eval_interval) == (2, 32, 5, 5)
    assert tuning_plan(TuningShape(1, 3, 16, 16, 64)).batch_size == 1


def _examples(path: Path, count: int) -> None:
    """Prompt/response pairs from the test text: each speech, answered by the next one."""
    text = SHAKESPEARE.read_text(encoding="utf-8")
    speeches = [b.split("\n", 1)[1].replace("\n", " ") for b in text.split("\n\n") if "\n" in b]
    pairs = [(a, b) for a, b in zip(speeches, speeches[1:]) if len(a) < 200 and len(b) < 200][:count]
    path.write_text("".join(json.dumps({"prompt": a, "response": b}) + "\n" for a, b in pairs), encoding="utf-8")


def readme_recipe() -> list[str]:
    """The command lines of the README's instruction-tuning section, as printed."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Instruction tuning", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```bash\n(.*?)```", section, re.S)
    assert block, "the README's instruction-tuning section has no bash block"
    return [line.split("  #")[0].strip() for line in block.group(1).splitlines() if line.strip()]


@pytest.mark.slow
def test_the_readmes_instruction_tuning_recipe_runs_as_printed(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "tinyshakespeare.txt").write_bytes(SHAKESPEARE.read_bytes())
    _examples(tmp_path / "data" / "examples.jsonl", 200)
    commands = readme_recipe()
    assert [shlex.split(c)[:2] for c in commands] == [["gptwiz", "train"], ["gptwiz", "prepare"],
                                                      ["gptwiz", "train"], ["gptwiz", "chat"]]
    outputs = []
    for command in commands[:3]:
        outputs.append(run_cli(shlex.split(command)[1:] + ["--quiet"] * (command.startswith("gptwiz train")),
                               cwd=tmp_path, check=True))
    message = "Good morrow, what news from the city?"
    chat = subprocess.run([sys.executable, "-m", "gptwiz", *shlex.split(commands[3])[1:]], input=message + "\n",
                          capture_output=True, text=True, cwd=tmp_path, env=cli_env(), timeout=300)
    assert chat.returncode == 0 and chat.stdout.strip(), chat.stderr
    assert "instruction-tuned run" in chat.stderr and "<|endoftext|>" not in chat.stdout

    tuned = shlex.split(commands[2])
    name = tuned[tuned.index("--model_name") + 1]
    config = json.loads((tmp_path / "runs" / name / "config.json").read_text())
    base = json.loads((tmp_path / "runs" / config["init_from"].rsplit("/", 1)[-1] / "config.json").read_text())
    assert "--config_file" not in tuned and config["preset"] == base["preset"]  # it followed its base
    assert config["init_checkpoint"] in ("ckpt_best.pt", "ckpt_last.pt") and config["init_iter"] > 0
    sized = config["data"]["sft"]["sized"]
    examples = config["data"]["sft"]["train_examples"]
    assert sized["epochs"] == pytest.approx(3, abs=0.1) and config["train"]["max_iters"] == sized["max_iters"]
    assert config["train"]["batch_size"] <= base["train"]["batch_size"] and not config["compile"]
    assert config["model"]["block_size"] == min(base["model"]["block_size"], 128)
    assert 3 * examples / config["train"]["batch_size"] <= sized["max_iters"] < 3 * examples / config["train"][
        "batch_size"] + 1
    log = (tmp_path / "runs" / name / "train.log").read_text()
    assert re.search(r"passes over its [\d,]+ training examples .*; predicted time \S+", log), log
    evals = [r for r in map(json.loads, (tmp_path / "runs" / name / "metrics.jsonl").read_text().splitlines())
             if r["type"] == "eval"]
    assert evals[-1]["val_loss"] < evals[0]["val_loss"] - 0.1, evals  # it learned the answers
