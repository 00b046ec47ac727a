"""The wizard's pure parts: what a typed path names, VRAM parsing, applying advice, the command line."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from gptwiz.common.errors import UsageError
from gptwiz.common.fmt import duration
from gptwiz.planning.knobs import Advice, Knobs
from gptwiz.runs.snapshot import Schedule, downsample
from gptwiz.tui.widgets.text import bar
from gptwiz.wizard.commands import wizard_command_line
from gptwiz.wizard.state import DatasetChoice, WizardState, inspect_dataset, parse_vram, prepared_dir_for, source_glob


def test_parse_vram() -> None:
    assert parse_vram("") is None and parse_vram("  ") is None
    assert parse_vram("24") == 24.0 and parse_vram("24GB") == 24.0 and parse_vram("6 GiB") == 6.0
    assert parse_vram("0") == 0.0
    for bad in ("-1", "abc", "1e9", "nan"):
        with pytest.raises(ValueError):
            parse_vram(bad)


def test_apply_advice() -> None:
    k = Knobs("small", 256, 32, 1, 3e-4, 5000)
    assert k.with_advice(Advice((("learning_rate", 1e-4),), "3x lower")).learning_rate == 1e-4
    halved = k.with_advice(Advice((("batch_size", 16), ("grad_accum", 2)), "half the micro-batch"))
    assert (halved.batch_size, halved.grad_accum, halved.learning_rate) == (16, 2, 3e-4)
    assert k.with_advice(Advice((("config_file", "tiny"),), "a smaller model")).preset == "tiny"
    assert k.with_advice(Advice((("max_iters", 2000),), "about 1h")).max_iters == 2000
    with pytest.raises(UsageError, match="nothing the wizard can apply"):
        k.with_advice(Advice((), "more text: use a bigger --input_file or --dataset_dir"))
    with pytest.raises(UsageError, match="nothing the wizard can apply"):
        k.with_advice(Advice((("dtype", "float16"),), "faster"))
    with pytest.raises(UsageError, match="--dtype"):
        k.with_changes({"dtype": "float16"}.items())


def test_inspect_dataset_file_folder_glob_prepared_and_missing(tmp_path: Path) -> None:
    text = tmp_path / "one.txt"
    text.write_text("hello world " * 1000)
    choice = inspect_dataset(str(text))
    assert (choice.kind, choice.files, choice.bytes) == ("input_file", 1, 12000)
    # 2,001 GPT-2 tokens and the end-of-text token prepare adds: a file this small is tokenized whole (bytes / 4
    # said 3,000).
    assert choice.est_tokens == 2002 and "~2,002 tokens (estimated)" in choice.describe()

    docs = tmp_path / "docs"
    (docs / "sub").mkdir(parents=True)
    (docs / "a.txt").write_text("a" * 100)
    (docs / "sub" / "b.md").write_text("b" * 50)
    folder = inspect_dataset(str(docs))
    assert (folder.kind, folder.files, folder.bytes) == ("sources", 2, 150) and folder.needs_prepare
    glob = inspect_dataset(str(docs / "*.txt"))
    assert (glob.kind, glob.files, glob.bytes) == ("sources", 1, 100)

    with pytest.raises(UsageError, match="no such file or folder"):
        inspect_dataset(str(tmp_path / "missing.txt"))
    with pytest.raises(UsageError, match="matches no files"):
        inspect_dataset(str(tmp_path / "*.nothing"))
    with pytest.raises(UsageError, match="type a text file"):
        inspect_dataset("  ")


def test_inspect_a_prepared_dataset_counts_its_tokens(tmp_path: Path) -> None:
    from gptwiz.data.prepare import PrepareOptions, prepare

    src = tmp_path / "src"
    src.mkdir()
    for i in range(4):
        (src / f"{i}.txt").write_text(f"Document {i}: the quick brown fox jumps over the lazy dog. " * 100)
    out = tmp_path / "ds"
    prepare(PrepareOptions(sources=[f"s:{src}/*.txt"], out_dir=str(out), block_size=64, val_fraction=0.25))
    choice = inspect_dataset(str(out))
    assert choice.kind == "dataset_dir" and choice.prepared_dir == str(out) and not choice.needs_prepare
    assert choice.tokens and choice.tokens > 3000 and "tokens (estimated)" not in choice.describe()


def test_source_glob_and_prepared_dir(tmp_path: Path) -> None:
    assert source_glob(str(tmp_path)) == f"{tmp_path}/**/*"
    assert source_glob("docs/*.txt") == "docs/*.txt"
    assert prepared_dir_for("data/company_docs/*.txt", Path("data")) == Path("data/company_docs-prepared")
    assert prepared_dir_for("~/wiki/**/*.md", Path("d")) == Path("d/wiki-prepared")
    assert prepared_dir_for("docs/", Path("data")) == Path("data/docs-prepared")


def state_with(tmp_path: Path, **kw: object) -> WizardState:
    s = WizardState(runs_dir=tmp_path / "runs", data_dir=tmp_path / "data", use_case="chat", **kw)  # type: ignore[arg-type]
    s.knobs = Knobs("small", 256, 32, 1, 3e-4, 5000)
    return s


def test_a_short_run_is_probed_whole_not_for_100_iterations(tmp_path: Path) -> None:
    from gptwiz.plain.settings import SettingsStep
    from gptwiz.plain.talk import YES

    s = state_with(tmp_path)
    assert s.probe_iters() == 100 and s.probe_iters(20) == 20
    s.knobs = Knobs("tiny", 256, 8, 1, 3e-4, 60)
    assert s.probe_iters() == 60 and s.probe_iters(20) == 20

    class Talk:
        def yes_no(self, question: str, *answers: str) -> str:
            self.question = question
            return YES

    talk = Talk()
    assert SettingsStep(talk, s, 100, None)._probe_first() == "next"  # type: ignore[arg-type]
    assert talk.question.startswith("Run the 60-iteration probe first (the whole run: it is its own probe)")


def test_train_args_are_a_real_train_command_line(tmp_path: Path) -> None:
    s = state_with(tmp_path)
    s.dataset = DatasetChoice("input_file", "blog posts.txt", 1, 5_000_000)
    args = s.train_args("my_blog_model")
    assert args[:3] == ["train", "--config_file", "small"]
    assert args[args.index("--model_name") + 1] == "my_blog_model"
    assert args[args.index("--input_file") + 1] == "blog posts.txt"
    assert args[args.index("--max_iters") + 1] == "5000" and "--grad_accum" not in args
    assert args[args.index("--runs_dir") + 1] == str(tmp_path / "runs")
    line = wizard_command_line(s, "my_blog_model")
    assert line.startswith("gptwiz train ") and shlex.split(line)[1:] == args
    # the command line parses with the real CLI parser
    from gptwiz.cli import build_parser

    parsed = build_parser().parse_args(args)
    assert parsed.config_file == "small" and parsed.batch_size == 32 and parsed.learning_rate == 3e-4


def test_unprepared_data_shows_where_it_will_be_prepared(tmp_path: Path) -> None:
    s = state_with(tmp_path)
    s.dataset = DatasetChoice("sources", "docs/", 3, 1000)
    assert f"--dataset_dir {tmp_path / 'data' / 'docs-prepared'}" in wizard_command_line(s)
    with pytest.raises(UsageError, match="not prepared"):
        s.train_args()
    s.knobs = Knobs("small", 256, 8, 4, 3e-4, 5000)
    s.dataset = DatasetChoice("dataset_dir", "d", 3, 1000, tokens=10, prepared_dir="d")
    assert s.train_args()[-2:] != ["--grad_accum", "4"] and "--grad_accum" in s.train_args()


def test_vram_and_device_memory(tmp_path: Path) -> None:
    s = state_with(tmp_path)
    from gptwiz.planning.hardware import GpuInfo, HardwareReport

    s.hardware = HardwareReport(gpus=[GpuInfo(0, "NVIDIA GeForce RTX 3090", 24 * 2**30, 23 * 2**30, "8.6", True)],
                                cpu_count=8, cpu_name="x", ram_total_bytes=64 * 2**30, ram_available_bytes=60 * 2**30,
                                cpu_bf16=False)
    assert s.vram_gb == 24.0 and s.on_gpu and s.device_memory_bytes() == 24 * 2**30
    s.vram_override_gb = 6
    assert s.vram_gb == 6 and s.device_memory_bytes() == 6 * 2**30
    s.vram_override_gb = 0  # plan for a CPU machine: measured against the RAM available, not the total
    assert not s.on_gpu and s.device_memory_bytes() == 60 * 2**30


def test_default_run_name_is_unique(tmp_path: Path) -> None:
    s = state_with(tmp_path)
    assert s.default_run_name() == "chat-small"
    (tmp_path / "runs" / "chat-small").mkdir(parents=True)
    assert s.default_run_name() == "chat-small-2"


def test_schedule_curve_and_helpers() -> None:
    sched = Schedule(learning_rate=3e-4, min_lr=3e-5, warmup_iters=10, max_iters=1000)
    xs, ys = sched.curve(points=50)
    assert xs[0] == 0 and xs[-1] == 1000 and max(ys) <= 3e-4 and ys[-1] == pytest.approx(3e-5)
    x, y = downsample(list(range(10_000)), list(range(10_000)), 100)
    assert len(x) <= 100 and x[-1] == 9999 and x[0] == 0
    assert bar(0.5, 10) == "█████░░░░░" and bar(2.0, 4) == "████" and bar(float("nan"), 3) == "░░░"
    assert duration(59) == "0m59s" and duration(3700) == "1h01m" and duration(None) == "-"
