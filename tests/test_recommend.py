"""The guide's decision tables: the recommendation, dataset sizes, and the `gptwiz recommend` command."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from conftest import SHAKESPEARE, assert_one_line_error, cli_env, run_cli

from gptwiz.common.errors import UsageError
from gptwiz.common.fmt import bytes_ as format_bytes
from gptwiz.data.sizes import measure_dataset, parse_size
from gptwiz.planning.recommend import ORDER, USE_CASES, dataset_row, hardware_cap, recommend
from gptwiz.wizard.commands import phase_commands, recommendation_json, train_command

MB, GB = 10**6, 10**9

# (use case, VRAM in GB, dataset size or None) -> preset, from the guide's tables and its Practical Examples.
TABLE = [
    # The three Practical Examples.
    ("testing", 6, "5MB", "small"),          # Example 1: GTX 1660 6 GB, blog posts
    ("prototype", 6, "5MB", "small"),        # Example 1 again, as a prototype: the card caps 150M to small
    ("rag", 24, "200MB", "350M_1024"),       # Example 2: RTX 3090 24 GB, company documents
    ("domain", 40, "20GB", "750M_1024"),     # Example 3: A100 40 GB, IT-security domain expert
    # By Hardware.
    ("testing", 2, None, "tiny"),            # under 4 GB
    ("chat", 3.5, None, "tiny"),
    ("chat", 5, None, "small"),              # 4-8 GB
    ("code", 6, None, "small"),
    ("prototype", 10, None, "150M"),         # 8-12 GB
    ("chat", 10, None, "150M"),
    ("chat", 11.6, None, "150M"),
    ("chat", 12, None, "200M"),              # 12-16 GB: 200M for short context
    ("chat", 14, None, "200M"),
    ("rag", 14, None, "150M_1024"),          # ... 150M_1024 for long context
    ("chat", 20, None, "200M"),              # 16-24 GB: the use case's 200M is the smaller
    ("rag", 20, None, "350M_1024"),
    ("code", 16, None, "350M_1024"),
    ("code", 24, None, "750M_1024"),         # 24 GB and more
    ("domain", 24, None, "750M_1024"),
    ("rag", 24, None, "350M_1024"),          # a 24 GB card running RAG stays at 350M_1024
    ("chat", 80, None, "200M"),
    # No GPU: at most small.
    ("testing", 0, None, "small"),
    ("chat", 0, "1GB", "small"),
    ("domain", 0, None, "small"),
    # By Dataset Size: capped at "Recommended".
    ("testing", 0, "1MB", "small"),
    ("code", 80, "5MB", "small"),            # < 10 MB: small
    ("rag", 24, "50MB", "150M_1024"),        # 10-100 MB: 150M, and the long-context swap
    ("code", 10, "50MB", "150M_1024"),       # 8-12 GB gives 150M; its 1024-token sibling fits
    ("domain", 40, "500MB", "350M_1024"),    # 100 MB - 1 GB: 350M_1024
    ("prototype", 24, "2GB", "150M"),        # the use case is the smallest
    ("testing", 80, "100GB", "small"),
]


@pytest.mark.parametrize("use_case,vram,size,expected", TABLE)
def test_table(use_case: str, vram: float, size: str | None, expected: str) -> None:
    rec = recommend(use_case, vram, parse_size(size) if size else None)
    assert rec.preset == expected, rec.reasons
    assert rec.fits
    assert rec.batch_size * rec.grad_accum >= 8


def test_table_covers_the_use_cases_and_presets() -> None:
    assert len(TABLE) >= 20
    assert {c[0] for c in TABLE} == set(USE_CASES)
    assert {c[3] for c in TABLE} == set(ORDER)


def test_example_1_small_with_the_guides_settings() -> None:
    rec = recommend("testing", 6, 5 * MB)
    # The guide's batch, dropout (its 5,000 iterations repeat a few MB many times) and length; small's measured
    # learning rate, not the guide's 3e-4.
    assert (rec.preset, rec.learning_rate, rec.dropout, rec.max_iters) == ("small", 1e-3, 0.1, 5000)
    # The trainer compiles a 5,000-iteration run on CUDA, and the estimate follows it: compiled, the loss keeps
    # 6 bytes a logit instead of eager's 14, and the guide's batch of 32 fits the 6 GB card as it is.
    assert rec.estimate is not None and rec.estimate.compiled
    assert (rec.batch_size, rec.grad_accum) == (32, 1)
    assert rec.estimate_bytes <= 0.9 * 6 * 2**30
    cmd = train_command(rec, "my_blog_model", "--input_file data/blog_posts.txt")
    assert cmd.startswith("gptwiz train --config_file small --model_name my_blog_model --input_file data/blog_posts.txt")
    assert cmd.endswith("--max_iters 5000") and "--grad_accum" not in cmd


def test_example_2_rag_on_a_3090() -> None:
    rec = recommend("rag", 24, 200 * MB)
    assert rec.preset == "350M_1024" and rec.block_size == 1024 and rec.learning_rate == 2e-4
    assert rec.max_iters == 50000
    assert any("Example 2" in r for r in rec.reasons)
    command = train_command(rec, "company_model", "--dataset_dir data/company_shards")
    assert "--dataset_dir data/company_shards" in command


def test_example_3_domain_expert_two_phases() -> None:
    rec = recommend("domain", 40, 20 * GB)
    assert rec.preset == "750M_1024"
    assert [p.preset for p in rec.phases] == ["750M_1024", "750M_1024_domain_adapt"]
    assert rec.phases[1].learning_rate == 5e-5 and "3e-05" in rec.phases[1].note and "7e-05" in rec.phases[1].note
    base, adapt = phase_commands(rec, "security_expert", "--dataset_dir data/wiki_goldset",
                                     "--dataset_dir data/security_corpus")
    assert "--config_file 750M_1024 " in base and "--model_name security_expert_base" in base
    assert "--config_file 750M_1024_domain_adapt" in adapt and "--init_from_model security_expert_base" in adapt
    assert "--learning_rate 5e-05" in adapt and "--dataset_dir data/security_corpus" in adapt
    # 40 GB and more raise the batch size: the upper end of the guide's 8-12.
    assert rec.batch_size * rec.grad_accum == 12


def test_domain_with_a_smaller_base_adapts_the_same_preset() -> None:
    rec = recommend("domain", 20, None)
    assert rec.preset == "350M_1024"
    assert [p.preset for p in rec.phases] == ["350M_1024", "350M_1024"] and rec.phases[1].learning_rate == 5e-5


def test_chat_offers_instruction_tuning_as_phase_2() -> None:
    rec = recommend("chat", 24, 200 * MB)
    assert [p.preset for p in rec.phases] == [rec.preset, rec.preset] and rec.phases[1].sft and not rec.phases[0].sft
    assert rec.phases[1].learning_rate == 2e-5 and rec.phases[1].init_from == "phase 1"
    assert "1e-05 to 3e-05" in rec.phases[1].note
    assert any("phase 2 tunes it on instruction examples" in r and "2e-05" in r for r in rec.reasons)
    base, prepare, tune = phase_commands(rec, "helper", "--input_file corpus.txt")
    assert "--model_name helper_base" in base and "--input_file corpus.txt" in base
    assert prepare == (f"gptwiz prepare --sft --source chat:YOUR_EXAMPLES.jsonl --out_dir data/helper_sft "
                       f"--block_size {rec.block_size}")
    # no preset, length or rate: the run follows its base and sizes itself from the examples
    assert tune == "gptwiz train --model_name helper --dataset_dir data/helper_sft --init_from_model helper_base"
    assert not recommend("prototype", 24, 200 * MB).phases  # the other use cases stay one run


def test_chat_on_a_cpu_tunes_with_the_bases_context() -> None:
    rec = recommend("chat", 0, None)
    *_, prepare, tune = phase_commands(rec)
    assert f"--block_size {rec.block_size}" in prepare and "--dataset_dir data/my_model_sft" in tune


def test_reasons_follow_the_issue_order() -> None:
    rec = recommend("code", 10, 50 * MB)
    text = "\n".join(rec.reasons)
    order = ["use case Code Generation", "8-12 GB", "dataset 50 MB", "the smallest of these: 150M",
             "1024-token sibling 150M_1024", "Recommended Combinations"]
    positions = [text.index(fragment) for fragment in order]
    assert positions == sorted(positions)


def test_no_gpu_warns_that_cpu_is_for_learning() -> None:
    rec = recommend("chat", 0, None, ram_gb=24)
    assert rec.device_type == "cpu" and rec.preset == "small"
    assert any("CPU training is for learning and testing" in w for w in rec.warnings)
    assert rec.memory_bytes == 24 * 2**30


def test_batch_is_reduced_with_accumulation_when_it_does_not_fit() -> None:
    big = recommend("chat", 80, None)
    # (200M at batch 24 on a 12 GB card fits since the estimate follows the trainer's compiled run; 350M_1024's
    # 1024-token batch of 12 on a 16 GB card does not.)
    small = recommend("code", 16, None)
    assert big.grad_accum == 1 and big.batch_size == 32  # 40 GB and more: the upper end of 24-32
    assert small.preset == "350M_1024" and small.grad_accum > 1 and small.batch_size * small.grad_accum == 12
    assert small.estimate_bytes <= 0.9 * 16 * 2**30
    assert any("accumulation" in r for r in small.reasons)


def test_a_card_too_small_for_anything_says_so() -> None:
    rec = recommend("rag", 0.5, None)
    assert rec.preset == "tiny" and not rec.fits and rec.batch_size == 1
    assert any("out-of-memory" in w for w in rec.warnings)


def test_dataset_warnings() -> None:
    under = recommend("testing", 80, 100 * GB)
    assert any("under the guide's minimum" in w for w in under.warnings)
    assert any("bigger model" in w for w in under.warnings)
    oversized = recommend("testing", 6, 5 * MB)
    assert any("rule of thumb" in w and "memorise" in w for w in oversized.warnings)
    fine = recommend("domain", 40, 20 * GB)
    assert fine.warnings == []


def test_exact_tokens_replace_the_byte_estimate() -> None:
    estimated = recommend("testing", 6, 5 * MB)
    exact = recommend("testing", 6, 5 * MB, dataset_tokens=300_000_000)
    assert any("rule of thumb" in w for w in estimated.warnings)
    assert not any("rule of thumb" in w for w in exact.warnings)


def test_several_gpus() -> None:
    rec = recommend("rag", 24, None, gpu_count=4)
    assert rec.effective_batch == rec.batch_size * rec.grad_accum * 4
    assert "--nproc 4" in train_command(rec)


def test_alternatives_are_neighbours_with_a_reason() -> None:
    rec = recommend("chat", 20, None)
    names = [p for p, _ in rec.alternatives]
    assert names[0] == "150M" and "350M_1024" in names  # chat skips 150M_1024: it needs no long context
    assert all(why for _, why in rec.alternatives)
    rag = recommend("rag", 20, None)
    assert [p for p, _ in rag.alternatives][0] == "150M_1024"


def test_hardware_and_dataset_tables() -> None:
    assert hardware_cap("chat", 0)[0] == "small"
    assert hardware_cap("chat", 23.99)[0] == "750M_1024"  # a 24 GB RTX 4090 reports 23.99 GiB
    assert hardware_cap("code", 15.9)[0] == "350M_1024"
    assert dataset_row(9 * MB)[:2] == ("tiny", "small")
    assert dataset_row(10 * MB)[:2] == ("small", "150M")
    assert dataset_row(999 * MB)[:2] == ("150M", "350M_1024")
    assert dataset_row(10 * GB)[:2] == ("750M_1024", "750M_1024")


@pytest.mark.parametrize("args,fragment", [
    (("poetry", 8, None), "testing, prototype, chat, rag, code, domain"),
    (("chat", -1, None), "-1"),
    (("chat", float("nan"), None), "nan"),
    (("chat", "8", None), "'8'"),
    (("chat", 8, -5), "-5"),
    (("chat", 8, None, 0), "GPU count"),
])
def test_bad_input_raises(args: tuple, fragment: str) -> None:
    with pytest.raises(UsageError, match=None) as info:
        recommend(*args)
    assert fragment in str(info.value)


def test_to_json_keys() -> None:
    rec = recommend("rag", 24, 200 * MB)
    assert "command" not in rec.to_json()  # planning gives the settings; the command lines are added above it
    data = json.loads(json.dumps(recommendation_json(rec, phase_commands(rec))))
    for key in ("preset", "block_size", "batch_size", "grad_accum", "learning_rate", "estimate_bytes", "fits",
                "reasons", "warnings", "alternatives", "phases", "command", "commands"):
        assert key in data
    assert list(data)[-3:] == ["command", "estimate", "commands"]  # the order the JSON has always had
    assert all(set(a) == {"preset", "why", "quality"} for a in data["alternatives"])


# --- sizes ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("text,expected", [("5MB", 5 * MB), ("500 mb", 500 * MB), ("2GB", 2 * GB), ("1.5GiB", 3 * 2**29),
                                           ("800", 800), ("64k", 64_000), ("10MiB", 10 * 2**20), (".5TB", 5 * 10**11)])
def test_parse_size(text: str, expected: int) -> None:
    assert parse_size(text) == expected


@pytest.mark.parametrize("text", ["", "MB", "5XB", "-5MB", "5 M B", "1e3MB", "five"])
def test_parse_size_rejects(text: str) -> None:
    with pytest.raises(UsageError, match="5MB, 500MB or 2GB"):
        parse_size(text)


def test_format_bytes() -> None:
    assert format_bytes(5 * MB) == "5 MB"
    assert format_bytes(6 * 2**30, binary=True) == "6 GiB"
    assert format_bytes(512) == "512 B"


def test_measure_file_folder_glob_and_prepared(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    (docs / "sub").mkdir(parents=True)
    (docs / "a.txt").write_text("x" * 1000)
    (docs / "sub" / "b.md").write_text("y" * 500)
    (docs / "image.png").write_bytes(b"\x89PNG" * 100)  # not a document prepare would read
    assert measure_dataset(str(docs / "a.txt")).bytes == 1000
    folder = measure_dataset(str(docs))
    assert (folder.kind, folder.files, folder.bytes) == ("folder", 2, 1500)
    glob = measure_dataset(str(docs / "**" / "*.md"))
    assert (glob.kind, glob.files, glob.bytes) == ("glob", 1, 500)

    from gptwiz.data.cache import cache_text_file

    prepared_dir = cache_text_file(SHAKESPEARE, tmp_path / "data")
    prepared = measure_dataset(str(prepared_dir))
    manifest = json.loads((prepared_dir / "manifest.json").read_text())
    assert prepared.kind == "prepared" and prepared.tokens_exact
    assert prepared.tokens == manifest["totals"]["train_tokens"] + manifest["totals"]["val_tokens"]
    assert prepared.bytes == SHAKESPEARE.stat().st_size
    assert measure_dataset(str(prepared_dir / "manifest.json")).tokens == prepared.tokens


def test_measure_rejects(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="does not exist"):
        measure_dataset(str(tmp_path / "missing.txt"))
    with pytest.raises(UsageError, match="matches no files"):
        measure_dataset(str(tmp_path / "*.txt"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(UsageError, match="holds no"):
        measure_dataset(str(tmp_path / "empty"))
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "manifest.json").write_text("{not json")
    with pytest.raises(UsageError, match="manifest"):
        measure_dataset(str(bad))


# --- the CLI -------------------------------------------------------------------------------------

def test_cli_json_example_2(tmp_path: Path) -> None:
    proc = run_cli(["recommend", "--use-case", "rag", "--vram-gb", "24", "--dataset-size", "200MB", "--json"],
                   cwd=tmp_path, check=True)
    data = json.loads(proc.stdout)
    assert data["preset"] == "350M_1024" and data["fits"] and data["reasons"]
    assert data["command"].startswith("gptwiz train --config_file 350M_1024")


def test_cli_underscores_and_a_measured_dataset(tmp_path: Path) -> None:
    proc = run_cli(["recommend", "--use_case", "testing", "--vram_gb", "6", "--dataset", str(SHAKESPEARE),
                    "--model_name", "bard", "--json"], cwd=tmp_path, check=True)
    data = json.loads(proc.stdout)
    assert data["preset"] == "small"
    assert data["dataset"]["bytes"] == SHAKESPEARE.stat().st_size
    assert f"--input_file {SHAKESPEARE}" in data["command"] and "--model_name bard" in data["command"]


def test_cli_json_chat_lists_the_instruction_tuning_commands(tmp_path: Path) -> None:
    data = json.loads(run_cli(["recommend", "--use-case", "chat", "--vram-gb", "24", "--json"], cwd=tmp_path,
                              check=True).stdout)
    assert [p["sft"] for p in data["phases"]] == [False, True] and len(data["commands"]) == 3
    assert data["commands"][1].startswith("gptwiz prepare --sft") and "--init_from_model" in data["commands"][2]
    assert data["command"] == data["commands"][0]


def test_cli_folder_suggests_prepare(tmp_path: Path) -> None:
    docs = tmp_path / "company_docs"
    docs.mkdir()
    (docs / "a.txt").write_text("hello " * 1000)
    data = json.loads(run_cli(["recommend", "--use-case", "rag", "--vram-gb", "24", "--dataset", str(docs), "--json"],
                              cwd=tmp_path, check=True).stdout)
    assert "gptwiz prepare --source" in data["prepare_first"] and "--dataset_dir" in data["command"]


def test_cli_rich_rendering(tmp_path: Path) -> None:
    proc = run_cli(["recommend", "--use-case", "domain", "--vram-gb", "40", "--dataset-size", "20GB"],
                   cwd=tmp_path, check=True)
    out = proc.stdout
    for fragment in ("750M_1024", "decision path", "memory", "GiB of 40 GiB", "750M_1024_domain_adapt", "gptwiz train"):
        assert fragment in out


def test_cli_without_vram_uses_this_machine(tmp_path: Path) -> None:
    from gptwiz.planning.hardware import detect_hardware

    data = json.loads(run_cli(["recommend", "--use-case", "chat", "--json"], cwd=tmp_path, check=True).stdout)
    assert data["vram_gb"] == pytest.approx(round(detect_hardware().vram_gb, 2))
    if data["vram_gb"] == 0:
        # At most small on a CPU; which of tiny and small gives the better model in Chat's time is the quality
        # model's call at this machine's measured speed.
        assert data["preset"] in ("tiny", "small") and data["device_type"] == "cpu"


@pytest.mark.parametrize("args,fragment", [
    (["--use-case", "poetry"], "testing (Testing/Learning)"),
    (["--use-case", "chat", "--vram-gb", "-4"], "-4"),
    (["--use-case", "chat", "--vram-gb", "lots"], "lots"),
    (["--use-case", "chat", "--dataset-size", "5 parsecs"], "5 parsecs"),
    (["--use-case", "chat", "--dataset", "no/such/file.txt"], "no/such/file.txt"),
    (["--use-case", "chat", "--dataset-size", "5MB", "--dataset", "x.txt"], "not allowed"),
    (["--vram-gb", "8"], "use_case"),
])
def test_cli_bad_input(tmp_path: Path, args: list[str], fragment: str) -> None:
    assert_one_line_error(run_cli(["recommend", *args], cwd=tmp_path), fragment)


# --- time: the run and its probe fit the guide's promise, or a budget ------------------------------------

def fixed_throughput(device_type: str = "cpu", dtype: str = "float32", scale: float = 1.0) -> Any:
    """A fixed machine (the 2-core CPU's float32 speeds), `scale` times faster."""
    from gptwiz.planning.timing import Throughput

    widths = (192, 384, 768, 1024, 1280)
    return Throughput(device_type=device_type, dtype=dtype, head=tuple((w, 280e9 * scale) for w in widths),
                      layer=tuple((w, 320e9 * scale) for w in widths), vocab_s=1.5e-9 / scale,
                      elementwise_s=2.2e-9 / scale, threads=2, source="test")


def test_testing_on_a_cpu_fits_the_guides_minutes() -> None:
    rec = recommend("testing", 0, 1_100_000, ram_gb=8, dtype="float32", throughput=fixed_throughput())
    assert rec.probe_eta_s is not None and rec.eta_s is not None
    assert rec.probe_eta_s <= 120 and rec.eta_s <= 20 * 60
    # Still something that learns visibly: a few hundred iterations of at least 1,024 tokens.
    assert rec.max_iters >= 500 and rec.batch_size * rec.grad_accum * rec.block_size >= 1024
    assert any("Training Time for Testing/Learning" in r and "instead" in r for r in rec.reasons)
    assert f"--max_iters {rec.max_iters}" in train_command(rec)
    # The memory figure is the one for the settings recommended.
    from gptwiz.planning.policy import knobs_memory

    assert rec.estimate_bytes == knobs_memory(rec.knobs, "cpu", "float32").total


def test_a_fast_machine_keeps_the_guides_pick() -> None:
    rec = recommend("testing", 6, 5 * MB, dtype="bfloat16", throughput=fixed_throughput("cuda", "bfloat16", 1000))
    assert rec.preset == "small" and rec.batch_size == 32 and rec.max_iters == 5000
    assert any("as it is fits" in r for r in rec.reasons) and rec.eta_s < 20 * 60


def test_a_time_budget_cuts_the_run_to_fit() -> None:
    speed = fixed_throughput("cuda", "bfloat16", 30)
    free = recommend("chat", 24, None, dtype="bfloat16", throughput=speed, hours=1000)
    assert free.preset == "200M" and free.max_iters == 10000
    rec = recommend("chat", 24, None, dtype="bfloat16", throughput=speed, hours=2)
    assert rec.eta_s <= 2 * 3600 and rec.probe_eta_s <= 0.2 * 3600
    assert any(r.startswith("time budget 2 h:") and "instead" in r for r in rec.reasons)
    assert (rec.preset, rec.batch_size, rec.block_size, rec.max_iters) != (free.preset, free.batch_size,
                                                                          free.block_size, free.max_iters)
    data = json.loads(json.dumps(recommendation_json(rec, [train_command(rec)])))
    assert data["eta_s"] == pytest.approx(rec.eta_s, abs=0.1) and data["probe_eta_s"] == pytest.approx(rec.probe_eta_s, abs=0.1)
    assert data["command"] == train_command(rec) and f"--max_iters {rec.max_iters}" in data["command"]


@pytest.mark.parametrize("hours", [0, -1, float("nan"), float("inf"), True, "2"])
def test_a_bad_budget_raises(hours: Any) -> None:
    with pytest.raises(UsageError, match="--hours"):
        recommend("chat", 24, None, throughput=fixed_throughput("cuda", "bfloat16"), hours=hours)


def test_without_a_throughput_no_time_is_predicted() -> None:
    rec = recommend("testing", 0, 5 * MB, ram_gb=8)
    assert rec.eta_s is None and rec.probe_eta_s is None and rec.to_json()["eta_s"] is None
    with pytest.raises(UsageError, match="throughput"):
        recommend("testing", 0, 5 * MB, hours=1)


def test_a_chosen_preset_gets_its_own_warnings_and_alternatives() -> None:
    base = recommend("chat", 24, 150 * MB)
    other = recommend("chat", 24, 150 * MB, preset="tiny")
    assert base.preset == "200M" and other.preset == "tiny"
    assert any("your choice: tiny instead of 200M" in r for r in other.reasons)
    assert {p for p, _ in other.alternatives} != {p for p, _ in base.alternatives}
    assert "small" in {p for p, _ in other.alternatives}
    # The warnings are the chosen model's: 203M parameters for 37.5M tokens is 200M's problem, not tiny's.
    assert any("203M parameters" in w for w in base.warnings) and not any("203M" in w for w in other.warnings)
    assert any("tiny is under the guide's minimum" in w for w in other.warnings)
    with pytest.raises(UsageError, match="unknown preset"):
        recommend("chat", 24, None, preset="huge")


def test_cli_times_and_budget(tmp_path: Path) -> None:
    from gptwiz.training.throughput import machine_key

    cache = tmp_path / "cache" / "gptwiz"
    cache.mkdir(parents=True)
    (cache / "throughput.json").write_text(json.dumps(
        {machine_key("cpu", d): fixed_throughput(dtype=d).to_json() for d in ("float32", "bfloat16")}))
    env = cli_env(XDG_CACHE_HOME=str(tmp_path / "cache"))
    data = json.loads(run_cli(["recommend", "--use-case", "testing", "--vram-gb", "0", "--json"], cwd=tmp_path,
                              env=env, check=True).stdout)
    assert data["eta_s"] <= 20 * 60 and data["probe_eta_s"] <= 120 and data["command"].startswith("gptwiz train")
    short = json.loads(run_cli(["recommend", "--use-case", "testing", "--vram-gb", "0", "--hours", "0.1", "--json"],
                               cwd=tmp_path, env=env, check=True).stdout)
    assert short["eta_s"] <= 360 and any(r.startswith("time budget 0.1 h") for r in short["reasons"])
    text = run_cli(["recommend", "--use-case", "testing", "--vram-gb", "0"], cwd=tmp_path, env=env, check=True).stdout
    assert "time:" in text and "probe" in text
    assert_one_line_error(run_cli(["recommend", "--use-case", "testing", "--hours", "soon"], cwd=tmp_path, env=env),
                          "--hours 'soon'")
    assert_one_line_error(run_cli(["recommend", "--use-case", "chat", "--vram-gb", "24", "--hours", "2"],
                                  cwd=tmp_path, env=env), "--hours 2")


def test_recommend_counts_a_text_files_tokens_from_a_sample(tmp_path: Path) -> None:
    """tinyshakespeare is 338,025 GPT-2 tokens; bytes / 4 said 278,848, in the dataset line and the warnings."""
    from gptwiz.common import fmt

    out = json.loads(run_cli(["recommend", "--use-case", "testing", "--vram-gb", "24", "--dataset", str(SHAKESPEARE),
                              "--json"], cwd=tmp_path, check=True).stdout)
    tokens = out["dataset"]["tokens"]
    assert abs(tokens / 338_026 - 1) < 0.05 and not out["dataset"]["tokens_exact"]
    assert any(f"the data's ~{fmt.count(tokens)} tokens" in w for w in out["warnings"]), out["warnings"]
